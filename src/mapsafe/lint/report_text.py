"""Text report: one `path:line:col: CODE message` line per finding, as flake8 prints them."""

from __future__ import annotations

from typing import Iterable

from .messages import Finding

__all__ = ["render"]


def render(findings: Iterable[Finding], errors: Iterable[tuple[str, str]] = ()) -> str:
    # Read errors go to stderr from the CLI; the text report is findings only, so it stays grep-able.
    return "".join(_line(f) for f in findings)


def _line(f: Finding) -> str:
    via = f" [path: {f.path_text}]" if len(f.trace) > 2 else ""  # calls beyond the thread's own function
    return f"{f.path}:{f.line}:{f.col}: {f.code} {f.message}{via}\n"
