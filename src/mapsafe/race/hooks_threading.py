"""Happens-before edges of threads, Event, Barrier and queue, patched on their classes."""

from __future__ import annotations

import sys

from . import sync
from .hooks_base import acquire, acquired_after, acquired_if_true, active, patch, release, released_before

__all__ = ["patch_queue", "patch_threading"]


def patch_threading() -> None:
    import threading

    def start(orig):
        def start(self):
            D = active()
            if D is not None:
                D.thread_starting(self, sys._getframe(1))
            return orig(self)

        return start

    def bootstrap_inner(orig):
        def _bootstrap_inner(self):
            D = active()
            if D is not None:
                D.thread_begin(self)
            try:
                return orig(self)
            finally:
                # Runs before the C runtime marks the thread finished, so a
                # join() that returns always finds the final clock.
                D = active()
                if D is not None:
                    D.thread_end(self)

        return _bootstrap_inner

    is_alive = threading.Thread.is_alive

    # Only a join that saw the thread end orders it: join(timeout) may
    # return with the thread still running. (Its final clock is published
    # by _bootstrap_inner before is_alive() can turn false.)
    def joined(D, thread):
        if not is_alive(thread):
            D.thread_joined(thread)

    patch(threading.Thread, "start", start)
    patch(threading.Thread, "_bootstrap_inner", bootstrap_inner)
    patch(threading.Thread, "join", acquired_after(joined))

    # Semaphores are modelled where instrumented code uses them
    # (sync.sync_call): the stdlib uses them internally (the idle
    # semaphore of ThreadPoolExecutor), and modelling those uses would order
    # unrelated tasks and hide the user's races.
    sync.register_sync_call_types(threading.Semaphore, threading.BoundedSemaphore)

    # set() publishes on the event; a wait() or is_set() that saw it set
    # acquires it.
    patch(threading.Event, "set", released_before(release))
    patch(threading.Event, "wait", acquired_if_true(acquire))
    patch(threading.Event, "is_set", acquired_if_true(acquire))

    # Barrier: every party's clock goes in before the wait, and comes out
    # after it, so everything before the barrier precedes everything after.
    def barrier_wait(orig):
        def wait(self, timeout=None):
            D = active()
            if D is not None:
                D.release(self)
            result = orig(self, timeout)
            if D is not None:
                D.acquire(self)
            return result

        return wait

    patch(threading.Barrier, "wait", barrier_wait)
    # Condition shares its lock with stdlib internals (queue, Event), so its
    # edges are modelled where instrumented code uses it (sync.sync_call).
    sync.register_sync_call_types(threading.Condition)
    # threading's pure-Python RLock, a mutex like the C one.
    sync.register_sync_call_types(threading._PyRLock)


def patch_queue() -> None:
    import queue

    # _put/_get run under the queue's mutex in the putting and getting
    # threads. The clock travels with the item, so two unrelated puts are
    # not ordered, and a get is ordered after exactly the put it received:
    # the one the queue's order hands out (the mutex makes the order of our
    # records the queue's). The put is recorded once it is in, still under
    # the mutex, so no getter can take the item first.
    def put(order):
        def make(orig):
            def _put(self, item):
                result = orig(self, item)
                D = active()
                if D is not None:
                    sync.put_item(D, self, item, order, self._qsize())
                return result

            return _put

        return make

    def get(order):
        def make(orig):
            def _get(self):
                item = orig(self)
                D = active()
                if D is not None:
                    sync.got_item(D, self, item, order, self._qsize() + 1)
                return item

            return _get

        return make

    for cls, order in ((queue.Queue, sync.FIFO), (queue.LifoQueue, sync.LIFO), (queue.PriorityQueue, sync.PRIORITY)):
        patch(cls, "_put", put(order))
        patch(cls, "_get", get(order))

    # Every task_done() publishes on the queue's all_tasks_done condition,
    # and a join() that returned (all tasks done) acquires it.
    patch(queue.Queue, "task_done", released_before(lambda D, q: D.release(q.all_tasks_done)))
    patch(queue.Queue, "join", acquired_after(lambda D, q: D.acquire(q.all_tasks_done)))
    sync.register_sync_call_types(queue.SimpleQueue)
