"""The pure-Python core: the maps' hot paths and the RWLock's state machine, as _speedups.c does them in C.

Each class is the base of one map (or of RWLock) and holds the fields its
hot paths read. The two cores are interchangeable: the same fields, set
once by ``_core_init`` before the object is shared, the same methods, and
the same fall-backs into the map's Python code (``_delitem``,
``_get_slow``, ``_contains_slow``, ``_len_slow``, ``_check_not_computing``).
The C core also has the single-key compound operations in C; here they
are MapBase's, with the same semantics. ``_core.py`` picks one. Change
both together.

Exception safety. Every critical section here is ``with lock:`` on a lock
whose ``__enter__``/``__exit__`` are C (``RLock``), so an exception raised
by a signal handler anywhere in the section releases it. Two things cannot
be made safe in pure Python, and the C core does them in C instead:

* a release that is Python code (``RWLock.release_read``, a profiled
  acquire's bookkeeping) can be interrupted at its first instruction;
* a second asynchronous exception landing inside the clean-up of a first.

Here both are handled as well as Python allows (clean-ups check the lock's
recursion count instead of trusting a local), and docs/maps/semantics.md says so.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import deque
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeAlias, TypeVar, cast, overload

from . import _faults
from ._dictget import bound_get, dict_get

__all__ = [
    "RWCore", "SyncCore", "LockedCore", "ShardedCore", "ProfiledRLock", "RWHold",
    "SyncReader", "MapLock", "call_if_free", "hold_all", "thread_token",
]

_FAULTS = _faults.ENABLED
_allocate_lock = threading.Lock  # a raw lock whose acquire/release are C
_RawLock = threading.Lock
# The maps' reentrant write lock. The C core has its own, which its C paths
# take without a Python call; here it is threading's RLock.
if TYPE_CHECKING:
    from types import TracebackType

    class MapLock:
        """What the checker knows of the maps' reentrant lock: CPython's RLock,
        with the private methods both it and the C core's MapLock have (and
        typeshed does not list)."""

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...
        def release(self) -> None: ...
        def __enter__(self) -> bool: ...
        def __exit__(
            self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None, /
        ) -> None: ...
        def _is_owned(self) -> bool: ...
        def _recursion_count(self) -> int: ...
        def _release_save(self) -> tuple[int, int]: ...
        def _acquire_restore(self, state: tuple[int, int], /) -> None: ...
        def _at_fork_reinit(self) -> None: ...

    class _PerThread(Protocol):
        token: _Token
        ref: weakref.ref[_Token]
else:
    MapLock = threading.RLock


def _check_fresh(obj: object, field: str) -> None:
    # The C core refuses a second _core_init (a concurrent reader could be
    # using the fields it would replace); this one behaves the same.
    if hasattr(obj, field):
        raise RuntimeError(f"{type(obj).__name__} object is already initialised")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")


# -- thread tokens ---------------------------------------------------------------


class _Token:
    """What identifies a thread to an RWLock; lives exactly as long as the thread."""

    __slots__ = ("__weakref__",)


_tokens = cast("_PerThread", threading.local())  # per thread: .token (a _Token) and .ref (a weakref to it)


def thread_token() -> "weakref.ref[_Token]":
    """This thread's token: a weak reference that dies when the thread ends.

    Unlike ``threading.get_ident()``, it is never reused by a later thread,
    and a dead thread's token is recognisable (``token() is None``).
    """
    try:
        return _tokens.ref
    except AttributeError:
        token = _Token()
        _tokens.token = token  # the thread-local keeps it alive until the thread ends
        _tokens.ref = weakref.ref(token)
        return _tokens.ref


# -- a contention-profiled lock ------------------------------------------------------


class ProfiledRLock:
    """A reentrant lock that counts acquisitions, contended ones and time waited.

    What ``stats=True`` maps lock with, like Go's mutex profile. Do not use it
    when stats are off: a plain ``RLock`` is cheaper. Counters are written
    only by the thread that holds the lock, so the lock guards them; readers
    (``as_dict``) may see values a moment old, never torn ones.
    """

    __slots__ = ("_raw", "acquisitions", "contended", "wait_seconds")

    def __init__(self, raw: MapLock | None = None) -> None:
        # The lock itself; set once. (CPython's RLock has MapLock's private methods.)
        self._raw: MapLock = threading.RLock() if raw is None else raw  # type: ignore[assignment]
        self.acquisitions = 0  # successful acquisitions; guarded by _raw
        self.contended = 0  # acquisitions that had to wait; guarded by _raw
        self.wait_seconds = 0.0  # total time spent waiting; guarded by _raw

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        raw = self._raw
        depth = raw._recursion_count()
        try:
            if raw.acquire(False):
                self.acquisitions += 1
                return True
            if not blocking:
                return False
            start = perf_counter()
            if not raw.acquire(True, timeout):
                return False
            self.acquisitions += 1
            self.contended += 1
            self.wait_seconds += perf_counter() - start
            return True
        except BaseException:
            # An exception after the acquire succeeded (a signal handler's,
            # between two of the lines above) must not leave it held. The
            # recursion count, not a local flag, says whether it was taken.
            if raw._recursion_count() > depth:
                raw.release()
            raise

    __enter__ = acquire

    # The exit is the RLock's own (C): a Python __exit__ could be
    # interrupted before its first line. The getter runs before __enter__.
    __exit__ = property(lambda self: self._raw.__exit__)
    release = property(lambda self: self._raw.release)

    def _is_owned(self) -> bool:
        return self._raw._is_owned()

    def _recursion_count(self) -> int:
        return self._raw._recursion_count()

    def add_wait(self, seconds: float) -> None:
        """Count a wait that happened while the lock was held (a condition wait)."""
        self.contended += 1
        self.wait_seconds += seconds

    def as_dict(self) -> dict[str, Any]:
        return {"acquisitions": self.acquisitions, "contended": self.contended, "wait_seconds": self.wait_seconds}


_T = TypeVar("_T")
_D = TypeVar("_D")
_Lock: TypeAlias = "MapLock | ProfiledRLock"  # what the maps lock with
# A ShardedMap shard's (lock, acquire, release, dict, put_locked or None), for the hot paths.
_Stripe: TypeAlias = (
    "tuple[_Lock, Callable[..., bool], Callable[[], None], dict[Any, Any], Callable[[Any, Any], Any] | None]"
)


def hold_all(locks: tuple[_Lock, ...], fn: Callable[[], _T], /) -> _T:
    """``fn()`` holding every lock of ``locks``, taken in order; all are released whatever happens.

    Nested ``with`` statements, eight locks each, so every release is the
    lock's own C ``__exit__``: no interrupt can leave one held.
    """
    if len(locks) > _MAX_NESTED_LOCKS:
        return _hold_all_flat(locks, fn)
    return _hold_from(locks, 0, fn)


_MAX_NESTED_LOCKS = 4096  # keeps _hold_from's recursion (one frame per 8 locks) far below the limit
_NO_LOCK = contextlib.nullcontext()  # pads the last group of eight; holds nothing


def _hold_from(locks: tuple[_Lock, ...], start: int, fn: Callable[[], _T]) -> _T:
    group = locks[start:start + 8]
    if not group:
        return fn()
    a, b, c, d, e, f, g, h = group + (_NO_LOCK,) * (8 - len(group))
    with a, b, c, d, e, f, g, h:
        return _hold_from(locks, start + 8, fn)


def _hold_all_flat(locks: tuple[_Lock, ...], fn: Callable[[], _T]) -> _T:
    # For very many locks: each lock's recursion count, taken before, says
    # whether this call holds it, so an exception between an acquire and the
    # next line releases it too (a second one during this clean-up cannot be
    # handled in pure Python).
    raws = [getattr(lock, "_raw", lock) for lock in locks]
    before = [raw._recursion_count() for raw in raws]
    try:
        for lock in locks:
            lock.acquire()
        return fn()
    finally:
        for raw, depth in zip(raws, before):
            if raw._recursion_count() > depth:
                raw.release()


def call_if_free(lock: _Lock, fn: Callable[[], _T], default: _D, /) -> _T | _D:
    """``fn()`` holding ``lock`` if it can be taken without waiting, else ``default``."""
    raw = getattr(lock, "_raw", lock)
    depth = raw._recursion_count()
    try:
        if not lock.acquire(False):
            return default
        return fn()
    finally:
        if raw._recursion_count() > depth:
            raw.release()


# -- RWLock's state machine ------------------------------------------------------------


class RWCore:
    """An RWLock's state and transitions; rwlock.py documents the semantics.

    Waiting uses per-waiter raw locks in two queues, not
    ``threading.Condition``: Condition.wait releases its lock and only then
    enters the ``try`` that restores it, so an interrupt in between leaves
    the caller without the lock it thinks it holds.
    """

    __slots__ = {
        "_mu": "RLock guarding every field below; LockedMap's short operations hold it throughout; set once",
        "_writer": "token of the thread holding the write lock, or None; guarded by _mu",
        "_write_depth": "nested write holds of _writer; guarded by _mu; 0 iff _writer is None",
        "_readers": "token -> read hold count; guarded by _mu; no zero counts",
        "_waiting_writers": "threads blocked wanting to write (RWLock or short writes); guarded by _mu",
        "_waiting_readers": "threads blocked in acquire_read; guarded by _mu",
        "_read_passes": "readers let in ahead of waiting writers after a write; guarded by _mu; <= _waiting_readers",
        "_read_gen": "counts hand-offs to readers; guarded by _mu",
        "_rq": "deque of raw locks of blocked readers, each held until notified; guarded by _mu",
        "_wq": "deque of raw locks of blocked writers; guarded by _mu",
        "_profile": "ProfiledRLock-like counters (add_wait) when stats are on, else None; guarded by _mu",
    }

    def _core_init(self, mu: MapLock, profile: ProfiledRLock | None, /) -> None:
        _check_fresh(self, "_mu")
        self._writer: weakref.ref[_Token] | None = None
        self._write_depth = 0
        self._readers: dict[weakref.ref[_Token], int] = {}
        self._waiting_writers = self._waiting_readers = self._read_passes = self._read_gen = 0
        self._rq: deque[_RawLock] = deque()
        self._wq: deque[_RawLock] = deque()
        self._profile = profile
        self._mu = mu

    # -- public transitions -------------------------------------------------------

    def acquire_read(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the read lock; returns False if it could not within ``timeout``."""
        me = thread_token()
        mu = self._mu
        # A thread already holding _mu is inside one of LockedMap's short
        # operations (a compute callback, say): it excludes every writer
        # already, and waiting here would release _mu mid-operation.
        inside = mu._is_owned()
        before = self._readers.get(me, 0)  # only this thread changes its own count
        try:
            with mu:
                if _FAULTS:
                    _faults.point("rw.acquire_read.locked")
                if before or self._writer is me or inside or (self._writer is None and not self._waiting_writers):
                    self._readers[me] = before + 1
                    return True
                if not blocking:
                    return False
                return self._acquire_read_slow_locked(me, timeout)
        except BaseException:
            self._undo_read(me, before)
            raise

    def release_read(self) -> None:
        """Release one hold of the read lock taken by this thread."""
        me = thread_token()
        with self._mu:
            held = self._readers.get(me)
            if not held:
                raise RuntimeError("release_read(): this thread does not hold the RWLock for reading")
            if held > 1:
                self._readers[me] = held - 1
                return
            del self._readers[me]
            self._kick_locked()

    def acquire_write(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the write lock; returns False if it could not within ``timeout``."""
        me = thread_token()
        mu = self._mu
        depth = self._write_depth if self._writer is me else 0
        try:
            with mu:
                if _FAULTS:
                    _faults.point("rw.acquire_write.locked")
                if self._writer is me:
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
                return self._acquire_write_slow_locked(me, timeout)
        except BaseException:
            self._undo_write(me, depth)
            raise

    def release_write(self) -> None:
        """Release one hold of the write lock taken by this thread."""
        with self._mu:
            if self._writer is not thread_token():
                raise RuntimeError("release_write(): this thread does not hold the RWLock for writing")
            self._write_depth -= 1
            if self._write_depth:
                return
            self._writer = None
            self._wake_locked()

    # -- waiting (caller holds _mu) --------------------------------------------------

    def _acquire_read_slow_locked(self, me: Any, timeout: float) -> bool:
        gen = self._read_gen
        self._waiting_readers += 1
        ok = False
        try:
            ok = self._wait_locked(self._rq, self._read_blocked_locked, gen, timeout)
        finally:
            # One way out of the wait, whatever ended it: drop the waiter
            # count and any pass, then take the lock or pass the wake-up on.
            self._waiting_readers -= 1
            if self._read_passes and self._read_gen != gen:
                self._read_passes -= 1  # used it, or gave up and so drops it
            if ok:
                self._readers[me] = 1
            else:
                self._kick_locked()  # a writer may have been waiting on that pass
        return ok

    def _acquire_write_slow_locked(self, me: Any, timeout: float) -> bool:
        self._waiting_writers += 1
        ok = False
        try:
            ok = self._wait_locked(self._wq, self._write_blocked_locked, None, timeout)
        finally:
            self._waiting_writers -= 1
            if ok:
                self._writer, self._write_depth = me, 1
            else:
                self._kick_locked()  # readers held back by this writer may go now
        return ok

    def _wait_readable_locked(self) -> None:
        """Block (``_mu`` held) until this thread may read the protected data.

        A short read may run while other threads hold the read lock, and
        even while writers wait: it holds ``_mu`` throughout, so it cannot
        delay a writer beyond its own few instructions. It waits only for
        another thread's write lock.
        """
        if self._writer is thread_token():
            return
        # Not counted in _waiting_readers: a short read takes no read pass.
        try:
            self._wait_locked(self._rq, self._writer_blocks_locked, None, -1)
        finally:
            self._kick_locked()

    def _wait_writable_locked(self) -> None:
        """Block (``_mu`` held) until this thread may briefly write the data.

        A short write needs no reader and no other writer. It never becomes
        the owner; it writes while holding ``_mu`` and then lets ``_mu`` go,
        so on every way out it passes the wake-up on.
        """
        me = thread_token()
        if self._writer is me:
            return
        if me in self._readers:
            raise RuntimeError(
                "cannot write while this thread holds the read lock (inside `with m.read()`); "
                "use `with m.write()` instead"
            )
        self._waiting_writers += 1
        try:
            self._wait_locked(self._wq, self._write_blocked_locked, None, -1)
        finally:
            self._waiting_writers -= 1
            self._kick_locked()

    def _read_blocked_locked(self, gen: int) -> bool:
        if self._writer is not None:
            return True
        has_pass = self._read_passes and self._read_gen != gen
        return self._waiting_writers > 0 and not has_pass

    def _writer_blocks_locked(self, _: Any) -> bool:
        return self._writer is not None

    def _write_blocked_locked(self, _: Any) -> bool:
        if self._writer is not None or self._read_passes > 0:
            return True
        if self._readers:
            self._drop_dead_readers_locked()
        return bool(self._readers)

    def _drop_dead_readers_locked(self) -> None:
        # A thread that ended holding the read lock can never release it;
        # its token is dead, so its holds are dropped here.
        for token in [t for t in self._readers if t() is None]:
            del self._readers[token]

    def _wait_locked(
        self, queue: deque[_RawLock], blocked: Callable[[Any], bool], arg: Any, timeout: float
    ) -> bool:
        """Wait (``_mu`` held, reentrantly or not) until ``blocked(arg)`` is false; False on timeout."""
        start = perf_counter()
        deadline = None if timeout is None or timeout < 0 else monotonic() + timeout
        mu = self._mu
        # A for loop, not while: see STYLE (a while back edge in a frame that
        # holds a lock was seen to skip the enclosing clean-up on 3.13.0).
        for _ in iter(int, 1):
            if not blocked(arg):
                break
            remaining = -1 if deadline is None else deadline - monotonic()
            if deadline is not None and remaining <= 0:
                return False
            waiter = _allocate_lock()
            waiter.acquire()
            queue.append(waiter)
            depth = mu._recursion_count()
            owner = threading.get_ident()
            got = False
            try:
                if _FAULTS:
                    _faults.point("rw.wait.before")
                mu._release_save()
                got = waiter.acquire(True, remaining)
                if _FAULTS:
                    _faults.point("rw.wait.woken")
            finally:
                if not mu._is_owned():
                    mu._acquire_restore((depth, owner))
                if not got:
                    try:
                        queue.remove(waiter)
                    except ValueError:
                        pass  # notified meanwhile: the caller's clean-up passes it on
        if self._profile is not None:
            self._profile.add_wait(perf_counter() - start)
        return True

    # -- waking (caller holds _mu) ----------------------------------------------------

    def _notify_locked(self, queue: deque[_RawLock], n: int) -> None:
        for _ in range(min(n, len(queue))):
            queue.popleft().release()

    def _wake_locked(self) -> None:
        """Hand the lock on after a write: first to the readers that queued
        behind writers (so they cannot starve), else to one waiting writer,
        else to all readers."""
        if self._waiting_readers and self._waiting_writers:
            self._read_passes = self._waiting_readers
            self._read_gen += 1
        elif self._waiting_writers:
            self._notify_locked(self._wq, 1)
        # Every queued reader re-checks: those with a pass, or short reads
        # (which wait only for the writer), go; the others queue again.
        self._notify_locked(self._rq, len(self._rq))

    def _kick_locked(self) -> None:
        """Restore the wake-up invariant: if a waiter could go now, one is woken.

        Idempotent, and called on every way out of a wait and of a release,
        so a wake-up consumed by a waiter that then failed is never lost.
        Extra wake-ups are harmless: every waiter re-checks its condition.
        """
        if self._writer is not None:
            return
        self._notify_locked(self._rq, len(self._rq))
        if self._waiting_writers and not self._readers and not self._read_passes:
            self._notify_locked(self._wq, 1)

    # -- clean-up after an exception ----------------------------------------------------

    def _undo_read(self, me: Any, before: int) -> None:
        # The exception may have landed after the hold was recorded but
        # before acquire_read returned; the count says which.
        with self._mu:
            held = self._readers.get(me, 0)
            if held > before:
                if held == 1:
                    del self._readers[me]
                else:
                    self._readers[me] = held - 1
            self._kick_locked()

    def _undo_write(self, me: Any, depth: int) -> None:
        with self._mu:
            if self._writer is me and self._write_depth > depth:
                self._write_depth -= 1
                if not self._write_depth:
                    self._writer = None
                    self._wake_locked()
            self._kick_locked()

    # -- fork ------------------------------------------------------------------------------

    def _after_fork_child(self) -> None:
        """In a forked child only this thread survives: forget everyone else."""
        me = thread_token()
        mu = self._mu
        if not mu._is_owned():
            mu._at_fork_reinit()
        self._readers = {t: n for t, n in self._readers.items() if t is me}
        if self._writer is not me:
            self._writer, self._write_depth = None, 0
        self._waiting_writers = self._waiting_readers = self._read_passes = 0
        self._rq = deque()
        self._wq = deque()


class RWHold:
    """``with`` support for an RWLock: the read or the write lock for the block."""

    __slots__ = ("_acquire", "_release", "_result")

    def __init__(self, rw: RWCore, write: bool, result: Any = None) -> None:
        self._acquire = rw.acquire_write if write else rw.acquire_read  # set once
        self._release = rw.release_write if write else rw.release_read  # set once
        self._result = result  # what __enter__ returns; set once

    def __enter__(self) -> Any:
        self._acquire()
        return self._result

    def __exit__(self, *exc_info: object) -> None:
        self._release()


class CacheCore:
    """Cache's hits: in the pure core, Cache's own Python ``get`` and ``_hit`` (see cache.py)."""

    __slots__ = ()

    def _core_init(
        self,
        data: dict[Any, Any],
        cells: dict[Any, Any],
        clock: Callable[[], float] | None,
        failure: type,
        loader: Callable[[Any], Any] | None,
        fast: bool,
        /,
    ) -> None:
        pass  # the Python methods read the Cache's own attributes


class CachedCore:
    """A @cached function's calls: in the pure core, memo.py's own Python ``__call__`` and ``__get__``."""

    __slots__ = ()

    def _core_init(self, cache: Any, key: Any, instances: Any, typed: bool, /) -> None:
        pass  # the Python methods read the function's own attributes


class SyncReader:
    """A per-thread read handle of a SyncMap (see SyncMap.reader); the C core's avoids shared refcounts."""

    __slots__ = ("get", "_d")

    def __init__(self, d: dict[Any, Any]) -> None:
        if type(d) is not dict:
            raise TypeError("SyncReader needs exactly a dict")
        self._d = d  # the SyncMap's dict; set once
        self.get = bound_get(d)  # one dict operation (see _dictget); set once

    def __getitem__(self, key: Any) -> Any:
        return self._d[key]

    def __contains__(self, key: Any) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)


