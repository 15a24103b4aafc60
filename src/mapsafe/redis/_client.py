"""RedisMap's connection: a redis-py client whose commands are never retried, and its errors in mapsafe's terms."""

from __future__ import annotations

import threading
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import RedisTimeout, RedisUnavailable

__all__ = ["client_for", "Translate", "BytesRedis"]

if TYPE_CHECKING:
    from redis.commands.core import Script


class BytesPipeline(Protocol):
    """The part of a redis-py transaction pipeline RedisMap uses."""

    def __enter__(self) -> BytesPipeline: ...
    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None: ...
    def hset(self, name: bytes, *, mapping: dict[bytes, bytes]) -> Any: ...
    def set(self, name: bytes, value: bytes, px: int | None = None) -> Any: ...
    def execute_command(self, *args: Any) -> Any: ...
    def execute(self) -> list[Any]: ...


class BytesRedis(Protocol):
    """The part of ``redis.Redis`` RedisMap uses, on a pool with ``decode_responses=False``.

    redis-py types replies as ``bytes | str`` (str when a pool decodes);
    client_for's pools never decode, so here they are bytes.
    """

    @property
    def connection_pool(self) -> redis.ConnectionPool: ...
    def execute_command(self, *args: Any) -> Any: ...
    def register_script(self, script: str) -> Script: ...
    def pipeline(self, transaction: bool = True) -> BytesPipeline: ...
    def get(self, name: bytes) -> bytes | None: ...
    def getdel(self, name: bytes) -> bytes | None: ...
    def set(self, name: bytes, value: bytes, px: int | None = None) -> Any: ...
    def exists(self, *names: bytes) -> int: ...
    def delete(self, *names: bytes | str) -> int: ...
    def unlink(self, *names: bytes) -> int: ...
    def mget(self, keys: list[bytes]) -> list[bytes | None]: ...
    def scan(self, cursor: int = 0, match: str | None = None, count: int | None = None) -> tuple[int, list[bytes]]: ...
    def hget(self, name: bytes, key: bytes) -> bytes | None: ...
    def hset(self, name: bytes, key: bytes, value: bytes) -> int: ...
    def hexists(self, name: bytes, key: bytes) -> bool: ...
    def hdel(self, name: bytes, *keys: bytes) -> int: ...
    def hlen(self, name: bytes) -> int: ...
    def hgetall(self, name: bytes) -> dict[bytes, bytes]: ...
    def hscan(self, name: bytes, cursor: int = 0, count: int | None = None) -> tuple[int, dict[bytes, bytes]]: ...

# Source pool -> the pool RedisMaps built from it, so maps made from one
# client share one pool. Guarded by _pools_lock; entries die with the
# source pool (weak keys).
_pools: "weakref.WeakKeyDictionary[Any, redis.ConnectionPool]" = weakref.WeakKeyDictionary()
_pools_lock = threading.Lock()


def _no_retry() -> Retry:
    # A retried command whose first reply was lost runs twice on the
    # server: an HINCRBY counted twice. So a failure is reported, never retried.
    return Retry(NoBackoff(), 0)


def client_for(client_or_url: Any, timeout: float) -> tuple[BytesRedis, str]:
    """``(client, where)``: a client on a pool with retries off, and the server's address for messages.

    A URL gets a new pool with ``timeout`` as its socket and connect
    timeouts. A client you pass is used for its settings only: its pool
    may retry (redis-py's default since 6.0 retries three times) and may
    decode replies, so the map runs on a pool of its own with the same
    address, credentials and TLS options, but no retries and bytes replies.
    """
    if isinstance(client_or_url, str):
        try:
            pool = redis.ConnectionPool.from_url(client_or_url, retry=_no_retry(), socket_timeout=timeout,
                                                 socket_connect_timeout=timeout, decode_responses=False)
        except ValueError as exc:
            raise RedisUnavailable(f"bad Redis URL {client_or_url!r}: {exc}") from exc
        client = redis.Redis(connection_pool=pool)
    elif isinstance(client_or_url, redis.Redis):
        source = client_or_url.connection_pool
        with _pools_lock:
            shared = _pools.get(source)
            if shared is None:
                kwargs = dict(source.connection_kwargs)
                kwargs.update(retry=_no_retry(), decode_responses=False)
                if kwargs.get("socket_timeout") is None:
                    kwargs["socket_timeout"] = timeout
                if kwargs.get("socket_connect_timeout") is None:
                    kwargs["socket_connect_timeout"] = timeout
                shared = _pools[source] = type(source)(connection_class=source.connection_class,
                                                       max_connections=source.max_connections, **kwargs)
            pool = shared
        client = redis.Redis(connection_pool=pool)
    else:
        raise TypeError(f"RedisMap needs a redis.Redis client or a redis:// URL, not {type(client_or_url).__name__}")
    kwargs = pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    return cast("BytesRedis", client), where  # its pool never decodes: replies are bytes


class Translate:
    """``with translate:`` turns redis-py's connection errors into RedisUnavailable or RedisTimeout.

    One instance per map, shared by its threads: it keeps no state per use.
    """

    __slots__ = ("where", "timeout")

    def __init__(self, where: str, timeout: float) -> None:
        self.where = where  # "host:port" or a socket path; read-only
        self.timeout = timeout  # seconds; read-only

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if kind is None:
            return False
        if issubclass(kind, redis.exceptions.TimeoutError):
            raise RedisTimeout(f"Redis at {self.where} did not answer within {self.timeout:g}s") from exc
        if issubclass(kind, redis.exceptions.ConnectionError):
            raise RedisUnavailable(f"Redis at {self.where} is unavailable: {exc}") from exc
        if issubclass(kind, redis.exceptions.ResponseError) and str(exc).startswith("BUSY"):
            # Another client's long script holds the server: as good as a timeout.
            raise RedisTimeout(f"Redis at {self.where} is busy running a script: {exc}") from exc
        return False
