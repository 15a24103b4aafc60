"""Per-line suppression comments: `# noqa`, `# noqa: MS201` and `# mapsafe: ignore[MS201]`."""

from __future__ import annotations

import re

from .messages import Finding

__all__ = ["is_suppressed"]

# As flake8 reads them: a bare `# noqa` silences everything on the line, `# noqa: A1,B2` those codes.
_NOQA_CODES = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]*(?:[,\s]+[A-Z]+[0-9]*)*))?", re.IGNORECASE)
_MAPSAFE = re.compile(r"#\s*mapsafe:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
_SPLIT = re.compile(r"[,\s]+")


def _codes(text: str | None) -> tuple[str, ...] | None:
    """None for "everything", else the listed codes (upper case, prefixes allowed like flake8)."""
    if text is None:
        return None
    return tuple(code.upper() for code in _SPLIT.split(text.strip()) if code)


def is_suppressed(finding: Finding, lines: list[str]) -> bool:
    """Does a comment on the finding's line silence it?"""
    if not 0 < finding.line <= len(lines):
        return False
    line = lines[finding.line - 1]
    if "#" not in line:
        return False
    for pattern in (_NOQA_CODES, _MAPSAFE):
        for match in pattern.finditer(line):
            codes = _codes(match.group("codes"))
            if codes is None or not codes or finding.code.startswith(codes):
                return True
    return False
