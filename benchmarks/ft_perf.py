"""Where free-threaded reads of one shared dict spend their time: ``perf record`` of 2 reader threads.

Runs a small read workload in a child interpreter under ``perf record
--call-graph dwarf`` and reports, for each case, the reads per second and the
share of samples whose stack holds each CPython function that says why reads
do not scale (see docs/maps/semantics.md, "Free-threaded CPython" section):

* ``_PyCriticalSection_BeginSlow``: the dict's own lock was taken and found
  held, i.e. a lookup fell back to the locked path and had to wait;
* ``sched_yield``: the wait spun (``_PyMutex_LockTimed``);
* ``_Py_dict_lookup``: the locked lookup itself (the lock-free one is
  ``_Py_dict_lookup_threadsafe``).

Cases: ``d[k]`` with int keys that the main thread created (each reader has
its own equal key objects), the same with interned str keys and values
(immortal), and ``d.get`` with int keys. One SyncMap case reads through the
map (``mapsafe``'s core as picked by MAPSAFE_CORE).

    PYTHON_GIL=0 python3.13t benchmarks/ft_perf.py [--threads 2] [--reads 2000000]

Needs ``perf`` (Debian's linux-perf) and a free-threaded interpreter; a
software clock event is used, so it works where hardware counters are not
exposed (as in this project's VMs).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time

CASES = {
    "dict[k], int keys": ("int", "subscript"),
    "dict[k], interned keys and values": ("interned", "subscript"),
    "dict.get, int keys": ("int", "get"),
    "SyncMap.get, int keys": ("int", "syncmap"),
}
WATCHED = ("_PyCriticalSection_BeginSlow", "sched_yield", "_Py_dict_lookup")


def child(objects: str, how: str, threads: int, reads: int) -> None:
    """The workload: fill in the main thread, then ``threads`` readers at once; print reads/s."""
    import random

    n_keys = 10_000
    if objects == "interned":
        d = {sys.intern(f"k{i}"): sys.intern(f"v{i}") for i in range(n_keys)}
    else:
        d = {i: -i - 1 for i in range(n_keys)}
    target = d
    if how == "syncmap":
        import mapsafe

        target = mapsafe.SyncMap(d)
    # Bounded waits: a reader that fails breaks the barriers instead of hanging the others.
    ready, go = threading.Barrier(threads + 1, timeout=300), threading.Barrier(threads + 1, timeout=300)
    rates: list[float] = []

    def work(tid: int) -> None:
        rng = random.Random(tid)
        numbers = [rng.randrange(n_keys) for _ in range(reads)]
        keys = [sys.intern(f"k{i}") for i in numbers] if objects == "interned" else numbers
        read = target.__getitem__ if how == "subscript" else target.get
        ready.wait()
        go.wait()
        t0 = time.perf_counter()
        for k in keys:
            read(k)
        rates.append(reads / (time.perf_counter() - t0))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    ready.wait()  # every reader has its keys; only the reads are recorded
    perf_control("enable")
    go.wait()
    for w in workers:
        w.join()
    perf_control("disable")
    print(f"RATE {sum(rates):.0f}")


def perf_control(command: str) -> None:
    """Tell the parent's ``perf record --control`` to start or stop sampling, and wait for its ack."""
    ctl, ack = os.environ.get("FT_PERF_CTL"), os.environ.get("FT_PERF_ACK")
    if not ctl or not ack:
        return  # run by hand, without perf
    with open(ctl, "w") as f:
        f.write(command + "\n")
    with open(ack) as f:
        f.readline()


def shares(report: str) -> dict[str, float]:
    """The inclusive ("children") share of each watched symbol in ``perf report --stdio`` text."""
    out = dict.fromkeys(WATCHED, 0.0)
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+[\d.]+%\s+\[[.k]\]\s+(\S+)", line)
        if not m:
            continue
        sym = m.group(2)
        for name in WATCHED:
            # _Py_dict_lookup exactly (not _Py_dict_lookup_threadsafe); the others may be
            # suffixed (".isra", "(inlined)") or glibc's __GI_ alias.
            hit = sym == name if name == "_Py_dict_lookup" else sym.lstrip("_").startswith(name.lstrip("_"))
            if hit or sym == "__GI_" + name:
                out[name] = max(out[name], float(m.group(1)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="reader threads (default 2)")
    parser.add_argument("--reads", type=int, default=2_000_000, help="reads per thread (default 2000000)")
    parser.add_argument("--child", nargs=2, metavar=("OBJECTS", "HOW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads < 1 or args.reads < 1:
        parser.error("--threads and --reads must be at least 1")
    if args.child:
        child(args.child[0], args.child[1], args.threads, args.reads)
        return 0
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        print("ft_perf: error: needs a free-threaded interpreter (python3.13t; set PYTHON_GIL=0)", file=sys.stderr)
        return 2
    perf = shutil.which("perf")
    if perf is None:
        print("ft_perf: error: perf not found (install Debian's linux-perf)", file=sys.stderr)
        return 2
    env = dict(os.environ, PYTHON_GIL="0")
    print(f"Python {sys.version.split()[0]}, {args.threads} reader threads x {args.reads} reads, "
          f"10000 keys, load average {os.getloadavg()[0]:.2f}")
    head = f"{'case':36} {'reads/s':>9}  " + "  ".join(f"{n:>28}" for n in WATCHED)
    print(head)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (objects, how) in CASES.items():
            data, ctl, ack = (os.path.join(tmp, x) for x in ("perf.data", "ctl", "ack"))
            for fifo in (ctl, ack):
                if not os.path.exists(fifo):
                    os.mkfifo(fifo)
            run = subprocess.run(
                [perf, "record", "-q", "-D", "-1", "--control", f"fifo:{ctl},{ack}", "-F", "999", "-e", "cpu-clock",
                 "--call-graph", "dwarf,16384", "-o", data,
                 sys.executable, __file__, "--threads", str(args.threads), "--reads", str(args.reads),
                 "--child", objects, how],
                env=dict(env, FT_PERF_CTL=ctl, FT_PERF_ACK=ack), capture_output=True, text=True, timeout=900,
            )
            rate = re.search(r"RATE (\d+)", run.stdout)
            if run.returncode != 0 or rate is None:
                print(f"ft_perf: error: {name}: perf record failed: {run.stderr.strip()[-400:]}", file=sys.stderr)
                return 1
            report = subprocess.run(
                [perf, "report", "-i", data, "--children", "--stdio", "-g", "none", "--sort", "sym"],
                capture_output=True, text=True, timeout=900,
            ).stdout
            got = shares(report)
            print(f"{name:36} {int(rate.group(1)) / 1e6:8.2f}M  "
                  + "  ".join(f"{got[n]:27.1f}%" for n in WATCHED), flush=True)
    print("shares: of the samples taken while the readers read (perf is enabled after every reader has built its "
          "keys); reads/s are under perf's sampling, lower than without it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