# -- the maps' hot paths ------------------------------------------------------------------


class SyncCore:
    """SyncMap's hot paths: lock-free ``m[k]``, and ``m[k] = v`` under the write lock."""

    __slots__ = {
        "_d": "the entries; read lock-free, written only with the write lock held",
        "_acquire": "the write lock's acquire (reentrant; or the profiled one); set once",
        "_release": "the write lock's release; set once",
        "_computing": "key -> token of the thread running its compute callback; guarded by the write lock",
        "_lock": "the write lock (an RLock or a ProfiledRLock); set once",
    }

    if TYPE_CHECKING:
        # The map's own methods, which these hot paths fall back on (MapBase's,
        # or the map class's).
        def _check_not_computing(self, key: Any) -> None: ...

    def _core_init(self, d: dict[Any, Any], lock: _Lock, computing: dict[Any, Any], /) -> None:
        _check_fresh(self, "_d")
        self._lock, self._acquire, self._release = lock, lock.acquire, lock.release
        self._d, self._computing = d, computing

    def __getitem__(self, key: Any) -> Any:
        return self._d[key]  # one dict operation: atomic with or without the GIL

    # Overloaded as the maps' get is, with any key and value: they give the types.
    @overload
    def get(self, key: Any, /) -> Any: ...
    @overload
    def get(self, key: Any, default: Any, /) -> Any: ...

    def get(self, key: Any, default: Any = None, /) -> Any:
        """The value for ``key``, else ``default``. Lock-free."""
        return dict_get(self._d, key, default)  # one dict operation (see _dictget)

    # The compound operations (merge, add, pop, ...) are MapBase's here; the
    # C core has them in C, with the same semantics.

    def __contains__(self, key: object) -> bool:
        return key in self._d  # one dict operation

    def __len__(self) -> int:
        return len(self._d)  # one dict operation

    def __setitem__(self, key: Any, value: Any) -> None:
        d = self._d
        with self._lock:
            if _FAULTS:
                _faults.point("sync.setitem.locked")
            if self._computing and key in self._computing:
                self._check_not_computing(key)
            old = dict_get(d, key)  # released after the lock: its __del__ may use the map
            d[key] = value
        del old


