"""The `mapsafe` command: a table of subcommands and named exit codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn, Sequence

from ._version import __version__
from .errors import MapsafeError

__all__ = ["main", "command_of", "error_line", "EXIT_OK", "EXIT_FINDINGS", "EXIT_USAGE", "EXIT_RACES",
           "EXIT_INTERRUPTED"]

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

    command: str | None = None  # on the top-level parser: the subcommand being parsed, for its errors

    def error(self, message: str) -> NoReturn:
        # The top-level parser reports a subcommand's unrecognized arguments: under that command's name.
        prog = f"mapsafe {self.command}" if self.command and self.prog == "mapsafe" else self.prog
        self.exit(EXIT_USAGE, f"{prog}: error: {message} (see '{prog} --help')\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported, to keep start-up short."""
    parser = _Parser(
        prog="mapsafe",
        description="Go-grade map safety for Python threads.",
        epilog="Exit codes: 0 ok, 1 lint findings, 2 usage or internal error, 66 data races found.",
    )
    from ._core import LABEL as CORE_LABEL  # here, not at import: `import mapsafe` reports a bad MAPSAFE_CORE itself

    parser.command = command if command in COMMANDS else None
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


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names: top-level options are all flags, so it is the first other word."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    return word if word in COMMANDS else None


def error_line(exc: BaseException, command: str | None) -> str:
    """The one line every deliberate error is printed as: ``mapsafe <cmd>: error: <what> (<hint>)``."""
    prog = f"mapsafe {command}" if command else "mapsafe"
    what = str(exc)
    for prefix in (f"{prog}: ", "mapsafe: "):  # a message written with its own prefix is not prefixed twice
        if what.startswith(prefix):
            what = what[len(prefix):]
    hint = getattr(exc, "hint", "") or f"see '{prog} --help'"
    return f"{prog}: error: {what} ({hint})"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and ``python -m mapsafe``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = command_of(argv)
    parser = build_parser(command)
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return int(args._run(args))
    except MapsafeError as exc:
        print(error_line(exc, command), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{'mapsafe ' + command if command else 'mapsafe'}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # never a traceback from mapsafe's internals
        if os.environ.get("MAPSAFE_DEBUG"):
            raise
        print(
            f"{'mapsafe ' + command if command else 'mapsafe'}: internal error: {type(exc).__name__}: {exc} "
            "(please report it; set MAPSAFE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
