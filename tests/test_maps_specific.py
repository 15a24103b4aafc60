"""What only one map has: LockedMap views, ShardedMap options and eviction, SyncMap reads."""

from __future__ import annotations

import os
import threading

import pytest

import mapsafe
from mapsafe import LockedMap, RWLock, ShardedMap, SyncMap
from mapsafe.shardedmap import default_shards


# -- LockedMap ------------------------------------------------------------------------


def test_lockedmap_read_view_is_read_only_and_consistent():
    m = LockedMap({"a": 1, "b": 2})
    with m.read() as view:
        assert dict(view) == {"a": 1, "b": 2} and view["a"] == 1
        with pytest.raises(TypeError):
            view["c"] = 3  # type: ignore[index]
        assert m.get("a") == 1 and len(m) == 2  # short reads are allowed inside
    assert "c" not in m


def test_lockedmap_write_inside_read_raises_instead_of_deadlocking():
    m = LockedMap({"a": 1})
    with m.read():
        with pytest.raises(RuntimeError, match="holds the read lock"):
            m["a"] = 2
        with pytest.raises(RuntimeError, match="upgrading would deadlock"):
            with m.write():
                pass  # pragma: no cover
    m["a"] = 3
    assert m["a"] == 3


def test_lockedmap_write_block_gives_the_dict_and_allows_all_methods():
    m = LockedMap({"a": 1, "b": 1})
    with m.write() as d:
        assert type(d) is dict
        d["a"] -= 1
        d["b"] += 1
        assert m["a"] == 0  # the owner may use the map's methods
        m["c"] = 5
        assert m.compute("c", lambda k, v: v * 2) == 10
    assert m == {"a": 0, "b": 2, "c": 10}
    assert isinstance(m.lock, RWLock)


def test_lockedmap_stats_count_lock_acquisitions():
    m = LockedMap(stats=True)
    m["a"] = 1
    m.get("a")
    m.get("b")
    s = m.stats()
    assert s["hits"] == 1 and s["misses"] == 1 and s["lock"]["acquisitions"] >= 3


# -- RWLock basics (concurrency is in test_maps_concurrency.py) ------------------------


def test_rwlock_misuse_raises_runtime_error():
    lock = RWLock()
    with pytest.raises(RuntimeError, match="does not hold the RWLock for reading"):
        lock.release_read()
    with pytest.raises(RuntimeError, match="does not hold the RWLock for writing"):
        lock.release_write()
    assert lock.try_acquire_read() and lock.try_acquire_read()  # reentrant read
    lock.release_read()
    lock.release_read()
    with lock.write():
        with lock.write():  # reentrant write
            with lock.read():  # owner may read
                pass
    assert lock.acquire_write(timeout=0.01)
    lock.release_write()
    assert "readers=0" in repr(lock)


