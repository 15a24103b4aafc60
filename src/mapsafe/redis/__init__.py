"""mapsafe.redis: RedisMap, SyncMap's API on a Redis server (the ``mapsafe[redis]`` extra)."""

try:
    import redis as _redis  # noqa: F401
except ImportError:  # pragma: no cover - depends on the install
    raise ImportError("mapsafe.redis needs redis-py: pip install 'mapsafe[redis]'") from None

from ..errors import ContentionError, MapMismatchError, PayloadError, RedisTimeout, RedisUnavailable
from ._codecs import JSONSerializer, MsgpackSerializer, Serializer, SignedPickleSerializer
from ._map import RedisMap

__all__ = [
    "RedisMap",
    "Serializer",
    "JSONSerializer",
    "MsgpackSerializer",
    "SignedPickleSerializer",
    "RedisUnavailable",
    "RedisTimeout",
    "ContentionError",
    "MapMismatchError",
    "PayloadError",
]
