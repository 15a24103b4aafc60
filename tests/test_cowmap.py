"""CopyOnWriteMap: a model against a plain dict, versions never torn, update_with never losing an update."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from types import MappingProxyType

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from test_maps_concurrency import JOIN_TIMEOUT, run_threads

from mapsafe.cowmap import CopyOnWriteMap
from mapsafe.errors import RecursiveUpdateError

THREADS = 4
INCREMENTS = 300  # per thread
WRITES = 3000  # per writer, in the torn-version test


# Thread switches every few bytecodes, so races show up under the GIL too.
pytestmark = pytest.mark.usefixtures("frequent_switches")


# -- model-based ---------------------------------------------------------------------------

KEYS = st.sampled_from([0, 1, 2, 3, "a", "b"])
STR_KEYS = st.sampled_from(["a", "b", "c"])
VALUES = st.one_of(st.integers(0, 3), st.none())
MAPPINGS = st.dictionaries(KEYS, VALUES, max_size=4)


def same(a, b):
    """Equal and of the same type: 0 must not pass for None or False."""
    return type(a) is type(b) and a == b


class Boom(Exception):
    pass


class CopyOnWriteMapMachine(RuleBasedStateMachine):
    """Every operation on a CopyOnWriteMap and on a dict; old snapshots must never change."""

    def __init__(self):
        super().__init__()
        self.m = CopyOnWriteMap()
        self.model = {}
        self.kept = []  # (snapshot, the dict it equalled when taken)

    @rule(k=KEYS, v=VALUES)
    def setitem(self, k, v):
        self.m[k] = v
        self.model[k] = v

    @rule(k=KEYS)
    def delitem(self, k):
        if k in self.model:
            del self.m[k]
            del self.model[k]
        else:
            with pytest.raises(KeyError) as err:
                del self.m[k]
            assert err.value.args == (k,)

    @rule(k=KEYS, default=VALUES, with_default=st.booleans())
    def pop(self, k, default, with_default):
        if with_default:
            assert same(self.m.pop(k, default), self.model.pop(k, default))
        elif k in self.model:
            assert same(self.m.pop(k), self.model.pop(k))
        else:
            with pytest.raises(KeyError) as err:
                self.m.pop(k)
            assert err.value.args == (k,)

    @rule()
    def popitem(self):
        if not self.model:
            with pytest.raises(KeyError, match="CopyOnWriteMap is empty"):
                self.m.popitem()
            return
        assert self.m.popitem() == self.model.popitem()  # LIFO, like dict

    @rule(k=KEYS, v=VALUES)
    def setdefault(self, k, v):
        assert same(self.m.setdefault(k, v), self.model.setdefault(k, v))

    @rule(mapping=MAPPINGS, kwargs=st.dictionaries(STR_KEYS, VALUES, max_size=2), as_pairs=st.booleans())
    def update(self, mapping, kwargs, as_pairs):
        self.m.update(list(mapping.items()) if as_pairs else mapping, **kwargs)
        self.model.update(mapping, **kwargs)

    @rule()
    def clear(self):
        self.m.clear()
        self.model.clear()

    @rule(k=KEYS, v=VALUES, how=st.sampled_from(["mutate", "return-new", "return-draft", "raise"]))
    def update_with(self, k, v, how):
        before = self.m.snapshot()
        calls = []

        def fn(d):
            calls.append(dict(d))
            if how == "raise":
                d[k] = v  # a change that must not be published
                raise Boom
            if how == "return-new":
                return {**d, k: v, "n": len(d)}
            d[k] = v
            return d if how == "return-draft" else None

        if how == "raise":
            with pytest.raises(Boom):
                self.m.update_with(fn)
            assert self.m.snapshot() is before  # unchanged: not even a new, equal version
            assert calls == [self.model]
            return
        expected = {**self.model, k: v, "n": len(self.model)} if how == "return-new" else {**self.model, k: v}
        version = self.m.update_with(fn)
        assert calls == [self.model]  # no contention here: one call, on the current version
        self.model = expected
        assert version is self.m.snapshot() and version == expected

    @rule(k=KEYS, default=VALUES)
    def reads(self, k, default):
        assert same(self.m.get(k), self.model.get(k))
        assert same(self.m.get(k, default), self.model.get(k, default))
        assert (k in self.m) is (k in self.model)
        if k in self.model:
            assert same(self.m[k], self.model[k])
        else:
            with pytest.raises(KeyError) as err:
                self.m[k]
            assert err.value.args == (k,)

    @rule(k=KEYS)
    def views(self, k):
        assert list(self.m) == list(self.model)
        assert list(reversed(self.m)) == list(reversed(self.model))
        assert list(self.m.keys()) == list(self.model.keys())
        assert list(self.m.items()) == list(self.model.items())
        assert list(self.m.values()) == list(self.model.values())
        assert len(self.m.items()) == len(self.model)
        assert ((k, self.model.get(k)) in self.m.items()) is (k in self.model)
        assert self.m == self.model and self.model == self.m and self.m == CopyOnWriteMap(self.model)
        other = dict(self.model)
        other[k] = "different"
        assert self.m != other
        assert repr(self.m) == f"CopyOnWriteMap({self.model!r})"

    @rule()
    def keep_snapshot(self):
        snap = self.m.snapshot()
        assert type(snap) is MappingProxyType and snap == self.model
        with pytest.raises(TypeError):
            snap["x"] = 1  # read-only
        self.kept.append((snap, dict(self.model)))

    @rule(how=st.sampled_from(["copy", "copy.copy", "copy.deepcopy", "pickle", "constructor"]), k=KEYS)
    def clones_are_equal_and_independent(self, how, k):
        clone = {
            "copy": lambda m: m.copy(),
            "copy.copy": copy.copy,
            "copy.deepcopy": copy.deepcopy,
            "pickle": lambda m: pickle.loads(pickle.dumps(m)),
            "constructor": CopyOnWriteMap,
        }[how](self.m)
        assert type(clone) is CopyOnWriteMap and clone is not self.m and clone == self.model
        clone[k] = "only-in-clone"
        assert self.m == self.model
        self.m[k] = "only-in-original"
        self.model[k] = "only-in-original"
        assert clone[k] == "only-in-clone"

    @invariant()
    def equals_model_and_old_snapshots_never_change(self):
        assert dict(self.m.snapshot()) == self.model and len(self.m) == len(self.model)
        for snap, content in self.kept:
            assert dict(snap) == content


TestCopyOnWriteMapModel = CopyOnWriteMapMachine.TestCase
TestCopyOnWriteMapModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None, database=None)


# -- concurrency: exact counts, no torn versions ------------------------------------------


def test_update_with_never_loses_an_increment():
    m = CopyOnWriteMap(n=0, other="kept")
    calls = []

    def bump(d):
        calls.append(1)  # list.append is atomic; counts retries too
        d["n"] += 1

    def worker():
        for _ in range(INCREMENTS):
            m.update_with(bump)

    run_threads(*(worker for _ in range(THREADS)))
    assert m.snapshot() == {"n": THREADS * INCREMENTS, "other": "kept"}
    assert len(calls) >= THREADS * INCREMENTS  # one per publish, plus one per retry


def test_plain_writes_are_never_lost():
    # Each thread writes its own keys and pops each one WINDOW writes later:
    # a write lost to another thread's publish fails that pop.
    m = CopyOnWriteMap(shared=0)
    window = 5

    def worker(t):
        def run():
            for i in range(WRITES):
                how = i % 3
                if how == 0:
                    m[(t, i)] = i
                elif how == 1:
                    m.update({(t, i): i, (t, "last"): i})
                else:
                    assert m.setdefault((t, i), i) == i
                if i >= window:
                    assert m.pop((t, i - window)) == i - window, f"write {(t, i - window)} was lost"

        return run

    run_threads(*(worker(t) for t in range(THREADS)))
    expected = {(t, i): i for t in range(THREADS) for i in range(WRITES - window, WRITES)}
    expected.update({(t, "last"): max(i for i in range(WRITES) if i % 3 == 1) for t in range(THREADS)})
    assert m.snapshot() == {"shared": 0, **expected}


def test_readers_of_a_snapshot_never_see_a_torn_version():
    # Every version keeps a + b == 0 and c == a; readers check one version exactly.
    m = CopyOnWriteMap(a=0, b=0, c=0, **{f"pad{i}": i for i in range(50)})  # a copy takes a while
    done = threading.Event()
    reads = []

    def shift(d):
        d["a"] += 1
        d["b"] -= 1
        d["c"] = d["a"]

    def writer(use_update_with):
        def run():
            for i in range(WRITES):
                if use_update_with:
                    m.update_with(shift)
                else:
                    n = -i - 1  # a separate sign, so plain updates and update_with mix
                    m.update(a=n, b=-n, c=n)

        return run

    def writers():
        try:
            run_threads(writer(True), writer(False))
        finally:
            done.set()

    def snapshot_reader():
        for _ in range(10_000_000):  # bounded; ends when the writers do
            if done.is_set():
                break
            snap = m.snapshot()
            assert snap["a"] + snap["b"] == 0 and snap["c"] == snap["a"], dict(snap)
            reads.append(1)

    def walking_reader():
        for _ in range(1_000_000):
            if done.is_set():
                break
            walked = dict(m.items())  # one version per walk, too
            assert walked["a"] + walked["b"] == 0 and walked["c"] == walked["a"], walked

    run_threads(writers, snapshot_reader, walking_reader)
    assert reads
    final = m.snapshot()
    assert final["a"] + final["b"] == 0 and final["c"] == final["a"]


def test_iteration_walks_the_version_current_when_it_starts():
    m = CopyOnWriteMap({k: k for k in range(5)})
    it = iter(m)
    items = iter(m.items())
    assert next(it) == 0 and next(items) == (0, 0)
    m.clear()
    m["new"] = 1  # a dict would raise "changed size during iteration"
    assert list(it) == [1, 2, 3, 4] and list(items) == [(k, k) for k in range(1, 5)]
    assert dict(m) == {"new": 1}


# -- update_with's contract -----------------------------------------------------------------


def test_update_with_runs_again_when_another_write_published_first():
    m = CopyOnWriteMap(n=0)
    seen = []

    def fn(d):
        seen.append(d["n"])
        if len(seen) == 1:
            writer = threading.Thread(target=m.__setitem__, args=("n", 10))  # publishes before fn returns
            writer.start()
            writer.join(30)
            assert not writer.is_alive()
        d["n"] += 1

    version = m.update_with(fn)
    assert seen == [0, 10]  # the first result (1) was stale and not published
    assert version == {"n": 11} and m.snapshot() is version


def test_update_with_refuses_a_fn_that_writes_the_same_map():
    # Regression guard: each such write would make update_with retry, forever.
    m = CopyOnWriteMap(a=1)
    before = m.snapshot()

    for write in (lambda: m.__setitem__("x", 1), lambda: m.update_with(lambda d: None), m.clear):
        raised = []

        def attempt(write=write):
            try:
                m.update_with(lambda d: write())
            except RecursiveUpdateError as exc:
                raised.append(exc)

        t = threading.Thread(target=attempt, daemon=True)  # in a thread: the bug it guards against hangs
        t.start()
        t.join(JOIN_TIMEOUT)
        assert not t.is_alive() and len(raised) == 1
        assert m.snapshot() is before

    other = CopyOnWriteMap()
    m.update_with(lambda d: other.__setitem__("y", d["a"]))  # another map is fine
    assert other == {"y": 1}
    m["after"] = 2  # and this thread may write again once fn has returned
    assert m == {"a": 1, "after": 2}


def test_bad_arguments_name_the_argument_and_publish_nothing():
    m = CopyOnWriteMap(a=1)
    before = m.snapshot()
    with pytest.raises(TypeError, match="fn must be callable"):
        m.update_with("nope")
    with pytest.raises(TypeError, match="fn must return None or a Mapping, got list"):
        m.update_with(lambda d: [("a", 2)])
    with pytest.raises(ValueError, match="length 1"):
        m.update(["x"])
    with pytest.raises(TypeError, match="unhashable"):
        m.update([("fine", 1), ([], 1)])  # every key is checked before anything changes
    with pytest.raises(TypeError, match="unhashable"):
        m[[]] = 1
    assert m.snapshot() is before and dict(before) == {"a": 1}


def test_snapshot_is_free_read_only_and_never_changes():
    m = CopyOnWriteMap(a=1)
    snap = m.snapshot()
    assert m.snapshot() is snap  # no write, same version: nothing copied
    with pytest.raises(TypeError):
        snap["a"] = 2
    m["a"] = 2
    assert snap == {"a": 1} and m.snapshot() == {"a": 2} and m.snapshot() is not snap
    assert m.copy().snapshot() is m.snapshot()  # copy() shares the immutable version


# -- fork --------------------------------------------------------------------------------------

FORK = textwrap.dedent(
    """
    import os, threading
    from mapsafe.cowmap import CopyOnWriteMap

    m = CopyOnWriteMap(a=1)
    inside, holding, release = threading.Event(), threading.Event(), threading.Event()

    def slow(d):
        inside.set()
        release.wait(30)
        d["slow"] = 1

    def hold():
        with m._lock:  # another thread is inside the writers' critical section at the fork
            holding.set()
            release.wait(30)

    threads = [threading.Thread(target=m.update_with, args=(slow,), daemon=True),
               threading.Thread(target=hold, daemon=True)]
    for t in threads:
        t.start()
    assert inside.wait(30) and holding.wait(30)
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            m["b"] = 2
            m.update_with(lambda d: d.update(c=3))
            ok = m == {"a": 1, "b": 2, "c": 3}
        except BaseException as exc:
            print("child:", repr(exc))
        os._exit(0 if ok else 1)
    release.set()
    for t in threads:
        t.join(30)
    _, status = os.waitpid(pid, 0)
    print(os.WEXITSTATUS(status), sorted(m))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_can_write_while_the_parents_thread_held_the_writer_lock():
    r = subprocess.run([sys.executable, "-c", FORK], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert r.stdout.split() == ["0", "['a',", "'slow']"], r.stdout + r.stderr[-2000:]
