"""mapsafe bench advisor, compare and JSON schema, on hand-made results with known answers."""

from __future__ import annotations

import json

import jsonschema
import pytest

from mapsafe.bench import schema
from mapsafe.bench.advisor import advise
from mapsafe.bench.compare import compare
from mapsafe.bench.results import BenchResult, Cell, Header, ImplStatus


def header(**over) -> Header:
    fields = dict(python="3.11.7 (CPython)", gil="enabled", cpus=2, date="2026-01-01T00:00:00+00:00",
                  platform="Linux", mapsafe="0.1.0",
                  options={"threads": [1, 2], "duration": 0.1, "rounds": 5, "keys": 100, "read_ratio": 0.9,
                           "seed": 0, "quick": False})
    fields.update(over)
    return Header(**fields)


def cell(workload, param, threads, impl, base, failures=()):
    # Five rounds spread around ``base``: distinct values, so U tests have no ties.
    return Cell(workload, param, threads, impl, [base * f for f in (0.98, 0.99, 1.0, 1.01, 1.02)],
                100.0, 200.0, 300.0, 4096, list(failures))


def result_with(cells, interrupted=False) -> BenchResult:
    names = sorted({c.impl for c in cells})
    return BenchResult(header(), [ImplStatus(n, True) for n in names] + [ImplStatus("cereggii.AtomicDict", False,
                       "cereggii not importable")], list(cells), interrupted)


# -- advisor ------------------------------------------------------------------------------


def test_recommends_a_significantly_faster_safe_implementation():
    r = result_with([cell("hits", None, 2, "dict+Lock", 100), cell("hits", None, 2, "SyncMap", 300),
                     cell("hits", None, 1, "dict+Lock", 100), cell("hits", None, 1, "SyncMap", 50)])
    (rec,) = advise(r).recommendations
    assert (rec.impl, rec.threads) == ("SyncMap", 2)  # decided at the most threads measured
    assert rec.reason == "x3.00 vs dict+Lock (p=0.008)"


def test_unsafe_cells_and_the_unlocked_dict_are_never_recommended():
    r = result_with([
        cell("counter", None, 2, "dict+Lock", 100),
        cell("counter", None, 2, "broken", 500, failures=["3 counters wrong"]),
        cell("counter", None, 2, "dict (unsafe)", 900),  # passed its checks this time; still not a choice
    ])
    (rec,) = advise(r).recommendations
    assert rec.impl == "dict+Lock"
    assert rec.reason == "fastest, and the simplest"


def test_insignificant_win_goes_to_the_simplest():
    near = cell("hits", None, 2, "SyncMap", 100)
    near.rounds = [101.0, 99.5, 100.5, 102.0, 98.0]
    r = result_with([cell("hits", None, 2, "dict+Lock", 100), near])
    (rec,) = advise(r).recommendations
    assert rec.impl == "dict+Lock"
    assert rec.reason.startswith("nothing measurably faster: best was SyncMap")
    assert "p=0." in rec.reason and "use the simplest" in rec.reason


def test_too_few_rounds_is_said_rather_than_a_p_value():
    fast, slow = cell("hits", None, 2, "SyncMap", 500), cell("hits", None, 2, "dict+Lock", 100)
    fast.rounds, slow.rounds = fast.rounds[:3], slow.rounds[:3]
    (rec,) = advise(result_with([slow, fast])).recommendations
    assert rec.impl == "dict+Lock"
    assert rec.reason == ("nothing measurably faster: best was SyncMap x5.00, too few rounds to tell "
                          "(3 and 3 give p >= 0.10); use the simplest")


def _sweep(ratios: dict[float, float], threads: int = 2) -> list[Cell]:
    cells = []
    for rr, factor in ratios.items():
        cells.append(cell("read_ratio", rr, threads, "dict+Lock", 100))
        cells.append(cell("read_ratio", rr, threads, "SyncMap", 100 * factor))
    return cells


def test_crossover_is_the_lowest_ratio_from_which_syncmap_wins_all_the_way_up():
    (x,) = advise(result_with(_sweep({0.5: 0.6, 0.8: 1.2, 0.95: 1.5, 0.99: 2.0}))).crossovers
    assert x.read_ratio == 0.8
    assert x.text == "SyncMap beats dict+Lock from 80% reads up (x1.20 there)"
    (x,) = advise(result_with(_sweep({0.5: 1.1, 0.8: 0.9, 0.95: 1.5, 0.99: 2.0}))).crossovers
    assert x.read_ratio == 0.95  # a win at 50% that is lost at 80% is not the crossover


