"""Reporters: rich tables and a progress bar for results, with a plain-text fallback."""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any

from . import impls, workloads
from .advisor import Advice
from .compare import Comparison
from .impls import BASELINE
from .results import BenchResult
from .runner import NoProgress

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

    from .runner import Progress

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


def fmt_loads(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def fmt_hit_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


def fmt_per_entry(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} B"


# unit -> (the value column's title, its formatter)
UNIT_FORMATS = {
    "ops/s": ("ops/s", fmt_rate),
    "loads": ("loads/burst", fmt_loads),
    "hit rate": ("hit rate", fmt_hit_rate),
    "B/entry": ("bytes/entry", fmt_per_entry),
}


def variant_title(workload: str, param: float | None) -> str:
    return workload if param is None else f"{workload} @ {param:.0%} reads"


def _kind(workload: str) -> str:
    w = workloads.by_name().get(workload)
    return w.kind if w is not None else "map"  # a workload this version does not know: as version 1


def _versus(workload: str) -> str:
    """The ratio column's reference implementation for ``workload`` ("" for none)."""
    w = workloads.by_name().get(workload)
    return w.versus if w is not None else BASELINE


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


def make_progress(enabled: bool = True) -> Progress:
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
    if o.get("redis"):
        lines.append(f"redis {o['redis']}: the redis_* workloads run there, on a throwaway hash per round")
    skipped = [s for s in result.implementations if not s.available]
    for s in skipped:
        lines.append(f"skipped {s.name}: {s.reason}")
    if result.interrupted:
        lines.append("INTERRUPTED: the results below are what was gathered before Ctrl-C")
    return lines


_COLUMNS = ("implementation", "thr", "ops/s", "min", "max", "p50", "p99", "max lat", "peak mem")


def _columns(unit: str, versus: str) -> tuple[str, ...]:
    title = UNIT_FORMATS[unit][0]
    head: tuple[str, ...]
    if unit == "ops/s":
        head = _COLUMNS
    elif unit == "loads":  # counted per burst: the spread and how often it was more than one matter
        head = ("implementation", "thr", title, "min", "max", "bursts >1")
    else:  # deterministic: one number per cell
        head = ("implementation", "thr", title)
    return head + ((f"vs {versus}",) if versus else ()) + ("check",)


def _rows(result: BenchResult, workload: str, param: float | None,
          advice: Advice | None) -> tuple[tuple[str, ...], list[list[str]], list[str]]:
    """(columns, rows, notes): one row per cell, failures as numbered notes."""
    chosen = {}
    if advice:
        for r in advice.recommendations:
            chosen[(r.workload, r.param)] = (r.threads, r.impl)
    cells = [c for c in result.cells if (c.workload, c.param) == (workload, param)]
    unit = cells[0].unit if cells else "ops/s"
    fmt = UNIT_FORMATS[unit][1]
    versus = _versus(workload)
    rows: list[list[str]] = []
    notes: list[str] = []
    for c in sorted(cells, key=lambda c: c.threads):
        base = result.find(workload, param, c.threads, versus) if versus else None
        ratio = "-"
        if base is not None and base.median and c.median is not None:  # a result's cells all have rounds
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
        row = [name, str(c.threads), fmt(c.median)]
        if unit == "ops/s":
            row += [fmt(min(c.rounds)), fmt(max(c.rounds)), fmt_ns(c.p50_ns), fmt_ns(c.p99_ns), fmt_ns(c.max_ns),
                    fmt_bytes(c.peak_bytes)]
        elif unit == "loads":
            row += [fmt(min(c.rounds)), fmt(max(c.rounds)), f"{sum(x > 1 for x in c.rounds)}/{len(c.rounds)}"]
        rows.append(row + ([ratio] if versus else []) + [check])
    return _columns(unit, versus), rows, notes + _left_out(result, workload)


def _left_out(result: BenchResult, workload: str) -> list[str]:
    """A note naming the caches that ran but not in this table because they have no bound."""
    w = workloads.by_name().get(workload)
    if w is None or w.kind != "cache":
        return []
    known = impls.by_name()
    ran = [s.name for s in result.implementations if s.available and s.name in known]
    unbounded = [n for n in ran if known[n].cache is not None and not known[n].bounded and not w.accepts(known[n])]
    return [f"not in this table: {', '.join(unbounded)} (no bound, so nothing to evict)"] if unbounded else []


def _detail(result: BenchResult, workload: str) -> str:
    w = workloads.by_name().get(workload)
    keys = result.header.options.get("keys")
    return w.detail(keys) if w is not None and isinstance(keys, int) else ""


LEGEND = (
    "ops/s: median of the timed rounds (min, max: slowest and fastest round). p50/p99/max lat: sampled "
    "single-operation latency, timer overhead subtracted. peak mem: tracemalloc peak while building and filling "
    f"the map. vs {BASELINE}: ratio of medians; (xN) is UNSAFE and not ranked."
)
CACHE_LEGEND = (
    "loads/burst: loader runs per burst of threads asking one cold key (median of the rounds; bursts >1: how many "
    "loaded more than once). hit rate: requests that did not run the loader, one seeded trace, the same for every "
    "cache. bytes/entry: tracemalloc's growth per entry loaded. vs lru_cache: ratio to functools.lru_cache's number."
)


REDIS_LEGEND = (
    "redis_*: ops/s: median of the timed rounds (min, max: slowest and fastest round). p50/p99/max lat: every "
    "operation timed, not one in 32, timer overhead subtracted. peak mem: not measured (the map is in the server). "
    f"vs {impls.RAW_REDIS}: ratio of medians to plain redis-py on the same server in the same run, rounds interleaved."
)


def _legends(result: BenchResult) -> list[str]:
    redis = any(_kind(c.workload) == "redis" for c in result.cells)
    units = {c.unit for c in result.cells if _kind(c.workload) != "redis"}
    return ([LEGEND] if "ops/s" in units else []) + ([REDIS_LEGEND] if redis else []) + (
        [CACHE_LEGEND] if units - {"ops/s"} else [])


def _advice_lines(advice: Advice, result: BenchResult) -> list[str]:
    lines = ["Advisor (* in the tables):"] if advice.recommendations else []
    for r in advice.recommendations:
        title = variant_title(r.workload, r.param)
        at = f"{r.threads} thread{'' if r.threads == 1 else 's'}"
        lines.append(f"  {title:<26} use {r.impl or 'nothing'} at {at}: {r.reason}")
    if advice.crossovers:
        lines.append("SyncMap vs dict+Lock on the read-ratio sweep:")
        for x in advice.crossovers:
            ratios = ", ".join(f"{k:.0%}: x{v:.2f}" for k, v in sorted(x.ratios.items()))
            lines.append(f"  {x.threads} thread{'' if x.threads == 1 else 's'}: {x.text} ({ratios})")
    elif any(_kind(c.workload) == "map" for c in result.cells):
        lines.append("SyncMap vs dict+Lock: the read_ratio workload did not run with both, so no crossover")
    if advice.caches:
        lines.append("Caches, measured:")
        for g in advice.caches:
            lines.append(f"  {g.when}: {', '.join(g.impls)} ({g.text})")
        lines.append("Caches, when to use which (from the lines above; most reasons first):")
        wins: dict[str, list[str]] = {}
        for g in advice.caches:
            for name in g.impls:
                wins.setdefault(name, []).append(g.when)
        for name, whens in sorted(wins.items(), key=lambda item: -len(item[1])):
            lines.append(f"  {name}: when {'; when '.join(whens)}")
    if advice.overheads:
        lines.append("The API's cost over the plain client (same server, same run): ops/s ratio of medians, and p99:")
        for o in advice.overheads:
            title = f"{variant_title(o.workload, o.param)} x{o.threads}"
            ratio = "failed a check, no ratio" if o.ratio is None else f"x{o.ratio:.2f} the ops/s"
            lines.append(f"  {title:<30} {o.impl} {ratio} of {o.versus}, "
                         f"p99 {fmt_ns(o.p99_ns)} against {fmt_ns(o.versus_p99_ns)}")
    return lines


def _console(out: IO[str]) -> Console:
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
        columns, rows, notes = _rows(result, workload, param, advice)
        detail = _detail(result, workload)
        table = Table(title=variant_title(workload, param) + (f": {detail}" if detail else ""), title_justify="left")
        for i, col in enumerate(columns):
            table.add_column(col, justify="left" if i == 0 else "right", no_wrap=True)
        for row in rows:
            style = "red" if row[-1].startswith("UNSAFE") else None
            table.add_row(*row, style=style)
        con.print(table)
        for note in notes:
            con.print(note, markup=False, style="red" if note.startswith("[") else None, soft_wrap=True)
    for legend in _legends(result):
        con.print(legend, markup=False, soft_wrap=True)
    if advice:
        for line in _advice_lines(advice, result):
            con.print(line, markup=False, soft_wrap=True)


def _plain_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], out: IO[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(columns, *rows)]
    print(title, file=out)
    for row in (columns, *rows):
        print("  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(row, widths))),
              file=out)


