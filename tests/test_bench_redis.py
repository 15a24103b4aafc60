"""`mapsafe bench --redis`: RedisMap against plain redis-py on a real server, the server left as it was, bad input.

Every test that needs a server runs on one tests/_redis_server.py starts
on loopback (never a fake). No timing is asserted: only the structure of
the results and their invariants.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import types

import jsonschema
import pytest
import redis
from _redis_server import start_or_fail
from test_bench_cli import one_line_error

from mapsafe.bench import cli as bench_cli
from mapsafe.bench import render, runner, schema, workloads
from mapsafe.bench.impls import RAW_REDIS, REDIS_MAP, THROWAWAY_PREFIX
from mapsafe.bench.server import redact
from mapsafe.cli import main

TINY = ["bench", "--threads", "1,2", "--duration", "0.02", "--rounds", "2", "--keys", "64", "--no-progress"]
VARIANTS = [("redis_rw", 0.0), ("redis_rw", 0.9), ("redis_rw", 1.0), ("redis_counter", None)]


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch, tmp_path):
    # Config is read from the nearest pyproject.toml and MAPSAFE_* variables: keep both neutral.
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("MAPSAFE_") and name != "MAPSAFE_REDIS_SERVER":
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def server():
    srv = start_or_fail()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    c = redis.Redis.from_url(server.url)
    yield c
    c.close()


def _dump(client: redis.Redis) -> dict[bytes, bytes]:
    """Every key on the server with its serialized value: two dumps are equal when nothing was touched."""
    return {key: client.dump(key) for key in client.scan_iter(count=1000)}


@pytest.fixture
def others(client):
    """Keys someone else keeps on the server, some named like RedisMap's or the bench's own; their dump."""
    client.flushdb()
    client.set("user:1", "alice")
    client.rpush("queue", "a", "b")
    client.hset("mapsafe:{sessions}:h", mapping={"1": "2"})  # another program's RedisMap
    client.hset("mapsafe:{sessions}:meta", mapping={"serializer": "json", "layout": "hash", "format": "1"})
    client.hset(f"{THROWAWAY_PREFIX}not-this-run:raw", "1", "1")  # a leftover: only a run's own keys are removed
    return _dump(client)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings(*argv):
    parser = argparse.ArgumentParser()
    bench_cli.add_arguments(parser)
    return bench_cli.settings_from_args(parser.parse_args(list(argv)))


# -- real runs ----------------------------------------------------------------------


def test_redismap_rows_beside_plain_redis_py_and_the_server_left_as_it_was(capsys, tmp_path, server, client, others):
    out_json = tmp_path / "r.json"
    code = main(TINY + ["--redis", server.url, "-w", "redis", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads(out_json.read_text())
    jsonschema.validate(doc, json.loads(schema.SCHEMA_FILE.read_text()))
    assert doc["header"]["options"]["redis"] == f"{server.url} (Redis {server.version})"
    cells = {(c["workload"], c["param"], c["threads"], c["impl"]): c for c in doc["cells"]}
    expected = {(w, p, t, i) for w, p in VARIANTS for t in (1, 2) for i in (RAW_REDIS, REDIS_MAP)}
    assert set(cells) == expected
    for key, c in cells.items():
        assert c["failures"] == [], key
        assert c["unit"] == "ops/s" and len(c["rounds"]) == 2 and all(r > 0 for r in c["rounds"]), key
        assert c["max_ns"] >= c["p99_ns"] >= c["p50_ns"] > 0, key
        assert c["peak_bytes"] is None  # the map's memory is the server's
    # The overhead is a ratio within this run, one per RedisMap cell; nothing is recommended.
    overheads = {(o["workload"], o["param"], o["threads"]): o for o in doc["advice"]["overheads"]}
    assert set(overheads) == {(w, p, t) for w, p in VARIANTS for t in (1, 2)}
    for key, o in overheads.items():
        mine, base = cells[(*key, REDIS_MAP)], cells[(*key, RAW_REDIS)]
        assert (o["impl"], o["versus"]) == (REDIS_MAP, RAW_REDIS)
        assert o["ratio"] == pytest.approx(statistics.median(mine["rounds"]) / statistics.median(base["rounds"]))
        assert (o["p99_ns"], o["versus_p99_ns"]) == (mine["p99_ns"], base["p99_ns"])
    assert doc["advice"]["recommendations"] == []
    for text in ("redis_rw @ 90% reads", "redis_counter", "vs redis-py", "RedisMap", "(Redis ",
                 "The API's cost over the plain client"):
        assert text in out
    assert "Advisor" not in out
    assert _dump(client) == others  # the throwaway hashes are gone; nothing else was touched


def test_plain_reporter_renders_the_redis_rows(capsys, monkeypatch, server, client, others):
    monkeypatch.setattr(render, "have_rich", lambda: False)
    code = main(TINY + ["--redis", server.url, "-w", "redis_rw", "--threads", "1", "--rounds", "1",
                        "--read-ratio", "0.5"])
    captured = capsys.readouterr()
    assert code == 0, captured.out
    assert "┃" not in captured.out
    for title in ("redis_rw @ 0% reads", "redis_rw @ 50% reads", "redis_rw @ 100% reads"):
        assert title in captured.out
    rows = [line.split() for line in captured.out.splitlines() if line.startswith((RAW_REDIS, REDIS_MAP))]
    assert len(rows) == 3 * 2 and all(row[-1] == "ok" for row in rows)
    assert {row[-2] for row in rows if row[0] == RAW_REDIS} == {"x1.00"}
    assert _dump(client) == others


def test_ctrl_c_in_a_round_still_removes_the_throwaway_keys(capsys, monkeypatch, server, client, others):
    calls = [0]

    def sleep(seconds):
        calls[0] += 1
        if calls[0] == 3:  # the second round's timed phase, its hash filled on the server
            raise KeyboardInterrupt
        time.sleep(seconds)

    fake_time = types.SimpleNamespace(sleep=sleep, perf_counter=time.perf_counter, monotonic=time.monotonic)
    monkeypatch.setattr(runner, "time", fake_time)
    code = main(TINY + ["--redis", server.url, "-w", "redis_rw"])
    assert code == 130
    assert "INTERRUPTED" in capsys.readouterr().out
    assert _dump(client) == others


def test_a_server_that_goes_away_mid_run_fails_its_cells_without_a_traceback(capsys, monkeypatch):
    doomed = start_or_fail()  # its own server: the module's stays up for the other tests
    try:
        class KillAfterFirstRound:
            def start(self, total):
                pass

            def advance(self, label):
                doomed.kill()

            def stop(self):
                pass

        monkeypatch.setattr(render, "make_progress", lambda enabled=True: KillAfterFirstRound())
        code = main(TINY + ["--redis", doomed.url, "-w", "redis_counter", "--threads", "1"])
        captured = capsys.readouterr()
    finally:
        doomed.stop()
    assert code == 1, captured.err  # a finding: the cells that could not run say why
    assert "Traceback" not in captured.err + captured.out
    assert "UNSAFE" in captured.out and "RedisUnavailable" in captured.out


# -- selection and config -------------------------------------------------------------


def test_redis_adds_the_redis_group_unless_one_is_named(server, monkeypatch):
    s = settings("-w", "hits", "--redis", server.url)
    assert [w.name for w in s.workloads] == ["hits", "redis_rw", "redis_counter"]
    assert {REDIS_MAP, RAW_REDIS, "dict+Lock"} <= {i.name for i in s.impls}
    assert s.server == f"{server.url} (Redis {server.version})"
    s = settings("-w", "redis_counter", "--redis", server.url)
    assert [w.name for w in s.workloads] == ["redis_counter"]
    assert [i.name for i in s.impls] == [RAW_REDIS, REDIS_MAP]  # the reference first, as in the tables
    monkeypatch.setenv("MAPSAFE_BENCH_REDIS", server.url)  # the config table's bench.redis
    s = settings("-w", "hits")
    assert [w.name for w in s.workloads] == ["hits", "redis_rw", "redis_counter"]
    monkeypatch.delenv("MAPSAFE_BENCH_REDIS")
    s = settings("-w", "all")
    assert not any(w.kind == "redis" for w in s.workloads) and s.server == ""
    assert workloads.GROUPS["redis"] == (workloads.by_name()["redis_rw"], workloads.by_name()["redis_counter"])


def test_list_names_the_redis_rows(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "available with --redis URL" in out and "redis_counter" in out and "group redis:" in out


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--redis", "localhost:6379"],
         ["--redis: 'localhost:6379' is not a Redis URL", "redis://", "(see 'mapsafe bench --help')"]),
        (["--redis", "redis://127.0.0.1:notaport/0"], ["'redis://127.0.0.1:notaport/0' is not a Redis URL",
                                                       "notaport"]),
        (["--redis", "redis://127.0.0.1:6379/sessions"], ["is not a Redis URL", "database must be a number"]),
        (["-w", "redis_rw"], ["--workloads: redis_rw runs on a Redis server: pass --redis URL"]),
        (["-w", "hits", "-i", "RedisMap,redis-py"], ["--implementations: RedisMap, redis-py run on a Redis server"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needles):
    one_line_error(capsys, ["bench"] + argv, *needles)


def test_closed_port_is_one_line_naming_the_url_and_hiding_its_password(capsys):
    port = _free_port()
    line = one_line_error(capsys, ["bench", "--redis", f"redis://127.0.0.1:{port}/0", "-w", "redis"],
                          f"--redis redis://127.0.0.1:{port}/0: the server cannot be used",
                          "(check that a Redis server is running")
    assert "refused" in line.lower()
    line = one_line_error(capsys, ["bench", "--redis", f"redis://:hunter2@127.0.0.1:{port}/0", "-w", "redis"],
                          f"redis://:***@127.0.0.1:{port}/0")
    assert "hunter2" not in line


def test_closed_port_from_the_command_line_has_no_traceback(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPSAFE_BENCH_")}
    proc = subprocess.run([sys.executable, "-m", "mapsafe", "bench", "--redis", f"redis://127.0.0.1:{port}/0"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"mapsafe bench: error: --redis redis://127.0.0.1:{port}/0: the server cannot be used")


def test_without_the_redis_extra_the_message_names_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis now raises ImportError
    monkeypatch.setitem(sys.modules, "mapsafe.redis", None)
    one_line_error(capsys, ["bench", "--redis", "redis://127.0.0.1:6379/0", "-w", "redis"],
                   "--redis: the RedisMap rows need redis-py", 'pip install "mapsafe[redis]"')


def test_redact_hides_passwords_and_keeps_the_rest():
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact("redis://app:pw@h:1/2") == "redis://app:***@h:1/2"
    assert redact("rediss://:pw@h:1/0?password=pw&ssl_cert_reqs=none") == (
        "rediss://:***@h:1/0?password=***&ssl_cert_reqs=none")
