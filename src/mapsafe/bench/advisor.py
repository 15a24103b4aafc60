"""The advisor: which implementation to use per workload, the SyncMap crossover, and when to use which cache."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import workloads
from .impls import BASELINE, LRU, UNSAFE
from .results import HIGHER_IS_BETTER, BenchResult, Cell
from .stats import mann_whitney_u, median

__all__ = ["Recommendation", "Crossover", "Guide", "Overhead", "Advice", "advise", "ALPHA", "CHALLENGER",
           "HIT_RATE_TIE"]

ALPHA = 0.05  # significance level for "measurably faster"
CHALLENGER = "SyncMap"  # the Go guidance under test: sync.Map pays off for read-mostly maps
HIT_RATE_TIE = 0.005  # hit rates this close (half a percentage point) count as equal
MEMORY_TIE = 0.05  # bytes per entry within 5% of the smallest count as equal


@dataclass
class Recommendation:
    """The implementation to use for one workload variant, and why."""

    workload: str
    param: float | None
    threads: int  # the thread count the choice was made at (the highest measured)
    impl: str | None  # None: nothing safe was measured
    reason: str


@dataclass
class Crossover:
    """Where CHALLENGER starts to beat BASELINE on the read-ratio sweep, at one thread count."""

    threads: int
    read_ratio: float | None  # lowest ratio from which it wins at every higher one; None: nowhere
    ratios: dict[float, float]  # read ratio -> CHALLENGER median / BASELINE median
    text: str


@dataclass
class Guide:
    """One measured reason to pick a cache: the situation, who did best in it, and the numbers."""

    when: str  # e.g. "a key must load once"
    impls: list[str]  # the best there (ties included), in the tables' order
    text: str  # the numbers behind it


@dataclass
class Overhead:
    """What an implementation costs over its workload's reference (RedisMap over plain redis-py), in one run."""

    workload: str
    param: float | None
    threads: int
    impl: str
    versus: str
    ratio: float | None  # impl's median ops/s / versus's; None if either failed a check
    p99_ns: float | None
    versus_p99_ns: float | None


@dataclass
class Advice:
    recommendations: list[Recommendation]
    crossovers: list[Crossover]
    caches: list[Guide] = field(default_factory=list)  # empty unless cache workloads ran
    overheads: list[Overhead] = field(default_factory=list)  # empty unless the redis workloads ran


def _rankable(cell: Cell | None) -> bool:
    # The unlocked dict is measured to show what is lost, never to be chosen.
    return cell is not None and cell.safe and cell.impl != UNSAFE and bool(cell.rounds)


def _median(c: Cell) -> float:
    """``c.median``, for a cell that has rounds (every cell ranked or divided by here has), so never None."""
    return median(c.rounds)


def _p_floor(a: Cell, b: Cell) -> float:
    """The smallest two-sided p-value a U test of these two round lists can give."""
    return 2 / math.comb(len(a.rounds) + len(b.rounds), len(a.rounds))


def _recommend(result: BenchResult, workload: str, param: float | None) -> Recommendation:
    cells = [c for c in result.cells if (c.workload, c.param) == (workload, param)]
    threads = max(c.threads for c in cells)
    at = [c for c in cells if c.threads == threads]
    if at[0].unit != "ops/s":
        return _recommend_measure(workload, param, threads, at)
    ranked = sorted((c for c in at if _rankable(c)), key=_median, reverse=True)
    if not ranked:
        return Recommendation(workload, param, threads, None, "no implementation passed the checks")
    best = ranked[0]
    base = next((c for c in ranked if c.impl == BASELINE), None)
    if base is None:
        return Recommendation(workload, param, threads, best.impl, f"fastest that passed ({BASELINE} not measured)")
    if best is base:
        return Recommendation(workload, param, threads, BASELINE, "fastest, and the simplest")
    ratio = _median(best) / _median(base)
    _, p = mann_whitney_u(best.rounds, base.rounds)
    if p < ALPHA:
        return Recommendation(workload, param, threads, best.impl, f"x{ratio:.2f} vs {BASELINE} (p={p:.3f})")
    # With few rounds no difference can be significant: 3 against 3 cannot get below p = 0.1.
    floor = _p_floor(best, base)
    why = (f"too few rounds to tell ({len(best.rounds)} and {len(base.rounds)} give p >= {floor:.2f})"
           if floor >= ALPHA else f"p={p:.3f} >= {ALPHA}")
    return Recommendation(
        workload, param, threads, BASELINE,
        f"nothing measurably faster: best was {best.impl} x{ratio:.2f}, {why}; use the simplest",
    )


