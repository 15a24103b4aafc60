"""Which objects the detector tracks as maps, and where each kind keeps its entries.

A *kind* says how an object's operations touch the shadow state:

- ``DICT``: a dict or any subclass (user subclasses included); its own
  entries are tracked. ``DEFAULT`` (defaultdict: a missing-key read
  inserts), ``ORDERED`` (OrderedDict: reorders are writes) and ``COUNTER``
  (Counter: bulk updates read and write each key) are dicts with more.
- ``SET``: a set or subclass; its elements are tracked like dict keys.
- ``DATA``: a mapping that keeps its entries in a plain dict ``.data``
  (``UserDict``, ``WeakValueDictionary``); the operations are recorded on
  that dict, which the mapping's own (uninstrumented) methods use.
- ``CHAIN``: a ``ChainMap``; lookups read each map in turn.
- ``VIEW``: ``keys()``, ``values()`` and ``items()`` views; reading one
  reads the dict behind it.
- ``CONTAINER``: lists, tuples and frozensets, not maps themselves; a deep
  reader (``print``, ``json.dumps``) reads the maps nested in them.

Frozen sets, mapping proxies and C-extension mappings are not tracked
(``NONE``): they are immutable, or the detector cannot see inside them.
The mutable ones among them (a ``WeakKeyDictionary``, a ``shelve`` shelf, a
C-extension mapping) are remembered in ``UNTRACKED``, so that a run can say
that they were used and that races on them are not reported.
"""

from __future__ import annotations

import collections
import collections.abc
import gc
import os
import weakref
from typing import Any

__all__ = ["NONE", "DICT", "DEFAULT", "ORDERED", "COUNTER", "SET", "DATA", "CHAIN", "VIEW", "kind_of",
           "CONTAINER", "view_source", "hashable", "has_key", "data_of", "DICT_KINDS", "TRACKED", "UNTRACKED",
           "untracked"]

# Maps are > 0, so `_KINDS.get(t, 1) > 0` is the one fast test of "maybe a map"
# (an unseen type defaults to 1, and is classified on the slow path).
NONE, DICT, DEFAULT, ORDERED, COUNTER, SET, DATA, CHAIN, VIEW = range(9)
CONTAINER = -1
DICT_KINDS = frozenset((DICT, DEFAULT, ORDERED, COUNTER))
TRACKED = DICT_KINDS | {SET}  # kinds whose own entries the shadow tracks

_VIEWS = {type({}.keys()): "keys", type({}.values()): "values", type({}.items()): "items"}

# type -> kind, for every type seen. Written with single dict operations
# (a get, then a set of a value computed outside it): two threads that
# classify one type at once store the same value.
_KINDS: dict = {dict: DICT, set: SET, list: CONTAINER, tuple: CONTAINER, frozenset: CONTAINER, str: NONE,
                int: NONE, bytes: NONE, float: NONE, type(None): NONE, bool: NONE}


# Mutable mapping and set types the program used that are NONE: type -> None,
# in the order first seen. Filled by _classify (once per type, a single dict
# store), read at exit; bounded by the program's classes.
UNTRACKED: dict = {}
# The process environment: a MutableMapping over putenv, not the program's own
# data, and used by most programs; listing it would only be noise.
_NOT_LISTED = (os._Environ,)


def _classify(t: type) -> int:
    k = _classify_kind(t)
    if k == NONE and issubclass(t, (collections.abc.MutableMapping, collections.abc.MutableSet)) \
            and not issubclass(t, _NOT_LISTED):
        UNTRACKED[t] = None  # noqa: MS301  (one entry per type)
    return k


def untracked() -> list[str]:
    """The UNTRACKED types whose entries no instrumented code keeps: named at exit, in the order seen.

    Left out: mapsafe's own maps (synchronised, and ordered by the hooks),
    and a class whose writes are instrumented code (a program's own
    MutableMapping over a dict: that dict is tracked).
    """
    from .helpers import NAMESPACE

    names = []
    for t in list(UNTRACKED):
        if t.__module__.partition(".")[0] == "mapsafe":
            continue
        write = getattr(t, "__setitem__", None) or getattr(t, "add", None)
        code = getattr(write, "__code__", None)
        if code is not None and NAMESPACE in code.co_names:
            continue
        names.append(f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__)
    return names


def _classify_kind(t: type) -> int:
    if t in _VIEWS:
        return VIEW
    if issubclass(t, dict):
        if issubclass(t, collections.defaultdict):
            return DEFAULT
        if issubclass(t, collections.Counter):
            return COUNTER
        if issubclass(t, collections.OrderedDict):
            return ORDERED
        return DICT
    if issubclass(t, set):
        return SET
    if issubclass(t, (collections.UserDict, weakref.WeakValueDictionary)):
        return DATA
    if issubclass(t, collections.ChainMap):
        return CHAIN
    if issubclass(t, (list, tuple, frozenset, collections.deque)):
        return CONTAINER
    return NONE


def kind_of(t: type) -> int:
    """The kind of objects of type ``t``."""
    k = _KINDS.get(t)
    if k is None:
        # One entry per type seen: bounded by the program's classes.
        k = _KINDS[t] = _classify(t)  # noqa: MS301
    return k


def data_of(obj: Any) -> dict | None:
    """The plain dict a ``DATA`` mapping keeps its entries in, or None."""
    data = getattr(obj, "data", None)
    return data if type(data) is dict else None


def view_source(view: Any) -> tuple[Any, str]:
    """(the dict behind a view, "keys" | "values" | "items")."""
    # A view refers to exactly one object, its dict (no public accessor
    # returns the dict itself: .mapping is a read-only proxy of it).
    refs = gc.get_referents(view)
    return (refs[0] if refs and isinstance(refs[0], dict) else None), _VIEWS[type(view)]


def hashable(key: Any) -> bool:
    """Whether ``key`` can be hashed. Hashed outside every detector lock: a
    program's ``__hash__`` may itself run instrumented code. An unhashable key
    (or a ``__hash__`` that raises) makes the operation raise on its own, as
    plain Python does: nothing to record."""
    try:
        hash(key)
    except Exception:
        return False
    return True


def has_key(m: Any, key: Any) -> bool | None:
    """Whether the dict or set ``m`` holds ``key``, by the base type's own test
    (a subclass's ``__contains__`` is not run); None when the key's own
    ``__eq__`` raised, so the operation will raise it as plain Python does."""
    try:
        return (dict.__contains__ if isinstance(m, dict) else set.__contains__)(m, key)
    except Exception:
        return None
