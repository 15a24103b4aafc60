"""ShardedMap: a lock-striped map with optional maxsize (CLOCK eviction) and TTL."""

from __future__ import annotations

import math
import os
from collections import deque
from itertools import chain
from time import monotonic
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeAlias, TypeVar, overload

from . import _faults, _forks
from ._core import MapLock, ProfiledRLock, ShardedCore, call_if_free, hold_all
from ._dictget import bound_get, dict_get
from .mapbase import K, MapBase, V, check_flag, copy_of, dropper, pairs_of
from .sentinels import MISSING
from .stats import Tally

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ShardedMap"]

T = TypeVar("T")
_Entry: TypeAlias = "list[Any]"  # a cache-mode entry: [value, expires_at, referenced]
_Pair: TypeAlias = "tuple[Any, _Entry]"  # (key, entry), as the CLOCK and expiry queues hold them

_FAULTS = _faults.ENABLED
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

    __slots__ = ("d", "lock", "ready", "peek", "put", "drop")

    def __init__(self, stats: bool) -> None:
        self.d: dict[Any, Any] = {}  # the entries; read lock-free, written only with lock held
        # Guards writes to d (and every field of subclasses); entered with
        # `with` (C enter and exit); a ProfiledRLock when stats are on.
        self.lock: MapLock | ProfiledRLock = ProfiledRLock() if stats else MapLock()
        self.ready: None = None  # nothing to wait for once the lock is held
        # What compound operations call holding the lock; in plain mode the
        # dict's own methods, in cache mode the wrapping ones below.
        self.peek: Callable[..., Any] = bound_get(self.d)
        self.put: Callable[[Any, Any], Any] = self.d.__setitem__
        self.drop: Callable[[Any], Any] = dropper(self.d)

    def items_now(self) -> Any:
        """(key, value) pairs at one instant of this shard."""
        return copy_of(self.d).items()  # one atomic dict op

    def counters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"size": len(self.d)}
        if isinstance(self.lock, ProfiledRLock):
            out.update(self.lock.as_dict())
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

    Nothing is released under the lock: whatever leaves ``d`` or the queues
    goes to ``trash``, which the mutators hand back (``put_locked``,
    ``drop_locked``, ``expire_locked``) for the caller to drop after
    releasing the lock, so a value's ``__del__`` never runs under it.
    """

    __slots__ = ("capacity", "ttl", "order", "by_expiry", "evictions", "expirations", "trash")

    def __init__(self, stats: bool, capacity: int | None, ttl: float | None) -> None:
        super().__init__(stats)
        self.peek, self.put, self.drop = self.peek_locked, self.put_locked, self.drop_locked
        self.capacity = capacity  # max entries in d, or None; set once
        self.ttl = ttl  # seconds an entry lives, or None; set once
        # (key, entry) pairs in insertion order; guarded by lock. Pairs whose
        # entry is no longer d[key] are stale and skipped. Kept at most about
        # twice len(d) by _compact_locked.
        self.order: deque[_Pair] = deque()
        # With a ttl, the same pairs in store order (never re-appended), so
        # the first live one expires first; guarded by lock; compacted with order.
        self.by_expiry: deque[_Pair] = deque()
        self.evictions = 0  # guarded by lock
        self.expirations = 0  # guarded by lock
        self.trash: list[object] = []  # what left d or the queues, to release after the lock; guarded by lock

    def _take_trash_locked(self) -> list[object] | None:
        trash = self.trash
        if not trash:
            return None
        self.trash = []
        return trash

    def peek_locked(self, key: Any, default: Any = None) -> Any:
        entry = dict_get(self.d, key)
        if entry is None:
            return default
        if entry[1] <= monotonic():
            self.trash.append(self.d.pop(key))
            self.expirations += 1
            return default
        entry[2] = True
        return entry[0]

    def drop_locked(self, key: Any) -> list[object] | None:
        entry = self.d.pop(key, None)  # its pair in order goes stale; None: see mapbase.dropper
        if entry is not None:
            self.trash.append(entry)
        return self._take_trash_locked()

    def put_locked(self, key: Any, value: Any) -> list[object] | None:
        return self.put_entry_locked(key, value, monotonic() + self.ttl if self.ttl is not None else _NEVER)

    def put_entry_locked(self, key: Any, value: Any, expires_at: float) -> list[object] | None:
        d = self.d
        if self.capacity is not None and len(d) >= self.capacity and key not in d:
            self._evict_one_locked()  # before inserting, so the new entry is never the victim
        entry = [value, expires_at, False]
        old = dict_get(d, key)
        if old is not None:
            self.trash.append(old)
        # The queues first and the dict last: an interrupt in between leaves
        # only stale pairs, which every reader of the queues skips.
        self.order.append((key, entry))
        if self.ttl is not None:
            self.by_expiry.append((key, entry))
        d[key] = entry
        if len(self.order) > 2 * len(d) + 32:
            self._compact_locked()
        return self._take_trash_locked()

    def _evict_one_locked(self) -> None:
        d, now, trash = self.d, monotonic(), self.trash
        # Expired entries first. All entries live ttl seconds from their
        # store, so by_expiry (store order, never reordered) is expiry order.
        by_expiry = self.by_expiry
        while by_expiry:
            key, entry = by_expiry[0]
            if dict_get(d, key) is not entry:
                trash.append(by_expiry.popleft())  # stale
                continue
            if entry[1] <= now:
                trash.append(by_expiry.popleft())
                trash.append(d.pop(key))
                self.expirations += 1
                return
            break
        order = self.order
        while order:
            pair = order.popleft()
            key, entry = pair
            if dict_get(d, key) is not entry:
                trash.append(pair)
                continue  # stale: replaced or deleted since
            if entry[2]:
                entry[2] = False  # second chance
                order.append(pair)
                continue
            trash.append(pair)
            trash.append(d.pop(key))
            self.evictions += 1
            return
        if d:
            # Every entry is in order unless an interrupt landed between a
            # popleft and its re-append: evict one of those, so the bound holds.
            trash.append(d.pop(next(iter(d))))
            self.evictions += 1

    def _compact_locked(self) -> None:
        d = self.d
        self.trash.append((self.order, self.by_expiry))
        self.order = deque((k, e) for k, e in self.order if dict_get(d, k) is e)
        self.by_expiry = deque((k, e) for k, e in self.by_expiry if dict_get(d, k) is e)

    def expire_locked(self, key: Any, entry: _Entry) -> list[object] | None:
        # Re-check: another thread may have replaced the entry since the
        # lock-free read saw it expired.
        if dict_get(self.d, key) is entry:
            self.trash.append(self.d.pop(key))
            self.expirations += 1
        return self._take_trash_locked()

    def clear_locked(self) -> tuple[dict[Any, _Entry], deque[_Pair], deque[_Pair], list[object]]:
        released = (copy_of(self.d), self.order, self.by_expiry, self.trash)
        self.d.clear()
        self.order, self.by_expiry, self.trash = deque(), deque(), []
        return released

    def live_in_order_locked(self) -> list[_Pair]:
        """Live (key, entry) pairs: in expiry order with a ttl, else CLOCK order."""
        d = self.d
        live = [(k, e) for k, e in self.order if dict_get(d, k) is e]
        if len(live) < len(d):  # entries an interrupt left out of order (see _evict_one_locked)
            queued = {id(e) for _, e in live}
            live.extend((k, e) for k, e in d.items() if id(e) not in queued)
        if self.ttl is not None:
            live.sort(key=lambda pair: pair[1][1])  # stable: equal deadlines keep store order
        return live

    def items_now(self) -> list[tuple[Any, Any]]:
        now = monotonic()
        return [(k, e[0]) for k, e in copy_of(self.d).items() if e[1] > now]

    def counters(self) -> dict[str, Any]:
        out = super().counters()
        out["evictions"] = self.evictions
        out["expirations"] = self.expirations
        return out


class ShardedMap(ShardedCore, MapBase[K, V]):
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
    and ``clear`` hold every shard they touch, so they are atomic with
    respect to other writes (lock-free readers may see one half-applied).

    ``snapshot()`` holds every shard's lock while copying, so it is a true
    point-in-time copy. Iteration walks per-shard copies taken when it
    starts: it never raises for concurrent writes, never yields a key
    twice, and yields every key present for the whole walk.

    ``len()`` is exact: it counts holding every shard's lock, briefly
    stalling writers. ``approx_len()`` takes no lock and sums the shards at
    slightly different instants, so under concurrent writes it can be off
    by the number of writes in flight (like cereggii's ``approx_len``).

    Compute-family callbacks may use the whole map, so that two of them
    can never deadlock on each other's shards they run one at a time per
    map (plain writes still proceed in parallel on other shards).

    Lock order, and the user code that runs under a shard lock: (1) a
    compute-family callback holds the callback lock and then one shard
    lock, and may take any other; every other thread that takes more than
    one shard lock (``snapshot``, ``len``) takes the callback lock first,
    then shards in index order, so no cycle can form. (2) A key's
    ``__hash__`` and ``__eq__`` run inside dict operations under the shard
    lock, as in Java's ConcurrentHashMap: a key whose ``__hash__`` or
    ``__eq__`` writes this same map is not supported. (3) A value's
    ``__eq__`` (``compare_and_*``) runs with no lock held. (4) A replaced,
    deleted, evicted or expired value is released only after the lock is
    released, so its ``__del__`` may use the map freely.

    ``maxsize`` is split evenly across shards, so the map never holds more
    than ``maxsize`` entries, but a shard that fills first evicts before
    the map as a whole is full. Eviction is CLOCK (second chance): an
    approximation of LRU that keeps reads lock-free. ``ttl`` entries expire
    that many seconds after their last store, and an expired entry is never
    returned. ``capacity`` is a sizing hint: CPython cannot presize a dict,
    so it picks enough shards to keep each below 65,536 entries.

    Costs: reads are one hash and one dict operation, lock-free; writes take
    one shard lock; ``len`` takes every shard lock, O(shards) (O(n) with a
    ttl, which must skip expired entries); ``approx_len`` is O(shards)
    without locks; iteration and ``snapshot()`` are O(n).
    """

    # ShardedCore holds _maps (each shard's dict), _stripes, _computing
    # and _n, and implements get and m[k] = v (in C when the C core is built).
    __slots__ = {
        "_shards": "the _Shard objects; the tuple is set once",
        "_all_locks": "the callback lock, then every shard's lock, in the lock order; set once",
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
        **kwargs: V,
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
            caps: list[int | None] = [None] * shards
            if maxsize is not None:
                base, extra = divmod(maxsize, shards)
                caps = [base + (i < extra) for i in range(shards)]
            self._shards: tuple[_Shard, ...] = tuple(_CacheShard(stats, caps[i], ttl) for i in range(shards))
        else:
            self._shards = tuple(_Shard(stats) for _ in range(shards))
        stripes = tuple(
            (s.lock, s.lock.acquire, s.lock.release, s.d, s.put if self._cache else None) for s in self._shards
        )
        self._callback_lock = MapLock()
        self._all_locks = (self._callback_lock, *(s.lock for s in self._shards))
        self._core_init(tuple(s.d for s in self._shards), stripes, {}, self._all_locks, not (self._cache or stats))
        _forks.register(self)
        self._tally: Tally | None = Tally("hits", "misses") if stats else None
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
        value = dict_get(self._maps[hash(key) % self._n], key, MISSING)
        if self._cache and value is not MISSING:
            value = self._unwrap(key, value)
        if self._tally is not None:
            self._tally.add(value is MISSING)
        return default if value is MISSING else value

    def _unwrap(self, key: Any, entry: _Entry) -> Any:
        if self._ttl is not None and entry[1] <= monotonic():
            shard = self._section(key)
            # Removing it now is a courtesy; never wait for it (the reader
            # may be a compute callback holding another shard's lock).
            # What it released is dropped on return, after the lock.
            call_if_free(shard.lock, lambda: shard.expire_locked(key, entry), None)  # type: ignore[attr-defined]  # a ttl: a _CacheShard
            return MISSING
        entry[2] = True  # CLOCK's referenced bit: one list item store, atomic
        return entry[0]

    # `in` and len(): ShardedCore's, which come here for caches and with stats on.
    def _contains_slow(self, key: object) -> bool:
        entry = dict_get(self._maps[hash(key) % self._n], key, MISSING)
        if entry is MISSING:
            return False
        return not self._cache or entry[1] > monotonic()

    def _len_slow(self) -> int:
        if self._ttl is None:
            return hold_all(self._all_locks, self._count_locked)
        copies = hold_all(self._all_locks, self._copy_dicts_locked)
        now = monotonic()
        return sum(1 for d in copies for e in d.values() if e[1] > now)

    def approx_len(self) -> int:
        """The number of entries, without locks: exact when no write is in flight."""
        if self._ttl is None:
            return self._count_locked()  # each len() is one atomic dict op
        now = monotonic()
        return sum(1 for d in self._maps for e in copy_of(d).values() if e[1] > now)

    def _count_locked(self) -> int:
        return sum(map(len, self._maps))

    def _copy_dicts_locked(self) -> list[dict[Any, Any]]:
        return [copy_of(d) for d in self._maps]

    def __iter__(self) -> Iterator[K]:
        if not self._cache:
            return chain.from_iterable([copy_of(d) for d in self._maps])  # each copy is one atomic op
        return (key for key, _ in self._iter_items())

    def _iter_items(self) -> Iterator[tuple[K, V]]:
        # Per-shard copies, all taken before the walk starts: keys added
        # while the caller iterates are never visited, as with the others.
        return chain.from_iterable([shard.items_now() for shard in self._shards])

    def snapshot(self) -> dict[K, V]:
        # Every lock held (in the lock order) only while copying; merging the
        # copies into one dict hashes keys, which is user code, so it runs after.
        parts = hold_all(self._all_locks, self._items_locked)
        out: dict[K, V] = {}
        for part in parts:
            out.update(part)
        return out

    def _items_locked(self) -> list[Any]:
        return [shard.items_now() for shard in self._shards]

    def _compute(self, key: K, fn: Callable[..., Any], mode: int, value: Any = None) -> V | None:
        # A callback holds its key's shard lock and may touch any other
        # shard. Two callbacks on different shards writing each other's
        # keys would deadlock, so callbacks run one at a time per map.
        with self._callback_lock:
            return MapBase._compute(self, key, fn, mode, value)

    def popitem(self) -> tuple[K, V]:
        """Remove and return some (key, value) pair; KeyError if empty."""
        start = self._pop_from[0]
        self._pop_from[0] = (start + 1) % self._n  # spreads pops; a lost rotation is harmless
        for offset in range(self._n):
            shard = self._shards[(start + offset) % self._n]
            found = None
            with shard.lock:
                if _FAULTS:
                    _faults.point("sharded.popitem.locked")
                for key in reversed(list(shard.d)):
                    value = shard.peek(key, MISSING)
                    if value is MISSING:
                        continue  # expired just now
                    self._check_not_computing(key)
                    found = key, value, shard.drop(key)
                    break
            if found is not None:
                return found[0], found[1]
        raise KeyError("popitem(): ShardedMap is empty")

    def clear(self) -> None:
        self._check_not_in_callback("clear()")  # before any shard changes
        hold_all(self._all_locks, self._clear_locked)

    def _clear_locked(self) -> None:
        # Every lock is held, so no other write interleaves; an interrupt
        # half-way puts back what was cleared (it happened or it did not).
        cleared: list[tuple[_Shard, Any]] = []
        try:
            for shard in self._shards:
                if _FAULTS:
                    _faults.point("sharded.clear.locked")
                if isinstance(shard, _CacheShard):
                    cleared.append((shard, shard.clear_locked()))
                else:
                    cleared.append((shard, copy_of(shard.d)))  # released after the locks
                    shard.d.clear()
        except BaseException:
            for shard, saved in cleared:
                if isinstance(shard, _CacheShard):
                    d, shard.order, shard.by_expiry, shard.trash = saved
                    shard.d.update(d)
                else:
                    shard.d.update(saved)
            raise

    def _put_many(self, pairs: list[tuple[Any, Any]]) -> None:
        by_shard: dict[int, list[tuple[Any, Any]]] = {}
        for key, value in pairs:
            # Checked before any shard changes. Only this thread's own
            # callbacks count, and only it can remove them meanwhile.
            self._check_not_computing(key)
            by_shard.setdefault(hash(key) % self._n, []).append((key, value))
        order = sorted(by_shard)
        locks = tuple(self._shards[i].lock for i in order)
        if len(locks) > 1:
            locks = (self._callback_lock, *locks)  # the lock order (see the class doc)
        released = hold_all(locks, lambda: self._put_groups_locked(order, by_shard))
        del released  # after the locks

    def _put_groups_locked(self, order: list[int], by_shard: dict[int, list[tuple[Any, Any]]]) -> list[object]:
        # Holding every involved shard: atomic with respect to other writes.
        # An interrupt half-way restores what each key held before.
        released: list[object] = []
        started = []
        try:
            for i in order:
                shard, group = self._shards[i], by_shard[i]
                d = shard.d
                olds = [(key, dict_get(d, key, MISSING)) for key, _ in group]
                started.append((d, olds))
                if _FAULTS:
                    _faults.point("sharded.put_many.locked")
                if self._cache:
                    released.append([shard.put(key, value) for key, value in group])
                else:
                    d.update(group)
                released.append(olds)
        except BaseException:
            for d, olds in started:
                for key, old in olds:
                    if old is MISSING:
                        d.pop(key, None)
                    else:
                        d[key] = old
            raise
        return released

    # -- copies, pickling, stats ------------------------------------------------------

    def copy(self) -> Self:
        """A shallow copy with the same options; entries keep their expiry times and order."""
        new = type(self)(**self._options())
        for i, shard in enumerate(self._shards):
            target = new._shards[i]  # same options and process: same shard
            with shard.lock:
                if self._cache:
                    now = monotonic()
                    for k, e in shard.live_in_order_locked():  # type: ignore[attr-defined]  # a _CacheShard
                        if e[1] > now:
                            target.put_entry_locked(k, e[0], e[1])  # type: ignore[attr-defined]  # a _CacheShard
                else:
                    new._maps[i].update(shard.d)
        return new

    __copy__ = copy

    def _export(self) -> Any:
        # Expiry times are monotonic-clock values, meaningless in another
        # process, so pickles carry each entry's remaining lifetime, in
        # expiry order (keys land in other shards there: str hashes differ).
        if not self._cache:
            return list(self.snapshot().items())
        now = monotonic()
        out = []
        for shard in self._shards:
            with shard.lock:
                live = shard.live_in_order_locked()  # type: ignore[attr-defined]  # cache mode: a _CacheShard
            for key, entry in live:
                if entry[1] > now:
                    out.append((key, entry[0], None if entry[1] == _NEVER else entry[1] - now))
        if self._ttl is not None:
            out.sort(key=lambda item: item[2])  # type: ignore[arg-type, return-value]  # stable; a ttl: all floats
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
            with shard.lock:
                released = shard.put_entry_locked(  # type: ignore[attr-defined]  # cache mode: a _CacheShard
                    key, value, _NEVER if remaining is None else now + remaining
                )
            del released

    def stats(self) -> dict[str, Any]:
        """Counters: size, evictions, expirations; with ``stats=True`` also
        per-shard lock contention and hits/misses."""
        per_shard = []
        for shard in self._shards:
            with shard.lock:
                per_shard.append(shard.counters())
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

    if TYPE_CHECKING:
        # ShardedCore's get and m[k] = v, with the map's types (the core's own
        # signatures take any key and value).
        @overload
        def get(self, key: K, /) -> V | None: ...
        @overload
        def get(self, key: K, default: V, /) -> V: ...
        @overload
        def get(self, key: K, default: T, /) -> V | T: ...
        def get(self, key: K, default: Any = None, /) -> Any: ...
        def __setitem__(self, key: K, value: V, /) -> None: ...

    def _after_fork_child(self) -> None:
        for lock in self._all_locks:
            _forks.reinit_lock(lock)
        _forks.drop_dead_tokens(self._computing)


def _positive_int(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value
