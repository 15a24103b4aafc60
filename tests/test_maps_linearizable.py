"""Linearizability: short concurrent histories on every map, checked against a dict by _linearize."""

from __future__ import annotations

import operator
import os
import random
import sys
import threading
import time
from collections import Counter
from time import perf_counter_ns
from typing import Any, Callable, NamedTuple

import pytest
from _linearize import Const, Op, Raised, bump, check, outcome, perform, same, split_updates

import mapsafe
from mapsafe import MISSING, LockedMap, ShardedMap, SyncMap

JOIN_TIMEOUT = 60.0  # seconds; only reached when something hangs
CHAOS_RATE = 0.02  # chance that a line of mapsafe code run by a worker pauses first
CHAOS_PAUSE = 1e-5  # seconds; any sleep hands over the GIL
MAPSAFE_DIR = os.path.dirname(mapsafe.__file__) + os.sep  # the package, for the tracers

# Few keys, so that ops keep meeting on the same key. Ints hash to
# themselves: in ShardedMap(shards=2), 0 and 2 share a shard and 1 is alone.
KEYS = (0, 1, 2)
VALUES = (0, 1, 2, 3)  # small, so compare-and-* ops sometimes match
ABSENT = -1  # the default passed to get/pop: never a stored value
MAXSIZE = 1024  # ShardedMap(maxsize=) big enough never to evict 3 keys, in any shard


class Config(NamedTuple):
    """A map configuration and which whole-map operations it documents as atomic."""

    make: Callable[[dict], Any]
    atomic_update: bool  # update() of several keys is one step; else each pair is its own
    atomic_len: bool  # len() counts the map at one instant; else it is left out


# ShardedMap's update() holds every shard it touches, so it is atomic for
# other writers but a lock-free reader may see it half done: its updates are
# checked as one store per pair (split_updates). Its len() counts holding
# every shard (approx_len() does not, and is not checked), and its
# snapshot() is point-in-time: both are checked whole.
MAPS = {
    "SyncMap": Config(lambda initial: SyncMap(initial), True, True),
    "SyncMap-stats": Config(lambda initial: SyncMap(initial, stats=True), True, True),
    "LockedMap": Config(lambda initial: LockedMap(initial), True, True),
    "LockedMap-stats": Config(lambda initial: LockedMap(initial, stats=True), True, True),
    "ShardedMap-2shards": Config(lambda initial: ShardedMap(initial, shards=2), False, True),
    "ShardedMap-maxsize": Config(lambda initial: ShardedMap(initial, maxsize=MAXSIZE), False, True),
}

# Histories per map, and their shape: threads x ops per thread.
SINGLE_KEY_ROUNDS, SINGLE_KEY_SHAPE = 250, (4, 10)  # checked one key at a time
WHOLE_MAP_ROUNDS, WHOLE_MAP_SHAPE = 100, (3, 6)  # with len/snapshot/update: checked whole
WHOLE_MAP_SHARE = 0.35  # of the ops in those
CROSS_CHECKS = 5  # single-key histories per map also checked whole, to cross-check the partitioning

# Histories checked, by (map, kind), filled in as the tests pass. The
# "overlapping" kinds count histories in which some op was called before
# another one (of another thread) had returned: a measure of how concurrent
# the recorded histories were, never a pass criterion.
HISTORIES_CHECKED: Counter = Counter()


# -- random scripts ------------------------------------------------------------------------------

# op name -> its arguments, from a key, a value and the rng.
SINGLE_KEY_OPS: dict[str, Callable[[Any, Any, random.Random], tuple]] = {
    "get": lambda k, v, rng: rng.choice([(k,), (k, ABSENT)]),
    "__getitem__": lambda k, v, rng: (k,),
    "__setitem__": lambda k, v, rng: (k, v),
    "__delitem__": lambda k, v, rng: (k,),
    "__contains__": lambda k, v, rng: (k,),
    "pop": lambda k, v, rng: rng.choice([(k,), (k, ABSENT)]),
    "setdefault": lambda k, v, rng: (k, v),
    "load": lambda k, v, rng: (k,),
    "store": lambda k, v, rng: (k, v),
    "delete": lambda k, v, rng: (k,),
    "load_or_store": lambda k, v, rng: (k, v),
    "load_and_delete": lambda k, v, rng: (k,),
    "swap": lambda k, v, rng: (k, v),
    "compare_and_swap": lambda k, v, rng: (k, v, rng.choice(VALUES)),
    "compare_and_delete": lambda k, v, rng: (k, v),
    "compute_if_absent": lambda k, v, rng: (k, Const(v)),
    "compute_if_present": lambda k, v, rng: (k, bump),
    "compute": lambda k, v, rng: (k, bump),
    "merge": lambda k, v, rng: (k, 1, operator.add),
}


