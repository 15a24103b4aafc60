"""The detector at run time: thread clocks, sync clocks, and the per-access entry points.

The helpers that rewritten code calls are in ``helpers``; how
synchronization objects order threads is in ``sync`` and ``hooks``.
"""

from __future__ import annotations

import _thread
import os
import sys
from typing import Any, Callable

from ..errors import DataRaceError
from .clock import join_into
from .shadow import HISTORY, STACK_DEPTH, Race, Shadow, ThreadInfo, capture

__all__ = ["Detector", "ThreadState"]


def _stack_boundaries() -> None:
    """Tell capture() which frames are the detector's and where plumbing begins."""
    from . import shadow

    here = os.path.dirname(os.path.abspath(__file__))
    stdlib = os.path.dirname(os.path.abspath(os.__file__))
    shadow.SKIP_FILES.update(os.path.join(here, f) for f in ("runtime.py", "helpers.py", "sync.py", "hooks.py",
                             "hooks_base.py", "hooks_threading.py", "hooks_futures.py", "hooks_connection.py",
                             "hooks_maps.py", "hooks_cache.py", "hooks_finalize.py"))
    shadow.STOP_FILES.update(
        [os.path.join(here, "runner.py"), os.path.join(stdlib, "threading.py"), os.path.join(stdlib, "runpy.py"),
         "<frozen runpy>", os.path.join(stdlib, "concurrent", "futures", "thread.py")]
    )


_stack_boundaries()
_GENERATIONS = 16  # earlier threads of a slot that reports can still name
_SLOT_SCAN = 16  # ended threads looked at per thread start for a free slot
_get_ident = _thread.get_ident
_getframe = sys._getframe


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../mapsafe


