"""The one exception hierarchy: every error mapsafe raises on purpose."""

from __future__ import annotations

__all__ = [
    "MapsafeError",
    "UsageError",
    "ConfigError",
    "RecursiveUpdateError",
    "RecursiveLoadError",
    "DataRaceError",
    "ContentionError",
    "RedisUnavailable",
    "RedisTimeout",
    "MapMismatchError",
    "PayloadError",
]


class MapsafeError(Exception):
    """Base of every error mapsafe raises on purpose.

    ``slug`` is a short, stable name for the error kind. ``exit_code`` is
    what the CLI exits with when this error ends a command, and ``hint``
    what it prints after the message (see ``mapsafe.cli.error_line``).
    """

    slug = "error"
    exit_code = 2
    # What to do about it, printed in parentheses after the message by the
    # CLI; "" gives "see 'mapsafe <command> --help'".
    hint = ""


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
    """Raised in the offending thread by a race ``Detector`` made with ``halt_on_error`` and no ``halt``
    callback (the detector used as a library).

    ``mapsafe race --halt-on-error`` does not raise it: it reports and ends the
    process, because a program's ``except Exception`` would swallow an exception.
    """

    slug = "data-race"
    exit_code = 66


class ContentionError(MapsafeError, RuntimeError):
    """An optimistic update (a RedisMap ``compute``) lost every one of its bounded retries."""

    slug = "contention"


class RedisUnavailable(MapsafeError, ConnectionError):
    """The Redis server could not be reached, or dropped the connection; ``__cause__`` says why.

    The operation may or may not have been applied on the server (the reply
    was lost); mapsafe never retries it, so it was applied at most once.
    """

    slug = "redis-unavailable"
    hint = "check that a Redis server is running and reachable at that address; nothing is retried"


class RedisTimeout(RedisUnavailable, TimeoutError):
    """The Redis server did not answer within the map's ``timeout``."""

    slug = "redis-timeout"


class MapMismatchError(MapsafeError, ValueError):
    """A RedisMap was opened with a serializer or layout other than the one its data was written with."""

    slug = "map-mismatch"


class PayloadError(MapsafeError, ValueError):
    """Bytes read from Redis that the map's serializer refuses (a failed HMAC check, or not its format)."""

    slug = "bad-payload"
