"""SyncMap: Go's sync.Map for Python threads, with lock-free reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from typing_extensions import Self

from . import _forks
from ._core import MapLock, ProfiledRLock, SyncCore, SyncReader
from ._dictget import bound_get, dict_get
from .mapbase import K, MapBase, OneSectionMap, V, check_flag, copy_of, dropper, pairs_of
from .sentinels import MISSING
from .stats import Tally

__all__ = ["SyncMap"]

T = TypeVar("T")


class _DictSection:
    """The whole map as one write section: its lock, and its dict's own methods.

    ``peek``/``put``/``drop`` are the dict's bound methods (``put`` and
    ``drop`` return None: the caller holds the values they replace).
    """

    __slots__ = ("lock", "ready", "peek", "put", "drop")

    def __init__(self, d: dict[Any, Any], lock: MapLock | ProfiledRLock) -> None:
        self.lock = lock  # entered with `with`; C-level enter and exit
        self.ready: None = None  # nothing to wait for once the lock is held
        self.peek = bound_get(d)
        self.put = d.__setitem__
        self.drop = dropper(d)


class SyncMap(SyncCore, OneSectionMap[K, V]):
    """A concurrent map whose reads never take a lock, like Go's ``sync.Map``.

    Most code should not use it: a plain ``dict`` owned by one thread, or a
    :class:`LockedMap`, is simpler to reason about. SyncMap is built for
    Go's two cases: (1) a key is written once and read many times, as in a
    cache that only grows, and (2) threads read, write and overwrite
    disjoint sets of keys. In both, readers never wait, not even for a
    writer busy in a ``compute`` callback.

    Memory model: a write happens before every read that observes it, and
    the compute family, ``load_or_store``, ``swap`` and the compare-and-*
    methods are atomic with respect to every other write of the same key.
    All single-key operations are linearizable.

    Iteration (``for k in m``, ``keys()``, ``items()``, ``values()``,
    ``range``) walks a point-in-time copy: it never raises for concurrent
    writes, never yields a key twice, and yields every key present for the
    whole walk.

    Costs: ``get``/``m[k]``/``in``/``len`` are one dict operation, lock-free;
    writes take one mutex; iteration and ``snapshot()`` copy the map, O(n).
    Compute callbacks run holding the write mutex, so they stall other
    writers (not readers): keep them short.

    How this differs from Go: a Go map needs the read-only/dirty two-map
    design because concurrent map access is undefined behaviour in Go. A
    single built-in dict operation is atomic in CPython, with or without
    the GIL (free-threaded builds lock each dict internally), so one dict
    read without a lock is already safe and linearizable.
    """

    # SyncCore holds _d, _lock (the reentrant write lock, held for every
    # write and for compute callbacks; an RLock, or a ProfiledRLock with
    # stats), its _acquire/_release, and _computing, and implements m[k],
    # m.get and m[k] = v (in C when the C core is built).
    __slots__ = {
        "_sec": "the single write section (dict + lock); set once",
        "_tally": "hit/miss Tally when stats are on, else None; set once",
        "__weakref__": "",
    }

    def __init__(self, *args: Any, stats: bool = False, **kwargs: V) -> None:
        pairs = pairs_of(type(self).__name__, args, kwargs)
        d = dict(pairs)
        self._tally: Tally | None = None
        lock: MapLock | ProfiledRLock
        if check_flag("stats", stats):
            lock = ProfiledRLock()
            self._tally = Tally("hits", "misses")
        else:
            lock = MapLock()  # the C core's takes it without a Python call
        self._core_init(d, lock, {})
        self._sec = _DictSection(d, lock)
        _forks.register(self)

    def _after_fork_child(self) -> None:
        _forks.reinit_lock(self._lock)
        _forks.drop_dead_tokens(self._computing)

    def _options(self) -> dict[str, Any]:
        return {"stats": self._tally is not None}

    def reader(self) -> SyncReader:
        """A read handle for the calling thread: ``r = m.reader()`` then ``r[k]``, ``r.get(k)``, ``k in r``, ``len(r)``.

        It reads the same entries with the same guarantees as the map's own
        reads, lock-free. Use it for read-heavy loops on free-threaded
        CPython, and make one per thread, in that thread: there, every use of
        an object shared by threads updates its reference count atomically,
        so threads reading one map contend on the map object itself, while
        a handle made by a thread is that thread's own. Do not share a
        handle between threads (it would be a shared object again), and do
        not use it with ``stats=True`` maps (it does not count hits).
        With the GIL it is no faster than the map.
        """
        return SyncReader(self._d)

    # -- reads: lock-free, one dict operation each ----------------------------

    def __new__(cls, *args: Any, stats: bool = False, **kwargs: Any) -> Self:
        # Counting reads needs a different __getitem__; choosing the class
        # here keeps the uncounted one free of even a flag test.
        if stats is True and cls is SyncMap:
            cls = _CountingSyncMap  # type: ignore[assignment]  # a private subclass, for SyncMap itself only
        return super().__new__(cls)

    # Each read below (and SyncCore's m[k], get, `in` and len) is a single
    # dict operation: atomic, and linearizable against the writes (made
    # under _lock), with or without the GIL.

    def snapshot(self) -> dict[K, V]:
        return copy_of(self._d)  # one atomic dict operation

    if TYPE_CHECKING:
        # SyncCore's m[k], get and m[k] = v, with the map's types (the core's
        # own signatures take any key and value).
        _d: dict[K, V]
        _lock: MapLock | ProfiledRLock

        def __getitem__(self, key: K, /) -> V: ...
        @overload
        def get(self, key: K, /) -> V | None: ...
        @overload
        def get(self, key: K, default: V, /) -> V: ...
        @overload
        def get(self, key: K, default: T, /) -> V | T: ...
        def get(self, key: K, default: Any = None, /) -> Any: ...
        def __setitem__(self, key: K, value: V, /) -> None: ...

    def stats(self) -> dict[str, Any]:
        """Counters: size, and with ``stats=True`` lock contention and hits/misses."""
        out: dict[str, Any] = {"type": "SyncMap", "size": len(self._d), "enabled": self._tally is not None}
        if self._tally is not None:
            out["lock"] = self._lock.as_dict()  # type: ignore[union-attr]  # stats on: a ProfiledRLock
            out.update(self._tally.totals())
        return out


class _CountingSyncMap(SyncMap[K, V]):
    """SyncMap(stats=True): the same map, counting hits and misses of reads."""

    __slots__ = ()
    if TYPE_CHECKING:
        _tally: Tally  # always set here

    def __getitem__(self, key: Any) -> Any:
        value = dict_get(self._d, key, MISSING)
        if value is MISSING:
            self._tally.add(1)
            raise KeyError(key)
        self._tally.add(0)
        return value

    def get(self, key: Any, default: Any = None, /) -> Any:
        value = dict_get(self._d, key, MISSING)
        if value is MISSING:
            self._tally.add(1)
            return default
        self._tally.add(0)
        return value

    # These read before they write; MapBase's read through the counting get.
    load_or_store = MapBase.load_or_store
    setdefault = MapBase.setdefault
    compute_if_absent = MapBase.compute_if_absent

    def _public_type(self) -> type:
        return SyncMap
