"""`mapsafe lint`: command-line front end (arguments, config, output, exit codes)."""

from __future__ import annotations

import argparse
import os
import sys

from ..config import load
from ..errors import UsageError
from . import report_json, report_sarif, report_text
from .cache import Cache
from .checker import LintResult, Selection, lint_paths, lint_source
from .messages import RULES

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Statically check Python code for unsafe dict use: changing a dict while iterating it (MS101), "
    "unprotected writes, iteration and check-then-act on dicts shared between threads (MS201-MS203), "
    "one shared dict guarded by different locks (MS204), "
    "and, opt-in, unbounded memo caches (MS301). The code is parsed, never imported or run."
)
FORMATS = {"text": report_text, "json": report_json, "sarif": report_sarif}
_FORMAT_OF_EXTENSION = {".json": "json", ".sarif": "sarif"}


def _codes(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="files and folders to lint, or - for one module on stdin (default: .)")
    parser.add_argument("--format", choices=sorted(FORMATS), default=None,
                        help="report format (default: from --output's extension, .json or .sarif, else text; "
                             "config lint.format)")
    parser.add_argument("--output", "-o", metavar="FILE", default=None, help="write the report here, not stdout")
    parser.add_argument("--target-version", metavar="3.N", default=None,
                        help="oldest Python the checked code runs on (default: the floor of [project] "
                             "requires-python, else the running Python; config lint.target-version)")
    parser.add_argument("--select", metavar="CODES", default=None,
                        help="comma-separated rule codes or prefixes to report (default: all but the "
                             "opt-in MS301; MS for every rule)")
    parser.add_argument("--ignore", metavar="CODES", default=None,
                        help="comma-separated rule codes or prefixes not to report")
    parser.add_argument("--exclude", metavar="GLOBS", default=None,
                        help="comma-separated path globs not to lint (adds to .git, venvs, build, dist)")
    parser.add_argument("--max-call-depth", metavar="N", default=None,
                        help="calls followed from a thread's entry (default: 16; config lint.max-call-depth)")
    parser.add_argument("--thread-entries", metavar="NAMES", default=None,
                        help="comma-separated thread entries the linter cannot see: 'pkg.mod:func' runs on a "
                             "thread, 'lib.Client.add_callback' runs its first argument on one")
    parser.add_argument("--docs-url", metavar="URL", default=None,
                        help="where the mapsafe docs site is served: each SARIF rule links its page "
                             "(helpUri, URL/lint/ms201/); config lint.docs-url")
    parser.add_argument("--no-cache", dest="cache", action="store_const", const=False, default=None,
                        help="neither read nor write .mapsafe_cache/ (config lint.cache)")
    parser.add_argument("--list-rules", action="store_true", help="print the rules and exit")
    parser.epilog = (
        "Exit codes: 0 no findings, 1 findings, 2 usage error, nothing could be checked, or internal error. "
        "Silence one line with '# noqa: MS201' or '# mapsafe: ignore[MS201]'."
    )


class _Progress:
    """One status line on a terminal's stderr ('mapsafe lint: parsing 1200/5000 files'), erased at the end."""

    def __init__(self) -> None:
        self.width = 0

    def __call__(self, step: str, done: int, total: int) -> None:
        text = f"mapsafe lint: {step} {done}/{total} files" if total else f"mapsafe lint: {step} {done} files"
        sys.stderr.write("\r" + text.ljust(self.width))
        sys.stderr.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from ..cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE

    if args.list_rules:
        for rule in RULES:
            print(f"{rule.code}  {rule.name:34} {'(opt-in: --select ' + rule.code + ') ' if rule.opt_in else ''}"
                  f"{rule.summary}")
        return EXIT_OK
    cfg = load(["lint"], flags={
        "lint_select": args.select,
        "lint_ignore": args.ignore,
        "lint_exclude": args.exclude,
        "lint_format": args.format,
        "lint_max_call_depth": args.max_call_depth,
        "lint_thread_entries": args.thread_entries,
        "lint_cache": args.cache,
        "lint_target_version": args.target_version,
        "lint_docs_url": args.docs_url,
    })
    if cfg.lint_max_call_depth < 1:
        raise UsageError(f"max-call-depth must be at least 1, got {cfg.lint_max_call_depth} "
                         f"from {cfg.source['lint_max_call_depth']}")
    if cfg.lint_format not in FORMATS:
        raise UsageError(f"unknown format {cfg.lint_format!r} from {cfg.source['lint_format']} "
                         f"(choose from {', '.join(sorted(FORMATS))})")
    fmt = cfg.lint_format
    if args.output and cfg.source["lint_format"] == "default":
        fmt = _FORMAT_OF_EXTENSION.get(os.path.splitext(args.output)[1].lower(), fmt)  # -o out.sarif: SARIF
    selection = Selection(cfg.lint_select, cfg.lint_ignore)
    target = tuple(int(part) for part in cfg.lint_target_version.split(".")) if cfg.lint_target_version else None
    if "-" in args.paths:
        if args.paths != ["-"]:
            raise UsageError("'-' (stdin) cannot be linted together with other paths")
        result = _lint_stdin(selection, cfg.lint_max_call_depth, target)
    else:
        cache = Cache(".") if cfg.lint_cache else None
        progress = _Progress() if sys.stderr.isatty() else None
        try:
            result = lint_paths(args.paths or ["."], selection, cfg.lint_exclude, cfg.lint_max_call_depth,
                                cfg.lint_thread_entries, cache, progress, target)
        finally:
            if progress is not None:
                progress.clear()
    for warning in result.warnings:
        print(f"mapsafe lint: warning: {warning}", file=sys.stderr)

    if result.checked == 0 and len(result.errors) == 1:
        path, reason = result.errors[0]
        print(f"mapsafe lint: error: {path}: {reason} (see 'mapsafe lint --help')", file=sys.stderr)  # misuse
        return EXIT_USAGE
    for path, reason in result.errors:
        print(f"mapsafe lint: {path}: {reason}", file=sys.stderr)
    if result.checked == 0 and not result.errors:
        where = ", ".join(args.paths or ["."])
        print(f"mapsafe lint: error: no Python files checked in {where} (it is empty, or --exclude and "
              "lint.exclude leave nothing)",
              file=sys.stderr)
        return EXIT_USAGE
    if fmt == "sarif":  # only SARIF links rules to their pages
        report = report_sarif.render(result.findings, result.errors, docs_url=cfg.lint_docs_url)
    else:
        report = FORMATS[fmt].render(result.findings, result.errors)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(report)
        except OSError as exc:
            raise UsageError(f"cannot write --output {args.output!r}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(report)
        sys.stdout.flush()

    for crash in result.internal_errors:
        print(f"mapsafe lint: internal error: {crash.path}: {crash.message}", file=sys.stderr)
    if result.internal_errors:
        return EXIT_USAGE
    if result.errors and result.checked == 0:
        print(f"mapsafe lint: error: none of the {len(result.errors)} path(s) could be checked (the lines above "
              "say why)", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_FINDINGS if result.findings else EXIT_OK


def _lint_stdin(selection: Selection, max_depth: int, target: tuple[int, int] | None) -> LintResult:
    """`mapsafe lint -`: one module read from stdin, reported as ``<stdin>``."""
    data = sys.stdin.buffer.read()
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return LintResult(errors=[("<stdin>", f"not UTF-8 text ({exc.reason} at byte {exc.start})")])
    return LintResult(findings=lint_source(source, "<stdin>", selection, max_depth=max_depth, target=target),
                      checked=1)
