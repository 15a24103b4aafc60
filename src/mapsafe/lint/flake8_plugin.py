"""flake8 plugin: the MS rules as flake8 checks (entry point `MS = mapsafe.lint.flake8_plugin:MapsafeFlake8`)."""

from __future__ import annotations

import ast
from typing import Iterator

from .._version import __version__
from .checker import Selection, lint_source

__all__ = ["MapsafeFlake8"]


class MapsafeFlake8:
    """A flake8 AST plugin; flake8 itself applies --select, --ignore and # noqa."""

    name = "mapsafe"
    version = __version__

    def __init__(self, tree: ast.AST, filename: str = "<unknown>", lines: list[str] | None = None) -> None:
        self.tree = tree
        self.filename = filename
        self.lines = lines

    def run(self) -> Iterator[tuple[int, int, str, type]]:
        if self.lines is not None:
            source = "".join(self.lines)
        else:
            source = ast.unparse(self.tree)  # only when flake8 gives no lines: positions are approximate
        # MS000 is flake8's E999 already; noqa is flake8's job, so report everything else.
        for finding in lint_source(source, self.filename, Selection((), ("MS000",)), noqa=False):
            yield finding.line, finding.col - 1, f"{finding.code} {finding.message}", type(self)
