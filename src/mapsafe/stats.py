"""Opt-in counters for the maps: hit/miss tallies (lock profiles are _core.ProfiledRLock)."""

from __future__ import annotations

from threading import get_ident, local

from .mapbase import copy_of

__all__ = ["Tally"]


class Tally:
    """Named counters that any thread may bump without a lock.

    Each thread increments only its own cell (a list), found through a dict
    keyed by thread ident and remembered in a thread-local for speed.
    Inserting a cell is one ``dict.setdefault`` and reading a cell item is
    one list operation, both atomic on free-threaded CPython; a cell's
    read-modify-write is safe because only its owner thread writes it. An
    ident reused by a new thread inherits the cell of a dead one, which
    keeps totals right and the number of cells at most the number of
    threads alive at once.
    """

    __slots__ = ("names", "_cells", "_local")

    def __init__(self, *names: str) -> None:
        self.names = names
        self._cells: dict[int, list[int]] = {}  # thread ident -> per-name counts; see class doc
        self._local = local()  # .cell: this thread's entry of _cells

    def add(self, index: int, n: int = 1) -> None:
        try:
            cell = self._local.cell
        except AttributeError:
            cell = self._local.cell = self._cells.setdefault(get_ident(), [0] * len(self.names))
        cell[index] += n

    def totals(self) -> dict[str, int]:
        cells = copy_of(self._cells)  # one atomic dict op; cells are never removed
        return {name: sum(cell[i] for cell in cells.values()) for i, name in enumerate(self.names)}
