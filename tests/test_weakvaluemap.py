"""WeakValueMap: a model against a plain dict, call-once get_or_create, and iteration while values die."""

from __future__ import annotations

import copy
import gc
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
from itertools import count

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from test_maps_concurrency import JOIN_TIMEOUT, run_threads

from mapsafe import _loading
from mapsafe._loading import Flight
from mapsafe.errors import RecursiveLoadError
from mapsafe.weakvaluemap import WeakValueMap

THREADS = 8


class Val:
    """A weakly referenceable value that knows the key it was made for."""

    __slots__ = ("key", "n", "cycle", "__weakref__")
    serial = count()

    def __init__(self, key, cyclic=False):
        self.key = key
        self.n = next(Val.serial)
        self.cycle = self if cyclic else None  # collected only by gc.collect()

    def __repr__(self):
        return f"Val({self.key!r}#{self.n})"


# Thread switches every few bytecodes, so races show up under the GIL too.
pytestmark = pytest.mark.usefixtures("frequent_switches")


def wait_until(predicate, what):
    """Poll until ``predicate()`` holds: a synchronisation step, never a pass criterion on time."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for: {what}"
        time.sleep(0.001)


def waiters_on(flight):
    return sum(1 for f in list(_loading._waiting.values()) if f is flight)


def same_entries(m, model):
    """The map's live entries are exactly the model's, value for value (by identity)."""
    snap = m.snapshot()
    return type(snap) is dict and snap.keys() == model.keys() and all(snap[k] is v for k, v in model.items())


# -- model-based ---------------------------------------------------------------------------

KEYS = st.sampled_from([0, 1, 2, 3, "a", "b"])


class WeakValueMapMachine(RuleBasedStateMachine):
    """Every operation on a WeakValueMap and on a dict; the dict keeps every value alive."""

    def __init__(self):
        super().__init__()
        self.m = WeakValueMap()
        self.model = {}

    @rule(k=KEYS, cyclic=st.booleans(), via_set=st.booleans())
    def setitem(self, k, cyclic, via_set):
        v = Val(k, cyclic)
        if via_set:
            self.m.set(k, v)
        else:
            self.m[k] = v
        self.model[k] = v  # the replaced value, if any, dies here (or at the next collection)

    @rule(keys=st.lists(KEYS, max_size=4), as_kwargs=st.booleans())
    def update(self, keys, as_kwargs):
        new = {k: Val(k) for k in keys}
        if as_kwargs:
            self.m.update(**{str(k): v for k, v in new.items()})
            new = {str(k): v for k, v in new.items()}
        else:
            self.m.update(new)
        self.model.update(new)

    @rule(k=KEYS)
    def setdefault(self, k):
        v = Val(k)
        assert self.m.setdefault(k, v) is self.model.setdefault(k, v)

    @rule(k=KEYS)
    def get_or_create(self, k):
        calls = []
        got = self.m.get_or_create(k, lambda key: calls.append(key) or Val(key))
        if k in self.model:
            assert calls == [] and got is self.model[k]
        else:
            assert calls == [k] and type(got) is Val and got.key == k
            self.model[k] = got

    @rule(k=KEYS, with_default=st.booleans())
    def pop(self, k, with_default):
        marker = object()
        if with_default:
            assert self.m.pop(k, marker) is self.model.pop(k, marker)
        elif k in self.model:
            assert self.m.pop(k) is self.model.pop(k)
        else:
            with pytest.raises(KeyError) as err:
                self.m.pop(k)
            assert err.value.args == (k,)

    @rule(k=KEYS)
    def delitem(self, k):
        if k in self.model:
            del self.m[k]
            del self.model[k]
        else:
            with pytest.raises(KeyError) as err:
                del self.m[k]
            assert err.value.args == (k,)

    @rule()
    def popitem(self):
        if not self.model:
            with pytest.raises(KeyError):
                self.m.popitem()
            return
        key, value = self.m.popitem()
        assert key == next(reversed(self.model)) and value is self.model.pop(key)

    @rule()
    def clear(self):
        self.m.clear()
        self.model.clear()

    @rule(k=KEYS)
    def reads(self, k):
        marker = object()
        assert self.m.get(k) is self.model.get(k)
        assert self.m.get(k, marker) is self.model.get(k, marker)
        assert (k in self.m) is (k in self.model)
        if k in self.model:
            assert self.m[k] is self.model[k]
        else:
            with pytest.raises(KeyError) as err:
                self.m[k]
            assert err.value.args == (k,)

    @rule(k=KEYS, cyclic=st.booleans())
    def drop_the_last_strong_reference(self, k, cyclic):
        # Replace the model's value by one the model does not keep, so the
        # key must disappear on its own once the collector has run.
        v = Val(k, cyclic)
        self.m[k] = v
        self.model.pop(k, None)
        del v
        gc.collect()
        assert k not in self.m and self.m.get(k) is None
        with pytest.raises(KeyError):
            self.m[k]
        assert len(self.m) == len(self.model)

    @rule()
    def views(self):
        keys = list(self.m)
        assert len(keys) == len(set(keys)) and set(keys) == self.model.keys()
        assert set(self.m.keys()) == self.model.keys()
        assert sorted(map(id, self.m.values())) == sorted(map(id, self.model.values()))
        items = list(self.m.items())
        assert len(items) == len(self.model) and all(self.model[k] is v for k, v in items)
        assert self.m == self.model and repr(self.m) == f"WeakValueMap({self.model!r})"

    @rule(k=KEYS)
    def copies(self, k):
        clone = self.m.copy()
        assert type(clone) is WeakValueMap and same_entries(clone, self.model)
        deep = copy.deepcopy(self.m)
        assert same_entries(deep, self.model)  # keys copied, values the same objects
        extra = Val(k)
        clone[k] = extra
        assert clone[k] is extra and self.m.get(k) is self.model.get(k)  # independent

    @rule(value=st.sampled_from([1, "s", None, (1,), 2.5]), k=KEYS)
    def unreferenceable_values_are_refused(self, value, k):
        with pytest.raises(TypeError, match=type(value).__name__):
            self.m[k] = value
        with pytest.raises(TypeError, match=type(value).__name__):
            self.m.update({k: Val(k), "z": value})  # checked before anything changes

    @invariant()
    def equals_model(self):
        assert same_entries(self.m, self.model)
        assert len(self.m) == len(self.model)


TestWeakValueMapModel = WeakValueMapMachine.TestCase
TestWeakValueMapModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None, database=None)


# -- entries go when their values die, and never under a reader --------------------------


def test_iteration_holds_its_values_while_the_rest_die():
    m = WeakValueMap()
    model = {k: Val(k, cyclic=k % 2 == 1) for k in range(20)}
    m.update(model)
    seen = {}
    for k, v in m.items():
        model.clear()  # only the walk's snapshot keeps the values alive now
        gc.collect()
        seen[k] = v
    assert sorted(seen) == list(range(20)) and all(v.key == k for k, v in seen.items())
    del v, seen
    gc.collect()
    assert len(m) == 0 and m.snapshot() == {} and list(m) == []


def test_every_walk_yields_the_snapshot_taken_when_it_started():
    vals = {k: Val(k) for k in range(10)}
    m = WeakValueMap(vals)
    newcomer = Val("new")
    for walk, expected in ((m, list(vals)), (m.keys(), list(vals)),
                           (m.items(), list(vals.items())), (m.values(), list(vals.values()))):
        seen = []
        for x in walk:
            seen.append(x)
            m.clear()  # a dict would raise; a walk that looked keys up again would too
            m["new"] = newcomer
        assert seen == expected
        m.clear()
        m.update(vals)


def test_a_dead_refs_late_callback_never_removes_the_keys_new_value():
    # Regression guard: the callback of a replaced value's ref (kept alive here,
    # as a concurrent reader's or snapshot's copy of it would be) runs after the
    # key was set again; the drain must remove only that very ref.
    m = WeakValueMap()
    v1 = Val("k", cyclic=True)
    m["k"] = v1
    old_ref = m._data["k"]
    v2 = Val("k")
    m["k"] = v2
    del v1
    gc.collect()
    assert old_ref() is None and old_ref in m._pending  # its callback ran
    m["other"] = keep = Val("other")  # any locked operation drains
    assert m["k"] is v2 and len(m) == 2 and m.snapshot() == {"k": v2, "other": keep}


def test_readers_never_see_an_exception_while_values_are_created_and_collected():
    stable = {f"s{i}": Val(f"s{i}") for i in range(10)}  # alive throughout: always in every snapshot
    churn = [f"c{i}" for i in range(10)]
    m = WeakValueMap(stable)
    writers_done = threading.Event()
    checked = []

    def writer(seed):
        def run():
            for i in range(300):
                k = churn[(i + seed) % len(churn)]
                op = i % 4
                if op == 0:
                    m[k] = Val(k)  # dies at the end of this statement
                elif op == 1:
                    v = Val(k, cyclic=True)  # dies at the next collection
                    m[k] = v
                    del v
                elif op == 2:
                    assert m.get_or_create(k, lambda key: Val(key, cyclic=True)).key == k
                else:
                    m.pop(k, None)
                if i % 25 == 0:
                    gc.collect()

        return run

    def reader():
        for _ in range(100_000):  # bounded; ends when the writers do
            if writers_done.is_set():
                break
            snap = m.snapshot()
            assert all(snap[k] is v for k, v in stable.items())
            assert all(type(v) is Val and v.key == k for k, v in snap.items())
            keys = list(m)
            assert len(keys) == len(set(keys)) and set(stable) <= set(keys)
            for k, v in m.items():
                assert type(v) is Val and v.key == k
            for v in m.values():
                assert type(v) is Val
            assert len(stable) <= len(m) <= len(stable) + len(churn)
            checked.append(1)

    def writers():
        try:
            run_threads(writer(0), writer(3))
        finally:
            writers_done.set()

    run_threads(writers, reader, reader)
    assert checked  # the readers really ran
    gc.collect()
    # Every churn value was dropped: only the stable entries are left, exactly.
    assert same_entries(m, stable) and len(m) == len(stable)


# -- get_or_create: call once ------------------------------------------------------------


def _contest(m, key, factory):
    """THREADS threads call get_or_create(key, factory) at once; what each got or raised."""
    results = [None] * THREADS

    def worker(i):
        def run():
            try:
                results[i] = ("ok", m.get_or_create(key, factory))
            except BaseException as exc:  # KeyboardInterrupt included: recorded, not raised
                results[i] = ("raised", exc)

        return run

    run_threads(*(worker(i) for i in range(THREADS)))
    return results


def _hold_until_all_wait(m, key):
    """Inside a factory: block until every other contestant waits on this load."""
    flight = m._flights[key]
    wait_until(lambda: waiters_on(flight) == THREADS - 1, "every other thread to wait on the load")


@pytest.mark.parametrize("contest", range(4))
def test_get_or_create_on_a_cold_key_calls_the_factory_once(contest):
    m = WeakValueMap()
    calls = []

    def factory(key):
        calls.append(key)
        _hold_until_all_wait(m, key)
        return Val(key)

    results = _contest(m, "cold", factory)
    assert calls == ["cold"]
    assert all(kind == "ok" for kind, _ in results), results
    first = results[0][1]
    assert all(v is first for _, v in results) and m["cold"] is first
    assert m._flights == {}


def test_a_factory_exception_reaches_every_waiter_and_stores_nothing():
    m = WeakValueMap()
    calls = []
    boom = LookupError("no such object")

    def factory(key):
        calls.append(key)
        _hold_until_all_wait(m, key)
        raise boom

    results = _contest(m, "k", factory)
    assert calls == ["k"]
    assert all(kind == "raised" and exc is boom for kind, exc in results), results
    assert "k" not in m and len(m) == 0 and m._flights == {}
    # Not cached: the next call loads again.
    assert m.get_or_create("k", lambda key: calls.append(key) or Val(key)).key == "k"
    assert calls == ["k", "k"]


def test_an_interrupted_factory_hands_the_load_to_one_waiter():
    m = WeakValueMap()
    calls = []
    made = Val("k")

    def factory(key):
        calls.append(key)
        if len(calls) == 1:
            _hold_until_all_wait(m, key)
            raise KeyboardInterrupt  # this thread's own business: the waiters load again
        return made

    results = _contest(m, "k", factory)
    assert calls == ["k", "k"]
    interrupted = [exc for kind, exc in results if kind == "raised"]
    assert len(interrupted) == 1 and type(interrupted[0]) is KeyboardInterrupt
    assert [v for kind, v in results if kind == "ok"] == [made] * (THREADS - 1)
    assert m["k"] is made


def test_a_flight_whose_thread_ended_is_replaced_not_waited_on():
    # Regression guard: waiting on it returns None ("load again") at once, so
    # a get_or_create that kept finding it in the table would spin forever.
    m = WeakValueMap()
    box = []
    t = threading.Thread(target=lambda: box.append(Flight()))
    t.start()
    t.join(JOIN_TIMEOUT)
    assert not t.is_alive()
    stale = box.pop()
    del t
    wait_until(lambda: stale.owner() is None, "the ended thread's token to die")
    m._flights["k"] = stale
    got = []
    worker = threading.Thread(target=lambda: got.append(m.get_or_create("k", Val)), daemon=True)
    worker.start()
    worker.join(JOIN_TIMEOUT)
    assert not worker.is_alive(), "get_or_create kept waiting on a flight whose thread had ended"
    assert got[0].key == "k" and m["k"] is got[0] and m._flights == {}


def test_a_recursive_get_or_create_raises_instead_of_deadlocking():
    m = WeakValueMap()
    inner = []

    def factory(key):
        try:
            m.get_or_create(key, factory)
        except RecursiveLoadError as exc:
            inner.append(exc)
            raise

    with pytest.raises(RecursiveLoadError, match="'k'"):
        m.get_or_create("k", factory)
    assert len(inner) == 1 and "k" not in m and m._flights == {}
    assert m.get_or_create("k", Val).key == "k"  # nothing left behind


def test_a_waiter_gives_up_after_its_timeout_while_the_load_goes_on():
    m = WeakValueMap()
    started, release = threading.Event(), threading.Event()
    made = Val("k")

    def slow(key):
        started.set()
        assert release.wait(JOIN_TIMEOUT)
        return made

    owner = threading.Thread(target=m.get_or_create, args=("k", slow), daemon=True)
    owner.start()
    assert started.wait(JOIN_TIMEOUT)
    with pytest.raises(TimeoutError, match="'k'"):
        m.get_or_create("k", slow, timeout=0.01)  # the load is blocked until release is set
    release.set()
    owner.join(JOIN_TIMEOUT)
    assert not owner.is_alive() and m["k"] is made


def test_a_set_while_the_factory_runs_wins_and_get_or_create_returns_it():
    m = WeakValueMap()
    winner = Val("k")

    def factory(key):
        m[key] = winner  # as another thread's set() could, while the factory runs
        return Val(key)

    assert m.get_or_create("k", factory) is winner and m["k"] is winner


# -- bad input -------------------------------------------------------------------------------


def test_values_that_cannot_be_weakly_referenced_raise_TypeError_naming_their_type():
    keep = Val("a")
    m = WeakValueMap(a=keep)
    with pytest.raises(TypeError, match="'int'"):
        m["k"] = 1
    with pytest.raises(TypeError, match="'str'"):
        m.set("k", "text")
    with pytest.raises(TypeError, match="'NoneType'"):
        m.setdefault("k")
    with pytest.raises(TypeError, match="'tuple'"):
        WeakValueMap(k=(1, 2))
    with pytest.raises(TypeError, match="'int'"):
        m.get_or_create("k", lambda key: 42)  # reaches the caller; nothing stored
    assert m.snapshot() == {"a": keep} and m._flights == {}
    assert m.get_or_create("k", Val).key == "k"


def test_bad_arguments_name_the_argument():
    m = WeakValueMap()
    with pytest.raises(TypeError, match="factory"):
        m.get_or_create("k", "not callable")
    with pytest.raises(ValueError, match="timeout"):
        m.get_or_create("k", Val, timeout=-1)
    with pytest.raises(TypeError, match="unhashable"):
        m[[]] = Val("k")
    with pytest.raises(ValueError, match="length 1"):
        m.update(["x"])
    assert len(m) == 0


def test_pickling_raises_and_copies_keep_only_live_entries():
    keep = Val("a")
    m = WeakValueMap(a=keep, b=Val("b", cyclic=True))
    gc.collect()
    with pytest.raises(TypeError, match="cannot pickle 'WeakValueMap'"):
        pickle.dumps(m)
    for clone in (m.copy(), copy.copy(m), copy.deepcopy(m), WeakValueMap(m)):
        assert type(clone) is WeakValueMap and clone.snapshot() == {"a": keep} and clone["a"] is keep


# -- fork --------------------------------------------------------------------------------------

FORK = textwrap.dedent(
    """
    import os, threading
    from mapsafe.weakvaluemap import WeakValueMap

    class V:
        pass

    m = WeakValueMap()
    keep = V()
    m["a"] = keep
    loading, holding, release = threading.Event(), threading.Event(), threading.Event()

    def slow(key):
        loading.set()
        release.wait(30)
        return V()

    def hold():
        with m._lock:  # another thread is inside the map's critical section at the fork
            holding.set()
            release.wait(30)

    threads = [threading.Thread(target=m.get_or_create, args=("slow", slow), daemon=True),
               threading.Thread(target=hold, daemon=True)]
    threads[0].start()
    assert loading.wait(30)  # before the holder starts: the load needs the lock to begin
    threads[1].start()
    assert holding.wait(30)
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            b = V()
            m["b"] = b                                   # the lock its parent's thread held
            made = V()
            got = m.get_or_create("slow", lambda key: made)  # that load's thread is gone
            ok = got is made and m.snapshot() == {"a": keep, "b": b, "slow": made} and len(m) == 3
        except BaseException as exc:
            print("child:", repr(exc))
        os._exit(0 if ok else 1)
    release.set()
    for t in threads:
        t.join(30)
    _, status = os.waitpid(pid, 0)
    print(os.WEXITSTATUS(status), sorted(m.snapshot()))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_can_write_and_load_while_the_parents_threads_held_the_lock_and_a_load():
    r = subprocess.run([sys.executable, "-c", FORK], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    # The child exited 0; the parent's own load finished (its value is gone again, unreferenced).
    assert r.stdout.split()[0] == "0", r.stdout + r.stderr[-2000:]
    assert r.stdout.split()[1:] == ["['a']"], r.stdout