# -- ShardedMap options -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        ({"maxsize": 0}, ValueError, "maxsize must be > 0, got 0"),
        ({"maxsize": -5}, ValueError, "maxsize must be > 0, got -5"),
        ({"maxsize": 2.5}, TypeError, "maxsize must be an int, got float 2.5"),
        ({"maxsize": True}, TypeError, "maxsize must be an int, got bool True"),
        ({"ttl": 0}, ValueError, "ttl must be a finite number of seconds > 0, got 0"),
        ({"ttl": -1.5}, ValueError, "ttl must be a finite number of seconds > 0, got -1.5"),
        ({"ttl": float("nan")}, ValueError, "ttl must be a finite number"),
        ({"ttl": float("inf")}, ValueError, "ttl must be a finite number"),
        ({"ttl": "60"}, TypeError, "ttl must be a number of seconds, got str '60'"),
        ({"shards": 0}, ValueError, "shards must be > 0, got 0"),
        ({"shards": "4"}, TypeError, "shards must be an int, got str '4'"),
        ({"capacity": -1}, ValueError, "capacity must be > 0, got -1"),
        ({"shards": 16, "maxsize": 10}, ValueError, r"shards \(16\) must not exceed maxsize \(10\)"),
        ({"stats": 1}, TypeError, "stats must be True or False, got int 1"),
    ],
)
def test_shardedmap_bad_options_name_the_option(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        ShardedMap(**kwargs)


def test_shardedmap_shard_counts():
    cpus = os.cpu_count() or 1
    n = default_shards()
    assert n & (n - 1) == 0 and n >= 4 * cpus
    assert ShardedMap()._n == n
    assert ShardedMap(shards=3)._n == 3  # any positive count works
    assert default_shards(capacity=n * 70_000) > n  # capacity asks for smaller shards
    small = ShardedMap(maxsize=20)
    assert small._n * 8 <= 20 or small._n == 1
    assert sum(s.capacity for s in small._shards) == 20


def test_shardedmap_never_exceeds_maxsize_and_counts_evictions():
    m = ShardedMap(maxsize=50, shards=4)
    for i in range(1000):
        m[i] = i
        assert len(m) <= 50
    s = m.stats()
    assert s["size"] == len(m) == 50  # even split: every shard filled up
    assert s["evictions"] == 1000 - 50 and s["expirations"] == 0


def test_shardedmap_clock_gives_read_entries_a_second_chance():
    m = ShardedMap(maxsize=3, shards=1)
    m["a"], m["b"], m["c"] = 1, 2, 3
    assert m["a"] == 1  # referenced
    m["d"] = 4  # evicts the oldest unreferenced entry: b
    assert set(m) == {"a", "c", "d"}
    m["e"] = 5  # a lost its mark when the sweeper passed it: c is oldest unread
    assert set(m) == {"a", "d", "e"}


def test_shardedmap_ttl_entries_expire(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("mapsafe.shardedmap.monotonic", lambda: clock[0])
    m = ShardedMap(ttl=10)
    m["a"] = 1
    clock[0] += 5
    m["b"] = 2
    assert m["a"] == 1 and len(m) == 2
    clock[0] += 6  # a is 11 s old, b 6 s
    assert m.get("a") is None and "a" not in m and m.load("a") == (None, False)
    assert list(m) == ["b"] and m.snapshot() == {"b": 2} and len(m) == 1
    m["b"] = 3  # a store restarts the clock
    clock[0] += 9
    assert m["b"] == 3
    clock[0] += 2
    with pytest.raises(KeyError):
        m["b"]
    assert m.stats()["expirations"] == 2


def test_shardedmap_stats_are_per_shard():
    m = ShardedMap(shards=4, stats=True)
    for i in range(100):
        m[i] = i
    s = m.stats()
    assert len(s["shards"]) == 4 and sum(x["size"] for x in s["shards"]) == 100
    assert sum(x["acquisitions"] for x in s["shards"]) == s["lock"]["acquisitions"] >= 100


# -- SyncMap ----------------------------------------------------------------------------


@pytest.mark.parametrize("stats", [False, True])
def test_syncmap_reads_never_wait_for_a_writer(stats):
    m = SyncMap({"a": 1}, stats=stats)
    held, done = threading.Event(), threading.Event()

    def writer():  # holds the write lock, as a long compute callback does
        with m._lock:
            held.set()
            done.wait(30)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert held.wait(30)
        got = []
        reader = threading.Thread(target=lambda: got.append((m.get("a"), m.get("b", 2), m["a"], "a" in m)))
        reader.start()
        reader.join(30)  # a hang limit, not a pass criterion
        assert got == [(1, 2, 1, True)]
    finally:
        done.set()
        t.join(30)


def test_syncmap_stats_variant_is_still_a_syncmap():
    m = SyncMap({"a": 1}, stats=True)
    assert isinstance(m, SyncMap) and repr(m) == "SyncMap({'a': 1})"
    assert m["a"] == 1
    with pytest.raises(KeyError):
        m["b"]
    assert m.stats()["hits"] == 1 and m.stats()["misses"] == 1
    assert type(m.copy()) is type(m)
    assert mapsafe.SyncMap.__name__ == "SyncMap"


def test_rwlock_readers_queued_during_a_write_go_before_the_next_writer():
    # Bug: with two writers taking turns, writer preference starved readers
    # forever (seen when the race detector slowed every thread down).
    import threading
    import time

    lock = RWLock()
    order = []
    lock.acquire_write()

    def reader():
        with lock.read():
            order.append("reader")

    def writer():
        with lock.write():
            order.append("writer")

    r = threading.Thread(target=reader)
    r.start()
    for _ in range(2000):  # wait until the reader is queued (bounded)
        if lock._waiting_readers == 1:
            break
        time.sleep(0.005)
    w = threading.Thread(target=writer)
    w.start()
    for _ in range(2000):
        if lock._waiting_writers == 1:
            break
        time.sleep(0.005)
    assert (lock._waiting_readers, lock._waiting_writers) == (1, 1)
    lock.release_write()
    r.join(30)
    w.join(30)
    assert not r.is_alive() and not w.is_alive()
    assert order == ["reader", "writer"]


def test_rwlock_read_timeout_leaves_no_state_behind():
    import threading

    lock = RWLock()
    lock.acquire_write()
    got = []
    r = threading.Thread(target=lambda: got.append(lock.acquire_read(timeout=0.2)))
    r.start()
    r.join(30)
    assert got == [False] and lock._read_passes == 0 and lock._waiting_readers == 0
    lock.release_write()
    assert lock.try_acquire_write()  # nothing left blocking writers
    lock.release_write()


def test_syncmap_reader_sees_every_write_made_after_it_was_created():
    m = SyncMap(a=1)
    r = m.reader()
    m["b"] = 2
    del m["a"]
    assert (r.get("a"), r.get("a", 0), r["b"], "b" in r, "a" in r, len(r)) == (None, 0, 2, True, False, 1)
    with pytest.raises(KeyError) as err:
        r[(1, 2)]
    assert err.value.args == ((1, 2),)


def test_syncmap_readers_made_in_each_thread_read_consistently_while_a_writer_runs():
    m = SyncMap({i: i for i in range(100)})
    stop, bad = threading.Event(), []

    def writer():
        n = 0
        while not stop.is_set():
            n += 1
            m[n % 100] = n % 100  # always the key itself
            m.pop(100 + n % 5, None)
            m[100 + n % 5] = -1

    def reader():
        r = m.reader()
        for _ in range(20000):
            k = _ % 100
            if r.get(k) != k or r[k] != k or k not in r or len(r) < 100:
                bad.append(k)

    w = threading.Thread(target=writer)
    w.start()
    try:
        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        stop.set()
        w.join(60)
    assert bad == []
