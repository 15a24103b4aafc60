"""Accesses made by finalizers: ``__del__`` and ``weakref.finalize`` callbacks.

A finalizer runs in whichever thread drops the last reference (or runs
the garbage collector), in the middle of that thread's own code, so its
accesses are that thread's, as the detector records them anyway. What this
module adds is the report's context: the access was made in a finalizer,
of an object created at some site (Python's version of Go's "writes in a
defer at goroutine exit").

The rewriter calls ``created(self)`` first thing in the ``__init__`` of a
class that defines ``__del__``, and runs the body of ``__del__`` inside
``finalizing(self)``; hooks_finalize.py does the same for weakref.finalize.
"""

from __future__ import annotations

import sys
from _thread import get_ident
from typing import Any

from .shadow import FINALIZING, Finalizer, capture

__all__ = ["created", "finalizing", "registered", "forget_registration"]

# id(obj) -> frames of its creation, for objects of instrumented classes
# with a __del__; set by their __init__, popped by their __del__ (which
# always runs before the id can be reused). Single dict operations only.
_CREATED: dict = {}

# id(finalize object) -> frames of the weakref.finalize() call; set by its
# __init__, popped when it is called or detached. Single dict operations only.
_REGISTERED: dict = {}


def _active() -> bool:
    from . import helpers

    return helpers.active_detector() is not None


def created(obj: Any) -> None:
    """``obj.__init__`` began: remember where ``obj`` was created."""
    if _active():
        # From __init__'s caller outwards: the creation site, not __init__ itself.
        _CREATED[id(obj)] = capture(sys._getframe(2))


def registered(fin: Any, frame: Any) -> None:
    if _active():
        _REGISTERED[id(fin)] = capture(frame)


def forget_registration(fin: Any) -> tuple:
    return _REGISTERED.pop(id(fin), ())


class finalizing:
    """The context the body of a finalizer runs in: its accesses are marked as a finalizer's."""

    __slots__ = ("info", "ident", "previous")

    def __init__(self, obj: Any = None, info: Finalizer | None = None) -> None:
        if info is None:
            info = Finalizer(f"__del__ of {type(obj).__name__}", "created at", _CREATED.pop(id(obj), ()))
        self.info = info
        self.ident = get_ident()
        self.previous = None

    def __enter__(self) -> None:
        # A finalizer can run inside another one (a __del__ dropping the last
        # reference to another object): the inner one is restored from.
        self.previous = FINALIZING.get(self.ident)
        FINALIZING[self.ident] = self.info

    def __exit__(self, *exc: object) -> None:
        if self.previous is None:
            FINALIZING.pop(self.ident, None)
        else:
            FINALIZING[self.ident] = self.previous
