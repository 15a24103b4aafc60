"""Run the rules over source text: parse once, index once, isolate each rule, apply noqa and selection."""

from __future__ import annotations

import ast
import contextlib
import gc
import io
import os
import sys
import tokenize
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from ..errors import UsageError
from . import rule_cache, rule_iteration, rule_threads
from .context import FileContext
from .cache import Cache, file_key, program_key
from .discover import iter_python_files
from .messages import RULES, Finding, InternalErrorFinding, SyntaxErrorFinding
from .program import Program, module_name_for
from .scopes import Index
from .threads import DEFAULT_MAX_DEPTH
from .suppress import is_suppressed

__all__ = ["Selection", "FileResult", "LintResult", "decode_source", "lint_source", "lint_file", "lint_paths"]

# (rule module, codes it can report): each runs isolated, so one crash loses only its own findings.
RULE_MODULES = (rule_iteration, rule_threads, rule_cache)
KNOWN_CODES = tuple(rule.code for rule in RULES)


OPT_IN_CODES = frozenset(rule.code for rule in RULES if rule.opt_in)


class Selection:
    """Which codes to report: --select / --ignore codes or prefixes; the longer match wins.

    With no --select, every rule runs except the opt-in ones (MS301); a --select that
    names one, by its code or a prefix of it (``MS3``, or ``MS`` for every rule), turns it on.
    """

    def __init__(self, select: Sequence[str] = (), ignore: Sequence[str] = ()) -> None:
        self.explicit = bool(select)
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
        if code in OPT_IN_CODES and not self.explicit:
            return False
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


# Rules that look at one module at a time; rule_threads looks at the whole program.
FILE_RULES = (rule_iteration, rule_cache)


class _Parsed:
    """One file read and indexed: its context, its Index (None if it does not parse) and its file-rule findings."""

    __slots__ = ("ctx", "index", "findings", "lines")

    def __init__(self, ctx: FileContext, index: Index | None, findings: list[Finding]) -> None:
        self.ctx = ctx
        self.index = index
        self.findings = findings
        self.lines = ctx.lines


def _parse(source: str, path: str, first_id: int = 0) -> _Parsed:
    """Parse and index one module (its rules run once the whole program is known)."""
    lines = source.splitlines()
    ctx = FileContext(path, lines)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings are the user's business, not ours
            tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        finding = SyntaxErrorFinding(path, exc.lineno or 1, max(exc.offset or 1, 1), exc.lineno or 1,
                                     max(exc.offset or 1, 1), exc.msg)
        return _Parsed(ctx, None, [finding])
    except (ValueError, RecursionError, MemoryError) as exc:
        return _Parsed(ctx, None, [SyntaxErrorFinding(path, 1, 1, 1, 1, f"{type(exc).__name__}: {exc}")])
    name, is_package = module_name_for(path) if path != "<string>" else ("", False)
    try:
        index = Index(tree, first_id, name, is_package)
        index.path = path
    except Exception as exc:  # noqa: BLE001 - reported as a finding, never lost
        if os.environ.get("MAPSAFE_DEBUG"):
            raise
        crash = InternalErrorFinding(path, 1, 1, 1, 1, "the scope index", f"{type(exc).__name__}: {exc}")
        return _Parsed(ctx, None, [crash])
    return _Parsed(ctx, index, [])


def _file_rules(one: _Parsed, selection: Selection) -> None:
    """The per-file rules (they resolve imported classes through the program one.index belongs to)."""
    index, ctx = one.index, one.ctx
    if index is None:
        return
    for module in FILE_RULES:
        if selection.any_enabled(module.CODES):
            one.findings.extend(_isolated(module.CODES, ctx.path, lambda: module.check(index, ctx)))


def _isolated(codes: Sequence[str], path: str, run) -> list[Finding]:
    """A rule's findings; if it crashes, one MS999 instead (one rule's crash must not lose the others')."""
    try:
        return list(run())
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("MAPSAFE_DEBUG"):
            raise
        return [InternalErrorFinding(path, 1, 1, 1, 1, f"rule {'/'.join(codes)}", f"{type(exc).__name__}: {exc}")]


def _thread_findings(program: Program, parsed: list[_Parsed], selection: Selection, max_depth: int,
                     thread_entries: Sequence[str] = (), warnings_out: list[str] | None = None) -> list[Finding]:
    """MS2xx over every parsed module at once."""
    if not selection.any_enabled(rule_threads.CODES):
        return []
    indexed = [p for p in parsed if p.index is not None]
    contexts = {p.index.module.id: p.ctx for p in indexed}
    where = indexed[0].ctx.path if len(indexed) == 1 else "<program>"
    unknown: list[str] = []
    found = _isolated(rule_threads.CODES, where,
                      lambda: rule_threads.check(program, contexts, max_depth, thread_entries, unknown))
    if warnings_out is not None:
        warnings_out.extend(f"thread-entries: {name!r} matches nothing in the linted files" for name in unknown)
    return found


def _analyse(parsed: list[_Parsed], selection: Selection, max_depth: int, thread_entries: Sequence[str],
             warnings_out: list[str], target: tuple[int, int] | None = None) -> list[Finding]:
    """Every rule over the parsed modules as one program: the per-file rules' findings go
    to each file's list, the whole-program ones are returned."""
    program = Program((p.index for p in parsed if p.index is not None), target)
    for one in parsed:
        _file_rules(one, selection)
    return _thread_findings(program, parsed, selection, max_depth, thread_entries, warnings_out)


