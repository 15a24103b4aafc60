"""WeakValueMap: a thread-safe WeakValueDictionary with lock-free reads and call-once get_or_create."""

from __future__ import annotations

import copy as _copy
from collections import deque
from collections.abc import Iterator, MutableMapping
from functools import partial
from itertools import count
from typing import TYPE_CHECKING, Any, Callable, TypeVar, overload
from weakref import KeyedRef

from . import _forks
from ._core import MapLock
from ._loading import RETRY, Flight, run_flight
from .mapbase import K, V, _ItemsView, _ValuesView, copy_of, pairs_of

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["WeakValueMap"]

T = TypeVar("T")

_NO_DEFAULT: Any = object()  # pop() called without a default


class WeakValueMap(MutableMapping[K, V]):
    """A map whose values are held by weak references: an entry goes when its value is collected.

    Most code should not use it: a map that holds its values strongly (a
    :class:`SyncMap`, a bounded :class:`Cache`) is easier to reason about,
    and an object that is merely *expensive* wants a cache, not a weak map.
    It is built for two workloads: interning and canonical objects (one
    live object per key, made by ``get_or_create``), and registries that
    must not keep their objects alive (live sessions, open handles).
    It replaces ``weakref.WeakValueDictionary``, whose collector callbacks
    remove entries at arbitrary points, so that iterating it from another
    thread can raise and its get-or-create races.

    Memory model: a write happens before every read that observes it, and
    every single-key operation is linearizable. ``get_or_create`` is
    atomic: while a factory runs for a key, no other call runs one for it
    (they wait for its result), and every caller gets the value the map
    holds for the key when its call takes effect. A value's collection
    removes its entry at no particular moment, and no operation ever raises
    for it: to every reader, an entry whose value has died is absent.

    Iteration (``for k in m``, ``keys()``, ``values()``, ``items()``) walks
    ``snapshot()``: the live entries of the map as one atomic copy of its
    table saw them, less any value collected before the copy could take a
    strong reference to it. The snapshot holds its values strongly, so no
    value dies during a walk; it never raises for concurrent writes or
    collections, and never yields a key twice.

    Costs: ``get``/``m[k]``/``in`` are one dict read and one dereference,
    lock-free. Writes, ``len`` and a ``get_or_create`` miss take one mutex
    and first forget the entries whose values died since the last such
    call (amortised O(1)); until then a dead entry costs its key and a dead
    reference, nothing more. ``snapshot()`` and iteration are O(n) and
    lock-free. ``len`` counts the live entries, except that a value being
    collected at that very moment (its references cleared, its callback not
    yet run) may still count. The factory runs with no lock held.

    Keys are held strongly. A value must be weakly referenceable (not an
    int, str, tuple or None: ``TypeError``). Pickling raises ``TypeError``,
    as for ``WeakValueDictionary``: the unpickled values would have no
    strong reference and die at once (pickle ``snapshot()`` instead).
    ``copy()`` is a new map of the live entries;
    ``copy.deepcopy`` copies the keys and keeps the same values, as
    ``WeakValueDictionary`` does.
    """

    __slots__ = {
        "_data": "key -> KeyedRef to its value (ref.key == key, hashable). Read lock-free with "
        "one .get; written only holding _lock. Every ref was live when stored; a dead one "
        "(a miss to readers) stays until a drain removes it. Set once.",
        "_pending": "deque of KeyedRefs whose values died, appended by their callbacks with no "
        "lock (one deque op), popped by _drain_locked holding _lock. May hold refs the map "
        "no longer has. Set once.",
        "_on_death": "_pending.append: every ref's callback; it holds the deque, not the map, "
        "so refs never keep the map alive. Set once.",
        "_flights": "key -> Flight of the get_or_create load in progress for it, guarded by "
        "_lock; only its owner removes it. One that is no longer joinable (its owner was "
        "interrupted, or its thread ended) may linger and is replaced by the next "
        "get_or_create of its key.",
        "_lock": "MapLock (reentrant), held for every change of _data and _flights, never while "
        "user code (a factory) runs. Set once.",
        "__weakref__": "",
    }

    def __init__(self, *args: Any, **kwargs: V) -> None:
        self._pending: deque[KeyedRef[K, V]] = deque()
        self._on_death = self._pending.append
        self._data: dict[K, KeyedRef[K, V]] = {}
        self._flights: dict[K, Flight] = {}
        self._lock = MapLock()
        self._data.update(self._refs(args, kwargs))
        _forks.register(self)

    def _after_fork_child(self) -> None:
        _forks.reinit_lock(self._lock)
        for key, flight in list(self._flights.items()):
            flight.after_fork_child()
            if not flight.running():
                self._flights.pop(key, None)  # its thread did not survive the fork

    # -- weak references ------------------------------------------------------------

    def _ref(self, key: K, value: V) -> KeyedRef[K, V]:
        """A weak reference to ``value`` whose death queues it for removal from ``key``."""
        # Hashed first: a ref whose key cannot be hashed would, once its value
        # died, make the next drain raise in whatever operation ran it.
        hash(key)
        try:
            return KeyedRef(value, self._on_death, key)
        except TypeError:
            raise TypeError(
                f"a WeakValueMap value must be weakly referenceable; "
                f"cannot create a weak reference to a {type(value).__name__!r} object"
            ) from None

    def _refs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[K, KeyedRef[K, V]]:
        """What ``dict(*args, **kwargs)`` would hold, as refs: every error before any change."""
        if args and isinstance(args[0], WeakValueMap):
            args = (args[0].snapshot(),)  # its keys() and [] disagree while values die
        return {key: self._ref(key, value) for key, value in pairs_of(type(self).__name__, args, kwargs)}

    def _drain_locked(self) -> None:
        """Forget the entries whose values died since the last drain."""
        data, pending = self._data, self._pending
        for _ in range(len(pending)):
            try:
                ref = pending.popleft()
            except IndexError:  # a nested call (a finalizer run in this thread) took the rest
                return
            # Only if the map still holds that very ref: the key may have been
            # set again since, to a live value behind another ref. Two dict
            # operations under the lock; only a finalizer of this thread that
            # writes this key in between could be undone (as mapbase.dropper notes).
            if data.get(ref.key) is ref:
                data.pop(ref.key, None)

    # -- reads: lock-free -------------------------------------------------------------

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V, /) -> V: ...
    @overload
    def get(self, key: K, default: T, /) -> V | T: ...

    def get(self, key: K, default: Any = None) -> Any:
        ref = self._data.get(key)  # one dict operation: atomic with or without the GIL
        value = ref() if ref is not None else None  # None can never be a value: dead means absent
        return default if value is None else value

    def __getitem__(self, key: K) -> V:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]  # any object may be looked up

    def snapshot(self) -> dict[K, V]:
        """A plain ``dict`` of the live entries, holding their values strongly."""
        refs = copy_of(self._data)  # one atomic dict operation
        return {key: value for key, ref in refs.items() if (value := ref()) is not None}

    def __iter__(self) -> Iterator[K]:
        return iter(self.snapshot())

    def _iter_items(self) -> Iterator[tuple[K, V]]:
        return iter(self.snapshot().items())

    def items(self) -> _ItemsView[K, V]:
        return _ItemsView(self)  # walks one snapshot: never looks a key up again

    def values(self) -> _ValuesView[V]:
        return _ValuesView(self)

    def __len__(self) -> int:
        with self._lock:
            self._drain_locked()
            return len(self._data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.snapshot()!r})"

    # -- writes -------------------------------------------------------------------------

    def __setitem__(self, key: K, value: V) -> None:
        ref = self._ref(key, value)  # before the lock: it may raise, and it allocates
        with self._lock:
            self._drain_locked()
            self._data[key] = ref

    set = __setitem__

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Like ``dict.update``, in one step; every value is checked before anything changes."""
        refs = self._refs(args, kwargs)
        with self._lock:
            self._drain_locked()
            self._data.update(refs)

    def setdefault(self, key: K, default: V = None) -> V:  # type: ignore[assignment]  # None raises TypeError (no weak ref)
        """Atomically: the live value of ``key``, storing ``default`` first if there is none."""
        value = self.get(key)  # lock-free fast path
        if value is not None:
            return value
        ref = self._ref(key, default)
        with self._lock:
            self._drain_locked()
            # Re-check: another thread may have stored the key since our read.
            value = self.get(key)
            if value is None:
                self._data[key] = ref
                value = default
        return value

    def __delitem__(self, key: K) -> None:
        self.pop(key)

    @overload
    def pop(self, key: K, /) -> V: ...
    @overload
    def pop(self, key: K, default: V, /) -> V: ...
    @overload
    def pop(self, key: K, default: T, /) -> V | T: ...

    def pop(self, key: K, default: Any = _NO_DEFAULT) -> Any:
        """Remove ``key`` and return its live value; ``default`` or KeyError if there is none."""
        with self._lock:
            self._drain_locked()
            ref = self._data.pop(key, None)
            # Held past the lock: dropping the last strong reference here would run
            # the value's __del__ under the lock.
            value = ref() if ref is not None else None
        if value is not None:
            return value
        if default is _NO_DEFAULT:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[K, V]:
        """Remove and return the most recently inserted live pair; KeyError if there is none."""
        with self._lock:
            self._drain_locked()
            for _ in range(len(self._data)):
                key, ref = self._data.popitem()
                value = ref()
                if value is not None:
                    return key, value  # value is released after the lock, by the caller
        raise KeyError("popitem(): WeakValueMap is empty")

    def clear(self) -> None:
        """Remove every entry (loads in progress go on and store their values)."""
        with self._lock:
            released = copy_of(self._data)  # its keys are released after the lock
            self._data.clear()  # refs still queued in _pending no longer match: drains skip them
        del released

    # -- get_or_create ----------------------------------------------------------------

    def get_or_create(self, key: K, factory: Callable[[K], V], timeout: float | None = None) -> V:
        """The live value of ``key``, made by ``factory(key)`` and stored if there is none.

        However many threads ask at once, ``factory`` runs once, in one of
        them, with no lock held; the others wait and get the same object.
        An exception from it reaches every waiter, and nothing is stored.
        A factory that asks for the same key (directly or through other
        loads that wait on it) gets ``RecursiveLoadError`` instead of a
        deadlock. A waiter gives up with ``TimeoutError`` after ``timeout``
        seconds (None: wait while the loading thread lives).
        """
        if not callable(factory):
            raise TypeError(f"factory must be callable, got {type(factory).__name__} {factory!r}")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout >= 0):
            raise ValueError(f"timeout must be None or a number >= 0, got {timeout!r}")
        value = self.get(key)  # lock-free fast path
        if value is not None:
            return value
        for _ in count():  # a for loop, not while: see STYLE.md on 3.13.0 and back-edge signals
            mine = Flight()  # made before the lock: no allocation the GC tracks runs under it
            flight = None
            try:
                with self._lock:
                    self._drain_locked()
                    # Re-check: another thread may have stored the key, or started
                    # loading it, since our lock-free read.
                    value = self.get(key)
                    if value is not None:
                        return value
                    flight = self._flights.get(key)
                    # Replace a flight that is over (its owner was interrupted) or
                    # whose thread ended without finishing it: waiting on either
                    # returns None at once, so keeping it would spin.
                    if flight is None or not flight.joinable():
                        self._flights[key] = flight = mine
                if flight is mine:
                    return run_flight(mine, partial(self._create, key, factory, mine))
            except BaseException:
                # Inside the try from before it was published: an interrupt
                # anywhere up to run_flight still lets the waiters load again.
                if flight is mine and mine.running():
                    mine.abandon()
                raise
            joined: V = flight.join(key, timeout)  # the value, or RETRY
            if joined is not RETRY:
                return joined
            # The loading thread was interrupted or ended: load again.
        raise AssertionError("unreachable")

    def _create(self, key: K, factory: Callable[[K], V], flight: Flight) -> V:
        """As ``flight``'s owner: ``factory(key)`` with no lock held, then store it."""
        try:
            value = factory(key)
            ref = self._ref(key, value)
        except BaseException:
            with self._lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
            raise
        with self._lock:
            self._drain_locked()
            if self._flights.get(key) is flight:
                del self._flights[key]
            # A set() of the key while the factory ran wins: the caller and the
            # waiters get the map's value, so get_or_create never returns an
            # object the map does not hold.
            current = self.get(key)
            if current is None:
                self._data[key] = ref
                current = value
        return current

    # -- copies ----------------------------------------------------------------------

    def copy(self) -> Self:
        """A new WeakValueMap of the live entries."""
        return type(self)(self.snapshot())

    __copy__ = copy

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        # Keys are copied; values are not: a copied value would have no strong
        # reference but the copy's weak one and die at once.
        new = type(self)()
        memo[id(self)] = new
        new.update({_copy.deepcopy(key, memo): value for key, value in self.snapshot().items()})
        return new

    def __reduce__(self) -> Any:
        raise TypeError(
            f"cannot pickle {type(self).__name__!r} object: an unpickled weak map would hold its "
            "values alive nowhere; pickle m.snapshot() instead"
        )
