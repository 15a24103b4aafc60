"""Implementation adapters: one tiny uniform interface per concurrent-map idiom."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import sys
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Protocol

    class _AtomicDict(Protocol):
        """What the adapter calls on a cereggii.AtomicDict or its ThreadHandle (cereggii has no type hints)."""

        def get(self, key: int, /) -> int | None: ...

        def __getitem__(self, key: int, /) -> int: ...

        def __setitem__(self, key: int, value: int, /) -> None: ...

        def __delitem__(self, key: int, /) -> None: ...

        def reduce_sum(self, pairs: Iterable[tuple[int, int]], /) -> None: ...

        def compare_and_set(self, key: int, expected: object, desired: int, /) -> None: ...

        def fast_iter(self) -> Iterable[tuple[int, int]]: ...

__all__ = ["Adapter", "ServerAdapter", "CacheAdapter", "Impl", "IMPLEMENTATIONS", "BASELINE", "UNSAFE", "LRU",
           "RAW_REDIS", "REDIS_MAP", "THROWAWAY_PREFIX", "by_name", "on_server"]

BASELINE = "dict+Lock"  # every ops/s ratio in the tables is against this one
UNSAFE = "dict (unsafe)"  # shown to make lost updates visible; never recommended
LRU = "lru_cache"  # functools.lru_cache: the hit-rate and memory tables' reference
REDIS_MAP = "RedisMap"
RAW_REDIS = "redis-py"  # plain HGET/HSET/HINCRBY on one hash: the Redis tables' reference
THROWAWAY_PREFIX = "mapsafe-bench-"  # every Redis key a run makes has it (in RedisMap's {tag} or at the start)


@dataclass(frozen=True)
class Adapter:
    """The operations a workload may call, bound outside the timed loops.

    Every callable is the idiom a user of that implementation would write,
    so the harness around it costs the same for all implementations. Each
    worker thread calls :meth:`for_thread` before its timed loop and uses
    what it returns; building, filling and checking use the adapter itself.
    Keys and values are ints, as the workloads make them.

    * ``get(k)``: the value, or None when absent (workloads never store None);
    * ``put(k, v)``, ``delete(k)`` (an absent key is fine);
    * ``incr(k)``: add 1 to an int counter, treating absent as 0;
    * ``load_or_store(k, v)``: the value now in the map for ``k``;
    * ``iterate(visit)``: call ``visit(k, v)`` (which returns True) per entry;
    * ``snapshot()``: a plain dict copy, used only to verify, never timed.
    """

    get: Callable[[int], int | None]
    put: Callable[[int, int], None]
    delete: Callable[[int], None]
    incr: Callable[[int], object]  # what it returns is ignored
    load_or_store: Callable[[int, int], int]
    iterate: Callable[[Callable[[int, int], bool]], None]
    snapshot: Callable[[], dict[int, int]]
    # Makes a thread its own adapter over the same map, called in that
    # thread; None: threads share these callables.
    per_thread: Callable[[], Adapter] | None = None

    def for_thread(self) -> Adapter:
        """The adapter the calling thread should use: its own callables, where they matter.

        On free-threaded CPython, calling an object shared between threads
        changes its reference count atomically, on a cache line that every
        thread writes, so callables bound once for all threads would measure
        that contention as well as the map. A callable that a thread makes
        itself is counted locally.
        """
        return self if self.per_thread is None else self.per_thread()


@dataclass(frozen=True)
class ServerAdapter(Adapter):
    """An Adapter over a map that lives in a server (Redis), with two more calls, never timed.

    * ``put_all(d)``: store every pair of ``d`` in a few round trips (the
      fill; one round trip per key would take longer than the round);
    * ``close()``: remove the map's keys from the server and let go of the
      connections; the runner calls it once after each round, Ctrl-C
      included, so a run leaves the server as it found it.
    """

    put_all: Callable[[dict[int, int]], None] | None = None
    close: Callable[[], None] | None = None


@dataclass(frozen=True)
class CacheAdapter:
    """A cache in front of one loader, as the cache workloads call it.

    * ``get(k)``: the cached value of ``k``, the loader's on a miss, through
      the idiom a user of that cache writes (the decorated function,
      ``cache.get(k, loader)``, ``cache[k]``);
    * ``size()``: the entries held, for the bound and memory checks, never timed.

    The builders set those two (and ``per_thread``, as for Adapter); the
    workload that built the cache adds the rest, for its checks.
    """

    get: Callable[[int], int]
    size: Callable[[], int]
    per_thread: Callable[[], CacheAdapter] | None = None
    loader: Any = None  # the loader the cache was built around (the workload's: a Loader, or any callable)
    call_once: bool = False  # the implementation promises one load per key, however many threads ask
    bound: int | None = None  # the most entries it may hold; None: unbounded

    def for_thread(self) -> CacheAdapter:
        """As :meth:`Adapter.for_thread`: the calling thread's own callables, where they matter."""
        return self if self.per_thread is None else self.per_thread()


