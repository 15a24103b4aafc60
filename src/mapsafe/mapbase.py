"""MapBase: the dict-compatible layer the three maps share."""

from __future__ import annotations

import copy as _copy
import operator
from collections.abc import ItemsView, Iterable, Iterator, Mapping, MutableMapping, ValuesView
from functools import partial
from itertools import count
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from typing_extensions import Self

from . import _faults
from ._core import thread_token
from ._dictget import bound_get
from .errors import RecursiveUpdateError
from .sentinels import DELETE, MISSING

__all__ = ["MapBase", "OneSectionMap", "TypedOnlyGeneric", "check_flag", "dropper", "pairs_of"]

_NO_DEFAULT: Any = object()  # pop() called without a default; compare_and_delete's 'no new value'
_COMPUTE, _IF_ABSENT, _IF_PRESENT, _MERGE = range(4)  # _compute modes
_FAULTS = _faults.ENABLED

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")
_KT = TypeVar("_KT")
_VT = TypeVar("_VT")

if TYPE_CHECKING:
    from .sentinels import Delete, Missing


if TYPE_CHECKING:
    from typing import Generic as TypedOnlyGeneric
else:

    class _NoBase:
        __slots__ = ()

        def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[()]:
            return ()  # PEP 560: contributes no base at all

    class TypedOnlyGeneric:
        """``class C(Base, TypedOnlyGeneric[K, V])``: generic for the checker, with no
        runtime base (C's MRO is what it would be without it). Give C
        ``__class_getitem__ = classmethod(GenericAlias)`` for ``C[str, int]``."""

        __slots__ = ()

        def __class_getitem__(cls, params: Any) -> _NoBase:
            return _NoBase()


class Section(Protocol):
    """What ``MapBase._section(key)`` returns: see MapBase."""

    @property
    def lock(self) -> ContextManager[Any]: ...
    @property
    def ready(self) -> Callable[[], None] | None: ...
    @property
    def peek(self) -> Callable[[Any, Any], Any]: ...
    @property
    def put(self) -> Callable[[Any, Any], Any]: ...
    @property
    def drop(self) -> Callable[[Any], Any]: ...


def check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def copy_of(d: dict[_KT, _VT]) -> dict[_KT, _VT]:
    """A copy of the built-in dict ``d`` taken in one step, with or without the GIL.

    ``dict(d)``, never ``d.copy()``: CPython 3.11's ``dict.copy`` allocates the
    new dict object after cloning the entries and before reading their count.
    That allocation can run the cyclic GC, whose finalizers and callbacks are
    Python code, and another thread (or the callback) may write ``d`` then: the
    copy counts one entry more or fewer than it holds, and iterating it raises
    "dictionary keys changed during iteration". ``dict(d)`` allocates first and
    clones after (tests/test_maps_faults.py shows both on 3.11).
    """
    return dict(d)


def _drop(d: dict[Any, Any], key: Any) -> Any:
    return d.pop(key, None)


def dropper(d: dict[Any, Any]) -> Callable[[Any], Any]:
    """A section's ``drop`` for a plain dict: removes ``key`` and returns what it removed.

    It tolerates a key that is already gone: a finalizer run by the cyclic
    GC (or, on free-threaded builds, a deferred deallocation) can run at any
    allocation, even inside a critical section, and the reentrant lock lets
    it remove the very key the interrupted operation has just looked up.
    """
    return partial(_drop, d)


