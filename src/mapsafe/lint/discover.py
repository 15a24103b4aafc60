"""Which files to lint: walk the given paths, skipping VCS, virtualenv, build and excluded folders."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Iterable, Iterator

__all__ = ["SKIP_DIRS", "iter_python_files", "is_excluded"]

# Folders never worth linting: version control, caches, virtualenvs, build output.
SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", ".tox", ".nox", ".venv", "venv", ".eggs", "__pycache__", ".mypy_cache",
     ".pytest_cache", ".ruff_cache", "node_modules", "build", "dist", "site-packages"}
)


def _display(path: Path) -> str:
    """The path as the user will read it: relative to the cwd when inside it, with / separators."""
    try:
        return path.relative_to(Path.cwd()).as_posix() if path.is_absolute() else path.as_posix()
    except ValueError:
        return path.as_posix()


def is_excluded(path: str, excludes: Iterable[str]) -> bool:
    """Does ``path`` (or any of its folders) match one of the exclude globs?"""
    posix = path.replace(os.sep, "/")
    parts = posix.split("/")
    for pattern in excludes:
        pattern = pattern.rstrip("/")
        if not pattern:
            continue
        if fnmatch.fnmatchcase(posix, pattern) or fnmatch.fnmatchcase(posix.lstrip("./"), pattern):
            return True
        if "/" not in pattern and any(fnmatch.fnmatchcase(part, pattern) for part in parts):
            return True
    return False


def _is_virtualenv(folder: str, names: list[str]) -> bool:
    return "pyvenv.cfg" in names


def iter_python_files(paths: Iterable[str], excludes: Iterable[str] = ()) -> Iterator[tuple[str, str | None]]:
    """(path, None) for each file to lint, or (path, reason) for a path that cannot be linted.

    A file named on the command line is linted whatever its name; folders
    are searched for ``*.py`` files, in sorted order.
    """
    excludes = list(excludes)
    for raw in paths:
        path = Path(raw)
        shown = _display(path)
        if not path.exists():
            yield shown, "no such file or directory"
            continue
        if path.is_file():
            if not is_excluded(shown, excludes):
                yield shown, None
            continue
        if not path.is_dir():
            yield shown, "not a regular file or directory"
            continue
        if is_excluded(shown, excludes) and shown not in (".", ""):
            continue
        for folder, dirs, files in os.walk(path):
            keep = []
            for name in sorted(dirs):
                sub = os.path.join(folder, name)
                if name in SKIP_DIRS or name.endswith(".egg-info"):
                    continue
                if os.path.isfile(os.path.join(sub, "pyvenv.cfg")):
                    continue  # a virtualenv, whatever it is called
                if is_excluded(_display(Path(sub)), excludes):
                    continue
                keep.append(name)
            dirs[:] = keep
            for name in sorted(files):
                if name.endswith(".py"):
                    shown_file = _display(Path(folder, name))
                    if not is_excluded(shown_file, excludes):
                        yield shown_file, None
