"""Fault injection for tests: raise at every acquire and wait point in turn.

Off unless ``MAPSAFE_FAULTS=1`` is set when mapsafe is imported. When off,
each point costs one test of a module constant (``ENABLED``) in Python and
of a C static in the C core. When on, ``arm(n)`` makes the ``n``-th point
hit from now raise :class:`InjectedFault`, and ``disarm()`` returns how many
points were hit, so a test can first count an operation's points and then
fail each in turn. Only the arming thread's points count.

Do not use this outside mapsafe's own tests: the points are internal and
change with the code.
"""

from __future__ import annotations

import os
import threading

__all__ = ["ENABLED", "InjectedFault", "arm", "disarm", "point"]

ENABLED = os.environ.get("MAPSAFE_FAULTS", "").strip() == "1"


class InjectedFault(BaseException):
    """The exception a fault point raises; a BaseException, like KeyboardInterrupt."""


_state = threading.local()  # per thread: .countdown (int or None), .hits (list of point names)


def arm(n: int | None) -> None:
    """Raise at the ``n``-th point this thread hits from now (0 is the next); None only counts."""
    _state.countdown = n
    _state.hits = []


def disarm() -> list[str]:
    """Stop injecting; the names of the points hit since ``arm``."""
    hits = getattr(_state, "hits", [])
    _state.countdown = None
    _state.hits = []
    return hits


def point(name: str) -> None:
    """A fault point: called only when ENABLED."""
    hits = getattr(_state, "hits", None)
    if hits is None:
        return
    hits.append(name)
    countdown = _state.countdown
    if countdown is None:
        return
    if countdown == 0:
        _state.countdown = None
        raise InjectedFault(name)
    _state.countdown = countdown - 1
