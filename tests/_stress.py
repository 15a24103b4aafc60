"""Stress scenarios for the maps and RWLock: many threads, mixed operations, exact invariants.

Shared by tests/test_maps_stress.py (CI sizes) and benchmarks/stress.py
(longer runs). Every scenario is a function that builds its own map from
a factory, runs a few threads started together, and raises AssertionError
naming the broken invariant. Pass criteria are exact (counts, identities,
permutations, set equalities), never timings. Random choices come from a
``random.Random`` seeded per thread, so a failing op sequence can be
replayed (thread interleavings, of course, cannot).

Sizes are each scenario's CI default times ``MAPSAFE_STRESS_SCALE``
(read at import; default 1).
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import os
import random
import sys
import threading
import time
import traceback
from collections import Counter
from functools import partial
from typing import Any, Callable, Iterator

from mapsafe import DELETE, MISSING, LockedMap, RWLock, ShardedMap, SyncMap

Factory = Callable[..., Any]  # builds a map, called like dict()


def _read_scale() -> float:
    raw = os.environ.get("MAPSAFE_STRESS_SCALE", "").strip() or "1"
    try:
        scale = float(raw)
    except ValueError:
        scale = -1.0
    if not scale > 0 or scale == float("inf"):
        raise ValueError(f"MAPSAFE_STRESS_SCALE must be a number > 0, got {raw!r}")
    return scale


SCALE = _read_scale()
THREADS = 6  # per scenario; at least 4 (two writers and two readers where a scenario splits them)
JOIN_TIMEOUT = 60.0 * max(1.0, SCALE)  # seconds; only ever reached when something hangs
LOOP_CAP = 1_000_000  # bound on "until the readers are done" loops, so nothing runs forever
NO_EVICT = 1 << 20  # a maxsize no scenario comes near: 2**18 per shard of a 4-shard map


def scaled(n: int) -> int:
    """``n`` times MAPSAFE_STRESS_SCALE, at least 1."""
    return max(1, round(n * SCALE))


# Every configuration each map scenario runs against. ShardedMap gets 4
# shards so that a few int keys (0..3) cover every shard; its cache modes
# never evict or expire here, so every invariant stays exact (check_no_evictions).
MAPS: dict[str, Factory] = {
    "SyncMap": lambda *a: SyncMap(*a),
    "SyncMap-stats": lambda *a: SyncMap(*a, stats=True),
    "LockedMap": lambda *a: LockedMap(*a),
    "LockedMap-stats": lambda *a: LockedMap(*a, stats=True),
    "ShardedMap-4": lambda *a: ShardedMap(*a, shards=4),
    "ShardedMap-4-stats": lambda *a: ShardedMap(*a, shards=4, stats=True),
    "ShardedMap-maxsize": lambda *a: ShardedMap(*a, shards=4, maxsize=NO_EVICT),
    "ShardedMap-ttl": lambda *a: ShardedMap(*a, shards=4, ttl=3600),
    "ShardedMap-cache-stats": lambda *a: ShardedMap(*a, shards=4, maxsize=NO_EVICT, ttl=3600, stats=True),
}
STATS_MAPS = tuple(name for name in MAPS if name.endswith("-stats"))
LOCKED_MAPS = tuple(name for name in MAPS if name.startswith("LockedMap"))


# -- running threads ----------------------------------------------------------------------


@contextlib.contextmanager
def switch_interval(seconds: float) -> Iterator[None]:
    """Switch threads every few bytecodes, so that races show on GIL builds too."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


class Countdown:
    """An Event set once ``n`` threads have called ``done()``: "the readers are finished"."""

    def __init__(self, n: int) -> None:
        self._lock = threading.Lock()
        self._left = n  # guarded by _lock
        self.event = threading.Event()

    def done(self) -> None:
        with self._lock:
            self._left -= 1
            if self._left <= 0:
                self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


