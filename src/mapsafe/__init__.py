"""mapsafe: Go-grade map safety for Python threads."""

from ._version import __version__
from .errors import (
    ConfigError,
    ContentionError,
    DataRaceError,
    MapMismatchError,
    MapsafeError,
    PayloadError,
    RecursiveLoadError,
    RecursiveUpdateError,
    RedisTimeout,
    RedisUnavailable,
    UsageError,
)

try:
    from . import _core  # reads MAPSAFE_CORE: a bad value is a ConfigError
except ConfigError as _exc:
    import sys as _sys

    # Under the `mapsafe` command (or `python -m mapsafe`) that is a usage
    # error like any other: one line, exit 2. Imported by a program, it raises.
    if _sys.argv[:1] and _sys.argv[0].rsplit("/", 1)[-1] == "mapsafe" or getattr(_sys, "orig_argv", [])[1:3] == [
        "-m", "mapsafe",
    ]:
        from .cli import command_of as _command_of, error_line as _error_line

        _exc.hint = "set MAPSAFE_CORE to auto, c or python, or unset it"
        _sys.stderr.write(_error_line(_exc, _command_of(_sys.argv[1:])) + "\n")
        raise SystemExit(2) from None
    raise
from .cache import Cache, CacheInfo, CacheStats, CacheView
from .memo import cached
from .cowmap import CopyOnWriteMap
from .lockedmap import LockedMap
from .rwlock import RWLock
from .sentinels import DELETE, MISSING
from .shardedmap import ShardedMap
from .syncmap import SyncMap
from .weakvaluemap import WeakValueMap

__all__ = [
    "__version__",
    "SyncMap",
    "LockedMap",
    "ShardedMap",
    "RWLock",
    "Cache",
    "cached",
    "CacheStats",
    "CacheInfo",
    "CacheView",
    "WeakValueMap",
    "CopyOnWriteMap",
    "MISSING",
    "DELETE",
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
