"""The helpers that rewritten code calls in place of each map operation.

Each performs the original operation, in Python's own evaluation order,
and records it with the active detector first. Plain dicts take the
inline fast paths; every other map kind (see ``kinds``) takes the slow
path; any other object costs a type test and the original operation.
They record *before* performing the operation, so an operation that
raises (KeyError) still counts as the read it was; the operation itself
then runs exactly as written. Calls are never made from inside a helper
when the callee could look at its caller's frame: the rewriter keeps
user calls in the user's frame and routes their arguments through
``arg``.
"""

from __future__ import annotations

import operator
import sys
from typing import TYPE_CHECKING, Any

from . import calls, finalizers, methods
from . import core as _racecore
from .kinds import (CHAIN, CONTAINER, DATA, DEFAULT, DICT_KINDS, NONE, SET, TRACKED, VIEW, data_of, has_key, kind_of,
                    view_source)
from .kinds import _KINDS
from .kinds import hashable as _hashable
from .sync import is_sync_type, sync_call
from .sync import with_ as _sync_with

if TYPE_CHECKING:
    from .runtime import Detector

__all__ = ["HELPERS", "NAMESPACE", "active_detector", "start", "stop"]

_getframe = sys._getframe
_ModuleType = type(sys)

_D: Detector | None = None  # the active detector; None means "just do the operation"
_C: Any = None  # the C core, or None; chosen once, at the end of this module


def active_detector() -> Detector | None:
    return _D


def start(detector: Detector) -> None:
    global _D
    _D = detector
    if _C is not None:
        _C.set_detector(detector)


def stop() -> None:
    global _D
    _D = None
    if _C is not None:
        _C.set_detector(None)


# -- single keys ---------------------------------------------------------


def _chain_read(D: Detector, chain: Any, key: Any, op: str, frame: Any) -> None:
    """A ChainMap lookup reads ``key`` in each map up to the first holding it."""
    for m in list(chain.maps):
        if kind_of(type(m)) in DICT_KINDS:
            D.read_key(m, key, op, frame)
            if has_key(m, key) is not False:
                return


def _read_slow(D: Detector, obj: Any, t: type, key: Any, op: str, frame: Any) -> None:
    k = kind_of(t)
    if k <= 0 or not _hashable(key):
        return
    if k in DICT_KINDS or k == SET:
        D.read_key(obj, key, op, frame)
    elif k == DATA:
        data = data_of(obj)
        if data is not None:
            D.read_key(data, key, op, frame)
    elif k == CHAIN:
        _chain_read(D, obj, key, op, frame)
    elif k == VIEW:
        src, what = view_source(obj)
        if src is None:
            return
        if what == "keys":
            D.read_key(src, key, op, frame)
        elif what == "items" and type(key) is tuple and len(key) == 2 and _hashable(key[0]):
            D.read_key(src, key[0], op, frame)
        else:
            D.access(D.whole_read, src, frame, op, True)


def getitem(obj, key):
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        t = type(obj)
        if t is dict:
            if type(key) is str or _hashable(key):
                D.read_key(obj, key, "d[k]", _getframe(1))
        elif _KINDS.get(t, 1) > 0 and not _default_inserts(D, obj, t, key, _getframe(1)):
            _read_slow(D, obj, t, key, "d[k]", _getframe(1))
    return obj[key]


def _default_inserts(D: Detector, obj: Any, t: type, key: Any, frame: Any) -> bool:
    """For ``obj[key]`` on a defaultdict: True when the read is really an insert
    (a missing key, and a default factory), which is then recorded as the write
    it is; True also when the key cannot be tested (its ``__eq__`` raised, as the
    read will). False: record the read as a read."""
    if kind_of(t) != DEFAULT or not _hashable(key):
        return False
    present = has_key(obj, key)
    if present is False and obj.default_factory is not None:
        # defaultdict's __missing__ inserts: this read is a write.
        D.write_key(obj, key, "d[k] (missing: inserts)", True, frame)
        return True
    return present is None


def _write_target(obj: Any, t: type) -> Any:
    """The dict a key write to ``obj`` lands in, or None."""
    k = kind_of(t)
    if k in DICT_KINDS:
        return obj
    if k == DATA:
        return data_of(obj)
    if k == CHAIN:
        first = obj.maps[0] if obj.maps else None
        return first if kind_of(type(first)) in DICT_KINDS else None
    return None


