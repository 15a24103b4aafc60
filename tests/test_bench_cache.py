"""mapsafe bench cache workloads: stampede counts, deterministic hit rates, memory, the advisor's cache guide."""

from __future__ import annotations

import io
import json

import jsonschema
import pytest

from mapsafe.bench import impls, render, schema, workloads
from mapsafe.bench.advisor import advise
from mapsafe.bench.impls import LRU, CacheAdapter, Impl
from mapsafe.bench.results import BenchResult, Cell, Header, ImplStatus
from mapsafe.bench.runner import Settings, run

CACHES = [impl for impl in impls.IMPLEMENTATIONS if impl.cache is not None and impl.availability()[0]]
MAPSAFE = [impls.by_name()["mapsafe.Cache"], impls.by_name()["mapsafe.cached"]]
W = workloads.by_name()


def tiny(impl_list, workload_list, threads=(1, 2), rounds=1, keys=64, seed=1, stress=True) -> Settings:
    return Settings(threads=list(threads), duration=0.005, rounds=rounds, keys=keys, read_ratio=0.9, seed=seed,
                    impls=list(impl_list), workloads=list(workload_list), stress=stress, join_timeout=30.0)


def rounds_of(result: BenchResult) -> dict[tuple, list[float]]:
    return {c.key: c.rounds for c in result.cells}


def test_cache_workloads_run_tiny_on_every_cache_with_stress_rounds_and_pass_the_schema(tmp_path):
    # Which cells run is checked with the maps in test_bench_runner; this adds the stress rounds and the file.
    result = run(tiny(CACHES, workloads.GROUPS["cache"]))
    assert not result.interrupted
    for cell in result.cells:
        assert cell.safe, (cell.key, cell.failures)
        assert cell.unit == W[cell.workload].unit and cell.rounds
    assert {c.impl for c in result.cells if c.workload == "cache_zipf"} == {
        i.name for i in CACHES if i.bounded}  # an unbounded cache has no eviction to compare
    path = tmp_path / "cache.json"
    schema.write(path, result, advise(result))
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, json.loads(schema.SCHEMA_FILE.read_text()))
    assert schema.read(path) == result
    out = io.StringIO()
    render._plain_result(result, advise(result), out)
    text = out.getvalue()
    for needle in ("loads/burst", "bursts >1", "hit rate", "vs lru_cache", "bytes/entry", "Caches, measured:",
                   "Caches, when to use which"):
        assert needle in text


@pytest.mark.parametrize("impl", MAPSAFE, ids=lambda impl: impl.name)
def test_stampede_runs_mapsafe_loader_exactly_once_per_burst(impl):
    # The exact criterion: however many threads ask one cold key at once, one load.
    result = run(tiny([impl], [W["cache_stampede"]], threads=(2, 8), rounds=5))
    assert [c.threads for c in result.cells] == [2, 8]
    for cell in result.cells:
        assert cell.rounds == [1.0] * 5, cell.rounds
        assert cell.safe, cell.failures  # the stress round at 1e-5 s switch interval loaded once too


def _loads_twice(maxsize, loader) -> CacheAdapter:
    """A test-only cache that runs the loader twice on every miss."""
    d: dict = {}

    def get(k):
        if k not in d:
            loader(k)
            d[k] = loader(k)
        return d[k]

    return CacheAdapter(get, d.__len__)


def test_a_cache_that_promises_call_once_and_loads_twice_is_unsafe_and_not_chosen():
    liar = Impl("liar", None, cache=_loads_twice, call_once=True)
    honest = Impl("honest", None, cache=_loads_twice)  # no promise: its two loads are reported, not failed
    result = run(tiny([liar, honest, MAPSAFE[0]], [W["cache_stampede"]], threads=(1,), rounds=3))
    cells = {c.impl: c for c in result.cells}
    assert cells["liar"].rounds == cells["honest"].rounds == [2.0] * 3
    assert cells["liar"].failures == ["the loader ran 2 times for one key, which this cache promises to load once"]
    assert cells["honest"].safe and cells["mapsafe.Cache"].rounds == [1.0] * 3
    (rec,) = advise(result).recommendations
    assert (rec.impl, rec.reason) == ("mapsafe.Cache", "1 load in every burst")


@pytest.mark.parametrize("name", ["cache_zipf", "cache_loopscan"])
def test_hit_rates_are_the_same_on_every_run_and_differ_with_the_seed(name):
    picked = [impls.by_name()[LRU], MAPSAFE[0]]
    a = rounds_of(run(tiny(picked, [W[name]], keys=2000)))
    b = rounds_of(run(tiny(picked, [W[name]], keys=2000)))
    assert a == b and len(a) == 2 and all(len(r) == 1 for r in a.values())
    assert W[name].plan(2000, 1, None, seed=1).seqs != W[name].plan(2000, 1, None, seed=2).seqs


@pytest.mark.parametrize("name", ["cache_loopscan", "cache_zipf"])
def test_s3fifo_hits_more_than_lru_on_scans_and_on_skew(name):
    # S3-FIFO's claim (and the issue's): a better hit rate than LRU on scan-heavy and skewed traces.
    result = run(tiny([impls.by_name()[LRU], *MAPSAFE], [W[name]], keys=2000))
    rate = {c.impl: c.rounds[0] for c in result.cells}
    assert rate["mapsafe.Cache"] == rate["mapsafe.cached"]  # one policy, two front ends
    assert rate["mapsafe.Cache"] > rate[LRU], rate


