"""ShardedMap: a lock-striped map with optional maxsize (CLOCK eviction) and TTL."""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from itertools import chain
from time import monotonic
from typing import Any, Iterator

from ._core import ShardedCore
from .mapbase import MapBase, check_flag, pairs_of
from .sentinels import MISSING
from .stats import LockProfile, Tally

__all__ = ["ShardedMap"]

_NEVER = math.inf  # expiry time of entries in maps without a ttl
_MAX_SHARD_HINT = 1 << 16  # with capacity=, pick enough shards to keep each below this


def default_shards(capacity: int | None = None) -> int:
    """A power of two at least 4 x the CPU count (and enough for ``capacity``)."""
    n = 1 << max(0, (4 * (os.cpu_count() or 1) - 1).bit_length())
    if capacity:
        while capacity // n > _MAX_SHARD_HINT:
            n <<= 1
    return n


class _Shard:
    """One stripe: a dict and the reentrant lock that guards its writes.

    Plain mode stores values in ``d`` as they are. Reads are lock-free single
    dict operations; every write holds ``lock``.
    """

    __slots__ = ("d", "lock", "enter", "exit", "profile", "peek", "put", "drop")

    def __init__(self, stats: bool) -> None:
        self.d: dict = {}  # the entries; read lock-free, written only with lock held
        self.lock = threading.RLock()  # guards writes to d (and every field of subclasses)
        self.profile = LockProfile(self.lock.acquire) if stats else None  # set once
        self.enter = self.profile.acquire if stats else self.lock.acquire  # bound once for speed
        self.exit = self.lock.release
        # What compound operations call holding the lock; in plain mode the
        # dict's own methods, in cache mode the wrapping ones below.
        self.peek = self.d.get
        self.put = self.d.__setitem__
        self.drop = self.d.__delitem__

    def items_now(self) -> Any:
        """(key, value) pairs at one instant of this shard."""
        return self.d.copy().items()  # dict.copy is one atomic dict op

    def counters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"size": len(self.d)}
        if self.profile is not None:
            out.update(self.profile.as_dict())
        return out


class _CacheShard(_Shard):
    """A stripe of a bounded and/or expiring map.

    ``d`` maps key -> entry, a list ``[value, expires_at, referenced]``.
    ``value`` and ``expires_at`` are never changed once the entry is in
    ``d`` (a store puts a new entry), so a lock-free reader sees a
    consistent pair. Readers set ``referenced`` without the lock: one list
    item store, atomic on free-threaded CPython, and only ever set to True
    by readers (the sweeper, holding the lock, clears it).

    Eviction is CLOCK (second chance), an approximation of LRU that needs no
    lock on reads: ``order`` lists (key, entry) pairs oldest first; the
    sweeper evicts the first entry not read since it last passed, giving
    read ones another round. Expired entries go first.
    """

    __slots__ = ("capacity", "ttl", "order", "by_expiry", "evictions", "expirations")

    def __init__(self, stats: bool, capacity: int | None, ttl: float | None) -> None:
        super().__init__(stats)
        self.peek, self.put, self.drop = self.peek_locked, self.put_locked, self.drop_locked
        self.capacity = capacity  # max entries in d, or None; set once
        self.ttl = ttl  # seconds an entry lives, or None; set once
        # (key, entry) pairs in insertion order; guarded by lock. Pairs whose
        # entry is no longer d[key] are stale and skipped. Kept at most about
        # twice len(d) by _compact_locked.
        self.order: deque = deque()
        # With a ttl, the same pairs in store order (never re-appended), so
        # the first live one expires first; guarded by lock; compacted with order.
        self.by_expiry: deque = deque()
        self.evictions = 0  # guarded by lock
        self.expirations = 0  # guarded by lock

    def peek_locked(self, key: Any, default: Any = None) -> Any:
        entry = self.d.get(key)
        if entry is None:
            return default
        if entry[1] <= monotonic():
            del self.d[key]
            self.expirations += 1
            return default
        entry[2] = True
        return entry[0]

    def drop_locked(self, key: Any) -> None:
        del self.d[key]  # its pair in order goes stale

    def put_locked(self, key: Any, value: Any) -> None:
        self.put_entry_locked(key, value, monotonic() + self.ttl if self.ttl is not None else _NEVER)

    def put_entry_locked(self, key: Any, value: Any, expires_at: float) -> None:
        d = self.d
        if self.capacity is not None and len(d) >= self.capacity and key not in d:
            self._evict_one_locked()  # before inserting, so the new entry is never the victim
        entry = [value, expires_at, False]
        d[key] = entry
        self.order.append((key, entry))
        if self.ttl is not None:
            self.by_expiry.append((key, entry))
        if len(self.order) > 2 * len(d) + 32:
            self._compact_locked()

    def _evict_one_locked(self) -> None:
        d, now = self.d, monotonic()
        # Expired entries first. All entries live ttl seconds from their
        # store, so by_expiry (store order, never reordered) is expiry order.
        by_expiry = self.by_expiry
        while by_expiry:
            key, entry = by_expiry[0]
            if d.get(key) is not entry:
                by_expiry.popleft()  # stale
                continue
            if entry[1] <= now:
                by_expiry.popleft()
                del d[key]
                self.expirations += 1
                return
            break
        order = self.order
        while order:
            key, entry = order.popleft()
            if d.get(key) is not entry:
                continue  # stale: replaced or deleted since
            if entry[2]:
                entry[2] = False  # second chance
                order.append((key, entry))
                continue
            del d[key]
            self.evictions += 1
            return

    def _compact_locked(self) -> None:
        d = self.d
        self.order = deque((k, e) for k, e in self.order if d.get(k) is e)
        self.by_expiry = deque((k, e) for k, e in self.by_expiry if d.get(k) is e)

    def expire_locked(self, key: Any, entry: list) -> None:
        # Re-check: another thread may have replaced the entry since the
        # lock-free read saw it expired.
        if self.d.get(key) is entry:
            del self.d[key]
            self.expirations += 1

    def items_now(self) -> list[tuple[Any, Any]]:
        now = monotonic()
        return [(k, e[0]) for k, e in self.d.copy().items() if e[1] > now]

    def counters(self) -> dict[str, Any]:
        out = super().counters()
        out["evictions"] = self.evictions
        out["expirations"] = self.expirations
        return out


