"""LockedMap: a dict behind one readers-writer lock."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

from ._core import LockedCore
from .mapbase import OneSectionMap, check_flag, pairs_of
from .rwlock import RWLock
from .sentinels import MISSING
from .stats import LockProfile

__all__ = ["LockedMap"]


class _WriteSection:
    """A short exclusive hold of a LockedMap: its RWLock's mutex, once writable.

    ``peek``/``put``/``drop`` are the dict's bound methods; callers hold the
    section (``enter``/``exit``).
    """

    __slots__ = ("_map", "peek", "put", "drop")

    def __init__(self, owner: "LockedMap") -> None:
        self._map = owner
        self.peek = owner._d.get
        self.put = owner._d.__setitem__
        self.drop = owner._d.__delitem__

    def enter(self) -> None:
        owner = self._map
        owner._acquire()
        rw = owner._rw
        if rw._writer is not None or rw._readers:
            try:
                rw._wait_writable_locked()
            except BaseException:
                owner._release()
                raise

    def exit(self) -> None:
        self._map._release()


class LockedMap(LockedCore, OneSectionMap):
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

    Reentrancy: inside ``write()`` and inside compute callbacks the same
    thread may call any method. Writing inside ``read()`` raises
    RuntimeError (it would have to upgrade the lock). Writing the key a
    compute callback is computing raises RecursiveUpdateError.
    """

    # LockedCore holds _d, _rw (public as lock), _acquire/_release (of
    # _rw's mutex) and _computing, and implements get and m[k] = v (in C
    # when the C core is built).
    __slots__ = {
        "_sec": "the write section used by compound operations; set once",
        "_counts": "[hits, misses] when stats are on, else None; guarded by _rw._mu",
        "__weakref__": "",
    }

    def __init__(self, *args: Any, stats: bool = False, **kwargs: Any) -> None:
        pairs = pairs_of(type(self).__name__, args, kwargs)
        rw = RWLock()
        self._counts = None
        acquire = rw._mu.acquire
        if check_flag("stats", stats):
            rw._profile = LockProfile(acquire)
            acquire = rw._profile.acquire
            self._counts = [0, 0]
        self._core_init(dict(pairs), rw, acquire, rw._mu.release, {}, self._counts is not None)
        self._sec = _WriteSection(self)

    @property
    def lock(self) -> RWLock:
        """The RWLock guarding this map."""
        return self._rw

    def _options(self) -> dict[str, Any]:
        return {"stats": self._counts is not None}

    # -- transactions -----------------------------------------------------------

    def read(self) -> "_ReadView":
        """``with m.read() as view:`` a read-only view no other thread changes meanwhile.

        The view is live: do not keep it after the block.
        """
        return _ReadView(self)

    def write(self) -> "_WriteView":
        """``with m.write() as d:`` exclusive access to the underlying dict.

        Other threads see the block's changes all at once. Do not keep ``d``
        after the block.
        """
        return _WriteView(self)

    # -- short reads --------------------------------------------------------------

    # get: LockedCore's, which comes here when stats are on.
    def _get_slow(self, key: Any, default: Any = None, /) -> Any:
        self._acquire()
        try:
            if self._rw._writer is not None:
                self._rw._wait_readable_locked()
            value = self._d.get(key, MISSING)
            self._counts[value is MISSING] += 1
            return default if value is MISSING else value
        finally:
            self._release()

    def __contains__(self, key: object) -> bool:
        self._acquire()
        try:
            if self._rw._writer is not None:
                self._rw._wait_readable_locked()
            return key in self._d
        finally:
            self._release()

    def __len__(self) -> int:
        self._acquire()
        try:
            if self._rw._writer is not None:
                self._rw._wait_readable_locked()
            return len(self._d)
        finally:
            self._release()

    def snapshot(self) -> dict:
        self._acquire()
        try:
            if self._rw._writer is not None:
                self._rw._wait_readable_locked()
            return self._d.copy()
        finally:
            self._release()

    def stats(self) -> dict[str, Any]:
        """Counters: size, and with ``stats=True`` lock contention and hits/misses."""
        out: dict[str, Any] = {"type": "LockedMap", "size": len(self), "enabled": self._counts is not None}
        if self._counts is not None:
            self._acquire()
            try:
                out["lock"] = self._rw._profile.as_dict()
                out["hits"], out["misses"] = self._counts
            finally:
                self._release()
        return out


class _ReadView:
    """The context manager ``LockedMap.read()`` returns: the read lock, and a read-only view."""

    __slots__ = ("_map",)

    def __init__(self, owner: LockedMap) -> None:
        self._map = owner

    def __enter__(self) -> Mapping[Any, Any]:
        self._map._rw.acquire_read()
        return MappingProxyType(self._map._d)

    def __exit__(self, *exc_info: object) -> None:
        self._map._rw.release_read()


class _WriteView(_ReadView):
    """The context manager ``LockedMap.write()`` returns: the write lock, and the dict."""

    __slots__ = ()

    def __enter__(self) -> dict:
        # Raw dict writes would bypass the recursive-update check.
        self._map._check_not_in_callback("a write() block")
        self._map._rw.acquire_write()
        return self._map._d

    def __exit__(self, *exc_info: object) -> None:
        self._map._rw.release_write()
