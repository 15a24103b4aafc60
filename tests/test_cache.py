"""mapsafe.Cache and @cached: call-once loads, bounds, expiry, refresh, stats, bad input, a model, threads, fork."""

from __future__ import annotations

import functools
import logging
import math
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import weakref

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import mapsafe
from mapsafe import Cache, RecursiveLoadError, cached
from mapsafe import _loading

JOIN = 30.0  # hang limit for joins and bounded waits; never a pass criterion


class Boom(Exception):
    pass


class Interrupt(BaseException):
    """Stands for KeyboardInterrupt in a loader (a real one would also hit pytest)."""


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Inline:
    """An executor that runs each refresh at once, in the reading thread."""

    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, fn, *args):
        self.submitted += 1
        fn(*args)


class Held:
    """An executor that keeps refreshes until run() is called."""

    def __init__(self) -> None:
        self.jobs = []

    def submit(self, fn, *args):
        self.jobs.append((fn, args))

    def run(self) -> None:
        jobs, self.jobs = self.jobs, []
        for fn, args in jobs:
            fn(*args)


def wait_until(predicate, what: str) -> None:
    done = threading.Event()
    for _ in range(int(JOIN / 0.005)):
        if predicate():
            return
        done.wait(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def start(fn, n: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=fn, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads


def join_all(threads) -> None:
    for t in threads:
        t.join(JOIN)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"


def waiting_threads() -> int:
    return len(_loading._waiting)


# -- bad input ----------------------------------------------------------------------------

BAD_OPTIONS = [
    (dict(maxsize=0), ValueError, "maxsize"),
    (dict(maxsize=-3), ValueError, "maxsize"),
    (dict(maxsize=True), TypeError, "maxsize"),
    (dict(maxsize="10"), TypeError, "maxsize"),
    (dict(maxsize=10, max_weight=100, weigher=lambda k, v: 1), ValueError, "mutually exclusive"),
    (dict(max_weight=100), ValueError, "weigher"),
    (dict(weigher=lambda k, v: 1), ValueError, "weigher"),
    (dict(max_weight=0, weigher=lambda k, v: 1), ValueError, "max_weight"),
    (dict(max_weight=10, weigher=3), TypeError, "weigher"),
    (dict(ttl=0), ValueError, "ttl"),
    (dict(ttl=-1), ValueError, "ttl"),
    (dict(ttl=math.nan), ValueError, "ttl"),
    (dict(ttl="5"), TypeError, "ttl"),
    (dict(tti=0), ValueError, "tti"),
    (dict(negative_ttl=-0.5), ValueError, "negative_ttl"),
    (dict(refresh_after=0), ValueError, "refresh_after"),
    (dict(refresh_after=10, ttl=10), ValueError, "refresh_after"),
    (dict(loader=42), TypeError, "loader"),
    (dict(cache_none="no"), TypeError, "cache_none"),
    (dict(clock=1.0), TypeError, "clock"),
    (dict(executor=object()), TypeError, "executor"),
]


@pytest.mark.parametrize("options,error,word", BAD_OPTIONS)
def test_a_bad_option_raises_naming_it(options, error, word):
    with pytest.raises(error, match=word):
        Cache(**options)
    with pytest.raises(error, match=word):
        cached(**options)  # at decoration time, not at the first call


def test_a_bad_decorator_argument_raises_naming_it():
    with pytest.raises(TypeError, match="key"):
        cached(key="url")
    with pytest.raises(TypeError, match="typed"):
        cached(typed="yes")


@pytest.mark.parametrize("bad,error", [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)])
def test_a_bad_weight_raises_naming_the_weigher_and_changes_nothing(bad, error):
    c = Cache(max_weight=10, weigher=lambda k, v: bad if k == "bad" else 1)
    c.put("a", 1)
    with pytest.raises(error, match="weigher"):
        c.put("bad", 2)
    with pytest.raises(error, match="weigher"):
        c.get("bad", lambda k: 3)
    assert dict(c.as_map()) == {"a": 1}
    assert c.stats().weight == 1
    assert "bad" not in c._flights  # the failed load left no flight behind


def test_an_unhashable_key_raises_type_error_as_lru_cache_does():
    c = Cache()
    for call in (lambda: c.get([1], str), lambda: c.put([1], 1), lambda: c.get_if_present([1]),
                 lambda: c.invalidate([1]), lambda: [1] in c):
        with pytest.raises(TypeError, match="unhashable"):
            call()

    @cached
    def f(x):
        return x

    with pytest.raises(TypeError, match="unhashable"):
        f([1])
    assert len(c) == 0 and f.cache_info().currsize == 0


def test_cached_refuses_coroutine_and_generator_functions():
    async def coro(x):
        return x

    def gen(x):
        yield x

    async def agen(x):
        yield x

    for fn in (coro, gen, agen):
        with pytest.raises(TypeError, match="only its first caller could consume"):
            cached(fn)
        with pytest.raises(TypeError, match=fn.__name__):
            cached(maxsize=4)(fn)


def test_get_without_any_loader_says_how_to_give_one():
    with pytest.raises(TypeError, match="needs a loader"):
        Cache().get("k")


def test_a_cache_refuses_pickling_with_a_clear_message():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Cache())


