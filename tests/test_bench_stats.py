"""mapsafe bench statistics: order statistics and the Mann-Whitney U test against brute force."""

from __future__ import annotations

import math
import random
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapsafe.bench import stats


def brute_u_p(x, y):
    """U by counting pairs, and the two-sided p by relabelling every split: independent of stats.py."""

    def u_of(a, b):
        return sum(1.0 if ai > bj else 0.5 if ai == bj else 0.0 for ai in a for bj in b)

    pooled = list(x) + list(y)
    n1 = len(x)
    u = u_of(x, y)
    below = above = total = 0
    for idx in combinations(range(len(pooled)), n1):
        chosen = set(idx)
        a = [pooled[i] for i in idx]
        b = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        ug = u_of(a, b)
        total += 1
        below += ug <= u
        above += ug >= u
    return u, min(1.0, 2 * min(below, above) / total)


def test_median_and_percentile():
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 3, 2]) == 2.5
    values = list(range(1, 101))
    assert stats.percentile(values, 50) == 50
    assert stats.percentile(values, 99) == 99
    assert stats.percentile(values, 100) == 100
    assert stats.percentile([7], 99) == 7
    with pytest.raises(ValueError, match="no values"):
        stats.median([])
    with pytest.raises(ValueError, match="q must be"):
        stats.percentile([1], 0)


def test_u_test_separated_five_and_five_is_the_smallest_exact_p():
    # All of x above all of y: U = 25, and only 1 of the C(10,5) = 252 splits is as extreme per side.
    u, p = stats.mann_whitney_u([10, 11, 12, 13, 14], [1, 2, 3, 4, 5])
    assert u == 25
    assert p == pytest.approx(2 / 252)


def test_u_test_three_and_three_can_never_reach_005():
    # Why --quick uses 5 rounds: with 3 per side the smallest two-sided p is 2/20.
    _, p = stats.mann_whitney_u([4, 5, 6], [1, 2, 3])
    assert p == pytest.approx(0.1)


def test_u_test_identical_samples_are_not_significant():
    u, p = stats.mann_whitney_u([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert u == 4.5
    assert p == 1.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=6),
    st.lists(st.integers(0, 6), min_size=1, max_size=6),
)
def test_u_test_matches_brute_force_with_ties(x, y):
    u, p = stats.mann_whitney_u(x, y)
    bu, bp = brute_u_p(x, y)
    assert u == bu
    assert p == pytest.approx(bp, abs=1e-12)


def test_normal_approximation_is_close_to_exact(monkeypatch):
    rng = random.Random(5)
    x = [rng.gauss(0, 1) for _ in range(8)]
    y = [rng.gauss(1, 1) for _ in range(8)]
    _, exact = stats.mann_whitney_u(x, y)
    monkeypatch.setattr(stats, "EXACT_LIMIT", 0)
    _, approx = stats.mann_whitney_u(x, y)
    assert exact < 0.2  # a real difference, so the comparison below means something
    assert approx == pytest.approx(exact, abs=0.02)


def test_normal_approximation_known_value(monkeypatch):
    # U = 0 for 10 vs 10 fully separated: z = (50 - 0.5) / sqrt(10*10*21/12).
    monkeypatch.setattr(stats, "EXACT_LIMIT", 0)
    u, p = stats.mann_whitney_u(list(range(10)), list(range(10, 20)))
    z = 49.5 / math.sqrt(175)
    assert u == 0
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)))


def test_u_test_rejects_empty_samples():
    with pytest.raises(ValueError, match="at least one value"):
        stats.mann_whitney_u([], [1])