def _crossover(result: BenchResult, threads: int) -> Crossover | None:
    ratios: dict[float, float] = {}
    unsafe = False
    for workload, param in result.variants():
        if workload != "read_ratio" or param is None:
            continue
        ch = result.find(workload, param, threads, CHALLENGER)
        base = result.find(workload, param, threads, BASELINE)
        if ch is None or base is None or not ch.rounds or not base.rounds or not base.median:
            continue
        unsafe = unsafe or not (ch.safe and base.safe)
        ratios[param] = _median(ch) / _median(base)
    if not ratios:
        return None
    measured = sorted(ratios)
    span = f"{measured[0]:.0%}-{measured[-1]:.0%} reads"
    if unsafe:
        text = f"{CHALLENGER} or {BASELINE} failed a correctness check; no crossover reported"
        return Crossover(threads, None, ratios, text)
    start = None
    for r in reversed(measured):  # the lowest ratio from which the challenger wins all the way up
        if ratios[r] > 1.0:
            start = r
        else:
            break
    if start is None:
        where = "every measured read ratio" if max(ratios.values()) <= 1.0 else f"{measured[-1]:.0%} reads"
        text = f"no crossover in the measured range ({span}): {CHALLENGER} is not faster than {BASELINE} at {where}"
    elif start == measured[0]:
        text = (
            f"{CHALLENGER} beats {BASELINE} at every measured read ratio ({span}); "
            f"the crossover is at or below {measured[0]:.0%}"
        )
    else:
        text = f"{CHALLENGER} beats {BASELINE} from {start:.0%} reads up (x{ratios[start]:.2f} there)"
    return Crossover(threads, start, ratios, text)


# -- caches -------------------------------------------------------------------


def _fmt(unit: str, x: float) -> str:
    if unit == "hit rate":
        return f"{x:.1%}"
    if unit == "B/entry":
        return f"{x:.0f} B"
    if unit == "loads":
        return f"{x:g}"
    return f"{x:,.0f} ops/s"


def _most_loads(c: Cell) -> float:
    """The most loads of any one burst: a cache that loaded twice once is not call-once."""
    return max(c.rounds)


def _separable(a: Cell, b: Cell) -> bool:
    """Whether the rounds are enough for a U test to tell ``a`` from ``b`` at ALPHA."""
    return _p_floor(a, b) < ALPHA


def _best(cells: list[Cell]) -> list[Cell]:
    """The best of ``cells`` (safe ones only), ties included, best first; [] if none passed."""
    ranked = [c for c in cells if _rankable(c)]
    if not ranked:
        return []
    unit = ranked[0].unit
    if unit == "ops/s":
        ranked.sort(key=_median, reverse=True)
        top = ranked[0]
        # Tied: not measurably slower than the fastest. With too few rounds nothing is
        # measurable, and calling every one tied would say nothing: the fastest alone is named.
        return [top] + [c for c in ranked[1:]
                        if _separable(top, c) and mann_whitney_u(top.rounds, c.rounds)[1] >= ALPHA]
    if unit == "loads":
        ranked.sort(key=lambda c: (_most_loads(c), _median(c)))
        return [c for c in ranked if _most_loads(c) == _most_loads(ranked[0])]
    if unit == "hit rate":
        ranked.sort(key=_median, reverse=True)
        return [c for c in ranked if _median(ranked[0]) - _median(c) <= HIT_RATE_TIE]
    ranked.sort(key=_median)  # B/entry
    return [c for c in ranked if _median(c) <= _median(ranked[0]) * (1 + MEMORY_TIE)]


def _versus(c: Cell, at: list[Cell], ref: str) -> str:
    other = next((x for x in at if x.impl == ref and x.rounds), None)
    if other is None or other is c or not other.median:
        return ""
    return f", x{_median(c) / _median(other):.2f} {ref}'s {_fmt(c.unit, _median(other))}"


def _recommend_measure(workload: str, param: float | None, threads: int, at: list[Cell]) -> Recommendation:
    """The choice for a workload whose number is not a speed: the best number, ties named."""
    best = _best(at)
    if not best:
        return Recommendation(workload, param, threads, None, "no implementation passed the checks")
    top, unit = best[0], best[0].unit
    also = f" (tied: {', '.join(c.impl for c in best[1:])})" if len(best) > 1 else ""
    if unit == "loads":
        n = _most_loads(top)
        reason = (f"{n:g} load in every burst{also}" if n == 1
                  else f"fewest loads, still up to {n:g} per burst{also}")
    elif unit == "hit rate":
        reason = f"highest hit rate, {_fmt(unit, _median(top))}{_versus(top, at, LRU)}{also}"
    else:
        reason = f"smallest, {_fmt(unit, _median(top))} per entry{_versus(top, at, LRU)}{also}"
    return Recommendation(workload, param, threads, top.impl, reason)


