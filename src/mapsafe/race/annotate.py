"""Happens-before edges the detector cannot see, declared by the program.

Some synchronization goes through things no Python object stands for: a
lock row in a SQLite database (diskcache's ``Lock``), a file lock, a byte
down an ``os.pipe``, a message through a server. The detector cannot infer
those edges, and reports the accesses they order as races. Declare them,
as ThreadSanitizer's ``__tsan_release``/``__tsan_acquire`` do::

    from mapsafe.race.annotate import happens_after, happens_before

    happens_before("lock:demo")   # just before the release
    release_the_lock()
    ...
    acquire_the_lock()
    happens_after("lock:demo")    # just after the acquire that succeeded

Everything before a ``happens_before(token)`` then happens before
everything after a later ``happens_after(token)`` with an equal token. Both
are no-ops, a dict lookup each, when the detector is not running.

When not to use: for anything a modelled primitive orders (locks, queues,
events, futures, joins: see the table in docs/race/happens-before.md), and never to
silence a race you have not proven ordered. An edge that does not exist
hides real races; a suppression (``--suppress``) at least says so.
"""

from __future__ import annotations

from typing import Any, Hashable

from . import helpers

__all__ = ["happens_before", "happens_after"]


class _Token:
    """The clock object of one declared token."""


# token -> its _Token; filled by single dict operations (setdefault), so
# two threads declaring one token at once get the same clock object.
_TOKENS: dict = {}


def _clock_of(token: Hashable) -> Any:
    try:
        # One entry per token the program declares: bounded by the program's own code.
        return _TOKENS.setdefault(token, _Token())  # noqa: MS301
    except TypeError:
        raise TypeError(f"a happens-before token must be hashable, not {type(token).__name__}") from None


def happens_before(token: Hashable) -> None:
    """What this thread did so far happens before a later ``happens_after(token)``."""
    D = helpers.active_detector()
    if D is not None:
        D.release(_clock_of(token))
    elif not isinstance(token, Hashable):  # the same bad input fails the same way either way
        _clock_of(token)


def happens_after(token: Hashable) -> None:
    """What this thread does next happens after every earlier ``happens_before(token)``."""
    D = helpers.active_detector()
    if D is not None:
        D.acquire(_clock_of(token))
    elif not isinstance(token, Hashable):
        _clock_of(token)
