"""`bench compare`: per-cell ratios between two result files, with a significance test."""

from __future__ import annotations

from dataclasses import dataclass

from .results import BenchResult
from .stats import mann_whitney_u

__all__ = ["Delta", "Comparison", "compare"]


@dataclass
class Delta:
    """One cell measured in both files."""

    workload: str
    param: float | None
    threads: int
    impl: str
    old: float  # median, in `unit`
    new: float
    p: float  # two-sided Mann-Whitney U p-value over the per-round values
    significant: bool  # p < alpha; otherwise the ratio is shown as "~"
    unsafe: bool  # failed a correctness check in either file
    unit: str = "ops/s"

    @property
    def ratio(self) -> float:
        return self.new / self.old if self.old else float("inf")


@dataclass
class Comparison:
    deltas: list[Delta]
    only_old: list[tuple]  # cell keys measured only in OLD
    only_new: list[tuple]
    differences: list[str]  # header facts that differ (interpreter, GIL, CPUs...)
    alpha: float


def compare(old: BenchResult, new: BenchResult, alpha: float = 0.05) -> Comparison:
    """Match cells by (workload, param, threads, impl) and test each pair of round lists.

    Both files' cells of one workload are in one unit: a workload's unit is
    fixed by its name.
    """
    before = {c.key: c for c in old.cells}
    after = {c.key: c for c in new.cells}
    deltas = []
    for key, b in before.items():
        a = after.get(key)
        if a is None:
            continue
        _, p = mann_whitney_u(b.rounds, a.rounds)
        deltas.append(Delta(*key, b.median, a.median, p, p < alpha, not (a.safe and b.safe), a.unit))
    differences = [
        f"{name}: {getattr(old.header, name)} -> {getattr(new.header, name)}"
        for name in ("python", "gil", "cpus", "platform")
        if getattr(old.header, name) != getattr(new.header, name)
    ]
    return Comparison(
        deltas,
        [k for k in before if k not in after],
        [k for k in after if k not in before],
        differences,
        alpha,
    )
