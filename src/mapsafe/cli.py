"""The `mapsafe` command: a table of subcommands and named exit codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from ._core import LABEL as CORE_LABEL
from ._version import __version__
from .errors import MapsafeError

__all__ = ["main", "EXIT_OK", "EXIT_FINDINGS", "EXIT_USAGE", "EXIT_RACES", "EXIT_INTERRUPTED"]

EXIT_OK = 0  # nothing found, or the user's program exited 0
EXIT_FINDINGS = 1  # lint found something
EXIT_USAGE = 2  # bad command line, bad config, unreadable input, internal error
EXIT_RACES = 66  # race found (Go's default); `mapsafe race --exitcode` changes it
EXIT_INTERRUPTED = 130  # Ctrl-C

# name -> (module with add_arguments(parser) and run(args) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "race": ("mapsafe.race.cli", "run a program under the dict race detector"),
    "lint": ("mapsafe.lint.cli", "statically check code for unsafe shared-dict use"),
    "bench": ("mapsafe.bench.cli", "benchmark the concurrent maps side by side and recommend one"),
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command, exit 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported, to keep start-up short."""
    parser = _Parser(
        prog="mapsafe",
        description="Go-grade map safety for Python threads.",
        epilog="Exit codes: 0 ok, 1 lint findings, 2 usage or internal error, 66 data races found.",
    )
    parser.add_argument("--version", action="version", version=f"mapsafe {__version__} ({CORE_LABEL})")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, summary) in COMMANDS.items():
        sub = subs.add_parser(name, help=summary, description=summary)
        if name == command:
            module = importlib.import_module(module_name)
            sub.description = getattr(module, "DESCRIPTION", summary)
            module.add_arguments(sub)
            sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and ``python -m mapsafe``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Top-level options are all flags, so the first other word is the command.
    parser = build_parser(next((arg for arg in argv if not arg.startswith("-")), None))
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return int(args._run(args))
    except MapsafeError as exc:
        print(f"mapsafe: error: {exc} [{exc.slug}]", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mapsafe: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # never a traceback from mapsafe's internals
        if os.environ.get("MAPSAFE_DEBUG"):
            raise
        print(
            f"mapsafe: internal error: {type(exc).__name__}: {exc} "
            "(please report it; set MAPSAFE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
