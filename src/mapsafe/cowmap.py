"""CopyOnWriteMap: immutable versions published by one reference swap, read without a lock."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from itertools import count
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, TypeVar, TypeVarTuple, Unpack, overload

from . import _forks
from ._core import MapLock, thread_token
from .errors import RecursiveUpdateError
from .mapbase import K, V, _ItemsView, _ValuesView, pairs_of
from .sentinels import MISSING

__all__ = ["CopyOnWriteMap"]

T = TypeVar("T")
R = TypeVar("R")
Ts = TypeVarTuple("Ts")

if TYPE_CHECKING:
    from typing_extensions import Self

_NO_DEFAULT: Any = object()  # pop() called without a default


def _popitem(d: dict[K, V]) -> tuple[K, V]:
    if not d:
        raise KeyError("popitem(): CopyOnWriteMap is empty")
    return d.popitem()


class CopyOnWriteMap(MutableMapping[K, V]):
    """A map whose every write publishes a new immutable version: Go's ``atomic.Value`` holding a map.

    It is wrong for maps that are written often, or that are large and
    written at all: each write copies the whole map, O(n), so a 10,000-entry
    map written 1,000 times a second copies ten million entries a second.
    Use a :class:`SyncMap` or :class:`ShardedMap` there. It is built for
    configuration, routing tables, feature flags and the like: many readers,
    rare writers, and readers that need several keys to agree with each
    other (``snapshot()`` gives them one version to read them all from).

    Memory model: each write happens before every read that observes the
    version it published. Writes are serialised by one lock, so none is
    lost, and each (``update`` and ``update_with`` included) publishes all
    its changes at once: no reader sees some of them without the others.
    Every operation is linearizable: a read takes effect when it loads the
    current version, a write when it publishes.

    Iteration (``for k in m``, ``keys()``, ``values()``, ``items()``) walks
    the version current when it starts; it never raises for concurrent
    writes and sees none of them.

    Costs: ``get``/``m[k]``/``in``/``len`` and ``snapshot()`` are one list
    read and one dict operation, lock-free and never waiting. Writes take
    one mutex and copy the map: O(n). ``copy()`` is O(1) (the versions are
    immutable, so the copy starts from the same one). ``update_with(fn)``
    runs ``fn`` with no lock held, on its own O(n) copy, and runs it again if
    another write published first.
    """

    __slots__ = {
        "_cell": "one item: the current version, a MappingProxyType over a dict that nobody "
        "changes once published. Read lock-free with one list load; replaced only holding "
        "_lock, with one list store. Set once.",
        "_lock": "MapLock (reentrant) serialising the writers; never held while user code "
        "(update_with's fn) runs. Set once.",
        "_updating": "thread token -> True while that thread runs an update_with fn of this "
        "map; each thread sets and removes only its own entry, with single dict operations. "
        "A write by a thread found here would make its update_with retry forever.",
        "__weakref__": "",
    }

    def __init__(self, *args: Any, **kwargs: V) -> None:
        if args and isinstance(args[0], CopyOnWriteMap):
            args = (args[0].snapshot(),)
        self._cell: list[MappingProxyType[K, V]] = [MappingProxyType(dict(pairs_of(type(self).__name__, args, kwargs)))]
        self._lock = MapLock()
        self._updating: dict[Any, bool] = {}
        _forks.register(self)

    def _after_fork_child(self) -> None:
        _forks.reinit_lock(self._lock)
        for token in list(self._updating):
            if token() is None:
                self._updating.pop(token, None)  # its thread did not survive the fork

    # -- reads: one version each, lock-free -------------------------------------------

    def snapshot(self) -> Mapping[K, V]:
        """The current version: read-only (a ``MappingProxyType``), and it never changes."""
        return self._cell[0]

    def __getitem__(self, key: K) -> V:
        return self._cell[0][key]  # KeyError(key) from the version itself

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V, /) -> V: ...
    @overload
    def get(self, key: K, default: T, /) -> V | T: ...

    def get(self, key: K, default: Any = None) -> Any:
        return self._cell[0].get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._cell[0]

    def __len__(self) -> int:
        return len(self._cell[0])

    def __iter__(self) -> Iterator[K]:
        return iter(self._cell[0])

    def __reversed__(self) -> Iterator[K]:
        return reversed(self._cell[0])

    def _iter_items(self) -> Iterator[tuple[K, V]]:
        return iter(self._cell[0].items())

    def items(self) -> _ItemsView[K, V]:
        return _ItemsView(self)  # one version per walk, never a key looked up again

    def values(self) -> _ValuesView[V]:
        return _ValuesView(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CopyOnWriteMap):
            other = other.snapshot()
        elif not isinstance(other, Mapping):
            return NotImplemented
        mine = self._cell[0]
        return mine == other if isinstance(other, dict) else dict(mine) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]  # mutable, like dict

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self._cell[0])!r})"

    # -- writes: copy, change, publish ---------------------------------------------------

    def _write(self, edit: Callable[[dict[K, V], Unpack[Ts]], R], *args: Unpack[Ts]) -> R:
        """Publish a copy of the current version changed by ``edit(copy, *args)``; return its result.

        ``edit`` is this module's code, never the user's. If it raises,
        nothing is published.
        """
        self._check_not_updating()
        for _ in count():
            with self._lock:
                old = self._cell[0]
                new = old.copy()  # a dict copy of a dict nobody changes: no rehashing
                result = edit(new, *args)
                # Re-check: only this thread can have published since we read
                # old (we hold the lock), in a finalizer the GC ran during the
                # copy; publishing now would undo that write.
                if self._cell[0] is not old:
                    continue
                self._cell[0] = MappingProxyType(new)
            return result  # old is released after the lock: a removed value's __del__ runs here
        raise AssertionError("unreachable")

    def _check_not_updating(self) -> None:
        if self._updating and thread_token() in self._updating:
            raise RecursiveUpdateError(
                "recursive update: an update_with fn wrote the CopyOnWriteMap it is updating "
                "(its update would retry forever); return the change from fn instead"
            )

    def __setitem__(self, key: K, value: V) -> None:
        self._write(dict.__setitem__, key, value)

    def __delitem__(self, key: K) -> None:
        if key not in self._cell[0]:
            raise KeyError(key)  # lock-free: linearized at this read, and no copy made
        self._write(dict.__delitem__, key)  # KeyError(key) if another write removed it meanwhile

    @overload
    def pop(self, key: K, /) -> V: ...
    @overload
    def pop(self, key: K, default: V, /) -> V: ...
    @overload
    def pop(self, key: K, default: T, /) -> V | T: ...

    def pop(self, key: K, default: Any = _NO_DEFAULT) -> Any:
        """Remove ``key`` and return its value; ``default`` or KeyError if absent."""
        if key not in self._cell[0]:
            # Lock-free: an absent key is a read, linearized at this load.
            if default is _NO_DEFAULT:
                raise KeyError(key)
            return default
        value = self._write(dict.pop, key, MISSING)
        if value is MISSING:  # removed by another write after our read
            if default is _NO_DEFAULT:
                raise KeyError(key)
            return default
        return value

    def popitem(self) -> tuple[K, V]:
        """Remove and return the most recently inserted pair; KeyError if empty."""
        return self._write(_popitem)  # KeyError publishes nothing

    def clear(self) -> None:
        self._write(dict.clear)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Like ``dict.update``, published as one version; every pair is checked first."""
        self._write(dict.update, pairs_of(type(self).__name__, args, kwargs))

    @overload
    def setdefault(self: CopyOnWriteMap[K, T | None], key: K, default: None = None, /) -> T | None: ...
    @overload
    def setdefault(self, key: K, default: V, /) -> V: ...

    def setdefault(self, key: K, default: Any = None) -> Any:
        """Atomically: the value of ``key``, inserting ``default`` if absent."""
        value = self._cell[0].get(key, MISSING)  # lock-free fast path
        if value is not MISSING:
            return value
        return self._write(dict.setdefault, key, default)  # re-checked on the copy, under the lock

    def update_with(self, fn: Callable[[dict[K, V]], Mapping[K, V] | None]) -> Mapping[K, V]:
        """Apply ``fn`` to the current version atomically; return the version published.

        ``fn`` receives a mutable ``dict`` copy of the current version and
        either changes it (and returns None) or returns a new Mapping to
        publish. It runs with no lock held, and the result is published only
        if no other write published in the meantime; otherwise ``fn`` runs
        again on the newer version. So ``fn`` may run more than once under
        contention and must have no side effects (like Java's
        ``AtomicReference.updateAndGet``); it may read this map, but writing
        it raises ``RecursiveUpdateError``. The dict it receives becomes the
        published version, so ``fn`` must not keep it. An exception from
        ``fn`` leaves the map unchanged and propagates.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__} {fn!r}")
        self._check_not_updating()
        me = thread_token()
        for _ in count():
            seen = self._cell[0]
            draft = seen.copy()
            try:
                self._updating[me] = True  # inside the try: an interrupt before it leaves nothing set
                result = fn(draft)
            finally:
                self._updating.pop(me, None)
            if result is not None and result is not draft:
                if not isinstance(result, Mapping):
                    raise TypeError(f"fn must return None or a Mapping, got {type(result).__name__}")
                draft = dict(result.items())  # our own copy: fn may keep and change what it returned
            version = MappingProxyType(draft)  # made before the lock: no allocation under it
            with self._lock:
                if self._cell[0] is not seen:
                    continue  # another write published after fn's read: fn's result is stale
                self._cell[0] = version
            return version
        raise AssertionError("unreachable")

    # -- copies -------------------------------------------------------------------------

    def copy(self) -> Self:
        """A new CopyOnWriteMap starting from the current version, in O(1)."""
        new = type(self)()
        new._cell[0] = self._cell[0]  # immutable: safe to share until either map writes
        return new

    __copy__ = copy

    def __reduce__(self) -> Any:
        # The lock is recreated by the constructor, never pickled.
        return (type(self), (dict(self._cell[0]),))
