"""The helpers that rewritten code calls in place of each map operation.

Each performs the original operation, in Python's own evaluation order,
and records it with the active detector first. For any object that is not
a tracked map it is a type test and the original operation.
"""

from __future__ import annotations

import json as _json
import operator
import sys
from typing import TYPE_CHECKING, Any

from ..errors import DataRaceError
from .sync import SYNC_CALL_TYPES, sync_call
from .sync import with_ as _sync_with

if TYPE_CHECKING:
    from .runtime import Detector

__all__ = ["HELPERS", "active_detector", "start", "stop"]

_getframe = sys._getframe

# -- the helpers that rewritten code calls -------------------------------
#
# Each checks `type(obj) is dict` first: for any other object it is one
# type test and the original operation. They record *before* performing
# the operation, so an operation that raises (KeyError) still counts as
# the read it was; the operation itself then runs exactly as written.

_D: Detector | None = None  # the active detector; None means "just do the operation"


def active_detector() -> Detector | None:
    return _D


def start(detector: Detector) -> None:
    global _D
    _D = detector


def stop() -> None:
    global _D
    _D = None


def _hashable(key: Any) -> bool:
    # Hash outside the detector lock: a user __hash__ may itself run
    # instrumented code. An unhashable key makes the dict operation raise
    # on its own, so there is nothing to record.
    try:
        hash(key)
    except Exception:
        return False
    return True


def getitem(obj, key):
    D = _D  # read once: stop() may run meanwhile
    if type(obj) is dict and D is not None and (type(key) is str or _hashable(key)):
        D.read_key(obj, key, "d[k]", _getframe(1))
    return obj[key]


def setitem(value, obj, key):
    # Arguments arrive in Python's evaluation order for `obj[key] = value`.
    D = _D  # read once: stop() may run meanwhile
    if type(obj) is dict and D is not None and (type(key) is str or _hashable(key)):
        D.write_key(obj, key, "d[k] = v", key not in obj, _getframe(1))
    obj[key] = value


def delitem(obj, key):
    D = _D  # read once: stop() may run meanwhile
    if type(obj) is dict and D is not None and _hashable(key):
        D.access(D.key_write, obj, _getframe(1), key, "del d[k]", key in obj)
    del obj[key]


_NO_DEFAULT = object()


def get(obj, key, default=_NO_DEFAULT, /):
    """``obj.get(key[, default])``: the commonest dict method gets its own helper."""
    D = _D  # read once: stop() may run meanwhile
    t = type(obj)
    if t is dict:
        if D is not None and (type(key) is str or _hashable(key)):
            D.read_key(obj, key, "d.get", _getframe(1))
        return obj.get(key) if default is _NO_DEFAULT else obj.get(key, default)
    if D is not None and t in SYNC_CALL_TYPES:
        args = (key,) if default is _NO_DEFAULT else (key, default)
        return sync_call(D, obj, t, "get", args, {})
    return obj.get(key) if default is _NO_DEFAULT else obj.get(key, default)


def contains(key, obj):
    D = _D  # read once: stop() may run meanwhile
    if type(obj) is dict and D is not None and (type(key) is str or _hashable(key)):
        D.read_key(obj, key, "in", _getframe(1))
    return key in obj


def iterate(obj):
    D = _D  # read once: stop() may run meanwhile
    if type(obj) is dict and D is not None:
        D.access(D.whole_read, obj, _getframe(1), "iteration", False)
    return obj


def new(obj):
    D = _D  # read once: stop() may run meanwhile
    if type(obj) is dict and D is not None:
        D.created(obj, _getframe(1))
    return obj


def eq(a, b):
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        if type(a) is dict:
            D.access(D.whole_read, a, _getframe(1), "==", True)
        if type(b) is dict:
            D.access(D.whole_read, b, _getframe(1), "==", True)
    return a == b


def ne(a, b):
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        if type(a) is dict:
            D.access(D.whole_read, a, _getframe(1), "!=", True)
        if type(b) is dict:
            D.access(D.whole_read, b, _getframe(1), "!=", True)
    return a != b


# Functions that read a whole dict passed as their first argument, and
# whether they read values too (iterating a dict yields only keys).
_WHOLE_FUNCS: dict = {
    len: ("len()", False),
    list: ("list()", False),
    sorted: ("sorted()", False),
    set: ("set()", False),
    frozenset: ("frozenset()", False),
    tuple: ("tuple()", False),
    sum: ("sum()", False),
    min: ("min()", False),
    max: ("max()", False),
    any: ("any()", False),
    all: ("all()", False),
    iter: ("iter()", False),
    enumerate: ("enumerate()", False),
    dict: ("dict()", True),
    repr: ("repr()", True),
    str: ("str()", True),
    _json.dumps: ("json.dumps()", True),
}


