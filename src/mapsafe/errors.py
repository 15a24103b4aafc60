"""The one exception hierarchy: every error mapsafe raises on purpose."""

from __future__ import annotations

__all__ = [
    "MapsafeError",
    "UsageError",
    "ConfigError",
    "RecursiveUpdateError",
    "RecursiveLoadError",
    "DataRaceError",
]


class MapsafeError(Exception):
    """Base of every error mapsafe raises on purpose.

    ``slug`` is a short, stable name for the error kind: the CLI prints it so
    users can search the README for it. ``exit_code`` is what the CLI exits
    with when this error ends a command.
    """

    slug = "error"
    exit_code = 2


class UsageError(MapsafeError):
    """The command line was wrong: an unknown option value, a missing file."""

    slug = "usage"


class ConfigError(MapsafeError):
    """A ``[tool.mapsafe]`` table, ``MAPSAFE_*`` variable or flag had a bad value."""

    slug = "config"


class RecursiveUpdateError(MapsafeError, RuntimeError):
    """A compute-family callback tried to write the key it is computing.

    Like Java's ``ConcurrentHashMap`` ("Recursive update"), mapsafe refuses
    rather than silently losing one of the two updates or deadlocking.
    """

    slug = "recursive-update"


class RecursiveLoadError(MapsafeError, RuntimeError):
    """A loader asked for a key whose load waits, directly or through other loads, on itself.

    Waiting would never end: the load cannot finish before the loader
    returns. Raised in the thread that would have waited, so the loader sees
    it and can fall back; nothing is cached for the key.
    """

    slug = "recursive-load"


class DataRaceError(MapsafeError, RuntimeError):
    """Raised in the offending thread by ``mapsafe race --halt-on-error``."""

    slug = "data-race"
    exit_code = 66
