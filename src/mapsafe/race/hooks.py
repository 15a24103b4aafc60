"""Happens-before sources: class-level patches of threading, queue, futures and mapsafe's maps."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

from . import helpers, runtime, sync

__all__ = ["install", "uninstall"]

# (owner, attribute name, original) for every patch, so uninstall() can undo them.
_PATCHES: list = []


def _D() -> runtime.Detector | None:
    return helpers.active_detector()


def _patch(owner: Any, name: str, make: Callable[[Any], Any], inherited: bool = False) -> None:
    """Replace ``owner.name`` by ``make(original)``; with ``inherited``, also where a base defines it."""
    own = name in owner.__dict__
    original = getattr(owner, name, None) if inherited else owner.__dict__.get(name)
    if original is None:
        return
    wrapper = make(original)
    try:
        functools.update_wrapper(wrapper, original)
    except (AttributeError, TypeError):
        pass
    setattr(owner, name, wrapper)
    # uninstall() restores an inherited one by deleting the patch
    _PATCHES.append((owner, name, original if own else _INHERITED))


# -- threading -----------------------------------------------------------


def _patch_threading() -> None:
    import threading

    def start(orig):
        def start(self):
            D = _D()
            if D is not None:
                D.thread_starting(self, sys._getframe(1))
            return orig(self)

        return start

    def bootstrap_inner(orig):
        def _bootstrap_inner(self):
            D = _D()
            if D is not None:
                D.thread_begin(self)
            try:
                return orig(self)
            finally:
                # Runs before the C runtime marks the thread finished, so a
                # join() that returns always finds the final clock.
                D = _D()
                if D is not None:
                    D.thread_end(self)

        return _bootstrap_inner

    def join(orig):
        def join(self, timeout=None):
            result = orig(self, timeout)
            D = _D()
            if D is not None and not self.is_alive():
                D.thread_joined(self)
            return result

        return join

    _patch(threading.Thread, "start", start)
    _patch(threading.Thread, "_bootstrap_inner", bootstrap_inner)
    _patch(threading.Thread, "join", join)

    # Semaphores are modelled where instrumented code uses them
    # (sync.sync_call): the stdlib uses them internally (the idle
    # semaphore of ThreadPoolExecutor), and modelling those uses would order
    # unrelated tasks and hide the user's races.
    sync.register_sync_call_types(threading.Semaphore, threading.BoundedSemaphore)

    def ev_set(orig):
        def set(self):
            D = _D()
            if D is not None:
                D.release(self)
            return orig(self)

        return set

    def ev_wait(orig):
        def wait(self, timeout=None):
            result = orig(self, timeout)
            D = _D()
            if result and D is not None:
                D.acquire(self)
            return result

        return wait

    def ev_is_set(orig):
        def is_set(self):
            result = orig(self)
            D = _D()
            if result and D is not None:
                D.acquire(self)
            return result

        return is_set

    _patch(threading.Event, "set", ev_set)
    _patch(threading.Event, "wait", ev_wait)
    _patch(threading.Event, "is_set", ev_is_set)

    # Barrier: every party's clock goes in before the wait, and comes out
    # after it, so everything before the barrier precedes everything after.
    def barrier_wait(orig):
        def wait(self, timeout=None):
            D = _D()
            if D is not None:
                D.release(self)
            result = orig(self, timeout)
            if D is not None:
                D.acquire(self)
            return result

        return wait

    _patch(threading.Barrier, "wait", barrier_wait)
    # Condition shares its lock with stdlib internals (queue, Event), so its
    # edges are modelled where instrumented code uses it (sync.sync_call).
    sync.register_sync_call_types(threading.Condition)


# -- queue ---------------------------------------------------------------


def _patch_queue() -> None:
    import queue

    # _put/_get run under the queue's mutex in the putting and getting
    # threads. The clock travels with the item, so two unrelated puts are
    # not ordered, and a get is ordered after exactly the put it received.
    def put(orig):
        def _put(self, item):
            D = _D()
            if D is not None:
                sync.put_item(D, self, item)
            return orig(self, item)

        return _put

    def get(orig):
        def _get(self):
            item = orig(self)
            D = _D()
            if D is not None:
                sync.got_item(D, self, item)
            return item

        return _get

    for cls in (queue.Queue, queue.LifoQueue, queue.PriorityQueue):
        _patch(cls, "_put", put)
        _patch(cls, "_get", get)

    def task_done(orig):
        def task_done(self):
            D = _D()
            if D is not None:
                D.release(self.all_tasks_done)
            return orig(self)

        return task_done

    def qjoin(orig):
        def join(self):
            result = orig(self)
            D = _D()
            if D is not None:
                D.acquire(self.all_tasks_done)
            return result

        return join

    _patch(queue.Queue, "task_done", task_done)
    _patch(queue.Queue, "join", qjoin)
    sync.register_sync_call_types(queue.SimpleQueue)


# -- concurrent.futures --------------------------------------------------


def _patch_futures() -> None:
    import concurrent.futures as cf
    from concurrent.futures import _base, thread

    def submit(orig):
        def submit(self, fn, /, *args, **kwargs):
            D = _D()
            if D is None:
                return orig(self, fn, *args, **kwargs)
            vc = D.snapshot_and_tick()

            def task(*a, **kw):
                D2 = _D()
                if D2 is not None:
                    D2.acquire_clock(vc)
                return fn(*a, **kw)

            return orig(self, task, *args, **kwargs)

        return submit

    _patch(thread.ThreadPoolExecutor, "submit", submit)

    def completing(orig):
        def complete(self, value):
            D = _D()
            if D is not None:
                D.release(self)
            return orig(self, value)

        return complete

    _patch(_base.Future, "set_result", completing)
    _patch(_base.Future, "set_exception", completing)

    def observing(orig):
        def observe(self, timeout=None):
            try:
                return orig(self, timeout)
            finally:
                D = _D()
                if D is not None and self.done():
                    D.acquire(self)

        return observe

    _patch(_base.Future, "result", observing)
    _patch(_base.Future, "exception", observing)

    def add_done_callback(orig):
        def add_done_callback(self, fn):
            def callback(future):
                D = _D()
                if D is not None:
                    D.acquire(future)
                return fn(future)

            return orig(self, callback)

        return add_done_callback

    _patch(_base.Future, "add_done_callback", add_done_callback)

    def as_completed(orig):
        def as_completed(fs, timeout=None):
            for future in orig(fs, timeout):
                D = _D()
                if D is not None:
                    D.acquire(future)
                yield future

        return as_completed

    def wait(orig):
        def wait(fs, timeout=None, return_when=cf.ALL_COMPLETED):
            result = orig(fs, timeout, return_when)
            D = _D()
            if D is not None:
                for future in result.done:
                    D.acquire(future)
            return result

        return wait

    for name, make in (("as_completed", as_completed), ("wait", wait)):
        original = _base.__dict__[name]
        _patch(_base, name, make)
        if cf.__dict__.get(name) is original:  # the package re-exports _base's function
            setattr(cf, name, _base.__dict__[name])
            _PATCHES.append((cf, name, original))


# -- mapsafe's own maps ------------------------------------------------------

# Go's memory model for sync.Map: a write happens before a read that
# observes it. Reads acquire the map's clock, writes acquire and release it
# (a write such as swap or compute also reads the old value). One clock per
# map is coarser than Go's per key; it can only hide races, never invent one.
# Which methods are reads and which are writes comes from the maps' contract
# table; LockedMap's read()/write() blocks are ordered by their RWLock (see
# _patch_rwlock), not here.
def _map_methods(kind: str) -> tuple[str, ...]:
    from mapsafe import contract

    return tuple(name for name in contract.names(kind) if name not in _MAP_HANDLES)


# Methods that hand out a handle (LockedMap's read()/write() blocks, ordered by
# their RWLock in _patch_rwlock; SyncMap.reader(), whose C reads the patches
# could not see, so under the detector it hands out the map itself).
_MAP_HANDLES = ("read", "write", "reader")


# Bound per instance as `get` by some maps, so patched under their own names.
_MAP_INTERNAL_READS = ("_get_plain", "_get_slow")


def _mapsafe_subclasses(cls: type) -> list[type]:
    found, todo = [], list(cls.__subclasses__())
    while todo:
        sub = todo.pop()
        if sub.__module__.startswith("mapsafe") and sub not in found:
            found.append(sub)
            todo.extend(sub.__subclasses__())
    return found


def _patch_maps() -> None:
    try:
        import mapsafe
    except Exception:  # the maps are optional for the detector
        return

    def reading(orig):
        def read(self, *args, **kwargs):
            result = orig(self, *args, **kwargs)
            D = _D()
            if D is not None:
                D.acquire(self)
            return result

        return read

    def writing(orig):
        # The release is recorded before the write too: once the write is
        # visible, a reader in another thread may observe it and acquire
        # at once, and must find this thread's earlier accesses published
        # (on free-threaded builds that reader really runs meanwhile). The
        # release after covers what a compute callback did inside the write.
        def write(self, *args, **kwargs):
            D = _D()
            if D is not None:
                D.acquire(self)
                D.release(self)
            try:
                return orig(self, *args, **kwargs)
            finally:
                if D is not None:
                    D.release(self)

        return write

    _patch(mapsafe.SyncMap, "reader", lambda orig: lambda self: self)
    done = set()
    for cls_name in ("SyncMap", "LockedMap", "ShardedMap"):
        cls = getattr(mapsafe, cls_name, None)
        if not isinstance(cls, type):
            continue
        # Its bases, and the variants its __new__ picks (SyncMap(stats=True)).
        for klass in (*cls.__mro__, *_mapsafe_subclasses(cls)):
            if klass in done or not klass.__module__.startswith("mapsafe"):
                continue
            done.add(klass)
            for name in _map_methods("read") + _MAP_INTERNAL_READS:
                if name in klass.__dict__ and callable(klass.__dict__[name]):
                    _patch(klass, name, reading)
            for name in _map_methods("write"):
                if name in klass.__dict__ and callable(klass.__dict__[name]):
                    _patch(klass, name, writing)


def _patch_rwlock() -> None:
    try:
        from mapsafe.rwlock import RWLock
    except Exception:
        return

    # One clock for readers and writers: a writer is ordered after the
    # readers before it (and they after the writer before them). Readers are
    # also ordered with each other, which can only hide races.
    def acquiring(orig):
        def acquire(self, blocking=True, timeout=-1):
            result = orig(self, blocking, timeout)
            D = _D()
            if result and D is not None:
                D.acquire(self)
            return result

        return acquire

    def releasing(orig):
        def release(self):
            D = _D()
            if D is not None:
                D.release(self)
            return orig(self)

        return release

    # The transitions live in RWLock's core base (C or Python): patched on
    # RWLock itself, over the inherited ones.
    for name in ("acquire_read", "acquire_write"):
        _patch(RWLock, name, acquiring, inherited=True)
    for name in ("release_read", "release_write"):
        _patch(RWLock, name, releasing, inherited=True)

    # `with lock.read():` and LockedMap's read()/write() holds take and
    # release the lock inside the core, past the patches above: under the
    # detector they return holds that call the patched methods instead.
    from types import MappingProxyType

    import mapsafe

    def hold(write, result_of):
        def make(orig):
            def method(self):
                orig(self)  # its checks (a write() block inside a compute callback raises)
                rw, result = result_of(self)
                return _TrackedHold(rw, write, result)

            return method

        return make

    _patch(RWLock, "read", hold(False, lambda rw: (rw, None)))
    _patch(RWLock, "write", hold(True, lambda rw: (rw, None)))
    _patch(mapsafe.LockedMap, "read", hold(False, lambda m: (m._rw, MappingProxyType(m._d))))
    _patch(mapsafe.LockedMap, "write", hold(True, lambda m: (m._rw, m._d)))


class _TrackedHold:
    """An RWLock hold made of the (patched) acquire and release methods."""

    __slots__ = ("_rw", "_write", "_result")

    def __init__(self, rw: Any, write: bool, result: Any) -> None:
        self._rw, self._write, self._result = rw, write, result

    def __enter__(self) -> Any:
        (self._rw.acquire_write if self._write else self._rw.acquire_read)()
        return self._result

    def __exit__(self, *exc_info: object) -> None:
        (self._rw.release_write if self._write else self._rw.release_read)()


_installed = False


def install() -> None:
    """Patch the happens-before sources. Idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    _patch_threading()
    _patch_queue()
    _patch_futures()
    _patch_maps()
    _patch_rwlock()


_INHERITED: Any = object()  # in _PATCHES: the patched name was inherited; delete the patch


def uninstall() -> None:
    global _installed
    while _PATCHES:
        owner, name, original = _PATCHES.pop()
        if original is _INHERITED:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    _installed = False
