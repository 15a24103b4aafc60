"""Free-threaded scaling: read-mostly throughput from 1 to 2 threads, per map and dict idiom, as ratios.

Every run gives each thread the same fixed number of operations on one
shared map, prefilled with --keys keys, and reports total ops/s over
the wall time from the first thread's start to the last one's end. Each
thread makes its own callables (bound methods, closures, SyncMap readers,
cereggii handles) and its own key objects, inside the thread and before
the barrier, then runs its sequence once untimed to warm up. Runs are
interleaved: round r of every implementation before round r + 1 of any.

--objects picks the keys. int (the default) and str give each thread its
own key objects, equal to the map's but not the same objects, as computed
keys are; interned gives interned strings as keys and values, which
free-threaded 3.13 makes immortal, so that no read changes the reference
count of a key or a value. The difference between the two is what
CPython's handling of shared keys and values costs, not the map.

What limits the int and str rows on free-threaded 3.13 is CPython's dict,
not the maps (``benchmarks/ft_perf.py`` shows it with ``perf``): a lookup
with an equal key that is not the stored object falls back to the dict's own
lock when the stored key belongs to another thread, and two readers then
contend that lock; ``dict.get`` also nests it (CPython gh-129336, fixed in
3.14), which is why the dict.get and dict+Lock rows are so slow there. The
docs/maps/semantics.md's "Free-threaded CPython" section has the details.

CPU/wall is the threads' CPU time over the run's wall time (first start to
last end). Two threads running in parallel give close to 2.0; less means
the threads waited for a lock or for a CPU, and on a busy machine (see the
load average printed first) the 2-thread numbers say more about the
machine than the map. The last column, the ratio of operations per
CPU-second, is what the machine's load disturbs least: below x1.00, each
operation got slower when a second thread ran (contention).

    PYTHON_GIL=0 python3.13t benchmarks/ft_scaling.py [--keys 10000] [--ops 100000] [--rounds 5]
    python3 benchmarks/ft_scaling.py --reads 0.99 -i SyncMap+reader,dict+Lock   # a GIL build runs too, with a note
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import sysconfig
import threading
import time
from array import array
from typing import Any, Callable

import mapsafe
from mapsafe import _core
from mapsafe.bench import impls

# A row's builder returns ``fill(key, value)`` (used by the main thread) and
# ``bind()``, which a worker thread calls to get its own ``(get, put)``.
Bind = Callable[[], tuple[Callable[[Any], Any], Callable[[Any, Any], None]]]
Builder = Callable[[], tuple[Callable[[Any, Any], None], Bind]]

# The mapsafe bench idioms used here, in table order (names as in `mapsafe bench --list`).
BENCH_ROWS = ("dict+Lock", "SyncMap", "SyncMap+reader", "LockedMap", "ShardedMap",
              "cereggii.AtomicDict", "ft_utils.ConcurrentDict")


def _from_bench(impl: impls.Impl) -> Builder:
    def build():
        ad = impl.build()

        def bind():
            mine = ad.for_thread()
            return mine.get, mine.put

        return ad.put, bind

    return build


def _dict_reads(subscript: bool) -> Builder:
    """Unlocked reads of a plain dict (``d.get`` or ``d[k]``, bound by each thread); writes under a Lock."""

    def build():
        d: dict = {}
        lock = threading.Lock()

        def bind():
            def put(k, v):
                with lock:
                    d[k] = v

            return (d.__getitem__ if subscript else d.get), put

        return d.__setitem__, bind

    return build


def rows() -> list[tuple[str, Builder, str]]:
    """``(name, builder, reason it cannot run here or "")`` for every row, in table order."""
    table = impls.by_name()
    out = []
    for name in BENCH_ROWS:
        impl = table[name]
        ok, reason = impl.availability()
        out.append((name, _from_bench(impl), "" if ok else reason))
        if name == "dict+Lock":
            out.append(("dict.get (Lock writes)", _dict_reads(False), ""))
            out.append(("dict[k] (Lock writes)", _dict_reads(True), ""))
    return out


def segments(keys: list, values: list, writes: list[bool]) -> list[tuple[list, Any, Any]]:
    """The sequence as (keys read in a row, then the key written or None, its value) triples.

    So the timed loop reads with a bare ``for k in run: get(k)``: unpacking a
    pair per operation would cost more than some of the reads it times (3.13t
    does not specialize bytecode, so each unpack allocates an iterator).
    """
    out, run = [], []
    for k, v, w in zip(keys, values, writes):
        if w:
            out.append((run, k, v))
            run = []
        else:
            run.append(k)
    out.append((run, None, None))
    return out


def _loop(get, put, segs) -> None:
    for run, written, value in segs:
        for k in run:
            get(k)
        if written is not None:
            put(written, value)


def make_key(objects: str, i: int) -> Any:
    """Key number i: an int, a new str, or an interned str (immortal on free-threaded 3.13, one object for all)."""
    if objects == "int":
        return i
    return sys.intern(f"key:{i}") if objects == "interned" else f"key:{i}"


def value_of(objects: str, i: int) -> Any:
    """The value every write stores for key number i: a new int, or an interned str (immortal)."""
    return sys.intern(f"value:{i}") if objects == "interned" else -i - 1


def run_once(build: Builder, n_keys: int, threads: int, seqs: list[tuple[array, bytes]],
             objects: str) -> tuple[float, float, str]:
    """One run: ``(ops per second, CPU time / wall time, problem or "")``."""
    fill, bind = build()
    for i in range(n_keys):
        fill(make_key(objects, i), value_of(objects, i))
    barrier = threading.Barrier(threads + 1)
    problems: list[str] = []
    spans: list[tuple[float, float, float]] = []  # per thread: start, end, its CPU seconds

    def work(tid: int) -> None:
        try:
            packed_keys, packed_writes = seqs[tid]
            # Made by this thread: its own key objects (equal to the map's keys, as
            # computed keys are; interned strings are the map's own), its own
            # callables; then one untimed pass.
            numbers, writes = packed_keys.tolist(), list(map(bool, packed_writes))
            keys = numbers if objects == "int" else [make_key(objects, i) for i in numbers]
            values = [value_of(objects, i) for i in numbers]
            segs = segments(keys, values, writes)
            get, put = bind()
            _loop(get, put, segs)
            wrong = sum(1 for k, v in zip(keys[:1000], values) if get(k) != v)
            if wrong:
                problems.append(f"{wrong} of 1000 reads returned a value never stored")
        except Exception as exc:  # reported in the table; the run still ends
            problems.append(f"{type(exc).__name__}: {exc}")
            barrier.abort()
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        # Each thread times itself: the main thread may be scheduled late after the barrier.
        cpu0, t0 = time.thread_time(), time.perf_counter()
        _loop(get, put, segs)
        t1, cpu1 = time.perf_counter(), time.thread_time()
        spans.append((t0, t1, cpu1 - cpu0))

    workers = [threading.Thread(target=work, args=(tid,)) for tid in range(threads)]
    gc.collect()
    gc.disable()  # no collection pauses inside a timed run; each run starts clean
    try:
        for th in workers:
            th.start()
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        for th in workers:
            th.join()
    finally:
        gc.enable()
    if problems:
        return 0.0, 0.0, problems[0]
    wall = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    cpu = sum(used for _, _, used in spans)
    return threads * len(seqs[0][0]) / wall, cpu / wall, ""


def sequences(seed: int, reads: float, threads: int, ops: int, n_keys: int) -> list[tuple[array, bytes]]:
    """Per thread: its keys and where it writes (1) or reads (0), packed for the thread to unpack."""
    out = []
    for tid in range(threads):
        rng = random.Random(f"{seed}/{reads}/{threads}/{tid}")
        keys = array("q", (rng.randrange(n_keys) for _ in range(ops)))
        writes = bytes(rng.random() >= reads for _ in range(ops))
        out.append((keys, writes))
    return out


def gil_note() -> str:
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "GIL build: threads take turns running Python code, so 2 threads cannot beat 1 here"
    if getattr(sys, "_is_gil_enabled", lambda: True)():
        return "free-threaded build with the GIL enabled at run time (set PYTHON_GIL=0): threads take turns"
    return ""


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000, help="keys in the map (default 10000)")
    parser.add_argument("--ops", type=int, default=100_000, help="operations per thread per run (default 100000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported (default 5)")
    parser.add_argument("--reads", default="0.99,0.9", help="read fractions (default 0.99,0.9)")
    parser.add_argument("--threads", default="1,2", help="thread counts; the ratio is last over first (default 1,2)")
    parser.add_argument("--implementations", "-i", default="", help="rows to run, comma-separated (default: all)")
    parser.add_argument("--objects", choices=("int", "str", "interned"), default="int",
                        help="int or str keys, each thread's its own objects, with int values (int is the "
                        "default); interned: interned str keys and values, immortal on free-threaded 3.13, so "
                        "that no reference count of a key or value is shared")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", "-v", action="store_true", help="also print every run")
    args = parser.parse_args()
    ratios = [float(x) for x in args.reads.split(",")]
    counts = [int(x) for x in args.threads.split(",")]
    if not all(0.0 <= r <= 1.0 for r in ratios) or not counts or min(counts) < 1:
        parser.error("--reads must be fractions in [0, 1] and --threads counts >= 1")

    cpus = os.cpu_count() or 1
    load = os.getloadavg()
    print(f"Python {sys.version.split()[0]} {sys.implementation.name}, mapsafe {mapsafe.__version__} ({_core.LABEL}), "
          f"{cpus} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if load[0] > max(0.5, cpus - max(counts)):
        print(f"WARNING: the machine is busy (1-minute load {load[0]:.2f} on {cpus} CPUs): {max(counts)}-thread "
              "runs will be starved of CPU; watch CPU/wall, and rerun when the load is low")

    wanted = {x.strip().lower() for x in args.implementations.split(",") if x.strip()}
    table = [r for r in rows() if not wanted or r[0].lower() in wanted]
    unknown = wanted - {r[0].lower() for r in rows()}
    if unknown:
        parser.error(f"unknown implementations {sorted(unknown)}; known: {', '.join(r[0] for r in rows())}")
    for name, _, reason in table:
        if reason:
            print(f"skipped {name}: {reason}")
    table = [r for r in table if not r[2]]
    note = gil_note()  # after the peers' imports: an extension can turn the GIL back on
    if note:
        print(f"NOTE: {note}")
    kind = "interned str keys" if args.objects == "interned" else f"{args.objects} keys (each thread's its own objects)"
    print(f"{args.keys} {kind}, {args.ops} operations per thread per run, {args.rounds} interleaved rounds, "
          "medians; writes store into existing keys")

    seqs = {(r, t): sequences(args.seed, r, t, args.ops, args.keys) for r in ratios for t in counts}
    results: dict[tuple[str, float, int], list[tuple[float, float]]] = {}
    problems: dict[str, str] = {}
    for rnd in range(args.rounds):
        start = rnd % len(table)
        for r in ratios:
            for name, build, _ in table[start:] + table[:start]:
                for t in counts:
                    rate, busy, problem = run_once(build, args.keys, t, seqs[(r, t)], args.objects)
                    if args.verbose:
                        print(f"  round {rnd + 1} {r:.0%} {name} x{t}: {fmt_rate(rate)} ops/s, CPU/wall {busy:.2f}"
                              + (f", {problem}" if problem else ""), flush=True)
                    if problem:
                        problems.setdefault(name, problem)
                    else:
                        results.setdefault((name, r, t), []).append((rate, busy))

    lo, hi = counts[0], counts[-1]
    for r in ratios:
        print()
        print(f"{r:.0%} reads")
        head = (["implementation"] + [f"{t} thr ops/s" for t in counts] + [f"x{hi}/x{lo}"]
                + [f"CPU/wall {t} thr" for t in counts] + [f"per CPU-s x{hi}/x{lo}"])
        lines = [head]
        for name, _, _ in table:
            cells = [results.get((name, r, t)) for t in counts]
            if not all(cells):
                lines.append([name] + ["-"] * (len(head) - 1))
                continue
            rates = [statistics.median(x[0] for x in c) for c in cells]
            busy = [statistics.median(x[1] for x in c) for c in cells]
            per_cpu = [statistics.median(x[0] / x[1] for x in c) for c in cells]  # ops per CPU-second
            starved = any(b < 0.9 * min(t, cpus) for b, t in zip(busy, counts))
            ratio = f"x{rates[-1] / rates[0]:.2f}" + (" *" if starved else "")
            lines.append([name] + [fmt_rate(x) for x in rates] + [ratio] + [f"{b:.2f}" for b in busy]
                         + [f"x{per_cpu[-1] / per_cpu[0]:.2f}"])
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        for line in lines:
            print("  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(line, widths))))
    for name, problem in problems.items():
        print(f"{name}: a run failed: {problem}")
    load = os.getloadavg()
    print()
    print("* CPU/wall below 0.9 x min(threads, CPUs) in a column: its threads did not all run all the time "
          "(waiting for a lock, or for a CPU on a busy machine), so the ratio is not the map's alone")
    print("per CPU-s: the same ratio for operations per CPU-second of the threads; x1.00 means each operation "
          "took as long with more threads, below means each got slower (contention). A starved run hides "
          "contention only where its threads did not overlap")
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
