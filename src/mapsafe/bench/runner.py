"""Runs the cells: rounds, threads, interleaving, seeds, correctness, Ctrl-C."""

from __future__ import annotations

import gc
import os
import platform
import sys
import sysconfig
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from .._core import LABEL as CORE_LABEL
from .._version import __version__
from .impls import Adapter, CacheAdapter, Impl
from .results import BenchResult, Cell, Header, ImplStatus
from .stats import percentile
from .workloads import AdT, Plan, Tally, Workload

__all__ = ["Settings", "Progress", "NoProgress", "run", "gil_state", "STRESS_SWITCH_INTERVAL"]

# The untimed stress round runs with this thread switch interval (the default
# is 5 ms): under the GIL, a switch between a check and its act is what loses
# an update, and more switches give every unsafe idiom more chances to show it.
STRESS_SWITCH_INTERVAL = 1e-5


class Progress(Protocol):
    """What the runner reports while it works; render.py draws it."""

    def start(self, total: int) -> None: ...

    def advance(self, label: str) -> None: ...

    def stop(self) -> None: ...


class NoProgress:
    """A Progress that shows nothing."""

    def start(self, total: int) -> None:
        pass

    def advance(self, label: str) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass
class Settings:
    """A validated plan for one run (cli.py builds it from the config)."""

    threads: list[int]
    duration: float  # seconds per timed round
    rounds: int
    keys: int
    read_ratio: float
    seed: int
    impls: list[Impl]
    workloads: list[Workload[Any]]  # each on maps or on caches
    quick: bool = False
    stress: bool = True  # one extra untimed round per cell with >= 2 threads, to catch races
    join_timeout: float = 60.0  # a round whose threads outlive this is reported as hung
    skipped: list[ImplStatus] = field(default_factory=list)  # asked for but unavailable
    server: str = ""  # the --redis server the redis workloads run on, as shown (no password); "" for none


def gil_state() -> str:
    """'enabled', 'disabled', or what a free-threaded build is doing."""
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "enabled"
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    if is_enabled is None or is_enabled():
        return "enabled (free-threaded build, GIL re-enabled at run time)"
    return "disabled (free-threaded build)"


def _header(s: Settings) -> Header:
    return Header(
        python=f"{platform.python_version()} ({platform.python_implementation()})",
        gil=gil_state(),
        cpus=os.cpu_count() or 1,
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        platform=platform.platform(),
        mapsafe=f"{__version__} ({CORE_LABEL})",
        options={
            "threads": list(s.threads),
            "duration": s.duration,
            "rounds": s.rounds,
            "keys": s.keys,
            "read_ratio": s.read_ratio,
            "seed": s.seed,
            "quick": s.quick,
            **({"redis": s.server} if s.server else {}),
        },
    )


def _failures(tallies: list[Tally]) -> list[str]:
    out = []
    bad = sum(t.bad for t in tallies)
    if bad:
        first = next(t.first_bad for t in tallies if t.first_bad)
        out.append(f"{bad} wrong results (first: {first})")
    errors = sum(t.errors for t in tallies)
    if errors:
        first = next(t.first_error for t in tallies if t.first_error)
        out.append(f"{errors} exceptions (first: {first})")
    return out


def _stop_all(stops: list[list[bool]]) -> None:
    for stop in stops:
        stop[0] = True


