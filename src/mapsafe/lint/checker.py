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
        if "unknown encoding" in str(exc):
            raise SourceError(f"cannot decode it: {exc}") from None
        encoding = "utf-8"  # bad bytes in the first two lines: say which, below
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
                noqa: bool = True, incoming: list[tuple[str, str, bool]] | None = None,
                outgoing: list[tuple[str, str, bool]] | None = None) -> list[Finding]:
    """Findings for one module's source text, sorted by position.

    ``incoming`` names functions of this module that other files run on
    threads; ``outgoing``, if given, receives the imported functions this
    module runs on threads (see lint_paths).
    """
    selection = selection or Selection()
    lines = source.splitlines()
    ctx = FileContext(path, lines, incoming)
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
    if outgoing is not None:
        outgoing.extend(ctx.outgoing)
    kept = [f for f in findings if selection.enabled(f.code) and not (noqa and is_suppressed(f, lines))]
    kept = list(dict.fromkeys(kept))  # the same finding twice (one node reached two ways) is one finding
    kept.sort(key=Finding.sort_key)
    return kept


@dataclass
class FileResult:
    path: str
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None  # why the file could not be checked
    outgoing: list[tuple[str, str, bool]] = field(default_factory=list)  # imported functions run on threads


@dataclass
class LintResult:
    """Everything one run found: findings, files that could not be read, and how many were checked."""

    findings: list[Finding] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    checked: int = 0

    @property
    def internal_errors(self) -> list[Finding]:
        return [f for f in self.findings if f.code == InternalErrorFinding.code]


def lint_file(path: str, selection: Selection | None = None,
              incoming: list[tuple[str, str, bool]] | None = None) -> FileResult:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return FileResult(path, error=f"cannot read: {exc.strerror or exc}")
    try:
        source = decode_source(data)
    except SourceError as exc:
        return FileResult(path, error=str(exc))
    outgoing: list[tuple[str, str, bool]] = []
    findings = lint_source(source, path, selection, incoming=incoming, outgoing=outgoing)
    return FileResult(path, findings, outgoing=outgoing)


def module_name(path: str) -> str:
    """'pkg.sub.mod' for 'src/pkg/sub/mod.py' (folders above the package included: matched by suffix)."""
    parts = [p for p in path.replace(os.sep, "/").split("/") if p not in ("", ".", "..")]
    if parts and parts[-1].endswith(".py"):
        parts[-1] = parts[-1][:-3]
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(name: str, importer: str, importer_path: str) -> str:
    """Resolve a relative import ('.mod.func', '..pkg.func') against the importing file's package."""
    level = len(name) - len(name.lstrip("."))
    if level == 0:
        return name
    package = importer.split(".")
    if not importer_path.endswith("__init__.py"):
        package = package[:-1]
    package = package[: len(package) - (level - 1)] if level > 1 else package
    rest = name[level:]
    return ".".join([*package, rest] if rest else package)


def _route(outgoing: dict[str, list[tuple[str, str, bool]]]) -> dict[str, list[tuple[str, str, bool]]]:
    """For each linted file, the functions in it that other linted files run on threads."""
    modules = {path: module_name(path) for path in outgoing}
    incoming: dict[str, list[tuple[str, str, bool]]] = {}
    for source_path, wanted in outgoing.items():
        for name, how, multi in wanted:
            dotted = _absolute(name, modules[source_path], source_path)
            parts = dotted.split(".")
            for cut in range(len(parts) - 1, 0, -1):
                module, qualname = ".".join(parts[:cut]), ".".join(parts[cut:])
                for path, mod in modules.items():
                    if path != source_path and (mod == module or mod.endswith("." + module)):
                        incoming.setdefault(path, []).append((qualname, how, multi))
    return incoming


def lint_paths(paths: Sequence[str], selection: Selection | None = None, excludes: Sequence[str] = ()) -> LintResult:
    """Lint files and folders; unreadable files are collected as errors, not raised.

    Thread code is followed across the linted files, best effort: when a file
    runs an imported function on a thread (or calls one from thread code),
    the file defining it is checked again with that function as thread code.
    """
    selection = selection or Selection()
    result = LintResult()
    per_file: dict[str, list[Finding]] = {}
    outgoing: dict[str, list[tuple[str, str, bool]]] = {}
    for path, problem in iter_python_files(paths, excludes):
        if problem is not None:
            result.errors.append((path, problem))
            continue
        one = lint_file(path, selection)
        if one.error is not None:
            result.errors.append((path, one.error))
            continue
        result.checked += 1
        per_file[path] = one.findings
        outgoing[path] = one.outgoing
    if selection.any_enabled(rule_threads.CODES) and any(outgoing.values()):
        for path, entries in _route(outgoing).items():
            again = lint_file(path, selection, incoming=entries)
            if again.error is None:
                per_file[path] = again.findings
    for findings in per_file.values():
        result.findings.extend(findings)
    return result
