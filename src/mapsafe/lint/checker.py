"""Run the rules over source text: parse once, index once, isolate each rule, apply noqa and selection."""

from __future__ import annotations

import ast
import io
import os
import tokenize
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..errors import UsageError
from . import rule_cache, rule_iteration, rule_threads
from .context import FileContext
from .discover import iter_python_files
from .messages import RULES, Finding, InternalErrorFinding, SyntaxErrorFinding
from .scopes import Index
from .suppress import is_suppressed

__all__ = ["Selection", "FileResult", "LintResult", "decode_source", "lint_source", "lint_file", "lint_paths"]

# (rule module, codes it can report): each runs isolated, so one crash loses only its own findings.
RULE_MODULES = (rule_iteration, rule_threads, rule_cache)
KNOWN_CODES = tuple(rule.code for rule in RULES)


class Selection:
    """Which codes to report: --select / --ignore codes or prefixes; the longer match wins."""

    def __init__(self, select: Sequence[str] = (), ignore: Sequence[str] = ()) -> None:
        self.select = tuple(self._check(c, "select") for c in select) or ("MS",)
        self.ignore = tuple(self._check(c, "ignore") for c in ignore)

    @staticmethod
    def _check(code: str, option: str) -> str:
        code = code.strip().upper()
        if not code or not any(known.startswith(code) for known in KNOWN_CODES):
            raise UsageError(f"unknown rule code {code!r} in {option} (known: {', '.join(KNOWN_CODES)})")
        return code

    def enabled(self, code: str) -> bool:
        if code == InternalErrorFinding.code:
            return True  # crashes are never silenced
        chosen = max((len(c) for c in self.select if code.startswith(c)), default=-1)
        dropped = max((len(c) for c in self.ignore if code.startswith(c)), default=-1)
        return chosen >= 0 and chosen > dropped

    def any_enabled(self, codes: Iterable[str]) -> bool:
        return any(self.enabled(code) for code in codes)


class SourceError(Exception):
    """A file that cannot be read as Python text: binary, badly encoded or unreadable."""


def decode_source(data: bytes) -> str:
    """Bytes to text as Python reads them: a BOM or a coding cookie, else UTF-8."""
    if b"\0" in data:
        raise SourceError("binary file (contains NUL bytes), not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        raise SourceError(f"cannot tell its encoding: {exc}") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"not valid {'UTF-8' if encoding.startswith('utf-8') else encoding} text "
            f"(byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    except LookupError:
        raise SourceError(f"unknown encoding {encoding!r} in its coding declaration") from None


def lint_source(source: str, path: str = "<string>", selection: Selection | None = None,
                noqa: bool = True) -> list[Finding]:
    """Findings for one module's source text, sorted by position."""
    selection = selection or Selection()
    lines = source.splitlines()
    ctx = FileContext(path, lines)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings are the user's business, not ours
            tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        finding = SyntaxErrorFinding(path, exc.lineno or 1, max(exc.offset or 1, 1), exc.lineno or 1,
                                     max(exc.offset or 1, 1), exc.msg)
        return [finding] if selection.enabled(finding.code) else []
    except (ValueError, RecursionError, MemoryError) as exc:
        finding = SyntaxErrorFinding(path, 1, 1, 1, 1, f"{type(exc).__name__}: {exc}")
        return [finding] if selection.enabled(finding.code) else []

    findings: list[Finding] = []
    try:
        index = Index(tree)
    except Exception as exc:  # noqa: BLE001 - reported as a finding, never lost
        if os.environ.get("MAPSAFE_DEBUG"):
            raise
        return [InternalErrorFinding(path, 1, 1, 1, 1, "the scope index", f"{type(exc).__name__}: {exc}")]
    for module in RULE_MODULES:
        if not selection.any_enabled(module.CODES):
            continue
        try:
            for finding in module.check(index, ctx):
                findings.append(finding)
        except Exception as exc:  # noqa: BLE001 - one rule's crash must not lose the others' findings
            if os.environ.get("MAPSAFE_DEBUG"):
                raise
            findings.append(InternalErrorFinding(
                path, 1, 1, 1, 1, f"rule {'/'.join(module.CODES)}", f"{type(exc).__name__}: {exc}"
            ))
    kept = [f for f in findings if selection.enabled(f.code) and not (noqa and is_suppressed(f, lines))]
    kept = list(dict.fromkeys(kept))  # the same finding twice (one node reached two ways) is one finding
    kept.sort(key=Finding.sort_key)
    return kept


@dataclass
class FileResult:
    path: str
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None  # why the file could not be checked


@dataclass
class LintResult:
    """Everything one run found: findings, files that could not be read, and how many were checked."""

    findings: list[Finding] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    checked: int = 0

    @property
    def internal_errors(self) -> list[Finding]:
        return [f for f in self.findings if f.code == InternalErrorFinding.code]


def lint_file(path: str, selection: Selection | None = None) -> FileResult:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return FileResult(path, error=f"cannot read: {exc.strerror or exc}")
    try:
        source = decode_source(data)
    except SourceError as exc:
        return FileResult(path, error=str(exc))
    return FileResult(path, lint_source(source, path, selection))


def lint_paths(paths: Sequence[str], selection: Selection | None = None, excludes: Sequence[str] = ()) -> LintResult:
    """Lint files and folders; unreadable files are collected as errors, not raised."""
    result = LintResult()
    for path, problem in iter_python_files(paths, excludes):
        if problem is not None:
            result.errors.append((path, problem))
            continue
        one = lint_file(path, selection)
        if one.error is not None:
            result.errors.append((path, one.error))
            continue
        result.checked += 1
        result.findings.extend(one.findings)
    return result