@dataclass(frozen=True)
class Impl:
    """A named implementation: how to build a fresh map or cache, and what it needs.

    ``build`` makes a map for the map workloads and ``cache`` a cache for the
    cache workloads; an implementation has one or both. One that keeps its
    map in a Redis server has ``server_build(url)`` instead, and no
    ``build`` until :func:`on_server` gives it the ``--redis`` URL.
    """

    name: str
    build: Callable[[], Adapter] | None  # a fresh, empty map behind the interface
    requires: str = ""  # module that must import, or "" for none
    note: str = ""  # why it might be missing, shown with the skip reason
    # (maxsize, loader) -> a fresh, empty cache of at most maxsize entries over loader
    cache: Callable[[int, Callable[[int], int]], CacheAdapter] | None = None
    call_once: bool = False  # its cache promises one load per key (the stampede workload checks it)
    bounded: bool = True  # its cache honours maxsize (the hit-rate workloads need a bound)
    workloads: tuple[str, ...] = ()  # only these workloads; (): every workload it can run
    check: Callable[[], str] | None = None  # after the import: why it cannot run here, or ""
    server_build: Callable[[str], ServerAdapter] | None = None  # url -> a fresh, empty map on that server

    def availability(self) -> tuple[bool, str]:
        """``(True, "")`` when usable here, else ``(False, reason)``."""
        if not self.requires:
            return True, ""
        try:
            importlib.import_module(self.requires)
        except Exception as exc:  # an ImportError, or a broken native wheel
            reason = f"{self.requires} not importable ({type(exc).__name__}: {exc})"
            return False, f"{reason}; {self.note}" if self.note else reason
        reason = self.check() if self.check is not None else ""
        return not reason, reason


# -- the idioms ---------------------------------------------------------------


# Each idiom below makes its callables in bind(), and passes bind as the
# adapter's per_thread: each call makes new closures or bound methods, owned
# by the thread that calls it.


def _dict_lock() -> Adapter:
    d: dict[int, int] = {}
    lock = threading.Lock()

    def bind() -> Adapter:
        # Reads take the lock too: without the GIL, a dict read racing a write is
        # only safe because of CPython's per-dict locking, and the promise here is
        # "no GIL assumptions", so the baseline is the fully locked idiom.
        def get(k: int) -> int | None:
            with lock:
                return d.get(k)

        def put(k: int, v: int) -> None:
            with lock:
                d[k] = v

        def delete(k: int) -> None:
            with lock:
                d.pop(k, None)

        def incr(k: int) -> None:
            with lock:
                d[k] = d.get(k, 0) + 1

        def load_or_store(k: int, v: int) -> int:
            with lock:
                return d.setdefault(k, v)

        def iterate(visit: Callable[[int, int], bool]) -> None:
            with lock:  # copy under the lock, visit outside it: the usual idiom
                items = list(d.items())
            for k, v in items:
                visit(k, v)

        def snapshot() -> dict[int, int]:
            with lock:
                return dict(d)

        return Adapter(get, put, delete, incr, load_or_store, iterate, snapshot, bind)

    return bind()


