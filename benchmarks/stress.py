"""Run the map stress scenarios (tests/_stress.py) longer than CI does.

Usage: python benchmarks/stress.py [--threads N] [--scale X] [--repeat N]
           [--scenario NAME ...] [--map NAME ...] [--switch-interval S] [--list]

Each (scenario, map) pair runs --repeat times, with seeds 0, 1, ...; one
line per pair says how many runs passed, and the first failure's message.
--scale multiplies every scenario's iteration counts (it sets
MAPSAFE_STRESS_SCALE). Pass criteria are exact invariants; the times shown
are for information only. Exits 1 if any run failed, 2 on a bad argument.

    python benchmarks/stress.py --scale 20 --repeat 5
    MAPSAFE_CORE=python python benchmarks/stress.py --scenario conservation --map ShardedMap-ttl
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))  # for _stress

EXIT_OK = 0
EXIT_FAILED = 1  # an invariant broke, or a thread hung
EXIT_USAGE = 2  # what argparse exits with, too


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="threads per scenario (default: the suite's, 6)")
    parser.add_argument("--scale", type=float, default=10.0, help="iterations, times the CI sizes (default 10)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario and map, seeds 0.. (default 1)")
    parser.add_argument("--scenario", action="append", help="a scenario name (repeatable; default: all)")
    parser.add_argument("--map", action="append", help="a map configuration name (repeatable; default: all)")
    parser.add_argument("--switch-interval", type=float, default=1e-6, help="sys.setswitchinterval (default 1e-6)")
    parser.add_argument("--list", action="store_true", help="list scenarios and map configurations, then exit")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 2:
        parser.error("--threads must be at least 2")
    if not args.scale > 0 or args.repeat < 1 or not args.switch_interval > 0:
        parser.error("--scale, --repeat and --switch-interval must be > 0")

    os.environ["MAPSAFE_STRESS_SCALE"] = repr(args.scale)  # read by _stress at import
    import _stress as stress
    from mapsafe import _core

    if args.list:
        for name, (_, maps) in stress.SCENARIOS.items():
            print(f"{name:24s} {', '.join(maps) if maps else '(no map)'}")
        return EXIT_OK
    for option, given, known in (("--scenario", args.scenario, stress.SCENARIOS), ("--map", args.map, stress.MAPS)):
        unknown = sorted(set(given or ()) - set(known))
        if unknown:
            parser.error(f"unknown {option} {', '.join(unknown)}; choose from {', '.join(known)}")

    sizes = {} if args.threads is None else {"threads": args.threads}
    print(f"mapsafe stress: {_core.LABEL}, Python {sys.version.split()[0]}, scale {args.scale:g}, "
          f"{args.threads or stress.THREADS} threads, {args.repeat} run(s) each")
    failed = 0
    with stress.switch_interval(args.switch_interval):
        for name, (scenario, maps) in stress.SCENARIOS.items():
            if args.scenario and name not in args.scenario:
                continue
            targets = [None] if maps is None else [m for m in maps if not args.map or m in args.map]
            for map_name in targets:
                passed, first_error, start = 0, None, time.perf_counter()
                for seed in range(args.repeat):
                    try:
                        if map_name is None:
                            scenario(seed=seed, **sizes)
                        else:
                            scenario(stress.MAPS[map_name], seed=seed, **sizes)
                    except Exception as exc:
                        first_error = first_error or f"seed {seed}: " + "".join(
                            traceback.format_exception_only(type(exc), exc)
                        ).strip()
                    else:
                        passed += 1
                elapsed = time.perf_counter() - start
                status = "ok  " if passed == args.repeat else "FAIL"
                line = f"{status} {name:24s} {map_name or '-':24s} {passed}/{args.repeat}  {elapsed:7.2f}s"
                print(line, flush=True)
                if first_error:
                    failed += 1
                    print("     " + first_error.replace("\n", "\n     ")[:2000], flush=True)
    print(f"{failed} failing scenario/map pair(s)" if failed else "all passed")
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
