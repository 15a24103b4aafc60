"""Regression tests, each named after the bug it guards against."""

from __future__ import annotations

import threading

import mapsafe


def _keys_in_different_shards(m: mapsafe.ShardedMap) -> tuple[int, int]:
    first = 0
    for other in range(1, 1000):
        if m._section(other) is not m._section(first):
            return first, other
    raise AssertionError("no two keys in different shards")


def test_cross_shard_writes_from_two_compute_callbacks_do_not_deadlock():
    # Bug: each callback held its own shard lock and waited for the other's.
    m = mapsafe.ShardedMap(shards=8)
    a, b = _keys_in_different_shards(m)
    both_inside = threading.Barrier(2, timeout=0.5)
    errors = []

    def callback(other):
        def fn(key, old):
            try:
                both_inside.wait()  # with the old locking both threads got here
            except threading.BrokenBarrierError:
                pass  # the fix serialises callbacks: the partner cannot arrive
            m[other] = key
            return key
        return fn

    def run(key, other):
        try:
            m.compute(key, callback(other))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(a, b)), threading.Thread(target=run, args=(b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "deadlock: a compute thread never finished"
    assert errors == []
    assert set(m) == {a, b}


def test_expired_read_inside_a_callback_does_not_wait_for_another_shard(monkeypatch):
    # Bug risk: lazily removing an expired entry blocked on its shard lock,
    # which another thread's callback could hold.
    clock = [1000.0]
    monkeypatch.setattr("mapsafe.shardedmap.monotonic", lambda: clock[0])
    m = mapsafe.ShardedMap(shards=8, ttl=1)
    a, b = _keys_in_different_shards(m)
    m[b] = "old"
    clock[0] += 5
    holder_ready, release_holder = threading.Event(), threading.Event()
    shard_b = m._section(b)

    def hold_b():
        with shard_b.lock:
            holder_ready.set()
            release_holder.wait(20)

    t = threading.Thread(target=hold_b)
    t.start()
    assert holder_ready.wait(20)
    try:
        assert m.compute(a, lambda k, old: m.get(b, "gone")) == "gone"
    finally:
        release_holder.set()
        t.join(20)
    assert b not in m and not t.is_alive()


def test_snapshot_from_inside_a_callback_is_complete():
    m = mapsafe.ShardedMap({i: i for i in range(100)}, shards=8)
    seen = {}
    m.compute(5, lambda k, old: seen.update(m.snapshot()) or old)
    assert seen == {i: i for i in range(100)}