def test_no_crossover_is_said_plainly():
    (x,) = advise(result_with(_sweep({0.5: 0.3, 0.8: 0.5, 0.95: 0.7, 0.99: 0.9}))).crossovers
    assert x.read_ratio is None
    assert x.text == ("no crossover in the measured range (50%-99% reads): SyncMap is not faster than dict+Lock "
                      "at every measured read ratio")
    (x,) = advise(result_with(_sweep({0.5: 1.3, 0.8: 1.4, 0.95: 1.5, 0.99: 1.6}))).crossovers
    assert x.text.endswith("the crossover is at or below 50%")


def test_crossover_not_reported_when_syncmap_failed_a_check():
    cells = _sweep({0.5: 2.0, 0.99: 2.0})
    cells[1].failures.append("1 wrong results")
    (x,) = advise(result_with(cells)).crossovers
    assert x.read_ratio is None and "failed a correctness check" in x.text


# -- compare -------------------------------------------------------------------------------


def test_compare_ratios_and_significance():
    old = result_with([cell("hits", None, 1, "SyncMap", 100), cell("counter", None, 1, "SyncMap", 100),
                       cell("growth", None, 1, "SyncMap", 100)])
    new = result_with([cell("hits", None, 1, "SyncMap", 150), cell("counter", None, 1, "SyncMap", 100),
                       cell("misses", None, 1, "SyncMap", 100)])
    new.header = header(python="3.13.0 (CPython)")
    cmp = compare(old, new)
    by = {d.workload: d for d in cmp.deltas}
    assert set(by) == {"hits", "counter"}
    assert by["hits"].ratio == pytest.approx(1.5)
    assert by["hits"].p == pytest.approx(2 / 252) and by["hits"].significant
    assert by["counter"].ratio == pytest.approx(1.0)
    assert by["counter"].p == 1.0 and not by["counter"].significant
    assert cmp.only_old == [("growth", None, 1, "SyncMap")]
    assert cmp.only_new == [("misses", None, 1, "SyncMap")]
    assert cmp.differences == ["python: 3.11.7 (CPython) -> 3.13.0 (CPython)",
                               "workloads: counter, growth, hits -> counter, hits, misses"]


# -- schema --------------------------------------------------------------------------------


def _sample() -> BenchResult:
    cells = [cell("hits", None, 1, "dict+Lock", 1e6), cell("read_ratio", 0.95, 2, "SyncMap", 2e6),
             cell("counter", None, 2, "dict (unsafe)", 3e6, failures=["1 counters wrong: 5 of 10 increments lost"])]
    cells[0].p50_ns = cells[0].p99_ns = cells[0].max_ns = cells[0].peak_bytes = None
    return result_with(cells, interrupted=True)


def test_json_round_trip_and_json_schema(tmp_path):
    result = _sample()
    path = tmp_path / "run.json"
    schema.write(path, result, advise(result))
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, json.loads(schema.SCHEMA_FILE.read_text()))
    assert doc["schema"] == "mapsafe-bench" and doc["version"] == 2
    assert doc["advice"]["recommendations"][0]["impl"] == "dict+Lock"
    back = schema.read(path)
    assert back == result


def _broken_docs():
    good = schema.to_json(_sample())
    cases = {
        "wrong schema": ({**good, "schema": "pytest-benchmark"}, "not a mapsafe bench result"),
        "future version": ({**good, "version": 3}, "unsupported bench schema version 3"),
        "no cells": ({k: v for k, v in good.items() if k != "cells"}, "missing field 'cells'"),
    }
    bad_threads = json.loads(json.dumps(good))
    bad_threads["cells"][0]["threads"] = 0
    cases["zero threads"] = (bad_threads, "$.cells[0].threads: must be at least 1")
    bad_rounds = json.loads(json.dumps(good))
    bad_rounds["cells"][1]["rounds"] = ["fast"]
    cases["text rounds"] = (bad_rounds, "$.cells[1].rounds")
    bool_cpus = json.loads(json.dumps(good))
    bool_cpus["header"]["cpus"] = True
    cases["bool cpus"] = (bool_cpus, "$.header.cpus: expected int")
    no_unit = json.loads(json.dumps(good))
    del no_unit["cells"][2]["unit"]
    cases["version 2 cell without a unit"] = (no_unit, "$.cells[2]: missing field 'unit'")
    bad_unit = json.loads(json.dumps(good))
    bad_unit["cells"][0]["unit"] = "furlongs"
    cases["unknown unit"] = (bad_unit, "$.cells[0].unit: expected one of ops/s, loads, hit rate, B/entry")
    return cases