def _cells(result: BenchResult, workload: str, threads: int | None = None) -> list[Cell]:
    return [c for c in result.cells if c.workload == workload and (threads is None or c.threads == threads)]


def _stampede_guide(result: BenchResult) -> Guide | None:
    cells = [c for c in _cells(result, workloads.Stampede.name) if c.threads >= 2]
    if not cells:
        return None
    unsafe = sorted({c.impl for c in cells if not c.safe})  # at any thread count: never credited
    worst: dict[str, float] = {}
    for c in cells:
        if _rankable(c) and c.impl not in unsafe:
            worst[c.impl] = max(worst.get(c.impl, 0.0), _most_loads(c))
    once = [name for name, n in worst.items() if n == 1]
    more = [f"{name} up to {n:g}" for name, n in worst.items() if n != 1]
    counts = sorted({c.threads for c in cells})
    text = f"bursts of {', '.join(map(str, counts))} threads on one cold key: "
    text += f"1 load in every burst: {', '.join(once) or 'none'}"
    if more:
        text += f"; more than one: {', '.join(more)}"
    if unsafe:
        text += f"; failed a check: {', '.join(unsafe)}"
    return Guide("a key must load only once", once, text)


def _ranked_guide(result: BenchResult, workload: str, when: str, threads: int | None = None) -> Guide | None:
    """The best at ``workload`` (at ``threads``, or the only count measured), with everyone's number."""
    cells = _cells(result, workload, threads)
    if not cells:
        return None
    best = _best(cells)
    unit = cells[0].unit
    ref = LRU if unit != "ops/s" or any(c.impl == LRU for c in cells) else BASELINE
    base = next((c for c in cells if c.impl == ref and c.rounds and c.median), None)
    order = sorted((c for c in cells if _rankable(c)), key=_median, reverse=HIGHER_IS_BETTER[unit])
    parts = []
    for c in order:
        ratio = f" x{_median(c) / _median(base):.2f}" if base is not None and c is not base else ""
        parts.append(f"{c.impl} {_fmt(unit, _median(c))}{ratio}")
    text = ", ".join(parts) + (f" (ratios to {ref})" if base is not None else "")
    if unit == "ops/s" and len(best) == 1 and len(order) > 1 and not _separable(best[0], order[1]):
        text += "; too few rounds to test the differences, so only the fastest is named"
    return Guide(when, [c.impl for c in best], text)


def _cache_guides(result: BenchResult) -> list[Guide]:
    guides = [_stampede_guide(result),
              _ranked_guide(result, workloads.LoopScanHitRate.name, "scans pass through the cache"),
              _ranked_guide(result, workloads.ZipfHitRate.name, "keys are skewed (Zipf)")]
    hot = workloads.CacheHit99.name
    counts = sorted({c.threads for c in _cells(result, hot)})
    if counts:
        if counts[0] == 1:
            guides.append(_ranked_guide(result, hot, "the hot path is hits on one thread", 1))
        if counts[-1] > 1:
            gil = "no GIL" if result.header.gil.startswith("disabled") else "the GIL on"
            guides.append(_ranked_guide(result, hot, f"{counts[-1]} threads hit it at once ({gil})", counts[-1]))
    guides.append(_ranked_guide(result, workloads.CacheMemory.name, "memory per entry matters"))
    return [g for g in guides if g is not None and g.impls]


# -- costs --------------------------------------------------------------------


def _advised(workload: str) -> bool:
    w = workloads.by_name().get(workload)
    return w is None or w.advised  # a workload this version does not know: as before


def _overheads(result: BenchResult) -> list[Overhead]:
    """Each cell of a workload that measures a cost, against its reference at the same variant and threads."""
    out = []
    for workload, param in result.variants():
        w = workloads.by_name().get(workload)
        if w is None or w.advised or not w.versus:
            continue
        for c in result.cells:
            if (c.workload, c.param) != (workload, param) or c.impl == w.versus or not c.rounds:
                continue
            base = result.find(workload, param, c.threads, w.versus)
            if base is None or not base.rounds:
                continue
            ok = c.safe and base.safe and bool(base.median)
            out.append(Overhead(workload, param, c.threads, c.impl, w.versus,
                                _median(c) / _median(base) if ok else None, c.p99_ns, base.p99_ns))
    return out


def advise(result: BenchResult) -> Advice:
    """Recommendations from medians of safe cells; ties go to the simplest (BASELINE)."""
    recs = [_recommend(result, w, p) for w, p in result.variants() if _advised(w)]
    threads = sorted({c.threads for c in result.cells})
    crossovers = [x for x in (_crossover(result, t) for t in threads) if x is not None]
    return Advice(recs, crossovers, _cache_guides(result), _overheads(result))