# -- loading at most once -----------------------------------------------------------------

N = 12


def stampede(c: Cache, loader, key="cold"):
    """N threads ask for one cold key; the loader is held until the other N-1 wait for it."""
    results: list = [None] * N

    def ask(i):
        try:
            results[i] = ("ok", c.get(key, loader))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            results[i] = ("raised", exc)

    threads = start(ask, N)
    join_all(threads)
    return results


class HeldLoader:
    """A loader that blocks until N-1 other threads wait for its load, then returns or raises."""

    def __init__(self, outcome=None, first_outcome=None) -> None:
        self.calls = 0
        self.outcome = outcome if outcome is not None else (lambda key: ["value of", key])
        self.first_outcome = first_outcome
        self.lock = threading.Lock()

    def __call__(self, key):
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            wait_until(lambda: waiting_threads() >= N - 1, "the other threads to wait for the load")
            if self.first_outcome is not None:
                return self.first_outcome(key)
        return self.outcome(key)


def test_many_threads_asking_one_cold_key_run_the_loader_once_and_share_its_value():
    c = Cache()
    loader = HeldLoader()
    results = stampede(c, loader)
    assert loader.calls == 1
    assert all(kind == "ok" for kind, _ in results)
    assert all(value is results[0][1] for _, value in results)  # the very same object
    s = c.stats()
    assert (s.load_successes, s.load_failures, s.misses) == (1, 0, N)


def test_a_loader_exception_reaches_every_waiter_and_is_not_cached():
    c = Cache()

    def fail(key):
        raise Boom(key)

    loader = HeldLoader(outcome=fail)
    results = stampede(c, loader)
    assert loader.calls == 1
    assert all(kind == "raised" and isinstance(exc, Boom) for kind, exc in results)
    assert "cold" not in c and len(c) == 0
    assert c.get("cold", lambda k: "second") == "second"  # the failure was not cached
    assert c.stats().load_failures == 1


def test_a_loader_interrupted_by_a_base_exception_hands_the_load_to_a_waiter():
    c = Cache()

    def interrupted(key):
        raise Interrupt()

    loader = HeldLoader(first_outcome=interrupted)
    results = stampede(c, loader)
    interrupts = [exc for kind, exc in results if kind == "raised"]
    assert len(interrupts) == 1 and isinstance(interrupts[0], Interrupt)  # only the loading thread's own
    values = [value for kind, value in results if kind == "ok"]
    assert len(values) == N - 1 and all(v is values[0] for v in values)
    assert loader.calls == 2  # the interrupted load, then one waiter's
    assert c.get_if_present("cold") is values[0]


