"""Map method calls: what each method of each map kind reads and writes.

``dict_call`` and ``map_call`` record a call on a map and then make it,
exactly as written. Methods whose keys are known before the call are
recorded before it; bulk updates whose keys are not (``Counter.update``
of a generator, ``set.intersection_update``, ``c += other``) are recorded
after it, from the difference between a snapshot and the result
(``bulk``). A method the tables do not know is made unrecorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..errors import DataRaceError
from .kinds import hashable as _hashable
from .kinds import CHAIN, COUNTER, DATA, DICT_KINDS, ORDERED, SET, VIEW, data_of, has_key, kind_of, view_source

if TYPE_CHECKING:
    from .runtime import Detector

__all__ = ["dict_call", "map_call", "bulk"]


def _whole(D: Detector, obj: Any, op: str, values: bool, frame: Any) -> None:
    from .helpers import whole  # one definition of what reading a whole map is

    whole(D, obj, op, values, frame)


def _update_keys(other: Any, counting: bool) -> list | None:
    """The keys ``update(other)`` (or ``Counter.update``) writes, when they can
    be listed without consuming ``other`` or running its code; else None."""
    t = type(other)
    if t is dict or kind_of(t) in DICT_KINDS:
        return list(dict.keys(other))
    if t in (list, tuple, set, frozenset, str):
        if counting:
            return list(other)
        return [p[0] for p in other if type(p) in (list, tuple) and len(p) == 2]
    return None


def _record_keys(D: Detector, d: Any, keys: list, op: str, frame: Any) -> None:
    for key in keys:
        if _hashable(key):
            present = has_key(d, key)
            if present is not None:
                D.access(D.key_write, d, frame, key, op, not present)


def bulk(D: Detector, m: Any, k: int, op: str, act: Callable[[], Any], frame: Any) -> Any:
    """Make a bulk update ``act()`` of the dict or set ``m`` and record a write
    of every key it inserted, removed or rebound."""
    try:
        before = dict.copy(m) if k in DICT_KINDS else set.copy(m)
    except Exception:  # changed size while copied: the program's own race
        return act()
    result = act()
    record_changes(D, m, k, before, op, frame)
    return result


def record_changes(D: Detector, m: Any, k: int, before: Any, op: str, frame: Any) -> None:
    """Record a write of every key of ``m`` that differs from the snapshot ``before``."""
    if k in DICT_KINDS:
        after = dict.copy(m)
        changed = [key for key in before.keys() | after.keys()
                   if key not in before or key not in after or before[key] is not after[key]]
        for key in changed:
            D.access(D.key_write, m, frame, key, op, (key in before) != (key in after))
    else:
        after = set.copy(m)
        for key in before ^ after:
            D.access(D.key_write, m, frame, key, op, True)


def _record_dict(D: Detector, d: Any, k: int, name: str, args: tuple, kwargs: dict, frame: Any) -> Callable | None:
    """Record ``d.name(*args, **kwargs)`` on a dict of kind ``k`` before it
    runs; returns a bulk recorder to wrap the call in, when keys are known only after."""
    if name == "get":
        if args and _hashable(args[0]):
            D.access(D.key_read, d, frame, args[0], "d.get")
    elif name == "pop":
        if args and _hashable(args[0]):
            key = args[0]
            present = has_key(d, key)
            if present:
                D.access(D.key_write, d, frame, key, "d.pop", True)
            elif present is False:
                D.access(D.key_read, d, frame, key, "d.pop (missing)")
    elif name == "setdefault":
        if args and _hashable(args[0]):
            key = args[0]
            present = has_key(d, key)
            if present:
                D.access(D.key_read, d, frame, key, "d.setdefault (found)")
            elif present is False:
                D.access(D.key_write, d, frame, key, "d.setdefault (insert)", True)
    elif name == "popitem":
        if d:
            last = kwargs.get("last", args[0] if args else True) if k == ORDERED else True
            try:
                key = next(reversed(d)) if last else next(iter(d))
            except (StopIteration, RuntimeError):
                return None
            D.access(D.key_write, d, frame, key, "d.popitem", True)
        else:
            D.access(D.whole_read, d, frame, "d.popitem (empty)", False)
    elif name in ("update", "subtract") and (name == "update" or k == COUNTER):
        counting = k == COUNTER
        op = f"Counter.{name} (read-modify-write)" if counting else "d.update"
        if args and kind_of(type(args[0])) > 0:
            _whole(D, args[0], f"{op} argument", True, frame)
        keys = _update_keys(args[0], counting) if args else []
        if keys is None:
            return lambda act: bulk(D, d, k, op, act, frame)
        _record_keys(D, d, keys + list(kwargs), op, frame)
    elif name == "keys":
        D.access(D.whole_read, d, frame, "d.keys()", False)
    elif name in ("values", "items", "copy") or (k == COUNTER and name in ("most_common", "elements", "total")):
        D.access(D.whole_read, d, frame, f"d.{name}()", True)
    elif name == "clear":
        D.access(D.clear, d, frame, "d.clear()")
    elif name == "move_to_end" and k == ORDERED:
        if args and _hashable(args[0]):
            D.access(D.order_write, d, frame, args[0], "move_to_end")
    elif name == "fromkeys":
        if args and kind_of(type(args[0])) > 0:
            _whole(D, args[0], "dict.fromkeys()", False, frame)
    return None


def _make(obj: Any, name: str, args: tuple, kwargs: dict, wrap: Callable | None) -> Any:
    method = getattr(obj, name)
    if wrap is None:
        return method(*args, **kwargs)
    return wrap(lambda: method(*args, **kwargs))


def dict_call(D: Detector, d: dict, name: str, args: tuple, kwargs: dict, frame: Any) -> Any:
    """``d.name(...)`` on a plain dict."""
    try:
        wrap = _record_dict(D, d, d.__class__ is dict and 1 or kind_of(type(d)), name, args, kwargs, frame)
    except DataRaceError:
        raise
    except Exception as exc:  # e.g. a user keys() that raises: run unchecked
        D._fault(exc)
        wrap = None
    result = _make(d, name, args, kwargs, wrap)
    if name == "copy" and type(result) is dict:
        D.created(result, frame)
    return result


def _set_call(D: Detector, s: Any, name: str, args: tuple, kwargs: dict, frame: Any) -> Any:
    if name == "add" or name in ("discard", "remove"):
        if args and _hashable(args[0]):
            present = has_key(s, args[0])
            if present is not None:
                inserts = name == "add" and not present
                removes = name != "add" and present
                if inserts or removes:
                    D.access(D.key_write, s, frame, args[0], f"s.{name}", True)
                else:
                    D.access(D.key_read, s, frame, args[0], f"s.{name} ({'present' if present else 'absent'})")
        return getattr(s, name)(*args, **kwargs)
    if name == "pop":
        if not s:
            D.access(D.whole_read, s, frame, "s.pop (empty)", False)
            return s.pop()
        result = s.pop()
        D.access(D.key_write, s, frame, result, "s.pop", True)
        return result
    if name == "clear":
        D.access(D.clear, s, frame, "s.clear()")
        return s.clear()
    if name in ("update", "difference_update", "intersection_update", "symmetric_difference_update"):
        for other in args:
            if kind_of(type(other)) > 0:
                _whole(D, other, f"s.{name} argument", False, frame)
            if type(other) in (list, tuple, set, frozenset, str, dict):
                # Each element is tested against the set: a present one is
                # read (as by an add of it); the ones it changes are written below.
                for x in tuple(other):
                    if _hashable(x) and has_key(s, x):
                        D.access(D.key_read, s, frame, x, f"s.{name} (present)")
        return bulk(D, s, SET, f"s.{name}", lambda: getattr(s, name)(*args, **kwargs), frame)
    if name in ("union", "intersection", "difference", "symmetric_difference", "issubset", "issuperset",
                "isdisjoint", "copy"):
        D.access(D.whole_read, s, frame, f"s.{name}()", False)
        for other in args:
            if kind_of(type(other)) > 0:
                _whole(D, other, f"s.{name}()", False, frame)
    return getattr(s, name)(*args, **kwargs)


def map_call(D: Detector, obj: Any, k: int, name: str, args: tuple, kwargs: dict, frame: Any) -> Any:
    """``obj.name(...)`` on a tracked map that is not a plain dict."""
    if k in DICT_KINDS:
        return dict_call(D, obj, name, args, kwargs, frame)
    if k == SET:
        return _set_call(D, obj, name, args, kwargs, frame)
    wrap = None
    try:  # recording only: the call itself is made once, below, whatever happened here
        if k == DATA:
            data = data_of(obj)
            if data is not None and name != "fromkeys":
                wrap = _record_dict(D, data, 1, name, args, kwargs, frame)
        elif k == CHAIN:
            if name == "get" and args and _hashable(args[0]):
                from .helpers import _chain_read

                _chain_read(D, obj, args[0], "d.get", frame)
            elif name in ("keys", "values", "items", "copy"):
                _whole(D, obj, f"d.{name}()", name != "keys", frame)
            elif obj.maps and kind_of(type(obj.maps[0])) in DICT_KINDS:
                wrap = _record_dict(D, obj.maps[0], 1, name, args, kwargs, frame)
        elif k == VIEW and name in ("isdisjoint",):
            src, what = view_source(obj)
            if src is not None:
                D.access(D.whole_read, src, frame, f"{what}().{name}()", what != "keys")
    except DataRaceError:
        raise
    except Exception as exc:
        D._fault(exc)
        wrap = None
    return _make(obj, name, args, kwargs, wrap)
