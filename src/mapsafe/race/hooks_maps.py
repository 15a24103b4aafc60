"""Happens-before edges of mapsafe's own maps and RWLock, patched on their classes."""

from __future__ import annotations

import importlib
from typing import Any

from .hooks_base import (acquire, acquired_after, acquired_if_true, active, map_write, map_write_calling, patch,
                         release, released_before)

__all__ = ["map_methods", "patch_maps", "patch_rwlock"]


# Go's memory model for sync.Map: a write happens before a read that
# observes it. Reads acquire the map's clock, writes acquire and release it
# (a write such as swap or compute also reads the old value). One clock per
# map is coarser than Go's per key; it can only hide races, never invent one.
# Which methods are reads and which are writes comes from the maps' contract
# table; LockedMap's read()/write() blocks take the same edges on entry and
# exit (see patch_rwlock).
def map_methods(kind: str) -> tuple[str, ...]:
    from mapsafe import contract

    return tuple(name for name in contract.names(kind) if name not in _MAP_HANDLES)


# Methods that hand out a handle (LockedMap's read()/write() blocks, patched in
# patch_rwlock; SyncMap.reader(), whose C reads the patches could not see,
# so under the detector it hands out the map itself).
_MAP_HANDLES = ("read", "write", "reader")


# Bound per instance as `get` by some maps, so patched under their own names.
_MAP_INTERNAL_READS = ("_get_plain", "_get_slow")


# WeakValueMap and CopyOnWriteMap: the contract's reads and writes they
# have, plus their own methods below. Each is one class, no variants.
_OTHER_MAPS = (("mapsafe.weakvaluemap", "WeakValueMap"), ("mapsafe.cowmap", "CopyOnWriteMap"))
# items() and values() hand out views that walk _iter_items later; the
# aliases (__copy__ = copy, set = __setitem__) are class attributes of
# their own.
_OTHER_READS = ("_iter_items", "__reversed__", "__copy__")
_OTHER_WRITES = ("set",)
# Writes that call the user's callable with no lock held and publish its
# result, by that argument's name: WeakValueMap.get_or_create's factory
# (call-once: its waiters get its value) and CopyOnWriteMap.update_with's fn.
_CALLING_WRITES = {"get_or_create": "factory", "update_with": "fn"}


def _mapsafe_subclasses(cls: type) -> list[type]:
    found, todo = [], list(cls.__subclasses__())
    while todo:
        sub = todo.pop()
        if sub.__module__.startswith("mapsafe") and sub not in found:
            found.append(sub)
            todo.extend(sub.__subclasses__())
    return found


def _patch_own(klass: type, names: tuple, make: Any) -> None:
    """``patch(klass, name, make)`` for each of ``names`` that ``klass`` itself defines."""
    for name in names:
        if name in klass.__dict__ and callable(klass.__dict__[name]):
            patch(klass, name, make)


def patch_maps() -> None:
    try:
        import mapsafe
    except Exception:  # the maps are optional for the detector
        return

    reading = acquired_after(acquire)
    patch(mapsafe.SyncMap, "reader", lambda orig: lambda self: self)
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
            _patch_own(klass, map_methods("read") + _MAP_INTERNAL_READS, reading)
            _patch_own(klass, map_methods("write"), map_write)
    for module, cls_name in _OTHER_MAPS:
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except Exception:
            continue
        _patch_own(cls, map_methods("read") + _OTHER_READS, reading)
        _patch_own(cls, map_methods("write") + _OTHER_WRITES, map_write)
        for name, param in _CALLING_WRITES.items():
            _patch_own(cls, (name,), map_write_calling(param))


def patch_rwlock() -> None:
    try:
        from mapsafe.rwlock import RWLock
    except Exception:
        return

    # One clock for readers and writers: a writer is ordered after the
    # readers before it (and they after the writer before them). Readers are
    # also ordered with each other, which can only hide races.
    # The transitions live in RWLock's core base (C or Python): patched on
    # RWLock itself, over the inherited ones. An acquire that timed out
    # orders nothing.
    for name in ("acquire_read", "acquire_write"):
        patch(RWLock, name, acquired_if_true(acquire), inherited=True)
    for name in ("release_read", "release_write"):
        patch(RWLock, name, released_before(release), inherited=True)

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

    patch(RWLock, "read", hold(False, lambda rw: (rw, None, None)))
    patch(RWLock, "write", hold(True, lambda rw: (rw, None, None)))
    patch(mapsafe.LockedMap, "read", hold(False, lambda m: (m._rw, m, MappingProxyType(m._d))))
    patch(mapsafe.LockedMap, "write", hold(True, lambda m: (m._rw, m, m._d)))


class _TrackedHold:
    """An RWLock hold made of the (patched) acquire and release methods.

    A LockedMap's hold is also ordered like the map's methods (its clock, as
    in patch_maps): a read() block like a read, a write() block like one
    write. Without that, `with m.write() as d: d[k] = v` published on the
    RWLock's clock while m.get(k) acquired the map's, and a thread that saw
    the value raced with what the writer did before.
    """

    __slots__ = ("_rw", "_write", "_owner", "_result")

    # All set once here and then only read, by the thread in the with block:
    # no lock.
    def __init__(self, rw: Any, write: bool, owner: Any, result: Any) -> None:
        self._rw, self._write, self._result = rw, write, result  # the RWLock; which side; what __enter__ returns
        self._owner = owner  # the LockedMap held, or None for a plain RWLock hold

    def __enter__(self) -> Any:
        (self._rw.acquire_write if self._write else self._rw.acquire_read)()
        D = active()
        if self._owner is not None and D is not None:
            D.acquire(self._owner)
        return self._result

    def __exit__(self, *exc_info: object) -> None:
        D = active()
        # Released before the lock is: once it is, a reader may see the
        # block's writes and acquire at once.
        if self._write and self._owner is not None and D is not None:
            D.release(self._owner)
        (self._rw.release_write if self._write else self._rw.release_read)()
