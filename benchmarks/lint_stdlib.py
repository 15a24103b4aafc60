"""Benchmark: `mapsafe lint` against pyflakes on the running Python's standard library.

Both tools check the same files in the same process, one after the other, and
the result is reported as lines per second and as a ratio, so the number means
the same thing on a fast or a slow machine. The goal is the whole tree
(excluding test/ and site-packages/, about 360k lines on 3.11) in under 60 s.

    python benchmarks/lint_stdlib.py [--repeat N] [STDLIB_DIR]
"""

from __future__ import annotations

import argparse
import io
import sysconfig
import time

from mapsafe.lint.checker import Selection, decode_source, lint_source
from mapsafe.lint.discover import iter_python_files


def _files(root: str) -> list[tuple[str, str]]:
    out = []
    for path, problem in iter_python_files([root], ["test", "site-packages"]):
        if problem is None:
            with open(path, "rb") as fh:
                try:
                    out.append((path, decode_source(fh.read())))
                except Exception:  # noqa: BLE001 - neither tool can check it; skip for both
                    pass
    return out


def _mapsafe(files: list[tuple[str, str]]) -> int:
    selection = Selection()
    return sum(len(lint_source(source, path, selection)) for path, source in files)


def _pyflakes(files: list[tuple[str, str]]) -> int:
    from pyflakes.api import check
    from pyflakes.reporter import Reporter

    sink = io.StringIO()
    reporter = Reporter(sink, sink)
    return sum(check(source, path, reporter) for path, source in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=sysconfig.get_paths()["stdlib"])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each tool; the best time counts")
    args = parser.parse_args()
    files = _files(args.root)
    lines = sum(source.count("\n") for _, source in files)
    print(f"tree: {args.root} ({len(files)} files, {lines} lines; sources read before timing)")
    timings = {}
    for name, tool in (("mapsafe lint", _mapsafe), ("pyflakes", _pyflakes)):
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            found = tool(files)
            best = min(best, time.perf_counter() - start)
        timings[name] = best
        print(f"{name:13} {best:7.2f} s  {lines / best:10,.0f} lines/s  ({found} findings)")
    ratio = timings["mapsafe lint"] / timings["pyflakes"]
    print(f"ratio: mapsafe lint takes {ratio:.2f}x the time of pyflakes on the same tree")
    budget = "within" if timings["mapsafe lint"] < 60 else "OVER"
    print(f"goal: whole tree under 60 s: {budget} ({timings['mapsafe lint']:.1f} s)")


if __name__ == "__main__":
    main()
