"""Shared fixtures: the map factories every contract test runs against."""

from __future__ import annotations

import sys

import pytest

import mapsafe

# Every map configuration the contract must hold for. ShardedMap's cache mode
# (maxsize/ttl) is included with bounds large enough never to evict here.
MAP_FACTORIES = {
    "SyncMap": lambda *a, **k: mapsafe.SyncMap(*a, **k),
    "SyncMap-stats": lambda *a, **k: mapsafe.SyncMap(*a, stats=True, **k),
    "LockedMap": lambda *a, **k: mapsafe.LockedMap(*a, **k),
    "LockedMap-stats": lambda *a, **k: mapsafe.LockedMap(*a, stats=True, **k),
    "ShardedMap": lambda *a, **k: mapsafe.ShardedMap(*a, **k),
    "ShardedMap-1shard": lambda *a, **k: mapsafe.ShardedMap(*a, shards=1, **k),
    "ShardedMap-cache": lambda *a, **k: mapsafe.ShardedMap(*a, maxsize=100_000, ttl=3600, **k),
    "ShardedMap-stats": lambda *a, **k: mapsafe.ShardedMap(*a, stats=True, **k),
}


@pytest.fixture(params=sorted(MAP_FACTORIES))
def make(request):
    """A constructor for one map configuration, called like dict()."""
    return MAP_FACTORIES[request.param]


@pytest.fixture(params=["SyncMap", "LockedMap", "ShardedMap"])
def map_cls(request):
    return getattr(mapsafe, request.param)


@pytest.fixture
def frequent_switches():
    """Switch threads every few bytecodes so races show up under the GIL too."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)
