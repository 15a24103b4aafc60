"""Single-thread speed of the maps' hot operations, as ratios to the dict idioms.

Each cell times the same loop over the same shuffled keys with the map and
with its baseline, in interleaved rounds in one process, and reports the
median ratio. Ratios, not seconds, because this machine is shared and noisy.

    python benchmarks/map_ratios.py [--keys 10000] [--rounds 15]
    MAPSAFE_CORE=python python benchmarks/map_ratios.py   # the pure-Python core
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time

import mapsafe
from mapsafe import _core

# (label, statement under test, baseline label, baseline statement, bound from issue #2)
CASES = [
    ("SyncMap.get(k)", "g(k)", "dict.get(k)", "dg(k)", 1.6),
    ("SyncMap[k]", "m[k]", "dict[k]", "d[k]", 2.0),
    ("ShardedMap.get(k)", "g(k)", "dict.get(k)", "dg(k)", 3.0),
    ("LockedMap.get(k)", "g(k)", "with lock: d.get(k)", "with lock: dg(k)", 1.5),
    ("SyncMap m[k] = v", "m[k] = 1", "with lock: d[k] = v", "with lock: d[k] = 1", 1.0),
    ("LockedMap m[k] = v", "m[k] = 1", "with lock: d[k] = v", "with lock: d[k] = 1", 1.0),
    ("ShardedMap m[k] = v", "m[k] = 1", "with lock: d[k] = v", "with lock: d[k] = 1", 1.2),
]


def make_timer(stmt: str, keys: list, map_cls: type | None):
    """A function running ``stmt`` once per key, returning elapsed seconds."""
    src = (
        "def timed(keys, m, d, lock):\n"
        "    g = m.get if m is not None else None\n"
        "    dg = d.get\n"
        "    start = perf_counter()\n"
        "    for k in keys:\n"
        f"        {stmt}\n"
        "    return perf_counter() - start\n"
    )
    namespace: dict = {"perf_counter": time.perf_counter}
    exec(src, namespace)
    timed = namespace["timed"]
    base = dict.fromkeys(keys, 0)

    def run() -> float:
        m = map_cls(base) if map_cls is not None else None
        return timed(keys, m, dict(base), threading.Lock())

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    keys = [f"key:{i}" for i in range(args.keys)]
    random.Random(args.seed).shuffle(keys)
    keys = keys * max(1, 200_000 // len(keys))  # ~200k operations per timing

    print(f"Python {sys.version.split()[0]}, mapsafe {_core.LABEL}, {args.keys} str keys, {args.rounds} interleaved rounds, median ratio")
    print(f"{'operation':<22} {'baseline':<22} {'ratio':>6} {'bound':>6}  ok")
    failures = 0
    for label, stmt, base_label, base_stmt, bound in CASES:
        cls = getattr(mapsafe, label.split(".")[0].split("[")[0].split(" ")[0])
        subject = make_timer(stmt, keys, cls)
        baseline = make_timer(base_stmt, keys, None)
        ratios = []
        for _ in range(args.rounds):
            # Interleaved: a burst of noise hits both sides of a round alike.
            b1 = baseline()
            s = subject()
            b2 = baseline()
            ratios.append(s / ((b1 + b2) / 2))
        ratio = statistics.median(ratios)
        ok = ratio <= bound
        failures += not ok
        print(f"{label:<22} {base_label:<22} {ratio:6.2f} {bound:6.1f}  {'yes' if ok else 'NO'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
