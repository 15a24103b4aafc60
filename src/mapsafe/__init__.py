"""mapsafe: Go-grade map safety for Python threads."""

from ._version import __version__
from .errors import (
    ConfigError,
    DataRaceError,
    MapsafeError,
    RecursiveUpdateError,
    UsageError,
)
from .lockedmap import LockedMap
from .rwlock import RWLock
from .sentinels import DELETE, MISSING
from .shardedmap import ShardedMap
from .syncmap import SyncMap

__all__ = [
    "__version__",
    "SyncMap",
    "LockedMap",
    "ShardedMap",
    "RWLock",
    "MISSING",
    "DELETE",
    "MapsafeError",
    "UsageError",
    "ConfigError",
    "RecursiveUpdateError",
    "DataRaceError",
]
