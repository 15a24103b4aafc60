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
        help="raise DataRaceError in the offending thread at the first race",
    )
    parser.add_argument("--strip-path-prefix", metavar="PREFIX", help="remove PREFIX from reported file names")
    parser.add_argument("--suppress", metavar="FILE", help="suppressions file (file:, func:, line:, race: rules)")
    parser.add_argument(
        "--include", action="append", metavar="PATTERN",
        help="also instrument these packages or path globs (repeatable)",
    )
    parser.add_argument(
        "target", nargs=argparse.REMAINDER, metavar="SCRIPT [ARGS...]",
        help="the program and its arguments, as you would give them to python",
    )


def run(args: argparse.Namespace) -> int:
    from .runner import Options, Session  # imported late: `mapsafe --help` stays light

    if not args.target:
        raise UsageError("mapsafe race: expected SCRIPT [ARGS...] or -m MODULE [ARGS...]")
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
    session = Session(options)
    target, *rest = args.target
    if args.as_module:
        return session.run_module(target, rest)
    return session.run_script(target, rest)