def run_threads(
    targets: list[Callable[[], Any]],
    *,
    stop: threading.Event | None = None,
    barriers: tuple[threading.Barrier, ...] = (),
    timeout: float | None = None,
) -> None:
    """Run each target in its own thread, released together; re-raise the first failure.

    A failure sets ``stop`` and breaks ``barriers``, so the other threads
    finish early instead of waiting for a partner that is gone. Fails,
    with the stacks of the threads still running, if any is alive after
    ``timeout`` seconds: a hang is a test failure, not a hung test.
    """
    timeout = JOIN_TIMEOUT if timeout is None else timeout
    start = threading.Barrier(len(targets), timeout=timeout)
    errors: list[BaseException] = []  # list.append is atomic

    def wrap(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            try:
                start.wait()
                fn()
            except BaseException as exc:  # re-raised in the calling thread below
                errors.append(exc)
                if stop is not None:
                    stop.set()
                for barrier in barriers:
                    barrier.abort()

        return run

    threads = [threading.Thread(target=wrap(fn), name=f"stress-{i}", daemon=True) for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t for t in threads if t.is_alive()]
    if stuck:
        if stop is not None:
            stop.set()  # let loops that watch it end, so the daemon threads do not spin on
        frames = sys._current_frames()
        stacks = "\n".join(
            f"--- {t.name}:\n{''.join(traceback.format_stack(frames[t.ident]))}" for t in stuck if t.ident in frames
        )
        raise AssertionError(
            f"{len(stuck)} thread(s) still running after {timeout:g}s (deadlock or livelock):\n{stacks}"
        )
    # A broken barrier is the echo of another thread's failure: report the cause.
    causes = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if causes or errors:
        raise (causes or errors)[0]


def spin(n: int = 8) -> None:
    """Widen the window between two steps for another thread to run in.

    A Python loop, not ``sum(range(n))``: each pass of its back edge is a
    point where the interpreter may switch threads; one C call is not.
    """
    for _ in range(n):
        pass


def check_no_evictions(m: Any) -> None:
    """Fail if a bounded configuration evicted or expired: the scenario's invariants assume it never does."""
    s = m.stats()
    lost = (s.get("evictions", 0), s.get("expirations", 0))
    assert lost == (0, 0), f"{lost} entries evicted/expired: raise NO_EVICT (a scenario bug, not a map bug)"


def _diff(got: Counter, want: Counter) -> str:
    lost, extra = want - got, got - want
    return f"lost {sorted(lost.items(), key=repr)[:10]}, extra {sorted(extra.items(), key=repr)[:10]}"


# -- counters: every increment counted exactly once ------------------------------------------

INCREMENT_METHODS = ("merge", "compute", "cas", "compute_if_present")


def _plus_one(key: Any, old: Any) -> int:
    new = 1 if old is MISSING else old + 1
    spin()  # a lock released during the callback would now let another increment in
    return new


def increment(m: Any, key: Any, method: str) -> None:
    """Add one to ``m[key]`` (absent counts as 0) with one of INCREMENT_METHODS."""
    if method == "merge":
        m.merge(key, 1, operator.add)
    elif method == "compute":
        m.compute(key, _plus_one)
    elif method == "compute_if_present":
        if m.compute_if_present(key, _plus_one) is None:
            m.merge(key, 1, operator.add)  # absent; counters are never deleted, so merge adds exactly one
    elif method == "cas":
        for _ in range(LOOP_CAP):  # a CAS retry loop: load, then swap only if unchanged
            current, ok = m.load(key)
            if not ok:
                if not m.load_or_store(key, 1)[1]:
                    return
            elif m.compare_and_swap(key, current, current + 1):
                return
        raise AssertionError(f"compare_and_swap on {key!r} failed {LOOP_CAP} times in a row (livelock)")
    else:
        raise ValueError(f"unknown increment method {method!r}")


def counters(
    make: Factory, how: str = "mixed", *, threads: int = THREADS, ops: int | None = None, seed: int = 0
) -> None:
    """Increments from every thread (``how``: one of INCREMENT_METHODS, or mixed) sum exactly, per key.

    Counter keys start absent, so the first increments race to insert.
    Meanwhile each thread also writes and deletes keys of its own in the
    same shards, and an observer checks that no snapshot ever shows a
    counter going backwards.
    """
    ops = ops or scaled(400)
    keys = list(range(4)) + [("k", i) for i in range(4)] + [f"s{i}" for i in range(4)]
    m = make()
    tallies = [Counter() for _ in range(threads)]  # what each thread added; only it writes its own
    workers_done = Countdown(threads)

    def worker(t: int) -> None:
        rng = random.Random(f"{seed}:counters:{t}")
        try:
            for j in range(ops):
                key = rng.choice(keys)
                increment(m, key, rng.choice(INCREMENT_METHODS) if how == "mixed" else how)
                tallies[t][key] += 1
                if j % 4 == 0:  # other keys, same shards: contention without touching the counters
                    m[("noise", t, j % 8)] = j
                    m.pop(("noise", t, (j + 4) % 8), None)
        finally:
            workers_done.done()

    def observer() -> None:
        last = dict.fromkeys(keys, 0)
        for _ in range(LOOP_CAP):
            if workers_done.is_set():
                return
            snap = m.snapshot()
            for key in keys:
                now = snap.get(key, 0)
                assert now >= last[key], f"counter {key!r} went back from {last[key]} to {now} between snapshots"
                last[key] = now
            got = m.get(keys[0], 0)
            assert got >= last[keys[0]], f"get({keys[0]!r}) = {got} after a snapshot showed {last[keys[0]]}"

    run_threads([partial(worker, t) for t in range(threads)] + [observer], stop=workers_done.event)
    want = sum(tallies, Counter())
    got = Counter({k: v for k, v in m.snapshot().items() if k in keys})
    assert got == want, f"{how} increments: {_diff(got, want)}"
    assert sum(got.values()) == threads * ops
    check_no_evictions(m)


# -- compute_if_absent: one factory call per key ---------------------------------------------


def compute_if_absent_once(
    make: Factory, *, threads: int = THREADS, rounds: int | None = None, seed: int = 0
) -> None:
    """Threads released together on the same cold keys: each key's factory runs once, all get its result."""
    rounds = rounds or scaled(60)
    per_round = 6
    m = make()
    calls: Counter = Counter()  # key -> factory calls; guarded by calls_lock
    inflight: set = set()  # keys whose factory is running now; guarded by calls_lock
    calls_lock = threading.Lock()
    serial = itertools.count()
    results: list[dict] = [{} for _ in range(threads)]  # thread -> key -> what compute_if_absent returned
    peeked: list[dict] = [{} for _ in range(threads)]  # thread -> key -> what a get() just before showed
    barrier = threading.Barrier(threads, timeout=JOIN_TIMEOUT)

    def factory(key: Any) -> tuple:
        with calls_lock:
            calls[key] += 1
            assert key not in inflight, f"two factories for {key!r} ran at once"
            inflight.add(key)
        spin()  # the window a second caller would have to run the factory too
        with calls_lock:
            inflight.discard(key)
        return ("made", key, next(serial))  # a new object per call: identity shows whose result was kept

    def worker(t: int) -> None:
        rng = random.Random(f"{seed}:cia:{t}")
        for r in range(rounds):
            keys = [(r, i) for i in range(per_round)]
            rng.shuffle(keys)  # threads meet on every key, in different orders
            barrier.wait()  # all threads start on the round's cold keys together
            for key in keys:
                seen = m.get(key)
                if seen is not None:
                    peeked[t][key] = seen
                results[t][key] = m.compute_if_absent(key, factory)

    run_threads([partial(worker, t) for t in range(threads)], barriers=(barrier,))
    all_keys = {(r, i) for r in range(rounds) for i in range(per_round)}
    extra = {k: n for k, n in calls.items() if n != 1}
    assert set(calls) == all_keys and not extra, f"factory calls per key other than 1: {sorted(extra.items())[:10]}"
    final = m.snapshot()
    for t in range(threads):
        for key, value in results[t].items():
            assert value is final[key], f"thread {t} got {value!r} for {key!r}, but the map kept {final[key]!r}"
        for key, value in peeked[t].items():
            assert value is final[key], f"thread {t} read {value!r} for {key!r} before the map kept {final[key]!r}"
    check_no_evictions(m)


# -- iteration while other threads insert and delete ----------------------------------------

WALKS = ("iter", "keys", "items", "values", "range", "reversed", "range-writing")


def _volatile_value(key: tuple, j: int) -> tuple:
    return ("V", *key, j)  # names its key, and is unique: a value seen under another key shows


def _volatile_write(m: Any, rng: random.Random, keys: list, j: int) -> None:
    """One random write (of many kinds) to one of ``keys``."""
    key = rng.choice(keys)
    value = _volatile_value(key, j)
    kind = rng.randrange(12)
    if kind == 0:
        m[key] = value
    elif kind == 1:
        m.pop(key, None)
    elif kind == 2:
        m.swap(key, value)
    elif kind == 3:
        m.merge(key, value, lambda old, new: new)
    elif kind == 4:
        m.compute(key, lambda k, old: DELETE if old is not MISSING and old[-1] % 2 else value)
    elif kind == 5:
        m.load_or_store(key, value)
    elif kind == 6:
        m.setdefault(key, value)
    elif kind == 7:
        other = rng.choice(keys)
        m.update({key: value, other: _volatile_value(other, j)})
    elif kind == 8:
        m.compare_and_delete(key, m.get(key))
    elif kind == 9:
        m.load_and_delete(key)
    elif kind == 10:
        m.compute_if_present(key, lambda k, old: value)
    else:
        m.delete(key)


def iteration(make: Factory, *, threads: int = THREADS, walks: int | None = None, seed: int = 0) -> None:
    """Walks (for k in m, keys, items, values, range, reversed) during writes: no error, no
    key yielded twice, every stable key yielded, and every value belongs to its key."""
    walks = walks or scaled(100)
    n_writers = max(1, threads // 2)
    n_readers = max(1, threads - n_writers)
    stable = {("stable", i): ("S", i) for i in range(32)}  # present throughout: never written
    pools = [[("vol", t, i) for i in range(12)] for t in range(n_writers)]
    own = [[("rw", r, i) for i in range(4)] for r in range(n_readers)]  # written by range-writing walks
    known = set(stable).union(*pools, *own)
    m = make(stable)
    started = [threading.Event() for _ in range(n_writers)]
    readers_done = Countdown(n_readers)

    def writer(t: int) -> None:
        rng = random.Random(f"{seed}:iter-writer:{t}")
        for j in range(LOOP_CAP):
            if readers_done.is_set():
                return
            _volatile_write(m, rng, pools[t], j)
            started[t].set()

    def walk(r: int, how: str, n: int) -> list[tuple[Any, Any]]:
        """(key, value) pairs, with None for the half a walk does not yield.

        Each step does a little work, as a real loop body would: a walk
        that is interrupted between steps is what can go wrong.
        """
        if how == "range" or how == "range-writing":
            seen: list = []

            def visit(k: Any, v: Any) -> None:
                seen.append((k, v))
                spin(2)
                if how == "range-writing":  # range holds no lock: the callback may write
                    key = own[r][len(seen) % 4]
                    m[key] = _volatile_value(key, n * 1000 + len(seen))

            m.range(visit)
            return seen
        if how == "items":
            pairs = m.items()
        elif how == "values":
            pairs = ((None, v) for v in m.values())
        else:
            keys = m if how == "iter" else m.keys() if how == "keys" else reversed(m)
            pairs = ((k, None) for k in keys)
        out = []
        for pair in pairs:
            out.append(pair)
            spin(2)
        return out

    def reader(r: int) -> None:
        try:
            for e in started:
                assert e.wait(JOIN_TIMEOUT), "a writer never started"
            for n in range(walks):
                how = WALKS[(r + n) % len(WALKS)]
                got = walk(r, how, n)
                keys = [k for k, _ in got if k is not None]
                values = [v for _, v in got if v is not None]
                assert len(keys) == len(set(keys)), f"{how}: a key yielded twice: {_repeated(keys)}"
                assert len(values) == len(set(values)), f"{how}: a value yielded twice: {_repeated(values)}"
                if how == "values":
                    missing = set(stable.values()) - set(values)
                else:
                    missing = set(stable) - set(keys)
                    assert set(keys) <= known, f"{how}: yielded keys never written: {set(keys) - known}"
                assert not missing, f"{how}: skipped keys present throughout the walk: {sorted(missing)[:5]}"
                for k, v in got:
                    if v is None:
                        continue
                    if v[0] == "S":
                        assert k is None or stable.get(k) == v, f"{how}: {k!r} -> {v!r}"
                    else:
                        assert v[0] == "V" and (k is None or v[1:-1] == k), f"{how}: {k!r} -> {v!r}"
                size = len(m)
                assert len(stable) <= size <= len(known), f"len(m) = {size} during writes"
        finally:
            readers_done.done()

    run_threads(
        [partial(writer, t) for t in range(n_writers)] + [partial(reader, r) for r in range(n_readers)],
        stop=readers_done.event,
    )
    assert {k: m[k] for k in stable} == stable
    check_no_evictions(m)


def _repeated(items: list) -> list:
    return [x for x, n in Counter(items).items() if n > 1][:5]


# -- hand-offs: swap, and a CAS loop, lose no token -----------------------------------------

HANDOFF_METHODS = ("swap", "cas", "compute", "merge")


def handoff(m: Any, key: Any, token: Any, method: str) -> Any:
    """Put ``token`` under ``key`` (always present) and return exactly the value it replaced."""
    if method == "swap":
        previous, ok = m.swap(key, token)
        assert ok, f"swap({key!r}) found the key absent"
        return previous
    if method == "cas":
        for _ in range(LOOP_CAP):
            current = m[key]
            if m.compare_and_swap(key, current, token):
                return current
        raise AssertionError(f"compare_and_swap on {key!r} failed {LOOP_CAP} times in a row (livelock)")
    olds: list = []
    if method == "compute":
        m.compute(key, lambda k, old: olds.append(old) or token)
    else:
        m.merge(key, token, lambda old, new: olds.append(old) or new)
    assert len(olds) == 1, f"{method} ran its callback {len(olds)} times"
    return olds[0]


def swap_handoff(make: Factory, *, threads: int = THREADS, ops: int | None = None, seed: int = 0) -> None:
    """Each thread hands its own tokens in (swap, CAS loop, compute, merge): per key, the values
    handed back plus the final one are a permutation of the tokens written plus the initial one."""
    ops = ops or scaled(600)
    batons = list(range(4))  # ints 0..3: one per shard of a 4-shard map
    initial = {b: ("initial", b) for b in batons}
    m = make(initial)
    written: list[list] = [[] for _ in range(threads)]  # (baton, token) per thread; only it appends
    returned: list[list] = [[] for _ in range(threads)]  # (baton, previous) per thread

    def worker(t: int) -> None:
        rng = random.Random(f"{seed}:swap:{t}")
        for j in range(ops):
            baton = rng.choice(batons)
            token = ("token", t, j)
            previous = handoff(m, baton, token, rng.choice(HANDOFF_METHODS))
            written[t].append((baton, token))
            returned[t].append((baton, previous))

    run_threads([partial(worker, t) for t in range(threads)])
    final = m.snapshot()
    assert set(final) == set(batons)
    for b in batons:
        got = Counter(p for per in returned for bb, p in per if bb == b) + Counter([final[b]])
        want = Counter(tok for per in written for bb, tok in per if bb == b) + Counter([initial[b]])
        assert got == want, f"baton {b}: {_diff(got, want)}"
    check_no_evictions(m)


# -- first writer wins -----------------------------------------------------------------------------


def first_writer_wins(make: Factory, *, threads: int = THREADS, rounds: int | None = None, seed: int = 0) -> None:
    """Threads released together store-if-absent on one fresh key: exactly one wins, all get its value.

    Even rounds race load_or_store alone; odd rounds mix it with
    setdefault and compute_if_absent on the same key.
    """
    rounds = rounds or scaled(120)
    m = make()
    barrier = threading.Barrier(threads, timeout=JOIN_TIMEOUT)
    got: list[list] = [[None] * rounds for _ in range(threads)]  # thread -> round -> (value, says it won)
    methods = ("load_or_store", "setdefault", "compute_if_absent")

    def worker(t: int) -> None:
        for r in range(rounds):
            key = ("race", r)
            token = ("token", t, r)
            method = methods[0] if r % 2 == 0 else methods[(t + r) % 3]
            barrier.wait()
            if method == "load_or_store":
                value, loaded = m.load_or_store(key, token)
                won = not loaded
                assert won == (value is token), f"load_or_store returned ({value!r}, {loaded})"
            elif method == "setdefault":
                value = m.setdefault(key, token)
                won = value is token
            else:
                ran: list = []
                value = m.compute_if_absent(key, lambda k: ran.append(k) or token)
                won = bool(ran)
                assert won == (value is token), f"compute_if_absent ran={won} but returned {value!r}"
            got[t][r] = (value, won)

    run_threads([partial(worker, t) for t in range(threads)], barriers=(barrier,))
    for r in range(rounds):
        winners = [t for t in range(threads) if got[t][r][1]]
        assert len(winners) == 1, f"round {r}: {len(winners)} threads stored (threads {winners})"
        kept = m[("race", r)]
        assert kept == ("token", winners[0], r)
        losers = [t for t in range(threads) if got[t][r][0] is not kept]
        assert not losers, f"round {r}: threads {losers} got another value than the winner's {kept!r}"
    check_no_evictions(m)


# -- conservation: tokens moved between two maps ---------------------------------------------


def _take(src: Any, rng: random.Random, payload: dict) -> tuple[Any, Any] | None:
    """Remove one token from ``src``: (key, value), or None if the chosen one was not there."""
    key = rng.randrange(len(payload))
    kind = rng.randrange(5)
    if kind == 0:
        value = src.pop(key, MISSING)
        return None if value is MISSING else (key, value)
    if kind == 1:
        value, ok = src.load_and_delete(key)
        return (key, value) if ok else None
    if kind == 2:
        try:
            return src.popitem()
        except KeyError:
            return None
    if kind == 3:
        return (key, payload[key]) if src.compare_and_delete(key, payload[key]) else None
    olds: list = []
    src.compute_if_present(key, lambda k, old: olds.append(old) or DELETE)
    return (key, olds[0]) if olds else None


def _put(dst: Any, key: Any, value: Any, rng: random.Random) -> None:
    """Insert a token the caller holds; it is in neither map, so every insert must find it absent."""
    kind = rng.randrange(5)
    if kind == 0:
        kept = dst.setdefault(key, value)
        assert kept is value, f"setdefault({key!r}) found {kept!r}: a token in two places"
    elif kind == 1:
        kept, loaded = dst.load_or_store(key, value)
        assert not loaded, f"load_or_store({key!r}) found {kept!r}: a token in two places"
    elif kind == 2:
        ran: list = []
        dst.compute_if_absent(key, lambda k: ran.append(k) or value)
        assert ran, f"compute_if_absent({key!r}) found it present: a token in two places"
    elif kind == 3:
        def collide(old: Any, new: Any) -> Any:
            raise AssertionError(f"merge({key!r}) found {old!r}: a token in two places")

        dst.merge(key, value, collide)
    else:
        previous, ok = dst.swap(key, value)
        assert not ok, f"swap({key!r}) replaced {previous!r}: a token in two places"


def conservation(make: Factory, *, threads: int = THREADS, ops: int | None = None, seed: int = 0) -> None:
    """Tokens moved between two maps (pop, popitem, ... then setdefault, load_or_store, ...):
    none is ever lost or duplicated."""
    ops = ops or scaled(600)
    payload = {i: ("payload", i) for i in range(48)}
    maps = (make(payload), make())
    moves = [0] * threads  # per thread; only it writes its own
    workers_done = Countdown(threads)

    def worker(t: int) -> None:
        rng = random.Random(f"{seed}:conserve:{t}")
        try:
            for _ in range(ops):
                side = rng.randrange(2)
                taken = _take(maps[side], rng, payload)
                if taken is None:
                    continue
                key, value = taken
                assert value == payload[key], f"took {key!r} -> {value!r}"
                _put(maps[1 - side], key, value, rng)
                moves[t] += 1
        finally:
            workers_done.done()

    def observer() -> None:
        for n in range(LOOP_CAP):
            if workers_done.is_set():
                return
            mp = maps[n % 2]
            snap = mp.snapshot() if n % 4 < 2 else dict(mp.items())
            wrong = {k: v for k, v in snap.items() if payload.get(k) != v}
            assert not wrong, f"values that are not their token's: {wrong}"
            assert len(snap) <= len(payload)

    run_threads([partial(worker, t) for t in range(threads)] + [observer], stop=workers_done.event)
    a, b = maps[0].snapshot(), maps[1].snapshot()
    both = set(a) & set(b)
    assert not both, f"tokens in both maps: {sorted(both)}"
    assert {**a, **b} == payload, f"lost tokens: {sorted(set(payload) - set(a) - set(b))}"
    assert sum(moves) > 0
    for mp in maps:
        check_no_evictions(mp)


# -- disjoint keys: every result as a dict would give it -------------------------------------


class DictModel:
    """The reference: each map method on a plain dict, single-threaded, as documented."""

    def __init__(self) -> None:
        self.d: dict = {}

    def get(self, key, default=None):
        return self.d.get(key, default)

    def __getitem__(self, key):
        return self.d[key]

    def __setitem__(self, key, value):
        self.d[key] = value

    def __delitem__(self, key):
        del self.d[key]

    def __contains__(self, key):
        return key in self.d

    def pop(self, key, *default):
        return self.d.pop(key, *default)

    def setdefault(self, key, default=None):
        return self.d.setdefault(key, default)

    def update(self, other):
        self.d.update(other)

    def load(self, key):
        return (self.d[key], True) if key in self.d else (None, False)

    def store(self, key, value):
        self.d[key] = value

    def delete(self, key):
        self.d.pop(key, None)

    def load_or_store(self, key, value):
        if key in self.d:
            return self.d[key], True
        self.d[key] = value
        return value, False

    def load_and_delete(self, key):
        return (self.d.pop(key), True) if key in self.d else (None, False)

    def swap(self, key, value):
        previous = self.load(key)
        self.d[key] = value
        return previous

    def compare_and_swap(self, key, old, new):
        if key in self.d and self.d[key] == old:
            self.d[key] = new
            return True
        return False

    def compare_and_delete(self, key, old):
        if key in self.d and self.d[key] == old:
            del self.d[key]
            return True
        return False

    def _set(self, key, new):
        if new is DELETE:
            self.d.pop(key, None)
            return None
        self.d[key] = new
        return new

    def compute(self, key, fn):
        return self._set(key, fn(key, self.d.get(key, MISSING)))

    def compute_if_absent(self, key, factory):
        return self.d[key] if key in self.d else self._set(key, factory(key))

    def compute_if_present(self, key, fn):
        return self._set(key, fn(key, self.d[key])) if key in self.d else None

    def merge(self, key, value, fn):
        return self._set(key, fn(self.d[key], value)) if key in self.d else self._set(key, value)


def _bump(v: int) -> Callable[[Any, Any], Any]:
    """A compute callback: insert ``v``, or add one, or (every fifth value) delete."""
    return lambda k, old: v if old is MISSING else (DELETE if old % 5 == 0 else old + 1)


def _add_or_delete(old: int, new: int) -> Any:
    return DELETE if (old + new) % 7 == 0 else old + new


# name -> op(target, key, value, other_key); run on the map and on a DictModel alike.
MODEL_OPS: dict[str, Callable[[Any, Any, int, Any], Any]] = {
    "get": lambda t, k, v, k2: t.get(k, "default"),
    "getitem": lambda t, k, v, k2: t[k],
    "contains": lambda t, k, v, k2: k in t,
    "setitem": lambda t, k, v, k2: t.__setitem__(k, v),
    "delitem": lambda t, k, v, k2: t.__delitem__(k),
    "pop": lambda t, k, v, k2: t.pop(k, "default"),
    "pop-strict": lambda t, k, v, k2: t.pop(k),
    "setdefault": lambda t, k, v, k2: t.setdefault(k, v),
    "update": lambda t, k, v, k2: t.update({k: v, k2: v + 1}),
    "load": lambda t, k, v, k2: t.load(k),
    "store": lambda t, k, v, k2: t.store(k, v),
    "delete": lambda t, k, v, k2: t.delete(k),
    "load_or_store": lambda t, k, v, k2: t.load_or_store(k, v),
    "load_and_delete": lambda t, k, v, k2: t.load_and_delete(k),
    "swap": lambda t, k, v, k2: t.swap(k, v),
    "cas-current": lambda t, k, v, k2: t.compare_and_swap(k, t.get(k), v),
    "cas-stale": lambda t, k, v, k2: t.compare_and_swap(k, -1, v),
    "cad-current": lambda t, k, v, k2: t.compare_and_delete(k, t.get(k)),
    "cad-stale": lambda t, k, v, k2: t.compare_and_delete(k, -1),
    "compute": lambda t, k, v, k2: t.compute(k, _bump(v)),
    "compute_if_absent": lambda t, k, v, k2: t.compute_if_absent(k, lambda key: v),
    "compute_if_present": lambda t, k, v, k2: t.compute_if_present(k, _bump(v)),
    "merge": lambda t, k, v, k2: t.merge(k, v, _add_or_delete),
}


def _outcome(op: Callable[..., Any], *args: Any) -> tuple:
    try:
        result = op(*args)
    except KeyError as exc:
        return ("KeyError", exc.args)
    return ("ok", type(result).__name__, result)  # the type too: 0 must not pass for False or None


def disjoint_keys(make: Factory, *, threads: int = THREADS, ops: int | None = None, seed: int = 0) -> None:
    """Every thread runs random operations on keys only it uses, in shards all share: each
    result, and each walk restricted to its keys, matches a dict given the same calls."""
    ops = ops or scaled(500)
    names = sorted(MODEL_OPS)
    m = make()

    def worker(t: int) -> None:
        rng = random.Random(f"{seed}:disjoint:{t}")
        mine = [(t, i) for i in range(12)]  # tuples of ints: spread over shards, independent of PYTHONHASHSEED
        model = DictModel()
        log: list = []  # the ops so far, for the failure message
        for j in range(ops):
            name = rng.choice(names)
            k, k2, v = rng.choice(mine), rng.choice(mine), rng.randrange(100)
            log.append((name, k, v, k2))
            got = _outcome(MODEL_OPS[name], m, k, v, k2)
            want = _outcome(MODEL_OPS[name], model, k, v, k2)
            assert got == want, f"thread {t} op {j} {name}{(k, v, k2)}: map {got}, dict {want}; last ops {log[-8:]}"
            if j % 16 == 15:
                # Only this thread writes these keys, so each is present (or
                # absent) for the whole walk: a walk shows exactly the model.
                snap = {key: value for key, value in m.snapshot().items() if key in mine}
                assert snap == model.d, f"thread {t} snapshot {snap} != {model.d}"
                items = {key: value for key, value in m.items() if key in mine}
                assert items == model.d, f"thread {t} items() {items} != {model.d}"
                keys = {key for key in m if key in mine}
                assert keys == set(model.d), f"thread {t} iter() {keys} != {set(model.d)}"
                seen: dict = {}
                m.range(lambda key, value: seen.__setitem__(key, value) if key in mine else None)
                assert seen == model.d, f"thread {t} range() {seen} != {model.d}"
        final = {key: value for key, value in m.snapshot().items() if key in mine}
        assert final == model.d, f"thread {t} final {final} != {model.d}"

    run_threads([partial(worker, t) for t in range(threads)])
    check_no_evictions(m)


# -- stats: every read counted exactly --------------------------------------------------------


def stats_exact(make: Factory, *, threads: int = THREADS, ops: int | None = None, seed: int = 0) -> None:
    """With stats on, get() and m[k] from reader threads count exactly one hit or miss each,
    while writer threads churn other keys; stats() taken meanwhile never goes backwards."""
    ops = ops or scaled(2500)
    present = {("here", i): i for i in range(16)}
    present_keys = list(present)
    absent = [("never", i) for i in range(16)]
    m = make(present)
    n_writers = max(1, threads // 3)
    n_readers = threads - n_writers
    reads = [[0, 0] for _ in range(n_readers)]  # reader -> [hits, misses]; only it writes its own
    readers_done = Countdown(n_readers)

    def writer(t: int) -> None:
        # Only writes that take no read path (a fast-path get would count).
        for j in range(LOOP_CAP):
            if readers_done.is_set():
                return
            key = ("churn", t, j % 8)
            m[key] = j
            if j % 3 == 0:
                m.pop(("churn", t, (j + 4) % 8), None)
            if j % 5 == 0:
                m.swap(key, -j)
            if j % 50 == 0:
                last = m.stats()
                assert last["enabled"] is True

    def reader(r: int) -> None:
        rng = random.Random(f"{seed}:stats:{r}")
        try:
            last = (0, 0)
            for j in range(ops):
                hit = rng.random() < 0.5
                key = rng.choice(present_keys) if hit else rng.choice(absent)
                if j % 2:
                    assert m.get(key) == present.get(key)
                elif hit:
                    assert m[key] == present[key]
                else:
                    try:
                        m[key]
                    except KeyError:
                        pass
                    else:
                        raise AssertionError(f"m[{key!r}] found a key never stored")
                reads[r][not hit] += 1
                if j % 64 == 0:
                    s = m.stats()
                    now = (s["hits"], s["misses"])
                    assert now[0] >= last[0] and now[1] >= last[1], f"stats went back: {last} -> {now}"
                    last = now
        finally:
            readers_done.done()

    run_threads(
        [partial(writer, t) for t in range(n_writers)] + [partial(reader, r) for r in range(n_readers)],
        stop=readers_done.event,
    )
    s = m.stats()
    want = (sum(h for h, _ in reads), sum(x for _, x in reads))
    assert (s["hits"], s["misses"]) == want, f"stats count (hits, misses) = {(s['hits'], s['misses'])}, made {want}"
    assert s["size"] == len(m)
    check_no_evictions(m)


# -- RWLock: consistent multi-field state, exact write counts --------------------------------


def rwlock_state(*, threads: int = THREADS, ops: int | None = None, seed: int = 0) -> None:
    """Writers update three fields under the write lock (plain, nested, try_, timed); readers
    under the read lock always see them consistent and never going back; the count is exact."""
    ops = ops or scaled(2500)
    lock = RWLock()
    state = [0, 0, 0]  # [n, 2n, 3n]; written only under the write lock
    n_writers = max(1, threads // 2)
    n_readers = max(1, threads - n_writers)
    wrote = [0] * n_writers  # successful increments per writer; only it writes its own

    def bump() -> None:
        n = state[0] + 1
        state[0] = n
        spin()  # a reader let in now would see n without 2n
        state[1] = 2 * n
        spin()
        state[2] = 3 * n

    def read_fields() -> list:
        seen = []
        for i in range(3):  # one field at a time, as a reader of several fields does
            seen.append(state[i])
            spin(4)
        return seen

    def check(seen: list, who: str) -> int:
        n, two, three = seen
        assert two == 2 * n and three == 3 * n, f"{who} saw a half-done write: {seen}"
        return n

    def writer(t: int) -> None:
        rng = random.Random(f"{seed}:rw-writer:{t}")
        for _ in range(ops):
            kind = rng.randrange(5)
            if kind == 0:
                with lock.write():
                    bump()
            elif kind == 1:  # reentrant, and a writer may read too
                lock.acquire_write()
                try:
                    with lock.write():
                        bump()
                    with lock.read():
                        check(read_fields(), "a writer holding the read lock too")
                finally:
                    lock.release_write()
            elif kind == 2:
                if not lock.try_acquire_write():
                    continue
                try:
                    bump()
                finally:
                    lock.release_write()
            elif kind == 3:
                if not lock.acquire_write(timeout=0.001):
                    continue
                try:
                    bump()
                finally:
                    lock.release_write()
            else:
                lock.acquire_write()
                try:
                    bump()
                finally:
                    lock.release_write()
            wrote[t] += 1

    def reader(r: int) -> None:
        rng = random.Random(f"{seed}:rw-reader:{r}")
        last = 0
        for _ in range(ops):
            kind = rng.randrange(4)
            if kind == 2 and not lock.try_acquire_read():
                continue
            if kind == 3 and not lock.acquire_read(timeout=0.001):
                continue
            if kind < 2:
                lock.acquire_read()
            try:
                first = read_fields()
                if kind == 1:
                    with lock.read():  # reentrant, even while a writer waits
                        spin()
                again = read_fields()
            finally:
                lock.release_read()
            n = check(first, f"reader {r}")
            assert again == first, f"reader {r}: state changed under the read lock: {first} -> {again}"
            assert n >= last, f"reader {r}: the count went back from {last} to {n}"
            last = n

    run_threads([partial(writer, t) for t in range(n_writers)] + [partial(reader, r) for r in range(n_readers)])
    assert state == [sum(wrote), 2 * sum(wrote), 3 * sum(wrote)], f"{state} after {sum(wrote)} writes"
    # Nothing leaked: with every worker gone, this thread takes each side at once.
    assert lock.try_acquire_write(), "write lock still held after every thread finished"
    lock.release_write()
    assert lock.try_acquire_read()
    lock.release_read()


# -- LockedMap: multi-key transactions seen all at once ----------------------------------------


def locked_transactions(make: Factory, *, threads: int = THREADS, ops: int | None = None, seed: int = 0) -> None:
    """Transfers between accounts in ``with m.write() as d:`` blocks keep the total constant in
    every read() view, snapshot(), items() and copy(); per-account balances come out exact."""
    ops = ops or scaled(1000)
    accounts = [("acct", i) for i in range(8)]
    total = 1000 * len(accounts)
    m = make(dict.fromkeys(accounts, 1000))
    assert isinstance(m, LockedMap), "locked_transactions needs a LockedMap"
    n_movers = max(2, threads // 2)
    n_checkers = max(1, threads - n_movers)
    nets = [Counter() for _ in range(n_movers)]  # per mover: account -> net change; only it writes its own
    movers_done = Countdown(n_movers)

    def mover(t: int) -> None:
        rng = random.Random(f"{seed}:tx:{t}")
        try:
            for _ in range(ops):
                a, b = rng.sample(accounts, 2)
                amount = rng.randrange(1, 50)
                kind = rng.randrange(4)
                with m.write() as d:
                    if kind == 0:
                        d[a] -= amount
                        spin()  # a reader let in now would see the money missing
                        d[b] += amount
                    elif kind == 1:  # nested write block
                        d[a] -= amount
                        with m.write() as inner:
                            inner[b] += amount
                    elif kind == 2:  # the map's own methods inside the block
                        m.merge(a, -amount, operator.add)
                        spin()
                        m.compute(b, lambda k, old: old + amount)
                    else:  # a block also sees a consistent state
                        seen = sum(d.values())
                        assert seen == total, f"a write block saw total {seen}"
                        m[a] = d[a] - amount
                        d[b] = m[b] + amount
                nets[t][a] -= amount
                nets[t][b] += amount
        finally:
            movers_done.done()

    def checker(c: int) -> None:
        for n in range(LOOP_CAP):
            if movers_done.is_set():
                return
            kind = (c + n) % 4
            if kind == 0:
                with m.read() as view:
                    first = sum(view.values())
                    spin()
                    second = sum(view[a] for a in accounts)
                assert first == second == total, f"read() view totals {first}, {second}"
            elif kind == 1:
                seen = sum(m.snapshot().values())
                assert seen == total, f"snapshot() total {seen}"
            elif kind == 2:
                seen = sum(v for _, v in m.items())
                assert seen == total, f"items() total {seen}"
            else:
                seen = sum(m.copy().values())
                assert seen == total, f"copy() total {seen}"

    run_threads(
        [partial(mover, t) for t in range(n_movers)] + [partial(checker, c) for c in range(n_checkers)],
        stop=movers_done.event,
    )
    net: Counter = Counter()
    for per in nets:
        net.update(per)  # not sum(): Counter addition drops the negative balances
    assert m.snapshot() == {a: 1000 + net[a] for a in accounts}


# -- registry, for the runner --------------------------------------------------------------------

# name -> (scenario, the MAPS it runs on; None for a scenario without a map)
SCENARIOS: dict[str, tuple[Callable[..., None], tuple[str, ...] | None]] = {
    **{f"counters-{how}": (partial(counters, how=how), tuple(MAPS)) for how in (*INCREMENT_METHODS[:3], "mixed")},
    "compute-if-absent-once": (compute_if_absent_once, tuple(MAPS)),
    "iteration": (iteration, tuple(MAPS)),
    "swap-handoff": (swap_handoff, tuple(MAPS)),
    "first-writer-wins": (first_writer_wins, tuple(MAPS)),
    "conservation": (conservation, tuple(MAPS)),
    "disjoint-keys": (disjoint_keys, tuple(MAPS)),
    "stats-exact": (stats_exact, STATS_MAPS),
    "locked-transactions": (locked_transactions, LOCKED_MAPS),
    "rwlock-state": (rwlock_state, None),
}
