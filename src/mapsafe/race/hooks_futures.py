"""Happens-before edges of task handoffs: concurrent.futures, asyncio's call_soon_threadsafe and ThreadPool."""

from __future__ import annotations

import _thread
import functools
from typing import Any, Callable

from . import runtime
from .hooks_base import PATCHES, acquire, acquired_after, acquired_if_true, active, patch, released_before

__all__ = ["future_acquire", "future_release", "patch_asyncio", "patch_futures", "patch_pool"]


def _carrying_clock(D: runtime.Detector, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, to run in another thread, ordered after all this thread did so far."""
    vc = D.snapshot_and_tick()

    def run(*args, **kwargs):
        D2 = active()
        if D2 is not None:
            D2.acquire_clock(vc)
        return fn(*args, **kwargs)

    return run


# -- concurrent.futures --------------------------------------------------


def future_release(D: runtime.Detector, future: Any) -> None:
    """A future's state changed (result, exception, cancel): published on the
    future's clock and on its condition's lock, which guards that state. A
    Future subclass that changes the state in user code under
    ``with self._condition`` (pebble does) is then seen by stdlib observers."""
    D.release(future)
    cond = getattr(future, "_condition", None)
    lock = getattr(cond, "_lock", None)
    if lock is not None:
        D.release(lock)


def future_acquire(D: runtime.Detector, future: Any) -> None:
    """A stdlib observer of a future's state (result(), done()...) saw it:
    ordered after its publications, and after what user code did holding
    its condition's lock."""
    D.acquire(future)
    cond = getattr(future, "_condition", None)
    lock = getattr(cond, "_lock", None)
    if lock is not None:
        D.acquire(lock)


def patch_futures() -> None:
    import concurrent.futures as cf
    from concurrent.futures import _base, thread

    def submit(orig):
        def submit(self, fn, /, *args, **kwargs):
            D = active()
            if D is None:
                return orig(self, fn, *args, **kwargs)
            return orig(self, _carrying_clock(D, fn), *args, **kwargs)

        return submit

    patch(thread.ThreadPoolExecutor, "submit", submit)

    # Published before the state changes, so a thread that sees the new
    # state may acquire at once.
    for name in ("set_result", "set_exception", "set_running_or_notify_cancel"):
        patch(_base.Future, name, released_before(future_release))

    # Released before the state changes, as for set_result: a thread that
    # sees the future cancelled may acquire at once. A running or finished
    # future never becomes cancellable again, so then cancel() is sure to
    # fail and publishes nothing; a stale read of _state (another thread
    # starting it meanwhile) only publishes too much, which can hide a race,
    # never invent one.
    def cancelling(D, future):
        if future._state not in (_base.RUNNING, _base.FINISHED):
            future_release(D, future)

    patch(_base.Future, "cancel", released_before(cancelling))

    is_done = _base.Future.done  # unpatched: observe() below acquires once

    def observing(orig):
        def observe(self, timeout=None):
            try:
                return orig(self, timeout)
            finally:
                D = active()
                if D is not None and is_done(self):
                    future_acquire(D, self)

        return observe

    patch(_base.Future, "result", observing)
    patch(_base.Future, "exception", observing)

    for name in ("done", "cancelled", "running"):
        patch(_base.Future, name, acquired_if_true(future_acquire))

    def add_done_callback(orig):
        def add_done_callback(self, fn):
            def callback(future):
                D = active()
                if D is not None:
                    future_acquire(D, future)
                return fn(future)

            return orig(self, callback)

        return add_done_callback

    patch(_base.Future, "add_done_callback", add_done_callback)

    def as_completed(orig):
        def as_completed(fs, timeout=None):
            for future in orig(fs, timeout):
                D = active()
                if D is not None:
                    future_acquire(D, future)
                yield future

        return as_completed

    def wait(orig):
        def wait(fs, timeout=None, return_when=cf.ALL_COMPLETED):
            result = orig(fs, timeout, return_when)
            D = active()
            if D is not None:
                for future in result.done:
                    future_acquire(D, future)
            return result

        return wait

    for name, make in (("as_completed", as_completed), ("wait", wait)):
        original = _base.__dict__[name]
        patch(_base, name, make)
        if cf.__dict__.get(name) is original:  # the package re-exports _base's function
            setattr(cf, name, _base.__dict__[name])
            PATCHES.append((cf, name, original))


# -- asyncio ---------------------------------------------------------------


def patch_asyncio(base_events: Any) -> None:
    """Patch asyncio.base_events, once it is imported (see hooks._AfterImport).

    call_soon_threadsafe is the one way into a loop from another thread:
    run_coroutine_threadsafe, and the results of run_in_executor and
    to_thread (a ThreadPoolExecutor future, chained back to the loop), all
    come through it. Within the loop thread, program order does the rest;
    the executor side is the futures patches.
    """
    from asyncio import coroutines

    def call_soon_threadsafe(orig):
        def call_soon_threadsafe(self, callback, *args, context=None):
            D = active()
            # Passed as they are when the loop would refuse them (debug mode
            # checks the callback): the same error, from the same check.
            if D is None or not callable(callback) or coroutines.iscoroutinefunction(callback):
                return orig(self, callback, *args, context=context)
            handoff = _carrying_clock(D, callback)
            try:  # the loop's debug output names and locates the callback, not us
                functools.update_wrapper(handoff, callback)
            except (AttributeError, TypeError):
                pass
            handle = orig(self, handoff, *args, context=context)
            # In debug mode the handle records where it was made: the
            # caller's line, as without us, not this wrapper's.
            made_at = getattr(handle, "_source_traceback", None)
            if made_at and made_at[-1].filename == __file__:
                del made_at[-1]
            return handle

        return call_soon_threadsafe

    patch(base_events.BaseEventLoop, "call_soon_threadsafe", call_soon_threadsafe)


# -- multiprocessing.pool.ThreadPool ---------------------------------------


def patch_pool(pool: Any) -> None:
    """Patch multiprocessing.pool, once it is imported (see hooks._AfterImport).

    A ThreadPool passes tasks and results through SimpleQueues and a
    handler thread, all in the stdlib: nothing there is seen. So, as for
    ThreadPoolExecutor.submit, each task function is wrapped where it is
    submitted. It starts with the submitter's clock, and releases into its
    result object (ApplyResult, MapResult, IMapIterator) when it ends; the
    result's wait(), a ready() that returns True, and each next() acquire
    it. Process pools are left alone (their tasks are pickled).
    """
    # get_ident() of a thread inside a patched submission -> the box its
    # result object goes in. The result is made inside the stdlib's method,
    # before any task is queued, so its __init__ (patched) fills the box
    # before a task can read it. Each thread sets and pops only its own
    # entry, by single dict operations.
    submitting: dict = {}
    get_ident = _thread.get_ident

    def task_of(D, func, box):
        def task(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            finally:
                D2 = active()
                if D2 is not None and box:
                    D2.release(box[0])

        return _carrying_clock(D, task)

    def callback_of(callback, box):
        # Called by the handler thread after the task's result came back.
        def callback_after_task(value):
            D = active()
            if D is not None and box:
                D.acquire(box[0])
            return callback(value)

        return callback_after_task

    def submitting_through(callbacks_at):
        # callbacks_at: where callback and error_callback are among the
        # positional arguments after func, or None when there are none.
        def make(orig):
            def submit(self, func, *args, **kwargs):
                D = active()
                if D is None or not isinstance(self, pool.ThreadPool) or not callable(func):
                    return orig(self, func, *args, **kwargs)
                box: list = []  # the result object, once made; then only read
                func = task_of(D, func, box)
                if callbacks_at is not None:
                    args = list(args)
                    for at, name in ((callbacks_at, "callback"), (callbacks_at + 1, "error_callback")):
                        if at < len(args):
                            if callable(args[at]):
                                args[at] = callback_of(args[at], box)
                        elif callable(kwargs.get(name)):
                            kwargs[name] = callback_of(kwargs[name], box)
                ident = get_ident()
                outer = submitting.get(ident)
                submitting[ident] = box
                try:
                    return orig(self, func, *args, **kwargs)
                finally:
                    if outer is None:
                        del submitting[ident]
                    else:
                        submitting[ident] = outer

            return submit

        return make

    # apply, map, map_async, starmap and starmap_async come through these.
    patch(pool.Pool, "apply_async", submitting_through(2))
    patch(pool.Pool, "_map_async", submitting_through(3))
    patch(pool.Pool, "imap", submitting_through(None))
    patch(pool.Pool, "imap_unordered", submitting_through(None))

    def registering(orig):
        def __init__(self, *args, **kwargs):
            orig(self, *args, **kwargs)
            box = submitting.get(get_ident())
            if box is not None and not box:  # the first made: a MapResult runs its base's __init__
                box.append(self)

        return __init__

    patch(pool.ApplyResult, "__init__", registering)
    patch(pool.IMapIterator, "__init__", registering)

    # A wait() acquires only if the result is in: it may have timed out.
    def acquire_if_ready(D, result):
        if result._event.is_set():
            D.acquire(result)

    patch(pool.ApplyResult, "ready", acquired_if_true(acquire))  # get() and successful() call it
    patch(pool.ApplyResult, "wait", acquired_after(acquire_if_ready))

    def next_(orig):
        # Ordered after every task that ended so far, not only the one whose
        # result this is: coarser than exact, which can only hide a race.
        def next(self, timeout=None):
            try:
                item = orig(self, timeout)
            except BaseException as exc:
                D = active()
                if D is not None and not isinstance(exc, pool.TimeoutError):
                    D.acquire(self)  # StopIteration, or the task's exception
                raise
            D = active()
            if D is not None:
                D.acquire(self)
            return item

        return next

    patch(pool.IMapIterator, "next", next_)
    patch(pool.IMapIterator, "__next__", next_)
