"""The advisor: which implementation to use per workload, and the SyncMap crossover."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .impls import BASELINE, UNSAFE
from .results import BenchResult, Cell
from .stats import mann_whitney_u

__all__ = ["Recommendation", "Crossover", "Advice", "advise", "ALPHA", "CHALLENGER"]

ALPHA = 0.05  # significance level for "measurably faster"
CHALLENGER = "SyncMap"  # the Go guidance under test: sync.Map pays off for read-mostly maps


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
class Advice:
    recommendations: list[Recommendation]
    crossovers: list[Crossover]


def _rankable(cell: Cell | None) -> bool:
    # The unlocked dict is measured to show what is lost, never to be chosen.
    return cell is not None and cell.safe and cell.impl != UNSAFE and bool(cell.rounds)


def _recommend(result: BenchResult, workload: str, param: float | None) -> Recommendation:
    cells = [c for c in result.cells if (c.workload, c.param) == (workload, param)]
    threads = max(c.threads for c in cells)
    at = [c for c in cells if c.threads == threads]
    ranked = sorted((c for c in at if _rankable(c)), key=lambda c: c.median, reverse=True)
    if not ranked:
        return Recommendation(workload, param, threads, None, "no implementation passed the checks")
    best = ranked[0]
    base = next((c for c in ranked if c.impl == BASELINE), None)
    if base is None:
        return Recommendation(workload, param, threads, best.impl, f"fastest that passed ({BASELINE} not measured)")
    if best is base:
        return Recommendation(workload, param, threads, BASELINE, "fastest, and the simplest")
    ratio = best.median / base.median
    _, p = mann_whitney_u(best.rounds, base.rounds)
    if p < ALPHA:
        return Recommendation(workload, param, threads, best.impl, f"x{ratio:.2f} vs {BASELINE} (p={p:.3f})")
    # With few rounds no difference can be significant: 3 against 3 cannot get below p = 0.1.
    floor = 2 / math.comb(len(best.rounds) + len(base.rounds), len(best.rounds))
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
        ratios[param] = ch.median / base.median
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


def advise(result: BenchResult) -> Advice:
    """Recommendations from medians of safe cells; ties go to the simplest (BASELINE)."""
    recs = [_recommend(result, w, p) for w, p in result.variants()]
    threads = sorted({c.threads for c in result.cells})
    crossovers = [x for x in (_crossover(result, t) for t in threads) if x is not None]
    return Advice(recs, crossovers)
