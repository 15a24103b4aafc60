"""How synchronization objects order threads where instrumented code uses them.

Locks, Conditions, Semaphores and SimpleQueue are C types, or share their
lock with stdlib internals, so their methods cannot be patched (see
``hooks`` for what is patched). Their edges are recorded here, at the call
sites that the rewriter routes through ``helpers.call`` and ``helpers.with_``.
Subclasses are modelled like their base. Queue items carry the clock of
their ``put`` to the ``get`` that takes them, matched by the order items
leave the queue.
"""

from __future__ import annotations

import _queue
import _thread
from collections import deque
from typing import Any, Callable

from .clock import join_into

__all__ = [
    "FIFO", "LIFO", "LOCK_TYPES", "PRIORITY", "SIMPLE", "SYNC_CALL_TYPES", "got_item", "is_sync_type",
    "put_item", "register_sync_call_types", "sync_call", "with_",
]

# Mutexes: only one thread holds one at a time, so `with` uses the cheaper,
# exact edges (runtime.Detector.acquire_mutex). threading's pure-Python RLock
# is one too (hooks registers it; this module imports nothing from threading).
LOCK_TYPES: tuple = (type(_thread.allocate_lock()), _thread.RLock)

# Types whose methods are modelled at the call site, with their subclasses.
# Filled in by hooks.install(); changed only by register_sync_call_types.
SYNC_CALL_TYPES: set = set(LOCK_TYPES)


def register_sync_call_types(*types: type) -> None:
    """Add types (Condition, SimpleQueue) whose methods are modelled at call sites."""
    SYNC_CALL_TYPES.update(types)
    _IS_SYNC.clear()
    _KIND.clear()


# type -> whether it is, or derives from, a SYNC_CALL_TYPES type. Filled by
# single dict operations (get, and a set of a value computed outside), so
# two threads computing the same entry at once store the same value.
_IS_SYNC: dict = {}


def is_sync_type(t: type) -> bool:
    """Whether ``t``'s objects are modelled here: the registered types and their subclasses."""
    known = _IS_SYNC.get(t)
    if known is None:
        known = _IS_SYNC[t] = any(issubclass(t, base) for base in tuple(SYNC_CALL_TYPES))
    return known


# What a sync type is modelled as; by isinstance, so a subclass is its base.
_QUEUE = "simple queue"  # SimpleQueue: items carry clocks
_CONDITION = "condition"  # a Condition: its edges are its lock's
_MUTEX = "mutex"  # Lock, RLock: exclusive, so `with` takes the exact edges
_LOCK = "lock"  # Semaphore and the rest: acquire joins every release

# type -> its kind (above). Filled like _IS_SYNC, by single dict operations.
_KIND: dict = {}


def _kind(t: type) -> str:
    kind = _KIND.get(t)
    if kind is None:
        import threading

        if issubclass(t, _queue.SimpleQueue):
            kind = _QUEUE
        elif issubclass(t, threading.Condition):
            kind = _CONDITION
        elif issubclass(t, (*LOCK_TYPES, threading._PyRLock)):
            kind = _MUTEX
        else:
            kind = _LOCK
        _KIND[t] = kind
    return kind


# -- queue items ---------------------------------------------------------

# In which order a queue hands out its items, so a get is matched to the put
# it took (matching by id() alone gave every get of a shared object such as
# True the oldest put of it, whatever the queue's order).
FIFO = "fifo"  # queue.Queue: the oldest put
LIFO = "lifo"  # queue.LifoQueue: the newest put
PRIORITY = "priority"  # queue.PriorityQueue: the put of the very object returned
SIMPLE = "simple"  # SimpleQueue: the oldest put of the very object returned


class _Puts:
    """The clocks of one queue's puts whose items are, as far as we saw, still queued.

    Lives in the queue's ``_SyncClock.items``; every field is guarded by
    that clock's ``lock``. Items are remembered by id(): a queued item is
    alive (the queue holds it), so its id is its own, and no user object is
    kept alive by the detector.
    """

    __slots__ = ("order", "entries", "size")

    def __init__(self, order: str) -> None:
        self.order = order  # FIFO, LIFO, PRIORITY or SIMPLE; set once
        # FIFO, LIFO, SIMPLE: deque of (id(item), clock of its put), oldest first.
        # PRIORITY: id(item) -> [clock of each put of that object still queued].
        self.entries: Any = {} if order is PRIORITY else deque()
        self.size = 0  # number of clocks in entries

    def add_locked(self, key: int, vc: dict, bound: int | None) -> None:
        """Record a put. ``bound``: at most how many clocks can still be matched, if known."""
        if self.order is PRIORITY:
            self.entries.setdefault(key, []).append(vc)
        else:
            self.entries.append((key, vc))
        self.size += 1
        # Bounded by the queue: more clocks than items means some items left
        # unseen (a subclass's own _get, or SimpleQueue gets in code that is
        # not instrumented), and those clocks could never be matched.
        if bound is not None:
            while self.size > bound:
                self._drop_one_locked()

    def _drop_one_locked(self) -> None:
        if self.order is PRIORITY:
            key = next(iter(self.entries))
            clocks = self.entries[key]
            clocks.pop(0)
            if not clocks:
                del self.entries[key]
        else:
            self.entries.popleft()  # the oldest: the likeliest to have left unseen
        self.size -= 1

    def take_locked(self, key: int, queued: int | None) -> dict | None:
        """The clock of the put that the item with id ``key`` left the queue by, or None.

        ``queued``: how many items the queue held before this get, if known.
        """
        entries = self.entries
        if not entries:
            return None
        order = self.order
        if order is PRIORITY:
            clocks = entries.get(key)
            if not clocks:
                return None
            # Several puts of the very same object: we cannot tell which one
            # left, so the get is ordered after all of them, and one is
            # dropped. That can only hide a race, never invent one.
            vc: dict = {}
            for clock in clocks:
                join_into(vc, clock)
            clocks.pop()
            if not clocks:
                del entries[key]
            self.size -= 1
            return vc
        if order is FIFO:
            # More items queued than recorded: the unrecorded ones (put before
            # the detector started) are the oldest, and this is one of them.
            if queued is not None and queued > self.size:
                return None
            if entries[0][0] != key:
                return None
            self.size -= 1
            return entries.popleft()[1]
        if order is LIFO:
            if entries[-1][0] != key:
                return None
            self.size -= 1
            return entries.pop()[1]
        # SIMPLE: puts and gets are seen only in instrumented code, so the
        # oldest may have left unseen: the oldest put of this very object.
        for i, (k, vc) in enumerate(entries):
            if k == key:
                del entries[i]
                self.size -= 1
                return vc
        return None


