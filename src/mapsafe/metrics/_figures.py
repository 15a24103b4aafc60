"""What mapsafe.metrics exports: the metric table, and each map's counters read without its locks.

Nothing here imports prometheus_client or OpenTelemetry: the two exporters
render the same figures.

No reader takes a lock of the map it reads, so a scrape never waits for a
writer and no writer ever waits for a scrape. Every read below is one of:

* a single built-in dict or list operation (``len(d)``, ``counts[0]``):
  atomic with or without the GIL;
* ``Tally.totals()``, made of such operations (see stats.Tally);
* a C ``ProfiledRLock.as_dict()``, which loads its counters with relaxed
  atomics (_speedups.c);
* a read of a ``__slots__`` attribute: the pure core's ``ProfiledRLock``
  counters and ``_CacheShard.evictions``/``expirations``, which their
  writers rebind (``n += 1``) holding the lock. That read is one pointer
  load and a safe new reference, never a torn or freed value: under the
  GIL trivially; on free-threaded CPython the member descriptor's get
  (Python/structmember.c, ``PyMember_GetOne``, ``Py_T_OBJECT_EX``) and the
  specialised ``LOAD_ATTR_SLOT`` both load the pointer atomically and take
  the reference with ``_Py_TryIncrefCompare``, which fails (and the read
  retries, under the object's own per-object mutex, never the map's lock)
  if a store replaced it meanwhile; the store (``PyMember_SetOne``) swaps
  the pointer with a release store and drops the old value only after.

So each figure is a value the counter really had, but two figures (or two
shards) may be read at slightly different instants: a scrape can be a few
operations stale, or count half of a ``write()`` block in progress. That
is fine for monitoring; ``stats()``, which locks, is for exact totals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Iterator, NamedTuple

from ..cache import Cache
from ..lockedmap import LockedMap
from ..shardedmap import ShardedMap
from ..syncmap import SyncMap

__all__ = ["METRICS", "Metric", "Figure", "check_maps", "read"]


class Metric(NamedTuple):
    """One exported figure: its Prometheus and OpenTelemetry names, kind and help text."""

    key: str
    prometheus: str  # family name; a counter's sample adds "_total"
    kind: str  # "counter" or "gauge"
    unit: str  # Prometheus unit ("" for none): the name ends with it
    otel: str  # OpenTelemetry instrument name; its Prometheus translation is `prometheus`
    otel_unit: str
    help: str


# The table both exporters render, in exposition order.
METRICS = (
    Metric("lock_acquisitions", "mapsafe_lock_acquisitions", "counter", "", "mapsafe.lock.acquisitions",
           "{acquisition}", "Acquisitions of the map's lock (a ShardedMap's, per shard); stats=True maps only."),
    Metric("lock_contended", "mapsafe_lock_contended", "counter", "", "mapsafe.lock.contended",
           "{acquisition}", "Acquisitions of the map's lock that had to wait (and LockedMap waits for a "
           "read() or write() block); stats=True maps only."),
    Metric("lock_wait_seconds", "mapsafe_lock_wait_seconds", "counter", "seconds", "mapsafe.lock.wait",
           "s", "Time spent in those waits; stats=True maps only."),
    Metric("hits", "mapsafe_hits", "counter", "", "mapsafe.hits",
           "{hit}", "Reads that found their key; stats=True maps and Cache only."),
    Metric("misses", "mapsafe_misses", "counter", "", "mapsafe.misses",
           "{miss}", "Reads that did not find their key; stats=True maps and Cache only."),
    Metric("evictions", "mapsafe_evictions", "counter", "", "mapsafe.evictions",
           "{eviction}", "Entries removed to stay within maxsize; bounded ShardedMap and Cache only."),
    Metric("expirations", "mapsafe_expirations", "counter", "", "mapsafe.expirations",
           "{expiration}", "Expired entries removed; ShardedMap with maxsize or ttl, and Cache, only."),
    Metric("size", "mapsafe_size", "gauge", "", "mapsafe.size",
           "{entry}", "Entries held, counting expired ones not yet removed."),
)


class Figure(NamedTuple):
    """One sample: a metric's value for a map (and a shard of it, or None)."""

    metric: str  # a Metric.key
    map: str
    shard: str | None
    value: float


# A reader yields (metric key, shard or None, value) for one map.
Reader = Callable[[Any], Iterator[tuple[str, "str | None", float]]]

_LOCK_FIGURES = (("lock_acquisitions", "acquisitions"), ("lock_contended", "contended"),
                 ("lock_wait_seconds", "wait_seconds"))