class LockedCore:
    """LockedMap's hot paths: ``get`` and ``m[k] = v`` holding the RWLock's mutex."""

    __slots__ = {
        "_d": "the entries; read and written only while holding _rw (its mutex, or read/write lock)",
        "_rw": "the RWLock guarding _d; set once",
        "_lock": "_rw._mu, or a ProfiledRLock around it; set once",
        "_computing": "key -> token of the thread running its compute callback; guarded by _rw._mu",
        "_counting": "True when stats are on: get() counts, in _get_slow; set once",
    }

    if TYPE_CHECKING:
        # The map's own methods, which these hot paths fall back on (MapBase's,
        # or the map class's).
        def _check_not_computing(self, key: Any) -> None: ...
        def _get_slow(self, key: Any, default: Any = None, /) -> Any: ...

    def _core_init(
        self, d: dict[Any, Any], rw: RWCore, lock: _Lock, computing: dict[Any, Any], counting: bool, /
    ) -> None:
        _check_fresh(self, "_d")
        _check_bool("counting", counting)
        self._d, self._rw, self._lock = d, rw, lock
        self._computing, self._counting = computing, counting

    # Overloaded as the maps' get is, with any key and value: they give the types.
    @overload
    def get(self, key: Any, /) -> Any: ...
    @overload
    def get(self, key: Any, default: Any, /) -> Any: ...

    def get(self, key: Any, default: Any = None, /) -> Any:
        """The value for ``key``, else ``default``."""
        if self._counting:
            return self._get_slow(key, default)
        with self._lock:
            if _FAULTS:
                _faults.point("locked.get.locked")
            if self._rw._writer is not None:
                self._rw._wait_readable_locked()
            return dict_get(self._d, key, default)

    def __setitem__(self, key: Any, value: Any) -> None:
        d = self._d
        with self._lock:
            if _FAULTS:
                _faults.point("locked.setitem.locked")
            rw = self._rw
            if rw._writer is not None or rw._readers:
                rw._wait_writable_locked()
            if self._computing and key in self._computing:
                self._check_not_computing(key)
            old = dict_get(d, key)  # released after the lock
            d[key] = value
        del old


