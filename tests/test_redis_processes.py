"""RedisMap shared by processes: four processes of two threads each update one map, and every total is exact."""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections import defaultdict

import pytest

import _redis_workers
from _redis_server import start_or_fail
from mapsafe.redis import RedisMap

PROCS = 4
THREADS = 2
ROUNDS = 100  # per thread; each round is every update kind once
CALLERS = PROCS * THREADS
DEADLINE = 180.0  # seconds for all processes to report; past it they are killed and the test fails


@pytest.fixture
def server():
    running = start_or_fail()
    yield running
    running.stop()


def _run_workers(url: str, name: str, layout: str) -> list[dict]:
    """Start PROCS spawned processes on map ``name`` and return every thread's record."""
    ctx = multiprocessing.get_context("spawn")  # a fork would copy this process's pool and threads
    barrier = ctx.Barrier(CALLERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=_redis_workers.run, args=(url, name, layout, ROUNDS, THREADS, barrier, results),
                         daemon=True) for _ in range(PROCS)]
    reported: dict[int, list[dict]] = {}
    try:
        for proc in procs:
            proc.start()
        deadline = time.monotonic() + DEADLINE
        while len(reported) < PROCS:
            try:
                pid, records = results.get(timeout=0.5)
                reported[pid] = records
                continue
            except queue.Empty:
                pass
            dead = [proc for proc in procs if proc.exitcode not in (None, 0) and proc.pid not in reported]
            if dead:
                pytest.fail(f"worker {dead[0].pid} died with exit code {dead[0].exitcode} before reporting")
            if time.monotonic() > deadline:
                pytest.fail(f"only {len(reported)} of {PROCS} workers reported within {DEADLINE:g}s")
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(10)
        results.close()
    records = [record for per_proc in reported.values() for record in per_proc]
    errors = [record["error"] for record in records if "error" in record]
    assert not errors, "a worker failed:\n" + "\n".join(errors)
    assert len(records) == CALLERS
    return records


def _commandstats(client, command: str) -> tuple[int, int]:
    """``(calls, failed_calls)`` of ``command`` since the last CONFIG RESETSTAT, counting calls from scripts."""
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return stats.get("calls", 0), stats.get("failed_calls", 0)


@pytest.mark.parametrize("layout", ["hash", "keys"])
def test_four_processes_of_two_threads_get_exact_totals(server, layout):
    name = f"procs-{layout}"
    m = RedisMap(server.url, name, layout=layout)
    assert m.layout == layout
    m["cas"] = 0
    m["mixed"] = 0.5  # a float, so merge(..., 1, add) finds HINCRBY refused and takes the float-sum script
    m._client.config_resetstat()

    records = _run_workers(server.url, name, layout)
    total = CALLERS * ROUNDS

    def every(kind):
        return sorted(value for record in records for value in record[kind])

    # Each call returned the value its own update produced, so the returns
    # are the counter's every step, once each: no update lost or doubled.
    assert m["add"] == total
    assert every("add") == list(range(1, total + 1))
    assert m["float"] == 0.5 * total
    assert every("float") == [0.5 * j for j in range(1, total + 1)]
    assert m["mixed"] == 0.5 + total
    assert every("mixed") == [0.5 + j for j in range(1, total + 1)]
    assert m["cas"] == total
    assert every("cas") == list(range(1, total + 1))
    assert m["compute"] == total
    assert every("compute") == list(range(1, total + 1))
    cas_attempts = sum(record["cas_attempts"] for record in records)
    assert cas_attempts >= total

    # "add" is one increment command each; "mixed" tries one, refused, then the float-sum script.
    incr = "hincrby" if layout == "hash" else "incrby"
    calls, failed = _commandstats(m._client, incr)
    assert (calls, failed) == (2 * total, total)

    # compute_if_absent: every caller of a key got the value stored, which one of its factories made.
    returned = defaultdict(list)
    made = defaultdict(list)
    for record in records:
        for key, value in record["cia"]:
            returned[key].append(value)
        for key, token in record["factory"]:
            made[key].append(token)
    assert sorted(returned) == sorted(f"cia:{i}" for i in range(ROUNDS))
    for key, values in returned.items():
        stored = m[key]
        assert values == [stored] * CALLERS, f"{key}: callers got {set(values)}, stored {stored!r}"
        assert stored in made[key], f"{key}: stored {stored!r} was made by no factory"
        assert 1 <= len(made[key]) <= CALLERS  # each caller ran its factory at most once
    factory_calls = sum(len(tokens) for tokens in made.values())
    print(f"\n{layout} on Redis {server.version}: {PROCS}x{THREADS}x{ROUNDS}: add={m['add']} float={m['float']} "
          f"mixed={m['mixed']} cas={m['cas']} (attempts {cas_attempts}) compute={m['compute']} "
          f"{incr} calls={calls} failed={failed}; compute_if_absent keys={len(returned)} "
          f"factory calls={factory_calls}")
    m.close()