def test_version_1_files_are_still_read_as_ops_per_second(tmp_path):
    # Regression guard for the version 2 bump (cells gained a unit): saved version 1 runs still compare.
    doc = schema.to_json(_sample())
    doc["version"] = 1
    for c in doc["cells"]:
        del c["unit"]
    jsonschema.validate(doc, json.loads(schema.SCHEMA_FILE.read_text()))
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(doc))
    back = schema.read(path)
    assert back == _sample() and {c.unit for c in back.cells} == {"ops/s"}


@pytest.mark.parametrize("name", sorted(_broken_docs()))
def test_validator_and_json_schema_reject_the_same_documents(name):
    doc, message = _broken_docs()[name]
    with pytest.raises(schema.SchemaError) as info:
        schema.validate(doc)
    assert message in str(info.value)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, json.loads(schema.SCHEMA_FILE.read_text()))


def test_rough_edge_7_compare_warns_about_every_setting_the_runs_differ_in():
    old = result_with([cell("hits", None, 1, "SyncMap", 100), cell("hits", None, 2, "SyncMap", 100)])
    new = result_with([cell("hits", None, 1, "SyncMap", 100), cell("hits", None, 1, "LockedMap", 100)])
    new.header = header(mapsafe="0.1.0 (pure-Python core)")
    new.header.options = {**old.header.options, "threads": [1], "rounds": 9, "redis": "redis://h:1/0 (Redis 8)"}
    assert compare(old, new).differences == [
        f"mapsafe: {old.header.mapsafe} -> 0.1.0 (pure-Python core)",
        f"threads: {','.join(map(str, old.header.options['threads']))} -> 1",
        f"rounds: {old.header.options['rounds']} -> 9",
        "redis: (not set) -> redis://h:1/0 (Redis 8)",
        "implementations: SyncMap -> LockedMap, SyncMap",
    ]
    assert compare(old, old).differences == []


def test_rough_edge_9_json_files_get_the_mode_open_would_give(tmp_path):
    import os
    import stat

    old_mask = os.umask(0o022)
    try:
        fresh = tmp_path / "run.json"
        schema.write(fresh, result_with([cell("hits", None, 1, "SyncMap", 100)]))
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # not mkstemp's 0600
        os.umask(0o077)
        other = tmp_path / "private.json"
        schema.write(other, result_with([cell("hits", None, 1, "SyncMap", 100)]))
        assert stat.S_IMODE(other.stat().st_mode) == 0o600  # the user's umask is honoured
        fresh.chmod(0o664)
        schema.write(fresh, result_with([cell("hits", None, 1, "SyncMap", 100)]))
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o664  # a file rewritten keeps its mode
        assert schema.read(fresh).cells[0].impl == "SyncMap"
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    finally:
        os.umask(old_mask)


def test_rough_edge_17_the_plot_shows_every_workload_from_zero_with_its_spread_and_a_legend_aside():
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    from mapsafe.bench.plot import figure

    cells = [cell(w, None, t, impl, base * t) for w, base in (("hits", 2e6), ("counter", 1e6))
             for t in (1, 2) for impl in ("dict+Lock", "SyncMap")]
    fig = figure(result_with(cells))
    try:
        shown = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_title() for ax in shown] == ["hits: throughput vs threads", "counter: throughput vs threads"]
        for ax in shown:
            assert ax.get_ylim()[0] == 0  # from 0
            assert isinstance(ax.yaxis.get_major_formatter(), EngFormatter)  # 2M, not 2 and a 1e6 offset
            assert ax.get_legend() is None  # no legend over the data
            assert len(ax.collections) == 2  # a min-to-max band per implementation
            band = ax.collections[0].get_paths()[0].vertices[:, 1]
            assert band.min() < band.max()
        assert len(fig.legends) == 1 and [t.get_text() for t in fig.legends[0].get_texts()] == ["dict+Lock", "SyncMap"]
    finally:
        plt.close(fig)