def pairs_of(cls_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[Any, Any]]:
    """What ``dict(*args, **kwargs)`` would insert, in order, as a list.

    Materialised before any lock is taken, so a bad argument (an iterable of
    non-pairs, an unhashable key) raises before the map changes.
    """
    if len(args) > 1:
        raise TypeError(f"{cls_name} expected at most 1 positional argument, got {len(args)}")
    pairs: list[tuple[Any, Any]] = []
    if args:
        source = args[0]
        if isinstance(source, MapBase):
            pairs.extend(source.snapshot().items())
        elif isinstance(source, dict):
            pairs.extend(copy_of(source).items())  # one atomic dict op
        elif hasattr(source, "keys"):
            pairs.extend((k, source[k]) for k in source.keys())
        else:
            for i, item in enumerate(source):
                try:
                    key, value = item
                except (TypeError, ValueError):
                    size = len(item) if hasattr(item, "__len__") else "no"
                    raise ValueError(
                        f"{cls_name} update sequence element #{i} has length {size}; 2 is required"
                    ) from None
                pairs.append((key, value))
    pairs.extend(kwargs.items())
    for key, _ in pairs:
        hash(key)  # TypeError("unhashable type: ...") now, not half-way through
    return pairs


_K_co = TypeVar("_K_co", covariant=True)
_V_co = TypeVar("_V_co", covariant=True)


class Walkable(Protocol[_K_co, _V_co]):
    """What the views below walk: a map with ``_iter_items()``."""

    def __len__(self) -> int: ...
    def _iter_items(self) -> Iterator[tuple[_K_co, _V_co]]: ...


class _ItemsView(ItemsView[K, V]):
    """items() over a copy taken when iteration starts: never raises for concurrent writes."""

    __slots__ = ()
    _mapping: Walkable[K, V]  # ItemsView's (typeshed does not list it)

    if TYPE_CHECKING:
        def __init__(self, mapping: Walkable[K, V]) -> None: ...

    def __iter__(self) -> Iterator[tuple[K, V]]:
        return self._mapping._iter_items()


class _ValuesView(ValuesView[V]):
    """values() over a copy taken when iteration starts: never raises for concurrent writes."""

    __slots__ = ()
    _mapping: Walkable[Any, V]  # ValuesView's (typeshed does not list it)

    if TYPE_CHECKING:
        def __init__(self, mapping: Walkable[Any, V]) -> None: ...

    def __iter__(self) -> Iterator[V]:
        return (value for _, value in self._mapping._iter_items())