def _dict_rwlock() -> Adapter:
    from mapsafe import RWLock

    d: dict[int, int] = {}
    rw = RWLock()

    def bind() -> Adapter:
        read, write = rw.read, rw.write

        def get(k: int) -> int | None:
            with read():
                return d.get(k)

        def put(k: int, v: int) -> None:
            with write():
                d[k] = v

        def delete(k: int) -> None:
            with write():
                d.pop(k, None)

        def incr(k: int) -> None:
            with write():
                d[k] = d.get(k, 0) + 1

        def load_or_store(k: int, v: int) -> int:
            # A read-locked fast path then a write-locked re-check: the idiom that
            # makes an RWLock worth having for mostly-present keys.
            with read():
                v0 = d.get(k)
            if v0 is not None:
                return v0
            with write():
                return d.setdefault(k, v)  # re-check under the write lock: another writer may have won

        def iterate(visit: Callable[[int, int], bool]) -> None:
            with read():
                items = list(d.items())
            for k, v in items:
                visit(k, v)

        def snapshot() -> dict[int, int]:
            with read():
                return dict(d)

        return Adapter(get, put, delete, incr, load_or_store, iterate, snapshot, bind)

    return bind()


def _dict_unsafe() -> Adapter:
    d: dict[int, int] = {}

    def bind() -> Adapter:
        # The unlocked check-then-act idioms that look fine and are not: a thread
        # switch between the read and the write loses the other thread's update.
        def incr(k: int) -> None:
            d[k] = d.get(k, 0) + 1

        def load_or_store(k: int, v: int) -> int:
            v0 = d.get(k)
            if v0 is None:
                d[k] = v0 = v
            return v0

        def delete(k: int) -> None:
            d.pop(k, None)

        def iterate(visit: Callable[[int, int], bool]) -> None:
            for k, v in d.items():  # raises if another thread resizes d meanwhile
                visit(k, v)

        return Adapter(d.get, d.__setitem__, delete, incr, load_or_store, iterate, d.copy, bind)

    return bind()


def _mapsafe_map(cls_name: str, reader: bool = False) -> Callable[[], Adapter]:
    def build() -> Adapter:
        import mapsafe

        m = getattr(mapsafe, cls_name)()

        def bind() -> Adapter:
            los: Callable[[int, int], tuple[int, bool]] = m.load_or_store
            incr = m.add  # add(k): absent counts as 0; in C on the C core

            def load_or_store(k: int, v: int) -> int:
                return los(k, v)[0]

            # get: the Mapping method, the maps' fastest read (load() wraps it);
            # SyncMap's is one object for all threads (the dict's own bound get),
            # which is why it has reader(): a read handle made by, and for, one thread.
            get = m.reader().get if reader else m.get
            return Adapter(get, m.store, m.delete, incr, load_or_store, m.range, m.snapshot, bind)

        return bind()

    return build


# -- peers --------------------------------------------------------------------


def _cereggii() -> Adapter:
    import cereggii

    shared = cereggii.AtomicDict()
    not_found, expectation_failed = cereggii.NOT_FOUND, cereggii.ExpectationFailed

    def bind() -> Adapter:
        # cereggii's per-thread handle (a ThreadHandle), where this version has one.
        get_handle = getattr(shared, "get_handle", None)
        d: _AtomicDict = get_handle() if get_handle is not None else shared
        reduce_sum, cas = d.reduce_sum, d.compare_and_set

        def delete(k: int) -> None:
            try:
                del d[k]
            except KeyError:
                pass

        def incr(k: int) -> None:
            reduce_sum(((k, 1),))  # cereggii's atomic aggregate; absent counts as 0

        def load_or_store(k: int, v: int) -> int:
            v0 = d.get(k)
            if v0 is not None:
                return v0
            try:
                cas(k, not_found, v)  # insert only if still absent
                return v
            except expectation_failed:
                return d[k]  # another thread inserted first; workloads never delete these keys

        def iterate(visit: Callable[[int, int], bool]) -> None:
            for k, v in d.fast_iter():
                visit(k, v)

        def snapshot() -> dict[int, int]:
            return dict(d.fast_iter())

        return Adapter(d.get, d.__setitem__, delete, incr, load_or_store, iterate, snapshot, bind)

    return bind()