def single_key_op(rng: random.Random) -> tuple[str, tuple]:
    name = rng.choice(list(SINGLE_KEY_OPS))
    return name, SINGLE_KEY_OPS[name](rng.choice(KEYS), rng.choice(VALUES), rng)


def whole_map_op(rng: random.Random, config: Config) -> tuple[str, tuple]:
    name = rng.choice(["snapshot", "update"] + (["__len__"] if config.atomic_len else []))
    if name == "update":
        a, b = rng.sample(KEYS, 2)
        return name, ({a: rng.choice(VALUES), b: rng.choice(VALUES)},)
    return name, ()


def script_round(seed: str, config: Config, shape: tuple[int, int], whole_map_share: float):
    """(initial contents, one script of (op name, args) per thread), all from ``seed``."""
    rng = random.Random(seed)
    threads, ops = shape
    initial = {k: rng.choice(VALUES) for k in KEYS if rng.random() < 0.5}
    scripts = [
        [whole_map_op(rng, config) if rng.random() < whole_map_share else single_key_op(rng) for _ in range(ops)]
        for _ in range(threads)
    ]
    return initial, scripts


# -- recording ---------------------------------------------------------------------------------


class Chaos:
    """A trace function that now and then sleeps between two lines of the maps' own Python code.

    Under the GIL a thread runs tens of microseconds between switches, as
    long as a few whole map operations, so without help another thread
    rarely runs in the middle of one (between a lock-free read and the
    locked re-check, say). A short sleep hands the interpreter over right
    there. Code in C (the C core's hot paths, locks, dict methods) runs
    as it is.
    """

    def __init__(self, seed: str) -> None:
        self.rng = random.Random(seed)  # which lines pause: reproducible per thread, unlike timing

    def __call__(self, frame: Any, event: str, arg: Any) -> Any:
        # Called for each new frame; line events are only wanted in mapsafe's own.
        return self.line if frame.f_code.co_filename.startswith(MAPSAFE_DIR) else None

    def line(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and self.rng.random() < CHAOS_RATE:
            time.sleep(CHAOS_PAUSE)
        return self.line


def record(make: Callable[[dict], Any], rounds: list, chaos: bool = True, seed: str = "") -> list:
    """Run each round's scripts on a fresh ``make(initial)``; its (initial, history) each.

    One thread per script, kept for all rounds (new threads per round would
    cost more than the checking), started together by a barrier each round.
    With ``chaos``, each thread runs under a Chaos tracer seeded from ``seed``.
    """
    threads = len(rounds[0][1])
    start = threading.Barrier(threads + 1, timeout=JOIN_TIMEOUT)
    done = threading.Barrier(threads + 1, timeout=JOIN_TIMEOUT)
    current: list[Any] = [None]  # the round's map; set by this thread before `start`
    logs: list[list[Op]] = [[] for _ in range(threads)]  # written by worker t between the barriers
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        old_trace = sys.gettrace()
        if chaos:
            sys.settrace(Chaos(f"{seed}/thread {t}"))
        try:
            for _, scripts in rounds:
                start.wait()
                m, log = current[0], []
                for name, args in scripts[t]:
                    call = perf_counter_ns()
                    result = outcome(perform, m, name, args)
                    ret = perf_counter_ns()
                    log.append(Op(t, name, args, result, call, ret))
                logs[t] = log
                done.wait()
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)
            start.abort()
            done.abort()
        finally:
            sys.settrace(old_trace)

    workers = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    histories = []
    try:
        for initial, _ in rounds:
            current[0] = make(dict(initial))
            start.wait()
            done.wait()
            histories.append((initial, [op for log in logs for op in log]))
    except threading.BrokenBarrierError:
        if errors:
            raise errors[0] from None
        raise AssertionError(f"round {len(histories)} did not finish in {JOIN_TIMEOUT}s (deadlock?)") from None
    finally:
        # After the last round this changes nothing; after an error here
        # (make() raised, say) it frees workers waiting at a barrier.
        start.abort()
        done.abort()
        for w in workers:
            w.join(JOIN_TIMEOUT)
    assert not any(w.is_alive() for w in workers), "a worker is stuck (deadlock?)"
    return histories


