"""Happens-before edges of mapsafe.redis.RedisMap: its operations are synchronised on the server."""

from __future__ import annotations

from typing import Any, Callable, Iterator

from .hooks_base import acquire, acquired_after, active, map_write, map_write_calling, patch

__all__ = ["patch_redis_map"]


# A RedisMap's state lives in the server, where each operation is atomic
# (one command, script or transaction), so it is ordered like mapsafe's own
# maps: a write happens before a read that observes it, even through
# another RedisMap object for the same map (each thread may open its own).
# The clock is therefore one per map *name*, not per object: coarser than
# per (server, name), which can only hide races, never invent one (the same
# server reached as "localhost" and "127.0.0.1" must still order).
class _ServerMap:
    """The clock token of the maps named ``name``; weak-referenceable, kept in _SERVER_MAPS for good."""

    __slots__ = ("name", "__weakref__")

    def __init__(self, name: str) -> None:
        self.name = name


# name -> _ServerMap. Filled by setdefault, one dict operation (atomic on
# free-threaded CPython too); entries are never removed, so a name has one
# token for the run. One small object per map name a program opens.
_SERVER_MAPS: dict[str, _ServerMap] = {}


def server_map(m: Any) -> _ServerMap:
    name = m.name
    token = _SERVER_MAPS.get(name)
    return token if token is not None else _SERVER_MAPS.setdefault(name, _ServerMap(name))


# The compute family runs the caller's function here, with nothing held,
# and commits its result by a compare-and-swap: ordered like a write of its
# own (see map_write_calling), by the name of that argument.
_CALLING = {"compute": "fn", "compute_if_absent": "factory", "compute_if_present": "fn", "merge": "fn"}


def _observed_each(orig: Callable[..., Iterator]) -> Callable[..., Iterator]:
    """_scan_raw, every pass of iteration: each entry it yields was observed on the server, so the
    thread acquires before the entry reaches the caller (a ``range`` callback, a loop body)."""

    def scan(self, *args, **kwargs):
        clock = server_map(self)
        for item in orig(self, *args, **kwargs):
            D = active()
            if D is not None:
                D.acquire(clock)
            yield item

    return scan


def patch_redis_map(module: Any) -> None:
    """Patch RedisMap once ``mapsafe.redis._map`` is imported (it needs redis-py, an extra)."""
    from mapsafe import contract

    cls = module.RedisMap
    reading = acquired_after(lambda D, m: acquire(D, server_map(m)))
    for name in contract.names("read"):
        if name in cls.__dict__ and callable(cls.__dict__[name]):
            patch(cls, name, reading)
    for name in contract.names("write"):
        if name in cls.__dict__ and callable(cls.__dict__[name]):
            param = _CALLING.get(name)
            patch(cls, name, map_write_calling(param, server_map) if param
                  else (lambda orig: map_write(orig, server_map)))
    patch(cls, "_scan_raw", _observed_each)
