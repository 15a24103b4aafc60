"""`mapsafe bench` from the command line: a real tiny run, JSON, plot, compare, bad input, Ctrl-C."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from mapsafe.bench import render, schema
from mapsafe.cli import main

TINY = ["bench", "--threads", "1,2", "--duration", "0.01", "--rounds", "2", "--keys", "64", "--no-progress"]


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch, tmp_path):
    # Config is read from the nearest pyproject.toml and MAPSAFE_* variables: keep both neutral.
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if name.startswith("MAPSAFE_"):
            monkeypatch.delenv(name)


def one_line_error(capsys, argv, *needles) -> str:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors exit from inside the parser
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def test_real_tiny_run_with_json_plot_and_compare(capsys, tmp_path):
    out_json, out_png = tmp_path / "a.json", tmp_path / "a.png"
    code = main(TINY + ["--workloads", "counter,read_ratio", "--implementations", "dict+Lock,SyncMap,dict (unsafe)",
                        "--json", str(out_json), "--plot", str(out_png)])
    out = capsys.readouterr().out
    assert code == 0
    assert "GIL" in out and "read_ratio @ 95% reads" in out and "Advisor" in out
    assert "SyncMap vs dict+Lock on the read-ratio sweep:" in out
    doc = json.loads(out_json.read_text())
    jsonschema.validate(doc, json.loads(schema.SCHEMA_FILE.read_text()))
    cells = {(c["workload"], c["param"], c["threads"], c["impl"]) for c in doc["cells"]}
    assert ("counter", None, 2, "SyncMap") in cells and ("read_ratio", 0.5, 1, "dict+Lock") in cells
    assert len(cells) == (1 + 5) * 2 * 3
    assert all(len(c["rounds"]) == 2 for c in doc["cells"])
    assert all(not c["failures"] for c in doc["cells"] if c["impl"] != "dict (unsafe)")
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["bench", "compare", str(out_json), str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "mapsafe bench compare" in out and "x1.00" in out and "p=1.000" in out


def test_rough_edge_8_quick_keeps_explicit_flags_and_name_selection(monkeypatch):
    import argparse

    from mapsafe.bench import cli as bench_cli

    parser = argparse.ArgumentParser()
    bench_cli.add_arguments(parser)
    # A flag given with --quick wins; the configured values are what --quick replaces.
    s = bench_cli.settings_from_args(parser.parse_args(["--quick", "--threads", "1,2,4,8", "--keys", "50000"]))
    assert (s.threads, s.rounds, s.duration, s.keys, s.quick) == ([1, 2, 4, 8], 5, 0.015, 50000, True)
    monkeypatch.setenv("MAPSAFE_BENCH_THREADS", "1,16")
    monkeypatch.setenv("MAPSAFE_BENCH_ROUNDS", "20")
    s = bench_cli.settings_from_args(parser.parse_args(["--quick"]))
    assert (s.threads, s.rounds, s.duration, s.keys) == ([1, 2], 5, 0.015, 1000)
    monkeypatch.delenv("MAPSAFE_BENCH_THREADS")
    monkeypatch.delenv("MAPSAFE_BENCH_ROUNDS")
    s = bench_cli.settings_from_args(parser.parse_args(["-i", "syncmap,DICT+LOCK,SyncMap", "-w", "hits"]))
    assert [i.name for i in s.impls] == ["SyncMap", "dict+Lock"]  # case-insensitive, deduplicated
    assert [w.name for w in s.workloads] == ["hits"]


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--workloads", "hits,nope"], ["--workloads: unknown workload 'nope'", "known: hits"]),
        (["--implementations", "dict+Mutex"], ["unknown implementation 'dict+Mutex'", "SyncMap"]),
        (["--threads", "0,2"], ["--threads: thread counts must be 1..512, got 0,2"]),
        (["--threads", "two"], ["--threads", "two"]),
        (["--read-ratio", "1.5"], ["--read-ratio: must be between 0 and 1, got 1.5"]),
        (["--duration", "0"], ["--duration: must be in (0, 3600]"]),
        (["--keys", "3"], ["--keys: must be 16..10000000, got 3"]),
        (["--plot", "out.txt"], ["--plot: 'out.txt' must end in .png"]),
        (["-w", "cache_zipf,cache_memory", "--plot", "out.png"], ["--plot: none of the workloads asked for"]),
        (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needles):
    one_line_error(capsys, ["bench"] + argv, *needles)


def test_bad_environment_value_names_the_variable(capsys, monkeypatch):
    monkeypatch.setenv("MAPSAFE_BENCH_THREADS", "1,x")
    one_line_error(capsys, ["bench", "-w", "hits"], "MAPSAFE_BENCH_THREADS")


def test_bad_pyproject_value_is_named(capsys, tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.mapsafe.bench]\nthreads = [0]\n")
    one_line_error(capsys, ["bench", "-w", "hits"], "bench.threads (from ", "pyproject.toml", "got 0")


def test_compare_rejects_unreadable_and_wrong_files(capsys, tmp_path):
    one_line_error(capsys, ["bench", "compare", str(tmp_path / "missing.json"), str(tmp_path / "x.json")],
                   "cannot read", "missing.json")
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    one_line_error(capsys, ["bench", "compare", str(junk), str(junk)], "junk.json: not JSON")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"machine_info": {}, "benchmarks": []}))
    one_line_error(capsys, ["bench", "compare", str(other), str(other)], "other.json: not a mapsafe bench result",
                   "(give two files that 'mapsafe bench --json FILE' wrote)")
    one_line_error(capsys, ["bench", "compare", str(other)], "required: NEW.json")


def test_ctrl_c_prints_what_was_gathered_and_exits_130(capsys, monkeypatch):
    class PressCtrlC:
        def __init__(self) -> None:
            self.left = 3

        def start(self, total):
            pass

        def advance(self, label):
            self.left -= 1
            if not self.left:
                raise KeyboardInterrupt

        def stop(self):
            pass

    monkeypatch.setattr(render, "make_progress", lambda enabled=True: PressCtrlC())
    code = main(TINY + ["-w", "hits,misses", "-i", "dict+Lock,SyncMap"])
    out = capsys.readouterr().out
    assert code == 130
    assert "INTERRUPTED" in out and "hits" in out
    assert "misses" not in out.split("Advisor")[0]  # never started


def test_without_rich_says_so_once_and_prints_plain_tables(capsys, monkeypatch):
    monkeypatch.setattr(render, "have_rich", lambda: False)
    code = main(TINY + ["-w", "counter", "-i", "dict+Lock,SyncMap", "--threads", "1", "--rounds", "1"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err.count('pip install "mapsafe[cli]"') == 1
    assert "implementation" in captured.out and "counter" in captured.out and "┃" not in captured.out


def test_list_shows_workloads_and_skip_reasons(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "hits" in out and "Go's LoadMostlyHits" in out
    for name in ("dict+Lock", "SyncMap", "cereggii.AtomicDict", "ft_utils.ConcurrentDict", "lru_cache",
                 "mapsafe.cached", "cache_stampede", "group cache:"):
        assert name in out


def test_module_entry_point_bad_input_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mapsafe", "bench", "--threads", "-1"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "mapsafe bench: error: --threads: thread counts must be 1..512, got -1 (see 'mapsafe bench --help')"
    ]


def test_cache_group_and_hyphenated_names_pick_the_cache_workloads_and_only_caches():
    import argparse

    from mapsafe.bench import cli as bench_cli
    from mapsafe.bench import workloads

    parser = argparse.ArgumentParser()
    bench_cli.add_arguments(parser)
    s = bench_cli.settings_from_args(parser.parse_args(["-w", "cache"]))
    assert s.workloads == list(workloads.GROUPS["cache"])
    assert {i.name for i in s.impls + s.skipped} >= {"lru_cache", "mapsafe.Cache", "mapsafe.cached"}
    assert "SyncMap" not in {i.name for i in s.impls}  # no cells to run, so not listed as run
    s = bench_cli.settings_from_args(parser.parse_args(["-w", "cache-stampede,hits,cache_stampede"]))
    assert [w.name for w in s.workloads] == ["cache_stampede", "hits"]
    s = bench_cli.settings_from_args(parser.parse_args([]))
    assert s.workloads == list(workloads.DEFAULT) and "lru_cache" not in {i.name for i in s.impls}


def test_implementations_that_run_none_of_the_workloads_are_one_line_and_exit_2(capsys):
    one_line_error(capsys, ["bench", "-w", "cache_zipf", "-i", "SyncMap"],
                   "--implementations: none of SyncMap runs any of the workloads cache_zipf")
