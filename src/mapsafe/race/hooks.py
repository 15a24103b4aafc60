"""Happens-before sources: class-level patches of threading, queue, futures, asyncio and mapsafe's maps."""

from __future__ import annotations

import _thread
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

    is_alive = threading.Thread.is_alive

    def join(orig):
        # Only a join that saw the thread end orders it: join(timeout) may
        # return with the thread still running. (Its final clock is published
        # by _bootstrap_inner before is_alive() can turn false.)
        def join(self, timeout=None):
            result = orig(self, timeout)
            D = _D()
            if D is not None and not is_alive(self):
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
    # threading's pure-Python RLock, a mutex like the C one.
    sync.register_sync_call_types(threading._PyRLock)


# -- queue ---------------------------------------------------------------


def _patch_queue() -> None:
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
                D = _D()
                if D is not None:
                    sync.put_item(D, self, item, order, self._qsize())
                return result

            return _put

        return make

    def get(order):
        def make(orig):
            def _get(self):
                item = orig(self)
                D = _D()
                if D is not None:
                    sync.got_item(D, self, item, order, self._qsize() + 1)
                return item

            return _get

        return make

    for cls, order in ((queue.Queue, sync.FIFO), (queue.LifoQueue, sync.LIFO), (queue.PriorityQueue, sync.PRIORITY)):
        _patch(cls, "_put", put(order))
        _patch(cls, "_get", get(order))

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


def _future_release(D: Any, future: Any) -> None:
    """A future's state changed (result, exception, cancel): published on the
    future's clock and on its condition's lock, which guards that state. A
    Future subclass that changes the state in user code under
    ``with self._condition`` (pebble does) is then seen by stdlib observers."""
    D.release(future)
    cond = getattr(future, "_condition", None)
    lock = getattr(cond, "_lock", None)
    if lock is not None:
        D.release(lock)


def _future_acquire(D: Any, future: Any) -> None:
    """A stdlib observer of a future's state (result(), done()...) saw it:
    ordered after its publications, and after what user code did holding
    its condition's lock."""
    D.acquire(future)
    cond = getattr(future, "_condition", None)
    lock = getattr(cond, "_lock", None)
    if lock is not None:
        D.acquire(lock)


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
                _future_release(D, self)
            return orig(self, value)

        return complete

    _patch(_base.Future, "set_result", completing)
    _patch(_base.Future, "set_exception", completing)

    def starting(orig):
        def set_running_or_notify_cancel(self):
            D = _D()
            if D is not None:
                _future_release(D, self)
            return orig(self)

        return set_running_or_notify_cancel

    _patch(_base.Future, "set_running_or_notify_cancel", starting)

    def cancelling(orig):
        # Released before the state changes, as for set_result: a thread that
        # sees the future cancelled may acquire at once. A running or
        # finished future never becomes cancellable again, so then cancel()
        # is sure to fail and publishes nothing; a stale read of _state
        # (another thread starting it meanwhile) only publishes too much,
        # which can hide a race, never invent one.
        def cancel(self):
            D = _D()
            if D is not None and self._state not in (_base.RUNNING, _base.FINISHED):
                _future_release(D, self)
            return orig(self)

        return cancel

    _patch(_base.Future, "cancel", cancelling)

    is_done = _base.Future.done  # unpatched: observe() below acquires once

    def observing(orig):
        def observe(self, timeout=None):
            try:
                return orig(self, timeout)
            finally:
                D = _D()
                if D is not None and is_done(self):
                    _future_acquire(D, self)

        return observe

    _patch(_base.Future, "result", observing)
    _patch(_base.Future, "exception", observing)

    def observing_if_true(orig):
        def observe(self):
            result = orig(self)
            if result:
                D = _D()
                if D is not None:
                    _future_acquire(D, self)
            return result

        return observe

    _patch(_base.Future, "done", observing_if_true)
    _patch(_base.Future, "cancelled", observing_if_true)
    _patch(_base.Future, "running", observing_if_true)

    def add_done_callback(orig):
        def add_done_callback(self, fn):
            def callback(future):
                D = _D()
                if D is not None:
                    _future_acquire(D, future)
                return fn(future)

            return orig(self, callback)

        return add_done_callback

    _patch(_base.Future, "add_done_callback", add_done_callback)

    def as_completed(orig):
        def as_completed(fs, timeout=None):
            for future in orig(fs, timeout):
                D = _D()
                if D is not None:
                    _future_acquire(D, future)
                yield future

        return as_completed

    def wait(orig):
        def wait(fs, timeout=None, return_when=cf.ALL_COMPLETED):
            result = orig(fs, timeout, return_when)
            D = _D()
            if D is not None:
                for future in result.done:
                    _future_acquire(D, future)
            return result

        return wait

    for name, make in (("as_completed", as_completed), ("wait", wait)):
        original = _base.__dict__[name]
        _patch(_base, name, make)
        if cf.__dict__.get(name) is original:  # the package re-exports _base's function
            setattr(cf, name, _base.__dict__[name])
            _PATCHES.append((cf, name, original))