def test_a_wait_ends_when_the_loading_thread_ended_without_finishing():
    # A flight whose owner thread is gone (it cannot happen through the API;
    # a fault could leave one): the waiter notices and loads itself.
    flights = []
    t = threading.Thread(target=lambda: flights.append(_loading.Flight()))
    t.start()
    t.join(JOIN)
    c = Cache()
    c._flights["k"] = flights.pop()
    assert c.get("k", lambda k: "loaded") == "loaded"


def test_a_loader_asking_for_its_own_key_raises_instead_of_deadlocking():
    c = Cache()

    def recurse(key):
        return c.get(key, recurse)

    with pytest.raises(RecursiveLoadError, match="recursive load of key 'k'"):
        c.get("k", recurse)
    assert "k" not in c and not c._flights
    assert c.get("k", lambda k: 1) == 1


def test_two_loads_waiting_for_each_other_raise_instead_of_deadlocking():
    c = Cache()
    both_loading = threading.Barrier(2, timeout=JOIN)
    outcomes = {}

    def loader_for(other):
        def load(key):
            both_loading.wait()
            try:
                return ("got", c.get(other, load_b if other == "b" else load_a))
            except RecursiveLoadError as exc:
                return ("cycle", str(exc))

        return load

    load_a, load_b = loader_for("b"), loader_for("a")

    def run(i):
        key = "a" if i == 0 else "b"
        outcomes[key] = c.get(key, load_a if key == "a" else load_b)

    join_all(start(run, 2))
    kinds = sorted(v[0] for v in outcomes.values())
    assert "cycle" in kinds, outcomes  # at least one refused to wait; neither hung
    assert all("load cycle" in v[1] for v in outcomes.values() if v[0] == "cycle")


def test_a_waiter_with_a_timeout_gets_timeout_error():
    c = Cache()
    release = threading.Event()
    started = threading.Event()

    def slow(key):
        started.set()
        release.wait(JOIN)
        return 1

    t = threading.Thread(target=lambda: c.get("k", slow))
    t.start()
    assert started.wait(JOIN)
    with pytest.raises(TimeoutError, match="'k'"):
        c.get("k", slow, timeout=0.01)
    release.set()
    t.join(JOIN)
    assert c.get_if_present("k") == 1


@pytest.mark.parametrize("write", ["put", "invalidate", "invalidate_all"])
def test_a_write_during_a_load_wins_and_the_loaded_value_is_returned_but_not_stored(write):
    c = Cache()
    started, release = threading.Event(), threading.Event()
    got = []

    def slow(key):
        started.set()
        release.wait(JOIN)
        return "loaded"

    t = threading.Thread(target=lambda: got.append(c.get("k", slow)))
    t.start()
    assert started.wait(JOIN)
    if write == "put":
        c.put("k", "put")
    else:
        getattr(c, write)(*(["k"] if write == "invalidate" else []))
    release.set()
    t.join(JOIN)
    assert got == ["loaded"]
    assert c.get_if_present("k") == ("put" if write == "put" else None)


def test_negative_ttl_caches_a_failure_for_that_long():
    clock = FakeClock()
    c = Cache(negative_ttl=5, clock=clock)
    calls = []

    def fail(key):
        calls.append(key)
        raise Boom(len(calls))

    with pytest.raises(Boom):
        c.get("k", fail)
    clock.now = 4.9
    with pytest.raises(Boom) as err:
        c.get("k", fail)
    assert err.value.args == (1,) and calls == ["k"]  # raised again from the cache
    assert "k" not in c and dict(c.as_map()) == {}  # a failure is not a value
    clock.now = 5.0
    with pytest.raises(Boom) as err:
        c.get("k", fail)
    assert err.value.args == (2,)


