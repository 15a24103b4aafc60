"""Suppressions: a file of file/function/line patterns, and the inline ignore comment."""

from __future__ import annotations

import fnmatch
import linecache
from dataclasses import dataclass

from ..errors import UsageError
from .shadow import Race

__all__ = ["Suppressions", "SuppressionFileError", "INLINE_MARKER"]

INLINE_MARKER = "mapsafe: ignore-race"


class SuppressionFileError(UsageError):
    """The --suppress file could not be read or has a bad line."""

    slug = "race-suppress"
    hint = "one rule per line: file:GLOB, func:GLOB, line:FILE:LINE or race:GLOB; # starts a comment"


@dataclass(frozen=True)
class _Rule:
    kind: str  # "file", "func" or "line"
    pattern: str  # a glob; for "line", a glob for the file and the line number after the last ':'


class Suppressions:
    """Matches a race when any frame of either access matches a rule.

    File format, one rule per line (``#`` starts a comment)::

        file:*/vendor/*.py      a frame's file (glob, full path or basename)
        func:worker_*           a frame's function name (glob)
        line:app.py:12          a frame's file (glob) and line number
        race:PATTERN            like TSan: matches as file, func, or file:line

    Independently, a race whose either access is on a line carrying
    ``# mapsafe: ignore-race`` is suppressed.
    """

    def __init__(self, rules: tuple = ()) -> None:
        self.rules = rules

    @classmethod
    def parse(cls, text: str, where: str = "<suppressions>") -> "Suppressions":
        rules = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            kind, sep, pattern = line.partition(":")
            kind = kind.strip()
            pattern = pattern.strip()
            if not sep or kind not in ("file", "func", "line", "race") or not pattern:
                raise SuppressionFileError(
                    f"{where}:{number}: expected 'file:GLOB', 'func:GLOB', 'line:FILE:LINE' or 'race:GLOB', "
                    f"got {raw.strip()!r}"
                )
            if kind == "line":
                file_glob, sep, lineno = pattern.rpartition(":")
                if not sep or not lineno.isdigit():
                    raise SuppressionFileError(f"{where}:{number}: 'line:' needs FILE:LINE, got {pattern!r}")
            rules.append(_Rule(kind, pattern))
        return cls(tuple(rules))

    @classmethod
    def load(cls, path: str) -> "Suppressions":
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise SuppressionFileError(f"cannot read suppressions file {path}: {exc.strerror}") from None
        return cls.parse(text, path)

    def __call__(self, race: Race) -> bool:
        frames = [
            (code.co_filename, line, code.co_name) for acc in (race.current, race.previous) for code, line in acc.frames
        ]
        for acc in (race.current, race.previous):
            if acc.frames:
                code, line = acc.frames[0]
                if INLINE_MARKER in linecache.getline(code.co_filename, line or 0):
                    return True
        return any(self._matches(rule, f) for rule in self.rules for f in frames)

    @staticmethod
    def _file_matches(glob: str, filename: str) -> bool:
        base = filename.replace("\\", "/").rsplit("/", 1)[-1]
        return fnmatch.fnmatch(filename, glob) or fnmatch.fnmatch(base, glob) or fnmatch.fnmatch(filename, "*/" + glob)

    def _matches(self, rule: _Rule, frame: tuple) -> bool:
        filename, line, func = frame
        if rule.kind == "file":
            return self._file_matches(rule.pattern, filename)
        if rule.kind == "func":
            return fnmatch.fnmatch(func, rule.pattern)
        if rule.kind == "line":
            glob, _, number = rule.pattern.rpartition(":")
            return line == int(number) and self._file_matches(glob, filename)
        # race: TSan-style, any of the three.
        glob, _, number = rule.pattern.rpartition(":")
        if number.isdigit() and glob and line == int(number) and self._file_matches(glob, filename):
            return True
        return self._file_matches(rule.pattern, filename) or fnmatch.fnmatch(func, rule.pattern)
