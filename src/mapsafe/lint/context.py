"""A file being checked: its path and lines, and how to place a finding in it."""

from __future__ import annotations

import ast

from .messages import Finding

__all__ = ["FileContext"]


class FileContext:
    """Where findings go: turns AST positions (UTF-8 byte columns) into 1-based character columns."""

    __slots__ = ("path", "lines")

    def __init__(self, path: str, lines: list[str]) -> None:
        self.path = path
        self.lines = lines

    def _column(self, lineno: int, byte_offset: int) -> int:
        if 0 < lineno <= len(self.lines):
            text = self.lines[lineno - 1]
            if not text.isascii():
                return len(text.encode("utf-8")[:byte_offset].decode("utf-8", "replace")) + 1
        return byte_offset + 1

    def finding(self, kind: type[Finding], node: ast.AST, *args: object) -> Finding:
        line = getattr(node, "lineno", 1) or 1
        col = self._column(line, getattr(node, "col_offset", 0) or 0)
        end_line = getattr(node, "end_lineno", None) or line
        end_col_offset = getattr(node, "end_col_offset", None)
        end_col = self._column(end_line, end_col_offset) if end_col_offset is not None else col
        return kind(self.path, line, col, end_line, end_col, *args)