def test_cache_none_false_leaves_none_uncached():
    calls = []

    def maybe(key):
        calls.append(key)
        return None

    assert Cache().get("k", maybe) is None and Cache().get("k", maybe) is None
    c = Cache(cache_none=False)
    assert c.get("k", maybe) is None
    assert c.get("k", maybe) is None
    assert len(calls) == 4 and "k" not in c
    c2 = Cache()  # the default caches None, as lru_cache does
    c2.get("k", maybe)
    c2.get("k", maybe)
    assert len(calls) == 5 and "k" in c2


# -- bounds ---------------------------------------------------------------------------------


def test_maxsize_bounds_the_entries_and_counts_evictions():
    c = Cache(maxsize=3)
    for i in range(10):
        c.put(i, i)
        assert len(c) <= 3
    assert len(c) == 3
    assert c.stats().evictions == {"size": 7, "expired": 0}


def test_hot_keys_survive_a_scan_that_flushes_an_lru_cache():
    # S3-FIFO's point: one-time keys leave through the small queue.
    hot, scan, size = range(50), range(1000, 3000), 100
    c = Cache(maxsize=size)
    lru_calls = []

    @functools.lru_cache(maxsize=size)
    def lru(key):
        lru_calls.append(key)
        return key

    for _ in range(3):
        for k in hot:
            c.get(k, lambda k: k)
            lru(k)
    for k in scan:
        c.get(k, lambda k: k)
        lru(k)
    assert all(k in c for k in hot)
    before = len(lru_calls)
    for k in hot:
        lru(k)
    assert len(lru_calls) - before == len(hot)  # LRU lost every hot key to the scan


def test_an_entry_heavier_than_the_bound_is_returned_but_not_stored():
    c = Cache(max_weight=10, weigher=lambda k, v: len(v))
    c.put("small", "abc")
    assert c.get("big", lambda k: "x" * 11) == "x" * 11
    assert "big" not in c and c.get_if_present("small") == "abc"
    assert c.stats().weight == 3


def test_weights_are_never_above_the_bound_after_a_write_returns():
    bound = 50
    c = Cache(max_weight=bound, weigher=lambda k, v: v)
    over = []

    def write(i):
        for j in range(400):
            c.put((i, j % 37), (i * 7 + j) % 13)
            w = c.stats().weight
            if w > bound:
                over.append(w)

    join_all(start(write, 4))
    assert over == []
    live = dict(c.as_map())
    assert sum(live.values()) == c.stats().weight  # the weight is exactly the live entries'
    assert c.stats().entries == len(live)


# -- time -------------------------------------------------------------------------------------


def test_ttl_expires_after_write_and_an_expired_entry_is_never_returned():
    clock = FakeClock()
    c = Cache(ttl=10, clock=clock)
    c.put("k", "v")
    clock.now = 9.99
    assert c.get_if_present("k") == "v" and "k" in c and c["k"] == "v"
    clock.now = 10.0
    assert c.get_if_present("k") is None and "k" not in c and dict(c.as_map()) == {}
    with pytest.raises(KeyError):
        c["k"]
    assert c.get("k", lambda k: "fresh") == "fresh"
    assert c.stats().evictions["expired"] == 1


def test_tti_expires_after_the_last_read():
    clock = FakeClock()
    c = Cache(tti=10, clock=clock)
    c.put("k", "v")
    for t in (8, 16, 24):
        clock.now = t
        assert c.get_if_present("k") == "v"  # each read restarts the idle time
    clock.now = 34
    assert c.get_if_present("k") is None


def test_cleanup_removes_every_expired_entry():
    clock = FakeClock()
    c = Cache(maxsize=None, ttl=5, clock=clock)
    for i in range(10):
        c.put(i, i)
    clock.now = 3
    c.put("late", 1)
    clock.now = 6
    assert c.cleanup() == 10 and len(c) == 1