def setitem(value, obj, key, op="d[k] = v"):
    # Arguments arrive in Python's evaluation order for `obj[key] = value`.
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        if type(obj) is dict:
            if type(key) is str or _hashable(key):
                D.write_key(obj, key, op, key not in obj, _getframe(1))
        elif _KINDS.get(type(obj), 1) > 0:
            target = _write_target(obj, type(obj))
            if target is not None and _hashable(key):
                present = has_key(target, key)
                if present is not None:
                    D.write_key(target, key, op, not present, _getframe(1))
    obj[key] = value


def delitem(obj, key):
    D = _D  # read once: stop() may run meanwhile
    if D is not None and _KINDS.get(type(obj), 1) > 0:
        target = obj if type(obj) is dict else _write_target(obj, type(obj))
        if target is not None and _hashable(key):
            present = has_key(target, key)
            if present is not None:
                D.access(D.key_write, target, _getframe(1), key, "del d[k]", present)
    del obj[key]


def augget(obj, key, op):
    """The read of ``obj[key] op= v``."""
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        t = type(obj)
        if t is dict:
            if type(key) is str or _hashable(key):
                D.read_key(obj, key, f"d[k] {op} v (read)", _getframe(1))
        elif _KINDS.get(t, 1) > 0 and not _default_inserts(D, obj, t, key, _getframe(1)):
            _read_slow(D, obj, t, key, f"d[k] {op} v (read)", _getframe(1))
    return obj[key]


def augset(value, obj, key, op):
    """The write of ``obj[key] op= v``: a read-modify-write."""
    setitem(value, obj, key, f"d[k] {op} v")


class _Store:
    """``d[k]`` as an assignment target that is not a plain ``d[k] = v``
    (``a = d[k] = v``, ``d[k], x = ...``, ``for d[k] in ...``, ``with ... as
    d[k]``, ``d[k]: int = v``): the store and delete go through the helpers."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __setitem__(self, key: Any, value: Any) -> None:
        setitem(value, self.obj, key)

    def __delitem__(self, key: Any) -> None:
        delitem(self.obj, key)


class _Aug:
    """``d`` in ``d[k] op= v``: Python reads ``d[k]`` through ``__getitem__``,
    applies the in-place op, and writes through ``__setitem__``; both are the
    read and the write of a read-modify-write."""

    __slots__ = ("obj", "op")

    def __init__(self, obj: Any, op: str) -> None:
        self.obj = obj
        self.op = op

    def __getitem__(self, key: Any) -> Any:
        return augget(self.obj, key, self.op)

    def __setitem__(self, key: Any, value: Any) -> None:
        augset(value, self.obj, key, self.op)


def aug(obj, op):
    return _Aug(obj, op)


class _Attrs:
    """``o`` in ``o.a op= v``: reads and writes ``o.a``; when ``o.a`` is a map
    the in-place op updated (``self.counts += other``), the keys it changed
    are recorded as written, from a snapshot taken at the read. (Its own
    fields have names no program uses, as the attributes it forwards are the
    program's.)"""

    __slots__ = ("_mapsafe_attrs_obj", "_mapsafe_attrs_op", "_mapsafe_attrs_snap")

    def __init__(self, obj: Any, op: str) -> None:
        object.__setattr__(self, "_mapsafe_attrs_obj", obj)
        object.__setattr__(self, "_mapsafe_attrs_op", op)
        object.__setattr__(self, "_mapsafe_attrs_snap", None)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._mapsafe_attrs_obj, name)
        D = _D
        if D is not None and _KINDS.get(type(value), 1) > 0 and kind_of(type(value)) in TRACKED:
            try:
                snap = dict.copy(value) if isinstance(value, dict) else set.copy(value)
            except Exception:  # changed size while copied: the program's own race
                snap = None
            object.__setattr__(self, "_mapsafe_attrs_snap", (value, snap, _getframe(1)))
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._mapsafe_attrs_obj, name, value)
        D, snap = _D, self._mapsafe_attrs_snap
        if D is not None and snap is not None and snap[1] is not None and snap[0] is value:
            op = f"{self._mapsafe_attrs_op} (read-modify-write)"
            methods.record_changes(D, value, kind_of(type(value)), snap[1], op, snap[2])


