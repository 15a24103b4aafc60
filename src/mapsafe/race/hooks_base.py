"""What the hooks_* modules share: the patch record uninstall() undoes, and the common wrapper shapes."""

from __future__ import annotations

import functools
from typing import Any, Callable

from . import helpers, runtime

__all__ = ["INHERITED", "PATCHES", "acquire", "acquired_after", "acquired_if_true", "active", "patch", "release",
           "released_before"]

# (owner, attribute name, original) for every patch, in the order made, so
# uninstall() can undo them last first. No lock: patch() only appends, by
# one list.append (from install(), or from the thread whose import of a
# module patched on import ran it); uninstall() takes the import finder out
# before it pops them.
PATCHES: list = []

INHERITED: Any = object()  # in PATCHES: the patched name was inherited; delete the patch


def active() -> runtime.Detector | None:
    """The running detector, looked up at each call: a patch outlives a session."""
    return helpers.active_detector()


def patch(owner: Any, name: str, make: Callable[[Any], Any], inherited: bool = False) -> None:
    """Replace ``owner.name`` by ``make(original)``; with ``inherited``, also where a base defines it."""
    own = name in owner.__dict__
    original = getattr(owner, name, None) if inherited else owner.__dict__.get(name)
    if original is None:
        return
    wrapper = make(original)
    try:
        functools.update_wrapper(wrapper, original)
    except (AttributeError, TypeError):
        pass
    setattr(owner, name, wrapper)
    # uninstall() restores an inherited one by deleting the patch
    PATCHES.append((owner, name, original if own else INHERITED))


# The edges most patches take, as ``edge(D, self)`` for the wrappers below.
def release(D: runtime.Detector, obj: Any) -> None:
    D.release(obj)


def acquire(D: runtime.Detector, obj: Any) -> None:
    D.acquire(obj)


# The two shapes most patches have. The wrapper passes its arguments on as
# they came, so the original checks them as it would unpatched.
def released_before(edge: Callable[[Any, Any], None]) -> Callable[[Any], Any]:
    """A method that publishes: ``edge(D, self)`` is recorded before the original runs.

    Before, not after: once the original's effect is visible, another thread
    may observe it and acquire at once, and must find this one's accesses.
    """

    def make(orig):
        def released_before(self, *args, **kwargs):
            D = active()
            if D is not None:
                edge(D, self)
            return orig(self, *args, **kwargs)

        return released_before

    return make


def acquired_after(edge: Callable[[Any, Any], None], only_if_true: bool = False) -> Callable[[Any], Any]:
    """A method that observes: ``edge(D, self)`` is recorded once the original returns
    (with ``only_if_true``, only if it returned true)."""

    def make(orig):
        def acquired_after(self, *args, **kwargs):
            result = orig(self, *args, **kwargs)
            D = active()
            # The result's truth is asked only where it counts: recv() and
            # the maps' reads return the program's objects.
            if D is not None and (not only_if_true or result):
                edge(D, self)
            return result

        return acquired_after

    return make


def acquired_if_true(edge: Callable[[Any, Any], None]) -> Callable[[Any], Any]:
    """A method that observes only when it returns true (a wait that did not time out, ``is_set()``)."""
    return acquired_after(edge, only_if_true=True)
