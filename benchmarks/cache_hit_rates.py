"""Cache hit rates beyond the bench's two traces: Zipf skews and cache sizes, loop-plus-scan shapes, as ratios to LRU.

`mapsafe bench -w cache_zipf,cache_loopscan` measures one trace of each
kind. This sweeps their parameters, so that a result there is not an
artefact of one choice: Zipf alpha 0.6 to 1.2 with caches of 1% to 20%
of the keys, and loops over hot sets of a quarter to all of the cache
broken by scans of half to four times its size. Every cache replays the
same seeded trace with the same maxsize; a request that ran the loader is
a miss. One thread: hit rates do not depend on the machine, only on the
trace and the policy.

    python benchmarks/cache_hit_rates.py [--keys 5000] [--seed 0] [-i lru_cache,mapsafe.Cache,LFUCache+Lock]
"""

from __future__ import annotations

import argparse
import random
import sys

from mapsafe.bench import impls
from mapsafe.bench.workloads import Loader, loopscan_trace, zipf_trace

DEFAULT_IMPLS = ("lru_cache", "dict+Lock", "LFUCache+Lock", "mapsafe.Cache")
ALPHAS = (0.6, 0.8, 0.99, 1.2)
SIZES = (0.01, 0.05, 0.2)  # the cache's maxsize, as a fraction of the Zipf key space
HOT = (0.25, 0.5, 0.9, 1.0)  # the loop's hot set, as a fraction of the cache
SCANS = (0.5, 1.0, 4.0)  # the scan between loops, in cache sizes


def hit_rate(impl: impls.Impl, maxsize: int, trace: list[int]) -> float:
    loader = Loader()
    get = impl.cache(maxsize, loader).get
    for k in trace:
        get(k)
    return 1.0 - loader.calls / len(trace)


def table(title: str, names: list[str], rows: list[tuple[str, list[float]]]) -> None:
    """One line per trace: each cache's hit rate, and after it its ratio to the first column's."""
    print(f"\n{title}")
    print(f"{'trace':<36}" + "".join(f"{n:>22}" for n in names))
    for label, rates in rows:
        cells = [f"{rates[0]:.1%}"] + [f"{r:.1%} (x{r / rates[0]:.2f})" if rates[0] else f"{r:.1%}" for r in rates[1:]]
        print(f"{label:<36}" + "".join(f"{c:>22}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=5000, help="Zipf key space; traces are 20 requests per key")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-i", "--implementations", default=",".join(DEFAULT_IMPLS),
                        help="caches to compare, the first being the reference (default: %(default)s)")
    args = parser.parse_args(argv)
    table_of = impls.by_name()
    picked = []
    for name in args.implementations.split(","):
        impl = table_of.get(name)
        if impl is None or impl.cache is None or not impl.bounded:
            print(f"cache_hit_rates: {name!r} is not a bounded cache of mapsafe bench", file=sys.stderr)
            return 2
        ok, reason = impl.availability()
        if ok:
            picked.append(impl)
        else:
            print(f"skipped {name}: {reason}", file=sys.stderr)
    names = [i.name for i in picked]
    length = 20 * args.keys
    print(f"keys {args.keys}, {length} requests per trace, seed {args.seed}; ratios are to {names[0]}")

    rows = []
    for alpha in ALPHAS:
        trace = zipf_trace(random.Random(f"{args.seed}/zipf/{alpha}"), args.keys, alpha, length)
        for size in SIZES:
            maxsize = max(8, int(args.keys * size))
            rates = [hit_rate(i, maxsize, trace) for i in picked]
            rows.append((f"zipf {alpha}, maxsize {maxsize} ({size:.0%})", rates))
    table("Zipf", names, rows)

    rows = []
    maxsize = max(8, args.keys // 20)
    for hot in HOT:
        for scan in SCANS:
            h, s = max(1, int(maxsize * hot)), max(1, int(maxsize * scan))
            cycles = max(3, length // (2 * h + s))
            trace = loopscan_trace(random.Random(f"{args.seed}/loopscan/{hot}/{scan}"), h, 2, s, cycles)
            ceiling = 2 * h / (2 * h + s)
            rows.append((f"hot {h}, scan {s} (best {ceiling:.1%})", [hit_rate(i, maxsize, trace) for i in picked]))
    table(f"Loops (2 per cycle) over a hot set, then a scan; maxsize {maxsize}", names, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