def test_an_unbounded_cache_with_ttl_does_not_keep_expired_entries_forever():
    clock = FakeClock()
    c = Cache(maxsize=None, ttl=5, clock=clock)
    for i in range(1000):
        c.put(("old", i), i)
    clock.now = 10
    for i in range(1000):
        c.put(("new", i), i)
    assert len(c) == 1000  # every expired entry was swept by the writes
    assert c.stats().evictions["expired"] == 1000


def test_refresh_after_returns_the_old_value_and_reloads_once_in_the_background():
    clock = FakeClock()
    held = Held()
    c = Cache(refresh_after=10, ttl=100, clock=clock, executor=held)
    calls = []

    def load(key):
        calls.append(clock.now)
        return f"v@{clock.now}"

    assert c.get("k", load) == "v@0.0"
    clock.now = 15
    for _ in range(5):
        assert c.get("k", load) == "v@0.0"  # the current value, at once
    assert len(held.jobs) == 1  # one refresh however many reads
    held.run()
    assert c.get("k", load) == "v@15"
    assert calls == [0.0, 15] and c.stats().refreshes == 1


def test_a_failed_refresh_keeps_the_old_value_and_is_counted_and_logged(caplog):
    clock = FakeClock()
    c = Cache(refresh_after=10, clock=clock, executor=Inline())
    c.get("k", lambda k: "old")

    def fail(key):
        raise Boom("backend down")

    clock.now = 11
    with caplog.at_level(logging.WARNING, logger="mapsafe.cache"):
        assert c.get("k", fail) == "old"
    s = c.stats()
    assert (s.refreshes, s.refresh_failures, s.load_failures) == (0, 1, 1)
    assert any("refresh of key 'k' failed" in r.getMessage() and r.exc_info for r in caplog.records)
    assert not c._refreshing
    # A later read tries again, here with the loader that made the entry.
    assert c.get_if_present("k") == "old"
    assert c.stats().refreshes == 1


def test_no_thread_ever_gets_a_value_after_its_expiry():
    # The clock moves only between phases, so each value's own timestamp is
    # its entry's write time, and the check is exact.
    ttl, phases, workers = 3, 12, 4
    clock = FakeClock()
    c = Cache(maxsize=64, ttl=ttl, clock=clock)
    barrier = threading.Barrier(workers + 1, timeout=JOIN)
    stale = []

    def work(i):
        for _ in range(phases):
            barrier.wait()  # the clock is set
            now = clock.now
            for j in range(60):
                key = (i + j) % 20
                value = c.get(key, lambda k: (k, clock.now)) if j % 3 else c.get_if_present(key)
                if j % 7 == 0:
                    c.put(key, (key, now))
                if value is not None and not value[1] + ttl > now:
                    stale.append((now, value))
            barrier.wait()  # done with this phase

    threads = start(work, workers)
    for phase in range(phases):
        clock.now = float(phase)
        barrier.wait()
        barrier.wait()
    join_all(threads)
    assert stale == []


# -- stats and lru_cache compatibility -------------------------------------------------------------


def test_stats_count_exactly_in_one_thread():
    c = Cache(maxsize=2)
    c.get("a", str)
    c.get("a", str)
    c.get_if_present("zz")
    c.put("b", 1)
    c.put("c", 1)
    c.invalidate("c")
    s = c.stats()
    assert (s.hits, s.misses, s.load_successes, s.invalidations) == (1, 2, 1, 1)
    assert s.evictions["size"] == 1 and s.entries == 1 and s.hit_rate == pytest.approx(1 / 3)
    c.cache_clear()
    s = c.stats()
    assert (s.hits, s.misses, s.entries, s.evictions["size"]) == (0, 0, 0, 0)


