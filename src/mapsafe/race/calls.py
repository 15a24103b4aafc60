"""Which calls read the maps passed to them.

Code the detector did not instrument (builtins, C extensions, the standard
library, site-packages) cannot report its own map accesses. So a map passed
to such a call counts as read whole, at the call, by the calling thread:
``print(d)``, ``",".join(d)``, ``copy.deepcopy(d)``, ``pickle.dumps(d)``,
``dict.fromkeys(d)``, ``reversed(d)``... An instrumented callee records
its own accesses instead, and a short list of calls is known only to keep a
reference (``list.append(d)``, ``Thread(args=(d,))``, ``executor.submit(f,
d)``, ``isinstance(d, dict)``): those read nothing.

*Deep* readers (``print``, ``repr``, ``str``, ``format``, ``json.dumps``,
``pickle.dumps``, ``copy.deepcopy``, ``pprint``) also read the maps nested
in what they are given, up to ``DEEP_LIMIT`` objects.
"""

from __future__ import annotations

import builtins
import copy
import functools
import json
import pickle
import pprint
import types
from typing import Any

__all__ = ["NO", "KEYS", "SHALLOW", "DEEP", "mark_instrumented", "reads", "DEEP_LIMIT"]

# How a call reads a map argument: not at all, its key set only (what
# iterating a dict yields), its keys and values, or those of nested maps too.
NO, KEYS, SHALLOW, DEEP = 0, 1, 2, 3
DEEP_LIMIT = 256  # objects a deep reader's arguments are searched through for maps

# Source files compiled instrumented: filename -> True. Set with single
# dict operations by the loader and the runner.
_INSTRUMENTED: dict = {}


def mark_instrumented(filename: str) -> None:
    _INSTRUMENTED[filename] = True


# Builtins, by identity.
_BUILTINS: dict = {
    **{f: DEEP for f in (print, repr, str, format, ascii, json.dumps, json.dump, pickle.dumps, pickle.dump,
                         copy.deepcopy, pprint.pformat, pprint.pprint, pprint.pp)},
    **{f: NO for f in (id, isinstance, issubclass, type, hash, getattr, setattr, hasattr, delattr, callable,
                       super, vars, dir, object, property, staticmethod, classmethod, functools.partial,
                       builtins.__build_class__)},
    **{f: KEYS for f in (len, iter, sorted, list, tuple, set, frozenset, sum, min, max, any, all, enumerate,
                         reversed, zip, map, filter)},
}
try:
    import weakref

    _BUILTINS.update({weakref.ref: NO, weakref.proxy: NO, weakref.finalize: NO})
except Exception:  # pragma: no cover
    pass

# The deep readers by id(): the test for a call given a list or tuple.
DEEP_BY_ID: dict = {id(f): True for f, how in _BUILTINS.items() if how == DEEP}

# Methods of builtin objects that store an argument without reading it.
_STORING_METHODS = frozenset(
    ("append", "appendleft", "insert", "add", "put", "put_nowait", "setdefault", "__setitem__", "__setattr__",
     "set", "__init__", "__new__", "__set_name__", "register", "run", "submit", "call_soon",
     "call_soon_threadsafe", "call_later", "call_at", "create_task", "send")
)

# Uninstrumented Python functions that only pass their arguments on (to
# another thread, task or callback), by (module, qualified name).
_PASSING: frozenset = frozenset(
    (
        ("concurrent.futures.thread", "ThreadPoolExecutor.submit"),
        ("concurrent.futures.process", "ProcessPoolExecutor.submit"),
        ("concurrent.futures._base", "Executor.map"),
        ("asyncio.base_events", "BaseEventLoop.call_soon"),
        ("asyncio.base_events", "BaseEventLoop.call_soon_threadsafe"),
        ("asyncio.base_events", "BaseEventLoop.call_later"),
        ("asyncio.base_events", "BaseEventLoop.call_at"),
        ("asyncio.base_events", "BaseEventLoop.run_in_executor"),
        ("asyncio.base_events", "BaseEventLoop.create_task"),
        ("asyncio.tasks", "run_coroutine_threadsafe"),
        ("asyncio.tasks", "ensure_future"),
        ("asyncio.threads", "to_thread"),
        ("threading", "Thread.__init__"),
        ("threading", "Timer.__init__"),
        ("queue", "Queue.put"),
        ("queue", "Queue.put_nowait"),
        ("multiprocessing.pool", "Pool.apply_async"),
        ("multiprocessing.pool", "Pool.apply"),
        ("multiprocessing.pool", "Pool.map_async"),
        ("multiprocessing.pool", "Pool.imap"),
        ("multiprocessing.pool", "Pool.imap_unordered"),
        ("contextvars", "ContextVar.set"),
        ("atexit", "register"),
    )
)