def put_item(D: Any, queue: Any, item: Any, order: str = SIMPLE, bound: int | None = None) -> None:
    """``item`` is being put on ``queue``: it carries a copy of our clock.

    ``order`` is how the queue hands items out. ``bound``, when known, is at
    most how many items can be queued once this put is in (for queue.Queue,
    under its mutex, exactly how many are); older clocks beyond it are dropped.
    """
    # Recorded even while the thread is busy in the detector: a skipped put
    # would shift which put every later get of this queue is matched to.
    ts = D.state()
    vc = dict(ts.vc)
    ts.vc[ts.tid] += 1
    sc = D._clock(queue)
    with sc.lock:
        if sc.items is None:
            sc.items = _Puts(order)
        sc.items.add_locked(id(item), vc, bound)


def got_item(D: Any, queue: Any, item: Any, order: str = SIMPLE, queued: int | None = None) -> None:
    """``item`` was taken from ``queue``: we are ordered after its put.

    ``queued`` is how many items the queue held before this get, when known.
    """
    # Matched even while busy, as put_item records.
    ts = D.state()
    sc = D._clock(queue)
    with sc.lock:
        puts = sc.items
        vc = puts.take_locked(id(item), queued) if puts is not None else None
    if vc is not None:
        # Taken out of the queue's clock above, so now ours alone.
        join_into(ts.vc, vc)


# -- method calls and with-statements ------------------------------------


def _predicate_holding(D: Any, lock: Any, predicate: Callable[[], Any]) -> Callable[[], Any]:
    """``predicate`` for Condition.wait_for: it runs holding the lock, once
    re-acquired after each wait, so each call is a critical section."""

    def predicate_holding_lock():
        D.acquire(lock)
        try:
            return predicate()
        finally:
            # The lock is still held, and the next wait releases it: the
            # next holder is ordered after what the predicate read.
            D.release(lock)

    return predicate_holding_lock


# SimpleQueue has no lock to read its size and record a put in one step, so
# its clocks are bounded by its size plus this many in flight: more than the
# threads that could be between recording a put and making it.
_SIMPLE_SLACK = 1024


def sync_call(D: Any, obj: Any, t: type, name: str, args: tuple, kwargs: dict) -> Any:
    """``obj.name(*args, **kwargs)`` on an object of a SYNC_CALL_TYPES type (or subclass), with its edges."""
    kind = _kind(t)
    if kind is _QUEUE:
        if name in ("put", "put_nowait") and (args or "item" in kwargs):
            bound = _queue.SimpleQueue.qsize(obj) + 1 + _SIMPLE_SLACK
            put_item(D, obj, args[0] if args else kwargs["item"], SIMPLE, bound)
        result = getattr(obj, name)(*args, **kwargs)
        if name in ("get", "get_nowait"):
            got_item(D, obj, result)
        return result
    # Semaphores: every release is joined into the semaphore's clock, and a
    # successful acquire joins it in (as for locks).
    lock = obj._lock if kind is _CONDITION else obj
    if name == "acquire":
        result = getattr(obj, name)(*args, **kwargs)
        if result:
            D.acquire(lock)
        return result
    if name == "release":
        D.release(lock)
        return getattr(obj, name)(*args, **kwargs)
    if kind is _CONDITION and name in ("wait", "wait_for"):
        if name == "wait_for":
            if args and callable(args[0]):
                args = (_predicate_holding(D, lock, args[0]), *args[1:])
            elif callable(kwargs.get("predicate")):
                kwargs = {**kwargs, "predicate": _predicate_holding(D, lock, kwargs["predicate"])}
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
    """The context manager for ``with obj:`` on an object of a SYNC_CALL_TYPES type (or subclass)."""
    kind = _kind(t)
    if kind is _CONDITION:
        lock = obj._lock
        # A Condition over a semaphore, say, is not exclusive: joined edges.
        exclusive = is_sync_type(type(lock)) and _kind(type(lock)) is _MUTEX
        return (_MutexContext if exclusive else _LockContext)(obj, lock, D)
    if kind is _MUTEX:
        return _MutexContext(obj, obj, D)
    if kind is _QUEUE:
        return obj  # not a context manager: `with` fails as it would have
    return _LockContext(obj, obj, D)  # a semaphore