def wcall(func, *args, **kwargs):
    # `func` is whatever the user's name evaluated to, so a shadowed `len`
    # is called (and not recorded) exactly as written.
    D = _D  # read once: stop() may run meanwhile
    if args and type(args[0]) is dict and D is not None:
        what = _WHOLE_FUNCS.get(func) if _hashable(func) else None
        if what is not None:
            D.access(D.whole_read, args[0], _getframe(1), what[0], what[1])
    result = func(*args, **kwargs)
    if func is dict and type(result) is dict and D is not None:
        D.created(result, _getframe(1))
    return result


def wcall1(func, arg):
    """``func(arg)``: the one-argument case of wcall, without argument packing."""
    D = _D  # read once: stop() may run meanwhile
    if type(arg) is dict and D is not None:
        what = _WHOLE_FUNCS.get(func) if _hashable(func) else None
        if what is not None:
            D.access(D.whole_read, arg, _getframe(1), what[0], what[1])
        result = func(arg)
        if func is dict and type(result) is dict:
            D.created(result, _getframe(1))
        return result
    return func(arg)


def _record_update(D: Detector, d: dict, frame: Any, args: tuple, kwargs: dict) -> None:
    keys: list = []
    if args:
        other = args[0]
        if type(other) is dict:
            D.access(D.whole_read, other, frame, "update()", True)
            keys.extend(other)
        elif hasattr(other, "keys"):
            keys.extend(other.keys())
        elif isinstance(other, (list, tuple)):
            # Re-iterable pairs only: a generator must be consumed once, by update().
            keys.extend(pair[0] for pair in other if isinstance(pair, (list, tuple)) and len(pair) == 2)
    keys.extend(kwargs)
    for key in keys:
        if _hashable(key):
            D.access(D.key_write, d, frame, key, "d.update", key not in d)


def _record_dict_method(D: Detector, d: dict, name: str, frame: Any, args: tuple, kwargs: dict) -> None:
    if name == "get":
        if args and _hashable(args[0]):
            D.access(D.key_read, d, frame, args[0], "d.get")
    elif name == "pop":
        if args and _hashable(args[0]):
            key = args[0]
            if key in d:
                D.access(D.key_write, d, frame, key, "d.pop", True)
            else:
                D.access(D.key_read, d, frame, key, "d.pop (missing)")
    elif name == "setdefault":
        if args and _hashable(args[0]):
            key = args[0]
            if key in d:
                D.access(D.key_read, d, frame, key, "d.setdefault (found)")
            else:
                D.access(D.key_write, d, frame, key, "d.setdefault (insert)", True)
    elif name == "popitem":
        if d:
            key = next(reversed(d))
            D.access(D.key_write, d, frame, key, "d.popitem", True)
        else:
            D.access(D.whole_read, d, frame, "d.popitem (empty)", False)
    elif name == "update":
        _record_update(D, d, frame, args, kwargs)
    elif name == "keys":
        D.access(D.whole_read, d, frame, "d.keys()", False)
    elif name in ("values", "items", "copy"):
        D.access(D.whole_read, d, frame, f"d.{name}()", True)
    elif name == "clear":
        D.access(D.clear, d, frame, "d.clear()")


def call(obj, name, /, *args, **kwargs):
    """``obj.name(*args, **kwargs)`` for the method names the rewriter routes here."""
    t = type(obj)
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        if t is dict:
            try:
                _record_dict_method(D, obj, name, _getframe(1), args, kwargs)
            except DataRaceError:
                raise
            except Exception as exc:  # e.g. a user keys() that raises: run unchecked
                D._fault(exc)
            result = getattr(obj, name)(*args, **kwargs)
            if name == "copy" and type(result) is dict:
                D.created(result, _getframe(1))
            return result
        if t in SYNC_CALL_TYPES:
            return sync_call(D, obj, t, name, args, kwargs)
    return getattr(obj, name)(*args, **kwargs)


def with_(obj):
    t = type(obj)
    D = _D  # read once: stop() may run meanwhile
    if D is not None and t in SYNC_CALL_TYPES:
        return _sync_with(D, obj, t)
    return obj


# Names injected into every rewritten module. None is a valid identifier,
# so they cannot clash with (or be shadowed by) user code.
HELPERS: dict = {
    "@ms_getitem": getitem,
    "@ms_setitem": setitem,
    "@ms_delitem": delitem,
    "@ms_contains": contains,
    "@ms_iter": iterate,
    "@ms_new": new,
    "@ms_eq": eq,
    "@ms_ne": ne,
    "@ms_wcall": wcall,
    "@ms_wcall1": wcall1,
    "@ms_call": call,
    "@ms_get": get,
    "@ms_with": with_,
    "@ms_iadd": operator.iadd,
    "@ms_isub": operator.isub,
    "@ms_imul": operator.imul,
    "@ms_imatmul": operator.imatmul,
    "@ms_itruediv": operator.itruediv,
    "@ms_ifloordiv": operator.ifloordiv,
    "@ms_imod": operator.imod,
    "@ms_ipow": operator.ipow,
    "@ms_ilshift": operator.ilshift,
    "@ms_irshift": operator.irshift,
    "@ms_ior": operator.ior,
    "@ms_ixor": operator.ixor,
    "@ms_iand": operator.iand,
}