@pytest.mark.parametrize("options", [{}, {"ttl": 100}, {"tti": 100}, {"negative_ttl": 5}, {"refresh_after": 50}])
def test_hits_are_counted_once_each_from_a_new_thread_too(options):
    # The C core counts a hit in the thread's stats cell, which the first
    # counted call of a thread (on the Python path) creates.
    c = Cache(clock=FakeClock(), executor=Held(), **options)
    c.put("k", "v")
    got = []

    def read(i):
        got.append([c.get("k", str), c.get_if_present("k"), c._hit("k"), c.get("k", str)])

    join_all(start(read, 3))
    assert got == [["v"] * 4] * 3
    assert (c.stats().hits, c.stats().misses) == (12, 0)


def test_cache_info_and_cache_clear_match_functools_lru_cache():
    calls = [3, 1, 3, 2, 1, 1, 4, 3]

    @functools.lru_cache(maxsize=100)
    def ref(x):
        return x * 2

    @cached(maxsize=100)
    def ours(x):
        return x * 2

    for x in calls:
        assert ours(x) == ref(x)
        assert tuple(ours.cache_info()) == tuple(ref.cache_info())
    ours.cache_clear()
    ref.cache_clear()
    assert tuple(ours.cache_info()) == tuple(ref.cache_info())
    assert ours.cache_parameters()["maxsize"] == ref.cache_parameters()["maxsize"]


# -- @cached ----------------------------------------------------------------------------------------


def test_cached_loads_once_per_key_across_threads():
    calls = []
    gate = threading.Event()

    @cached
    def load(x):
        calls.append(x)
        wait_until(lambda: waiting_threads() >= N - 1, "the other callers to wait")
        return object()

    results = [None] * N

    def call(i):
        results[i] = load(7)

    join_all(start(call, N))
    assert calls == [7] and all(r is results[0] for r in results)
    del gate


def test_the_key_function_normalises_arguments():
    calls = []

    @cached(key=lambda url: url.lower().rstrip("/"))
    def fetch(url):
        calls.append(url)
        return len(calls)

    assert fetch("HTTP://A/") == fetch("http://a") == fetch("http://a/") == 1
    assert calls == ["HTTP://A/"]
    assert fetch.invalidate("http://A") is True and fetch("http://a") == 2


@pytest.mark.parametrize("typed", [False, True])
def test_default_keys_are_lru_caches_keys(typed):
    calls = [((1,), {}), ((1.0,), {}), ((True,), {}), (("1",), {}), (((1,),), {}), ((1, 2), {}),
             ((1.0, 2), {}), ((1,), {"a": 1, "b": 2}), ((1,), {"b": 2, "a": 1}), ((1,), {"a": 1.0, "b": 2})]

    @functools.lru_cache(maxsize=None, typed=typed)
    def ref(*args, **kwargs):
        return None

    @cached(maxsize=None, typed=typed)
    def ours(*args, **kwargs):
        return None

    for args, kwargs in calls + calls:
        ref(*args, **kwargs)
        ours(*args, **kwargs)
        assert ours.cache_info()[:2] == ref.cache_info()[:2], (args, kwargs)


def test_cached_on_a_method_caches_per_instance_without_keeping_it_alive():
    class Service:
        def __init__(self, name):
            self.name = name
            self.calls = 0

        @cached(maxsize=10)
        def lookup(self, x):
            self.calls += 1
            return f"{self.name}:{x}"

    a, b = Service("a"), Service("b")
    assert a.lookup(1) == a.lookup(1) == "a:1" and b.lookup(1) == "b:1"
    assert (a.calls, b.calls) == (1, 1)
    assert a.lookup.cache_info().hits == 1 and b.lookup.cache_info().hits == 0
    ref = weakref.ref(a)
    del a
    assert ref() is None  # gone at once: no cycle, no global table holding it
    assert Service.lookup.cache_info().currsize == 0  # the class-level cache is not used by methods


