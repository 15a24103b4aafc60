"""Instructions per operation of the maps and their peers, counted by callgrind.

Callgrind counts the instructions a program executes, which does not
change with the machine's load, so these counts are comparable between
runs on a shared machine where timings are not. Each cell runs a loop of
the operation over 1,000 prefilled str keys under callgrind twice, with two
loop lengths, and reports the difference divided by the extra operations,
less the same for an empty loop body: the cost of the operation itself,
with Python's start-up, the set-up and the loop cancelled out.

    python benchmarks/map_instructions.py [--ops get,set] [--impls SyncMap,dict+Lock] [--jobs 2]
    MAPSAFE_CORE=python python benchmarks/map_instructions.py   # the pure-Python core

Peers (``pip install "mapsafe[peers]"``) are measured where they import:
ft_utils' ConcurrentDict (3.12+) and cereggii's AtomicDict (3.13+), each
with its own idiom for the operation (ft_utils' counter is its AtomicInt64
cell idiom, cereggii's is reduce_sum). A dash: no such operation there.
Needs valgrind.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile

# Set-up per implementation: names the statements use. `keys` is the list
# of 1,000 str keys, every one present with the value 0 before the loop.
SETUP = {
    "dict+Lock": "import threading\nd = dict.fromkeys(keys, 0)\nlock = threading.Lock()\nf2 = lambda k, v: 0\nf1 = lambda k: 0\n",
    "SyncMap": "import mapsafe\nm = mapsafe.SyncMap(dict.fromkeys(keys, 0))\n",
    "ShardedMap": "import mapsafe\nm = mapsafe.ShardedMap(dict.fromkeys(keys, 0))\n",
    "LockedMap": "import mapsafe\nm = mapsafe.LockedMap(dict.fromkeys(keys, 0))\n",
    "ft_utils": (
        "from ft_utils.concurrency import AtomicInt64, ConcurrentDict\n"
        "d = ConcurrentDict()\n"
        "for k in keys: d[k] = 0\n"
        "cells = ConcurrentDict()\n"
        "for k in keys: cells[k] = AtomicInt64(0)\n"
        "g, sd, cg = d.get, d.setdefault, cells.get\n"
    ),
    "cereggii": (
        "import cereggii\n"
        "d = cereggii.AtomicDict()\n"
        "for k in keys: d[k] = 0\n"
        "g, reduce_sum = d.get, d.reduce_sum\n"
    ),
}
REQUIRES = {"ft_utils": "ft_utils", "cereggii": "cereggii"}

_MAP = {  # the three maps share one statement per operation
    "get": "g(k)",
    "set": "m[k] = 1",
    "in": "k in m",
    "len": "len(m)",
    "del+set": "m[k] = 1\ndel m[k]",
    "pop+set": "m[k] = 1\npop(k, None)",
    "merge-counter": "merge(k, 1, add)",
    "add-counter": "addn(k, 1)",
    "load_or_store": "los(k, 1)",
    "setdefault": "sdef(k, 1)",
    "swap": "swap(k, 1)",
    "compare_and_swap": "cas(k, 0, 0)",
    "compute": "compute(k, f2)",
    "compute_if_absent": "cia(k, f1)",
}
_MAP_BIND = (
    "import operator\nadd = operator.add\ng, pop, merge, los, sdef = m.get, m.pop, m.merge, m.load_or_store, m.setdefault\n"
    "swap, cas, compute, cia = m.swap, m.compare_and_swap, m.compute, m.compute_if_absent\n"
    "addn = getattr(m, 'add', None)\n"
    "f2 = lambda k, v: 0\nf1 = lambda k: 0\n"
)
STATEMENTS = {
    "dict+Lock": {
        "get": "with lock: d.get(k)",
        "set": "with lock: d[k] = 1",
        "in": "with lock: k in d",
        "len": "with lock: len(d)",
        "del+set": "with lock: d[k] = 1\nwith lock: del d[k]",
        "pop+set": "with lock: d[k] = 1\nwith lock: d.pop(k, None)",
        "merge-counter": "with lock: d[k] = d.get(k, 0) + 1",
        "add-counter": "with lock: d[k] = d.get(k, 0) + 1",
        "load_or_store": "with lock: d.setdefault(k, 1)",
        "setdefault": "with lock: d.setdefault(k, 1)",
        "swap": "with lock:\n    old = d.get(k)\n    d[k] = 1",
        "compare_and_swap": "with lock:\n    if d.get(k) == 0: d[k] = 0",
        "compute": "with lock: d[k] = f2(k, d.get(k))",
        "compute_if_absent": "with lock:\n    if k not in d: d[k] = f1(k)",
    },
    "SyncMap": _MAP,
    "ShardedMap": _MAP,
    "LockedMap": _MAP,
    "ft_utils": {
        "get": "g(k)",
        "set": "d[k] = 1",
        "in": "k in d",
        "len": "len(d)",
        "del+set": "d[k] = 1\ndel d[k]",
        "pop+set": "d[k] = 1\nd.pop(k, None)",
        # ft_utils' counter idiom: the dict holds AtomicInt64 cells, made once.
        "merge-counter": "cell = cg(k)\nif cell is None: cell = cells.setdefault(k, AtomicInt64(0))\ncell.incr()",
        "add-counter": "cell = cg(k)\nif cell is None: cell = cells.setdefault(k, AtomicInt64(0))\ncell.incr()",
        "load_or_store": "sd(k, 1)",
        "setdefault": "sd(k, 1)",
    },
    "cereggii": {
        "get": "g(k)",
        "set": "d[k] = 1",
        "len": "len(d)",
        "del+set": "d[k] = 1\ndel d[k]",
        "merge-counter": "reduce_sum(((k, 1),))",
        "add-counter": "reduce_sum(((k, 1),))",
    },
}
for _name in ("SyncMap", "ShardedMap", "LockedMap"):
    SETUP[_name] += _MAP_BIND
OPS = list(_MAP)
IMPLS = list(SETUP)
SHORT, LONG = 10_000, 50_000  # loop lengths; the difference is what is counted


def script(impl: str, stmt: str, n: int) -> str:
    body = "\n".join("        " + line for line in stmt.splitlines())
    return (
        "keys = [f'key:{i}' for i in range(1000)]\n"
        + SETUP[impl]
        + "def run(n):\n"
        "    for i in range(n // 1000):\n"
        "      for k in keys:\n"
        + body
        + "\n"
        f"run({n})\n"
    )


def count(impl: str, stmt: str, n: int, workdir: str) -> int:
    """Instructions callgrind counts for the whole program looping ``n`` times."""
    fd, path = tempfile.mkstemp(suffix=".py", dir=workdir)
    with os.fdopen(fd, "w") as f:
        f.write(script(impl, stmt, n))
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, path],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        last = [line for line in proc.stderr.splitlines() if line and not line.startswith("==")][-1:]
        raise RuntimeError(f"{impl}: {stmt!r} failed: {' '.join(last)}")
    found = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in callgrind's output:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def per_op(impl: str, stmt: str, workdir: str) -> float:
    return (count(impl, stmt, LONG, workdir) - count(impl, stmt, SHORT, workdir)) / (LONG - SHORT)


def available(impl: str) -> bool:
    module = REQUIRES.get(impl)
    return module is None or importlib.util.find_spec(module) is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated; default: all")
    parser.add_argument("--impls", default=",".join(IMPLS), help="comma-separated; default: all that import")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("map_instructions: valgrind is not installed (apt install valgrind)", file=sys.stderr)
        return 2
    ops = [o for o in args.ops.split(",") if o]
    impls = [i for i in args.impls.split(",") if i]
    unknown = [o for o in ops if o not in OPS] + [i for i in impls if i not in IMPLS]
    if unknown:
        print(f"map_instructions: unknown op or impl {', '.join(unknown)}; ops: {', '.join(OPS)}; impls: {', '.join(IMPLS)}", file=sys.stderr)
        return 2
    impls = [i for i in impls if available(i)]
    from mapsafe import _core

    with tempfile.TemporaryDirectory() as workdir, concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        loop = pool.submit(per_op, "dict+Lock", "pass", workdir)
        cells = {
            (op, impl): pool.submit(per_op, impl, STATEMENTS[impl][op], workdir)
            for op in ops
            for impl in impls
            if op in STATEMENTS[impl]
        }
        empty = loop.result()
        print(
            f"Python {sys.version.split()[0]}, mapsafe {_core.LABEL}; instructions per operation "
            f"(callgrind; the empty loop's {empty:.0f} subtracted)"
        )
        print(f"{'operation':<18}" + "".join(f"{i:>12}" for i in impls))
        for op in ops:
            row = []
            for impl in impls:
                cell = cells.get((op, impl))
                if cell is None:
                    row.append(f"{'-':>12}")
                    continue
                try:
                    row.append(f"{cell.result() - empty:>12.0f}")
                except RuntimeError as exc:
                    row.append(f"{'error':>12}")
                    print(exc, file=sys.stderr)
            print(f"{op:<18}" + "".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
