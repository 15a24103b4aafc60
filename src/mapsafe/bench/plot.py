"""`--plot FILE.png`: throughput against threads and against read ratio (matplotlib, Agg)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UsageError
from .impls import UNSAFE
from .results import BenchResult
from .stats import median

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["require_matplotlib", "plot", "figure"]

NO_MATPLOTLIB = 'matplotlib is not installed, so --plot cannot draw (pip install "mapsafe[plot]")'


def require_matplotlib() -> None:
    """Fail before benchmarking, not after, when --plot cannot work."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(NO_MATPLOTLIB) from None


Point = tuple[float, float, float, float]  # x, median, slowest round, fastest round


def _series(result: BenchResult, workload: str, param: float | None, by: str) -> dict[str, list[Point]]:
    """impl -> [(x, median, min, max ops/s)], x being the thread count or the read ratio (%)."""
    out: dict[str, list[Point]] = {}
    most = max((x.threads for x in result.cells if x.workload == workload), default=0)
    for c in result.cells:
        if c.workload != workload or not c.rounds or c.unit != "ops/s":
            continue
        if by == "threads" and c.param != param:
            continue
        if by == "ratio" and c.threads != most:
            continue
        x = c.threads if by == "threads" else (c.param or 0.0) * 100
        # median(c.rounds) is c.median, never None here: c has rounds.
        out.setdefault(c.impl, []).append((x, median(c.rounds), min(c.rounds), max(c.rounds)))
    return {k: sorted(v) for k, v in out.items()}


def _panels(result: BenchResult) -> list[tuple[str, str, float | None, str]]:
    """(title, workload, param, by) for every throughput measured: each workload against threads
    (read_ratio at --read-ratio), and the read-ratio sweep at the most threads, which has the
    other ratios. No workload measured is left out."""
    variants = [v for v in result.variants() if any(c.unit == "ops/s" and c.rounds for c in result.cells
                                                    if (c.workload, c.param) == v)]
    ratios = [p for w, p in variants if w == "read_ratio"]
    chosen = result.header.options.get("read_ratio")
    chosen = chosen if chosen in ratios else (ratios[-1] if ratios else None)
    panels = []
    for workload, param in variants:
        if workload == "read_ratio" and param != chosen and len(ratios) > 1:
            continue  # the other ratios are in the sweep panel, at the most threads
        title = workload if param is None else f"{workload} @ {param:.0%} reads"
        panels.append((f"{title}: throughput vs threads", workload, param, "threads"))
    if len(ratios) > 1:
        most = max(c.threads for c in result.cells if c.workload == "read_ratio")
        panels.append((f"read_ratio sweep at {most} threads", "read_ratio", None, "ratio"))
    return panels


def plot(result: BenchResult, path: str) -> None:
    """Draw ``figure(result)`` into ``path`` (.png, .svg or .pdf)."""
    import matplotlib.pyplot as plt

    fig = figure(result)
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def figure(result: BenchResult) -> Figure:
    """One panel per throughput workload (median ops/s against threads, the band from the slowest to
    the fastest round), the read-ratio sweep, one legend outside the panels, y axes from 0."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must come before pyplot
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import EngFormatter, MaxNLocator

    # Only throughputs are plotted: the cache workloads' other numbers have their own tables.
    panels = _panels(result)
    if not panels:
        raise UsageError("no throughput (ops/s) was measured, so there is nothing to plot")
    cols = 2 if len(panels) in (2, 4) else min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows + 1.2), squeeze=False)
    impls = list(dict.fromkeys(c.impl for c in result.cells if c.unit == "ops/s" and c.rounds))
    colors = {impl: f"C{i % 10}" for i, impl in enumerate(impls)}
    for ax, (title, workload, param, by) in zip(axes.flat, panels):
        for impl, pts in _series(result, workload, param, by).items():
            xs = [p[0] for p in pts]
            style = ":" if impl == UNSAFE else "-"
            ax.plot(xs, [p[1] for p in pts], marker="o", label=impl, color=colors[impl], linestyle=style)
            ax.fill_between(xs, [p[2] for p in pts], [p[3] for p in pts], color=colors[impl], alpha=0.15,
                            linewidth=0)
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("threads" if by == "threads" else "reads (%)")
        ax.set_ylabel("ops/s (median; band: min to max round)", fontsize="small")
        if by == "threads":
            ax.set_xticks(sorted({c.threads for c in result.cells if c.workload == workload}))
        ax.set_ylim(bottom=0)  # a throughput axis from 0: differences are not magnified
        ax.yaxis.set_major_formatter(EngFormatter(sep=""))  # 1.2M, not 1.2 with a 1e6 offset
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=colors[i], marker="o", linestyle=":" if i == UNSAFE else "-") for i in impls]
    fig.legend(handles, impls, loc="lower center", ncol=min(len(impls), 5), fontsize="small", frameon=False)
    h = result.header
    fig.suptitle(f"mapsafe bench - Python {h.python}, GIL {h.gil}, {h.cpus} CPUs, {h.date}", fontsize="small")
    legend_rows = -(-len(impls) // 5)
    fig.tight_layout(rect=(0, 0.04 + 0.035 * legend_rows * 4 / (3.9 * rows + 1.2), 1, 0.97))
    return fig
