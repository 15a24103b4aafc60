"""Benchmark: `mapsafe lint`'s cost, as ratios measured in one run: growth with input size, against pyflakes, cache.

Three measurements, each a ratio of CPU times (``time.process_time``) taken in
this process, so that a shared, noisy machine changes both sides alike:

* **growth**: a generated module of N lines (classes with map attributes,
  threads, locks, loops; every chunk distinct) against one of N/2 lines. A
  linear cost gives about x2.0.
* **whole program vs pyflakes**: the whole-program run (``lint_paths``) on a
  tree, against pyflakes checking the same files. The goal is at most x2.0.
* **cache**: a re-run on the unchanged tree with a warm ``.mapsafe_cache``
  against the cold run. The goal is under 20% (x0.20).

    python benchmarks/lint_speed.py [--lines 100000] [TREE ...]

TREE defaults to the running Python's standard library (without test/ and
site-packages/).
"""

from __future__ import annotations

import argparse
import io
import os
import sysconfig
import tempfile
import time

from mapsafe.lint.cache import Cache
from mapsafe.lint.checker import Selection, decode_source, lint_paths
from mapsafe.lint.discover import iter_python_files

_CHUNK = '''
class Worker{i}(threading.Thread):
    registry = {{}}

    def __init__(self, pool):
        super().__init__(daemon=True)
        self.pool = pool
        self._cache = {{}}
        self._lock = threading.Lock()
        self.seen = set()

    def run(self):
        for n in range(10):
            self.step(n)
            helper_{i}(self._cache, n)

    def step(self, n):
        if n not in self._cache:
            self._cache[n] = n * 2
        with self._lock:
            self.seen.add(n)
        for k, v in list(self._cache.items()):
            if v > 100:
                del self._cache[k]

    def report(self):
        return sum(k for k in self._cache), sorted(self.seen)


def helper_{i}(d, n):
    d[n] = d.get(n, 0) + 1
    return [k for k in d if k > n]


def start_{i}():
    w = Worker{i}(None)
    w.start()
    threading.Thread(target=helper_{i}, args=(STATE, {i})).start()
    STATE[{i}] = {i}
    return w.report()
'''


def synthetic(lines: int) -> str:
    parts = ["import threading\nSTATE = {}\n"]
    total, i = 2, 0
    while total < lines:
        chunk = _CHUNK.format(i=i)
        parts.append(chunk)
        total += chunk.count("\n")
        i += 1
    return "".join(parts)


def _cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def growth(lines: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        times = {}
        for n in (lines // 2, lines):
            path = os.path.join(tmp, f"synthetic_{n}.py")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(synthetic(n))
            times[n] = _cpu(lambda: lint_paths([path]))
            print(f"  {n:>8} lines: {times[n]:6.2f} CPU s")
        ratio = times[lines] / times[lines // 2]
        print(f"growth: x{ratio:.2f} for twice the lines (linear is about x2.0)")


def _sources(tree: str) -> list[tuple[str, str]]:
    out = []
    for path, problem in iter_python_files([tree], ["test", "site-packages"]):
        if problem is None:
            with open(path, "rb") as fh:
                try:
                    out.append((path, decode_source(fh.read())))
                except Exception:  # noqa: BLE001 - neither tool can check it
                    pass
    return out


def whole_program(tree: str) -> None:
    from pyflakes.api import check
    from pyflakes.reporter import Reporter

    files = _sources(tree)
    lines = sum(source.count("\n") for _, source in files)
    print(f"tree: {tree} ({len(files)} files, {lines:,} lines)")
    found: list = []
    mine = _cpu(lambda: found.append(lint_paths([tree], Selection(), ["test", "site-packages"])))
    sink = io.StringIO()
    theirs = _cpu(lambda: [check(source, path, Reporter(sink, sink)) for path, source in files])
    print(f"  mapsafe lint (whole program): {mine:6.2f} CPU s, {len(found[0].findings)} findings")
    print(f"  pyflakes (same files):        {theirs:6.2f} CPU s")
    print(f"whole program vs pyflakes: x{mine / theirs:.2f} (goal: at most x2.0)")
    with tempfile.TemporaryDirectory() as root:
        cold = _cpu(lambda: lint_paths([tree], Selection(), ["test", "site-packages"], cache=Cache(root)))
        warm = _cpu(lambda: lint_paths([tree], Selection(), ["test", "site-packages"], cache=Cache(root)))
    print(f"  cold run with cache: {cold:6.2f} CPU s; warm re-run: {warm:6.2f} CPU s")
    print(f"cache: warm/cold x{warm / cold:.2f} (goal: under x0.20)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", default=[sysconfig.get_paths()["stdlib"]])
    parser.add_argument("--lines", type=int, default=100_000, help="lines of the bigger synthetic module")
    args = parser.parse_args()
    print("growth with input size:")
    growth(args.lines)
    for tree in args.trees:
        whole_program(tree)


if __name__ == "__main__":
    main()
