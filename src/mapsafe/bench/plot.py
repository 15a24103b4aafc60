"""`--plot FILE.png`: throughput against threads and against read ratio (matplotlib, Agg)."""

from __future__ import annotations

from ..errors import UsageError
from .impls import UNSAFE
from .results import BenchResult

__all__ = ["require_matplotlib", "plot"]

NO_MATPLOTLIB = 'matplotlib is not installed, so --plot cannot draw (pip install "mapsafe[plot]")'


def require_matplotlib() -> None:
    """Fail before benchmarking, not after, when --plot cannot work."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(NO_MATPLOTLIB) from None


def _series(result: BenchResult, workload: str, param: float | None, by: str) -> dict[str, list[tuple[float, float]]]:
    """impl -> [(x, median ops/s)], x being the thread count or the read ratio."""
    out: dict[str, list[tuple[float, float]]] = {}
    for c in result.cells:
        if c.workload != workload or not c.rounds or c.unit != "ops/s":
            continue
        if by == "threads" and c.param != param:
            continue
        if by == "ratio" and c.threads != max(x.threads for x in result.cells if x.workload == workload):
            continue
        x = c.threads if by == "threads" else (c.param or 0.0) * 100
        out.setdefault(c.impl, []).append((x, c.median))
    return {k: sorted(v) for k, v in out.items()}


def plot(result: BenchResult, path: str) -> None:
    """Left: median ops/s against threads; right: against read ratio at the most threads."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must come before pyplot
    import matplotlib.pyplot as plt

    # Only throughputs are plotted: the cache workloads' other numbers have their own tables.
    variants = [v for v in result.variants() if any(c.unit == "ops/s" for c in result.cells if c.workload == v[0])]
    params = [p for w, p in variants if w == "read_ratio"]
    read_ratio = result.header.options.get("read_ratio")
    if params:
        left = ("read_ratio", read_ratio if read_ratio in params else params[-1])
    elif variants:
        left = variants[0]
    else:
        raise UsageError("no throughput (ops/s) was measured, so there is nothing to plot")
    fig, axes = plt.subplots(1, 2 if params else 1, figsize=(13 if params else 7, 5), squeeze=False)
    ax = axes[0][0]
    for impl, pts in _series(result, left[0], left[1], "threads").items():
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=impl,
                linestyle=":" if impl == UNSAFE else "-")
    title = left[0] if left[1] is None else f"{left[0]} @ {left[1]:.0%} reads"
    ax.set(title=f"{title}: throughput vs threads", xlabel="threads", ylabel="ops/s (median of rounds)")
    ax.set_xticks(sorted({c.threads for c in result.cells if c.workload == left[0]}))
    ax.legend(fontsize="small")
    if params:
        ax = axes[0][1]
        for impl, pts in _series(result, "read_ratio", None, "ratio").items():
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=impl,
                    linestyle=":" if impl == UNSAFE else "-")
        most = max(c.threads for c in result.cells if c.workload == "read_ratio")
        ax.set(title=f"read_ratio sweep at {most} threads", xlabel="reads (%)", ylabel="ops/s (median of rounds)")
        ax.legend(fontsize="small")
    h = result.header
    fig.suptitle(f"mapsafe bench - Python {h.python}, GIL {h.gil}, {h.cpus} CPUs, {h.date}", fontsize="small")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
