"""The result objects the runner produces and the reporters, schema and advisor read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .stats import median

__all__ = ["Header", "ImplStatus", "Cell", "BenchResult", "UNITS", "HIGHER_IS_BETTER"]

# What a cell's per-round numbers are: operations per second (the map
# workloads and the cache throughputs), loader runs per stampede burst, the
# fraction of requests that hit, and bytes per cached entry.
UNITS = ("ops/s", "loads", "hit rate", "B/entry")
HIGHER_IS_BETTER = {"ops/s": True, "loads": False, "hit rate": True, "B/entry": False}


@dataclass
class Header:
    """Where and how the numbers were measured."""

    python: str  # e.g. "3.13.0 (CPython)"
    gil: str  # "enabled", "disabled", or "enabled (free-threaded build, GIL re-enabled)"
    cpus: int
    date: str  # ISO 8601, UTC
    platform: str
    mapsafe: str
    options: dict[str, Any]  # threads, duration, rounds, keys, read_ratio, seed, quick


@dataclass
class ImplStatus:
    """An implementation that was asked for: run, or skipped with the reason."""

    name: str
    available: bool
    reason: str = ""


@dataclass
class Cell:
    """One implementation on one workload variant at one thread count."""

    workload: str
    param: float | None  # the read ratio for read_ratio/disjoint, else None
    threads: int
    impl: str
    rounds: list[float] = field(default_factory=list)  # each round's number, in `unit`
    p50_ns: float | None = None  # sampled single-operation latency
    p99_ns: float | None = None
    max_ns: float | None = None
    peak_bytes: int | None = None  # tracemalloc peak of building and filling the map
    failures: list[str] = field(default_factory=list)  # correctness failures; non-empty = UNSAFE
    unit: str = "ops/s"  # one of UNITS

    @property
    def safe(self) -> bool:
        return not self.failures

    @property
    def median(self) -> float | None:
        return median(self.rounds) if self.rounds else None

    @property
    def key(self) -> tuple[str, float | None, int, str]:
        return (self.workload, self.param, self.threads, self.impl)


@dataclass
class BenchResult:
    """Everything one ``mapsafe bench`` run measured."""

    header: Header
    implementations: list[ImplStatus]
    cells: list[Cell]
    interrupted: bool = False

    def variants(self) -> list[tuple[str, float | None]]:
        """(workload, param) pairs in the order they were run."""
        seen: dict[tuple[str, float | None], None] = {}
        for cell in self.cells:
            seen.setdefault((cell.workload, cell.param), None)
        return list(seen)

    def find(self, workload: str, param: float | None, threads: int, impl: str) -> Cell | None:
        for cell in self.cells:
            if cell.key == (workload, param, threads, impl):
                return cell
        return None
