"""Cache: a thread-safe loading cache: each key loads at most once, with S3-FIFO bounds, expiry, refresh and stats."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import count
from time import perf_counter_ns
from types import GenericAlias
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, TypeAlias, TypeVar, overload

from . import _forks
from ._core import CacheCore, MapLock
from ._dictget import dict_get
from ._loading import RETRY, Flight
from ._s3fifo import DEAD, FREQ_MAX, SMALL, S3Fifo
from .mapbase import K, TypedOnlyGeneric, V, check_flag
from .sentinels import MISSING
from .stats import Tally

__all__ = ["Cache", "CacheStats", "CacheInfo", "CacheView"]

_log = logging.getLogger("mapsafe.cache")

T = TypeVar("T")
_Entry: TypeAlias = "list[Any]"  # [value, key, weight, expires, accessed, freq, queue, written, loader]

# An entry is a list, so that the two slots readers write without the lock
# (FREQ, ACCESSED) are single list stores, atomic on free-threaded CPython.
# VALUE, KEY, WEIGHT, EXPIRES, WRITTEN and LOADER never change after the
# entry is published; a new value is a new entry, so a reader never pairs
# one write's value with another's times.
VALUE, KEY, WEIGHT, EXPIRES, ACCESSED, FREQ, QUEUE, WRITTEN, LOADER = range(9)
_NEVER = math.inf

# Tally counters.
_STAT_NAMES = (
    "hits", "misses", "load_successes", "load_failures", "load_ns",
    "invalidations", "refreshes", "refresh_failures",
)
_HITS, _MISSES, _LOAD_OK, _LOAD_FAIL, _LOAD_NS, _INVALIDATED, _REFRESHED, _REFRESH_FAIL = range(len(_STAT_NAMES))

_DEFAULT_MAXSIZE: Any = 128  # the default bound, as functools.lru_cache's


class _DefaultSize(int):
    """128, marked as not passed, so ``max_weight=`` alone is not 'both bounds given'."""


_MAXSIZE_NOT_GIVEN = _DefaultSize(_DEFAULT_MAXSIZE)


class _Failure:
    """A cached loader exception (``negative_ttl=``): raised again on a hit."""

    __slots__ = ("error", "traceback")

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.traceback = error.__traceback__  # each raise restarts from it, so tracebacks do not grow


class CacheInfo(NamedTuple):
    """What ``functools.lru_cache``'s ``cache_info()`` returns, field for field."""

    hits: int
    misses: int
    maxsize: int | None
    currsize: int


