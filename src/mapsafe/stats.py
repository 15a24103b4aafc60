"""Opt-in counters for the maps: hit/miss tallies (lock profiles are _core.ProfiledRLock)."""

from __future__ import annotations

from threading import get_ident

from .mapbase import copy_of

__all__ = ["Tally"]


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
        cells = copy_of(self._cells)  # one atomic dict op; cells are never removed
        return {name: sum(cell[i] for cell in cells.values()) for i, name in enumerate(self.names)}
