"""`mapsafe bench`: command-line front end (options, config, exit codes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .. import config
from ..errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import TypedDict

    from .runner import Settings

    class _Quick(TypedDict):
        threads: list[int]
        rounds: int
        duration: float
        keys: int

_Item = TypeVar("_Item")  # what _pick picks: workloads or implementations

DESCRIPTION = (
    "Benchmark dict+Lock, dict+RWLock, an unlocked dict, SyncMap (plain, and read through per-thread readers), "
    "LockedMap, ShardedMap and native peers "
    "side by side on this machine, check every result for correctness, and recommend one per workload. "
    "'--workloads cache' compares caches instead: mapsafe.Cache and @mapsafe.cached against functools.lru_cache, "
    "cachetools and cereggii (stampede loader runs, hit rates, throughput at 90% and 99% hits, bytes per entry). "
    "'--redis URL' adds RedisMap against plain redis-py HGET/HSET/HINCRBY on that server, in the same run. "
    "'mapsafe bench compare OLD.json NEW.json' compares two saved runs."
)

MAX_THREADS = 512  # thread tags must stay below workloads.PREFILL
QUICK: _Quick = {"threads": [1, 2], "rounds": 5, "duration": 0.015, "keys": 1000}  # 20-40 s in all
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", metavar="N,N,...", help="thread counts (default 1,2,4,8)")
    parser.add_argument("--read-ratio", metavar="F", help="read fraction 0..1 for mixed workloads (default 0.9)")
    parser.add_argument("--keys", metavar="N", help="distinct keys per workload (default 10000)")
    parser.add_argument("--duration", metavar="S", help="seconds per timed round (default 0.5)")
    parser.add_argument("--rounds", metavar="N", help="timed rounds per cell (default 5)")
    parser.add_argument("--implementations", "-i", metavar="NAME,...", help="implementations to run (default: all)")
    parser.add_argument("--workloads", "-w", metavar="NAME,...",
                        help="workloads to run, or a group: maps, cache, all (default: maps)")
    parser.add_argument("--seed", metavar="N", help="seed of the operation sequences (default 0)")
    parser.add_argument("--redis", metavar="URL",
                        help="also run the redis workloads on this server (redis://host:port/db): RedisMap against "
                        "plain redis-py, ops/s and p99; each round uses a throwaway hash and removes it")
    parser.add_argument("--quick", action="store_true",
                        help=f"threads {QUICK['threads']}, {QUICK['rounds']} rounds of {QUICK['duration']} s, "
                        f"at most {QUICK['keys']} keys: under a minute")
    parser.add_argument("--json", metavar="FILE", help="also write the results as versioned JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="also plot throughput vs threads and vs read ratio")
    parser.add_argument("--list", action="store_true", help="list implementations and workloads, then exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    subs = parser.add_subparsers(dest="bench_command", metavar="compare", parser_class=type(parser))
    cmp = subs.add_parser("compare", help="compare two --json files, cell by cell",
                          description="Per-cell ratios of NEW to OLD with a Mann-Whitney U test over the rounds; "
                          "'~' marks a difference that is not significant.")
    cmp.add_argument("old", metavar="OLD.json")
    cmp.add_argument("new", metavar="NEW.json")
    cmp.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")


def _where(cfg: config.Config, attribute: str, flag: str) -> str:
    source = cfg.source.get(attribute, "default")
    return flag if source == "flag" else f"bench.{attribute[len('bench_'):]} (from {source})"


def _pick(names: list[str], table: Mapping[str, _Item], what: str, where: str,
          groups: Mapping[str, Sequence[_Item]] | None = None) -> list[_Item]:
    """The items ``names`` name, in order, once each; a name in ``groups`` stands for its items."""
    picked: list[_Item] = []
    unknown: list[str] = []
    groups = groups or {}
    for name in names:
        items = groups.get(name.lower())
        if items is None:
            item = table.get(name) or table.get(name.lower())
            if item is None:
                unknown.append(name)
                continue
            items = (item,)
        for item in items:
            if item not in picked:
                picked.append(item)
    if unknown:
        known = ", ".join([*dict.fromkeys(getattr(x, "name") for x in table.values()), *groups])
        raise UsageError(f"{where}: unknown {what} {', '.join(map(repr, unknown))} (known: {known})")
    return picked


def _need_server(names: list[str], where: str) -> None:
    if names:
        raise UsageError(f"{where}: {', '.join(names)} run{'s' if len(names) == 1 else ''} on a Redis server: "
                         "pass --redis URL (or set bench.redis)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Resolve config and flags into runner Settings; every bad value is a UsageError naming it."""
    from . import impls, workloads
    from .results import ImplStatus
    from .runner import Settings
    from .server import check as check_server

    cfg = config.load(["bench"], flags={
        "bench_threads": args.threads, "bench_read_ratio": args.read_ratio, "bench_keys": args.keys,
        "bench_duration": args.duration, "bench_rounds": args.rounds,
        "bench_implementations": args.implementations, "bench_workloads": args.workloads, "bench_seed": args.seed,
        "bench_redis": args.redis,
    })
    threads = list(dict.fromkeys(cfg.bench_threads))
    if not all(1 <= t <= MAX_THREADS for t in threads):
        raise UsageError(f"{_where(cfg, 'bench_threads', '--threads')}: thread counts must be 1..{MAX_THREADS}, "
                         f"got {','.join(map(str, cfg.bench_threads))}")
    if not 0.0 <= cfg.bench_read_ratio <= 1.0:
        raise UsageError(f"{_where(cfg, 'bench_read_ratio', '--read-ratio')}: must be between 0 and 1, "
                         f"got {cfg.bench_read_ratio:g}")
    if not 0.0 < cfg.bench_duration <= 3600:
        raise UsageError(f"{_where(cfg, 'bench_duration', '--duration')}: must be in (0, 3600] seconds, "
                         f"got {cfg.bench_duration:g}")
    if not 1 <= cfg.bench_rounds <= 1000:
        raise UsageError(f"{_where(cfg, 'bench_rounds', '--rounds')}: must be 1..1000, got {cfg.bench_rounds}")
    if not 16 <= cfg.bench_keys <= 10_000_000:
        raise UsageError(f"{_where(cfg, 'bench_keys', '--keys')}: must be 16..10000000, got {cfg.bench_keys}")
    loads = (_pick(cfg.bench_workloads, workloads.by_name(), "workload", _where(cfg, "bench_workloads", "--workloads"),
                   workloads.GROUPS)
             if cfg.bench_workloads else list(workloads.DEFAULT))
    picked = (_pick(cfg.bench_implementations, impls.by_name(), "implementation",
                    _where(cfg, "bench_implementations", "--implementations"))
              if cfg.bench_implementations else None)
    url, server = cfg.bench_redis, None
    if url:
        if not any(w.kind == "redis" for w in loads):
            loads += workloads.GROUPS["redis"]  # --redis adds the rows it is for
    else:
        _need_server([w.name for w in loads if w.kind == "redis"], _where(cfg, "bench_workloads", "--workloads"))
        _need_server([i.name for i in picked or () if i.server_build is not None],
                     _where(cfg, "bench_implementations", "--implementations"))
    if picked is not None:
        chosen = picked
        if not any(w.accepts(i) or (url and w.accepts(impls.on_server(i, url))) for w in loads for i in chosen):
            raise UsageError(f"{_where(cfg, 'bench_implementations', '--implementations')}: none of "
                             f"{', '.join(i.name for i in chosen)} runs any of the workloads "
                             f"{', '.join(w.name for w in loads)} (caches run the cache workloads, RedisMap and "
                             "redis-py the redis ones, maps the others)")
    else:  # all that run at least one of the workloads: a map run does not list the caches as skipped
        chosen = [i for i in impls.IMPLEMENTATIONS
                  if any(w.accepts(impls.on_server(i, url) if url else i) for w in loads)]
    if url and any(i.server_build is not None for i in chosen):
        # Last, after every cheap check: this one talks to the server.
        server = check_server(url, _where(cfg, "bench_redis", "--redis"))
        chosen = [impls.on_server(i, url) for i in chosen]
    usable, skipped = [], []
    for impl in chosen:
        ok, reason = impl.availability()
        if ok:
            usable.append(impl)
        else:
            skipped.append(ImplStatus(impl.name, False, reason))
    if not usable:
        raise UsageError("none of the implementations asked for can run here: "
                         + "; ".join(f"{s.name}: {s.reason}" for s in skipped))
    s = Settings(threads=threads, duration=cfg.bench_duration, rounds=cfg.bench_rounds, keys=cfg.bench_keys,
                 read_ratio=cfg.bench_read_ratio, seed=cfg.bench_seed, impls=usable, workloads=loads,
                 skipped=skipped, server=server.describe() if server else "")
    if args.quick:
        # --quick replaces the configured values, but a flag given with it wins:
        # `--quick --threads 1,4` is a quick run at 1 and 4 threads.
        given = {name for name in ("bench_threads", "bench_rounds", "bench_duration", "bench_keys")
                 if cfg.source[name] == "flag"}
        if "bench_threads" not in given:
            s.threads = list(QUICK["threads"])
        if "bench_rounds" not in given:
            s.rounds = QUICK["rounds"]
        if "bench_duration" not in given:
            s.duration = QUICK["duration"]
        if "bench_keys" not in given:
            s.keys = min(s.keys, QUICK["keys"])
        s.quick = True
    return s


