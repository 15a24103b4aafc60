"""RWLock: a writer-preferring readers-writer lock."""

from __future__ import annotations

import threading
from threading import get_ident
from time import monotonic, perf_counter
from ._core import RWCore
from .stats import LockProfile

__all__ = ["RWLock"]


class RWLock(RWCore):
    """A writer-preferring readers-writer lock.

    Do not use it where a plain ``threading.Lock`` would do: for short
    critical sections an RWLock costs more than it saves, even on
    free-threaded CPython. It pays off when many threads read for a long
    time (iterating, serialising) and writes are rare.

    Semantics:

    * Many threads may hold the read lock at once; the write lock is
      exclusive. A write release happens before every later acquisition;
      a read release happens before the next write acquisition.
    * Writer preference: once a writer waits, new readers wait too, so a
      steady stream of readers cannot starve writers. Readers cannot be
      starved either: as in Go's ``sync.RWMutex``, when a write ends, the
      readers that queued during it go in before the next writer.
    * Reentrancy: the write lock is reentrant (release it as often as it was
      acquired). Its owner may also take the read lock. The read lock is
      reentrant per thread, and a thread that already reads is let in again
      even while a writer waits (otherwise it would deadlock against it).
    * Upgrading (asking for the write lock while holding only the read lock)
      raises ``RuntimeError`` instead of deadlocking; so does releasing a
      lock the calling thread does not hold.

    Costs: each acquire and release takes one internal mutex, O(1).
    """

    # RWCore holds _readers and _writer, which LockedMap's fast paths read.
    __slots__ = (
        "_mu",
        "_mu_acquire",
        "_mu_release",
        "_can_read",
        "_can_write",
        "_write_depth",
        "_waiting_writers",
        "_waiting_readers",
        "_read_passes",
        "_read_gen",
        "_profile",
        "_read_hold",
        "_write_hold",
        "__weakref__",
    )

    def __init__(self) -> None:
        # Guards every field below. LockedMap also holds it for the whole of
        # its short operations (see _wait_readable_locked/_wait_writable_locked).
        # Reentrant so that user code running inside such an operation (a
        # key's __eq__, say) cannot deadlock on it.
        self._mu = threading.RLock()
        self._mu_acquire = self._mu.acquire  # bound once: cheaper than `with self._mu:`
        self._mu_release = self._mu.release
        self._can_read = threading.Condition(self._mu)  # signalled when readers may proceed
        self._can_write = threading.Condition(self._mu)  # signalled when a writer may proceed
        # thread ident -> read hold count; guarded by _mu; no zero counts.
        self._readers: dict[int, int] = {}
        # ident of the thread holding the write lock, or None; guarded by _mu.
        # Invariant: if not None, _readers holds no other thread.
        self._writer: int | None = None
        self._write_depth = 0  # nested write holds of _writer; guarded by _mu; 0 iff _writer is None
        self._waiting_writers = 0  # threads blocked wanting to write; guarded by _mu
        self._waiting_readers = 0  # threads blocked in acquire_read; guarded by _mu
        # Readers let in ahead of waiting writers when a write ended: the
        # readers queued at that moment (those that began waiting before
        # _read_gen last changed) may each use one. Writers wait while any
        # are unused. Guarded by _mu; invariant: 0 <= _read_passes <= _waiting_readers.
        self._read_passes = 0
        self._read_gen = 0  # counts hand-offs to readers; guarded by _mu
        self._profile: LockProfile | None = None  # contention counters when stats are on; guarded by _mu
        # The context managers read() and write() return. They keep no state
        # between __enter__ and __exit__, so one of each serves every thread.
        self._read_hold = _ReadHold(self)
        self._write_hold = _WriteHold(self)

    # -- public API ---------------------------------------------------------

    def acquire_read(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the read lock; returns False if it could not within ``timeout``."""
        me = get_ident()
        # A thread already holding _mu is inside one of LockedMap's short
        # operations (a compute callback, say): it excludes every writer
        # already, and waiting here would release _mu mid-operation.
        inside = self._mu._is_owned()
        self._mu_acquire()
        try:
            held = self._readers.get(me)
            if held or self._writer == me or inside:
                self._readers[me] = (held or 0) + 1
                return True
            if self._writer is None and not self._waiting_writers:
                self._readers[me] = 1
                return True
            if not blocking:
                return False
            gen = self._read_gen

            def blocked() -> bool:
                if self._writer is not None:
                    return True
                has_pass = self._read_passes and self._read_gen != gen
                return self._waiting_writers > 0 and not has_pass

            self._waiting_readers += 1
            try:
                ok = self._wait(self._can_read, blocked, timeout)
            finally:
                self._waiting_readers -= 1
                if self._read_passes and self._read_gen != gen:
                    self._read_passes -= 1  # used it, or gave up and so drops it
            if not ok:
                if not self._read_passes and self._waiting_writers:
                    self._can_write.notify()  # a writer may have been waiting on that pass
                return False
            self._readers[me] = 1
            return True
        finally:
            self._mu_release()

    def release_read(self) -> None:
        """Release one hold of the read lock taken by this thread."""
        me = get_ident()
        self._mu_acquire()
        try:
            held = self._readers.get(me)
            if not held:
                raise RuntimeError("release_read(): this thread does not hold the RWLock for reading")
            if held > 1:
                self._readers[me] = held - 1
                return
            del self._readers[me]
            if not self._readers and self._waiting_writers:
                self._can_write.notify()
        finally:
            self._mu_release()

    def acquire_write(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the write lock; returns False if it could not within ``timeout``."""
        me = get_ident()
        self._mu_acquire()
        try:
            if self._writer == me:
                self._write_depth += 1
                return True
            if me in self._readers:
                raise RuntimeError(
                    "acquire_write(): this thread holds the RWLock for reading; "
                    "upgrading would deadlock, so release the read lock first"
                )
            if self._writer is None and not self._readers and not self._read_passes:
                self._writer, self._write_depth = me, 1
                return True
            if not blocking:
                return False
            self._waiting_writers += 1
            try:
                ok = self._wait(self._can_write, self._write_blocked_locked, timeout)
            finally:
                self._waiting_writers -= 1
            if not ok:
                self._wake_locked()  # readers held back by this writer may go now
                return False
            self._writer, self._write_depth = me, 1
            return True
        finally:
            self._mu_release()

    def release_write(self) -> None:
        """Release one hold of the write lock taken by this thread."""
        self._mu_acquire()
        try:
            if self._writer != get_ident():
                raise RuntimeError("release_write(): this thread does not hold the RWLock for writing")
            self._write_depth -= 1
            if self._write_depth:
                return
            self._writer = None
            self._wake_locked()
        finally:
            self._mu_release()

    def try_acquire_read(self) -> bool:
        """Take the read lock only if that needs no waiting."""
        return self.acquire_read(blocking=False)

    def try_acquire_write(self) -> bool:
        """Take the write lock only if that needs no waiting."""
        return self.acquire_write(blocking=False)

    def read(self) -> "_ReadHold":
        """``with lock.read():`` holds the read lock for the block."""
        return self._read_hold

    def write(self) -> "_WriteHold":
        """``with lock.write():`` holds the write lock for the block."""
        return self._write_hold

    def __repr__(self) -> str:
        self._mu_acquire()
        try:
            state = f"writer={self._writer}" if self._writer is not None else f"readers={len(self._readers)}"
            return f"<mapsafe.RWLock {state} waiting_writers={self._waiting_writers}>"
        finally:
            self._mu_release()

    # -- protocol for LockedMap's short operations (caller holds _mu) --------

    def _write_blocked_locked(self) -> bool:
        return self._writer is not None or bool(self._readers) or self._read_passes > 0

    def _wake_locked(self) -> None:
        """Hand the lock on after a write: first to the readers that queued
        behind writers (so they cannot starve), else to one waiting writer,
        else to all readers."""
        if self._waiting_readers and self._waiting_writers:
            self._read_passes = self._waiting_readers
            self._read_gen += 1
            self._can_read.notify_all()
        elif self._waiting_writers:
            self._can_write.notify()
        else:
            self._can_read.notify_all()

    def _wait(self, cond: threading.Condition, blocked, timeout: float) -> bool:
        """Wait on ``cond`` (``_mu`` held) until ``blocked()`` is false."""
        start = perf_counter()
        deadline = None if timeout is None or timeout < 0 else monotonic() + timeout
        while blocked():
            remaining = None if deadline is None else deadline - monotonic()
            if remaining is not None and remaining <= 0:
                return False
            cond.wait(remaining)
        if self._profile is not None:
            self._profile.add_wait(perf_counter() - start)
        return True

    def _wait_readable_locked(self) -> None:
        """Block (``_mu`` held) until this thread may read the protected data.

        A short read may run while other threads hold the read lock, and
        even while writers wait: it holds ``_mu`` throughout, so it cannot
        delay a writer beyond its own few instructions. It must wait only
        for another thread's write lock.
        """
        me = get_ident()
        if self._writer == me:
            return
        self._wait(self._can_read, lambda: self._writer is not None, -1)

    def _wait_writable_locked(self) -> None:
        """Block (``_mu`` held) until this thread may briefly write the data.

        A short write needs no reader and no other writer. It never becomes
        the owner; it writes while holding ``_mu`` and then lets ``_mu`` go,
        so before returning it passes the wake-up on (to the next writer, or
        to readers that queued behind writers).
        """
        me = get_ident()
        if self._writer == me:
            return
        if me in self._readers:
            raise RuntimeError(
                "cannot write while this thread holds the read lock (inside `with m.read()`); "
                "use `with m.write()` instead"
            )
        self._waiting_writers += 1
        try:
            self._wait(self._can_write, self._write_blocked_locked, -1)
        finally:
            self._waiting_writers -= 1
        self._wake_locked()


class _ReadHold:
    """The context manager ``RWLock.read()`` returns (a class: cheaper than a generator)."""

    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire_read()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release_read()


class _WriteHold(_ReadHold):
    """The context manager ``RWLock.write()`` returns."""

    __slots__ = ()

    def __enter__(self) -> None:
        self._lock.acquire_write()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release_write()
