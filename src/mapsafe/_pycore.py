"""The pure-Python core: the maps' hot paths, as _speedups.c implements them in C.

Each class is the base of one map (or of RWLock) and holds the fields its
hot paths read. The two cores are interchangeable: the same fields, set
once by ``_core_init`` before the object is shared, the same methods, and
the same fall-backs into the map's Python code (``_delitem``,
``_get_slow``, ``_check_not_computing``, the RWLock's ``_wait_*_locked``).
``_core.py`` picks one. Change both together.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RWCore", "SyncCore", "LockedCore", "ShardedCore"]


def _check_fresh(obj: object, field: str) -> None:
    # The C core refuses a second _core_init (a concurrent reader could be
    # using the fields it would replace); this one behaves the same.
    if hasattr(obj, field):
        raise RuntimeError(f"{type(obj).__name__} object is already initialised")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")


class RWCore:
    """The fields of an RWLock that LockedMap's fast paths read."""

    __slots__ = {
        "_writer": "ident of the thread holding the write lock, or None; guarded by _mu",
        "_readers": "thread ident -> read hold count; guarded by _mu; no zero counts",
    }


class SyncCore:
    """SyncMap's hot paths: lock-free ``m[k]``, and ``m[k] = v`` under the write lock."""

    __slots__ = {
        "_d": "the entries; read lock-free, written only with the write lock held",
        "_acquire": "the write lock's acquire (reentrant; or the profiled one); set once",
        "_release": "the write lock's release; set once",
        "_computing": "key -> ident of the thread running its compute callback; guarded by the write lock",
    }

    def _core_init(self, d: dict, acquire: Any, release: Any, computing: dict, /) -> None:
        _check_fresh(self, "_d")
        self._d, self._acquire, self._release, self._computing = d, acquire, release, computing

    def __getitem__(self, key: Any) -> Any:
        return self._d[key]  # one dict operation: atomic with or without the GIL

    def __setitem__(self, key: Any, value: Any) -> None:
        self._acquire()
        try:
            if self._computing and key in self._computing:
                self._check_not_computing(key)
            self._d[key] = value
        finally:
            self._release()


class LockedCore:
    """LockedMap's hot paths: ``get`` and ``m[k] = v`` holding the RWLock's mutex."""

    __slots__ = {
        "_d": "the entries; read and written only while holding _rw (its mutex, or read/write lock)",
        "_rw": "the RWLock guarding _d; set once",
        "_acquire": "_rw._mu.acquire (or the profiled one); set once",
        "_release": "_rw._mu.release; set once",
        "_computing": "key -> ident of the thread running its compute callback; guarded by _rw._mu",
        "_counting": "True when stats are on: get() counts, in _get_slow; set once",
    }

    def _core_init(
        self, d: dict, rw: Any, acquire: Any, release: Any, computing: dict, counting: bool, /
    ) -> None:
        _check_fresh(self, "_d")
        _check_bool("counting", counting)
        self._d, self._rw, self._acquire, self._release = d, rw, acquire, release
        self._computing, self._counting = computing, counting

    def get(self, key: Any, default: Any = None, /) -> Any:
        """The value for ``key``, else ``default``."""
        if self._counting:
            return self._get_slow(key, default)
        self._acquire()
        try:
            if self._rw._writer is not None:
                self._rw._wait_readable_locked()
            return self._d.get(key, default)
        finally:
            self._release()

    def __setitem__(self, key: Any, value: Any) -> None:
        self._acquire()
        try:
            rw = self._rw
            if rw._writer is not None or rw._readers:
                rw._wait_writable_locked()
            if self._computing and key in self._computing:
                self._check_not_computing(key)
            self._d[key] = value
        finally:
            self._release()


class ShardedCore:
    """ShardedMap's hot paths: lock-free ``get``, and ``m[k] = v`` under one shard's lock."""

    __slots__ = {
        "_maps": "each shard's dict, for lock-free reads; set once",
        "_stripes": "per shard (acquire, release, dict, put_locked or None when plain); set once",
        "_computing": "key -> ident of the thread computing it; changed holding the key's shard (and _callback_lock)",
        "_n": "number of shards; set once",
        "get": "m.get(key, default=None, /): the value for key, else default. Lock-free.",
    }

    def _core_init(self, maps: tuple, stripes: tuple, computing: dict, plain_get: bool, /) -> None:
        _check_fresh(self, "_maps")
        _check_bool("plain_get", plain_get)
        self._maps, self._stripes, self._computing, self._n = maps, stripes, computing, len(maps)
        # Plain maps without stats read with no wrapping and no counting.
        self.get = self._get_plain if plain_get else self._get_slow

    def _get_plain(self, key: Any, default: Any = None, /) -> Any:
        return self._maps[hash(key) % self._n].get(key, default)  # one dict operation

    def __setitem__(self, key: Any, value: Any) -> None:
        acquire, release, d, put_locked = self._stripes[hash(key) % self._n]
        acquire()
        try:
            if self._computing and key in self._computing:
                self._check_not_computing(key)
            if put_locked is None:
                d[key] = value
            else:
                put_locked(key, value)
        finally:
            release()