def _raised_by_user_code(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is outside mapsafe."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return not tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR)


class ThreadState:
    """Per-thread detector state. Only the owning thread reads or writes
    ``vc`` and ``busy``, so neither needs a lock."""

    __slots__ = ("tid", "vc", "name", "thread", "created", "running", "busy", "first", "final", "first_free")

    def __init__(self, tid: int, vc: dict, name: str, thread: Any, created: tuple, first: int = 1) -> None:
        # The slot: the index into vector clocks. A slot is handed on to a new
        # thread only once the old one ended before the new one's start (see
        # Detector._free_slot_locked), and the new one's epochs start past the
        # old one's, so an access's (tid, clk) still names one thread.
        self.tid = tid
        self.vc = vc  # this thread's vector clock; vc[tid] is its current epoch
        self.first = first  # this thread's first epoch in the slot; read-only
        self.final = 0  # once ended: the epoch of its last remembered access; Detector.lock
        self.first_free = 0  # once ended: the first epoch its slot's next thread may use; Detector.lock
        self.name = name  # Detector.lock once the thread ended
        # The threading.Thread, for its current name; None if unknown, and
        # dropped when it ends (it holds the program's target and args). Detector.lock.
        self.thread = thread
        self.created = created  # frames of the Thread.start() call
        self.running = True  # written once at exit, under Detector.lock; read by reports
        self.busy = False  # True while this thread is inside the detector (no re-entry)

    def info(self) -> ThreadInfo:
        """What reports say of this thread (caller holds Detector.lock)."""
        name = self.thread.name if self.thread is not None else self.name
        return ThreadInfo(self.tid, name, self.running, self.created)


class _SyncClock:
    """The clock of one synchronization object (lock, event, queue, future...)."""

    __slots__ = ("lock", "ref", "vc", "items", "last")

    def __init__(self, ref: Any) -> None:
        self.lock = _thread.allocate_lock()  # guards vc, items and last
        self.ref = ref  # weakref to the object, so a reused id() is recognised
        self.vc: dict = {}  # covers every release so far; acquirers join it in
        self.items: Any = None  # queues: a sync._Puts of the clocks of queued items; owned by sync.py
        self.last = -1  # tid of the last releaser (see acquire_mutex)


class Detector:
    """One race detector: shadow state, clocks, and where races go.

    ``sink(race)`` is called, outside any lock, for each new race that is
    neither a duplicate nor suppressed; with ``halt_on_error``, ``halt(race)``
    after the first one.
    """

    def __init__(
        self,
        sink: Callable[[Race], None] | None = None,
        *,
        halt_on_error: bool = False,
        halt: Callable[[Race], None] | None = None,
        history: int = HISTORY,
        reuse_slots: bool = True,
        suppressed: Callable[[Race], bool] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        # Guards the tables (thread ids, sync clocks) and the race list.
        # Allocated from _thread so user patches of threading cannot touch it.
        # Per-access work takes only the accessed dict's own lock.
        self.lock = _thread.allocate_lock()
        self.shadow = Shadow(_thread.allocate_lock, history=history)
        self.key_read = self.shadow.key_read
        self.key_write = self.shadow.key_write
        self.whole_read = self.shadow.whole_read
        self.clear = self.shadow.clear
        self.order_write = self.shadow.order_write
        self.by_ident: dict = {}  # get_ident() -> ThreadState; single dict get/set only
        self.by_tid: dict = {}  # tid -> ThreadState; set under lock, read with single gets
        # id(obj) -> _SyncClock. Read with single gets; new ids inserted by
        # setdefault with no lock; replaced and swept only under lock (_clock).
        self.sync: dict = {}
        self._sync_next_sweep = 1024  # len(sync) at which dead entries are dropped; written under lock
        self.next_tid = 0  # lock
        # Thread slots: an ended thread's slot goes to a later thread started
        # after its end, so clocks stay as long as the threads alive at once.
        # The pytest plugin's timeline needs slots never reused: it passes False.
        self.reuse_slots = reuse_slots
        self.free: list = []  # slots of ended threads, oldest first; lock
        # slot -> [(first epoch, ThreadInfo)] of its earlier threads, the last
        # _GENERATIONS of them, for reports on their remembered accesses; lock
        self.retired: dict = {}
        self.seen: set = set()  # site pairs already reported; lock
        self.races: list = []  # reported races, in order; appended under lock
        self.suppressed_count = 0  # lock
        self.sink = sink
        self.halt_on_error = halt_on_error
        # With halt_on_error: called once, outside any lock, after the first
        # race went to the sink; `mapsafe race` ends the process there. Without
        # one (a library user), DataRaceError is raised in the racing thread.
        self.halt = halt
        self.suppressed = suppressed
        self.warn = warn or (lambda msg: sys.__stderr__.write(msg + "\n"))
        self.warned = False  # one warning per run for internal faults
        self.closed = False  # once True, new races are counted but not reported
        self.halted = False
        with self.lock:
            main = self._new_state_locked(_get_ident(), {}, "MainThread", None, ())
        self.main_tid = main.tid

    # -- threads -------------------------------------------------------

    def _new_state_locked(
        self, ident: int, vc: dict, name: str, thread: Any, created: tuple, slot: Any = None
    ) -> ThreadState:
        if slot is None:
            tid, first = self.next_tid, 1
            self.next_tid += 1
        else:  # (tid, first epoch), from _free_slot_locked
            tid, first = slot
            old = self.by_tid[tid]
            generations = self.retired.setdefault(tid, [])
            generations.append((old.first, old.info()))
            del generations[:-_GENERATIONS]
        vc = dict(vc)
        vc[tid] = first
        ts = ThreadState(tid, vc, name, thread, created, first)
        self.by_tid[tid] = ts
        self.by_ident[ident] = ts  # a reused ident is replaced by the new thread
        return ts

    def _free_slot_locked(self, vc: dict) -> Any:
        """A slot for a thread about to start with clock ``vc``: one whose
        last thread ended before this start (``vc`` covers its final epoch),
        so everything remembered of that thread is ordered before everything
        the new one does, and treating those accesses as the new thread's own
        hides no race. None when no ended thread is covered yet."""
        free = self.free
        n = len(free)
        # The oldest few (joined in batches, they are covered first) and the
        # newest few (joined one by one); the middle waits its turn.
        for i in sorted({*range(min(n, _SLOT_SCAN)), *range(max(0, n - _SLOT_SCAN), n)}):
            old = self.by_tid[free[i]]
            if vc.get(old.tid, 0) >= old.final:
                del free[i]
                return old.tid, old.first_free
        return None

    def _info_locked(self, tid: int, clk: int) -> ThreadInfo:
        """The thread that made an access at epoch (tid, clk)."""
        ts = self.by_tid[tid]
        if clk >= ts.first:
            return ts.info()
        for first, info in reversed(self.retired.get(tid, ())):
            if clk >= first:
                return info
        return ThreadInfo(tid, f"#{tid} (an ended thread)", False, ())

    def state(self) -> ThreadState:
        """The calling thread's state, made on first sight for threads we did not see start."""
        ts = self.by_ident.get(_get_ident())
        if ts is None:
            with self.lock:
                ts = self._new_state_locked(_get_ident(), {}, f"Thread-{_get_ident()}", None, ())
        return ts

    def thread_starting(self, thread: Any, frame: Any) -> None:
        """Thread.start(): the child will begin with the parent's clock."""
        ts = self.state()
        vc = dict(ts.vc)
        slot = None
        if self.reuse_slots and self.free:  # a racy peek at a list's length: a miss only costs a new slot
            with self.lock:
                slot = self._free_slot_locked(vc)
        # If start() fails the slot is not handed back: only a lost slot.
        thread._mapsafe_race_start = (vc, capture(frame, STACK_DEPTH, False), slot)
        ts.vc[ts.tid] += 1

    def thread_begin(self, thread: Any) -> None:
        """First thing in the new thread, before run()."""
        vc, created, slot = getattr(thread, "_mapsafe_race_start", ({}, (), None))
        with self.lock:
            self._new_state_locked(_get_ident(), vc, thread.name, thread, created, slot)

    def thread_end(self, thread: Any) -> None:
        """Last thing in a thread, before join() can return: publish the final clock."""
        ts = self.by_ident.get(_get_ident())
        if ts is None:
            return
        # Read by the joiner only after join() returned, which the thread's
        # own end synchronizes. The clock itself, not a copy: from here on the
        # thread is done with it. What the thread still runs (threading's own
        # clean-up) is left unchecked (busy for good), so it never ticks.
        ts.busy = True
        end = thread._mapsafe_race_end = ts.vc
        ts.vc = {ts.tid: end[ts.tid]}  # ended threads keep no clock of their own: memory stays flat
        with self.lock:
            ts.running = False
            # The slot is free once a starting thread's clock covers the
            # thread's last remembered access (not its last epoch: a thread
            # that signals "done" and exits ends one epoch past that signal).
            # The slot's next thread starts past every epoch this one used.
            ts.final = self.shadow.last_access.get(ts.tid, 0)
            ts.first_free = end[ts.tid] + 1
            ts.name, ts.thread = thread.name, None
            if self.reuse_slots and ts.tid != self.main_tid:
                self.free.append(ts.tid)

    def thread_joined(self, thread: Any) -> None:
        end = getattr(thread, "_mapsafe_race_end", None)
        if end is not None:
            join_into(self.state().vc, end)

    # -- synchronization objects --------------------------------------

    def _clock(self, obj: Any) -> _SyncClock:
        sc = self.sync.get(id(obj))  # atomic: a single dict operation
        if sc is not None and sc.ref() is obj:
            return sc
        import weakref  # already imported by threading; local to keep this module's imports pure

        try:
            ref = weakref.ref(obj)
        except TypeError:  # not weak-referenceable: hold it (and its id) for good
            ref = (lambda o: lambda: o)(obj)
        if sc is None and len(self.sync) < self._sync_next_sweep:
            # A new object (a Future, a per-request Event): one setdefault, no
            # lock, so threads making them never queue on the detector's lock.
            # It only ever inserts, so it cannot undo what the locked path
            # below or a sweep did; of two threads inserting at once, one
            # clock wins and both use it.
            sc = self.sync.setdefault(id(obj), _SyncClock(ref))
            if sc.ref() is obj:
                return sc
        with self.lock:
            # A dead clock at a reused id, or a sweep due: replaced under the
            # lock, re-checked first (another thread may have done it).
            sc = self.sync.get(id(obj))
            if sc is not None and sc.ref() is obj:
                return sc
            if len(self.sync) >= self._sync_next_sweep:
                for k, v in dict(self.sync).items():  # a copy: inserts go on meanwhile
                    # An entry present is only replaced under this lock, so
                    # the one checked is the one deleted.
                    if v.ref() is None and self.sync.get(k) is v:
                        del self.sync[k]
                self._sync_next_sweep = max(1024, 2 * len(self.sync))
            sc = self.sync[id(obj)] = _SyncClock(ref)
            return sc

    def release(self, obj: Any) -> None:
        """``obj`` was released/signalled: later acquirers are ordered after us."""
        ts = self.state()
        if ts.busy:
            return
        sc = self._clock(obj)
        with sc.lock:
            join_into(sc.vc, ts.vc)
            sc.last = ts.tid
        ts.vc[ts.tid] += 1

    def acquire_mutex(self, lock: Any) -> None:
        """``with lock:`` entered (a Lock, an RLock or a Condition's lock)."""
        ts = self.state()
        if ts.busy:
            return
        sc = self._clock(lock)
        with sc.lock:
            # If we released it last, nobody released since, and our clock
            # already covers sc.vc: skip the join (the common, uncontended case).
            if sc.last != ts.tid:
                join_into(ts.vc, sc.vc)

    def release_mutex(self, lock: Any) -> None:
        """``with lock:`` left. We hold the mutex, so our clock covers every
        earlier release (joined when we acquired it): a copy replaces the join."""
        ts = self.state()
        if ts.busy:
            return
        sc = self._clock(lock)
        with sc.lock:
            sc.vc = dict(ts.vc)
            sc.last = ts.tid
        ts.vc[ts.tid] += 1

    def acquire(self, obj: Any) -> None:
        """``obj`` was acquired/observed: we are ordered after its releases."""
        ts = self.state()
        if ts.busy:
            return
        sc = self._clock(obj)
        with sc.lock:
            join_into(ts.vc, sc.vc)

    def acquire_clock(self, vc: dict) -> None:
        join_into(self.state().vc, vc)

    def snapshot_and_tick(self) -> dict:
        """A copy of our clock for a message (submit, put); then a new epoch."""
        ts = self.state()
        vc = dict(ts.vc)
        ts.vc[ts.tid] += 1
        return vc

    # -- dict accesses -------------------------------------------------

    def access(self, check: Callable[..., Any], d: dict, frame: Any, *args: Any) -> None:
        """Run one Shadow check (key_read, key_write, ...); raises only to halt."""
        ts = self.by_ident.get(_get_ident())
        if ts is None:
            ts = self.state()
        if ts.busy:
            return
        ts.busy = True
        try:
            races = check(d, *args, ts.tid, ts.vc, frame)
        except Exception as exc:  # a fault in the detector must not crash the program
            races = None
            self._fault(exc)
        finally:
            ts.busy = False
        if races:
            self._emit(races)

    # The two hot paths, spelled out (no argument packing): one key read, one key write.

    def read_key(self, d: dict, key: Any, op: str, frame: Any) -> None:
        ts = self.by_ident.get(_get_ident())
        if ts is None:
            ts = self.state()
        if ts.busy:
            return
        ts.busy = True
        try:
            races = self.key_read(d, key, op, ts.tid, ts.vc, frame)
        except Exception as exc:  # a fault in the detector must not crash the program
            races = None
            self._fault(exc)
        finally:
            ts.busy = False
        if races:
            self._emit(races)

    def write_key(self, d: dict, key: Any, op: str, keyset: bool, frame: Any) -> None:
        ts = self.by_ident.get(_get_ident())
        if ts is None:
            ts = self.state()
        if ts.busy:
            return
        ts.busy = True
        try:
            races = self.key_write(d, key, op, keyset, ts.tid, ts.vc, frame)
        except Exception as exc:  # a fault in the detector must not crash the program
            races = None
            self._fault(exc)
        finally:
            ts.busy = False
        if races:
            self._emit(races)

    def created(self, d: dict, frame: Any) -> None:
        ts = self.by_ident.get(_get_ident()) or self.state()
        if ts.busy:
            return
        ts.busy = True
        try:
            self.shadow.created(d, ts.tid, frame)
        except Exception as exc:
            self._fault(exc)
        finally:
            ts.busy = False

    def _fault(self, exc: BaseException) -> None:
        """An operation could not be checked. Raised by the program's own code
        (a key's ``__eq__``, a mapping's ``keys()``), it is the program's to
        raise, and the operation raises it again as plain Python does: silent.
        Raised by the detector itself, it is reported once. A RecursionError or
        MemoryError is the program's whoever raised it (the program's own
        recursion ran out of stack inside the detector): it goes on up, as it
        would have from the operation."""
        if isinstance(exc, (RecursionError, MemoryError)):
            raise exc
        if _raised_by_user_code(exc):
            return
        with self.lock:
            first, self.warned = not self.warned, True
        if first:
            self.warn(
                f"mapsafe race: warning: internal error ({type(exc).__name__}: {exc}); "
                "that operation ran unchecked"
            )

    def _emit(self, races: list) -> None:
        fresh = []
        with self.lock:
            for race in races:
                pair = race.site_pair()
                if pair in self.seen:
                    continue
                self.seen.add(pair)
                race.threads = {
                    acc.tid: self._info_locked(acc.tid, acc.clk) for acc in (race.current, race.previous)
                }
                fresh.append(race)
        halt = None
        for race in fresh:
            try:
                if self.suppressed is not None and self.suppressed(race):
                    with self.lock:
                        self.suppressed_count += 1
                    continue
            except Exception as exc:
                self._fault(exc)
            with self.lock:
                # Checked and set together, so with --halt-on-error exactly
                # one race (and one thread) halts, however many race at once.
                if self.closed or self.halted:
                    return
                self.races.append(race)
                if self.halt_on_error:
                    self.halted = True
                    halt = race
            if self.sink is not None:
                try:
                    self.sink(race)
                except Exception as exc:  # e.g. a closed stderr: never the user's problem
                    self._fault(exc)
            if halt is not None:
                break
        if halt is not None and self.halt is not None:
            self.halt(halt)
        if halt is not None:
            key = halt.key_repr
            what = f"key {key}" if key is not None else "the whole dict"
            raise DataRaceError(f"data race on {what} of dict {halt.dict_id:#x} (report above)")

    def close(self) -> list:
        """Stop reporting (threads may still run) and return the races found."""
        with self.lock:
            self.closed = True
            return list(self.races)
