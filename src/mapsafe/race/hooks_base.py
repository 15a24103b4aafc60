"""What the hooks_* modules share: the patch record uninstall() undoes, and the common wrapper shapes."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from . import helpers, runtime

__all__ = ["INHERITED", "PATCHES", "acquire", "acquired_after", "acquired_if_true", "active", "map_write",
           "map_write_calling", "patch", "release", "released_before"]

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


# The shapes most patches have. The wrapper passes its arguments on as
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


def _itself(obj: Any) -> Any:
    return obj


def map_write(orig: Callable[..., Any], clock_of: Callable[[Any], Any] = _itself) -> Callable[..., Any]:
    """A write to a mapsafe container: acquires and releases ``self``'s clock before the original runs,
    and again after it (``clock_of(self)``'s clock, for a map whose state lives elsewhere).

    A write also reads the old state (a swap, a compute, a load's re-check),
    hence the acquires. The release before is there because once the write
    is visible, a reader in another thread may observe it and acquire at
    once, and must find this thread's earlier accesses published (on
    free-threaded builds that reader really runs meanwhile). The acquire
    after is there because the state this write observed may be another
    write that was still in flight when this one acquired before (a
    compare_and_swap that succeeds on the value another thread's swap just
    stored: seen on 3.13t, where the two really overlap); that write
    released before it took effect, so it is found now. The release after
    covers what a callback (compute's, a factory) did inside the write.
    """

    def write(self, *args, **kwargs):
        D = active()
        clock = clock_of(self)
        if D is not None:
            D.acquire(clock)
            D.release(clock)
        try:
            return orig(self, *args, **kwargs)
        finally:
            if D is not None:
                D.acquire(clock)
                D.release(clock)

    return write


def map_write_calling(param: str, clock_of: Callable[[Any], Any] = _itself) -> Callable[[Any], Any]:
    """A write that calls the user's callable argument ``param`` with no lock held and publishes
    its result (a loader, a factory, update_with's fn); a call-once one may instead return what
    another thread's call made (its waiters).

    As ``map_write``, and the callable is ordered like a write of its own:
    it acquires before it runs (it reads the current state) and releases
    as soon as it ends, before its result can be published (the release
    after the method would come too late: a lock-free reader may see the
    result first). The method acquires again when it returns or raises,
    for a waiter that got another thread's result.
    """

    def make(orig):
        write = map_write(orig, clock_of)
        names = list(inspect.signature(orig).parameters)
        at = names.index(param) - 1 if param in names else -1  # in args, which has no self

        def method(self, *args, **kwargs):
            D = active()
            # Only a callable: the original must still reject anything else.
            if D is not None and 0 <= at < len(args) and callable(args[at]):
                args = (*args[:at], _ordered_like_write(clock_of(self), args[at]), *args[at + 1 :])
            elif D is not None and callable(kwargs.get(param)):
                kwargs[param] = _ordered_like_write(clock_of(self), kwargs[param])
            try:
                return write(self, *args, **kwargs)
            finally:
                D = active()
                if D is not None:
                    D.acquire(clock_of(self))

        return method

    return make


def _ordered_like_write(obj: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, acquiring ``obj``'s clock before it runs and releasing it once it returns or raises."""

    def call(*args, **kwargs):
        D = active()
        if D is not None:
            D.acquire(obj)
        try:
            return fn(*args, **kwargs)
        finally:
            D = active()
            if D is not None:
                D.release(obj)

    return call
