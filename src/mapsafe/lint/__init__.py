"""mapsafe lint: a static checker for unsafe shared-dict code."""

from .checker import LintResult, Selection, lint_paths, lint_source
from .messages import RULES, Finding

__all__ = ["lint_source", "lint_paths", "Selection", "LintResult", "Finding", "RULES"]
