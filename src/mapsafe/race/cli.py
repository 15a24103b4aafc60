"""`mapsafe race`: run a program under the dict race detector."""

from __future__ import annotations

import argparse
import os

from .. import config
from ..cli import EXIT_RACES
from ..errors import UsageError

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Run SCRIPT (or -m MODULE) as __main__ and report every unsynchronized, conflicting "
    "access to a dict from two threads, with both stacks. "
    f"Exits {EXIT_RACES} when races were found and the program itself exited 0."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-m", dest="as_module", action="store_true",
        help="run a library module as a script: the first ARG is the module name",
    )
    parser.add_argument("-c", dest="code", metavar="CODE", help="run CODE as __main__, as python -c does")
    parser.add_argument(
        "--exitcode", type=int, metavar="N", help=f"exit status when races were found (default {EXIT_RACES})"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the races to FILE as JSON")
    parser.add_argument(
        "--history", metavar="N",
        help=f"key states remembered per map (default {config.default('race_history')}); "
        "past N the oldest are forgotten",
    )
    parser.add_argument(
        "--halt-on-error", action="store_true", default=None,
        help="at the first race, report it and exit with the race status (no handler in the program runs)",
    )
    parser.add_argument("--strip-path-prefix", metavar="PREFIX", help="remove PREFIX from reported file names")
    parser.add_argument("--suppress", metavar="FILE", help="suppressions file (file:, func:, line:, race: rules)")
    parser.add_argument(
        "--include", action="append", metavar="PATTERN",
        help="also instrument these packages or path globs (repeatable)",
    )
    parser.add_argument(
        "target", nargs=argparse.REMAINDER, metavar="SCRIPT [ARGS...]",
        help="the program and its arguments, as you would give them to python: a file, a directory "
        "with __main__.py, or - for standard input",
    )


def run(args: argparse.Namespace) -> int:
    from .runner import Options, Session  # imported late: `mapsafe --help` stays light

    if args.code is not None and args.as_module:
        raise UsageError("-c and -m cannot be used together")
    if not args.target and args.code is None:
        raise UsageError("expected SCRIPT [ARGS...], -m MODULE [ARGS...] or -c CODE [ARGS...]")
    cfg = config.load(
        ["race"],
        flags={
            "race_exitcode": args.exitcode,
            "race_include": args.include,
            "race_suppress": args.suppress,
            "race_strip_path_prefix": args.strip_path_prefix,
            "race_halt_on_error": args.halt_on_error,
            "race_json": args.json,
            "race_history": args.history,
        },
    )
    options = Options(
        exitcode=cfg.race_exitcode,
        include=list(cfg.race_include),
        suppress=cfg.race_suppress,
        strip_path_prefix=cfg.race_strip_path_prefix,
        halt_on_error=cfg.race_halt_on_error,
        history=cfg.race_history,
        # Absolute now: the program may chdir() before the report is written.
        json=os.path.abspath(cfg.race_json) if cfg.race_json else "",
    )
    if options.json:
        _check_writable(options.json)  # before the program runs: its exit status must not be lost to it
    session = Session(options)
    if args.code is not None:
        return session.run_source(args.code, "<string>", "-c", args.target)
    target, *rest = args.target
    if args.as_module:
        return session.run_module(target, rest)
    return session.run_script(target, rest)


def _check_writable(path: str) -> None:
    """A UsageError unless the --json report can be written at ``path`` (its directory exists and is
    writable, and it is not a directory or a read-only file)."""
    directory = os.path.dirname(path) or os.curdir
    if os.path.isdir(path):
        reason = "it is a directory"
    elif not os.path.isdir(directory):
        reason = f"no such directory {directory!r}"
    elif os.path.exists(path) and not os.access(path, os.W_OK):
        reason = "permission denied"
    elif not os.path.exists(path) and not os.access(directory, os.W_OK | os.X_OK):
        reason = f"permission denied in {directory!r}"
    else:
        return
    raise UsageError(f"cannot write the --json report to {path!r}: {reason}")
