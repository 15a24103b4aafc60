"""`mapsafe race`: command-line front end (not implemented yet)."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = "mapsafe race (not implemented yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    print("mapsafe race: not implemented yet", file=sys.stderr)
    return 2
