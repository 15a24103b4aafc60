"""Bounded concurrency stress tests for the maps and RWLock, with exact pass criteria."""

from __future__ import annotations

import copy
import operator
import os
import pickle
import subprocess
import sys
import threading
import time

import pytest
from conftest import MAP_FACTORIES

import mapsafe
import mapsafe.shardedmap
from mapsafe import MISSING, LockedMap, RecursiveUpdateError, RWLock, ShardedMap

JOIN_TIMEOUT = 60.0  # seconds; only reached when something hangs
THREADS = 8


# Thread switches every few bytecodes, so races show up under the GIL too.
pytestmark = pytest.mark.usefixtures("frequent_switches")


def run_threads(*targets, timeout=JOIN_TIMEOUT):
    """Run each target in its own thread, started together; re-raise the first error.

    Fails (rather than hangs) if a thread is still running after ``timeout``.
    """
    start = threading.Barrier(len(targets))
    errors = []

    def wrap(fn):
        def run():
            try:
                start.wait(timeout)
                fn()
            except BaseException as exc:  # reported in the test thread below
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(fn), daemon=True, name=f"worker-{i}") for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads still running after {timeout}s (deadlock or livelock): {stuck}"
    if errors:
        raise errors[0]


def start_thread(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


def wait_until(predicate, what, timeout=JOIN_TIMEOUT):
    """Poll until ``predicate()`` holds; a synchronisation step, never a pass criterion on time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for: {what}"
        time.sleep(0.001)


def joined(*threads, timeout=JOIN_TIMEOUT):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


# -- counters: every increment counted exactly once -----------------------------------

COUNTER_KEYS = [0, 1, "c", ("t", 1)]  # ints land in distinct ShardedMap shards
INCREMENTS = 250  # per thread per key


def _increment(m, key, how):
    if how == "merge":
        m.merge(key, 1, lambda old, one: old + one)
    elif how == "merge-add":  # a known operator: in C, with no Python frame, on the C core
        m.merge(key, 1, operator.add)
    elif how == "add":
        m.add(key)
    elif how == "compute":
        m.compute(key, lambda k, old: 1 if old is MISSING else old + 1)
    elif how == "compute_if_present":
        assert m.compute_if_present(key, lambda k, old: old + 1) is not None
    else:  # compare-and-swap retry loop
        while True:
            current = m[key]
            if m.compare_and_swap(key, current, current + 1):
                return


@pytest.mark.parametrize("how", ["merge", "merge-add", "add", "compute", "cas", "mixed"])
def test_concurrent_increments_are_never_lost(make, how):
    m = make({k: 0 for k in COUNTER_KEYS})
    methods = ["merge", "compute", "cas", "compute_if_present", "add", "merge-add"]

    def worker(i):
        method = methods[i % len(methods)] if how == "mixed" else how

        def run():
            for _ in range(INCREMENTS):
                for key in COUNTER_KEYS:
                    _increment(m, key, method)

        return run

    run_threads(*(worker(i) for i in range(THREADS)))
    assert m.snapshot() == {k: THREADS * INCREMENTS for k in COUNTER_KEYS}


CONTESTS = 6  # fresh maps per test: each contest is one chance for a race to show


@pytest.mark.parametrize("contest", range(CONTESTS))
def test_compute_if_absent_calls_the_factory_once_per_key(make, contest):
    m = make()
    keys = list(range(50))
    calls = {k: [] for k in keys}  # list.append is atomic: a lock-free call log
    results = [None] * THREADS

    def factory(key):
        calls[key].append(threading.get_ident())
        sum(range(50))  # widen the window in which another thread could also call it
        return object()

    def worker(i):
        def run():
            order = keys[i:] + keys[:i]  # threads meet on every key, in different orders
            results[i] = {k: m.compute_if_absent(k, factory) for k in order}

        return run

    run_threads(*(worker(i) for i in range(THREADS)))
    assert {k: len(c) for k, c in calls.items()} == {k: 1 for k in keys}
    for k in keys:
        stored = m[k]
        assert all(r[k] is stored for r in results), f"threads got different objects for key {k}"


@pytest.mark.parametrize("contest", range(CONTESTS))
def test_load_or_store_has_exactly_one_winner_per_key(make, contest):
    m = make()
    keys = list(range(200))
    results = [None] * THREADS

    def worker(i):
        def run():
            results[i] = {k: m.load_or_store(k, i) for k in keys[i:] + keys[:i]}

        return run

    run_threads(*(worker(i) for i in range(THREADS)))
    for k in keys:
        winners = [i for i in range(THREADS) if results[i][k] == (i, False)]
        assert len(winners) == 1, f"key {k}: {len(winners)} threads stored"
        assert all(results[i][k] == (winners[0], True) for i in range(THREADS) if i != winners[0])
        assert m[k] == winners[0]


@pytest.mark.parametrize("name", [n for n in sorted(MAP_FACTORIES) if n.endswith("-stats")])
def test_stats_count_every_read_exactly(name):
    m = MAP_FACTORIES[name]({i: i for i in range(10)})
    reads = 400

    def reader():
        for j in range(reads):
            m.get(j % 20)  # keys 0..9 hit, 10..19 miss

    run_threads(*([reader] * THREADS))
    s = m.stats()
    assert (s["hits"], s["misses"]) == (THREADS * reads // 2, THREADS * reads // 2)


# -- point-in-time snapshots ---------------------------------------------------------------

SNAPSHOTS = 1500  # per reader


def test_snapshot_never_shows_a_later_store_without_an_earlier_one(make):
    # The writer stores A then B, round after round, until the readers are
    # done. At every instant the map holds A == B or A == B + 1, and B never
    # exists without A; a true point-in-time snapshot shows one of those.
    # Filler keys make a snapshot long enough to be interrupted, and A and B
    # sit in the first and last of ShardedMap's 8 default shards.
    m = make({("filler", i): i for i in range(400)})
    a, b = 0, 7
    writing, readers_done = threading.Event(), threading.Event()
    bad, rounds = [], []

    def writer():
        i = 0
        while not readers_done.is_set() and i < 1_000_000:
            i += 1
            m[a] = i
            m[b] = i
            writing.set()
        rounds.append(i)

    def reader():
        assert writing.wait(JOIN_TIMEOUT)  # check while the writer runs
        for _ in range(SNAPSHOTS):
            snap = m.snapshot()
            if b in snap and (a not in snap or snap[a] - snap[b] not in (0, 1)):
                bad.append((snap.get(a), snap[b]))
            elif a in snap and b not in snap and snap[a] != 1:
                bad.append((snap[a], None))

    def readers_then_stop():
        try:
            run_threads(reader, reader)
        finally:
            readers_done.set()

    run_threads(writer, readers_then_stop)
    assert bad == []
    assert m[a] == m[b] == rounds[0]


# -- iteration under concurrent writes ---------------------------------------------------------

STABLE = {("stable", i): ("S", i) for i in range(40)}  # never touched by writers


def _walk(m, how):
    """The (key, value-or-None) pairs one iteration of ``m`` yields."""
    if how == "iter":
        return [(k, None) for k in m]
    if how == "keys":
        return [(k, None) for k in m.keys()]
    if how == "reversed":
        return [(k, None) for k in reversed(m)]
    if how == "items":
        return list(m.items())
    if how == "values":
        return [(None, v) for v in m.values()]
    seen = []
    m.range(lambda k, v: seen.append((k, v)))
    return seen


@pytest.mark.parametrize("how", ["iter", "keys", "reversed", "items", "values", "range"])
def test_iteration_during_writes_is_complete_and_never_repeats(make, how):
    m = make(STABLE)
    writing, stop = threading.Barrier(4), threading.Event()
    problems = []
    walks = 60

    def writer(t):
        def run():
            j = 0
            writing.wait(JOIN_TIMEOUT)
            while not stop.is_set() and j < 200_000:
                key = ("volatile", t, j % 16)
                m[key] = ("V", t, j % 16, j)  # values are unique per key
                if j % 3 == 0:
                    m.pop(("volatile", t, (j + 8) % 16), None)
                j += 1

        return run

    def reader():
        for _ in range(walks):
            got = _walk(m, how)
            keys = [k for k, _ in got if k is not None]
            values = [v for _, v in got if v is not None]
            if len(keys) != len(set(keys)) or len(values) != len(set(values)):
                problems.append(("repeated", got))
            if how == "values":
                missing = set(STABLE.values()) - set(values)
            else:
                missing = set(STABLE) - set(keys)
            if missing:
                problems.append(("missing stable", sorted(missing)))
            for k, v in got:
                if k in STABLE and v is not None and v != STABLE[k]:
                    problems.append(("wrong value", k, v))
                if k is not None and k[0] == "volatile" and v is not None and v[1:3] != k[1:3]:
                    problems.append(("value of another key", k, v))

    def readers_then_stop():
        try:
            writing.wait(JOIN_TIMEOUT)  # the writers are about to start
            run_threads(reader, reader)
        finally:
            stop.set()

    run_threads(writer(0), writer(1), writer(2), readers_then_stop)
    assert problems == []


# -- LockedMap transactions ---------------------------------------------------------------------


@pytest.mark.parametrize("stats", [False, True])
def test_lockedmap_transactions_are_seen_all_at_once(stats):
    total = 1000
    m = LockedMap({"x": total // 2, "y": total // 2, "z": 0}, stats=stats)
    checks, min_moves = 300, 50  # per checking thread, per mover
    moving = [threading.Event(), threading.Event()]
    readers_done = threading.Event()
    bad, moves = [], []

    def mover(sign):
        def run():
            i = 0
            while (i < min_moves or not readers_done.is_set()) and i < 1_000_000:
                i += 1
                with m.write() as d:
                    amount = sign * (i % 7 + 1)
                    d["x"] -= amount
                    d["pending"] = amount  # a half-done transaction shows as this key
                    sum(range(20))  # give other threads time slices mid-transaction
                    d["y"] += amount
                    del d["pending"]
                moving[sign > 0].set()
            moves.append(i)

        return run

    def view_reader():
        for _ in range(checks):
            with m.read() as view:
                first = view["x"] + view["y"]
                sum(range(20))
                if first != total or view["x"] + view["y"] != total or "pending" in view:
                    bad.append(("read view", dict(view)))

    def snapshot_reader():
        for _ in range(checks):
            snap = m.snapshot()
            if snap["x"] + snap["y"] != total or "pending" in snap:
                bad.append(("snapshot", snap))

    def short_ops():
        for i in range(checks):
            if m.get("pending") is not None or "pending" in m or len(m) != 3:
                bad.append(("short op", i))
            m["z"] = i  # short writes wait for transactions too
            seen = m.compute("z", lambda k, old: "pending" in m)
            if seen is not False:
                bad.append(("compute callback saw a transaction", i))
            m["z"] = 0

    def checkers_then_stop():
        try:
            assert all(e.wait(JOIN_TIMEOUT) for e in moving)  # check while both movers run
            run_threads(view_reader, snapshot_reader, short_ops)
        finally:
            readers_done.set()

    run_threads(mover(1), mover(-1), checkers_then_stop)
    assert bad == []
    assert len(moves) == 2 and min(moves) >= min_moves
    assert m.snapshot() == {"x": m["x"], "y": total - m["x"], "z": 0}


# -- RWLock ----------------------------------------------------------------------------------------


def test_rwlock_excludes_writers_from_everyone():
    lock = RWLock()
    count = threading.Lock()  # guards the tallies below
    active = {"readers": 0, "writers": 0}
    bad = []
    writes = []
    rounds = 200

    def writer(i):
        def run():
            for j in range(rounds):
                nested = j % 3 == 0
                lock.acquire_write()
                if nested:
                    lock.acquire_write()  # reentrant
                    lock.acquire_read()  # a writer may also read
                with count:
                    active["writers"] += 1
                    if active["writers"] != 1 or active["readers"]:
                        bad.append(dict(active))
                sum(range(10))
                writes.append(i)
                with count:
                    active["writers"] -= 1
                if nested:
                    lock.release_read()
                    lock.release_write()
                lock.release_write()

        return run

    def reader():
        for j in range(rounds):
            lock.acquire_read()
            if j % 4 == 0:
                lock.acquire_read()  # reentrant
            with count:
                active["readers"] += 1
                if active["writers"]:
                    bad.append(dict(active))
            sum(range(10))
            with count:
                active["readers"] -= 1
            if j % 4 == 0:
                lock.release_read()
            lock.release_read()

    run_threads(writer(0), writer(1), writer(2), reader, reader, reader, reader)
    assert bad == []
    assert len(writes) == 3 * rounds
    assert lock.try_acquire_write()  # nothing left held
    lock.release_write()


def _waiting_writers(lock, n):
    return f"waiting_writers={n}" in repr(lock)


def test_rwlock_prefers_a_waiting_writer_over_new_readers():
    lock = RWLock()
    order = []
    holding, release_first = threading.Event(), threading.Event()

    def first_reader():
        with lock.read():
            holding.set()
            release_first.wait(JOIN_TIMEOUT)

    def writer():
        with lock.write():
            order.append("writer")

    def late_reader():
        with lock.read():
            order.append("late reader")

    r1 = start_thread(first_reader)
    assert holding.wait(JOIN_TIMEOUT)
    w = start_thread(writer)
    wait_until(lambda: _waiting_writers(lock, 1), "the writer to queue")
    probe_result = []
    probe = start_thread(lambda: probe_result.append(lock.try_acquire_read()))
    assert joined(probe) and probe_result == [False]  # a new reader may not overtake
    r2 = start_thread(late_reader)
    release_first.set()
    assert joined(r1, w, r2)
    assert order == ["writer", "late reader"]


def test_rwlock_reentrancy_rules():
    lock = RWLock()
    other = []

    def try_from_another_thread():
        t = start_thread(lambda: other.append((lock.try_acquire_read(), lock.try_acquire_write())))
        assert joined(t)
        return other.pop()

    assert lock.acquire_write() and lock.acquire_write()  # write is reentrant
    lock.release_write()
    assert try_from_another_thread() == (False, False)  # still held once
    assert lock.acquire_read(timeout=5)  # read inside write, no deadlock
    lock.release_read()
    lock.release_write()
    assert lock.acquire_read() and lock.acquire_read()  # read is reentrant
    lock.release_read()
    lock.release_read()
    assert lock.try_acquire_write()
    lock.release_write()


def test_rwlock_reentrant_read_while_a_writer_waits_does_not_deadlock():
    lock = RWLock()
    result = []
    holding, go_on = threading.Event(), threading.Event()

    def reader():
        with lock.read():
            holding.set()
            assert go_on.wait(JOIN_TIMEOUT)
            # A writer now waits for us; refusing us would deadlock both.
            result.append(lock.acquire_read(timeout=JOIN_TIMEOUT))
            lock.release_read()

    writer_got = []
    r = start_thread(reader)
    assert holding.wait(JOIN_TIMEOUT)
    w = start_thread(lambda: writer_got.append(lock.acquire_write(timeout=JOIN_TIMEOUT)))
    wait_until(lambda: _waiting_writers(lock, 1), "the writer to queue")
    go_on.set()
    assert joined(r) and result == [True]
    assert joined(w) and writer_got == [True]


def test_rwlock_refuses_upgrades_and_foreign_releases():
    lock = RWLock()
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release_read()
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release_write()
    with lock.read():
        with pytest.raises(RuntimeError, match="upgrad"):
            lock.acquire_write()
        with pytest.raises(RuntimeError, match="upgrad"):
            lock.acquire_write(timeout=0.01)
        with pytest.raises(RuntimeError, match="does not hold"):
            lock.release_write()
    errors = []

    def release_foreign():
        for release in (lock.release_write, lock.release_read):
            try:
                release()
            except RuntimeError as exc:
                errors.append(str(exc))

    lock.acquire_write()
    t = start_thread(release_foreign)
    assert joined(t)
    assert len(errors) == 2 and all("does not hold" in e for e in errors)
    lock.release_write()  # still ours, and still releasable
    assert lock.try_acquire_write()
    lock.release_write()


def test_rwlock_try_acquire_and_timeouts_return_false():
    lock = RWLock()
    got = []

    def attempt():
        got.append(
            (
                lock.try_acquire_read(),
                lock.try_acquire_write(),
                lock.acquire_read(timeout=0.05),
                lock.acquire_write(timeout=0.05),
                lock.acquire_read(blocking=False),
                lock.acquire_write(blocking=False),
            )
        )

    with lock.write():
        t = start_thread(attempt)
        assert joined(t)
    assert got.pop() == (False,) * 6
    with lock.read():
        t = start_thread(lambda: got.append((lock.try_acquire_write(), lock.acquire_write(timeout=0.05))))
        assert joined(t)
        assert got.pop() == (False, False)
        t = start_thread(lambda: got.append(lock.try_acquire_read() and (lock.release_read() or True)))
        assert joined(t)
        assert got.pop() is True  # readers share
    assert lock.try_acquire_write() and lock.try_acquire_read()
    lock.release_read()
    lock.release_write()


def test_rwlock_writer_that_times_out_lets_queued_readers_in():
    lock = RWLock()
    holding, release_first = threading.Event(), threading.Event()
    writer_got, late_got = [], []

    def first_reader():
        with lock.read():
            holding.set()
            release_first.wait(JOIN_TIMEOUT)

    r1 = start_thread(first_reader)
    assert holding.wait(JOIN_TIMEOUT)
    w = start_thread(lambda: writer_got.append(lock.acquire_write(timeout=0.3)))
    wait_until(lambda: _waiting_writers(lock, 1) or writer_got, "the writer to queue")
    r2 = start_thread(lambda: late_got.append(lock.acquire_read()))  # queues behind the writer
    try:
        # r1 still reads, so the writer must give up, and r2 must then get in.
        assert joined(w) and writer_got == [False]
        assert joined(r2) and late_got == [True]
    finally:
        release_first.set()
    assert joined(r1)


# -- ShardedMap bounds, TTL and eviction ----------------------------------------------------------


def test_shardedmap_maxsize_holds_under_concurrent_inserts():
    maxsize, writers, samples = 64, 4, 300
    m = ShardedMap(maxsize=maxsize)
    writing, sampler_done = threading.Event(), threading.Event()
    sizes, inserted = [], []

    def writer(t):
        def run():
            i = 0
            # At least 500 distinct keys each, and on until the sampler is done.
            while (i < 500 or not sampler_done.is_set()) and i < 1_000_000:
                m[(t, i)] = i
                if i % 4 == 0:
                    m.get((t, i - 2))  # reads set CLOCK's referenced bits
                i += 1
                writing.set()
            inserted.append(i)

        return run

    def sampler():
        try:
            assert writing.wait(JOIN_TIMEOUT)
            for _ in range(samples):
                sizes.append(len(m))
                sizes.append(len(m.snapshot()))
                sizes.append(sum(1 for _ in m))
        finally:
            sampler_done.set()

    run_threads(*(writer(t) for t in range(writers)), sampler)
    assert len(sizes) == 3 * samples and max(sizes) <= maxsize
    s = m.stats()
    assert len(m) == s["size"] == maxsize  # every shard filled up
    # All keys distinct, none deleted, no ttl: each insert beyond a full shard evicted one.
    assert s["evictions"] == sum(inserted) - len(m)
    assert s["expirations"] == 0


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(mapsafe.shardedmap, "monotonic", fake)
    return fake


@pytest.mark.parametrize("maxsize", [None, 100])
def test_shardedmap_expired_entries_are_never_returned(clock, maxsize):
    m = ShardedMap(ttl=10, maxsize=maxsize, shards=4)
    old = {f"old{i}": i for i in range(1, 10)}
    m.update(old)
    m[0] = "zero"
    clock.now += 5
    m["young"] = "y"
    m[0] = "refreshed"  # a store restarts the entry's lifetime
    clock.now += 4.999
    assert len(m) == 11 and m["old1"] == 1
    clock.now += 0.001  # exactly 10 s after the first stores: expired
    live = {"young": "y", 0: "refreshed"}
    # Reads.
    assert m.get("old1") is None and m.get("old1", "dflt") == "dflt"
    with pytest.raises(KeyError):
        m["old2"]
    assert "old3" not in m and m.load("old3") == (None, False)
    assert set(m) == set(m.keys()) == set(reversed(m)) == set(live)
    assert sorted(m.values()) == ["refreshed", "y"]
    assert dict(m.items()) == m.snapshot() == live and len(m) == 2 and m == live
    seen = []
    m.range(lambda k, v: seen.append((k, v)))
    assert dict(seen) == live
    assert m.copy() == live and pickle.loads(pickle.dumps(m)) == live
    assert "old" not in repr(m)
    assert m.stats()["size"] == 2
    # Writes treat an expired entry as absent.
    assert m.pop("old4", "gone") == "gone"
    assert m.compare_and_swap("old5", 5, 50) is False and "old5" not in m
    assert m.load_or_store("old6", "new") == ("new", False)
    olds = []
    assert m.compute("old7", lambda k, v: olds.append(v) or "new") == "new" and olds == [MISSING]
    assert m.compute_if_absent("old8", lambda k: "new") == "new"
    assert m.compute_if_present("old9", lambda k, v: 1 / 0) is None and "old9" not in m
    assert m.swap("old3", "new") == (None, False)
    assert m.snapshot() == {**live, "old6": "new", "old7": "new", "old8": "new", "old3": "new"}
    clock.now += 100
    assert len(m) == 0 and m.snapshot() == {} and list(m) == [] and m.copy() == {}
    with pytest.raises(KeyError):
        m.popitem()


def test_shardedmap_counts_each_expiration_once(clock):
    m = ShardedMap(ttl=1, shards=2)
    m.update({i: i for i in range(6)})
    clock.now += 1
    assert m.stats()["expirations"] == 0  # lazily removed: nothing touched them yet
    assert [m.get(i) for i in range(3)] == [None] * 3
    assert m.stats()["expirations"] == 3
    assert [m.get(i) for i in range(3)] == [None] * 3  # already gone: not counted again
    assert m.pop(3, None) is None and m.stats()["expirations"] == 4
    with pytest.raises(KeyError):
        del m[4]
    assert m.stats()["expirations"] == 5
    m[5] = "new"  # replacing an expired entry is a store, not an expiry
    assert m[5] == "new" and len(m) == 1


def test_shardedmap_pickle_keeps_remaining_lifetime(clock):
    m = ShardedMap({"a": 1}, ttl=10)
    clock.now += 6
    clone = pickle.loads(pickle.dumps(m))
    clock.now += 3.9
    assert clone == {"a": 1}
    clock.now += 0.1
    assert clone == {} and "a" not in clone


def test_shardedmap_deepcopy_keeps_remaining_lifetime(clock):
    m = ShardedMap({"a": 1}, ttl=10)
    clock.now += 9
    clones = {"copy": copy.copy(m), "pickle": pickle.loads(pickle.dumps(m)), "deepcopy": copy.deepcopy(m)}
    clock.now += 1  # the original entry has now expired
    assert m == {}
    assert {how: c.snapshot() for how, c in clones.items()} == {"copy": {}, "pickle": {}, "deepcopy": {}}


def test_shardedmap_clock_evicts_unreferenced_entries_first():
    # Documented policy: the sweeper walks entries oldest first, evicting
    # the first one not read since it last passed and giving read ones a
    # second chance (clearing their mark and moving them to the back).
    m = ShardedMap(shards=1, maxsize=3)
    m["a"], m["b"], m["c"] = 1, 2, 3
    assert m["a"] == 1  # a is referenced
    m["d"] = 4  # sweep: a gets a second chance, b (unreferenced) goes
    assert set(m) == {"a", "c", "d"}
    assert m.get("c") == 3 and m.get("d") == 4  # both referenced; order is c, d, a
    m["e"] = 5  # c and d get second chances, a (unmarked since the last sweep) goes
    assert set(m) == {"c", "d", "e"}
    m["f"] = 6  # c and d lost their marks last sweep: c is the oldest unreferenced
    assert set(m) == {"d", "e", "f"}
    assert m.stats()["evictions"] == 3


def test_shardedmap_evicts_expired_entries_before_live_ones(clock):
    # The docstring says "Expired entries go first". A second chance moves a
    # read entry to the back of the sweep order without changing its expiry,
    # so an expired entry can sit behind a live unreferenced one.
    m = ShardedMap(shards=1, maxsize=3, ttl=10)
    m["A"], m["B"], m["C"] = 1, 2, 3  # all expire at +10
    assert (m["A"], m["B"]) == (1, 2)  # read: referenced
    clock.now += 1
    m["D"] = 4  # A, B get second chances; C evicted. Order: A, B, D
    assert m["A"] == 1
    clock.now += 1
    m["E"] = 5  # A gets a second chance; B evicted. Order: D (+11), A (+10), E (+12)
    assert set(m) == {"A", "D", "E"}
    clock.now += 8.5  # A has expired; D and E are live
    m["F"] = 6  # must reclaim A's slot, not evict the live D
    assert set(m) == {"D", "E", "F"}
    assert m.stats()["expirations"] == 1


def test_shardedmap_maxsize_survives_pickling_across_processes():
    # _from_export puts each entry into the shard its key hashes to *now*,
    # skipping the capacity check. With another PYTHONHASHSEED the keys
    # spread differently, some shards end up over capacity, and inserting
    # into an under-full shard then evicts nothing.
    dump = (
        "import mapsafe, pickle, sys\n"
        "m = mapsafe.ShardedMap(shards=4, maxsize=8)\n"
        "for i in range(100): m[f'key{i}'] = i\n"
        "sys.stdout.buffer.write(pickle.dumps(m))\n"
    )
    load = (
        "import mapsafe, pickle, sys\n"
        "m = pickle.loads(sys.stdin.buffer.read())\n"
        "sizes = []\n"
        "for i in range(100):\n"
        "    m[f'new{i}'] = i\n"
        "    sizes.append(len(m))\n"
        "print(max(sizes))\n"
    )
    data = subprocess.run(
        [sys.executable, "-c", dump], env=dict(os.environ, PYTHONHASHSEED="1"), capture_output=True, check=True
    ).stdout
    out = subprocess.run(
        [sys.executable, "-c", load],
        env=dict(os.environ, PYTHONHASHSEED="2"),
        input=data,
        capture_output=True,
        check=True,
    ).stdout
    assert int(out) <= 8


# -- callbacks that use the whole map --------------------------------------------------------------


def test_compute_callbacks_reading_the_whole_map_from_two_threads_finish(make):
    m = make({i: 0 for i in range(16)})
    rounds = 60
    bad = []

    def computer(key):
        def fn(k, old):
            snap = m.snapshot()
            if snap.get(k) != old:
                bad.append(("snapshot shows another value of the computed key", k, snap.get(k), old))
            keys = list(m)
            items = list(m.items())
            if len(keys) != len(set(keys)) or len(m) < 16 or len(items) < 16:
                bad.append(("incomplete whole-map read", k))
            m.copy()
            m.stats()
            return old + 1

        def run():
            for _ in range(rounds):
                m.compute(key, fn)

        return run

    def plain_writer():
        for j in range(rounds * 10):
            m[100 + j % 8] = j  # other keys, other shards
            m.snapshot()

    run_threads(computer(0), computer(1), plain_writer)
    assert bad == []
    assert m[0] == m[1] == rounds


RECURSIVE_WRITES = [
    lambda m, k: m.__setitem__(k, 0),
    lambda m, k: m.store(k, 0),
    lambda m, k: m.pop(k),
    lambda m, k: m.__delitem__(k),
    lambda m, k: m.swap(k, 0),
    lambda m, k: m.compare_and_swap(k, m.get(k), 0),
    lambda m, k: m.compute(k, lambda kk, v: 0),
    lambda m, k: m.merge(k, 0, lambda a, b: 0),
    lambda m, k: m.update({k: 0}),
    lambda m, k: m.clear(),
]


def test_recursive_updates_raise_instead_of_hanging_under_contention(make):
    m = make({"k": 0})
    rounds = 100
    refused = []

    def recursive():
        for i in range(rounds):
            nested = RECURSIVE_WRITES[i % len(RECURSIVE_WRITES)]

            def fn(k, old):
                try:
                    nested(m, k)
                except RecursiveUpdateError:
                    refused.append(i)
                return old + 1

            m.compute("k", fn)

    def merger():
        for _ in range(rounds):
            m.merge("k", 1, lambda a, b: a + b)

    run_threads(recursive, merger, merger)
    assert len(refused) == rounds  # every nested write refused, none hung
    assert m["k"] == 3 * rounds  # and no increment lost


@pytest.mark.parametrize("name", sorted(MAP_FACTORIES))
@pytest.mark.parametrize("nested", ["update", "clear"])
def test_refused_recursive_update_or_clear_changes_nothing(name, nested):
    # 0 and 7 sit in different shards of an 8- (or 4-) shard map; the
    # callback computes 7, so a whole-map write must be refused before it
    # touches 0, as dict-like update() promises ("all keys are checked
    # before anything changes").
    m = MAP_FACTORIES[name]({0: "zero", 7: "seven"})

    def fn(k, old):
        with pytest.raises(RecursiveUpdateError):
            if nested == "update":
                m.update({0: "changed", 7: "changed"})
            else:
                m.clear()
        return old

    assert m.compute(7, fn) == "seven"
    assert m.snapshot() == {0: "zero", 7: "seven"}


def test_lockedmap_write_block_inside_compute_is_refused():
    m = LockedMap({"k": 0})

    def fn(k, old):
        with m.write() as d:
            d["k"] = "written in the callback"
        return old + 1

    raised = []

    def run():
        try:
            m.compute("k", fn)
        except RecursiveUpdateError:
            raised.append(True)

    t = start_thread(run)
    assert joined(t)
    assert raised == [True], f"no RecursiveUpdateError; the callback's write was lost: m['k'] == {m['k']!r}"


def test_lockedmap_read_block_inside_compute_keeps_the_compute_atomic():
    # A compute callback holds the RWLock's internal mutex. If a writer is
    # queued, read() inside the callback waits on a Condition, which
    # releases that mutex entirely: the writer then runs its whole write()
    # block in the middle of the compute, and the compute overwrites it.
    m = LockedMap({"k": 0})
    lock = m.lock
    reading, release_reader = threading.Event(), threading.Event()
    seen = []

    def first_reader():
        with m.read():
            reading.set()
            release_reader.wait(JOIN_TIMEOUT)

    def fn(k, old):
        with m.read() as view:
            seen.append(view["k"])
        return old + 1

    def writer():
        with m.write() as d:
            d["k"] = "writer"

    r = start_thread(first_reader)
    assert reading.wait(JOIN_TIMEOUT)
    c = start_thread(m.compute, "k", fn)  # queues (as a writer) behind the reader
    wait_until(lambda: _waiting_writers(lock, 1), "compute to queue")
    w = start_thread(writer)  # queues behind the compute
    wait_until(lambda: _waiting_writers(lock, 2), "the writer to queue")
    release_reader.set()
    assert joined(r, c, w)
    assert seen == [0]  # the callback saw its own key unchanged
    assert m["k"] == "writer"  # the writer ran after the compute, and was not lost