# -- asyncio ---------------------------------------------------------------


def _patch_asyncio(base_events: Any) -> None:
    """Patch asyncio.base_events, once it is imported (see _AfterImport).

    call_soon_threadsafe is the one way into a loop from another thread:
    run_coroutine_threadsafe, and the results of run_in_executor and
    to_thread (a ThreadPoolExecutor future, chained back to the loop), all
    come through it. Within the loop thread, program order does the rest;
    the executor side is the futures patches.
    """
    from asyncio import coroutines

    def call_soon_threadsafe(orig):
        def call_soon_threadsafe(self, callback, *args, context=None):
            D = _D()
            # Passed as they are when the loop would refuse them (debug mode
            # checks the callback): the same error, from the same check.
            if D is None or not callable(callback) or coroutines.iscoroutinefunction(callback):
                return orig(self, callback, *args, context=context)
            vc = D.snapshot_and_tick()

            def handoff(*a):
                D2 = _D()
                if D2 is not None:
                    D2.acquire_clock(vc)
                return callback(*a)

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

    _patch(base_events.BaseEventLoop, "call_soon_threadsafe", call_soon_threadsafe)


# -- multiprocessing.pool.ThreadPool ---------------------------------------


def _patch_pool(pool: Any) -> None:
    """Patch multiprocessing.pool, once it is imported (see _AfterImport).

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
        vc = D.snapshot_and_tick()

        def task(*args, **kwargs):
            D2 = _D()
            if D2 is not None:
                D2.acquire_clock(vc)
            try:
                return func(*args, **kwargs)
            finally:
                D2 = _D()
                if D2 is not None and box:
                    D2.release(box[0])

        return task

    def callback_of(callback, box):
        # Called by the handler thread after the task's result came back.
        def callback_after_task(value):
            D = _D()
            if D is not None and box:
                D.acquire(box[0])
            return callback(value)

        return callback_after_task

    def submitting_through(callbacks_at):
        # callbacks_at: where callback and error_callback are among the
        # positional arguments after func, or None when there are none.
        def make(orig):
            def submit(self, func, *args, **kwargs):
                D = _D()
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
    _patch(pool.Pool, "apply_async", submitting_through(2))
    _patch(pool.Pool, "_map_async", submitting_through(3))
    _patch(pool.Pool, "imap", submitting_through(None))
    _patch(pool.Pool, "imap_unordered", submitting_through(None))

    def registering(orig):
        def __init__(self, *args, **kwargs):
            orig(self, *args, **kwargs)
            box = submitting.get(get_ident())
            if box is not None and not box:  # the first made: a MapResult runs its base's __init__
                box.append(self)

        return __init__

    _patch(pool.ApplyResult, "__init__", registering)
    _patch(pool.IMapIterator, "__init__", registering)

    def ready(orig):
        def ready(self):
            result = orig(self)
            if result:
                D = _D()
                if D is not None:
                    D.acquire(self)
            return result

        return ready

    def wait(orig):
        def wait(self, timeout=None):
            result = orig(self, timeout)
            D = _D()
            if D is not None and self._event.is_set():
                D.acquire(self)
            return result

        return wait

    _patch(pool.ApplyResult, "ready", ready)  # get() and successful() call it
    _patch(pool.ApplyResult, "wait", wait)

    def next_(orig):
        # Ordered after every task that ended so far, not only the one whose
        # result this is: coarser than exact, which can only hide a race.
        def next(self, timeout=None):
            try:
                item = orig(self, timeout)
            except BaseException as exc:
                D = _D()
                if D is not None and not isinstance(exc, pool.TimeoutError):
                    D.acquire(self)  # StopIteration, or the task's exception
                raise
            D = _D()
            if D is not None:
                D.acquire(self)
            return item

        return next

    _patch(pool.IMapIterator, "next", next_)
    _patch(pool.IMapIterator, "__next__", next_)


class _PatchingLoader:
    """Wraps a module's loader for one import: run the module, then patch it."""

    def __init__(self, loader: Any, patch: Callable[[Any], None]) -> None:
        self.loader = loader
        self.patch = patch

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # The module keeps its own loader, as if we had never been there.
        spec = module.__spec__
        if spec is not None and spec.loader is self:
            spec.loader = self.loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self.loader
        self.loader.exec_module(module)
        _try_patch(self.patch, module)