class MapBase(MutableMapping[K, V]):
    """The dict-compatible surface, built on a few primitives per map.

    A subclass provides ``snapshot()``, ``__len__``, ``__contains__``,
    ``get``/``__getitem__``/``__setitem__``/``__delitem__`` (its fast paths),
    ``_options()`` (constructor keywords for copies) and, for the compound
    operations here, *sections*: ``_section(key)`` returns an object with

    * ``lock``: the reentrant write lock covering ``key``, entered with
      ``with`` (its ``__enter__``/``__exit__`` are C, so an exception can
      never land between taking it and being inside the block);
    * ``ready``: None, or a callable to run just inside the block that waits
      until writing is allowed (LockedMap: no reader and no writer);
    * and, to be called holding it, ``peek(key, default)``, ``put(key,
      value)`` and ``drop(key)``. ``put`` and ``drop`` return what they
      released (a replaced value, an evicted entry): the caller keeps it
      until the lock is released, so a value's ``__del__`` never runs under
      a map lock.

    ``_computing`` maps keys whose compute callback is running to the token
    of the thread running it; it is only changed by a thread holding the
    section of that key, so a writer holding that section that finds its key
    there with its own token is the callback's own thread: a recursive
    update.
    """

    __slots__ = ()

    # -- construction, copying, pickling -----------------------------------

    if TYPE_CHECKING:
        # Every map takes dict's arguments, and keyword options of its own.
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def _options(self) -> dict[str, Any]:
        raise NotImplementedError

    def _export(self) -> Any:
        """What pickling and deepcopy keep: by default the (key, value) pairs."""
        return list(self.snapshot().items())

    def _import(self, state: Any) -> None:
        """Load what ``_export`` produced into this (new, empty) map."""
        self._put_many(list(state))

    @classmethod
    def _from_export(cls, options: dict[str, Any], state: Any) -> Self:
        new = cls(**options)
        new._import(state)
        return new

    def _public_type(self) -> type[Self]:
        """The class users constructed (a map may pick a private subclass)."""
        return type(self)

    def __reduce__(self) -> tuple[Callable[..., MapBase[Any, Any]], tuple[Any, ...]]:
        # Locks are recreated by the constructor, never pickled.
        return (_rebuild, (self._public_type(), self._options(), self._export()))

    def copy(self) -> Self:
        """A shallow copy of the same class with the same options."""
        return self._public_type()(self.snapshot(), **self._options())

    __copy__ = copy

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        new = self._public_type()(**self._options())
        memo[id(self)] = new  # before copying contents, which may refer back to self
        new._import(_copy.deepcopy(self._export(), memo))
        return new

    @classmethod
    def fromkeys(cls, iterable: Iterable[Any], value: Any = None) -> Self:
        """A new map with keys from ``iterable``, each set to ``value``.

        As ``dict.fromkeys`` does for a subclass: ``cls()``, then ``m[key] =
        value`` for each key, so a subclass's ``__setitem__`` is honoured.
        """
        new = cls()
        for key in iterable:
            new[key] = value
        return new

    # -- whole-map reads ----------------------------------------------------

    def snapshot(self) -> dict[K, V]:
        """A point-in-time ``dict`` copy of the contents."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[K]:
        # Iterating a snapshot: never raises for concurrent writes, never
        # yields a key twice, and yields every key present throughout.
        return iter(self.snapshot())

    def __reversed__(self) -> Iterator[K]:
        return reversed(list(self.snapshot()))

    def _iter_items(self) -> Iterator[tuple[K, V]]:
        """(key, value) pairs of a copy taken now; what every walk uses."""
        return iter(self.snapshot().items())

    def items(self) -> ItemsView[K, V]:
        return _ItemsView(self)

    def values(self) -> ValuesView[V]:
        return _ValuesView(self)

    def range(self, fn: Callable[[K, V], object]) -> None:
        """Call ``fn(key, value)`` for each entry; stop when it returns ``False``.

        Like Go's ``Range``: it walks a snapshot, so ``fn`` may read and
        write the map freely (no lock is held while it runs).
        """
        for key, value in self._iter_items():
            if fn(key, value) is False:
                return

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MapBase):
            return self.snapshot() == other.snapshot()
        if isinstance(other, dict):
            return self.snapshot() == other
        if isinstance(other, Mapping):
            return self.snapshot() == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like dict

    def __repr__(self) -> str:
        return f"{self._public_type().__name__}({self.snapshot()!r})"

    def __or__(self, other: Mapping[K, V]) -> Self:
        if not isinstance(other, Mapping):
            return NotImplemented
        new = self.copy()
        new.update(other)
        return new

    def __ror__(self, other: Mapping[K, V]) -> Self:
        if not isinstance(other, Mapping):
            return NotImplemented
        new = self._public_type()(other, **self._options())
        new.update(self)
        return new

    def __ior__(self, other: Mapping[K, V] | Iterable[tuple[K, V]]) -> Self:
        self.update(other)
        return self

    # -- Go sync.Map methods ------------------------------------------------

    def load(self, key: K) -> tuple[V | None, bool]:
        """``(value, True)`` if ``key`` is present, else ``(None, False)``."""
        value = self.get(key, MISSING)
        return (None, False) if value is MISSING else (value, True)

    def store(self, key: K, value: V) -> None:
        """Set ``key`` to ``value``."""
        self[key] = value

    def delete(self, key: K) -> None:
        """Remove ``key`` if present; an absent key is fine."""
        self.pop(key, None)

    def load_or_store(self, key: K, value: V) -> tuple[V, bool]:
        """``(existing, True)`` if present, else store ``value`` and return ``(value, False)``."""
        current = self.get(key, MISSING)  # lock-free fast path for present keys
        if current is not MISSING:
            return current, True
        section = self._section(key)
        with section.lock:
            if section.ready is not None:
                section.ready()
            if _FAULTS:
                _faults.point("map.load_or_store.locked")
            # Re-check: another thread may have stored it while we waited.
            current = section.peek(key, MISSING)
            if current is not MISSING:
                return current, True
            self._check_not_computing(key)
            released = section.put(key, value)
        del released  # after the lock
        return value, False

    def load_and_delete(self, key: K) -> tuple[V | None, bool]:
        """Remove ``key``; ``(old, True)`` if it was present, else ``(None, False)``."""
        value = self.pop(key, MISSING)
        return (None, False) if value is MISSING else (value, True)

    def swap(self, key: K, value: V) -> tuple[V | None, bool]:
        """Store ``value``; return ``(previous, True)``, or ``(None, False)`` if absent."""
        section = self._section(key)
        with section.lock:
            if section.ready is not None:
                section.ready()
            if _FAULTS:
                _faults.point("map.swap.locked")
            self._check_not_computing(key)
            previous = section.peek(key, MISSING)
            released = section.put(key, value)
        del released
        return (None, False) if previous is MISSING else (previous, True)

    def compare_and_swap(self, key: K, old: V, new: V) -> bool:
        """Store ``new`` if the current value ``== old``; False when absent."""
        return self._replace_if_equal(key, old, new)

    def compare_and_delete(self, key: K, old: V) -> bool:
        """Delete ``key`` if its value ``== old``; False when absent."""
        return self._replace_if_equal(key, old, _NO_DEFAULT)

    def _replace_if_equal(self, key: Any, old: Any, new: Any) -> bool:
        """The compare-and-* pair: ``new`` is the value to store, or _NO_DEFAULT to delete.

        The comparison is user code (``__eq__``), so it runs with no lock
        held: a value's ``__eq__`` that uses this or another map can never
        deadlock. The swap then happens only if the value is still the very
        object that compared equal, else it starts again. Linearizable: a
        False result takes effect at the read, a True one at the swap.
        """
        section = self._section(key)
        for _ in count():
            with section.lock:
                if section.ready is not None:
                    section.ready()
                current = section.peek(key, MISSING)
            if current is MISSING or not (current == old):
                return False
            with section.lock:
                if section.ready is not None:
                    section.ready()
                if _FAULTS:
                    _faults.point("map.replace_if_equal.locked")
                if section.peek(key, MISSING) is not current:
                    continue  # changed meanwhile: compare again
                self._check_not_computing(key)
                released = section.drop(key) if new is _NO_DEFAULT else section.put(key, new)
            del released
            return True
        raise AssertionError("unreachable")

    # -- dict methods that are compound --------------------------------------

    def __getitem__(self, key: K) -> V:
        value = self.get(key, MISSING)
        if value is MISSING:
            raise KeyError(key)
        return value

    def __delitem__(self, key: K) -> None:
        section = self._section(key)
        with section.lock:
            if section.ready is not None:
                section.ready()
            if _FAULTS:
                _faults.point("map.delitem.locked")
            old = section.peek(key, MISSING)
            if old is MISSING:
                raise KeyError(key)
            self._check_not_computing(key)
            released = section.drop(key)
        del old, released  # after the lock

    # What the C core's `del m[k]` calls: a C mp_ass_subscript slot serves
    # both m[k] = v and del m[k], and its __delitem__ comes first in the MRO.
    _delitem = __delitem__

    @overload
    def pop(self, key: K) -> V: ...
    @overload
    def pop(self, key: K, default: V) -> V: ...
    @overload
    def pop(self, key: K, default: T) -> V | T: ...

    def pop(self, key: K, default: Any = _NO_DEFAULT) -> Any:
        """Remove ``key`` and return its value; ``default`` or KeyError if absent."""
        section = self._section(key)
        released = None
        with section.lock:
            if section.ready is not None:
                section.ready()
            if _FAULTS:
                _faults.point("map.pop.locked")
            value = section.peek(key, MISSING)
            if value is not MISSING:
                self._check_not_computing(key)
                released = section.drop(key)
        del released
        if value is MISSING:
            if default is _NO_DEFAULT:
                raise KeyError(key)
            return default
        return value

    @overload
    def setdefault(self: MapBase[K, T | None], key: K, default: None = None) -> T | None: ...
    @overload
    def setdefault(self, key: K, default: V) -> V: ...

    def setdefault(self, key: K, default: Any = None) -> Any:
        """Atomically: the value of ``key``, inserting ``default`` if absent."""
        return self.load_or_store(key, default)[0]

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Like ``dict.update``; all keys are checked before anything changes."""
        self._put_many(pairs_of(type(self).__name__, args, kwargs))

    # -- ConcurrentHashMap-style atomic compound operations -------------------

    def compute(self, key: K, fn: Callable[[K, V | Missing], V | Delete]) -> V | None:
        """Atomically set ``key`` to ``fn(key, old)`` (``old`` is MISSING if absent).

        ``fn`` returns the new value, or ``DELETE`` to remove the key.
        Returns the new value, or None if the key ends up absent. ``fn``
        runs once, holding the key's write lock: it may read the map and
        write other keys, but writing ``key`` itself, ``clear()``, and (on a
        LockedMap) a ``write()`` block raise RecursiveUpdateError. If ``fn``
        raises, the key is left unchanged and the exception propagates.
        """
        return self._compute(key, fn, _COMPUTE)

    def compute_if_absent(self, key: K, factory: Callable[[K], V | Delete]) -> V | None:
        """The value of ``key``, computing ``factory(key)`` first if absent.

        ``factory`` runs at most once per absent key, even when many threads
        ask at once: the others wait and get its result. Returning ``DELETE``
        stores nothing (and returns None).
        """
        current = self.get(key, MISSING)  # lock-free fast path where reads are
        if current is not MISSING:
            return current
        return self._compute(key, factory, _IF_ABSENT)

    def compute_if_present(self, key: K, fn: Callable[[K, V], V | Delete]) -> V | None:
        """If ``key`` is present, set it to ``fn(key, old)``; None if absent or removed."""
        return self._compute(key, fn, _IF_PRESENT)

    def merge(self, key: K, value: V, fn: Callable[[V, V], V | Delete]) -> V | None:
        """Store ``value`` if absent, else ``fn(old, value)``; return the new value.

        ``fn`` returning ``DELETE`` removes the key (and merge returns None).
        """
        return self._compute(key, fn, _MERGE, value)

    @overload
    def add(self: MapBase[K, int], key: K) -> int: ...
    @overload
    def add(self, key: K, n: V) -> V: ...

    def add(self, key: K, n: Any = 1) -> Any:
        """Add ``n`` to the number stored for ``key`` (absent counts as 0); return the new value.

        The same as ``merge(key, n, operator.add)``, atomically, and what a
        counter should use: on the C core an int or float is added in C,
        holding the key's lock, with no Python frame. Ints never overflow
        (they are Python ints). A stored value ``n`` cannot be added to
        raises the ``TypeError`` that ``+`` raises, and the map is unchanged.
        Do not use it to concatenate strings or lists: it works (``+`` is
        called holding the lock), but ``merge`` with a named function says
        what the code means.
        """
        return self.merge(key, n, operator.add)

    def _compute(self, key: K, fn: Callable[..., Any], mode: int, value: Any = None) -> V | None:
        """The compute family: ``mode`` says which, ``value`` is merge's."""
        section = self._section(key)
        released = None
        with section.lock:
            if section.ready is not None:
                section.ready()
            if _FAULTS:
                _faults.point("map.compute.locked")
            result, released = self._compute_locked(section, key, fn, mode, value)
        del released  # after the lock: a replaced value's __del__ may use the map
        return result

    def _compute_locked(
        self, section: Section, key: K, fn: Callable[..., Any], mode: int, value: Any
    ) -> tuple[V | None, Any]:
        """(result, what to release after the lock) of the compute family, holding key's section."""
        old = section.peek(key, MISSING)
        if old is MISSING:
            if mode == _IF_PRESENT:
                return None, None
            if mode == _MERGE:
                self._check_not_computing(key)
                return value, section.put(key, value)
        elif mode == _IF_ABSENT:
            return old, None  # another thread computed it while we waited for the lock
        computing = self._computing
        if key in computing:
            self._check_not_computing(key)
        computing[key] = thread_token()  # only ever set by the holder of key's section
        try:
            if mode == _MERGE:
                new = fn(old, value)
            elif mode == _IF_ABSENT:
                new = fn(key)
            else:
                new = fn(key, old)
        finally:
            del computing[key]
        if new is DELETE:
            return None, (old, section.drop(key) if old is not MISSING else None)
        return new, (old, section.put(key, new))

    def _check_not_computing(self, key: Any) -> None:
        """Raise if this thread's compute callback is computing ``key``."""
        if self._computing and self._computing.get(key) is thread_token():
            raise RecursiveUpdateError(
                f"recursive update of key {key!r}: a compute callback tried to write "
                "the key it is computing"
            )

    def _check_not_in_callback(self, what: str) -> None:
        """Raise if this thread is running a compute callback of this map."""
        me = thread_token()
        if self._computing and any(token is me for token in copy_of(self._computing).values()):
            key = next(k for k, token in copy_of(self._computing).items() if token is me)
            raise RecursiveUpdateError(
                f"recursive update of key {key!r}: {what} inside the compute callback "
                "could overwrite the key it is computing"
            )

    # -- to be provided --------------------------------------------------------

    _computing: dict[Any, Any]  # key -> thread token (see the class doc)

    def _section(self, key: Any) -> Section:
        raise NotImplementedError

    def _put_many(self, pairs: list[tuple[Any, Any]]) -> None:
        """Store every pair, checked first for recursive updates."""
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError


def _rebuild(cls: type[MapBase[Any, Any]], options: dict[str, Any], state: Any) -> MapBase[Any, Any]:
    return cls._from_export(options, state)


class OneSectionMap(MapBase[K, V]):
    """A map kept in one dict, ``_d``, written under one section, ``_sec``."""

    __slots__ = ()

    _d: dict[K, V]
    _sec: Section

    def _section(self, key: Any) -> Section:
        return self._sec

    def popitem(self) -> tuple[K, V]:
        """Remove and return the most recently inserted pair; KeyError if empty."""
        sec = self._sec
        with sec.lock:
            if sec.ready is not None:
                sec.ready()
            if _FAULTS:
                _faults.point("map.popitem.locked")
            if not self._d:
                raise KeyError(f"popitem(): {self._public_type().__name__} is empty")
            if self._computing:
                self._check_not_computing(next(reversed(self._d)))
            return self._d.popitem()  # one dict operation: the last inserted pair

    def clear(self) -> None:
        sec = self._sec
        with sec.lock:
            if sec.ready is not None:
                sec.ready()
            if _FAULTS:
                _faults.point("map.clear.locked")
            self._check_not_in_callback("clear()")
            released = copy_of(self._d)  # one atomic dict op; released after the lock
            self._d.clear()
        del released

    def _put_many(self, pairs: list[tuple[Any, Any]]) -> None:
        # One dict.update, under the section: atomic with respect to other
        # writes and, being one dict operation, to lock-free readers too
        # (unless a key's __eq__ runs on a hash collision, which can let a
        # reader in half-way).
        new = dict(pairs)  # built before the lock: hashing is user code
        d = self._d
        sec = self._sec
        with sec.lock:
            if sec.ready is not None:
                sec.ready()
            if _FAULTS:
                _faults.point("map.put_many.locked")
            if self._computing:
                for key in new:
                    self._check_not_computing(key)
            released = list(map(bound_get(d), new))  # replaced values, released after the lock
            d.update(new)
        del released
