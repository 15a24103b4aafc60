"""S3-FIFO, the eviction policy of mapsafe.Cache: a small probation queue, a main queue and a ghost list.

Why S3-FIFO (Yang et al., SOSP 2023) rather than LRU, W-TinyLFU or SIEVE:

* a hit only raises a 2-bit frequency counter in the entry: nothing is
  reordered, so reads take no lock (LRU must move the entry on every hit,
  which is why ``functools.lru_cache`` and cachetools serialise readers);
* new keys go through a small FIFO (10% of the capacity). A key read only
  once (a scan) leaves from there without pushing out the working set, which
  is what LRU does badly on loop-plus-scan traces;
* keys evicted from the small queue are remembered (keys only) in a ghost
  list; one that comes back within a ghost's lifetime goes straight to the
  main queue, which covers W-TinyLFU's frequency admission at a fraction of
  its code (no count-min sketch, no hill climbing). ``mapsafe bench``'s cache
  workloads measure the hit rates against LRU.

An entry is a list (see ``cache.py`` for its slots). Every method here must
be called holding the cache's lock, and none allocates an object the cyclic
GC tracks, so no finalizer can run in the middle of one.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

__all__ = ["S3Fifo", "SMALL", "MAIN", "DEAD", "FREQ_MAX"]

# Entry slots used here; cache.py defines the full layout.
KEY, WEIGHT, FREQ, QUEUE = 1, 2, 5, 6
SMALL, MAIN, DEAD = 0, 1, 2  # entry[QUEUE]: which queue holds it, or removed
FREQ_MAX = 3  # the counter saturates: 2 bits of history are enough (the paper's choice)
_SMALL_SHARE = 0.1  # of the capacity, for the probation queue


class S3Fifo:
    """The queues of one bounded cache. Not thread-safe: the cache's lock guards all of it."""

    __slots__ = (
        "capacity", "small_target", "small", "main", "small_weight", "main_weight",
        "ghost", "ghost_queue", "dead",
    )

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity  # in weight units (entries when unweighted); fixed
        self.small_target = max(1, int(capacity * _SMALL_SHARE))
        # Entries in FIFO order, oldest at the left. An entry removed by other
        # means (invalidated, replaced) stays queued marked DEAD until popped
        # or compacted away; `dead` counts those.
        self.small: deque[list[Any]] = deque()
        self.main: deque[list[Any]] = deque()
        self.small_weight = 0  # total weight of the live entries in `small`
        self.main_weight = 0  # total weight of the live entries in `main`
        # Keys recently evicted from `small`, oldest at the left, as a queue
        # plus a count per key (a key may be queued more than once).
        self.ghost: dict[Any, int] = {}
        self.ghost_queue: deque[Any] = deque()
        self.dead = 0

    def admit_locked(self, entry: list[Any]) -> None:
        """Queue a new entry: into main if its key is a recent ghost, else into small."""
        if entry[KEY] in self.ghost:
            entry[QUEUE] = MAIN
            self.main.append(entry)
            self.main_weight += entry[WEIGHT]
        else:
            entry[QUEUE] = SMALL
            self.small.append(entry)
            self.small_weight += entry[WEIGHT]

    def forget_locked(self, entry: list[Any]) -> None:
        """An entry left the cache by other means than eviction: unqueue it lazily."""
        where = entry[QUEUE]
        if where == SMALL:
            self.small_weight -= entry[WEIGHT]
        elif where == MAIN:
            self.main_weight -= entry[WEIGHT]
        else:
            return
        entry[QUEUE] = DEAD
        self.dead += 1
        if self.dead > 64 and self.dead > len(self.small) + len(self.main) - self.dead:
            self._compact_locked()

    def clear_locked(self) -> None:
        self.small.clear()
        self.main.clear()
        self.small_weight = self.main_weight = self.dead = 0
        self.ghost.clear()
        self.ghost_queue.clear()

    def victim_locked(self, expired: Callable[[list[Any], float], bool], now: float) -> tuple[list[Any], bool] | None:
        """Take the next entry to evict out of the queues: ``(entry, was_expired)``, None if empty.

        A small-queue entry that was read since it was queued moves to main
        (with its counter reset); a main entry that was read is requeued
        with its counter lowered by one. Readers raise counters without the
        lock, so requeueing is capped at four passes over main: the loop
        always ends.
        """
        requeues = 4 * len(self.main) + 4
        for _ in range(len(self.small) + len(self.main) + requeues + 1):
            if self.small and (self.small_weight > self.small_target or not self.main):
                entry = self.small.popleft()
                if entry[QUEUE] == DEAD:
                    self.dead -= 1
                    continue
                self.small_weight -= entry[WEIGHT]
                if expired(entry, now):
                    entry[QUEUE] = DEAD
                    return entry, True
                if entry[FREQ] > 0:
                    entry[FREQ] = 0
                    entry[QUEUE] = MAIN
                    self.main.append(entry)
                    self.main_weight += entry[WEIGHT]
                    continue
                entry[QUEUE] = DEAD
                self._remember_locked(entry[KEY])
                return entry, False
            if not self.main:
                return None
            entry = self.main.popleft()
            if entry[QUEUE] == DEAD:
                self.dead -= 1
                continue
            if expired(entry, now):
                self.main_weight -= entry[WEIGHT]
                entry[QUEUE] = DEAD
                return entry, True
            if entry[FREQ] > 0 and requeues > 0:
                requeues -= 1
                entry[FREQ] -= 1  # a reader's lock-free increment may be lost here: only a hint
                self.main.append(entry)
                continue
            self.main_weight -= entry[WEIGHT]
            entry[QUEUE] = DEAD
            return entry, False
        return None

    def _remember_locked(self, key: Any) -> None:
        ghost = self.ghost
        ghost[key] = ghost.get(key, 0) + 1
        self.ghost_queue.append(key)
        # As many ghosts as live entries: the paper sizes the ghost list like main.
        limit = max(16, len(self.small) + len(self.main) - self.dead)
        queue = self.ghost_queue
        for _ in range(len(queue) - limit):
            old = queue.popleft()
            left = ghost.get(old, 1) - 1
            if left > 0:
                ghost[old] = left
            else:
                ghost.pop(old, None)

    def _compact_locked(self) -> None:
        # Rotated in place, keeping order: no new GC-tracked object.
        for queue in (self.small, self.main):
            for _ in range(len(queue)):
                entry = queue.popleft()
                if entry[QUEUE] != DEAD:
                    queue.append(entry)
        self.dead = 0
