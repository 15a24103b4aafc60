"""Order statistics and the Mann-Whitney U test, with the standard library only."""

from __future__ import annotations

import math
from itertools import combinations
from typing import Sequence

__all__ = ["median", "percentile", "mann_whitney_u", "EXACT_LIMIT"]

# Exact p-values enumerate every split of the pooled ranks when there are at
# most this many; benchmark rounds (5 + 5: 252 splits) are far below it.
EXACT_LIMIT = 200_000


def median(values: Sequence[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count)."""
    if not values:
        raise ValueError("median() of no values")
    s = sorted(values)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100): a value that was observed."""
    if not values:
        raise ValueError("percentile() of no values")
    if not 0 < q <= 100:
        raise ValueError(f"q must be in (0, 100], got {q!r}")
    s = sorted(values)
    return float(s[max(0, math.ceil(q / 100 * len(s)) - 1)])


def _midranks(pooled: Sequence[float]) -> list[float]:
    """1-based ranks of ``pooled`` in its own order, ties sharing their mean rank."""
    order = sorted(range(len(pooled)), key=pooled.__getitem__)
    ranks = [0.0] * len(pooled)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and pooled[order[j + 1]] == pooled[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def mann_whitney_u(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """``(U, p)``: U of ``x`` against ``y`` and the two-sided p-value.

    U counts the pairs (xi, yj) with xi > yj, ties counting one half. The
    p-value is ``min(1, 2 * min(P(U' <= U), P(U' >= U)))`` under the null
    hypothesis that every assignment of the pooled values to the two groups
    is equally likely. It is exact (all splits enumerated, ties included)
    when there are at most EXACT_LIMIT splits, else the normal approximation
    with tie and continuity corrections.
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney_u() needs at least one value in each sample")
    pooled = list(x) + list(y)
    ranks = _midranks(pooled)
    base = n1 * (n1 + 1) / 2
    u = sum(ranks[:n1]) - base
    if math.comb(n1 + n2, n1) <= EXACT_LIMIT:
        below = above = total = 0
        for group in combinations(ranks, n1):
            ug = sum(group) - base
            total += 1
            # Rank sums are multiples of 1/2, so a small tolerance is exact enough.
            below += ug <= u + 1e-9
            above += ug >= u - 1e-9
        return u, min(1.0, 2 * min(below, above) / total)
    mu = n1 * n2 / 2
    counts: dict[float, int] = {}
    for v in pooled:
        counts[v] = counts.get(v, 0) + 1
    n = n1 + n2
    ties = sum(t**3 - t for t in counts.values())
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return u, 1.0  # every value equal: no evidence of a difference
    z = (abs(u - mu) - 0.5) / math.sqrt(var)
    return u, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))