def overlapping(history: list[Op]) -> bool:
    """Was some op called before an op of another thread had returned?"""
    ops = sorted(history, key=operator.attrgetter("call"))
    return any(a.thread != b.thread and b.call < a.ret for i, a in enumerate(ops) for b in ops[i + 1:])


def check_all(name: str, kind: str, shape: tuple[int, int], rounds: int, whole_map_share: float) -> None:
    config = MAPS[name]
    scripts = [script_round(f"{name}/{kind}/{i}", config, shape, whole_map_share) for i in range(rounds)]
    checked = concurrent = 0
    for i, (initial, history) in enumerate(record(config.make, scripts, seed=f"{name}/{kind}")):
        if not config.atomic_update:
            history = split_updates(history)
        verdict = check(history, initial)
        assert verdict.ok, f"{name}, {kind} round {i}, starting from {initial}:\n{verdict.explain()}"
        if kind == "single-key" and i < CROSS_CHECKS:
            assert check(history, initial, partition=False).ok, "checked whole, it is not linearizable"
        checked += 1
        concurrent += overlapping(history)
    assert checked == rounds
    HISTORIES_CHECKED[name, kind] = checked
    HISTORIES_CHECKED[name, kind + " overlapping"] = concurrent


# -- the maps --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("frequent_switches")
@pytest.mark.parametrize("name", sorted(MAPS))
def test_single_key_histories_are_linearizable(name):
    check_all(name, "single-key", SINGLE_KEY_SHAPE, SINGLE_KEY_ROUNDS, 0.0)


@pytest.mark.usefixtures("frequent_switches")
@pytest.mark.parametrize("name", sorted(MAPS))
def test_whole_map_histories_are_linearizable(name):
    check_all(name, "whole-map", WHOLE_MAP_SHAPE, WHOLE_MAP_ROUNDS, WHOLE_MAP_SHARE)


@pytest.mark.parametrize("name", sorted(MAPS))
def test_sequential_histories_match_the_model_exactly(name):
    # One thread: the only order is program order, so this checks the
    # model itself (every op, len and a multi-key update included) against
    # each map's sequential behaviour.
    config = MAPS[name]._replace(atomic_len=True)
    rounds = [script_round(f"{name}/sequential/{i}", config, (1, 60), 0.2) for i in range(5)]
    for initial, history in record(config.make, rounds, chaos=False):
        verdict = check(history, initial)
        assert verdict.ok, verdict.explain()


# -- the checker: it must say no to what is not linearizable ------------------------------------


def test_a_read_of_a_value_written_after_it_returned_is_rejected():
    read_first = Op(0, "get", (0,), 5, 0, 10)
    write_later = Op(1, "__setitem__", (0, 5), None, 20, 30)
    verdict = check([read_first, write_later])
    assert not verdict.ok
    assert verdict.failing == [read_first, write_later]


def test_a_read_overlapping_the_write_it_saw_is_accepted():
    read = Op(0, "get", (0,), 5, 0, 10)
    write = Op(1, "__setitem__", (0, 5), None, 5, 30)  # called later, but may take effect first
    verdict = check([read, write])
    assert verdict.ok
    assert verdict.orders == [[write, read]]


def test_a_lost_merge_update_is_rejected():
    first = Op(0, "merge", (0, 1, operator.add), 1, 0, 10)
    second = Op(1, "merge", (0, 1, operator.add), 1, 5, 15)  # should have seen the first: 2
    assert not check([first, second])
    # Results that agree with one order, but a later read that shows one increment.
    counted = [first, second._replace(result=2), Op(2, "get", (0,), 1, 20, 30)]
    assert not check(counted)
    assert check(counted[:2])


def test_a_read_between_two_sequential_writes_cannot_see_the_first_after_the_second():
    history = [
        Op(0, "__setitem__", (0, 1), None, 0, 10),
        Op(0, "__setitem__", (0, 2), None, 20, 30),
        Op(1, "get", (0,), 2, 5, 40),  # overlaps both: may see 2
        Op(1, "get", (0,), 1, 50, 60),  # starts after both returned: must see 2
    ]
    assert check(history[:3])
    assert not check(history)


