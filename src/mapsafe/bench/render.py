"""Reporters: rich tables and a progress bar for results, with a plain-text fallback."""

from __future__ import annotations

import sys
from typing import IO, Any

from .advisor import Advice
from .compare import Comparison
from .impls import BASELINE
from .results import BenchResult
from .runner import NoProgress

__all__ = ["have_rich", "make_progress", "render_result", "render_compare", "NO_RICH"]

NO_RICH = 'mapsafe bench: rich is not installed, so no progress bar and plain tables (pip install "mapsafe[cli]")'


def have_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


# -- numbers --------------------------------------------------------------------


def fmt_rate(x: float | None) -> str:
    if x is None:
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.2f}{suffix}"
    return f"{x:.0f}"


def fmt_ns(x: float | None) -> str:
    if x is None:
        return "-"
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.0f} ns"


def fmt_bytes(x: int | None) -> str:
    if x is None:
        return "-"
    for scale, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if x >= scale:
            return f"{x / scale:.1f} {unit}"
    return f"{x} B"


def variant_title(workload: str, param: float | None) -> str:
    return workload if param is None else f"{workload} @ {param:.0%} reads"


# -- progress -------------------------------------------------------------------


class _RichProgress:
    """A rich progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("[bold]bench[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
            transient=True,
        )
        self._task: Any = None

    def start(self, total: int) -> None:
        self._bar.start()
        self._task = self._bar.add_task("", total=total)

    def advance(self, label: str) -> None:
        self._bar.update(self._task, advance=1, description=label)

    def stop(self) -> None:
        self._bar.stop()


def make_progress(enabled: bool = True):
    """A Progress for the runner: rich on a terminal, else nothing (the CLI says why once)."""
    if not enabled or not sys.stderr.isatty() or not have_rich():
        return NoProgress()
    return _RichProgress()


# -- tables, as rows of strings (shared by the rich and the plain renderers) ---------


def _header_lines(result: BenchResult) -> list[str]:
    h = result.header
    o = h.options
    lines = [
        f"mapsafe {h.mapsafe} bench | Python {h.python} | GIL {h.gil} | {h.cpus} CPUs | {h.date}",
        f"platform {h.platform}",
        f"threads {','.join(map(str, o.get('threads', [])))} | {o.get('rounds')} rounds x {o.get('duration')} s"
        f" | keys {o.get('keys')} | read ratio {o.get('read_ratio')} | seed {o.get('seed')}"
        + (" | --quick" if o.get("quick") else ""),
    ]
    skipped = [s for s in result.implementations if not s.available]
    for s in skipped:
        lines.append(f"skipped {s.name}: {s.reason}")
    if result.interrupted:
        lines.append("INTERRUPTED: the results below are what was gathered before Ctrl-C")
    return lines


_COLUMNS = ("implementation", "thr", "ops/s", "min", "max", "p50", "p99", "max lat", "peak mem",
            f"vs {BASELINE}", "check")


def _rows(result: BenchResult, workload: str, param: float | None, advice: Advice | None):
    """(rows, notes): one row per cell, failures as numbered notes."""
    chosen = {}
    if advice:
        for r in advice.recommendations:
            chosen[(r.workload, r.param)] = (r.threads, r.impl)
    cells = [c for c in result.cells if (c.workload, c.param) == (workload, param)]
    rows, notes = [], []
    for c in sorted(cells, key=lambda c: c.threads):
        base = result.find(workload, param, c.threads, BASELINE)
        ratio = "-"
        if base is not None and base.median:
            ratio = f"x{c.median / base.median:.2f}"
            if not c.safe:
                ratio = f"({ratio})"  # shown, but not ranked
        if c.safe:
            check = "ok"
        else:
            more = f" (and {len(c.failures) - 1} more)" if len(c.failures) > 1 else ""
            notes.append(f"[{len(notes) + 1}] {c.impl} x{c.threads}: {c.failures[0]}{more}")
            check = f"UNSAFE [{len(notes)}]"
        name = c.impl + (" *" if chosen.get((workload, param)) == (c.threads, c.impl) else "")
        rows.append([
            name, str(c.threads), fmt_rate(c.median), fmt_rate(min(c.rounds)), fmt_rate(max(c.rounds)),
            fmt_ns(c.p50_ns), fmt_ns(c.p99_ns), fmt_ns(c.max_ns), fmt_bytes(c.peak_bytes), ratio, check,
        ])
    return rows, notes


LEGEND = (
    "ops/s: median of the timed rounds (min, max: slowest and fastest round). p50/p99/max lat: sampled "
    "single-operation latency, timer overhead subtracted. peak mem: tracemalloc peak while building and filling "
    f"the map. vs {BASELINE}: ratio of medians; (xN) is UNSAFE and not ranked."
)


def _advice_lines(advice: Advice) -> list[str]:
    lines = ["Advisor (* in the tables):"]
    for r in advice.recommendations:
        title = variant_title(r.workload, r.param)
        lines.append(f"  {title:<26} use {r.impl or 'nothing'} at {r.threads} threads: {r.reason}")
    if advice.crossovers:
        lines.append("SyncMap vs dict+Lock on the read-ratio sweep:")
        for x in advice.crossovers:
            ratios = ", ".join(f"{k:.0%}: x{v:.2f}" for k, v in sorted(x.ratios.items()))
            lines.append(f"  {x.threads} thread{'' if x.threads == 1 else 's'}: {x.text} ({ratios})")
    else:
        lines.append("SyncMap vs dict+Lock: the read_ratio workload did not run with both, so no crossover")
    return lines


def _console(out: IO[str]):
    from rich.console import Console

    # Piped output (a file, a CI log) gets a fixed width so tables are not squeezed.
    return Console(file=out, width=None if out.isatty() else 150, highlight=False)


def render_result(result: BenchResult, advice: Advice | None, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    if not have_rich():
        return _plain_result(result, advice, out)
    from rich.table import Table

    con = _console(out)
    for line in _header_lines(result):
        con.print(line, markup=False, soft_wrap=True)
    for workload, param in result.variants():
        rows, notes = _rows(result, workload, param, advice)
        table = Table(title=variant_title(workload, param), title_justify="left")
        for i, col in enumerate(_COLUMNS):
            table.add_column(col, justify="left" if i == 0 else "right", no_wrap=True)
        for row in rows:
            style = "red" if row[-1].startswith("UNSAFE") else None
            table.add_row(*row, style=style)
        con.print(table)
        for note in notes:
            con.print(note, markup=False, style="red", soft_wrap=True)
    con.print(LEGEND, markup=False, soft_wrap=True)
    if advice:
        for line in _advice_lines(advice):
            con.print(line, markup=False, soft_wrap=True)


def _plain_table(title: str, columns, rows, out: IO[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(columns, *rows)]
    print(title, file=out)
    for row in (columns, *rows):
        print("  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(row, widths))),
              file=out)


def _plain_result(result: BenchResult, advice: Advice | None, out: IO[str]) -> None:
    for line in _header_lines(result):
        print(line, file=out)
    for workload, param in result.variants():
        rows, notes = _rows(result, workload, param, advice)
        print(file=out)
        _plain_table(variant_title(workload, param), _COLUMNS, rows, out)
        for note in notes:
            print(note, file=out)
    print(file=out)
    print(LEGEND, file=out)
    if advice:
        for line in _advice_lines(advice):
            print(line, file=out)


# -- compare ----------------------------------------------------------------------------


def _compare_rows(cmp: Comparison) -> list[list[str]]:
    rows = []
    for d in cmp.deltas:
        change = f"{(d.ratio - 1) * 100:+.1f}%" if d.significant else "~"
        rows.append([
            variant_title(d.workload, d.param), str(d.threads), d.impl + (" (UNSAFE)" if d.unsafe else ""),
            fmt_rate(d.old), fmt_rate(d.new), f"x{d.ratio:.2f}", change, f"p={d.p:.3f}",
        ])
    return rows


_COMPARE_COLUMNS = ("workload", "thr", "implementation", "old ops/s", "new ops/s", "ratio", "delta", "p")


def _compare_notes(cmp: Comparison) -> list[str]:
    notes = [f"'~': not significant at alpha={cmp.alpha} (two-sided Mann-Whitney U over the rounds)"]
    notes += [f"note: the runs differ in {d}" for d in cmp.differences]
    notes += [f"only in OLD: {variant_title(k[0], k[1])} x{k[2]} {k[3]}" for k in cmp.only_old]
    notes += [f"only in NEW: {variant_title(k[0], k[1])} x{k[2]} {k[3]}" for k in cmp.only_new]
    return notes


def render_compare(cmp: Comparison, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    rows = _compare_rows(cmp)
    if not have_rich():
        _plain_table("mapsafe bench compare", _COMPARE_COLUMNS, rows, out)
        for note in _compare_notes(cmp):
            print(note, file=out)
        return
    from rich.table import Table

    con = _console(out)
    table = Table(title="mapsafe bench compare", title_justify="left")
    for i, col in enumerate(_COMPARE_COLUMNS):
        table.add_column(col, justify="left" if i in (0, 2) else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    con.print(table)
    for note in _compare_notes(cmp):
        con.print(note, markup=False, soft_wrap=True)