class _AfterImport:
    """A meta path finder that patches some stdlib modules once they are first imported.

    asyncio and multiprocessing cost tens of milliseconds to import, and
    change the program's modules (multiprocessing adds __mp_main__), so
    they are patched only if the program imports them.
    """

    def __init__(self, patches: dict) -> None:
        self.patches = patches  # module name -> patch(module); set once

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        patch = self.patches.get(name)
        if patch is None or self not in sys.meta_path:
            return None
        # What the import would have found without us: the finders after us.
        for finder in sys.meta_path[sys.meta_path.index(self) + 1 :]:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, patch)
        return spec


def _try_patch(patch: Callable[[Any], None], module: Any) -> None:
    try:
        patch(module)
    except Exception:  # a stdlib we do not know: left unpatched, as before install
        pass


_AFTER_IMPORT: list = []  # the installed _AfterImport finder, if any


# -- multiprocessing.connection ---------------------------------------------


class _Wire:
    """The clock of every message sent through a multiprocessing Connection."""


# One clock for all of this process's pipes and sockets: a message may come
# back on another Connection than the one it left by (a request down one pipe
# to a child process, the reply up another), so the sender and the receiver
# share no object. A send releases it, a receive acquires it. Coarser than
# per message; it can only hide races, never invent one.
_WIRE = _Wire()


def _patch_connection(connection: Any) -> None:
    """Patch multiprocessing.connection, once it is imported (see _AfterImport)."""

    def sending(orig):
        def send(self, *args, **kwargs):
            D = _D()
            if D is not None:
                D.release(_WIRE)
            return orig(self, *args, **kwargs)

        return send

    def receiving(orig):
        def recv(self, *args, **kwargs):
            result = orig(self, *args, **kwargs)
            D = _D()
            if D is not None:
                D.acquire(_WIRE)
            return result

        return recv

    def polling(orig):
        def poll(self, timeout=0.0):
            result = orig(self, timeout)
            D = _D()
            if result and D is not None:
                D.acquire(_WIRE)
            return result

        return poll

    base = connection._ConnectionBase
    for name in ("send", "send_bytes"):
        _patch(base, name, sending)
    for name in ("recv", "recv_bytes", "recv_bytes_into"):
        _patch(base, name, receiving)
    _patch(base, "poll", polling)


def _patch_on_import(patches: dict) -> None:
    """Patch each module now if it is imported, else when it is."""
    later = {}
    for name, patch in patches.items():
        module = sys.modules.get(name)
        if module is not None:
            _try_patch(patch, module)
        else:
            later[name] = patch
    if later:
        finder = _AfterImport(later)
        sys.meta_path.insert(0, finder)
        _AFTER_IMPORT.append(finder)


# -- mapsafe's own maps ------------------------------------------------------