def test_cached_on_a_slots_method_needs_weak_references_and_says_so():
    class Slotted:
        __slots__ = ()

        @cached
        def f(self):
            return 1

    with pytest.raises(TypeError, match=r"Slotted\.f needs weakly referenceable instances.*'__weakref__'"):
        Slotted().f()

    class WithWeakref:
        __slots__ = ("__weakref__",)

        @cached
        def f(self, x):
            return x * 2

    w = WithWeakref()
    assert w.f(2) == w.f(2) == 4 and w.f.cache_info().hits == 1


def test_a_cached_method_adds_nothing_to_the_instance_and_it_still_pickles():
    p = _Point(3)
    assert p.norm(2) == 6 and p.norm(2) == 6
    assert vars(p) == {"x": 3}
    q = pickle.loads(pickle.dumps(p))
    assert q.norm(2) == 6 and q.norm.cache_info().misses == 1  # its own, fresh cache


def test_a_bound_cached_method_outliving_its_instance_serves_hits_and_refuses_misses():
    p = _Point(5)
    norm = p.norm
    assert norm(1) == 5
    del p
    assert norm(1) == 5  # a hit needs no instance
    with pytest.raises(ReferenceError, match="no longer exists"):
        norm(2)


def test_many_threads_binding_one_instance_share_one_cache():
    p = _Point(7)
    caches = []
    barrier = threading.Barrier(8, timeout=JOIN)

    def bind(i):
        barrier.wait()
        caches.append(p.norm.cache)

    join_all(start(bind, 8))
    assert len({id(c) for c in caches}) == 1


def test_keyword_arguments_named_like_the_wrappers_own_parameters_reach_the_function():
    # Regression: the Python paths took (self, *args, **kwargs), so a call
    # passing self= or key= would have collided with them.
    @cached
    def f(self=0, key=0, cache_key=0):
        return (self, key, cache_key)

    assert f(self=1, key=2, cache_key=3) == (1, 2, 3) == f(self=1, key=2, cache_key=3)
    assert f.cache_info().hits == 1
    assert f.invalidate(self=1, key=2, cache_key=3) is True


def test_cached_keeps_the_function_metadata():
    @cached(maxsize=4)
    def documented(x):
        """Docs."""
        return x

    assert documented.__name__ == "documented" and documented.__doc__ == "Docs."
    assert documented.__wrapped__(5) == 5 and isinstance(documented.cache, Cache)


@cached(maxsize=4)
def _module_level(x):
    return x + 1


def test_a_cached_function_pickles_by_reference_as_lru_cache_does():
    assert pickle.loads(pickle.dumps(_module_level)) is _module_level
    assert pickle.loads(pickle.dumps(_Point.norm)) is _Point.norm


class _Point:
    """Module level, so that pickling finds it."""

    def __init__(self, x):
        self.x = x

    @cached(maxsize=8)
    def norm(self, k):
        return self.x * k


