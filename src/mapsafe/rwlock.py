"""RWLock: a writer-preferring readers-writer lock."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from . import _forks
from ._core import MapLock, ProfiledRLock, RWCore, RWHold

if TYPE_CHECKING:
    from typing_extensions import Self

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
      Threads are told apart by a token that lives as long as the thread,
      never by ``threading.get_ident()``, which a new thread may reuse.
    * Upgrading (asking for the write lock while holding only the read lock)
      raises ``RuntimeError`` instead of deadlocking; so does releasing a
      lock the calling thread does not hold.
    * A thread that ends while holding the read lock cannot release it; its
      holds are dropped the next time a writer would wait for them.
    * Interrupts: an exception raised in a waiting thread (Ctrl-C, a
      signal handler's ``sys.exit()``) or a timeout leaves the lock as if
      that thread had never asked, and passes on any wake-up it was given.
      With the C core, ``with lock.read():``/``write():`` are entered and
      left in C, so an interrupt can never leave the lock held. The
      pure-Python core cannot promise that for an interrupt that lands on
      the first instruction of a release.
    * After ``os.fork()``, the child keeps only the forking thread's holds.

    Costs: each acquire and release takes one internal mutex, O(1).
    """

    # RWCore holds the state (_mu, _writer, _readers, the waiter counts and
    # queues) and the transitions: acquire_*/release_* and the waits that
    # LockedMap's short operations use.
    __slots__ = {
        "_read_hold": "the context manager read() returns; keeps no per-use state, so one serves all; set once",
        "_write_hold": "the context manager write() returns; set once",
        "__weakref__": "",
    }

    def __init__(self) -> None:
        self._init(threading.RLock(), None)  # type: ignore[arg-type]  # CPython's RLock is a MapLock (private methods too)

    def _init(self, mu: MapLock, profile: ProfiledRLock | None) -> None:
        # mu guards every field; LockedMap also holds it for the whole of its
        # short operations (see _wait_readable_locked/_wait_writable_locked).
        # Reentrant so that user code running inside such an operation (a
        # key's __eq__, say) cannot deadlock on it.
        self._core_init(mu, profile)
        self._read_hold = RWHold(self, False)
        self._write_hold = RWHold(self, True)
        _forks.register(self)

    @classmethod
    def _with_profile(cls, mu: MapLock, profile: ProfiledRLock | None) -> Self:
        """An RWLock on ``mu`` whose waits are counted by ``profile`` (LockedMap with stats)."""
        new = cls.__new__(cls)
        new._init(mu, profile)
        return new

    # acquire_read, release_read, acquire_write, release_write: RWCore's.

    def try_acquire_read(self) -> bool:
        """Take the read lock only if that needs no waiting."""
        return self.acquire_read(blocking=False)

    def try_acquire_write(self) -> bool:
        """Take the write lock only if that needs no waiting."""
        return self.acquire_write(blocking=False)

    def read(self) -> RWHold:
        """``with lock.read():`` holds the read lock for the block."""
        return self._read_hold

    def write(self) -> RWHold:
        """``with lock.write():`` holds the write lock for the block."""
        return self._write_hold

    def __repr__(self) -> str:
        with self._mu:
            state = "write-locked" if self._writer is not None else f"readers={len(self._readers)}"
            return f"<mapsafe.RWLock {state} waiting_writers={self._waiting_writers}>"
