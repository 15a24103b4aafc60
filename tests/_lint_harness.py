"""Source-string harness for the lint tests: lint(src) -> findings, codes(findings) -> codes."""

from __future__ import annotations

import textwrap

from mapsafe.lint.checker import Selection, lint_source
from mapsafe.lint.messages import Finding


def lint(source: str, select: list[str] | None = None, ignore: list[str] | None = None,
         path: str = "example.py", target: tuple[int, int] | None = None) -> list[Finding]:
    """Findings for a dedented source string (no files, no config); ``target``: the oldest
    Python the code runs on (default: the running one)."""
    return lint_source(textwrap.dedent(source), path, Selection(select or (), ignore or ()), target=target)


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def lines(findings: list[Finding]) -> list[tuple[int, str]]:
    return [(f.line, f.code) for f in findings]
