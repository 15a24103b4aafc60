"""The detector at run time: thread clocks, sync clocks, and the helpers rewritten code calls."""

from __future__ import annotations

import _thread
import json as _json
import operator
import sys
from typing import Any, Callable

from ..errors import DataRaceError
from .clock import join_into
from .shadow import Race, Shadow, ThreadInfo, capture

__all__ = ["Detector", "HELPERS", "active_detector", "start", "stop"]


def _stack_boundaries() -> None:
    """Tell capture() which frames are the detector's and where plumbing begins."""
    import os

    from . import shadow

    here = os.path.dirname(os.path.abspath(__file__))
    stdlib = os.path.dirname(os.path.abspath(os.__file__))
    shadow.SKIP_FILES.update(os.path.join(here, f) for f in ("runtime.py", "hooks.py"))
    shadow.STOP_FILES.update(
        [os.path.join(here, "runner.py"), os.path.join(stdlib, "threading.py"), os.path.join(stdlib, "runpy.py"),
         "<frozen runpy>", os.path.join(stdlib, "concurrent", "futures", "thread.py")]
    )


_stack_boundaries()
_get_ident = _thread.get_ident
_getframe = sys._getframe
_LOCK_TYPES = (type(_thread.allocate_lock()), _thread.RLock)


class ThreadState:
    """Per-thread detector state. Only the owning thread reads or writes
    ``vc`` and ``busy``, so neither needs a lock."""

    __slots__ = ("tid", "vc", "name", "thread", "created", "running", "busy")

    def __init__(self, tid: int, vc: dict, name: str, thread: Any, created: tuple) -> None:
        self.tid = tid  # small int, never reused, the index into vector clocks
        self.vc = vc  # this thread's vector clock; vc[tid] is its current epoch
        self.name = name
        self.thread = thread  # the threading.Thread, for its current name; None if unknown
        self.created = created  # frames of the Thread.start() call
        self.running = True  # written once by the owner at exit; read by reports
        self.busy = False  # True while this thread is inside the detector (no re-entry)

    def info(self) -> ThreadInfo:
        name = self.thread.name if self.thread is not None else self.name
        return ThreadInfo(self.tid, name, self.running, self.created)


class _SyncClock:
    """The clock of one synchronization object (lock, event, queue, future...)."""

    __slots__ = ("lock", "ref", "vc", "items", "last")

    def __init__(self, ref: Any) -> None:
        self.lock = _thread.allocate_lock()  # guards vc, items and last
        self.ref = ref  # weakref to the object, so a reused id() is recognised
        self.vc: dict = {}  # covers every release so far; acquirers join it in
        self.items: dict | None = None  # queues: id(item) -> [clock of each put]
        self.last = -1  # tid of the last releaser (see acquire_mutex)


