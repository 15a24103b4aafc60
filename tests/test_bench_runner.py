"""mapsafe bench runner and workloads: quick real runs, the UNSAFE path, seeds, Ctrl-C."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from mapsafe import _core
from mapsafe.bench import impls, workloads
from mapsafe.bench.advisor import advise
from mapsafe.bench.impls import Adapter, Impl
from mapsafe.bench.runner import Settings, run

AVAILABLE = [impl for impl in impls.IMPLEMENTATIONS if impl.availability()[0]]
MAPS = [impl for impl in AVAILABLE if impl.build is not None]  # the caches have their own tests
# cereggii 1.0's fast_iter raises when a write lands during the walk (seen on 3.13.5t).
PEER_ITERATION_REFUSES = {"cereggii.AtomicDict": "ConcurrentUsageDetected"}


def tiny(impl_list, workload_list, threads=(1, 2), rounds=1, stress=True, **kw) -> Settings:
    return Settings(
        threads=list(threads), duration=kw.pop("duration", 0.005), rounds=rounds, keys=kw.pop("keys", 64),
        read_ratio=0.9, seed=kw.pop("seed", 1), impls=list(impl_list), workloads=list(workload_list),
        stress=stress, join_timeout=30.0, **kw,
    )


def test_every_workload_on_every_implementation_passes_its_checks():
    # No stress rounds here (the broken-implementation tests below run them): it keeps this under ~10 s.
    result = run(tiny(AVAILABLE, workloads.WORKLOADS, stress=False))
    assert not result.interrupted
    ran = {(c.workload, c.threads, c.impl) for c in result.cells}
    for w in workloads.WORKLOADS:
        for impl in AVAILABLE:
            for t in w.thread_counts([1, 2]):
                assert ((w.name, t, impl.name) in ran) == w.accepts(impl), (w.name, t, impl.name)
    for cell in result.cells:
        assert len(cell.rounds) == 1 and cell.rounds[0] > 0
        assert cell.peak_bytes is None or cell.peak_bytes > 0
        if cell.impl == impls.UNSAFE and cell.threads > 1:
            continue  # may lose updates: that is what it is there to show
        if cell.impl in PEER_ITERATION_REFUSES and cell.workload == "iterate" and cell.threads > 1:
            # A peer that refuses to iterate while another thread writes: the table shows it.
            assert cell.safe or all(PEER_ITERATION_REFUSES[cell.impl] in f for f in cell.failures), cell.failures
            continue
        assert cell.safe, (cell.key, cell.failures)


def test_single_threaded_unsafe_dict_is_exact():
    # With one thread nothing can race, so a failure here would be a harness bug.
    result = run(tiny([impls.by_name()[impls.UNSAFE]], workloads.WORKLOADS, threads=(1,)))
    assert result.cells and all(c.safe for c in result.cells)


def _broken_counter() -> Adapter:
    """dict+Lock, except that every 100th increment is dropped (a test-only adapter)."""
    base = impls.by_name()[impls.BASELINE].build()
    lock = threading.Lock()
    calls = [0]

    def incr(k):
        with lock:
            calls[0] += 1
            drop = calls[0] % 100 == 0
        if not drop:
            base.incr(k)

    return Adapter(base.get, base.put, base.delete, incr, base.load_or_store, base.iterate, base.snapshot)


def _broken_load_or_store() -> Adapter:
    """Returns the caller's value even when another thread's value is already stored."""
    base = impls.by_name()[impls.BASELINE].build()

    def load_or_store(k, v):
        base.load_or_store(k, v)
        return v

    return Adapter(base.get, base.put, base.delete, base.incr, load_or_store, base.iterate, base.snapshot)


def _broken_get() -> Adapter:
    """Loses one in 50 reads (returns None for a present key)."""
    base = impls.by_name()[impls.BASELINE].build()
    n = [0]

    def get(k):
        n[0] += 1  # racy on purpose is fine: any miss it causes is still wrong
        return None if n[0] % 50 == 0 else base.get(k)

    return Adapter(get, base.put, base.delete, base.incr, base.load_or_store, base.iterate, base.snapshot)


def _broken_iterate() -> Adapter:
    base = impls.by_name()[impls.BASELINE].build()

    def iterate(visit):
        raise RuntimeError("dictionary changed size during iteration")

    return Adapter(base.get, base.put, base.delete, base.incr, base.load_or_store, iterate, base.snapshot)


@pytest.mark.parametrize(
    "build, workload, threads, expect",
    [
        (_broken_counter, "counter", 1, "increments lost"),
        (_broken_counter, "counter", 2, "increments lost"),
        (_broken_load_or_store, "load_or_store", 2, "disagree with the map"),
        (_broken_get, "hits", 1, "returned None"),
        (_broken_get, "disjoint", 2, "returned None"),
        (_broken_iterate, "iterate", 1, "RuntimeError: dictionary changed size"),
    ],
)
def test_broken_implementation_is_marked_unsafe_and_not_ranked(build, workload, threads, expect):
    broken = Impl("broken", build)
    baseline = impls.by_name()[impls.BASELINE]
    result = run(tiny([broken, baseline], [workloads.by_name()[workload]], threads=(threads,), rounds=3,
                      duration=0.01, keys=256))
    bad = [c for c in result.cells if c.impl == "broken"]
    good = [c for c in result.cells if c.impl == impls.BASELINE]
    assert bad and all(not c.safe for c in bad)
    assert any(expect in f for c in bad for f in c.failures), [c.failures for c in bad]
    assert good and all(c.safe for c in good)
    for rec in advise(result).recommendations:
        assert rec.impl == impls.BASELINE  # the broken one is never the choice, however fast


def test_same_seed_same_operations_and_other_seed_others():
    for w in workloads.WORKLOADS:
        a = w.plan(100, 3, 0.9, seed=7)
        b = w.plan(100, 3, 0.9, seed=7)
        c = w.plan(100, 3, 0.9, seed=8)
        assert a.seqs == b.seqs and a.reads == b.reads and a.prefill == b.prefill
        assert a.seqs != c.seqs, w.name


def test_workloads_have_docstrings_and_unique_names():
    names = [w.name for w in workloads.WORKLOADS]
    assert len(set(names)) == len(names)
    for w in workloads.WORKLOADS:
        assert w.summary and w.summary[0].isupper(), w.name
    assert set(names) >= {"hits", "misses", "load_or_store", "disjoint", "read_ratio", "counter", "iterate", "growth"}
    assert workloads.by_name()["read_ratio"].params(0.9) == [0.5, 0.8, 0.9, 0.95, 0.99]
    assert workloads.by_name()["read_ratio"].params(0.95) == [0.5, 0.8, 0.95, 0.99]


def test_counter_verify_counts_exactly_from_the_sequences():
    w = workloads.by_name()["counter"]
    plan = w.plan(64, 2, None, seed=3)
    ad = impls.by_name()[impls.BASELINE].build()
    tallies = [workloads.Tally(ops=workloads.SEQ_LEN + 5), workloads.Tally(ops=3)]
    for tid, tally in enumerate(tallies):
        seq = plan.seqs[tid][: workloads.SEQ_LEN]
        for j in range(tally.ops):
            ad.incr(seq[j % workloads.SEQ_LEN])
    assert w.verify(ad, plan, tallies) == []
    ad.incr(plan.seqs[0][0])  # one increment too many
    assert w.verify(ad, plan, tallies) == ["1 counters wrong: 1 increments too many (of 4104)"]


class _InterruptAfter:
    """A Progress that presses Ctrl-C after ``n`` rounds."""

    def __init__(self, n: int) -> None:
        self.n = n

    def start(self, total: int) -> None:
        self.total = total

    def advance(self, label: str) -> None:
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt

    def stop(self) -> None:
        self.stopped = True


def test_ctrl_c_returns_what_was_gathered():
    progress = _InterruptAfter(3)
    picked = [impls.by_name()[impls.BASELINE], impls.by_name()[impls.UNSAFE]]
    result = run(tiny(picked, [workloads.by_name()["hits"], workloads.by_name()["counter"]], rounds=2), progress)
    assert result.interrupted
    assert progress.stopped
    # Round 1 of both, then round 2, which the rotation starts with the second implementation.
    assert [len(c.rounds) for c in result.cells] == [1, 2]
    assert all(c.p50_ns is not None for c in result.cells)


def test_progress_total_counts_rounds_and_stress_rounds():
    class Count(_InterruptAfter):
        def advance(self, label: str) -> None:
            self.n += 1

    progress = Count(0)
    picked = [impls.by_name()[impls.BASELINE]]
    run(tiny(picked, [workloads.by_name()["counter"]], threads=(1, 2), rounds=2), progress)
    assert progress.total == progress.n == 2 + 2 + 1


def test_an_implementation_that_cannot_even_be_built_is_unsafe_not_a_crash():
    def build() -> Adapter:
        raise OSError("native library missing")

    result = run(tiny([Impl("unbuildable", build), impls.by_name()[impls.BASELINE]],
                      [workloads.by_name()["hits"], workloads.by_name()["growth"]], threads=(1,)))
    bad = [c for c in result.cells if c.impl == "unbuildable"]
    assert len(bad) == 2 and all(c.rounds == [0.0] and c.peak_bytes is None for c in bad)
    assert all("failed: OSError: native library missing" in c.failures[0] for c in bad)
    assert all(c.safe for c in result.cells if c.impl == impls.BASELINE)


_CALLABLES = [f.name for f in dataclasses.fields(Adapter) if f.name != "per_thread"]


@pytest.mark.parametrize("impl", MAPS, ids=lambda impl: impl.name)
def test_each_thread_gets_its_own_callables_over_the_same_map(impl):
    # Regression: every worker thread called the same bound methods, made once
    # outside the threads; on free-threaded CPython their shared reference
    # counts were contended on every call, so the harness measured itself.
    ad = impl.build()
    got = []
    th = threading.Thread(target=lambda: got.append(ad.for_thread()))
    th.start()
    th.join()
    mine = got[0]
    shared = {name for name in _CALLABLES if getattr(mine, name) is getattr(ad, name)}
    # The pure-Python core's ShardedMap.get is a per-instance slot (its C core's is a method).
    slot_get = impl.name == "ShardedMap" and _core.NAME == "python"
    assert shared <= ({"get"} if slot_get else set()), shared
    mine.put(3, 3 * workloads.M)
    assert ad.snapshot() == {3: 3 * workloads.M} and ad.get(3) == mine.get(3) == 3 * workloads.M


def test_workers_call_per_thread_in_their_own_thread_and_the_check_uses_the_main_adapter():
    base = impls.by_name()[impls.BASELINE].build()
    made, checked = [], []

    def per_thread() -> Adapter:
        made.append(threading.current_thread())
        return dataclasses.replace(base, per_thread=None)

    def snapshot():
        checked.append(threading.current_thread())
        return base.snapshot()

    def build() -> Adapter:
        return dataclasses.replace(base, snapshot=snapshot, per_thread=per_thread)

    result = run(tiny([Impl("counted", build)], [workloads.by_name()["counter"]], threads=(3,), stress=False))
    assert all(c.safe for c in result.cells)
    assert len(made) == 3 and len(set(made)) == 3 and threading.main_thread() not in made
    assert checked and set(checked) == {threading.main_thread()}


def test_a_per_thread_adapter_that_fails_is_an_error_not_a_hang():
    base = impls.by_name()[impls.BASELINE].build()

    def per_thread() -> Adapter:
        raise RuntimeError("no handle for this thread")

    result = run(tiny([Impl("no-handles", lambda: dataclasses.replace(base, per_thread=per_thread))],
                      [workloads.by_name()["hits"]], threads=(2,), stress=False))
    (cell,) = result.cells
    assert not cell.safe
    assert any("RuntimeError: no handle for this thread" in f for f in cell.failures), cell.failures


def test_prefill_tag_is_m_minus_one():
    # PREFILL is spelled as a literal (immortal on free-threaded builds); it must still be M - 1.
    assert workloads.PREFILL == workloads.M - 1