def _lock_figures(profile: dict[str, Any], shard: str | None) -> Iterator[tuple[str, str | None, float]]:
    for key, name in _LOCK_FIGURES:
        yield key, shard, profile[name]


def _read_syncmap(m: SyncMap[Any, Any]) -> Iterator[tuple[str, str | None, float]]:
    # SyncMap.stats() takes no lock: len() of its dict, Tally.totals() and
    # the profiled lock's as_dict().
    stats = m.stats()
    yield "size", None, stats["size"]
    if stats["enabled"]:
        yield from _lock_figures(stats["lock"], None)
        yield "hits", None, stats["hits"]
        yield "misses", None, stats["misses"]


def _read_lockedmap(m: LockedMap[Any, Any]) -> Iterator[tuple[str, str | None, float]]:
    # Not stats(), which takes the RWLock's mutex and waits out a write()
    # block. _d, _counts and _lock are set once. len(_d) without the lock
    # is one atomic dict op; it may count part of a write() block.
    yield "size", None, len(m._d)
    counts = m._counts  # [hits, misses], bumped holding the mutex; each item read is one list op
    if counts is not None:
        yield from _lock_figures(m._lock.as_dict(), None)  # type: ignore[union-attr]  # stats on: a ProfiledRLock
        yield "hits", None, counts[0]
        yield "misses", None, counts[1]


def _read_shardedmap(m: ShardedMap[Any, Any]) -> Iterator[tuple[str, str | None, float]]:
    # Not stats(), which takes every shard's lock in turn and then all of
    # them for len(). _Shard.counters() reads only len(d), the lock's
    # as_dict() and, for cache shards, two int slots: no lock needed.
    for i, shard in enumerate(m._shards):  # a tuple, set once
        counters = shard.counters()
        label = str(i)
        yield "size", label, counters["size"]
        if "acquisitions" in counters:
            yield from _lock_figures(counters, label)
        if "evictions" in counters:
            yield "evictions", label, counters["evictions"]
            yield "expirations", label, counters["expirations"]
    tally = m._tally  # set once; hits and misses are counted per map, not per shard
    if tally is not None:
        totals = tally.totals()
        yield "hits", None, totals["hits"]
        yield "misses", None, totals["misses"]


def _read_cache(c: Cache[Any, Any]) -> Iterator[tuple[str, str | None, float]]:
    # Not stats(), which takes the cache's lock. Since construction, not
    # since cache_clear() as stats() counts: an exported counter only rises.
    totals = c._tally.totals()
    evictions = c._evictions  # [for size, expired], bumped holding _lock; each item read is one list op
    yield "size", None, len(c._data)  # one dict op; counts expired entries not yet removed, as len() does
    yield "hits", None, totals["hits"]
    yield "misses", None, totals["misses"]
    yield "evictions", None, evictions[0]
    yield "expirations", None, evictions[1]


# In lookup order: the first class the map is an instance of picks its reader.
_READERS: tuple[tuple[type, Reader], ...] = (
    (SyncMap, _read_syncmap),
    (LockedMap, _read_lockedmap),
    (ShardedMap, _read_shardedmap),
    (Cache, _read_cache),
)
_SUPPORTED = "a mapsafe SyncMap, LockedMap, ShardedMap or Cache"

Checked = tuple[tuple[str, Any, Reader], ...]


def check_maps(maps: Any) -> Checked:
    """``maps`` (name -> map) as (name, map, reader) triples; TypeError or ValueError naming what is wrong."""
    if not isinstance(maps, Mapping):
        raise TypeError(f"maps must be a mapping of names to maps, like maps={{'sessions': m}}; "
                        f"got {type(maps).__name__}")
    checked = []
    for name, m in maps.items():
        if not isinstance(name, str):
            raise TypeError(f"maps: each name must be a str, got {type(name).__name__} {name!r}")
        if not name:
            raise ValueError("maps: a name must not be empty (it is the 'map' label)")
        for cls, reader in _READERS:
            if isinstance(m, cls):
                checked.append((name, m, reader))
                break
        else:
            hint = ""
            if isinstance(getattr(m, "cache", None), Cache):
                hint = " (for a @cached function, pass its .cache)"
            raise TypeError(f"maps[{name!r}] must be {_SUPPORTED}, got {type(m).__name__}{hint}")
    return tuple(checked)


def read(maps: Checked) -> list[Figure]:
    """Every figure of every map, read without taking any map's lock."""
    return [Figure(key, name, shard, value) for name, m, reader in maps for key, shard, value in reader(m)]