class ShardedMap(ShardedCore, MapBase):
    """A map striped over independent shards, each a dict with its own lock.

    Do not use it for small or read-mostly maps (a :class:`SyncMap` reads
    faster) or when you need multi-key transactions (use
    :class:`LockedMap`). It is for write-heavy maps shared by many threads,
    for bounded caches (``maxsize=``, ``ttl=``), and for large maps whose
    growth must not pause every thread at once: a resize only stalls one
    shard's writers.

    Memory model: single-key operations are linearizable; a write happens
    before every read that observes it; the compute family and the other
    compound operations are atomic with respect to every other write of the
    same key. Writes to different shards proceed in parallel. ``update``
    and ``clear`` are atomic per shard, not across shards.

    ``snapshot()`` holds every shard's lock while copying, so it is a true
    point-in-time copy. Iteration walks per-shard copies taken when it
    starts: it never raises for concurrent writes, never yields a key
    twice, and yields every key present for the whole walk.

    Compute-family callbacks may use the whole map, so that two of them
    can never deadlock on each other's shards they run one at a time per
    map (plain writes still proceed in parallel on other shards).

    ``maxsize`` is split evenly across shards, so the map never holds more
    than ``maxsize`` entries, but a shard that fills first evicts before
    the map as a whole is full. Eviction is CLOCK (second chance): an
    approximation of LRU that keeps reads lock-free. ``ttl`` entries expire
    that many seconds after their last store, and an expired entry is never
    returned. ``capacity`` is a sizing hint: CPython cannot presize a dict,
    so it picks enough shards to keep each below 65,536 entries.

    Costs: reads are one hash and one dict operation, lock-free; writes take
    one shard lock; ``len`` is O(shards) (O(n) with a ttl, which must skip
    expired entries); iteration and ``snapshot()`` are O(n).
    """

    # ShardedCore holds _maps (each shard's dict), _stripes, _computing
    # and _n, and implements get and m[k] = v (in C when the C core is built).
    __slots__ = {
        "_shards": "the _Shard objects; the tuple is set once",
        "_acquires": "each shard's lock acquire; set once",
        "_releases": "each shard's lock release; set once",
        "_cache": "True when entries are wrapped (maxsize or ttl); set once",
        "_ttl": "entry lifetime in seconds, or None; set once",
        "_opts": "constructor options, for copies and pickling; set once",
        "_callback_lock": "reentrant; held while a compute callback runs and while snapshot() takes every shard",
        "_tally": "hit/miss Tally when stats are on, else None; set once",
        "_pop_from": "[index] of the shard popitem tries first; one list item, rotated without a lock",
        "__weakref__": "",
    }

    def __init__(
        self,
        *args: Any,
        shards: int | None = None,
        maxsize: int | None = None,
        ttl: float | None = None,
        capacity: int | None = None,
        stats: bool = False,
        **kwargs: Any,
    ) -> None:
        maxsize = _positive_int("maxsize", maxsize)
        capacity = _positive_int("capacity", capacity)
        shards = _positive_int("shards", shards)
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
                raise TypeError(f"ttl must be a number of seconds, got {type(ttl).__name__} {ttl!r}")
            if not ttl > 0 or math.isinf(ttl):
                raise ValueError(f"ttl must be a finite number of seconds > 0, got {ttl!r}")
            ttl = float(ttl)
        check_flag("stats", stats)
        if shards is None:
            shards = default_shards(capacity)
            if maxsize is not None:
                while shards > 1 and maxsize // shards < 8:
                    shards >>= 1  # keep shards big enough for CLOCK to be meaningful
        elif maxsize is not None and shards > maxsize:
            raise ValueError(f"shards ({shards}) must not exceed maxsize ({maxsize})")
        pairs = pairs_of(type(self).__name__, args, kwargs)

        self._opts = {"shards": shards, "maxsize": maxsize, "ttl": ttl, "capacity": capacity, "stats": stats}
        self._ttl = ttl
        self._cache = maxsize is not None or ttl is not None
        if self._cache:
            caps = [None] * shards
            if maxsize is not None:
                base, extra = divmod(maxsize, shards)
                caps = [base + (i < extra) for i in range(shards)]
            self._shards = tuple(_CacheShard(stats, caps[i], ttl) for i in range(shards))
        else:
            self._shards = tuple(_Shard(stats) for _ in range(shards))
        self._acquires = tuple(s.enter for s in self._shards)
        self._releases = tuple(s.exit for s in self._shards)
        stripes = tuple((s.enter, s.exit, s.d, s.put if self._cache else None) for s in self._shards)
        self._core_init(tuple(s.d for s in self._shards), stripes, {}, not (self._cache or stats))
        self._callback_lock = threading.RLock()
        self._tally = Tally("hits", "misses") if stats else None
        self._pop_from = [0]
        if pairs:
            self._put_many(pairs)

    def _options(self) -> dict[str, Any]:
        return dict(self._opts)

    def _section(self, key: Any) -> _Shard:
        return self._shards[hash(key) % self._n]

    # -- reads: lock-free -----------------------------------------------------------
    # Each read is one dict operation on one shard (atomic with or without
    # the GIL), plus reads of an entry's fields, which are never changed
    # after the entry is published (see _CacheShard).

    # get: ShardedCore's, which comes here for caches and with stats on.
    def _get_slow(self, key: Any, default: Any = None, /) -> Any:
        value = self._maps[hash(key) % self._n].get(key, MISSING)
        if self._cache and value is not MISSING:
            value = self._unwrap(key, value)
        if self._tally is not None:
            self._tally.add(value is MISSING)
        return default if value is MISSING else value

    def _unwrap(self, key: Any, entry: list) -> Any:
        if self._ttl is not None and entry[1] <= monotonic():
            shard = self._section(key)
            # Removing it now is a courtesy; never wait for it (the reader
            # may be a compute callback holding another shard's lock).
            if shard.lock.acquire(blocking=False):
                try:
                    shard.expire_locked(key, entry)
                finally:
                    shard.lock.release()
            return MISSING
        entry[2] = True  # CLOCK's referenced bit: one list item store, atomic
        return entry[0]

    def __contains__(self, key: object) -> bool:
        entry = self._maps[hash(key) % self._n].get(key, MISSING)
        if entry is MISSING:
            return False
        return not self._cache or entry[1] > monotonic()

    def __len__(self) -> int:
        if self._ttl is None:
            return sum(len(d) for d in self._maps)  # each len() is one atomic dict op
        now = monotonic()
        return sum(1 for d in self._maps for e in d.copy().values() if e[1] > now)

    def __iter__(self) -> Iterator[Any]:
        if not self._cache:
            return chain.from_iterable([d.copy() for d in self._maps])  # each copy is one atomic op
        return (key for key, _ in self._iter_items())

    def _iter_items(self) -> Iterator[tuple[Any, Any]]:
        # Per-shard copies, all taken before the walk starts: keys added
        # while the caller iterates are never visited, as with the others.
        return chain.from_iterable([shard.items_now() for shard in self._shards])

    def snapshot(self) -> dict:
        # Lock order: the callback lock, then shards in index order. A
        # thread holding one shard lock only ever waits for another while
        # it holds the callback lock too, so no cycle can form.
        with self._callback_lock:
            for acquire in self._acquires:
                acquire()
            try:
                return dict(chain.from_iterable([shard.items_now() for shard in self._shards]))
            finally:
                for release in self._releases:
                    release()

    def _compute(self, key: Any, fn: Any, mode: int, value: Any = None) -> Any:
        # A callback holds its key's shard lock and may touch any other
        # shard. Two callbacks on different shards writing each other's
        # keys would deadlock, so callbacks run one at a time per map.
        self._callback_lock.acquire()
        try:
            return MapBase._compute(self, key, fn, mode, value)
        finally:
            self._callback_lock.release()

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return some (key, value) pair; KeyError if empty."""
        start = self._pop_from[0]
        self._pop_from[0] = (start + 1) % self._n  # spreads pops; a lost rotation is harmless
        for offset in range(self._n):
            shard = self._shards[(start + offset) % self._n]
            shard.enter()
            try:
                for key in reversed(list(shard.d)):
                    value = shard.peek(key, MISSING)
                    if value is MISSING:
                        continue  # expired just now
                    self._check_not_computing(key)
                    shard.drop(key)
                    return key, value
            finally:
                shard.exit()
        raise KeyError("popitem(): ShardedMap is empty")

    def clear(self) -> None:
        self._check_not_in_callback("clear()")  # before any shard changes
        for shard in self._shards:
            shard.enter()
            try:
                shard.d.clear()
                if isinstance(shard, _CacheShard):
                    shard.order.clear()
                    shard.by_expiry.clear()
            finally:
                shard.exit()

    def _put_many(self, pairs: list[tuple[Any, Any]]) -> None:
        by_shard: dict[int, list[tuple[Any, Any]]] = {}
        for key, value in pairs:
            # Checked before any shard changes. Only this thread's own
            # callbacks count, and only it can remove them meanwhile.
            self._check_not_computing(key)
            by_shard.setdefault(hash(key) % self._n, []).append((key, value))
        for i, group in by_shard.items():
            shard = self._shards[i]
            shard.enter()
            try:
                for key, value in group:
                    shard.put(key, value)
            finally:
                shard.exit()

    # -- copies, pickling, stats ------------------------------------------------------

    def copy(self):
        """A shallow copy with the same options; entries keep their expiry times."""
        new = type(self)(**self._options())
        for i, shard in enumerate(self._shards):
            shard.enter()
            try:
                if self._cache:
                    now = monotonic()
                    target = new._shards[i]  # same options and process: same shard
                    for k, e in list(shard.d.items()):
                        if e[1] > now:
                            target.put_entry_locked(k, e[0], e[1])
                else:
                    new._maps[i].update(shard.d)
            finally:
                shard.exit()
        return new

    __copy__ = copy

    def _export(self) -> Any:
        # Expiry times are monotonic-clock values, meaningless in another
        # process, so pickles carry each entry's remaining lifetime.
        if not self._cache:
            return list(self.snapshot().items())
        now = monotonic()
        out = []
        for shard in self._shards:
            for key, entry in shard.d.copy().items():
                if entry[1] > now:
                    out.append((key, entry[0], None if entry[1] == _NEVER else entry[1] - now))
        return out

    def _import(self, state: Any) -> None:
        if not self._cache:
            self._put_many(list(state))
            return
        now = monotonic()
        for key, value, remaining in state:
            # Through put_entry_locked: in another process str hashes differ,
            # so keys land in other shards, whose capacity must still hold.
            shard = self._section(key)
            shard.enter()
            try:
                shard.put_entry_locked(key, value, _NEVER if remaining is None else now + remaining)
            finally:
                shard.exit()

    def stats(self) -> dict[str, Any]:
        """Counters: size, evictions, expirations; with ``stats=True`` also
        per-shard lock contention and hits/misses."""
        per_shard = []
        for shard in self._shards:
            shard.enter()
            try:
                per_shard.append(shard.counters())
            finally:
                shard.exit()
        out: dict[str, Any] = {
            "type": "ShardedMap",
            "size": len(self),
            "enabled": self._tally is not None,
            "shards": per_shard,
            "evictions": sum(s.get("evictions", 0) for s in per_shard),
            "expirations": sum(s.get("expirations", 0) for s in per_shard),
        }
        if self._tally is not None:
            out["lock"] = {
                name: sum(s[name] for s in per_shard) for name in ("acquisitions", "contended", "wait_seconds")
            }
            out.update(self._tally.totals())
        return out


def _positive_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value
