"""JSON report: an array of objects with path, line, col, end_line, end_col, code, message, severity, call_path."""

from __future__ import annotations

import json
from typing import Iterable

from .messages import Finding

__all__ = ["render", "as_dict"]


def as_dict(finding: Finding) -> dict[str, object]:
    return {
        "path": finding.path,
        "line": finding.line,
        "col": finding.col,
        "end_line": finding.end_line,
        "end_col": finding.end_col,
        "code": finding.code,
        "message": finding.message,
        "severity": finding.severity,
        # thread findings: the entry, each call on the way, the access ("path" is the file)
        "call_path": [{"step": step, "file": path, "line": line} for step, path, line in finding.trace],
    }


def render(findings: Iterable[Finding], errors: Iterable[tuple[str, str]] = ()) -> str:
    return json.dumps([as_dict(f) for f in findings], indent=2) + "\n"