def _plain_result(result: BenchResult, advice: Advice | None, out: IO[str]) -> None:
    for line in _header_lines(result):
        print(line, file=out)
    for workload, param in result.variants():
        columns, rows, notes = _rows(result, workload, param, advice)
        detail = _detail(result, workload)
        print(file=out)
        _plain_table(variant_title(workload, param) + (f": {detail}" if detail else ""), columns, rows, out)
        for note in notes:
            print(note, file=out)
    print(file=out)
    for legend in _legends(result):
        print(legend, file=out)
    if advice:
        for line in _advice_lines(advice, result):
            print(line, file=out)


# -- compare ----------------------------------------------------------------------------


def _compare_rows(cmp: Comparison) -> list[list[str]]:
    rows = []
    for d in cmp.deltas:
        change = f"{(d.ratio - 1) * 100:+.1f}%" if d.significant else "~"
        fmt = UNIT_FORMATS[d.unit][1]
        rows.append([
            variant_title(d.workload, d.param), str(d.threads), d.impl + (" (UNSAFE)" if d.unsafe else ""),
            fmt(d.old), fmt(d.new), f"x{d.ratio:.2f}", change, f"p={d.p:.3f}",
        ])
    return rows


def _compare_columns(cmp: Comparison) -> tuple[str, ...]:
    # The cache workloads' numbers are not all ops/s; each is formatted in its own unit.
    unit = " ops/s" if all(d.unit == "ops/s" for d in cmp.deltas) else ""
    return ("workload", "thr", "implementation", f"old{unit}", f"new{unit}", "ratio", "delta", "p")


def _compare_notes(cmp: Comparison) -> list[str]:
    notes = [f"'~': not significant at alpha={cmp.alpha} (two-sided Mann-Whitney U over the rounds)"]
    notes += [f"warning: the runs differ in {d}: the ratios measure that too" for d in cmp.differences]
    notes += [f"only in OLD: {variant_title(k[0], k[1])} x{k[2]} {k[3]}" for k in cmp.only_old]
    notes += [f"only in NEW: {variant_title(k[0], k[1])} x{k[2]} {k[3]}" for k in cmp.only_new]
    return notes


def render_compare(cmp: Comparison, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    rows = _compare_rows(cmp)
    if not have_rich():
        _plain_table("mapsafe bench compare", _compare_columns(cmp), rows, out)
        for note in _compare_notes(cmp):
            print(note, file=out)
        return
    from rich.table import Table

    con = _console(out)
    table = Table(title="mapsafe bench compare", title_justify="left")
    for i, col in enumerate(_compare_columns(cmp)):
        table.add_column(col, justify="left" if i in (0, 2) else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    con.print(table)
    for note in _compare_notes(cmp):
        con.print(note, markup=False, soft_wrap=True)
