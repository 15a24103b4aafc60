"""The lint cache: a run's findings, keyed by the content hash of every file and the options, in .mapsafe_cache/."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Iterable, Sequence

from .._version import __version__
from .messages import Finding, rule_for

__all__ = ["Cache", "CACHE_DIR", "file_key", "program_key"]

CACHE_DIR = ".mapsafe_cache"
# Bumped when what a cached entry means changes, with or without a release.
_FORMAT = 3  # 2: MS301 findings carry what the cache is ('dict') before its name; 3: MS203 quotes the user's code


def file_key(path: str, source: str) -> str:
    """The key of one file's per-file findings: the linter's version, the path and the exact text."""
    h = hashlib.sha256()
    for part in (f"mapsafe {__version__} format {_FORMAT} file", path, source):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def program_key(file_keys: Iterable[str], options: Sequence[object]) -> str:
    """The key of a whole-program pass: every file's key, in order, and the options that change it."""
    h = hashlib.sha256(f"mapsafe {__version__} format {_FORMAT} program".encode())
    for key in file_keys:
        h.update(key.encode())
    h.update(json.dumps([repr(o) for o in options]).encode())
    return h.hexdigest()


class Cache:
    """Findings stored as JSON files named by their key, under ``root/.mapsafe_cache``.

    Reading never fails: a missing, unreadable or corrupt entry is a miss.
    Writing is atomic (a temporary file, then a rename), so a crash or a
    second linter running at once leaves a whole entry or none. When not to
    use it: on a tree the linter cannot write to, pass ``--no-cache``.
    """

    def __init__(self, root: str = ".") -> None:
        self.dir = os.path.join(root, CACHE_DIR)
        self.hits = self.misses = 0
        self._ready = False

    def _path(self, kind: str, key: str) -> str:
        return os.path.join(self.dir, kind, key[:2], key + ".json")

    def get(self, kind: str, key: str) -> tuple[list[Finding], list[str]] | None:
        """(findings, notes) stored under ``key``, or None."""
        try:
            with open(self._path(kind, key), encoding="utf-8") as fh:
                entry = json.load(fh)
            found = [_finding(row) for row in entry["findings"]]
            notes = [str(note) for note in entry["notes"]]
        except (OSError, ValueError, KeyError, TypeError):
            self.misses += 1
            return None
        self.hits += 1
        return found, notes

    def put(self, kind: str, key: str, findings: Iterable[Finding], notes: Iterable[str] = ()) -> None:
        entry = {"findings": [_row(f) for f in findings], "notes": list(notes)}
        path = self._path(kind, key)
        try:
            self._prepare()
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entry, fh)
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written only costs time

    def _prepare(self) -> None:
        if self._ready:
            return
        os.makedirs(self.dir, exist_ok=True)
        for name, text in ((".gitignore", "# created by mapsafe lint\n*\n"),
                           ("CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n"
                                            "# mapsafe lint's cache (the Cache Directory Tagging convention)\n")):
            marker = os.path.join(self.dir, name)
            if not os.path.exists(marker):
                with open(marker, "w", encoding="utf-8") as fh:
                    fh.write(text)
        self._ready = True


def _row(f: Finding) -> list:
    return [f.code, f.path, f.line, f.col, f.end_line, f.end_col, list(f.args), [list(step) for step in f.trace]]


def _finding(row: list) -> Finding:
    code, path, line, col, end_line, end_col, args, trace = row
    finding = rule_for(code)(path, line, col, end_line, end_col, *args)
    finding.trace = tuple((str(step), str(file), int(n)) for step, file, n in trace)
    return finding