def test_an_order_that_needs_a_later_call_first_is_found():
    # Thread 0 calls first, but its result needs thread 1's store, and
    # thread 2's swap must come between them.
    cas = Op(0, "compare_and_swap", (0, 7, 8), True, 0, 100)
    store = Op(1, "store", (0, 6), None, 10, 20)
    swap = Op(2, "swap", (0, 7), (6, True), 30, 40)
    read = Op(3, "load", (0,), (8, True), 110, 120)
    verdict = check([cas, store, swap, read])
    assert verdict.ok
    assert verdict.orders == [[store, swap, cas, read]]
    assert not check([cas, store, swap._replace(result=(None, False)), read])


def test_exceptions_must_be_explained_by_the_model():
    absent = Op(0, "pop", (0,), Raised(KeyError), 0, 10)
    assert not check([absent], {0: 1})
    assert check([absent, Op(1, "__delitem__", (0,), None, 5, 8)], {0: 1})
    assert not check([Op(0, "__delitem__", (0,), Raised(KeyError), 0, 10)], {0: 1})
    assert not check([Op(0, "get", (0,), Raised(TypeError), 0, 10)])  # no op may raise that here


def test_results_must_match_in_type_not_just_value():
    assert same((1, True), (1, True)) and not same((1, True), (1, 1)) and not same(0, False)
    assert not check([Op(0, "get", (0,), True, 0, 10)], {0: 1})
    assert not check([Op(0, "load", (0,), (None, 0), 0, 10)])
    assert check([Op(0, "load", (0,), (None, False), 0, 10)])


def test_the_compute_family_follows_the_documented_semantics():
    history = [
        Op(0, "compute", (0, bump), 1, 0, 1),
        Op(0, "compute_if_absent", (0, Const(3)), 1, 2, 3),  # present: the factory is not called
        Op(0, "merge", (0, 2, operator.add), 3, 4, 5),
        Op(0, "compute_if_present", (0, bump), None, 6, 7),  # bump deletes at 3
        Op(0, "compute_if_present", (0, bump), None, 8, 9),  # absent
        Op(0, "compute_if_absent", (0, Const(2)), 2, 10, 11),
        Op(0, "setdefault", (0, 9), 2, 12, 13),
        Op(0, "compare_and_delete", (0, 2), True, 14, 15),
        Op(0, "load_or_store", (0, 3), (3, False), 16, 17),
        Op(0, "load_and_delete", (0,), (3, True), 18, 19),
        Op(0, "pop", (0, ABSENT), ABSENT, 20, 21),
    ]
    assert check(history)
    for i, entry in enumerate(history):
        wrong = history[:i] + [entry._replace(result=MISSING)] + history[i + 1:]
        assert not check(wrong), f"op {i} accepted with a wrong result"
    called_factory = history[1]._replace(result=3)
    assert not check(history[:1] + [called_factory] + history[2:])
    ignored_delete = history[3]._replace(result=4)
    assert not check(history[:3] + [ignored_delete] + history[4:])


def test_a_snapshot_must_be_a_point_in_time_copy():
    writes = [Op(0, "__setitem__", (0, 1), None, 0, 10), Op(0, "__setitem__", (1, 1), None, 20, 30)]
    # Key 1 was stored after key 0 was: no instant has 1 without 0.
    assert not check(writes + [Op(1, "snapshot", (), {1: 1}, 5, 40)])
    assert check(writes + [Op(1, "snapshot", (), {0: 1}, 5, 40)])
    assert check(writes + [Op(1, "snapshot", (), {0: 1, 1: 1}, 5, 40)])


def test_len_must_count_one_instant():
    # What a len() that sums shards one at a time can return: 2, though
    # the map never held two keys (what ShardedMap.approx_len may return).
    history = [
        Op(0, "__delitem__", (0,), None, 0, 10),
        Op(0, "__setitem__", (1, 1), None, 20, 30),
        Op(1, "__len__", (), 2, 0, 40),
    ]
    assert not check(history, {0: 0})
    assert check(history[:2] + [history[2]._replace(result=1)], {0: 0})


def test_updates_are_atomic_unless_split():
    update = Op(0, "update", ({0: 1, 1: 1},), None, 0, 10)
    half_done = Op(1, "snapshot", (), {0: 1}, 2, 8)
    assert not check([update, half_done])
    assert check(split_updates([update, half_done]))
    assert check(split_updates([update, half_done._replace(result={1: 1})]))