def attrs(obj, op):
    return _Attrs(obj, op)


def store(obj):
    if type(obj) is dict or _KINDS.get(type(obj), 1) > 0:
        return _Store(obj)
    return obj


_NO_DEFAULT = object()


def get(obj, key, default=_NO_DEFAULT, /):
    """``obj.get(key[, default])``: the commonest dict method gets its own helper."""
    D = _D  # read once: stop() may run meanwhile
    t = type(obj)
    if D is not None:
        if t is dict:
            if type(key) is str or _hashable(key):
                D.read_key(obj, key, "d.get", _getframe(1))
        elif _KINDS.get(t, 1) > 0:
            _read_slow(D, obj, t, key, "d.get", _getframe(1))
        elif is_sync_type(t):
            args = (key,) if default is _NO_DEFAULT else (key, default)
            return sync_call(D, obj, t, "get", args, {})
    return obj.get(key) if default is _NO_DEFAULT else obj.get(key, default)


def contains(key, obj):
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        t = type(obj)
        if t is dict:
            if type(key) is str or _hashable(key):
                D.read_key(obj, key, "in", _getframe(1))
        elif _KINDS.get(t, 1) > 0:
            _read_slow(D, obj, t, key, "in", _getframe(1))
    return key in obj


# -- whole maps ----------------------------------------------------------


def whole(D: Detector, obj: Any, op: str, values: bool, frame: Any) -> None:
    """A read of all of ``obj`` if it is a tracked map: of its key set, or of its values too."""
    k = kind_of(type(obj))
    if k in DICT_KINDS:
        D.access(D.whole_read, obj, frame, op, values)
    elif k == SET:
        D.access(D.whole_read, obj, frame, op, False)
    elif k == DATA:
        data = data_of(obj)
        if data is not None:
            D.access(D.whole_read, data, frame, op, values)
    elif k == CHAIN:
        for m in list(obj.maps):
            whole(D, m, op, values, frame)
    elif k == VIEW:
        src, what = view_source(obj)
        if src is not None:
            D.access(D.whole_read, src, frame, op, values or what != "keys")


def deep(D: Detector, obj: Any, op: str, frame: Any) -> None:
    """A read of ``obj`` and of every map nested in it (``print``, ``json.dumps``,
    ``repr``...), through at most ``calls.DEEP_LIMIT`` objects."""
    todo, seen, budget = [obj], set(), calls.DEEP_LIMIT
    while todo and budget:
        x = todo.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        budget -= 1
        t = type(x)
        k = kind_of(t)
        try:
            if k in DICT_KINDS or k == DATA:
                whole(D, x, op, True, frame)
                todo.extend((x if k in DICT_KINDS else data_of(x) or {}).values())
            elif k == CONTAINER:
                todo.extend(x)
            elif k != NONE:
                whole(D, x, op, True, frame)
        except RuntimeError:  # changed size while we looked: the program's own race
            return


def iterate(obj):
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        t = type(obj)
        if t is dict:
            D.access(D.whole_read, obj, _getframe(1), "iteration", False)
        elif _KINDS.get(t, 1) > 0:
            whole(D, obj, "iteration", False, _getframe(1))
    return obj


def _whole_reader(op: str, values: bool, doc: str) -> Any:
    """A helper that records a whole-map read of its argument, then returns it."""

    def read(obj):
        D = _D  # read once: stop() may run meanwhile
        if D is not None and _KINDS.get(type(obj), 1) > 0:
            whole(D, obj, op, values, _getframe(1))
        return obj

    read.__doc__ = doc
    return read


keys_of = _whole_reader("*unpacking", False, "``*obj`` in a call, list, tuple or set: iterates it.")
values_of = _whole_reader("**unpacking", True, "``**obj`` in a call or dict display: reads its keys and values.")
operand = _whole_reader(
    "set/dict operator", True, "An operand of ``|``, ``&``, ``-`` or ``^``: set and dict algebra read all of it."
)


def fmt(obj):
    """A value formatted by an f-string or ``%``: repr/str read it and what it holds."""
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        k = _KINDS.get(type(obj))
        if k != NONE:
            deep(D, obj, "formatting", _getframe(1))
    return obj


