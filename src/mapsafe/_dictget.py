"""``dict_get(d, key, default)``: ``d.get(key, default)``, without free-threaded 3.13's slow path.

On free-threaded CPython 3.13, ``dict.get`` holds the dict's own lock (its
argument-clinic critical section) around a lookup that, when it cannot take a
temporary reference to the stored key without locking, takes that same lock
again. It cannot: this thread holds it. So it spins in ``sched_yield`` until
the thread parks, which suspends its outer hold, and only then goes on. The
stored key cannot be referenced lock-free whenever another thread created it
and no thread other than its creator holds a reference to it, which is the
usual case for a map filled by one thread and read by others. Seen here
(3.13.5t and 3.13.15t, ``perf`` and ``gdb``): 67k hits per second from a
thread that did not fill the dict, against 15.7M for ``d[key]`` on the same
dict. CPython 3.14 removed the outer critical section (CPython gh-129336).

``d[key]`` has no outer section, so on free-threaded 3.13 the pure-Python
core reads with it and turns the dict's own ``KeyError`` into ``default``.
Everywhere else ``dict_get`` is ``dict.get`` itself. The C core is not
affected: it reads with ``PyDict_GetItemRef``, which has no outer section.

Do not use this for a dict that may be a subclass with ``__missing__``; the
maps' internal dicts are plain dicts.
"""

from __future__ import annotations

import sys
import sysconfig
from functools import partial
from typing import Any, Callable

__all__ = ["SLOW_DICT_GET", "dict_get", "bound_get"]

#: True on free-threaded 3.13, where ``dict.get`` takes the nested lock described above.
SLOW_DICT_GET = bool(sysconfig.get_config_var("Py_GIL_DISABLED")) and sys.version_info < (3, 14)


def subscript_get(d: dict[Any, Any], key: Any, default: Any = None, /) -> Any:
    """``d.get(key, default)`` as one ``d[key]``: the same result, and the same errors.

    A ``KeyError`` raised by the key's own ``__hash__`` or ``__eq__`` is the
    user's, and propagates as it does from ``d.get``: it comes from a Python
    frame below this one, while the dict's own miss is raised by C code called
    from this frame, so its traceback ends here. (A key type written in C
    whose hash raises ``KeyError`` would be taken for a miss.)
    """
    try:
        return d[key]  # one dict operation: atomic with or without the GIL
    except KeyError as exc:
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
            raise
        return default


dict_get: Callable[..., Any] = subscript_get if SLOW_DICT_GET else dict.get


def bound_get(d: dict[Any, Any]) -> Callable[..., Any]:
    """``d.get``, or on free-threaded 3.13 the same through ``subscript_get``."""
    return partial(subscript_get, d) if SLOW_DICT_GET else d.get
