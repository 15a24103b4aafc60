"""Fork safety: every map and RWLock forgets, in a forked child, the threads that did not survive.

A thread of the parent may be inside a map's critical section when another
thread forks. The child inherits that lock held by a thread that does not
exist there, and its first write would wait forever. ``os.register_at_fork``
runs ``_after_fork_child()`` of every live object registered here, in the
child, before any other code: locks not held by the forking thread are
re-initialised, and hold records and waiters of other threads are dropped.
What the forking thread itself holds stays held, so its own ``with`` blocks
still release correctly.

A child may rely on every map holding exactly what it held at the fork (a
write in progress in another thread either happened or did not) and on
every lock being free, unless the forking thread held it.
"""

from __future__ import annotations

import os
import weakref
from functools import partial
from typing import Any

__all__ = ["register", "reinit_lock", "drop_dead_tokens"]

# id(obj) -> weak reference to obj, for every live map and RWLock. Entries
# are added and removed with single dict operations (atomic on free-threaded
# CPython); the weakref callback runs before the id can be reused.
_live: dict[int, "weakref.ref[Any]"] = {}


def register(obj: Any) -> None:
    """Have ``obj._after_fork_child()`` run in every forked child while ``obj`` lives."""
    key = id(obj)
    _live[key] = weakref.ref(obj, partial(_forget, key))


def _forget(key: int, _ref: object) -> None:
    _live.pop(key, None)


def _after_fork_child() -> None:
    for ref in list(_live.values()):
        obj = ref()
        if obj is not None:
            obj._after_fork_child()


def reinit_lock(lock: Any) -> None:
    """Free ``lock`` in a forked child, unless the forking thread holds it."""
    raw = getattr(lock, "_raw", lock)  # a ProfiledRLock wraps an RLock
    if not raw._is_owned():
        raw._at_fork_reinit()


def drop_dead_tokens(computing: dict[Any, Any]) -> None:
    """Forget the entries of a ``_computing`` table whose thread did not survive the fork."""
    for key, token in list(computing.items()):
        if token() is None:
            computing.pop(key, None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)