def _ft_utils() -> Adapter:
    from ft_utils.concurrency import AtomicInt64, ConcurrentDict

    d = ConcurrentDict()

    def bind() -> Adapter:
        # Bound methods made in the thread: what ft_utils' LocalWrapper is for, without its proxy.
        get, setdefault = d.get, d.setdefault

        def delete(k: int) -> None:
            d.pop(k, None)

        def incr(k: int) -> None:
            # ft_utils' counter idiom: the dict holds AtomicInt64 cells, created once.
            cell = get(k)
            if cell is None:
                cell = setdefault(k, AtomicInt64(0))  # thread-safe insert-if-absent
            cell.incr()

        def iterate(visit: Callable[[int, int], bool]) -> None:
            for k, v in d.items():  # a list, built without a consistent snapshot
                visit(k, v)

        def snapshot() -> dict[int, int]:
            return {k: (v.get() if isinstance(v, AtomicInt64) else v) for k, v in d.as_dict().items()}

        return Adapter(get, d.__setitem__, delete, incr, setdefault, iterate, snapshot, bind)

    return bind()


def _lru_lock() -> Adapter:
    import cachetools

    # Unbounded: an eviction would read as a lost update, and the workloads
    # measure the cache's bookkeeping cost, not its hit rate.
    c: cachetools.LRUCache[int, int] = cachetools.LRUCache(maxsize=sys.maxsize)
    lock = threading.Lock()

    def bind() -> Adapter:
        def get(k: int) -> int | None:
            with lock:  # an LRU read reorders the cache, so it is a write
                return c.get(k)

        def put(k: int, v: int) -> None:
            with lock:
                c[k] = v

        def delete(k: int) -> None:
            with lock:
                c.pop(k, None)

        def incr(k: int) -> None:
            with lock:
                c[k] = c.get(k, 0) + 1

        def load_or_store(k: int, v: int) -> int:
            with lock:
                return c.setdefault(k, v)

        def iterate(visit: Callable[[int, int], bool]) -> None:
            with lock:
                items = list(c.items())
            for k, v in items:
                visit(k, v)

        def snapshot() -> dict[int, int]:
            with lock:
                return dict(c.items())

        return Adapter(get, put, delete, incr, load_or_store, iterate, snapshot, bind)

    return bind()


# -- on a Redis server (--redis URL) ------------------------------------------
#
# Both keep one hash of int fields and int values on the server and share
# one client (one connection pool) between the threads, as a program would.
# Every round's map has a name of its own, so a run never reads or writes a
# key it did not make, and two runs on one server never meet.

REDIS_FILL_BATCH = 10_000  # fields per fill command: --keys 10000000 must not be one huge request


def _throwaway() -> str:
    return f"{THROWAWAY_PREFIX}{uuid.uuid4().hex[:16]}"


def _redis_map(url: str) -> ServerAdapter:
    from mapsafe.redis import RedisMap

    from .server import TIMEOUT

    m: RedisMap[int, int] = RedisMap(url, _throwaway(), timeout=TIMEOUT)

    def put_all(d: dict[int, int]) -> None:
        items = list(d.items())
        for i in range(0, len(items), REDIS_FILL_BATCH):
            m.update(items[i:i + REDIS_FILL_BATCH])  # one MULTI/EXEC each

    def close() -> None:
        # Its entries and its metadata key, all the map wrote
        # (tests/test_bench_redis.py checks the server is left as it was).
        try:
            m.destroy()
        finally:
            m.close()

    def bind() -> ServerAdapter:
        los: Callable[[int, int], tuple[int, bool]] = m.load_or_store

        def load_or_store(k: int, v: int) -> int:
            return los(k, v)[0]

        get: Callable[[int], int | None] = m.get
        return ServerAdapter(get, m.store, m.delete, m.add, load_or_store, m.range, m.snapshot, bind, put_all,
                             close)

    return bind()


