"""How synchronization objects order threads where instrumented code uses them.

Locks, Conditions, Semaphores and SimpleQueue are C types, or share their
lock with stdlib internals, so their methods cannot be patched (see
``hooks`` for what is patched). Their edges are recorded here, at the call
sites that the rewriter routes through ``helpers.call`` and ``helpers.with_``.
Queue items carry the clock of their ``put`` to the ``get`` that takes them.
"""

from __future__ import annotations

import _thread
from typing import Any

from .clock import join_into

__all__ = ["LOCK_TYPES", "SYNC_CALL_TYPES", "is_sync_type", "register_sync_call_types", "sync_call", "with_", "put_item", "got_item"]

LOCK_TYPES = (type(_thread.allocate_lock()), _thread.RLock)

# Types whose methods are modelled at the call site. Filled in by hooks.install().
SYNC_CALL_TYPES: set = set(LOCK_TYPES)


def register_sync_call_types(*types: type) -> None:
    """Add types (Condition, SimpleQueue) whose methods are modelled at call sites."""
    SYNC_CALL_TYPES.update(types)
    _IS_SYNC.clear()


# type -> whether it is, or derives from, a SYNC_CALL_TYPES type. Filled by
# single dict operations (get, and a set of a value computed outside).
_IS_SYNC: dict = {}


def is_sync_type(t: type) -> bool:
    """Whether ``t``'s objects are modelled here: the registered types and their subclasses."""
    known = _IS_SYNC.get(t)
    if known is None:
        known = _IS_SYNC[t] = any(issubclass(t, base) for base in tuple(SYNC_CALL_TYPES))
    return known


# -- queue items ---------------------------------------------------------

def put_item(D: Any, queue: Any, item: Any) -> None:
    """``item`` is being put on ``queue``: it carries a copy of our clock."""
    ts = D.state()
    if ts.busy:
        return
    sc = D._clock(queue)
    with sc.lock:
        if sc.items is None:
            sc.items = {}
        sc.items.setdefault(id(item), []).append(dict(ts.vc))
    ts.vc[ts.tid] += 1


def got_item(D: Any, queue: Any, item: Any) -> None:
    """``item`` was taken from ``queue``: we are ordered after its put."""
    ts = D.state()
    if ts.busy:
        return
    sc = D._clock(queue)
    with sc.lock:
        if sc.items:
            clocks = sc.items.get(id(item))
            if clocks:
                join_into(ts.vc, clocks.pop(0))
                if not clocks:
                    del sc.items[id(item)]


# -- method calls and with-statements ------------------------------------

def sync_call(D: Any, obj: Any, t: type, name: str, args: tuple, kwargs: dict) -> Any:
    """``obj.name(*args, **kwargs)`` on a SYNC_CALL_TYPES object, with its edges."""
    import queue as _queue
    import threading as _threading

    if t is _queue.SimpleQueue:
        if name in ("put", "put_nowait"):
            if args:
                put_item(D, obj, args[0])
        result = getattr(obj, name)(*args, **kwargs)
        if name in ("get", "get_nowait"):
            got_item(D, obj, result)
        return result
    # Semaphores: every release is joined into the semaphore's clock, and a
    # successful acquire joins it in (as for locks).
    lock = obj._lock if t is _threading.Condition else obj
    if name == "acquire":
        result = getattr(obj, name)(*args, **kwargs)
        if result:
            D.acquire(lock)
        return result
    if name == "release":
        D.release(lock)
        return getattr(obj, name)(*args, **kwargs)
    if name in ("wait", "wait_for") and t is _threading.Condition:
        D.release(lock)
        try:
            return getattr(obj, name)(*args, **kwargs)
        finally:
            D.acquire(lock)
    return getattr(obj, name)(*args, **kwargs)


class _LockContext:
    """What `with lock:` enters in rewritten code: the lock, plus the edges."""

    __slots__ = ("obj", "lock", "D")

    def __init__(self, obj: Any, lock: Any, D: Any) -> None:
        self.obj = obj
        self.lock = lock
        self.D = D  # the detector active when the with-statement began

    def __enter__(self):
        result = self.obj.__enter__()
        self.D.acquire(self.lock)
        return result

    def __exit__(self, *exc):
        self.D.release(self.lock)
        return self.obj.__exit__(*exc)


class _MutexContext(_LockContext):
    """`with` over a mutex (Lock, RLock, Condition): the cheaper edges are exact."""

    __slots__ = ()

    def __enter__(self):
        result = self.obj.__enter__()
        self.D.acquire_mutex(self.lock)
        return result

    def __exit__(self, *exc):
        self.D.release_mutex(self.lock)
        return self.obj.__exit__(*exc)


def with_(D: Any, obj: Any, t: type) -> Any:
    """The context manager for ``with obj:`` on a SYNC_CALL_TYPES object."""
    import queue as _queue
    import threading as _threading

    if t is _threading.Condition:
        return _MutexContext(obj, obj._lock, D)
    if t in LOCK_TYPES:
        return _MutexContext(obj, obj, D)
    if t is not _queue.SimpleQueue:
        return _LockContext(obj, obj, D)  # a lock or a semaphore
    return obj