def _once(w: Workload[AdT], plan: Plan, ad: AdT, duration: float | None,
          join_timeout: float) -> tuple[list[Tally], float, list[str]]:
    """Run the threads once; ``(tallies, seconds, failures)``.

    With a duration, threads run until it has passed; without, until their
    fixed job is done. A KeyboardInterrupt stops the threads and propagates.
    Each thread works through its own adapter (``ad.for_thread()``, made
    before the barrier); the check after the round uses ``ad``.
    """
    tallies = [Tally() for _ in range(plan.threads)]
    # One stop flag per thread, each set once by this thread and read by its
    # worker (one list op): a flag shared by all workers would be one more
    # object whose reference count they all write on free-threaded builds.
    stops = [[False] for _ in range(plan.threads)]
    barrier = threading.Barrier(plan.threads + 1)

    def work(tid: int) -> None:
        mine: AdT | None
        try:
            mine = ad.for_thread()
        except Exception as exc:  # counted against the implementation; the round still starts
            tallies[tid].error(exc)
            mine = None
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return  # the round was abandoned before it began
        if mine is None:
            return
        try:
            w.body(mine, plan, tid, tallies[tid], stops[tid])
        except Exception as exc:  # a failure of the implementation under test
            tallies[tid].error(exc)

    workers = [
        threading.Thread(target=work, args=(tid,), name=f"mapsafe-bench-{tid}", daemon=True)
        for tid in range(plan.threads)
    ]
    for th in workers:
        th.start()
    try:
        barrier.wait()
        t0 = time.perf_counter()
        if duration is not None:
            time.sleep(duration)
            _stop_all(stops)
        deadline = time.monotonic() + join_timeout
        for th in workers:
            th.join(max(0.0, deadline - time.monotonic()))
        elapsed = time.perf_counter() - t0
    except BaseException:
        _stop_all(stops)
        barrier.abort()
        for th in workers:
            th.join(join_timeout)
        raise
    hung = sum(th.is_alive() for th in workers)
    if hung:
        _stop_all(stops)
        return tallies, elapsed, [f"{hung} threads still running {join_timeout:g}s after the round (deadlock?)"]
    return tallies, elapsed, _failures(tallies) + w.verify(ad, plan, tallies)


def _release(ad: Adapter | CacheAdapter) -> list[str]:
    """Close ``ad`` (a map on a server removes its keys there); a failure to, as a failure of the cell."""
    close = getattr(ad, "close", None)  # a ServerAdapter's; the others have nothing to release
    if close is None:
        return []
    try:
        close()
    except Exception as exc:
        return [f"removing the map afterwards failed: {type(exc).__name__}: {exc}"]
    return []


def _round(w: Workload[AdT], plan: Plan, impl: Impl, duration: float,
           join_timeout: float) -> tuple[float, list[int], list[str]]:
    """One round of one cell: ``(its number in w.unit, latency samples, failures)``.

    Every map built is released before this returns, or before Ctrl-C
    propagates: a map on a Redis server must not outlive its round there.
    """
    failures: list[str]  # declared once for both paths (mypy misreads the first as used before definition)
    if not w.fixed_work:
        try:
            ad = w.build(impl, plan)
        except Exception as exc:  # a broken peer must not end the whole run
            return 0.0, [], [f"building and filling the map failed: {type(exc).__name__}: {exc}"]
        try:
            try:
                w.setup(ad, plan)
            except Exception as exc:
                return 0.0, [], [f"building and filling the map failed: {type(exc).__name__}: {exc}"] + _release(ad)
            tallies, elapsed, failures = _once(w, plan, ad, None if w.once else duration, join_timeout)
            number = w.score(ad, plan, tallies, elapsed)
        except BaseException:
            _release(ad)
            raise
        return number, [x for t in tallies for x in t.latencies], failures + _release(ad)
    # A fixed job (growth) on a fresh map each time, repeated until the round's time is used.
    samples: list[int] = []
    ops, elapsed, failures = 0, 0.0, []
    while elapsed < duration and not failures:
        try:
            ad = w.build(impl, plan)
        except Exception as exc:
            return 0.0, [], [f"building the map failed: {type(exc).__name__}: {exc}"]
        try:
            tallies, seconds, failures = _once(w, plan, ad, None, join_timeout)
        except BaseException:
            _release(ad)
            raise
        failures = failures + _release(ad)
        ops += sum(t.ops for t in tallies)
        elapsed += seconds
        samples.extend(x for t in tallies for x in t.latencies)
    return ops / elapsed, samples, failures