class Detector:
    """One race detector: shadow state, clocks, and where races go.

    ``sink(race)`` is called, outside any lock, for each new race that is
    neither a duplicate nor suppressed.
    """

    def __init__(
        self,
        sink: Callable[[Race], None] | None = None,
        *,
        halt_on_error: bool = False,
        suppressed: Callable[[Race], bool] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        # Guards the tables (thread ids, sync clocks) and the race list.
        # Allocated from _thread so user patches of threading cannot touch it.
        # Per-access work takes only the accessed dict's own lock.
        self.lock = _thread.allocate_lock()
        self.shadow = Shadow(_thread.allocate_lock)
        self.key_read = self.shadow.key_read
        self.key_write = self.shadow.key_write
        self.whole_read = self.shadow.whole_read
        self.clear = self.shadow.clear
        self.by_ident: dict = {}  # get_ident() -> ThreadState; single dict get/set only
        self.by_tid: dict = {}  # tid -> ThreadState; set under lock, read with single gets
        self.sync: dict = {}  # id(obj) -> _SyncClock; inserted/swept under lock, read with single gets
        self._sync_next_sweep = 1024  # len(sync) at which dead entries are dropped; lock
        self.next_tid = 0  # lock
        self.seen: set = set()  # site pairs already reported; lock
        self.races: list = []  # reported races, in order; appended under lock
        self.suppressed_count = 0  # lock
        self.sink = sink
        self.halt_on_error = halt_on_error
        self.suppressed = suppressed
        self.warn = warn or (lambda msg: sys.__stderr__.write(msg + "\n"))
        self.warned = False  # one warning per run for internal faults
        self.closed = False  # once True, new races are counted but not reported
        self.halted = False
        with self.lock:
            main = self._new_state_locked(_get_ident(), {}, "MainThread", None, ())
        self.main_tid = main.tid

    # -- threads -------------------------------------------------------

    def _new_state_locked(self, ident: int, vc: dict, name: str, thread: Any, created: tuple) -> ThreadState:
        tid = self.next_tid
        self.next_tid += 1
        vc = dict(vc)
        vc[tid] = 1
        ts = ThreadState(tid, vc, name, thread, created)
        self.by_tid[tid] = ts
        self.by_ident[ident] = ts  # a reused ident is replaced by the new thread
        return ts

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
        thread._mapsafe_race_start = (dict(ts.vc), capture(frame, stop=False))
        ts.vc[ts.tid] += 1

    def thread_begin(self, thread: Any) -> None:
        """First thing in the new thread, before run()."""
        vc, created = getattr(thread, "_mapsafe_race_start", ({}, ()))
        with self.lock:
            self._new_state_locked(_get_ident(), vc, thread.name, thread, created)

    def thread_end(self, thread: Any) -> None:
        """Last thing in a thread, before join() can return: publish the final clock."""
        ts = self.by_ident.get(_get_ident())
        if ts is None:
            return
        # Read by the joiner only after join() returned, which the thread's
        # own end synchronizes; `running` is only ever shown in reports.
        thread._mapsafe_race_end = dict(ts.vc)
        ts.running = False

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

        with self.lock:
            # Re-check under the lock: another thread may have made it meanwhile.
            sc = self.sync.get(id(obj))
            if sc is not None and sc.ref() is obj:
                return sc
            if len(self.sync) >= self._sync_next_sweep:
                for k in [k for k, v in self.sync.items() if v.ref() is None]:
                    del self.sync[k]
                self._sync_next_sweep = max(1024, 2 * len(self.sync))
            try:
                ref = weakref.ref(obj)
            except TypeError:  # not weak-referenceable: hold it (and its id) for good
                ref = (lambda o: lambda: o)(obj)
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

    def put_item(self, queue: Any, item: Any) -> None:
        ts = self.state()
        if ts.busy:
            return
        sc = self._clock(queue)
        with sc.lock:
            if sc.items is None:
                sc.items = {}
            sc.items.setdefault(id(item), []).append(dict(ts.vc))
        ts.vc[ts.tid] += 1

    def got_item(self, queue: Any, item: Any) -> None:
        ts = self.state()
        if ts.busy:
            return
        sc = self._clock(queue)
        with sc.lock:
            if sc.items:
                clocks = sc.items.get(id(item))
                if clocks:
                    join_into(ts.vc, clocks.pop(0))
                    if not clocks:
                        del sc.items[id(item)]

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
            self.shadow.created(d, frame)
        except Exception as exc:
            self._fault(exc)
        finally:
            ts.busy = False

    def _fault(self, exc: BaseException) -> None:
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
                    tid: self.by_tid[tid].info() for tid in (race.current.tid, race.previous.tid)
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
        if halt is not None:
            key = halt.key_repr
            what = f"key {key}" if key is not None else "the whole dict"
            raise DataRaceError(f"data race on {what} of dict {halt.dict_id:#x} (report above)")

    def close(self) -> list:
        """Stop reporting (threads may still run) and return the races found."""
        with self.lock:
            self.closed = True
            return list(self.races)


# -- the helpers that rewritten code calls -------------------------------
#
# Each checks `type(obj) is dict` first: for any other object it is one
# type test and the original operation. They record *before* performing
# the operation, so an operation that raises (KeyError) still counts as
# the read it was; the operation itself then runs exactly as written.

_D: Detector | None = None  # the active detector; None means "just do the operation"


def active_detector() -> Detector | None:
    return _D


def start(detector: Detector) -> None:
    global _D
    _D = detector


def stop() -> None:
    global _D
    _D = None


def _hashable(key: Any) -> bool:
    # Hash outside the detector lock: a user __hash__ may itself run
    # instrumented code. An unhashable key makes the dict operation raise
    # on its own, so there is nothing to record.
    try:
        hash(key)
    except Exception:
        return False
    return True


def getitem(obj, key):
    D = _D  # read once: stop() may run meanwhile
    if type(obj) is dict and D is not None and (type(key) is str or _hashable(key)):
        D.read_key(obj, key, "d[k]", _getframe(1))
    return obj[key]


def setitem(value, obj, key):
    # Arguments arrive in Python's evaluation order for `obj[key] = value`.
    D = _D  # read once: stop() may run meanwhile
    if type(obj) is dict and D is not None and (type(key) is str or _hashable(key)):
        D.write_key(obj, key, "d[k] = v", key not in obj, _getframe(1))
    obj[key] = value


def delitem(obj, key):
    D = _D  # read once: stop() may run meanwhile
    if type(obj) is dict and D is not None and _hashable(key):
        D.access(D.key_write, obj, _getframe(1), key, "del d[k]", key in obj)
    del obj[key]


_NO_DEFAULT = object()


def get(obj, key, default=_NO_DEFAULT, /):
    """``obj.get(key[, default])``: the commonest dict method gets its own helper."""
    D = _D  # read once: stop() may run meanwhile
    t = type(obj)
    if t is dict:
        if D is not None and (type(key) is str or _hashable(key)):
            D.read_key(obj, key, "d.get", _getframe(1))
        return obj.get(key) if default is _NO_DEFAULT else obj.get(key, default)
    if D is not None and t in _SYNC_CALL_TYPES:
        args = (key,) if default is _NO_DEFAULT else (key, default)
        return _sync_call(D, obj, t, "get", args, {})
    return obj.get(key) if default is _NO_DEFAULT else obj.get(key, default)


def contains(key, obj):
    D = _D  # read once: stop() may run meanwhile
    if type(obj) is dict and D is not None and (type(key) is str or _hashable(key)):
        D.read_key(obj, key, "in", _getframe(1))
    return key in obj


def iterate(obj):
    D = _D  # read once: stop() may run meanwhile
    if type(obj) is dict and D is not None:
        D.access(D.whole_read, obj, _getframe(1), "iteration", False)
    return obj


def new(obj):
    D = _D  # read once: stop() may run meanwhile
    if type(obj) is dict and D is not None:
        D.created(obj, _getframe(1))
    return obj


def eq(a, b):
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        if type(a) is dict:
            D.access(D.whole_read, a, _getframe(1), "==", True)
        if type(b) is dict:
            D.access(D.whole_read, b, _getframe(1), "==", True)
    return a == b


def ne(a, b):
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        if type(a) is dict:
            D.access(D.whole_read, a, _getframe(1), "!=", True)
        if type(b) is dict:
            D.access(D.whole_read, b, _getframe(1), "!=", True)
    return a != b


# Functions that read a whole dict passed as their first argument, and
# whether they read values too (iterating a dict yields only keys).
_WHOLE_FUNCS: dict = {
    len: ("len()", False),
    list: ("list()", False),
    sorted: ("sorted()", False),
    set: ("set()", False),
    frozenset: ("frozenset()", False),
    tuple: ("tuple()", False),
    sum: ("sum()", False),
    min: ("min()", False),
    max: ("max()", False),
    any: ("any()", False),
    all: ("all()", False),
    iter: ("iter()", False),
    enumerate: ("enumerate()", False),
    dict: ("dict()", True),
    repr: ("repr()", True),
    str: ("str()", True),
    _json.dumps: ("json.dumps()", True),
}


def wcall(func, *args, **kwargs):
    # `func` is whatever the user's name evaluated to, so a shadowed `len`
    # is called (and not recorded) exactly as written.
    D = _D  # read once: stop() may run meanwhile
    if args and type(args[0]) is dict and D is not None:
        what = _WHOLE_FUNCS.get(func) if _hashable(func) else None
        if what is not None:
            D.access(D.whole_read, args[0], _getframe(1), what[0], what[1])
    result = func(*args, **kwargs)
    if func is dict and type(result) is dict and D is not None:
        D.created(result, _getframe(1))
    return result


def wcall1(func, arg):
    """``func(arg)``: the one-argument case of wcall, without argument packing."""
    D = _D  # read once: stop() may run meanwhile
    if type(arg) is dict and D is not None:
        what = _WHOLE_FUNCS.get(func) if _hashable(func) else None
        if what is not None:
            D.access(D.whole_read, arg, _getframe(1), what[0], what[1])
        result = func(arg)
        if func is dict and type(result) is dict:
            D.created(result, _getframe(1))
        return result
    return func(arg)


def _record_update(D: Detector, d: dict, frame: Any, args: tuple, kwargs: dict) -> None:
    keys: list = []
    if args:
        other = args[0]
        if type(other) is dict:
            D.access(D.whole_read, other, frame, "update()", True)
            keys.extend(other)
        elif hasattr(other, "keys"):
            keys.extend(other.keys())
        elif isinstance(other, (list, tuple)):
            # Re-iterable pairs only: a generator must be consumed once, by update().
            keys.extend(pair[0] for pair in other if isinstance(pair, (list, tuple)) and len(pair) == 2)
    keys.extend(kwargs)
    for key in keys:
        if _hashable(key):
            D.access(D.key_write, d, frame, key, "d.update", key not in d)


def _record_dict_method(D: Detector, d: dict, name: str, frame: Any, args: tuple, kwargs: dict) -> None:
    if name == "get":
        if args and _hashable(args[0]):
            D.access(D.key_read, d, frame, args[0], "d.get")
    elif name == "pop":
        if args and _hashable(args[0]):
            key = args[0]
            if key in d:
                D.access(D.key_write, d, frame, key, "d.pop", True)
            else:
                D.access(D.key_read, d, frame, key, "d.pop (missing)")
    elif name == "setdefault":
        if args and _hashable(args[0]):
            key = args[0]
            if key in d:
                D.access(D.key_read, d, frame, key, "d.setdefault (found)")
            else:
                D.access(D.key_write, d, frame, key, "d.setdefault (insert)", True)
    elif name == "popitem":
        if d:
            key = next(reversed(d))
            D.access(D.key_write, d, frame, key, "d.popitem", True)
        else:
            D.access(D.whole_read, d, frame, "d.popitem (empty)", False)
    elif name == "update":
        _record_update(D, d, frame, args, kwargs)
    elif name == "keys":
        D.access(D.whole_read, d, frame, "d.keys()", False)
    elif name in ("values", "items", "copy"):
        D.access(D.whole_read, d, frame, f"d.{name}()", True)
    elif name == "clear":
        D.access(D.clear, d, frame, "d.clear()")


def call(obj, name, /, *args, **kwargs):
    """``obj.name(*args, **kwargs)`` for the method names the rewriter routes here."""
    t = type(obj)
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        if t is dict:
            try:
                _record_dict_method(D, obj, name, _getframe(1), args, kwargs)
            except DataRaceError:
                raise
            except Exception as exc:  # e.g. a user keys() that raises: run unchecked
                D._fault(exc)
            result = getattr(obj, name)(*args, **kwargs)
            if name == "copy" and type(result) is dict:
                D.created(result, _getframe(1))
            return result
        if t in _SYNC_CALL_TYPES:
            return _sync_call(D, obj, t, name, args, kwargs)
    return getattr(obj, name)(*args, **kwargs)


# Types whose methods cannot be patched (C types) or whose lock is shared
# with stdlib internals (Condition): modelled at the call site instead.
_SYNC_CALL_TYPES: set = set(_LOCK_TYPES)


def _sync_call(D: Detector, obj: Any, t: type, name: str, args: tuple, kwargs: dict) -> Any:
    import queue as _queue
    import threading as _threading

    if t is _queue.SimpleQueue:
        if name in ("put", "put_nowait"):
            if args:
                D.put_item(obj, args[0])
        result = getattr(obj, name)(*args, **kwargs)
        if name in ("get", "get_nowait"):
            D.got_item(obj, result)
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

    __slots__ = ("obj", "lock")

    def __init__(self, obj: Any, lock: Any) -> None:
        self.obj = obj
        self.lock = lock

    def __enter__(self):
        result = self.obj.__enter__()
        D = _D
        if D is not None:
            D.acquire(self.lock)
        return result

    def __exit__(self, *exc):
        D = _D
        if D is not None:
            D.release(self.lock)
        return self.obj.__exit__(*exc)


class _MutexContext(_LockContext):
    """`with` over a mutex (Lock, RLock, Condition): the cheaper edges are exact."""

    __slots__ = ()

    def __enter__(self):
        result = self.obj.__enter__()
        D = _D
        if D is not None:
            D.acquire_mutex(self.lock)
        return result

    def __exit__(self, *exc):
        D = _D
        if D is not None:
            D.release_mutex(self.lock)
        return self.obj.__exit__(*exc)


def _queue_simple() -> type:
    import queue

    return queue.SimpleQueue


def with_(obj):
    t = type(obj)
    if t in _SYNC_CALL_TYPES and _D is not None:  # (the context's methods re-read _D)
        import threading as _threading

        if t is _threading.Condition:
            return _MutexContext(obj, obj._lock)
        if t in _LOCK_TYPES:
            return _MutexContext(obj, obj)
        if t is not _queue_simple():
            return _LockContext(obj, obj)  # a lock or a semaphore
    return obj


def register_sync_call_types(*types: type) -> None:
    """Add types (Condition, SimpleQueue) whose methods are modelled at call sites."""
    _SYNC_CALL_TYPES.update(types)


# Names injected into every rewritten module. None is a valid identifier,
# so they cannot clash with (or be shadowed by) user code.
HELPERS: dict = {
    "@ms_getitem": getitem,
    "@ms_setitem": setitem,
    "@ms_delitem": delitem,
    "@ms_contains": contains,
    "@ms_iter": iterate,
    "@ms_new": new,
    "@ms_eq": eq,
    "@ms_ne": ne,
    "@ms_wcall": wcall,
    "@ms_wcall1": wcall1,
    "@ms_call": call,
    "@ms_get": get,
    "@ms_with": with_,
    "@ms_iadd": operator.iadd,
    "@ms_isub": operator.isub,
    "@ms_imul": operator.imul,
    "@ms_imatmul": operator.imatmul,
    "@ms_itruediv": operator.itruediv,
    "@ms_ifloordiv": operator.ifloordiv,
    "@ms_imod": operator.imod,
    "@ms_ipow": operator.ipow,
    "@ms_ilshift": operator.ilshift,
    "@ms_irshift": operator.irshift,
    "@ms_ior": operator.ior,
    "@ms_ixor": operator.ixor,
    "@ms_iand": operator.iand,
}
