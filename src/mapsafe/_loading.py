"""Call-once loading: a load in progress that other threads join instead of repeating it."""

from __future__ import annotations

from _thread import allocate_lock
from time import monotonic
from typing import Any, Callable, TypeVar

from ._core import thread_token
from .errors import RecursiveLoadError

__all__ = ["Flight", "run_flight", "RETRY"]

_RUNNING: Any = object()  # Flight.outcome[0] while the owner is still loading
RETRY: Any = object()  # Flight.join's "the load was abandoned: load again yourself"
_POLL = 0.05  # seconds between a waiter's checks that the loading thread still lives
_MAX_CHAIN = 10_000  # a wait-for chain longer than this is not followed (no real program nests so deep)

# thread token -> the Flight that thread is waiting for, read to find wait
# cycles. Each thread sets only its own entry, just before it waits, and
# removes it just after: single dict operations, atomic on free-threaded
# CPython. A reader may see an entry a moment stale; _check_cycle only
# follows entries whose flight is still running, so a stale one ends the walk.
_waiting: dict[Any, "Flight"] = {}


class Flight:
    """One load in progress: which thread runs it and, once it ends, its outcome.

    The owner creates it and publishes it (in a table guarded by its
    container's lock) before it calls the loader with no lock held; any
    thread that finds it there calls ``wait()`` instead of loading too.
    """

    __slots__ = ("owner", "outcome", "_done")

    def __init__(self) -> None:
        # The owner's thread token (dies with the thread); set once, before publication.
        self.owner = thread_token()
        # One item: _RUNNING until the owner ends, then (True, value),
        # (False, exception) or None (interrupted: waiters load again). Set
        # once, by the owner, with one list store, so a waiter reads a
        # whole outcome or none.
        self.outcome: list[Any] = [_RUNNING]
        # Held from birth until the outcome is set: waiters block on it
        # (with a timeout) to wake early. A plain lock, cheaper to make than
        # an Event, and releasable by whichever thread ends the flight.
        self._done = allocate_lock()
        self._done.acquire()

    def running(self) -> bool:
        return self.outcome[0] is _RUNNING

    def joinable(self) -> bool:
        """Worth waiting for: still running, by a thread that still lives."""
        return self.outcome[0] is _RUNNING and self.owner() is not None

    def finish(self, ok: bool, result: Any) -> None:
        self.outcome[0] = (ok, result)
        self._wake()

    def abandon(self) -> None:
        """End without a result (the owner was interrupted): waiters load again."""
        self.outcome[0] = None
        self._wake()

    def _wake(self) -> None:
        try:
            self._done.release()
        except RuntimeError:
            pass  # already released: a flight ends once, but after_fork_child may have freed it

    def wait(self, key: Any, timeout: float | None = None) -> Any:
        """Block until the load ends: ``(ok, result)``, or None to load again.

        None means the owner was interrupted, or its thread ended without
        finishing (so no wait outlives the loading thread). Raises
        RecursiveLoadError instead of waiting for a load that waits on this
        thread, and TimeoutError after ``timeout`` seconds.
        """
        me = thread_token()
        deadline = None if timeout is None else monotonic() + timeout
        # Registered before the cycle check: of two threads about to wait
        # for each other, the second to check sees the first, so at least
        # one raises and neither waits forever.
        _waiting[me] = self
        try:
            self._check_cycle(me, key)
            # A for loop, not while: see STYLE.md on 3.13.0 and back-edge signals.
            for _ in iter(int, 1):
                outcome = self.outcome[0]
                if outcome is not _RUNNING:
                    return outcome
                if self.owner() is None:
                    return None  # the loading thread ended without finishing
                step = _POLL
                if deadline is not None:
                    left = deadline - monotonic()
                    if left <= 0:
                        raise TimeoutError(f"the load of key {key!r} did not finish within {timeout} s")
                    step = min(step, left)
                if self._done.acquire(True, step):
                    self._done.release()  # let the next waiter through
        finally:
            _waiting.pop(me, None)
        raise AssertionError("unreachable")

    def join(self, key: Any, timeout: float | None = None) -> Any:
        """``wait()``, then the loaded value (or its exception, raised); RETRY to load again."""
        outcome = self.wait(key, timeout)
        if outcome is None:
            return RETRY
        ok, result = outcome
        if ok:
            return result
        raise result

    def _check_cycle(self, me: Any, key: Any) -> None:
        flight: Flight = self
        for _ in range(_MAX_CHAIN):
            if flight.owner is me:
                if flight is self:
                    raise RecursiveLoadError(
                        f"recursive load of key {key!r}: its loader asked for the same key "
                        "in the same container, which would wait for itself forever"
                    )
                raise RecursiveLoadError(
                    f"load cycle at key {key!r}: the thread loading it waits, through "
                    "other loads, for a load this thread is running"
                )
            owner = flight.owner
            if owner() is None:
                return  # the owner ended: nothing waits on this thread through it (and a dead ref may not hash)
            waited = _waiting.get(owner)
            if waited is None or not waited.running():
                return
            flight = waited

    def after_fork_child(self) -> None:
        """In a forked child: a flight whose thread did not survive ends, abandoned."""
        if self.owner() is None and self.running():
            self.abandon()


_T = TypeVar("_T")


def run_flight(flight: Flight, load: Callable[[], _T]) -> _T:
    """Run ``load()`` as ``flight``'s owner and publish its outcome to the waiters.

    An ``Exception`` reaches every waiter. KeyboardInterrupt, SystemExit and
    other ``BaseException`` belong to this thread alone: the waiters are
    told to load again, so one of them becomes the new owner.
    """
    try:
        value = load()
        flight.finish(True, value)  # inside the try: an interrupt just before it abandons
    except Exception as exc:
        if flight.running():
            flight.finish(False, exc)
        raise
    except BaseException:
        if flight.running():
            flight.abandon()
        raise
    return value