def _peak_memory(w: Workload[AdT], impl: Impl, keys: int, param: float | None, seed: int) -> int | None:
    """tracemalloc's peak while building and filling one map for ``w``, untimed, one thread."""
    if not w.tracks_memory or tracemalloc.is_tracing():
        return None  # nothing worth measuring; or someone else is tracing, whose numbers would mix with ours
    plan = w.plan(keys, 1, param, seed)
    gc.collect()
    tracemalloc.start()
    ad: AdT | None = None
    try:
        ad = w.build(impl, plan)
        w.fill(ad, plan)
        return tracemalloc.get_traced_memory()[1]
    except Exception:
        return None  # the timed rounds report what is wrong with this implementation
    finally:
        tracemalloc.stop()
        if ad is not None:
            _release(ad)


def _stress(w: Workload[AdT], plan: Plan, impl: Impl, s: Settings) -> list[str]:
    """Correctness only: one round with frequent thread switches."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(STRESS_SWITCH_INTERVAL)
    try:
        _, _, failures = _round(w, plan, impl, s.duration, s.join_timeout)
    finally:
        sys.setswitchinterval(old)
    return [f"{f} [stress round]" for f in failures]


def _add_failures(cell: Cell, failures: list[str]) -> None:
    # Keep a few, not one per round: the first says what broke, the rest that it was no fluke.
    for f in failures:
        if f not in cell.failures and len(cell.failures) < 5:
            cell.failures.append(f)


def run(s: Settings, progress: Progress | None = None) -> BenchResult:
    """Measure every cell; on Ctrl-C, return what was gathered, marked interrupted.

    Rounds are interleaved (round r of every implementation before round
    r + 1 of any, each round starting the rotation at a different
    implementation) so drift on a noisy machine spreads over all of them.
    """
    progress = progress or NoProgress()
    statuses = list(s.skipped) + [ImplStatus(impl.name, True) for impl in s.impls]
    result = BenchResult(_header(s), statuses, [])
    # Each variant with the implementations that run it (a map workload runs the maps, a cache one the caches).
    variants = [(w, p, [i for i in s.impls if w.accepts(i)]) for w in s.workloads for p in w.params(s.read_ratio)]
    total = sum(
        len(impls) * (w.round_count(s.rounds) + (1 if s.stress and t >= 2 else 0))
        for w, _, impls in variants for t in w.thread_counts(s.threads)
    )
    progress.start(total)
    pending = None
    try:
        for w, param, impls in variants:
            if not impls:
                continue
            label = w.name if param is None else f"{w.name} {param:.0%}"
            peaks = {impl.name: _peak_memory(w, impl, s.keys, param, s.seed) for impl in impls}
            for t in w.thread_counts(s.threads):
                plan = w.plan(s.keys, t, param, s.seed)
                row = {impl.name: Cell(w.name, param, t, impl.name, peak_bytes=peaks[impl.name], unit=w.unit)
                       for impl in impls}
                result.cells.extend(row.values())
                samples: dict[str, list[int]] = {name: [] for name in row}
                pending = (row, samples)  # summarised even if Ctrl-C ends the cell early
                n = len(impls)
                gc.collect()  # untimed: start the cell's rounds with no garbage from earlier ones
                for r in range(w.round_count(s.rounds)):
                    start = r % n
                    for impl in impls[start:] + impls[:start]:
                        ops_s, lat, failures = _round(w, plan, impl, s.duration, s.join_timeout)
                        cell = row[impl.name]
                        cell.rounds.append(ops_s)
                        samples[impl.name].extend(lat)
                        _add_failures(cell, failures)
                        progress.advance(f"{label} x{t} {impl.name}")
                _summarise(*pending)
                pending = None
                if s.stress and t >= 2:
                    for impl in impls:
                        _add_failures(row[impl.name], _stress(w, plan, impl, s))
                        progress.advance(f"{label} x{t} {impl.name} (stress)")
    except KeyboardInterrupt:
        result.interrupted = True
        if pending is not None:
            _summarise(*pending)
    finally:
        progress.stop()
    result.cells = [c for c in result.cells if c.rounds]
    return result


def _summarise(row: dict[str, Cell], samples: dict[str, list[int]]) -> None:
    """Latency percentiles over all the timed rounds of each cell in ``row``."""
    for name, cell in row.items():
        if samples[name]:
            cell.p50_ns = percentile(samples[name], 50)
            cell.p99_ns = percentile(samples[name], 99)
            cell.max_ns = float(max(samples[name]))
