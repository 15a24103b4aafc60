"""Slowdown and memory of `mapsafe race` against plain python, on race-free workloads.

Usage: python benchmarks/race_overhead.py [--runs N] [--workload NAME ...]

Each workload runs N times under plain python and N times under the
detector, interleaved (plain, race, plain, race, ...) so that load on a
shared machine hits both alike. Reported: median wall time and median peak
RSS of each, and their ratios. Goal (issue 11): at most 5x time and 3x
memory on each workload. `--churn` also runs thread_per_task at 1,000 and
8,000 requests under the detector and gives the ratio of time per request
(flat is 1.0). Exits 1 if a workload's output differs between the two
runs, or if the detector reported anything on these race-free programs;
a stream_keys run that forgot accesses (the bounded history) is expected
and not a report.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = {
    "wordcount": "4 threads, a queue, a locked shared dict, ~1M dict operations",
    "locked_cache": "4 threads, check-then-act under one lock, 200k lookups",
    "futures_fanout": "ThreadPoolExecutor, per-task dicts merged after result()",
    "thread_per_task": "a thread per request, 8 in flight, 4,000 requests",
    "stream_keys": "1M distinct keys through a 16-entry locked dict, 2 threads",
}


def run_measured(cmd: list) -> tuple:
    start = time.perf_counter()
    r, w = os.pipe()
    e_r, e_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: exec the command with stdout/stderr to the pipes
        os.close(r)
        os.close(e_r)
        os.dup2(w, 1)
        os.dup2(e_w, 2)
        os.execv(cmd[0], cmd)
    os.close(w)
    os.close(e_w)
    with os.fdopen(r) as fh_out, os.fdopen(e_r) as fh_err:
        out = fh_out.read()
        err = fh_err.read()
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    return wall, usage.ru_maxrss / 1024.0, out, err, os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each side per workload (default 5)")
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS), help="default: all")
    parser.add_argument("--churn", action="store_true", help="also: time per request at 1,000 and 8,000 threads")
    args = parser.parse_args()
    names = args.workload or list(WORKLOADS)
    rows = []
    ok = True
    for name in names:
        script = os.path.join(HERE, "race_workloads", f"{name}.py")
        plain_cmd = [sys.executable, script]
        race_cmd = [sys.executable, "-m", "mapsafe", "race", script]
        plain, raced = [], []
        for _ in range(args.runs):
            plain.append(run_measured(plain_cmd))
            raced.append(run_measured(race_cmd))
        if any(p[2] != plain[0][2] for p in plain) or any(r[2] != plain[0][2] for r in raced):
            print(f"{name}: output differs under the detector", file=sys.stderr)
            ok = False
        if any(r[4] != 0 or "DATA RACE" in r[3] for r in raced):
            print(f"{name}: the detector reported on a race-free program:\n{raced[0][3]}", file=sys.stderr)
            ok = False
        pt = statistics.median(p[0] for p in plain)
        rt = statistics.median(r[0] for r in raced)
        pm = statistics.median(p[1] for p in plain)
        rm = statistics.median(r[1] for r in raced)
        rows.append((name, pt, rt, rt / pt, pm, rm, rm / pm))
    print(f"python {sys.version.split()[0]}, {args.runs} interleaved runs each, medians")
    print(f"{'workload':<16}{'plain s':>9}{'race s':>9}{'slowdown':>10}{'plain MiB':>11}{'race MiB':>10}{'memory':>8}")
    for name, pt, rt, tr, pm, rm, mr in rows:
        print(f"{name:<16}{pt:>9.2f}{rt:>9.2f}{tr:>9.1f}x{pm:>11.1f}{rm:>10.1f}{mr:>7.1f}x")
    if args.churn:
        ok = churn(args.runs) and ok
    return 0 if ok else 1


def churn(runs: int) -> bool:
    """Thread churn under the detector: the cost of requests 1,001-8,000
    against that of the first 1,000 (which also carry the start-up)."""
    script = os.path.join(HERE, "race_workloads", "thread_per_task.py")
    small, large = [], []
    for _ in range(runs):
        small.append(run_measured([sys.executable, "-m", "mapsafe", "race", script, "1000"]))
        large.append(run_measured([sys.executable, "-m", "mapsafe", "race", script, "8000"]))
    t1 = statistics.median(r[0] for r in small)
    t8 = statistics.median(r[0] for r in large)
    first, later = t1 / 1000 * 1e3, (t8 - t1) / 7000 * 1e3
    print(f"thread churn: {first:.3f} ms per request over the first 1,000 (start-up included), "
          f"{later:.3f} ms over requests 1,001-8,000: ratio {later / first:.2f} (flat is 1.0 or less)")
    print(f"  peak RSS {statistics.median(r[1] for r in small):.1f} MiB at 1,000, "
          f"{statistics.median(r[1] for r in large):.1f} MiB at 8,000")
    return all(r[4] == 0 for r in small + large)


if __name__ == "__main__":
    sys.exit(main())