def _redis_py(url: str) -> ServerAdapter:
    import redis

    from .server import TIMEOUT

    client = redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    key = f"{_throwaway()}:raw"

    def put_all(d: dict[int, int]) -> None:
        items = list(d.items())
        for i in range(0, len(items), REDIS_FILL_BATCH):
            client.hset(key, mapping=dict(items[i:i + REDIS_FILL_BATCH]))

    def close() -> None:
        try:
            client.delete(key)
        finally:
            client.close()

    def bind() -> ServerAdapter:
        # What a program on plain redis-py writes: redis-py sends ints as
        # decimal text, and replies are bytes, so a read converts back.
        hget, hset, hdel, hincrby, hsetnx = client.hget, client.hset, client.hdel, client.hincrby, client.hsetnx

        def get(k: int) -> int | None:
            v = hget(key, k)
            return None if v is None else int(v)

        def put(k: int, v: int) -> None:
            hset(key, k, v)

        def delete(k: int) -> None:
            hdel(key, k)

        def incr(k: int) -> None:
            hincrby(key, k, 1)

        def load_or_store(k: int, v: int) -> int:
            if hsetnx(key, k, v):
                return v
            # Never None: the workloads never delete a key they load-or-store.
            return int(hget(key, k))  # type: ignore[arg-type]

        def iterate(visit: Callable[[int, int], bool]) -> None:
            for f, v in client.hscan_iter(key):
                visit(int(f), int(v))

        def snapshot() -> dict[int, int]:
            return {int(f): int(v) for f, v in client.hgetall(key).items()}

        return ServerAdapter(get, put, delete, incr, load_or_store, iterate, snapshot, bind, put_all, close)

    return bind()


def on_server(impl: Impl, url: str) -> Impl:
    """``impl`` building its maps on the Redis server at ``url``; one that needs no server, unchanged."""
    if impl.server_build is None:
        return impl
    return dataclasses.replace(impl, build=functools.partial(impl.server_build, url))


# -- caches -------------------------------------------------------------------
#
# Each builder takes (maxsize, loader) and returns the cache idiom a user
# of it would write, over that loader.


def _dict_lock_cache(maxsize: int, loader: Callable[[int], int]) -> CacheAdapter:
    d: dict[int, int] = {}
    lock = threading.Lock()
    missing: Any = object()  # a sentinel no loader returns (Any: mypy does not narrow on `is not missing`)

    def bind() -> CacheAdapter:
        # The memo people write by hand: look up under the lock, load outside
        # it (so two threads may load one key), evict the oldest insertion
        # (FIFO: dicts keep insertion order) when full.
        def get(k: int) -> int:
            with lock:
                v: int = d.get(k, missing)  # or missing, which is typed Any
            if v is not missing:
                return v
            v = loader(k)
            with lock:
                v = d.setdefault(k, v)  # another thread's load may have landed first: keep one value
                if len(d) > maxsize:
                    del d[next(iter(d))]
            return v

        return CacheAdapter(get, d.__len__, bind)

    return bind()


def _lru_cache(maxsize: int, loader: Callable[[int], int]) -> CacheAdapter:
    # One wrapper for all threads: that is how a decorated function is shared.
    f = functools.lru_cache(maxsize=maxsize)(loader)
    return CacheAdapter(f, lambda: f.cache_info().currsize)


def _cachetools_cached(policy: str, condition: bool = False) -> Callable[[int, Callable[[int], int]], CacheAdapter]:
    def build(maxsize: int, loader: Callable[[int], int]) -> CacheAdapter:
        import cachetools

        c = getattr(cachetools, policy)(maxsize=maxsize)
        if condition:
            # lock and condition must share one lock: the wrapper waits on
            # the condition while holding `lock`.
            cond = threading.Condition(threading.Lock())
            f = cachetools.cached(c, lock=cond, condition=cond)(loader)
        else:
            f = cachetools.cached(c, lock=threading.Lock())(loader)
        return CacheAdapter(f, c.__len__)

    return build


def _has_condition() -> str:
    import cachetools

    if "condition" in inspect.signature(cachetools.cached).parameters:
        return ""
    return f"cachetools {cachetools.__version__} has no cached(condition=) (it came in 6.0)"


def _mapsafe_cache(maxsize: int, loader: Callable[[int], int]) -> CacheAdapter:
    from mapsafe.cache import Cache

    c: Cache[int, int] = Cache(maxsize)

    def bind() -> CacheAdapter:
        cget: Callable[[int, Callable[[int], int]], int] = c.get

        def get(k: int) -> int:
            return cget(k, loader)

        return CacheAdapter(get, c.__len__, bind)

    return bind()


def _mapsafe_cached(maxsize: int, loader: Callable[[int], int]) -> CacheAdapter:
    from mapsafe.memo import cached

    f = cached(maxsize=maxsize)(loader)
    return CacheAdapter(f, f.cache.__len__)