def new(obj):
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        t = type(obj)
        if t is dict or (_KINDS.get(t, 1) > 0 and kind_of(t) in TRACKED):
            D.created(obj, _getframe(1))
    return obj


def eq(a, b):
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        if type(a) is dict or _KINDS.get(type(a), 1) > 0:
            whole(D, a, "==", True, _getframe(1))
        if type(b) is dict or _KINDS.get(type(b), 1) > 0:
            whole(D, b, "==", True, _getframe(1))
    return a == b


def ne(a, b):
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        if type(a) is dict or _KINDS.get(type(a), 1) > 0:
            whole(D, a, "!=", True, _getframe(1))
        if type(b) is dict or _KINDS.get(type(b), 1) > 0:
            whole(D, b, "!=", True, _getframe(1))
    return a != b


def match(subject, keys, rest):
    """``match subject:`` with mapping patterns: reads their keys, and all of
    it for ``**rest``. The patterns are tried in order; this over-approximates
    by recording every top-level mapping pattern's keys."""
    D = _D  # read once: stop() may run meanwhile
    if D is not None and _KINDS.get(type(subject), 1) > 0:
        frame = _getframe(1)
        for key in keys:
            _read_slow(D, subject, type(subject), key, "match {k: ...}", frame)
        if rest:
            whole(D, subject, "match {**rest}", True, frame)
    return subject


# -- calls ---------------------------------------------------------------


def arg(f, a):
    """An argument ``a`` of a call of ``f``, on its way in: a call that the
    detector cannot see into reads the maps given to it (see ``calls``)."""
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        k = _KINDS.get(type(a))
        if k != NONE:
            _arg_of(D, f, a, k, _getframe(1))
    return a


def argm(root, chain, a):
    """``a``, an argument of a call of ``root.<chain>`` (``self.pool.submit``):
    the callee is looked up only for a map, and statically (see ``calls``).
    For a list or tuple only a module's function is looked up: the deep
    readers that look inside one (json.dumps, copy.deepcopy, pprint.pprint)
    are all functions of a module, and a method call with a list is common."""
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        k = _KINDS.get(type(a))
        if k != NONE and (k != CONTAINER or type(root) is _ModuleType):
            f = calls.static_callee(root, chain)
            if f is not None:
                _arg_of(D, f, a, k, _getframe(1))
    return a


def _arg_of(D: Detector, f: Any, a: Any, k: Any, frame: Any) -> None:
    if k == CONTAINER:
        # Only a deep reader looks inside; known by identity, so no
        # user __hash__ or __eq__ runs for the common call with a list.
        if id(f) in calls.DEEP_BY_ID:
            deep(D, a, _label(f), frame)
    else:
        _arg_map(D, f, a, frame)


def _arg_map(D: Detector, f: Any, a: Any, frame: Any) -> None:
    if kind_of(type(a)) <= 0:
        return
    how = calls.reads(f)
    if how == calls.DEEP:
        deep(D, a, _label(f), frame)
    elif how:
        whole(D, a, _label(f), how != calls.KEYS, frame)


def wcall1(f, a):
    """``f(a)`` for a builtin named in the source that reads its argument
    and never looks at its caller's frame (``len(d)``, ``sorted(d)``)."""
    if _D is not None and _KINDS.get(type(a), 1) != NONE:
        arg(f, a)
    return f(a)


def wcall(f, /, *args, **kwargs):
    """``f(*args, **kwargs)``, as ``wcall1`` with any arguments."""
    if _D is not None:
        for a in args:
            if _KINDS.get(type(a), 1) != NONE:
                arg(f, a)
        for a in kwargs.values():
            if _KINDS.get(type(a), 1) != NONE:
                arg(f, a)
    return f(*args, **kwargs)


def _label(f: Any) -> str:
    name = getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or type(f).__name__
    module = getattr(f, "__module__", None)
    if module and module not in ("builtins", "__main__") and not module.startswith("_") and "." not in name:
        name = f"{module}.{name}"
    return f"{name}()"