def _kept(findings: list[Finding], lines: list[str], selection: Selection, noqa: bool) -> list[Finding]:
    kept = [f for f in findings if selection.enabled(f.code) and not (noqa and is_suppressed(f, lines))]
    kept = list(dict.fromkeys(kept))  # the same finding twice (one node reached two ways) is one finding
    kept.sort(key=Finding.sort_key)
    return kept


def lint_source(source: str, path: str = "<string>", selection: Selection | None = None,
                noqa: bool = True, max_depth: int = DEFAULT_MAX_DEPTH,
                target: tuple[int, int] | None = None) -> list[Finding]:
    """Findings for one module's source text alone, sorted by position. ``target``: the
    oldest Python the code runs on, such as (3, 11) (default: the running one)."""
    selection = selection or Selection()
    one = _parse(source, path)
    thread = _analyse([one], selection, max_depth, (), [], target)
    return _kept(one.findings + thread, one.lines, selection, noqa)


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
    warnings: list[str] = field(default_factory=list)  # e.g. a thread-entries name that matches nothing

    @property
    def internal_errors(self) -> list[Finding]:
        return [f for f in self.findings if f.code == InternalErrorFinding.code]


def _read(path: str) -> tuple[str | None, str | None]:
    """(source, None), or (None, why it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    try:
        return decode_source(data), None
    except SourceError as exc:
        return None, str(exc)


def lint_file(path: str, selection: Selection | None = None, max_depth: int = DEFAULT_MAX_DEPTH) -> FileResult:
    """One file alone (its imports of other files are not followed; lint_paths does that)."""
    source, error = _read(path)
    if source is None:
        return FileResult(path, error=error)
    return FileResult(path, lint_source(source, path, selection, max_depth=max_depth))


def lint_paths(paths: Sequence[str], selection: Selection | None = None, excludes: Sequence[str] = (),
               max_depth: int = DEFAULT_MAX_DEPTH, thread_entries: Sequence[str] = (),
               cache: Cache | None = None, progress: Callable[[str, int, int], None] | None = None,
               target: tuple[int, int] | None = None) -> LintResult:
    """Lint files and folders as one program; unreadable files are collected as errors, not raised.

    Thread code is followed across the linted files: a thread started in one
    file that calls into another makes that code thread code, and a map is the
    same map wherever the program reaches it. With a ``cache``, the findings of
    a run are kept under the hashes of every file's text and the options, so a
    re-run on an unchanged tree parses nothing; any change re-checks the whole
    program (a file's findings can depend on the others: classes, threads).
    ``progress(step, done, total)`` is called as files are read and parsed. ``target`` is the
    oldest Python the code runs on, such as (3, 11) (default: the running one).
    """
    selection = selection or Selection()
    result = LintResult()
    sources: list[tuple[str, str, str]] = []  # (path, source, file key)
    for path, problem in iter_python_files(paths, excludes):
        if problem is not None:
            result.errors.append((path, problem))
            continue
        source, error = _read(path)
        if source is None:
            result.errors.append((path, error))
            continue
        sources.append((path, source, file_key(path, source)))
        if progress is not None and len(sources) % 100 == 0:
            progress("reading", len(sources), 0)
    result.checked = len(sources)
    with _fewer_collections():
        return _lint_sources(sources, result, selection, max_depth, thread_entries, cache, progress,
                             target or sys.version_info[:2])


@contextlib.contextmanager
def _fewer_collections():
    """Run the cyclic GC less often while a run is under way, then restore the caller's thresholds.

    A run builds millions of acyclic objects (syntax trees, scopes, bindings) that live until it
    ends; each collection of the oldest generation walks them all again, which made a big run
    superlinear (x2.6 for twice the lines, against x2.0 with collections this rare), as mypy
    found for its own runs. A threshold of 0 (collection off) is left alone.
    """
    old = gc.get_threshold()
    if old[0] == 0:
        yield
        return
    gc.set_threshold(max(old[0], 100_000), max(old[1], 50), max(old[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _lint_sources(sources: list[tuple[str, str, str]], result: LintResult, selection: Selection, max_depth: int,
                  thread_entries: Sequence[str], cache: Cache | None,
                  progress: Callable[[str, int, int], None] | None, target: tuple[int, int]) -> LintResult:
    """lint_paths' work once the files are read."""
    pkey = program_key((key for _, _, key in sources), (max_depth, sorted(thread_entries), list(target)))
    hit = cache.get("run", pkey) if cache is not None else None
    if hit is not None:
        findings, notes = hit
    else:
        # With a cache every rule runs (the opt-in ones too), so that the entry holds every
        # code; the selection applies after.
        run_with = Selection(("MS",)) if cache is not None else selection
        parsed: list[_Parsed] = []
        next_id = 0
        for done, (path, source, _) in enumerate(sources, 1):
            if progress is not None and (done % 50 == 0 or done == len(sources)):
                progress("parsing", done, len(sources))
            one = _parse(source, path, next_id)
            if one.index is not None:
                next_id += len(one.index.scopes)
            parsed.append(one)
        notes = []
        if progress is not None:
            progress("analysing the whole program", len(sources), len(sources))
        findings = _analyse(parsed, run_with, max_depth, thread_entries, notes, target)
        for one in parsed:
            findings.extend(one.findings)
        if cache is not None and not any(f.code == InternalErrorFinding.code for f in findings):
            cache.put("run", pkey, findings, notes)
    result.warnings.extend(notes)
    by_path: dict[str, list[Finding]] = {path: [] for path, _, _ in sources}
    for finding in findings:
        home = by_path.get(finding.path)
        if home is not None:
            home.append(finding)
        else:
            result.findings.append(finding)  # an internal error of the whole-program pass
    for path, source, _ in sources:
        result.findings.extend(_kept(by_path[path], source.splitlines(), selection, True))
    return result