# Go's memory model for sync.Map: a write happens before a read that
# observes it. Reads acquire the map's clock, writes acquire and release it
# (a write such as swap or compute also reads the old value). One clock per
# map is coarser than Go's per key; it can only hide races, never invent one.
# Which methods are reads and which are writes comes from the maps' contract
# table; LockedMap's read()/write() blocks take the same edges on entry and
# exit (see _patch_rwlock).
def _map_methods(kind: str) -> tuple[str, ...]:
    from mapsafe import contract

    return tuple(name for name in contract.names(kind) if name not in _MAP_HANDLES)


# Methods that hand out a handle (LockedMap's read()/write() blocks, patched in
# _patch_rwlock; SyncMap.reader(), whose C reads the patches could not see,
# so under the detector it hands out the map itself).
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
                rw, owner, result = result_of(self)
                return _TrackedHold(rw, write, owner, result)

            return method

        return make

    _patch(RWLock, "read", hold(False, lambda rw: (rw, None, None)))
    _patch(RWLock, "write", hold(True, lambda rw: (rw, None, None)))
    _patch(mapsafe.LockedMap, "read", hold(False, lambda m: (m._rw, m, MappingProxyType(m._d))))
    _patch(mapsafe.LockedMap, "write", hold(True, lambda m: (m._rw, m, m._d)))


class _TrackedHold:
    """An RWLock hold made of the (patched) acquire and release methods.

    A LockedMap's hold is also ordered like the map's methods (its clock, as
    in _patch_maps): a read() block like a read, a write() block like one
    write. Without that, `with m.write() as d: d[k] = v` published on the
    RWLock's clock while m.get(k) acquired the map's, and a thread that saw
    the value raced with what the writer did before.
    """

    __slots__ = ("_rw", "_write", "_owner", "_result")

    def __init__(self, rw: Any, write: bool, owner: Any, result: Any) -> None:
        self._rw, self._write, self._result = rw, write, result
        self._owner = owner  # the LockedMap held, or None for a plain RWLock hold

    def __enter__(self) -> Any:
        (self._rw.acquire_write if self._write else self._rw.acquire_read)()
        D = _D()
        if self._owner is not None and D is not None:
            D.acquire(self._owner)
        return self._result

    def __exit__(self, *exc_info: object) -> None:
        D = _D()
        # Released before the lock is: once it is, a reader may see the
        # block's writes and acquire at once.
        if self._write and self._owner is not None and D is not None:
            D.release(self._owner)
        (self._rw.release_write if self._write else self._rw.release_read)()


# -- weakref.finalize ------------------------------------------------------


def _patch_finalize() -> None:
    import weakref

    from . import finalizers
    from .shadow import Finalizer

    # Its registration site is remembered, and its callback runs marked as
    # a finalizer's (finalizers.py). The callback itself is not wrapped, so
    # peek() and detach() return what the program gave.
    def init(orig):
        def __init__(self, obj, func, /, *args, **kwargs):
            orig(self, obj, func, *args, **kwargs)
            finalizers.registered(self, sys._getframe(1))

        return __init__

    def call(orig):
        def __call__(self, _=None):
            site = finalizers.forget_registration(self)
            if _D() is None:
                return orig(self, _)
            with finalizers.finalizing(info=Finalizer("weakref.finalize callback", "registered at", site)):
                return orig(self, _)

        return __call__

    def detach(orig):
        def detach(self):
            finalizers.forget_registration(self)
            return orig(self)

        return detach

    _patch(weakref.finalize, "__init__", init)
    _patch(weakref.finalize, "__call__", call)
    _patch(weakref.finalize, "detach", detach)


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
    _patch_finalize()
    _patch_on_import({"asyncio.base_events": _patch_asyncio, "multiprocessing.pool": _patch_pool,
                      "multiprocessing.connection": _patch_connection})


_INHERITED: Any = object()  # in _PATCHES: the patched name was inherited; delete the patch


def uninstall() -> None:
    global _installed
    while _AFTER_IMPORT:
        finder = _AFTER_IMPORT.pop()
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
    while _PATCHES:
        owner, name, original = _PATCHES.pop()
        if original is _INHERITED:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    _installed = False