def _list() -> int:
    from . import impls, workloads

    print("implementations:")
    for impl in impls.IMPLEMENTATIONS:
        ok, reason = impl.availability()
        kinds = ("redis" if impl.server_build else "map, cache" if impl.build and impl.cache
                 else "cache" if impl.cache else "map")
        status = "available" if ok else "skipped: " + reason
        if ok and impl.server_build:
            status += " with --redis URL"
        print(f"  {impl.name:<24} {kinds:<10} {status}")
    print("workloads:")
    for w in workloads.WORKLOADS:
        print(f"  {w.name:<15} {w.kind:<5} {w.summary}")
    for name, group in workloads.GROUPS.items():
        text = ", ".join(w.name for w in group) if name != "all" else "every workload but the redis ones"
        print(f"group {name}: {text}")
    print("--redis URL adds the redis group, unless --workloads names one of them")
    print(f"default: {', '.join(w.name for w in workloads.DEFAULT)}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .compare import compare
    from .render import render_compare
    from .schema import read

    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha: must be between 0 and 1, got {args.alpha:g}")
    old, new = read(args.old), read(args.new)
    result = compare(old, new, args.alpha)
    for difference in result.differences:  # on stderr too, where a script that keeps only stdout sees it
        print(f"mapsafe bench compare: warning: the runs differ in {difference}", file=sys.stderr)
    render_compare(result)
    return 0


def run(args: argparse.Namespace) -> int:
    from ..cli import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_OK

    if args.bench_command == "compare":
        return _compare(args)
    if args.list:
        return _list()
    from . import render, runner, schema
    from .advisor import advise
    from .impls import UNSAFE

    s = settings_from_args(args)
    if args.plot:
        if Path(args.plot).suffix.lower() not in PLOT_SUFFIXES:
            raise UsageError(f"--plot: {args.plot!r} must end in {', '.join(PLOT_SUFFIXES)}")
        if not any(w.unit == "ops/s" for w in s.workloads):  # fail now, not after the run
            raise UsageError("--plot: none of the workloads asked for measures ops/s, so there is nothing to plot")
        from .plot import require_matplotlib

        require_matplotlib()
    if not render.have_rich():
        print(render.NO_RICH, file=sys.stderr)
    result = runner.run(s, render.make_progress(not args.no_progress))
    advice = advise(result) if result.cells else None
    render.render_result(result, advice)
    if args.json:
        schema.write(args.json, result, advice)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot and result.cells:
        from .plot import plot

        plot(result, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    if result.interrupted:
        return EXIT_INTERRUPTED
    # The unlocked dict failing is the expected demonstration; anything else failing is a finding.
    return EXIT_FINDINGS if any(not c.safe and c.impl != UNSAFE for c in result.cells) else EXIT_OK
