"""LockedMap: a dict behind one readers-writer lock."""

from __future__ import annotations

import threading
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import _forks
from ._core import LockedCore, MapLock, ProfiledRLock, RWHold
from ._dictget import bound_get, dict_get
from .mapbase import K, OneSectionMap, V, check_flag, copy_of, dropper, pairs_of
from .rwlock import RWLock
from .sentinels import MISSING

__all__ = ["LockedMap"]

T = TypeVar("T")


class _WriteSection:
    """A short exclusive hold of a LockedMap: its RWLock's mutex, once writable.

    ``peek``/``put``/``drop`` are the dict's bound methods; callers hold the
    section (``with section.lock:`` then ``section.ready()``).
    """

    __slots__ = ("lock", "_rw", "peek", "put", "drop")

    def __init__(self, owner: LockedMap[Any, Any]) -> None:
        self.lock = owner._lock  # the RWLock's mutex (or its profiled wrapper); C enter and exit
        self._rw = owner._rw
        self.peek = bound_get(owner._d)
        self.put = owner._d.__setitem__
        self.drop = dropper(owner._d)

    def ready(self) -> None:
        """Holding the mutex: wait until no other thread reads or writes."""
        rw = self._rw
        if rw._writer is not None or rw._readers:
            rw._wait_writable_locked()


class LockedMap(LockedCore, OneSectionMap[K, V]):
    """A dict behind one readers-writer lock: the simple, predictable choice.

    Use it when you need transactions over several keys (``with
    m.write() as d:``) or long consistent reads (``with m.read() as view:``),
    or simply want the behaviour of "a dict plus a lock" without writing the
    lock yourself. Do not use it for read-mostly maps where readers must
    never wait (use :class:`SyncMap`) or for heavy write traffic from many
    threads on free-threaded Python (use :class:`ShardedMap`).

    Every operation, reads included, is serialised against writes, so
    operations are linearizable, a ``write()`` block is seen by other
    threads all at once or not at all, and a ``read()`` block sees no
    writes of other threads. A write happens before every operation that
    starts after it.

    Short operations (``get``, ``m[k] = v``, ``pop``, the compute family)
    hold the lock's internal mutex for their duration: one mutex round trip
    each. They wait only for a thread inside ``write()`` (or, for writes,
    inside ``read()``). Iteration copies the dict under the lock, O(n), and
    then never raises for concurrent writes.

    Reentrancy: inside ``write()`` the same thread may call any method.
    Inside a compute callback it may call any method except writing the
    key being computed, ``clear()`` and a ``write()`` block, which raise
    RecursiveUpdateError. Writing inside ``read()`` raises RuntimeError (it
    would have to upgrade the lock).
    """

    # LockedCore holds _d, _rw (public as lock), _lock (_rw's mutex, or a
    # ProfiledRLock around it with stats) and _computing, and implements get
    # and m[k] = v (in C when the C core is built).
    __slots__ = {
        "_sec": "the write section used by compound operations; set once",
        "_counts": "[hits, misses] when stats are on, else None; guarded by _rw._mu",
        "_read_view": "the context manager read() returns (a read-only view); set once",
        "_write_view": "the context manager write() returns (the dict); set once",
        "__weakref__": "",
    }

    def __init__(self, *args: Any, stats: bool = False, **kwargs: V) -> None:
        pairs = pairs_of(type(self).__name__, args, kwargs)
        d = dict(pairs)
        self._counts: list[int] | None = None
        # CPython's RLock has the private methods MapLock lists (typeshed omits them).
        mu: MapLock = threading.RLock()  # type: ignore[assignment]
        lock: MapLock | ProfiledRLock
        if check_flag("stats", stats):
            lock = ProfiledRLock(mu)
            rw = RWLock._with_profile(mu, lock)
            self._counts = [0, 0]
        else:
            lock = mu
            rw = RWLock._with_profile(mu, None)
        self._core_init(d, rw, lock, {}, self._counts is not None)
        self._sec = _WriteSection(self)
        self._read_view = RWHold(rw, False, MappingProxyType(d))
        self._write_view = RWHold(rw, True, d)
        _forks.register(self)

    def _after_fork_child(self) -> None:
        # The RWLock (and so the mutex) is registered, and reset, on its own.
        _forks.drop_dead_tokens(self._computing)

    @property
    def lock(self) -> RWLock:
        """The RWLock guarding this map."""
        return self._rw

    def _options(self) -> dict[str, Any]:
        return {"stats": self._counts is not None}

    # -- transactions -----------------------------------------------------------

    def read(self) -> RWHold:
        """``with m.read() as view:`` a read-only view no other thread changes meanwhile.

        The view is live: do not keep it after the block.
        """
        return self._read_view

    def write(self) -> RWHold:
        """``with m.write() as d:`` exclusive access to the underlying dict.

        Other threads see the block's changes all at once. Do not keep ``d``
        after the block. Inside a compute callback it raises
        RecursiveUpdateError: raw writes would bypass the recursive-update check.
        """
        self._check_not_in_callback("a write() block")
        return self._write_view

    # -- short reads --------------------------------------------------------------

    # get: LockedCore's, which comes here when stats are on.
    # Each short read holds the mutex, and waits only for another thread's
    # write() block.
    def _get_slow(self, key: Any, default: Any = None, /) -> Any:
        with self._lock:
            if self._rw._writer is not None:
                self._rw._wait_readable_locked()
            value = dict_get(self._d, key, MISSING)
            self._counts[value is MISSING] += 1  # type: ignore[index]  # counting: _counts is set
        return default if value is MISSING else value

    def __contains__(self, key: object) -> bool:
        with self._lock:
            if self._rw._writer is not None:
                self._rw._wait_readable_locked()
            return key in self._d

    def __len__(self) -> int:
        with self._lock:
            if self._rw._writer is not None:
                self._rw._wait_readable_locked()
            return len(self._d)

    def snapshot(self) -> dict[K, V]:
        with self._lock:
            if self._rw._writer is not None:
                self._rw._wait_readable_locked()
            return copy_of(self._d)

    def stats(self) -> dict[str, Any]:
        """Counters: size, and with ``stats=True`` lock contention and hits/misses."""
        out: dict[str, Any] = {"type": "LockedMap", "size": len(self), "enabled": self._counts is not None}
        if self._counts is not None:
            with self._lock:
                out["lock"] = self._lock.as_dict()  # type: ignore[union-attr]  # stats on: a ProfiledRLock
                out["hits"], out["misses"] = self._counts
        return out

    if TYPE_CHECKING:
        # LockedCore's get and m[k] = v, with the map's types (the core's own
        # signatures take any key and value).
        _d: dict[K, V]
        _rw: RWLock

        @overload
        def get(self, key: K, /) -> V | None: ...
        @overload
        def get(self, key: K, default: V, /) -> V: ...
        @overload
        def get(self, key: K, default: T, /) -> V | T: ...
        def get(self, key: K, default: Any = None, /) -> Any: ...
        def __setitem__(self, key: K, value: V, /) -> None: ...
