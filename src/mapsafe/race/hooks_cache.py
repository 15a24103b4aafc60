"""Happens-before edges of mapsafe's Cache and of the functions @cached wraps over one."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from .hooks_base import active, map_write, map_write_calling, patch, release, released_before

__all__ = ["patch_cache"]

# Go's memory model, as for the maps (hooks_maps), plus sync.Once's edge for
# loads: a put, or a load's store, happens before every read that returns
# the value, and a load happens before every waiter's return from get().
# One clock per cache, as per map.
#
# Reads acquire the clock (also when they raise: a hit on a failure cached
# by negative_ttl re-raises the loader's exception). _hit (a hit's value,
# or MISSING) is a read of its own; _peek is the lookup behind `in` and
# CacheView's.
_READS = ("get", "_hit", "get_if_present", "__getitem__", "__contains__", "__len__", "_peek", "as_map")
# Writes acquire and release it, as the maps' writes do (map_write).
# __setitem__ is put under a second name: patched as its own class attribute.
_WRITES = ("put", "__setitem__", "invalidate", "__delitem__", "invalidate_all", "cache_clear", "cleanup")


def _observing(clock_of: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A read that acquires ``clock_of(self)``'s clock once the original returns or raises."""

    def make(orig):
        def observing(self, *args, **kwargs):
            try:
                return orig(self, *args, **kwargs)
            finally:
                D = active()
                if D is not None:
                    D.acquire(clock_of(self))

        return observing

    return make


def patch_cache() -> None:
    try:
        from mapsafe.cache import Cache, CacheView
    except Exception:  # the cache is optional for the detector
        return

    own = _observing(lambda cache: cache)
    for name in _READS:
        # On the C core, get and _hit are CacheCore's (the hits in C, which
        # call the Python methods for the rest): patched on Cache, over them.
        patch(Cache, name, own, inherited=True)
    for name in _WRITES:
        patch(Cache, name, map_write)
    # A load is a write (it re-checks, then stores) that calls the loader
    # with no lock held: the loader releases as soon as it ends, before its
    # value is stored or handed to the waiters (also when nothing is
    # stored: a put or invalidate won, cache_none=False, an exception not
    # cached), and each waiter acquires on its return from the wait.
    patch(Cache, "_load", map_write_calling("loader"))
    # The one place an entry becomes visible to the lock-free readers (a
    # put's, a load's, a refresh's, a cached failure's), under the lock: a
    # release there publishes what the storing thread did, notably what a
    # refresh's loader did in its own thread.
    patch(Cache, "_store_locked", released_before(release))
    # CacheView's lookups call Cache._peek; its iteration, len and repr copy
    # the entries in _live, which acquires the viewed cache's clock.
    patch(CacheView, "_live", _observing(lambda view: view._cache))
    _patch_cached()


def _patch_cached() -> None:
    # A call of a @cached function, or of a method bound to one instance, is
    # a read of its cache: on the C core its hits read the cache's entries
    # in C, with no Cache method called, and its misses load through
    # Cache._load (patched above). Patched on each called class, over the
    # __call__ it inherits, so that each call takes one wrapper.
    try:
        module = importlib.import_module("mapsafe.memo")
    except Exception:
        return
    calls = _observing(lambda function: function.cache)
    for name in ("CachedFunction", "_BoundCached"):
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            patch(cls, "__call__", calls, inherited=True)