class ShardedCore:
    """ShardedMap's hot paths: lock-free ``get``, and ``m[k] = v`` under one shard's lock."""

    __slots__ = {
        "_maps": "each shard's dict, for lock-free reads; set once",
        "_stripes": "per shard (lock, acquire, release, dict, put_locked or None when plain); set once",
        "_computing": "key -> token of the thread computing it; changed holding the key's shard (and _callback_lock)",
        "_n": "number of shards; set once",
        "get": "m.get(key, default=None, /): the value for key, else default. Lock-free.",
    }

    if TYPE_CHECKING:
        # The map's own methods, which these hot paths fall back on (MapBase's,
        # or the map class's).
        def _check_not_computing(self, key: Any) -> None: ...
        def _get_slow(self, key: Any, default: Any = None, /) -> Any: ...
        def _contains_slow(self, key: object) -> bool: ...
        def _len_slow(self) -> int: ...

        get: Callable[..., Any]

    def _core_init(
        self,
        maps: tuple[dict[Any, Any], ...],
        stripes: tuple[_Stripe, ...],
        computing: dict[Any, Any],
        all_locks: tuple[_Lock, ...],
        plain_get: bool,
        /,
    ) -> None:
        _check_fresh(self, "_maps")
        _check_bool("plain_get", plain_get)
        self._maps, self._stripes, self._computing, self._n = maps, stripes, computing, len(maps)
        # Plain maps without stats read with no wrapping and no counting.
        self.get = self._get_plain if plain_get else self._get_slow

    # `in` and len() are the map's own here (the C core has plain maps' in C).

    def __contains__(self, key: object) -> bool:
        return self._contains_slow(key)

    def __len__(self) -> int:
        return self._len_slow()

    def _get_plain(self, key: Any, default: Any = None, /) -> Any:
        return dict_get(self._maps[hash(key) % self._n], key, default)  # one dict operation (see _dictget)

    def __setitem__(self, key: Any, value: Any) -> None:
        lock, _, _, d, put_locked = self._stripes[hash(key) % self._n]
        with lock:
            if _FAULTS:
                _faults.point("sharded.setitem.locked")
            if self._computing and key in self._computing:
                self._check_not_computing(key)
            if put_locked is None:
                old = dict_get(d, key)  # released after the lock
                d[key] = value
            else:
                old = put_locked(key, value)  # what it replaced or evicted
        del old
