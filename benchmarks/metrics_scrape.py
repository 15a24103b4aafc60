"""What a Prometheus scrape costs a map under load: writer throughput while scraping every 100 ms, as a ratio.

Each round runs the same writer threads on the same map twice, for the
same time: once alone, once while another thread scrapes the map every
--interval seconds (``generate_latest`` on a registry holding a
PrometheusCollector: the collect and the text rendering an in-process
exposition server does per request). The round's ratio is the writers'
ops/s with scraping over ops/s without; the two halves swap order every
round, so drift on this shared machine hits both alike, and the median
of the rounds is reported, with the rounds' lowest and highest ratio
(their spread is this machine's noise). 1.00 means the scrapes cost the writers
nothing; the scrape takes no map lock, so what it can cost is CPU (and,
with the GIL, the interpreter) for the time a scrape runs, which is also
printed. Writers do 3 gets for each store, on keys of a prefilled map.

    python benchmarks/metrics_scrape.py [--seconds 1] [--rounds 7] [--writers 2] [--keys 10000]
    PYTHON_GIL=0 python3.13t benchmarks/metrics_scrape.py -m ShardedMap
"""

from __future__ import annotations

import argparse
import statistics
import sys
import sysconfig
import threading
import time
from typing import Any, Callable

from prometheus_client import CollectorRegistry, generate_latest

import mapsafe
from mapsafe import _core
from mapsafe.metrics import PrometheusCollector

# name -> (make the map, holding these keys; its (get, put)). stats=True: every counter is kept.
MAPS: dict[str, Callable[[list], tuple[Any, Callable, Callable]]] = {
    "SyncMap": lambda keys: _plain(mapsafe.SyncMap(dict.fromkeys(keys, 0), stats=True)),
    "LockedMap": lambda keys: _plain(mapsafe.LockedMap(dict.fromkeys(keys, 0), stats=True)),
    "ShardedMap": lambda keys: _plain(mapsafe.ShardedMap(dict.fromkeys(keys, 0), stats=True)),
    "ShardedMap-maxsize": lambda keys: _plain(mapsafe.ShardedMap(dict.fromkeys(keys, 0), maxsize=len(keys),
                                                                 stats=True)),
    "Cache": lambda keys: _cache(keys),
}


def _plain(m: Any) -> tuple[Any, Callable, Callable]:
    return m, m.get, m.__setitem__


def _cache(keys: list) -> tuple[Any, Callable, Callable]:
    c = mapsafe.Cache(len(keys))
    for k in keys:
        c.put(k, 0)
    return c, c.get_if_present, c.put


def run_phase(get: Callable, put: Callable, keys: list, writers: int, seconds: float,
              scrape: Callable[[], Any] | None, interval: float) -> tuple[float, list[float]]:
    """Writers' total ops/s over ``seconds``, and the duration of each scrape made meanwhile."""
    stop = threading.Event()
    start = threading.Barrier(writers + 1 + (scrape is not None))
    counts = [0] * writers
    scrapes: list[float] = []

    def writer(t: int) -> None:
        n, ks, nk = 0, keys, len(keys)
        i = t * 7919
        start.wait()
        while not stop.is_set():
            for _ in range(256):
                k = ks[i % nk]
                if i & 3:
                    get(k)
                else:
                    put(k, i)
                i += 1
            n += 256
        counts[t] = n

    def scraper() -> None:
        start.wait()
        while not stop.wait(interval):
            t0 = time.perf_counter()
            scrape()
            scrapes.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(writers)]
    if scrape is not None:
        threads.append(threading.Thread(target=scraper))
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return sum(counts) / elapsed, scrapes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each half of a round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--writers", type=int, default=2, help="writer threads")
    parser.add_argument("--keys", type=int, default=10_000, help="entries in the map")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between scrapes")
    parser.add_argument("-m", "--map", action="append", choices=sorted(MAPS), help="default: all")
    parser.add_argument("--min-ratio", type=float, default=0.9,
                        help="exit 1 if a median ratio is below (default 0.9: on a shared machine the "
                        "rounds' noise is wider than the cost)")
    args = parser.parse_args()
    keys = [f"key:{i}" for i in range(args.keys)]
    gil = "GIL" if not sysconfig.get_config_var("Py_GIL_DISABLED") or sys._is_gil_enabled() else "no GIL"

    writers = f"{args.writers} writer{'s' if args.writers != 1 else ''}"
    print(f"Python {sys.version.split()[0]} ({gil}), mapsafe {_core.LABEL}, {writers} "
          f"(3 gets : 1 store) on {args.keys} keys, scrape every {args.interval * 1000:.0f} ms, "
          f"{args.rounds} rounds of 2 x {args.seconds:g} s, median")
    print(f"{'map':<20} {'ops/s alone':>12} {'ops/s scraped':>14} {'ratio':>6} {'rounds min-max':>15} "
          f"{'scrape ms':>10} {'scrapes':>8}  ok")
    failures = 0
    for name in args.map or list(MAPS):
        m, get, put = MAPS[name](keys)
        registry = CollectorRegistry()
        registry.register(PrometheusCollector(maps={name: m}))

        def scrape(registry: CollectorRegistry = registry) -> bytes:
            return generate_latest(registry)

        alone, scraped, ratios, durations = [], [], [], []
        for r in range(args.rounds):
            halves = {}
            for with_scrape in ((False, True) if r % 2 == 0 else (True, False)):
                ops, made = run_phase(get, put, keys, args.writers, args.seconds,
                                      scrape if with_scrape else None, args.interval)
                halves[with_scrape] = ops
                durations.extend(made)
            alone.append(halves[False])
            scraped.append(halves[True])
            ratios.append(halves[True] / halves[False])
        ratio = statistics.median(ratios)
        ok = ratio >= args.min_ratio
        failures += not ok
        spread = f"{min(ratios):.3f}-{max(ratios):.3f}"
        print(f"{name:<20} {statistics.median(alone):12,.0f} {statistics.median(scraped):14,.0f} {ratio:6.3f} "
              f"{spread:>15} {statistics.median(durations) * 1000:10.3f} {len(durations):8d}  {'yes' if ok else 'NO'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
