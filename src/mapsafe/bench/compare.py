"""`bench compare`: per-cell ratios between two result files, with a significance test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .results import BenchResult
from .stats import mann_whitney_u, median

if TYPE_CHECKING:
    from typing import Callable

    from .results import Cell

__all__ = ["Delta", "Comparison", "compare", "differences"]


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
    only_old: list[tuple[str, float | None, int, str]]  # cell keys (Cell.key) measured only in OLD
    only_new: list[tuple[str, float | None, int, str]]
    differences: list[str]  # settings that differ: machine, interpreter, options, workloads, implementations
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
        # median(rounds) is Cell.median, never None here: a results file's cells all have rounds.
        deltas.append(Delta(*key, median(b.rounds), median(a.rounds), p, p < alpha, not (a.safe and b.safe), a.unit))
    return Comparison(
        deltas,
        [k for k in before if k not in after],
        [k for k in after if k not in before],
        differences(old, new),
        alpha,
    )


def differences(old: BenchResult, new: BenchResult) -> list[str]:
    """Every setting the two runs differ in, as "name: old -> new": the machine and interpreter (python,
    GIL, CPUs, platform, mapsafe and its core), the run's options (threads, rounds, keys, ...), and the
    workloads and implementations measured. A ratio between unlike runs measures the difference too."""
    found = [
        f"{name}: {getattr(old.header, name)} -> {getattr(new.header, name)}"
        for name in ("python", "gil", "cpus", "platform", "mapsafe")
        if getattr(old.header, name) != getattr(new.header, name)
    ]
    a, b = old.header.options, new.header.options
    for name in [*a, *(n for n in b if n not in a)]:
        if a.get(name) != b.get(name):
            found.append(f"{name}: {_shown(a.get(name))} -> {_shown(b.get(name))}")
    names: tuple[tuple[str, Callable[[Cell], str]], ...] = (
        ("workloads", lambda c: c.workload), ("implementations", lambda c: c.impl))
    for what, of in names:
        was, now = sorted({of(c) for c in old.cells}), sorted({of(c) for c in new.cells})
        if was != now:
            found.append(f"{what}: {', '.join(was) or 'none'} -> {', '.join(now) or 'none'}")
    return found


def _shown(value: object) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)

