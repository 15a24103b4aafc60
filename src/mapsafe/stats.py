"""Opt-in counters for the maps: lock contention profiles and hit/miss tallies."""

from __future__ import annotations

from threading import get_ident
from time import perf_counter
from typing import Any, Callable

__all__ = ["LockProfile", "Tally"]


class LockProfile:
    """A mutex contention profile for one lock, like Go's mutex profile.

    Every counter is written only by the thread that has just acquired the
    profiled lock, so the lock itself guards them: no extra synchronisation.
    Readers (``as_dict``) may see values a moment old, never torn ones,
    because each field is one object reference.
    """

    __slots__ = ("acquisitions", "contended", "wait_seconds", "_try_acquire")

    def __init__(self, acquire: Callable[..., bool]) -> None:
        self.acquisitions = 0  # successful acquisitions; guarded by the profiled lock
        self.contended = 0  # acquisitions that had to wait; guarded by the profiled lock
        self.wait_seconds = 0.0  # total time spent waiting; guarded by the profiled lock
        self._try_acquire = acquire  # the raw lock's acquire; set once

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the profiled lock, counting whether it was contended."""
        if self._try_acquire(False):
            self.acquisitions += 1
            return True
        if not blocking:
            return False
        start = perf_counter()
        if not self._try_acquire(True, timeout):
            return False
        self.acquisitions += 1
        self.contended += 1
        self.wait_seconds += perf_counter() - start
        return True

    def add_wait(self, seconds: float) -> None:
        """Count a wait that happened while the lock was held (a condition wait)."""
        self.contended += 1
        self.wait_seconds += seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "acquisitions": self.acquisitions,
            "contended": self.contended,
            "wait_seconds": self.wait_seconds,
        }


class Tally:
    """Named counters that any thread may bump without a lock.

    Each thread increments only its own cell (a list), found through a dict
    keyed by thread ident. Inserting a cell is one ``dict.setdefault`` and
    reading a cell item is one list operation, both atomic on free-threaded
    CPython; a cell's read-modify-write is safe because only its owner
    thread writes it. An ident reused by a new thread inherits the cell of
    a dead one, which keeps totals right.
    """

    __slots__ = ("names", "_cells")

    def __init__(self, *names: str) -> None:
        self.names = names
        self._cells: dict[int, list[int]] = {}  # thread ident -> per-name counts; see class doc

    def add(self, index: int, n: int = 1) -> None:
        ident = get_ident()
        cell = self._cells.get(ident)
        if cell is None:
            cell = self._cells.setdefault(ident, [0] * len(self.names))
        cell[index] += n

    def totals(self) -> dict[str, int]:
        cells = self._cells.copy()  # one atomic dict op; cells are never removed
        return {name: sum(cell[i] for cell in cells.values()) for i, name in enumerate(self.names)}