def call(obj, name, /, *args, **kwargs):
    """``obj.name(*args, **kwargs)`` for the method names the rewriter routes here."""
    t = type(obj)
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        if t is dict:
            return methods.dict_call(D, obj, name, args, kwargs, _getframe(1))
        if _KINDS.get(t, 1) > 0:
            k = kind_of(t)
            if k > 0:
                return methods.map_call(D, obj, k, name, args, kwargs, _getframe(1))
        if is_sync_type(t):
            return sync_call(D, obj, t, name, args, kwargs)
        method = getattr(obj, name)
        for a in (*args, *kwargs.values()):
            if _KINDS.get(type(a), 1) != NONE:
                arg(method, a)
        return method(*args, **kwargs)
    return getattr(obj, name)(*args, **kwargs)


_INPLACE = {
    "+=": operator.iadd, "-=": operator.isub, "|=": operator.ior, "&=": operator.iand, "^=": operator.ixor,
}


def iop(a, b, op):
    """``a op= b`` for a name or attribute target: in place on a map, a bulk write."""
    D = _D  # read once: stop() may run meanwhile
    if D is not None and (_KINDS.get(type(a), 1) > 0 or _KINDS.get(type(b), 1) > 0):
        frame = _getframe(1)
        whole(D, b, f"{op} operand", True, frame)
        k = kind_of(type(a))
        if k in DICT_KINDS or k == SET:
            return methods.bulk(D, a, k, f"{op} (read-modify-write)", lambda: _INPLACE[op](a, b), frame)
    return _INPLACE[op](a, b)


def with_(obj):
    D = _D  # read once: stop() may run meanwhile
    if D is not None:
        t = type(obj)
        if is_sync_type(t):
            return _sync_with(D, obj, t)
    return obj


# The helpers, by the names rewrite.py calls them.
_BY_NAME: dict = {
    "@ms_getitem": getitem,
    "@ms_setitem": setitem,
    "@ms_delitem": delitem,
    "@ms_aug": aug,
    "@ms_attrs": attrs,
    "@ms_argm": argm,
    "@ms_store": store,
    "@ms_contains": contains,
    "@ms_iter": iterate,
    "@ms_keys": keys_of,
    "@ms_values": values_of,
    "@ms_operand": operand,
    "@ms_fmt": fmt,
    "@ms_new": new,
    "@ms_eq": eq,
    "@ms_ne": ne,
    "@ms_match": match,
    "@ms_arg": arg,
    "@ms_wcall1": wcall1,
    "@ms_wcall": wcall,
    "@ms_call": call,
    "@ms_get": get,
    "@ms_iop": iop,
    "@ms_with": with_,
    "@ms_created": finalizers.created,
    "@ms_finalizing": finalizers.finalizing,
    **{f"@ms_i{name}": fn for name, fn in (
        ("add", operator.iadd), ("sub", operator.isub), ("mul", operator.imul), ("matmul", operator.imatmul),
        ("truediv", operator.itruediv), ("floordiv", operator.ifloordiv), ("mod", operator.imod),
        ("pow", operator.ipow), ("lshift", operator.ilshift), ("rshift", operator.irshift),
        ("or", operator.ior), ("xor", operator.ixor), ("and", operator.iand))},
}

# The one name injected into every rewritten module: a namespace holding the
# helpers (a module, so that the interpreter's attribute lookup on it is its
# fastest). "_@ms" is not a valid identifier, so no program can spell,
# shadow or clash with it, and its leading underscore keeps it out of
# `from m import *`.
NAMESPACE = "_@ms"
_namespace = __import__("types").ModuleType("mapsafe.race.helpers (the helpers' namespace)")
for _helper, _fn in _BY_NAME.items():
    setattr(_namespace, _helper[len("@ms_"):], _fn)
HELPERS: dict = {NAMESPACE: _namespace}

# The C core (_racecore.c) does the commonest cases of seven helpers (an
# object that is no map; a plain dict with a str or int key) and hands every
# other case to the Python helper of the same name. MAPSAFE_CORE chooses, as
# for the maps: see .core.
_C = _racecore.C
if _C is not None:
    from . import runtime as _runtime
    from . import shadow as _shadow

    _C.init(_KINDS, calls.DEEP_BY_ID, getitem, setitem, get, contains, wcall1, arg, fmt,
            _runtime.ThreadState, _shadow._DictShadow, _shadow._KeyState, _shadow.Access)
    for _helper in ("getitem", "setitem", "get", "contains", "wcall1", "arg", "fmt"):
        setattr(_namespace, _helper, getattr(_C, _helper))
CORE = _racecore.NAME  # which core the helpers run on