def _cereggii_cache(maxsize: int, loader: Callable[[int], int]) -> CacheAdapter:
    import cereggii

    # Unbounded: AtomicCache has no maxsize (its ttl is not a bound either).
    c = cereggii.AtomicCache(loader)

    def bind() -> CacheAdapter:
        return CacheAdapter(c.__getitem__, lambda: len(c._cache), bind)  # no len(); its AtomicDict's

    return bind()


def _has_atomic_cache() -> str:
    import cereggii

    return "" if hasattr(cereggii, "AtomicCache") else f"cereggii {cereggii.__version__} has no AtomicCache"


_PEERS_HINT = 'pip install "mapsafe[peers]"'
_CEREGGII_NOTE = (f"{_PEERS_HINT} (wheels for Python >= 3.13)" if sys.version_info >= (3, 13)
                  else f"cereggii needs Python >= 3.13, this is {sys.version_info.major}.{sys.version_info.minor}")
_HIT_RATES = ("cache_zipf", "cache_loopscan")  # workloads.ZipfHitRate and LoopScanHitRate
_REDIS_HINT = 'pip install "mapsafe[redis]"'
_ON_SERVER = ("redis_rw", "redis_counter")  # workloads.RedisReadWrite and RedisCounter

IMPLEMENTATIONS: tuple[Impl, ...] = (
    Impl(BASELINE, _dict_lock, cache=_dict_lock_cache),
    Impl("dict+RWLock", _dict_rwlock),
    Impl(UNSAFE, _dict_unsafe),
    Impl("SyncMap", _mapsafe_map("SyncMap")),
    Impl("SyncMap+reader", _mapsafe_map("SyncMap", reader=True)),  # reads through m.reader(), one per thread
    Impl("LockedMap", _mapsafe_map("LockedMap")),
    Impl("ShardedMap", _mapsafe_map("ShardedMap")),
    Impl("cereggii.AtomicDict", _cereggii, requires="cereggii", note=_CEREGGII_NOTE),
    Impl(
        "ft_utils.ConcurrentDict",
        _ft_utils,
        requires="ft_utils.concurrency",
        note=f"{_PEERS_HINT} (wheels for Python >= 3.12)"
        if sys.version_info >= (3, 12)
        else f"ft_utils needs Python >= 3.12, this is {sys.version_info.major}.{sys.version_info.minor}",
    ),
    Impl("LRUCache+Lock", _lru_lock, requires="cachetools", note=_PEERS_HINT, cache=_cachetools_cached("LRUCache")),
    # On the --redis server only: the plain client first, as the reference.
    Impl(RAW_REDIS, None, requires="redis", note=_REDIS_HINT, workloads=_ON_SERVER, server_build=_redis_py),
    Impl(REDIS_MAP, None, requires="mapsafe.redis", note=_REDIS_HINT, workloads=_ON_SERVER,
         server_build=_redis_map),
    # The caches only: the stdlib's, cachetools' call-once form and LFU, cereggii's, and mapsafe's two.
    Impl(LRU, None, cache=_lru_cache),
    Impl("LRUCache+Condition", None, requires="cachetools", note=_PEERS_HINT,
         cache=_cachetools_cached("LRUCache", condition=True), call_once=True, check=_has_condition),
    Impl("LFUCache+Lock", None, requires="cachetools", note=_PEERS_HINT, cache=_cachetools_cached("LFUCache"),
         workloads=_HIT_RATES),
    Impl("cereggii.AtomicCache", None, requires="cereggii", note=_CEREGGII_NOTE, cache=_cereggii_cache,
         call_once=True, bounded=False, check=_has_atomic_cache),
    Impl("mapsafe.Cache", None, cache=_mapsafe_cache, call_once=True),
    Impl("mapsafe.cached", None, cache=_mapsafe_cached, call_once=True),
)


def by_name() -> dict[str, Impl]:
    """Name -> Impl, lower-cased names included so selection is case-insensitive."""
    table = {impl.name: impl for impl in IMPLEMENTATIONS}
    table.update({impl.name.lower(): impl for impl in IMPLEMENTATIONS})
    return table
