"""Which test phase an access happened in, told from its epoch (tid, clk)."""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

__all__ = ["Timeline"]


class Timeline:
    """The phases of a test session in order, and each live thread's epoch when each began.

    A phase is one of a test's setup, call and teardown; phase 0 is
    everything before the first test (collection). ``begin()`` must be
    called by the thread that runs pytest's hooks, and only by it: it ticks
    that thread's own clock, so its accesses in different phases always
    have different epochs and map back exactly.

    Another thread's access is placed by that thread's epoch when each
    phase began: the latest phase that began at or before the access's
    epoch, or failing that the phase in which the thread was first seen. A
    thread that did no synchronization across a phase boundary keeps its
    epoch, so its accesses from before the boundary are counted in the
    later phase.
    """

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.runner = detector.state()  # the thread that runs pytest's hooks
        # The rest is read and written only by the runner thread, in begin()
        # and phase_of(); no lock.
        self.labels: list = [None]  # phase index -> label; None is phase 0, outside any test
        self.first_tid: list = [0]  # phase index -> detector.next_tid when it began; nondecreasing
        # tid -> ([clk, ...], [phase, ...]): the thread's epoch at the start of
        # each phase it was alive for, clk strictly increasing (an unchanged
        # clk moves its entry to the later phase, which phase_of() would pick).
        self.epochs: dict = {}
        self.live: list = []  # tids alive at the last begin(), to snapshot at the next
        self.known = 0  # tids below this are in ``live`` or were seen to finish

    def begin(self, label: Any) -> int:
        """A new phase starts now; returns its index."""
        D = self.detector
        ts = self.runner
        # Our own clock, which only we write: a tick gives this phase's
        # accesses epochs above every earlier one. (Not snapshot_and_tick(),
        # which copies the whole clock.)
        ts.vc[ts.tid] += 1
        with D.lock:
            next_tid = D.next_tid
        index = len(self.labels)
        self.labels.append(label)
        self.first_tid.append(next_tid)
        live = []
        for tid in self.live + list(range(self.known, next_tid)):
            state = D.by_tid.get(tid)
            if state is None or not state.running:
                continue
            live.append(tid)
            # Another thread's clock, read without its owner's knowledge: a
            # single dict get, and an entry that is only ever incremented.
            clk = state.vc.get(tid, 0)
            clks, phases = self.epochs.setdefault(tid, ([], []))
            if clks and clks[-1] >= clk:
                phases[-1] = index
            else:
                clks.append(clk)
                phases.append(index)
        self.live = live
        self.known = next_tid
        return index

    def phase_of(self, tid: int, clk: int) -> int:
        """The index of the phase in which thread ``tid`` made an access at epoch ``clk``."""
        record = self.epochs.get(tid)
        if record is not None:
            i = bisect_right(record[0], clk) - 1
            if i >= 0:
                return record[1][i]
        # Before its first snapshot: the phase in which the thread appeared.
        return bisect_right(self.first_tid, tid) - 1

    def label_of(self, tid: int, clk: int) -> Any:
        return self.labels[self.phase_of(tid, clk)]