def test_loopscan_trace_is_loops_then_scans_of_never_repeated_keys():
    w = W["cache_loopscan"]
    plan = w.plan(2000, 1, None, seed=0)
    c = plan.maxsize
    trace = plan.seqs[0]
    hot, cycle = c // 2, c // 2 * 2 + 2 * c
    assert len(trace) == cycle * w._cycles(2000)
    scans = [k for k in trace if k >= hot]
    assert len(scans) == len(set(scans))  # every scan key is asked once
    first = trace[:cycle]
    assert sorted(first[:hot]) == sorted(first[hot:2 * hot]) == list(range(hot)) and min(first[2 * hot:]) >= hot


def test_memory_per_entry_is_measured_with_every_entry_held():
    result = run(tiny([impls.by_name()[LRU], *MAPSAFE], [W["cache_memory"]], keys=500))
    for cell in result.cells:
        assert cell.safe and cell.threads == 1 and len(cell.rounds) == 1
        assert cell.rounds[0] > 0, cell.key


def test_throughput_workloads_miss_exactly_their_share():
    for name, misses in (("cache_hit90", 410), ("cache_hit99", 41)):  # round(4096 * 0.1), round(4096 * 0.01)
        plan = W[name].plan(1000, 2, None, seed=0)
        for warm in plan.reads:
            assert warm[:workloads.SEQ_LEN].count(False) == misses


# -- the advisor's cache guide, on hand-made results with known answers ----------------------------


def _header(gil: str = "enabled") -> Header:
    return Header(python="3.13.0 (CPython)", gil=gil, cpus=2, date="2026-01-01T00:00:00+00:00", platform="Linux",
                  mapsafe="0.1.0", options={"threads": [1, 4], "keys": 1000})


def _cell(workload, threads, impl, rounds, failures=()):
    return Cell(workload, None, threads, impl, list(rounds), failures=list(failures), unit=W[workload].unit)


def _speed(workload, threads, impl, base):
    return _cell(workload, threads, impl, [base * f for f in (0.98, 0.99, 1.0, 1.01, 1.02)])


def _guides(cells, gil="enabled"):
    result = BenchResult(_header(gil), [ImplStatus(n, True) for n in sorted({c.impl for c in cells})], cells)
    return {g.when: g for g in advise(result).caches}


def test_the_guide_names_who_measured_best_and_only_that():
    cells = [
        _cell("cache_stampede", 4, LRU, [4, 4, 3]),
        _cell("cache_stampede", 4, "mapsafe.cached", [1, 1, 1]),
        _cell("cache_stampede", 4, "LRUCache+Condition", [1, 2, 1]),  # once twice is not call-once
        _cell("cache_loopscan", 1, LRU, [0.1667]),
        _cell("cache_loopscan", 1, "mapsafe.cached", [0.3321]),
        _cell("cache_zipf", 1, LRU, [0.492]),
        _cell("cache_zipf", 1, "mapsafe.cached", [0.490]),  # within half a point: tied
        _speed("cache_hit99", 1, LRU, 6e6),
        _speed("cache_hit99", 1, "mapsafe.cached", 1e6),
        _speed("cache_hit99", 4, LRU, 1e6),
        _speed("cache_hit99", 4, "mapsafe.cached", 3e6),
        _cell("cache_memory", 1, LRU, [93.0]),
        _cell("cache_memory", 1, "mapsafe.cached", [174.0]),
    ]
    g = _guides(cells, gil="disabled (free-threaded build)")
    assert g["a key must load only once"].impls == ["mapsafe.cached"]
    assert g["a key must load only once"].text.endswith("more than one: lru_cache up to 4, LRUCache+Condition up to 2")
    assert g["scans pass through the cache"].impls == ["mapsafe.cached"]
    assert g["scans pass through the cache"].text == "mapsafe.cached 33.2% x1.99, lru_cache 16.7% (ratios to lru_cache)"
    assert g["keys are skewed (Zipf)"].impls == [LRU, "mapsafe.cached"]
    assert g["the hot path is hits on one thread"].impls == [LRU]
    assert g["4 threads hit it at once (no GIL)"].impls == ["mapsafe.cached"]
    assert g["memory per entry matters"].impls == [LRU]


def test_the_guide_does_not_credit_a_failed_cell_or_a_win_too_close_to_call():
    cells = [
        _cell("cache_loopscan", 1, LRU, [0.30]),
        _cell("cache_loopscan", 1, "mapsafe.cached", [0.33], failures=["get(3) returned None"]),
        _speed("cache_hit99", 1, LRU, 1.00e6),
        _speed("cache_hit99", 1, "mapsafe.cached", 1.001e6),
    ]
    g = _guides(cells)
    assert g["scans pass through the cache"].impls == [LRU]
    assert sorted(g["the hot path is hits on one thread"].impls) == sorted([LRU, "mapsafe.cached"])


def test_workload_names_and_groups():
    names = {w.name for w in workloads.GROUPS["cache"]}
    assert names == {"cache_stampede", "cache_zipf", "cache_loopscan", "cache_hit90", "cache_hit99", "cache_memory"}
    assert W["cache-stampede"] is W["cache_stampede"]  # hyphens work too
    assert all(w.kind == "map" for w in workloads.DEFAULT)
