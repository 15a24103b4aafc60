"""Text report: one `path:line:col: CODE message` line per finding, as flake8 prints them."""

from __future__ import annotations

from typing import Iterable

from .messages import Finding

__all__ = ["render"]


def render(findings: Iterable[Finding], errors: Iterable[tuple[str, str]] = ()) -> str:
    # Read errors go to stderr from the CLI; the text report is findings only, so it stays grep-able.
    return "".join(f"{f.path}:{f.line}:{f.col}: {f.code} {f.message}\n" for f in findings)
