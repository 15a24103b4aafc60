"""The child processes of test_redis_processes: each opens the shared RedisMap by name and runs threads of updates."""

from __future__ import annotations

import operator
import os
import threading
import traceback

from mapsafe import MISSING
from mapsafe.redis import RedisMap

__all__ = ["run", "CAS_ATTEMPTS"]

CAS_ATTEMPTS = 100_000  # a compare_and_swap loop that loses this many races fails the test
BARRIER_TIMEOUT = 60.0  # seconds for every thread of every process to reach the barrier
JOIN_TIMEOUT = 120.0  # seconds for a thread's rounds; past it the process reports the thread stuck


def _increment(key, old):
    return 1 if old is MISSING else old + 1


def _thread(m: RedisMap, n: int, tag: str, barrier, out: dict) -> None:
    """``n`` rounds of every update kind; ``out`` gets what each call returned."""
    out.update(add=[], float=[], mixed=[], cas=[], cas_attempts=0, compute=[], cia=[], factory=[])

    def factory(key):
        token = f"{tag}#{len(out['factory'])}"  # unique to this call: the stored value names its maker
        out["factory"].append((key, token))
        return token

    try:
        barrier.wait(BARRIER_TIMEOUT)
        for i in range(n):
            out["add"].append(m.merge("add", 1, operator.add))  # an int: one HINCRBY / INCRBY
            out["float"].append(m.merge("float", 0.5, operator.add))  # a float: the float-sum script
            # HINCRBY refused (a float is stored), then the float-sum script
            out["mixed"].append(m.merge("mixed", 1, operator.add))
            for attempt in range(CAS_ATTEMPTS):
                value, found = m.load("cas")
                if m.compare_and_swap("cas", value, value + 1):
                    out["cas"].append(value + 1)
                    break
            else:
                raise AssertionError(f"compare_and_swap lost {CAS_ATTEMPTS} races in a row")
            out["cas_attempts"] += attempt + 1
            out["compute"].append(m.compute("compute", _increment))
            # Every thread of every process meets here, then races to create key i.
            barrier.wait(BARRIER_TIMEOUT)
            key = f"cia:{i}"
            out["cia"].append((key, m.compute_if_absent(key, factory)))
    except BaseException:
        out["error"] = traceback.format_exc()
        barrier.abort()  # the others stop waiting for this thread


def run(url: str, name: str, layout: str, n: int, threads: int, barrier, results) -> None:
    """Open map ``name`` at ``url``, run ``threads`` threads of ``n`` rounds; ``(pid, [records])`` to ``results``."""
    records: list[dict] = [{} for _ in range(threads)]
    try:
        # Enough retries that contention on four processes' worth of threads
        # never exhausts them: a ContentionError would fail the exact totals.
        m = RedisMap(url, name, layout=layout, timeout=30.0, max_retries=10_000)
        if m.layout != layout:
            raise AssertionError(f"asked for layout {layout!r}, got {m.layout!r}")
        workers = [threading.Thread(target=_thread, args=(m, n, f"{os.getpid()}.{t}", barrier, records[t]), daemon=True)
                   for t in range(threads)]
        for worker in workers:
            worker.start()
        for worker, record in zip(workers, records):
            worker.join(JOIN_TIMEOUT)
            if worker.is_alive():
                record["error"] = f"thread {worker.name} still running after {JOIN_TIMEOUT:g}s"
        m.close()
    except BaseException:
        records.append({"error": traceback.format_exc()})
        barrier.abort()
    results.put((os.getpid(), records))