# Builtin types whose constructors read (copy) a map passed to them.
_READING_TYPES = (dict, list, tuple, set, frozenset, str, bytes, bytearray, __import__("collections").deque)

# callable key -> NO | SHALLOW | DEEP. Single dict operations only.
_DECIDED: dict = {}


def _function_reads(f: Any) -> int:
    known = _BUILTINS.get(f)  # json.dumps, copy.deepcopy, pprint.pformat are Python functions
    if known is not None:
        return known
    code = getattr(f, "__code__", None)
    if code is not None and code.co_filename in _INSTRUMENTED:
        return NO
    if (getattr(f, "__module__", None), getattr(f, "__qualname__", None)) in _PASSING:
        return NO
    return SHALLOW


def _type_reads(t: type) -> int:
    if t in _BUILTINS:
        return _BUILTINS[t]
    if t is dict:
        return SHALLOW
    if not issubclass(t, _READING_TYPES):
        return NO  # classes keep what they are given; their instrumented __init__ records its reads
    init = None
    for klass in t.__mro__:
        init = klass.__dict__.get("__init__") or klass.__dict__.get("__new__")
        if init is not None:
            break
    if isinstance(init, types.FunctionType) and init.__code__.co_filename in _INSTRUMENTED:
        return NO
    if issubclass(t, str):
        return DEEP
    return KEYS if issubclass(t, (list, tuple, set, frozenset, __import__("collections").deque)) else SHALLOW


def static_callee(root: Any, chain: str) -> Any:
    """``root.<chain>`` looked up without running any code (no property, no
    ``__getattr__``, no descriptor's ``__get__``), or None if it cannot be."""
    import inspect

    obj = root
    for part in chain.split("."):
        try:
            obj = inspect.getattr_static(obj, part)
        except (AttributeError, TypeError):
            return None
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        elif isinstance(obj, property) or (
            hasattr(type(obj), "__get__") and not isinstance(obj, (types.FunctionType, types.BuiltinFunctionType))
            and type(obj).__name__ not in ("method_descriptor", "wrapper_descriptor", "method-wrapper",
                                           "builtin_function_or_method", "classmethod_descriptor")
        ):
            return None  # a property or another descriptor: its value is computed by code
    return obj


def reads(f: Any) -> int:
    """How a call of ``f`` reads the maps among its arguments: NO, SHALLOW or DEEP."""
    t = type(f)
    if t is types.FunctionType:
        key = f.__code__
        got = _DECIDED.get(key)
        if got is None:
            # One entry per code object called with a map: bounded by the program's code.
            got = _DECIDED[key] = _function_reads(f)  # noqa: MS301
        return got
    if t is types.MethodType:
        return reads(f.__func__)
    if t is types.BuiltinFunctionType:  # also builtin methods: `",".join`, `lst.append`
        owner = f.__self__
        if owner is None or type(owner) is types.ModuleType:
            try:
                return _BUILTINS.get(f, SHALLOW)
            except TypeError:
                return SHALLOW
        return NO if f.__name__ in _STORING_METHODS else SHALLOW
    if isinstance(f, type):
        got = _DECIDED.get(f)
        if got is None:
            got = _DECIDED[f] = _type_reads(f)
        return got
    if t is functools.partial:
        return reads(f.func)
    name = getattr(f, "__name__", None)
    if name in _STORING_METHODS:  # method-wrappers and descriptors: `super().__setitem__`
        return NO
    call = getattr(t, "__call__", None)
    if isinstance(call, types.FunctionType):  # an instance of a Python class with __call__
        return reads(call)
    return SHALLOW