def test_partitions_are_checked_separately_and_the_failing_one_is_shown():
    key0 = [Op(0, "__setitem__", (0, 1), None, 0, 10), Op(1, "get", (0,), 1, 5, 15)]
    key1 = [Op(0, "__setitem__", (1, 1), None, 20, 30), Op(1, "get", (1,), 1, 0, 10)]  # reads the future
    verdict = check(key0 + key1)
    assert not verdict.ok
    assert verdict.failing == sorted(key1, key=operator.attrgetter("call"))
    assert not check(key0 + key1, partition=False)
    assert check(key0 + key1[:1])
    # An update of both keys joins them, and a len joins everything.
    assert len(check(key0 + key1[:1]).orders) == 2
    assert len(check(key0 + key1[:1] + [Op(2, "update", ({0: 2, 1: 2},), None, 40, 50)]).orders) == 1
    assert len(check(key0 + key1[:1] + [Op(2, "__len__", (), 2, 40, 50)]).orders) == 1


def test_a_history_with_a_return_before_its_call_is_refused():
    with pytest.raises(ValueError, match="returned before it was called"):
        check([Op(0, "get", (0,), None, 10, 5)])


class LostUpdateMap(dict):
    """A dict whose merge reads, lets another thread's merge run to the end, then writes: the bug."""

    def __init__(self, *args):
        super().__init__(*args)
        self.first_read = threading.Event()
        self.second_done = threading.Event()
        self.lock = threading.Lock()  # guards calls
        self.calls = 0  # merges so far

    def merge(self, key, value, fn):
        with self.lock:
            first = self.calls == 0
            self.calls += 1
        if not first:
            assert self.first_read.wait(JOIN_TIMEOUT)
        old = self.get(key, MISSING)
        if first:
            self.first_read.set()
            assert self.second_done.wait(JOIN_TIMEOUT)
        self[key] = new = value if old is MISSING else fn(old, value)
        if not first:
            self.second_done.set()
        return new


def test_the_recorder_and_checker_catch_a_real_lost_update():
    script = [("merge", (0, 1, operator.add))]
    [(initial, history)] = record(LostUpdateMap, [({}, [script, script])], chaos=False)
    assert sorted(o.result for o in history) == [1, 1]
    verdict = check(history, initial)
    assert not verdict.ok
    assert len(verdict.failing) == 2


# -- regressions --------------------------------------------------------------------------------

STEP_WAIT = 0.25  # seconds a stepped write waits for its observer; only reached if reads block


def observe_each_step(m: Any, write: Callable[[Any], Any], read: Callable[[Any], Any]) -> list:
    """``read(m)`` from this thread at every line of mapsafe code that ``write(m)`` runs in another.

    What a reader could see at each point of the write: deterministic,
    unlike a race. (If ``read`` waits for the writer's lock, the writer
    goes on after STEP_WAIT and the read sees the write finished.)
    """
    paused, resume = threading.Semaphore(0), threading.Semaphore(0)
    finished = threading.Event()

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return step if frame.f_code.co_filename.startswith(MAPSAFE_DIR) else None

    def step(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            paused.release()
            resume.acquire(timeout=STEP_WAIT)
        return step

    def writer() -> None:
        sys.settrace(tracer)
        try:
            write(m)
        finally:
            sys.settrace(None)
            finished.set()
            paused.release()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    seen = []
    for _ in range(10_000):  # far more lines than any write runs
        assert paused.acquire(timeout=JOIN_TIMEOUT), "the write neither stepped nor finished"
        if finished.is_set():
            break
        seen.append(read(m))
        resume.release()
    thread.join(JOIN_TIMEOUT)
    return seen


@pytest.mark.parametrize("stats", [False, True])
def test_syncmap_update_is_seen_all_at_once(stats):
    # Regression: SyncMap.update stored its pairs one by one under the write
    # lock, which lock-free readers (snapshot, len, get) do not take, so they
    # saw it half done ({2: 0, 0: 1} here), though update is documented as
    # atomic on SyncMap. The random whole-map histories found it, rarely.
    before, after = {2: 0}, {2: 0, 0: 1, 1: 1}
    m = SyncMap(before, stats=stats)
    seen = observe_each_step(m, lambda m: m.update({0: 1, 1: 1}), lambda m: (m.snapshot(), len(m)))
    assert m.snapshot() == after
    assert seen, "the update ran no mapsafe Python code to step through"
    assert [s for s in seen if s not in [(before, len(before)), (after, len(after))]] == []