# -- fork ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_wait_for_a_load_of_the_parents_other_thread():
    code = textwrap.dedent(
        """
        import os, threading, mapsafe
        c = mapsafe.Cache()
        inside, release = threading.Event(), threading.Event()

        def slow(key):
            inside.set()
            release.wait(30)
            return "parent"

        t = threading.Thread(target=lambda: c.get("k", slow), daemon=True)
        t.start()
        assert inside.wait(30)
        pid = os.fork()
        if pid == 0:
            ok = c.get("k", lambda k: "child") == "child"
            c.put("x", 1)
            os._exit(0 if ok and c.get_if_present("x") == 1 else 1)
        release.set()
        t.join(30)
        _, status = os.waitpid(pid, 0)
        print(os.WEXITSTATUS(status), c.get_if_present("k"))
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["0", "parent"], r.stdout + r.stderr


# -- a model: every reply agrees with a dict of the last writes, on a fake clock ---------------------

KEYS = st.sampled_from(["a", "b", "c", "d", "e", "f"])


class CacheMachine(RuleBasedStateMachine):
    """Random calls against a model of the last write per key and its times.

    The model cannot know which key a bounded cache evicts, so a bounded
    cache may miss a key the model holds; it may never return a value the
    model does not hold for that key now, nor one the model says expired.
    An unbounded cache must agree exactly.
    """

    options: dict = {}

    def __init__(self):
        super().__init__()
        self.clock = FakeClock()
        self.cache = Cache(clock=self.clock, **self.options)
        self.model = {}  # key -> [value, written, last read]
        self.serial = 0
        self.lookups = 0
        self.bound = self.options.get("maxsize", 128)

    def live(self, key):
        item = self.model.get(key)
        if item is None:
            return None
        value, written, read = item
        ttl, tti = self.options.get("ttl"), self.options.get("tti")
        if ttl is not None and written + ttl <= self.clock.now:
            return None
        if tti is not None and read + tti <= self.clock.now:
            return None
        return item

    def check_reply(self, key, value, loaded):
        item = self.live(key)
        if loaded:
            self.model[key] = [value, self.clock.now, self.clock.now]
            if self.bound is None:
                assert item is None, f"an unbounded cache reloaded live key {key!r}"
        else:
            assert item is not None and item[0] == value, f"{key!r}: returned {value!r}, model {item!r}"
            item[2] = self.clock.now

    @rule(key=KEYS)
    def put(self, key):
        self.serial += 1
        self.cache.put(key, self.serial)
        self.model[key] = [self.serial, self.clock.now, self.clock.now]

    @rule(key=KEYS)
    def get(self, key):
        self.serial += 1
        loaded = []
        value = self.cache.get(key, lambda k, v=self.serial: loaded.append(v) or v)
        self.lookups += 1
        self.check_reply(key, value, bool(loaded))

    @rule(key=KEYS)
    def get_if_present(self, key):
        value = self.cache.get_if_present(key, "absent")
        self.lookups += 1
        if value == "absent":
            if self.bound is None:
                assert self.live(key) is None
        else:
            self.check_reply(key, value, False)

    @rule(key=KEYS)
    def invalidate(self, key):
        removed = self.cache.invalidate(key)
        if self.bound is None:
            assert removed == (self.live(key) is not None)
        self.model.pop(key, None)

    @rule()
    def invalidate_all(self):
        self.cache.invalidate_all()
        self.model.clear()

    @rule(dt=st.sampled_from([0.5, 1, 2, 5]))
    def tick(self, dt):
        self.clock.now += dt

    @precondition(lambda self: self.options.get("ttl") or self.options.get("tti"))
    @rule()
    def cleanup(self):
        self.cache.cleanup()

    @invariant()
    def agrees(self):
        view = dict(self.cache.as_map())
        for key, value in view.items():
            item = self.live(key)
            assert item is not None and item[0] == value, f"view {key!r}={value!r}, model {item!r}"
        if self.bound is None:
            assert view == {k: self.live(k)[0] for k in self.model if self.live(k) is not None}
        else:
            assert len(self.cache) <= self.bound
        s = self.cache.stats()
        assert s.hits + s.misses == self.lookups


def machine(name, **options):
    cls = type(name, (CacheMachine,), {"options": options})
    return settings(max_examples=60, stateful_step_count=40, deadline=None)(cls).TestCase


TestModelBounded = machine("Bounded", maxsize=3)
TestModelUnbounded = machine("Unbounded", maxsize=None)
TestModelTTL = machine("TTL", maxsize=4, ttl=3)
TestModelUnboundedTTL = machine("UnboundedTTL", maxsize=None, ttl=3)
TestModelTTI = machine("TTI", maxsize=None, tti=2)
TestModelWeighted = machine("Weighted", max_weight=5, weigher=lambda k, v: v % 3)


def test_the_package_exports_the_cache_family():
    for name in ("Cache", "cached", "CacheStats", "CacheInfo", "CacheView", "RecursiveLoadError"):
        assert name in mapsafe.__all__ and hasattr(mapsafe, name)