@dataclass(frozen=True)
class CacheStats:
    """A cache's counters since it was made (or since ``cache_clear()``)."""

    hits: int
    misses: int
    load_successes: int
    load_failures: int
    total_load_time: float  # seconds spent in loaders, refreshes included
    evictions: dict[str, int] = field(default_factory=dict)  # cause ("size", "expired") -> count
    invalidations: int = 0
    refreshes: int = 0
    refresh_failures: int = 0
    weight: int = 0  # current total weight (entries, when there is no weigher)
    entries: int = 0

    @property
    def requests(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        return self.hits / self.requests if self.requests else 1.0


def _duration(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__} {value!r}")
    if not value > 0:  # also refuses NaN
        raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
    return float(value)


def _bound(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0 (or None for no bound), got {value!r}")
    return int(value)


def _callable(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__} {value!r}")
    return value


def _start_thread(fn: Callable[..., Any], *args: Any) -> None:
    threading.Thread(target=fn, args=args, name="mapsafe-cache-refresh", daemon=True).start()


class Cache(CacheCore, TypedOnlyGeneric[K, V]):
    """A thread-safe loading cache: ``get(key, loader)`` loads each key at most once.

    Use it for memoising expensive loads shared by threads: configuration,
    parsed files, remote lookups, the ``@lru_cache(maxsize=1)`` singleton
    (``functools.lru_cache`` may call the function twice; this never does).
    The decorator form is ``mapsafe.cached``.

    Do not use it as a general map (it may drop any entry at any time: use
    ``SyncMap``), for values that must outlive the cache's bound, or when
    one thread's calls are all hits and nothing else matters: an
    ``lru_cache`` hit costs about half as much, and its misses far less
    (``mapsafe bench -w cache`` measures both).

    * **Loading.** Of the threads asking for an absent key at once, one runs
      the loader with no lock held; the others wait and get its value. A
      loader exception reaches every waiter and is not cached, unless
      ``negative_ttl=`` caches it for that long. A loader that asks for its
      own key (or for a key whose load waits on it) gets RecursiveLoadError.
      A loader interrupted by KeyboardInterrupt or SystemExit passes the
      load to a waiter. A load finishes; a ``put`` or ``invalidate`` of its
      key during it wins, and the loaded value is returned but not stored.
    * **Bounds.** ``maxsize`` entries (128 by default; None for none), or
      ``max_weight`` with ``weigher(key, value) -> int >= 0``. Eviction is
      S3-FIFO (see ``_s3fifo.py`` for why): better than LRU on skewed and
      scan-heavy traces, and hits take no lock. After any write returns the
      total weight is within the bound; an entry heavier than the whole
      bound is returned but not stored.
    * **Time.** ``ttl`` (expire after write), ``tti`` (expire after the last
      read), ``refresh_after`` (a read of an older entry returns it and
      starts one background reload; a failed one keeps the old value, and
      is logged to the ``mapsafe.cache`` logger and counted). An expired
      entry is never returned. ``clock`` (default ``time.monotonic``) and
      ``executor`` (anything with ``submit(fn, *args)``; default: a daemon
      thread per refresh) are injectable.
    * **Happens-before.** A ``put`` or a load's store happens before every
      read that returns the value; a load happens before every waiter's
      return.
    * **Costs.** A hit: one dict lookup, no lock (in C on the C core, unless
      ``tti`` or ``refresh_after`` is set). A miss or write: one lock,
      O(1) amortized eviction. ``len``: O(1), counting expired entries not
      yet removed and cached failures; ``as_map()`` iteration: O(n) over a
      copy, live entries only.
    """

    __slots__ = (
        "_lock", "_data", "_flights", "_refreshing", "_policy", "_order", "_weight",
        "_tally", "_cleared", "_evictions", "_maxsize", "_max_weight", "_weigher", "_ttl", "_tti",
        "_refresh_after", "_negative_ttl", "_loader", "_cache_none", "_clock", "_timed",
        "_submit", "_capacity", "__weakref__",
    )
    if not TYPE_CHECKING:
        __class_getitem__ = classmethod(GenericAlias)  # Cache[str, int]: the checker's Generic gives it that

    def __init__(
        self,
        maxsize: int | None = _MAXSIZE_NOT_GIVEN,
        *,
        max_weight: int | None = None,
        weigher: Callable[[K, V], int] | None = None,
        ttl: float | None = None,
        tti: float | None = None,
        refresh_after: float | None = None,
        negative_ttl: float | None = None,
        loader: Callable[[K], V] | None = None,
        cache_none: bool = True,
        clock: Callable[[], float] = time.monotonic,
        executor: Any = None,
    ) -> None:
        if max_weight is not None:
            if maxsize is not _MAXSIZE_NOT_GIVEN and maxsize is not None:
                raise ValueError("maxsize and max_weight are mutually exclusive: bound by entries or by weight")
            maxsize = None
        self._maxsize = _bound("maxsize", maxsize)
        self._max_weight = _bound("max_weight", max_weight)
        self._weigher = _callable("weigher", weigher)
        if (self._weigher is None) != (self._max_weight is None):
            raise ValueError("max_weight and weigher go together: give both or neither")
        self._ttl = _duration("ttl", ttl)
        self._tti = _duration("tti", tti)
        self._refresh_after = _duration("refresh_after", refresh_after)
        self._negative_ttl = _duration("negative_ttl", negative_ttl)
        if self._refresh_after is not None and self._ttl is not None and self._refresh_after >= self._ttl:
            raise ValueError(
                f"refresh_after ({refresh_after!r}) must be shorter than ttl ({ttl!r}): "
                "entries would expire before they refresh"
            )
        self._loader = _callable("loader", loader)
        self._cache_none = check_flag("cache_none", cache_none)
        self._clock = _callable("clock", clock)
        if executor is None:
            self._submit = _start_thread
        elif callable(getattr(executor, "submit", None)):
            self._submit = executor.submit
        else:
            raise TypeError(f"executor must have a submit(fn, *args) method, got {type(executor).__name__}")
        self._timed = any(t is not None for t in (self._ttl, self._tti, self._refresh_after, self._negative_ttl))
        self._capacity = self._maxsize if self._maxsize is not None else self._max_weight

        self._lock = MapLock()  # guards every attribute below except _data reads and _tally
        # key -> entry (a list, layout above). Read without the lock (one
        # dict op); changed only holding _lock. Invariant: every entry here
        # is queued in _policy (or _order), and _weight is the sum of their
        # WEIGHT slots.
        self._data: dict[Any, _Entry] = {}
        # key -> Flight of the load in progress for it, under _lock. A load
        # stores its value only if its flight is still the registered one,
        # so put() and invalidate() during a load win by unregistering it.
        self._flights: dict[Any, Flight] = {}
        self._refreshing: dict[Any, Flight] = {}  # key -> its background refresh, under _lock
        # The eviction queues of a bounded cache, under _lock; None if unbounded.
        self._policy = S3Fifo(self._capacity) if self._capacity is not None else None
        # An unbounded cache with expiry: its entries in write order, swept a
        # few at a time on each write, under _lock; None otherwise.
        self._order: deque[_Entry] | None = deque() if self._policy is None and self._timed else None
        self._weight = 0  # sum of the entries' weights, under _lock
        self._evictions = [0, 0]  # entries evicted for size, and expired entries removed; under _lock
        self._tally = Tally(*_STAT_NAMES)  # per-thread counters, no lock (see Tally)
        self._cleared: list[dict[str, int]] = [{}]  # the totals at the last cache_clear(), one list cell
        # The C core's hits: the same table and stats cells; the clock only
        # for write expiry; idle expiry and refresh always take this path.
        assert _HITS == 0  # the C core counts hits in a cell's first slot
        write_expiry = self._ttl is not None or self._negative_ttl is not None
        fast = self._tti is None and self._refresh_after is None
        self._core_init(self._data, self._tally._cells, self._clock if write_expiry else None,
                        _Failure, self._loader, fast)
        _forks.register(self)

    # -- reads ----------------------------------------------------------------

    def _get_slow(self, key: K, loader: Callable[[K], V] | None = None, *, timeout: float | None = None) -> V:
        """The value of ``key``, running ``loader(key)`` (or the cache's loader) once if absent.

        ``timeout`` bounds only the wait for another thread's load
        (TimeoutError); None waits as long as the load runs. This is
        ``get`` on the pure core; the C core's ``get`` serves plain hits and
        calls this for the rest.
        """
        if loader is None:
            loader = self._loader
            if loader is None:
                raise TypeError(
                    "Cache.get() needs a loader: pass get(key, loader), give the Cache loader=, "
                    "or read without loading with get_if_present(key)"
                )
        entry = dict_get(self._data, key)  # lock-free: one dict op
        if entry is not None:
            if not self._timed:
                # _use, inlined for the commonest hit: no clock, no refresh,
                # and no cached failures (negative_ttl makes a cache timed).
                freq = entry[FREQ]
                if freq < FREQ_MAX:
                    entry[FREQ] = freq + 1  # lossy, see _use
                self._tally.add(_HITS)
                return entry[VALUE]  # type: ignore[no-any-return]  # an entry's VALUE is a V
            now = self._clock()
            if not self._expired(entry, now):
                return self._use(entry, now, loader)
        return self._load(key, loader, timeout)

    def _hit_slow(self, key: K) -> Any:
        """A hit's value (counted), or MISSING, not counted: the caller goes on to ``_load``."""
        entry = dict_get(self._data, key)
        if entry is not None:
            if not self._timed:
                freq = entry[FREQ]  # as in get()
                if freq < FREQ_MAX:
                    entry[FREQ] = freq + 1
                self._tally.add(_HITS)
                return entry[VALUE]
            now = self._clock()
            if not self._expired(entry, now):
                return self._use(entry, now, None)
        return MISSING

    if "get" not in CacheCore.__dict__:  # the pure core: the Python methods are the methods
        get = _get_slow
        _hit = _hit_slow

    @overload
    def get_if_present(self, key: K) -> V | None: ...
    @overload
    def get_if_present(self, key: K, default: V) -> V: ...
    @overload
    def get_if_present(self, key: K, default: T) -> V | T: ...

    def get_if_present(self, key: K, default: Any = None) -> Any:
        """The cached value of ``key`` (counted as a hit or a miss), else ``default``; never loads."""
        entry = dict_get(self._data, key)
        if entry is not None:
            now = self._clock() if self._timed else 0.0
            if not self._timed or not self._expired(entry, now):
                return self._use(entry, now, None)
        self._tally.add(_MISSES)
        return default

    def __getitem__(self, key: K) -> V:
        value = self.get_if_present(key, MISSING)
        if value is MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self._peek(key) is not MISSING

    def __len__(self) -> int:
        return len(self._data)

    def as_map(self) -> CacheView[K, V]:
        """A read-only Mapping over the live entries (no loading, no stats, no effect on eviction)."""
        return CacheView(self)

    def _peek(self, key: object) -> Any:
        """The live value of ``key``, or MISSING; no side effects."""
        entry = dict_get(self._data, key)
        if entry is None or type(entry[VALUE]) is _Failure:
            return MISSING
        if self._timed and self._expired(entry, self._clock()):
            return MISSING
        return entry[VALUE]

    def _expired(self, entry: _Entry, now: float) -> bool:
        return entry[EXPIRES] <= now or (self._tti is not None and now - entry[ACCESSED] >= self._tti)

    def _use(self, entry: _Entry, now: float, loader: Callable[[K], V] | None) -> V:
        """A hit on ``entry``: note it for eviction and stats, refresh if due; its value."""
        # Lock-free, lossy updates: two readers may both store freq + 1, or
        # an older access time may land last. Both only nudge eviction and
        # idle expiry by one read; no value is ever wrong.
        freq = entry[FREQ]
        if freq < FREQ_MAX:
            entry[FREQ] = freq + 1
        if self._tti is not None:
            entry[ACCESSED] = now
        self._tally.add(_HITS)
        value = entry[VALUE]
        if type(value) is _Failure:
            raise value.error.with_traceback(value.traceback)
        if self._refresh_after is not None and now - entry[WRITTEN] >= self._refresh_after:
            self._start_refresh(entry, loader if loader is not None else entry[LOADER] or self._loader)
        return value  # type: ignore[no-any-return]  # an entry's VALUE is a V (or a _Failure, raised above)

    # -- loading ----------------------------------------------------------------

    def _load(self, key: K, loader: Callable[[K], V], timeout: float | None) -> V:
        """The slow path of get(): re-check under the lock, then load or wait for a load."""
        self._tally.add(_MISSES)
        for _ in count():
            released: list[_Entry] = []
            mine = Flight()  # made before the lock: no allocation the GC tracks runs under it
            flight: Flight | None = None
            try:
                with self._lock:
                    # Re-check: another thread may have stored the key, or started
                    # loading it, since our lock-free read.
                    hit = dict_get(self._data, key)
                    if hit is not None and self._timed and self._expired(hit, self._clock()):
                        self._remove_locked(hit, released)
                        self._evictions[1] += 1
                        hit = None
                    if hit is None:
                        flight = self._flights.get(key)
                        if flight is None or not flight.joinable():
                            # (One that ended, or whose thread did, without unregistering: load anew.)
                            self._flights[key] = flight = mine
                del released  # after the lock
                if hit is not None:
                    # Loaded by another thread just now: this call's miss stays a miss.
                    loaded: V | _Failure = hit[VALUE]
                    if type(loaded) is _Failure:
                        raise loaded.error.with_traceback(loaded.traceback)
                    return loaded  # type: ignore[return-value]  # not a _Failure: `type() is` does not narrow
                if flight is mine:
                    return self._run_load(key, loader, mine)
            except BaseException:
                # From before the flight was published: an interrupt anywhere up to
                # _run_load's own handlers still lets the waiters load again.
                if flight is mine and mine.running():
                    self._unregister(key, mine)
                    mine.abandon()
                raise
            joined: V = flight.join(key, timeout)  # type: ignore[union-attr]  # set unless hit, which returned
            if joined is not RETRY:
                return joined
            # The loading thread was interrupted or ended: load again.
        raise AssertionError("unreachable")

    def _unregister(self, key: Any, flight: Flight) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]

    def _run_load(self, key: K, loader: Callable[[K], V], flight: Flight) -> V:
        """Run ``loader(key)`` as ``flight``'s owner; store the value; tell the waiters."""
        start = perf_counter_ns()
        try:
            value = loader(key)
            self._store_loaded(key, value, loader, flight, start)
            flight.finish(True, value)
        except Exception as exc:
            self._load_failed(key, exc, flight, start)
            if flight.running():
                flight.finish(False, exc)
            raise
        except BaseException:
            # KeyboardInterrupt, SystemExit: this thread's own business.
            # Unregister and let a waiter load again.
            self._unregister(key, flight)
            if flight.running():
                flight.abandon()
            raise
        return value

    def _store_loaded(self, key: Any, value: Any, loader: Any, flight: Flight, start: int) -> None:
        store = value is not None or self._cache_none
        entry = self._new_entry(key, value, loader) if store else None
        released: list[_Entry] = []
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
                if entry is not None:
                    self._store_locked(key, entry, released)
        self._tally.add(_LOAD_OK)
        self._tally.add(_LOAD_NS, perf_counter_ns() - start)
        del released  # after the lock: a value's __del__ may use the cache

    def _load_failed(self, key: Any, error: Exception, flight: Flight, start: int) -> None:
        failure = None
        if self._negative_ttl is not None:
            now = self._clock()
            failure = [_Failure(error), key, 1, now + self._negative_ttl, now, 0, DEAD, now, None]
        released: list[_Entry] = []
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
                if failure is not None:
                    self._store_locked(key, failure, released)
        self._tally.add(_LOAD_FAIL)
        self._tally.add(_LOAD_NS, perf_counter_ns() - start)
        del released  # after the lock: a value's __del__ may use the cache

    # -- refresh ----------------------------------------------------------------

    def _start_refresh(self, entry: _Entry, loader: Callable[[K], V] | None) -> None:
        if loader is None:
            return
        key = entry[KEY]
        if key in self._refreshing:  # one dict op; re-checked under the lock
            return
        flight = Flight()
        with self._lock:
            if dict_get(self._data, key) is not entry or key in self._refreshing:
                return
            self._refreshing[key] = flight
        try:
            self._submit(self._refresh, key, entry, loader, flight)
        except Exception:
            _log.warning("could not start the refresh of key %r; keeping the old value", key, exc_info=True)
            self._end_refresh(key, flight)

    def _refresh(self, key: K, entry: _Entry, loader: Callable[[K], V], flight: Flight) -> None:
        start = perf_counter_ns()
        try:
            try:
                value = loader(key)
                new = self._new_entry(key, value, loader) if value is not None or self._cache_none else None
            except Exception:
                self._tally.add(_REFRESH_FAIL)
                self._tally.add(_LOAD_FAIL)
                self._tally.add(_LOAD_NS, perf_counter_ns() - start)
                _log.warning("refresh of key %r failed; keeping the old value", key, exc_info=True)
                return
            released: list[_Entry] = []
            with self._lock:
                # Only if unchanged: a put or invalidate meanwhile wins.
                if new is not None and dict_get(self._data, key) is entry:
                    self._store_locked(key, new, released)
            self._tally.add(_REFRESHED)
            self._tally.add(_LOAD_OK)
            self._tally.add(_LOAD_NS, perf_counter_ns() - start)
            del released  # after the lock: a value's __del__ may use the cache
        finally:
            self._end_refresh(key, flight)

    def _end_refresh(self, key: Any, flight: Flight) -> None:
        with self._lock:
            if self._refreshing.get(key) is flight:
                del self._refreshing[key]
        flight.finish(True, None)

    # -- writes -------------------------------------------------------------------

    def put(self, key: K, value: V) -> None:
        """Store ``value`` for ``key``, replacing any entry; a load of ``key`` in progress is not stored."""
        entry = self._new_entry(key, value, None)
        released: list[_Entry] = []
        with self._lock:
            self._flights.pop(key, None)
            self._store_locked(key, entry, released)
        del released  # after the lock: a value's __del__ may use the cache

    __setitem__ = put

    def invalidate(self, key: K) -> bool:
        """Remove ``key``; True if a live entry was removed. A load in progress is not stored."""
        released: list[_Entry] = []
        now = self._clock() if self._timed else 0.0
        with self._lock:
            self._flights.pop(key, None)
            entry = dict_get(self._data, key)
            if entry is not None:
                self._remove_locked(entry, released)
        live = entry is not None and not (self._timed and self._expired(entry, now))
        if live:
            self._tally.add(_INVALIDATED)
        return live

    def __delitem__(self, key: K) -> None:
        if not self.invalidate(key):
            raise KeyError(key)

    def invalidate_all(self) -> None:
        """Remove every entry; loads in progress are not stored."""
        with self._lock:
            released = dict(self._data)  # values live until after the lock
            self._data.clear()
            self._flights.clear()
            if self._policy is not None:
                self._policy.clear_locked()
            if self._order is not None:
                self._order.clear()
            self._weight = 0
        n = len(released)
        del released
        if n:
            self._tally.add(_INVALIDATED, n)

    def cleanup(self) -> int:
        """Remove every expired entry now; how many were removed. O(n)."""
        if not self._timed:
            return 0
        released: list[_Entry] = []
        now = self._clock()
        with self._lock:
            for entry in list(self._data.values()):
                if self._expired(entry, now):
                    self._remove_locked(entry, released)
                    self._evictions[1] += 1
        return len(released)

    def _new_entry(self, key: Any, value: Any, loader: Any) -> _Entry:
        """A new entry for ``value``, weighed and timed; built with no lock held (weighers are user code)."""
        weight = 1
        if self._weigher is not None:
            weight = self._weigher(key, value)
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise TypeError(f"weigher must return an int, got {type(weight).__name__} {weight!r} for key {key!r}")
            if weight < 0:
                raise ValueError(f"weigher must return an int >= 0, got {weight!r} for key {key!r}")
        now = self._clock() if self._timed else 0.0
        expires = now + self._ttl if self._ttl is not None else _NEVER
        refresh_loader = loader if self._refresh_after is not None else None
        return [value, key, weight, expires, now, 0, DEAD, now, refresh_loader]

    def _store_locked(self, key: Any, entry: _Entry, released: list[_Entry]) -> None:
        """Publish ``entry`` for ``key``, then evict down to the bound; removed entries go to ``released``."""
        old = dict_get(self._data, key)
        if old is not None:
            self._remove_locked(old, released)
        if self._capacity is not None and entry[WEIGHT] > self._capacity:
            return  # heavier than the whole cache: returned to the caller, never stored
        self._data[key] = entry
        self._weight += entry[WEIGHT]
        policy = self._policy
        if policy is not None:
            policy.admit_locked(entry)
            if self._weight > self._capacity:  # type: ignore[operator]  # a policy: a capacity
                self._evict_locked(released)
        elif self._order is not None:
            entry[QUEUE] = SMALL  # queued; DEAD once removed
            self._order.append(entry)
            self._sweep_locked(released)

    def _remove_locked(self, entry: _Entry, released: list[_Entry]) -> None:
        key = entry[KEY]
        if dict_get(self._data, key) is entry:
            del self._data[key]
            self._weight -= entry[WEIGHT]
        if self._policy is not None:
            self._policy.forget_locked(entry)
        else:
            entry[QUEUE] = DEAD
        released.append(entry)

    def _evict_locked(self, released: list[_Entry]) -> None:
        now = self._clock() if self._timed else 0.0
        expired = self._expired if self._timed else _never_expired
        policy = self._policy
        evictions = self._evictions
        for _ in range(len(self._data) + 1):
            if self._weight <= self._capacity:  # type: ignore[operator]  # only bounded caches evict
                return
            taken = policy.victim_locked(expired, now)  # type: ignore[union-attr]  # bounded: a policy
            if taken is None:
                return
            victim, was_expired = taken
            key = victim[KEY]
            if dict_get(self._data, key) is victim:
                del self._data[key]
                self._weight -= victim[WEIGHT]
            evictions[1 if was_expired else 0] += 1
            released.append(victim)

    def _sweep_locked(self, released: list[_Entry]) -> None:
        """Remove up to four expired entries from the head of the write order (unbounded caches)."""
        order = self._order
        now = self._clock()
        for _ in range(4):
            if not order:
                return
            entry = order[0]
            if entry[QUEUE] == DEAD:
                order.popleft()
                continue
            if self._expired(entry, now):
                order.popleft()
                self._remove_locked(entry, released)
                self._evictions[1] += 1
                continue
            if self._tti is None:
                return  # write order is expiry order: nothing further back has expired
            order.rotate(-1)  # idle expiry: look at the next one on the next write

    # -- stats and lru_cache compatibility -------------------------------------------

    def stats(self) -> CacheStats:
        """Counters since construction or the last ``cache_clear()``; may trail concurrent calls slightly."""
        totals = self._totals()
        base = self._cleared[0]
        n = {name: totals[name] - base.get(name, 0) for name in totals}
        return CacheStats(
            hits=n["hits"],
            misses=n["misses"],
            load_successes=n["load_successes"],
            load_failures=n["load_failures"],
            total_load_time=n["load_ns"] / 1e9,
            evictions={"size": n["evicted_size"], "expired": n["evicted_expired"]},
            invalidations=n["invalidations"],
            refreshes=n["refreshes"],
            refresh_failures=n["refresh_failures"],
            weight=totals["weight"],
            entries=totals["entries"],
        )

    def _totals(self) -> dict[str, int]:
        totals = self._tally.totals()
        with self._lock:
            totals["evicted_size"], totals["evicted_expired"] = self._evictions
            totals["weight"], totals["entries"] = self._weight, len(self._data)
        return totals

    def cache_info(self) -> CacheInfo:
        """``(hits, misses, maxsize, currsize)``, as ``functools.lru_cache`` reports them."""
        s = self.stats()
        return CacheInfo(s.hits, s.misses, self._capacity, s.entries)

    def cache_clear(self) -> None:
        """Remove every entry and restart the counters, as ``functools.lru_cache``'s does."""
        self.invalidate_all()
        base = self._totals()
        base["weight"] = base["entries"] = 0  # current values, never differences
        self._cleared[0] = base  # one list store

    # -- the rest -----------------------------------------------------------------

    @property
    def maxsize(self) -> int | None:
        return self._maxsize

    @property
    def max_weight(self) -> int | None:
        return self._max_weight

    def __repr__(self) -> str:
        bound = f"max_weight={self._max_weight}" if self._max_weight is not None else f"maxsize={self._maxsize}"
        return f"<mapsafe.Cache {bound} entries={len(self._data)}>"

    def __reduce__(self) -> Any:
        raise TypeError("a mapsafe.Cache cannot be pickled (its loaders and locks belong to this process)")

    def _after_fork_child(self) -> None:
        _forks.reinit_lock(self._lock)
        for table in (self._flights, self._refreshing):
            for key, flight in list(table.items()):
                flight.after_fork_child()
                if not flight.running():
                    table.pop(key, None)  # its thread did not survive the fork


def _never_expired(entry: _Entry, now: float) -> bool:
    return False


class CacheView(Mapping[K, V]):
    """A read-only view of a Cache's live entries: no loading, no stats, no effect on eviction.

    Lookups take no lock. Iteration, ``len`` and ``==`` work on a copy
    taken at once, so they never raise for concurrent writes; an entry
    that expires during an iteration may still be yielded by it.
    """

    __slots__ = ("_cache",)

    def __init__(self, cache: Cache[K, V]) -> None:
        self._cache = cache

    def __getitem__(self, key: K) -> V:
        value: V = self._cache._peek(key)
        if value is MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self._cache._peek(key) is not MISSING

    def _live(self) -> dict[K, V]:
        cache = self._cache
        entries = dict(cache._data)  # one atomic dict op
        now = cache._clock() if cache._timed else 0.0
        return {
            k: e[VALUE]
            for k, e in entries.items()
            if type(e[VALUE]) is not _Failure and not (cache._timed and cache._expired(e, now))
        }

    def __iter__(self) -> Iterator[K]:
        return iter(self._live())

    def __len__(self) -> int:
        return len(self._live())

    def __repr__(self) -> str:
        return f"CacheView({self._live()!r})"
