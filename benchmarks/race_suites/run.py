"""`pytest --mapsafe-race` on third-party threaded test suites: outcomes, slowdown and races found.

Usage:
    python benchmarks/race_suites/run.py --venv VENV [--mirrors DIR] [--work DIR]
                                         [--install] [--project NAME ...] [--json FILE]

A benchmark, not a test: it needs the projects' git mirrors (one directory
per project, ``DIR/owner+name/repo``, as the search tool's ``fetch`` leaves
them) and a venv with this checkout of mapsafe installed; ``--install`` also
pip-installs each project (editable) and its test dependencies into that venv,
which needs PyPI and nothing else. Refuses to run under CI=true.

For each project in PROJECTS, the pinned commit is extracted under --work,
then its selected tests run twice with the venv's python: plainly, and with
``--mapsafe-race`` and MAPSAFE_RACE_INCLUDE set to the project's package.
Printed: passed/failed/errors/skipped of each run, the tests that failed
only under the detector (split into race reports and other differences),
how many of the package's modules were instrumented, the wall-time ratio,
and every distinct race as its two source locations and operations.

Two measurement workarounds are applied where a project needs them (see
README.md beside this file): ``ini`` overrides pytest ini values that would
import the package while pytest parses its config, before any plugin can
start (mapsafe's plugin names such modules in a warning). It is printed with
the project's row. (Measured at d1cb2f0, an ``early`` plugin also had to start
the detector before the initial conftest.py files; the plugin does that itself
since.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

__all__ = ["PROJECTS", "Project", "main"]


@dataclass(frozen=True)
class Project:
    """One row of the table: where the suite comes from and how it is run."""

    name: str
    source: str  # what `fetch` takes
    commit: str  # pinned; HEAD of the named branch when measured
    package: str  # MAPSAFE_RACE_INCLUDE, and the package whose instrumentation is counted
    path: str  # the directory put on PYTHONPATH, relative to the checkout
    tests: tuple  # pytest arguments selecting the tests
    deps: tuple = ()  # extra pip requirements for the tests
    env: dict = field(default_factory=dict)
    scm_version: str = ""  # SETUPTOOLS_SCM_PRETEND_VERSION for an archive without .git
    ini: tuple = ()  # (name, callable(checkout) -> value) for `-o name=value`
    note: str = ""

    @property
    def mirror(self) -> str:
        return self.source.split(":", 1)[1].replace("/", "+")


def _urllib3_filterwarnings(checkout: str) -> str:
    """urllib3's filterwarnings, with its own warning classes widened to Warning.

    pytest imports a filter's category while it reads the ini file, before any
    plugin runs: the categories urllib3.exceptions.* import urllib3 itself, and
    it is then never instrumented. The message regexes still pick the warnings.
    """
    import tomllib

    with open(os.path.join(checkout, "pyproject.toml"), "rb") as fh:
        filters = tomllib.load(fh)["tool"]["pytest"]["ini_options"]["filterwarnings"]
    return "\n".join(re.sub(r":urllib3\.exceptions\.\w+$", ":Warning", f) for f in filters)


_NO_SERVICES = "not mongodb and not redis and not etcd and not rethinkdb and not zookeeper"

PROJECTS: tuple = (
    Project(
        "cachetools", "github:tkem/cachetools", "28d4506f2a49d781ffbcecb095fa7aba5bb80aff",
        "cachetools", "src", ("tests",), env={"THREADING_TESTS": "1"},
        note="v7.0.6; whole suite with its threading tests on",
    ),
    Project(
        "client_python", "github:prometheus/client_python", "d0b497ffe069865537e55af52cb00c329d58a6f0",
        "prometheus_client", ".", ("tests",), deps=("asgiref", "pytest-benchmark", "attrs"),
        note="master; whole suite (twisted and aiohttp tests skip)",
    ),
    Project(
        "apscheduler", "github:agronholm/apscheduler", "7e7bc5e3292951d3d9bd498c6420df0f41e38194",
        "apscheduler", "src", ("tests", "-k", _NO_SERVICES),
        deps=("pytest-timeout", "anyio>=4.5.2", "pytz==2025.2", "tornado>=4.3", "sqlalchemy>=1.4"),
        scm_version="3.11.2",
        note="3.x branch; all but the external-service job stores; pytz pinned (2026.x breaks 3 cron tests)",
    ),
    Project(
        "urllib3", "github:urllib3/urllib3", "6a8536b6e1b0cbe69ae801337c599951e527ae29",
        "urllib3", "src",
        ("test/test_connectionpool.py", "test/test_poolmanager.py",
         "test/with_dummyserver/test_connectionpool.py", "test/with_dummyserver/test_poolmanager.py",
         "--timeout=120"),
        deps=("anyio[trio]>=4.8.0", "h2>=4.1.0", "httpx>=0.28.1", "hypercorn>=0.15.0", "pysocks>=1.7.1",
              "pytest-socket>=0.7.0", "pytest-timeout>=2.3.1", "quart>=0.20.0", "quart-trio>=0.12.0",
              "trio>=0.27.0", "trustme"),
        scm_version="2.7.0", ini=(("filterwarnings", _urllib3_filterwarnings),),
        note="main; connection-pool and pool-manager tests, unit and against the threaded dummy servers",
    ),
    Project(
        "diskcache", "github:grantjenks/python-diskcache", "ebfa37cd99d7ef716ec452ad8af4b4276a8e2233",
        "diskcache", ".",
        ("-o", "addopts=", "tests/test_core.py", "tests/test_deque.py", "tests/test_djangocache.py",
         "tests/test_doctest.py", "tests/test_fanout.py", "tests/test_index.py", "tests/test_recipes.py"),
        deps=("django==4.2.*", "pytest-django"), env={"DJANGO_SETTINGS_MODULE": "tests.settings"},
        note="master; the test_*.py modules, without its xdist/coverage addopts",
    ),
    Project(
        "pebble", "github:noxdafox/pebble", "95150f070d3deb76deed0141bdacf13042b8c64b",
        "pebble", ".",
        ("test/test_pebble.py", "test/test_thread_pool.py", "test/test_concurrent_thread.py",
         "test/test_asynchronous_thread.py", "test/test_process_pool_fork.py",
         "test/test_concurrent_process_fork.py", "test/test_asynchronous_process_fork.py"),
        note="master; thread modules and the fork process-pool modules (forkserver/spawn left out)",
    ),
)

# A pytest plugin written beside the runs: counts the package's modules that
# carry the detector's helpers' namespace (helpers.NAMESPACE), i.e. were
# instrumented.
_COUNT_PLUGIN = '''
import os, sys

def pytest_terminal_summary(terminalreporter):
    pkg = os.environ["MS_SUITES_PACKAGE"]
    mods = [m for n, m in list(sys.modules.items()) if m is not None and (n == pkg or n.startswith(pkg + "."))]
    done = [m for m in mods if "_@ms" in vars(m)]  # the one name the rewriter injects
    terminalreporter.write_line(f"ms-suites-instrumented: {len(done)}/{len(mods)}")
'''

_SUMMARY = re.compile(r"^=*\s*(?P<body>(\d+ \w+(, )?)+.*) in [\d.]+s")
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")
_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)")
_FRAME = re.compile(r"^  (\S+:\d+) in ")
_ACCESS = re.compile(r"^(?:Previous )?([Rr]ead|[Ww]rite) .* by thread ")


@dataclass
class Run:
    wall: float
    rc: int
    counts: dict
    failed: set
    instrumented: str
    session_races: int
    races: list  # [(current site, current op, previous site, previous op)]
    race_failed: set
    output: str


def _parse(out: str, wall: float, rc: int) -> Run:
    counts: dict = {}
    for line in out.splitlines():
        m = _SUMMARY.match(line)
        if m:
            counts = {}
            for n, what in _COUNT.findall(m.group("body")):
                counts["errors" if what.startswith("error") else what] = int(n)
    failed = {m.group(2) for m in map(_FAILED.match, out.splitlines()) if m}
    inst = re.findall(r"ms-suites-instrumented: (\S+)", out)
    session = re.findall(r"Found (\d+) data race\(s\) in this session", out)
    race_failed = set(re.findall(r"mapsafe race: \d+ data race\(s\) while running (\S+)", out))
    return Run(wall, rc, counts, failed, inst[-1] if inst else "?", int(session[-1]) if session else 0,
               _races(out), race_failed, out)


def _races(out: str) -> list:
    """Each distinct race as (site, operation, previous site, previous operation), first frames only."""
    found: list = []
    for block in out.split("WARNING: DATA RACE")[1:]:
        lines = block.split("==================")[0].splitlines()
        accesses = []  # [(operation, first frame)]
        for line in lines:
            m = _ACCESS.match(line)
            if m and len(accesses) < 2:
                accesses.append([f"{m.group(1).lower()} {_operation(line)}", None])
            elif accesses and accesses[-1][1] is None:
                f = _FRAME.match(line)
                if f:
                    accesses[-1][1] = f.group(1)
        if len(accesses) == 2:
            race = (accesses[0][1], accesses[0][0], accesses[1][1], accesses[1][0])
            if race not in found:
                found.append(race)
    return found


def _operation(line: str) -> str:
    """The operation of a report's access line: its last parenthesised group before 'to/from dict' or 'by thread'."""
    head = re.split(r" (?:to|from) dict | by thread ", line)[0]
    depth = 0
    for i in range(len(head) - 1, -1, -1):  # balance from the end: keys and operations may hold parentheses
        depth += {")": 1, "(": -1}.get(head[i], 0)
        if depth == 0:
            return head[i + 1:-1]
    return "?"


def _extract(p: Project, mirrors: str, work: str) -> str:
    checkout = os.path.join(work, p.name)
    stamp = os.path.join(checkout, ".ms_suites_commit")
    if os.path.exists(stamp) and open(stamp).read().strip() == p.commit:
        return checkout
    git_dir = os.path.join(mirrors, p.mirror, "repo")
    if not os.path.isdir(git_dir):
        raise SystemExit(f"race_suites: no mirror of {p.source} at {git_dir} (fetch it first)")
    subprocess.run(["rm", "-rf", checkout], check=True)
    os.makedirs(checkout)
    archive = subprocess.Popen(["git", f"--git-dir={git_dir}", "archive", p.commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", checkout], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"race_suites: git archive of {p.commit} failed in {git_dir}")
    with open(stamp, "w") as fh:
        fh.write(p.commit + "\n")
    return checkout


def _install(p: Project, python: str, checkout: str) -> None:
    env = dict(os.environ)
    if p.scm_version:
        env["SETUPTOOLS_SCM_PRETEND_VERSION"] = p.scm_version
    subprocess.run([python, "-m", "pip", "install", "-q", "-e", checkout, "pytest", *p.deps], check=True, env=env)


def _pytest(p: Project, python: str, checkout: str, aux: str, race: bool, timeout: float) -> Run:
    env = dict(os.environ, **p.env)
    env["PYTHONPATH"] = os.pathsep.join([aux, os.path.join(checkout, p.path)])
    env["MS_SUITES_PACKAGE"] = p.package
    env.pop("CI", None)
    cmd = [python, "-m", "pytest", "-p", "ms_suites_count", "-p", "no:cacheprovider", "-q", "-rfE"]
    for name, value in p.ini:
        cmd += ["-o", f"{name}={value(checkout)}"]
    if race:
        env["MAPSAFE_RACE_INCLUDE"] = p.package
        cmd.append("--mapsafe-race")
    cmd += list(p.tests)
    start = time.perf_counter()
    # A session of its own, so a hung suite is killed with its server threads' children.
    proc = subprocess.Popen(cmd, cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        out += f"\nrace_suites: killed after {timeout:.0f}s\n"
    return _parse(out, time.perf_counter() - start, proc.returncode)


def _counts(r: Run) -> str:
    c = r.counts
    return f"{c.get('passed', 0)}/{c.get('failed', 0)}/{c.get('errors', 0)}/{c.get('skipped', 0)}"


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", required=True, help="venv with mapsafe installed; its python runs the suites")
    parser.add_argument("--mirrors", default="/work/.mirror", help="directory of owner+name/repo git mirrors")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "race_suites"),
                        help="where the checkouts and the run logs go")
    parser.add_argument("--install", action="store_true", help="pip-install each project and its test deps first")
    parser.add_argument("--project", action="append", choices=[p.name for p in PROJECTS], help="default: all")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per suite run (default 1200)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if os.environ.get("CI") == "true":
        print("race_suites: a benchmark; not run under CI", file=sys.stderr)
        return 0
    python = os.path.join(args.venv, "bin", "python")
    if not os.path.exists(python):
        print(f"race_suites: no python in venv {args.venv}", file=sys.stderr)
        return 2
    aux = os.path.join(args.work, "_plugins")
    os.makedirs(aux, exist_ok=True)
    for name, text in (("ms_suites_count.py", _COUNT_PLUGIN),):
        with open(os.path.join(aux, name), "w") as fh:
            fh.write(text)

    results = []
    for p in PROJECTS:
        if args.project and p.name not in args.project:
            continue
        checkout = _extract(p, args.mirrors, args.work)
        if args.install:
            _install(p, python, checkout)
        plain = _pytest(p, python, checkout, aux, False, args.timeout)
        race = _pytest(p, python, checkout, aux, True, args.timeout)
        for side, r in (("plain", plain), ("race", race)):
            with open(os.path.join(args.work, f"{p.name}.{side}.log"), "w") as fh:
                fh.write(r.output)
        only_race = race.failed - plain.failed
        results.append({
            "name": p.name, "commit": p.commit[:12], "note": p.note,
            "workarounds": ["ini"] if p.ini else [],
            "plain": _counts(plain), "race": _counts(race),
            "failed_by_race_report": sorted(only_race & race.race_failed),
            "failed_otherwise": sorted(only_race - race.race_failed),
            "passed_only_under_race": sorted(plain.failed - race.failed),
            "instrumented": race.instrumented, "session_races": race.session_races,
            "races": [list(x) for x in race.races],
            "plain_s": round(plain.wall, 1), "race_s": round(race.wall, 1),
            "ratio": round(race.wall / plain.wall, 1) if plain.wall else None,
        })
        _print_row(results[-1])

    print()
    print("| project | commit | tests plain p/f/e/s | under detector p/f/e/s | failed by a race report | "
          "other differences | instrumented | races | time plain -> detector |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        other = len(r["failed_otherwise"]) + len(r["passed_only_under_race"])
        print(f"| {r['name']} | {r['commit']} | {r['plain']} | {r['race']} | {len(r['failed_by_race_report'])} | "
              f"{other} | {r['instrumented']} | {len(r['races'])} | "
              f"{r['plain_s']}s -> {r['race_s']}s ({r['ratio']}x) |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


def _print_row(r: dict) -> None:
    print(f"== {r['name']} @ {r['commit']} ({r['note']}); workarounds: {', '.join(r['workarounds']) or 'none'}")
    print(f"   plain p/f/e/s {r['plain']} in {r['plain_s']}s; detector {r['race']} in {r['race_s']}s "
          f"({r['ratio']}x); instrumented {r['instrumented']}; races in session {r['session_races']}")
    for t in r["failed_by_race_report"]:
        print(f"   failed by a race report: {t}")
    for t in r["failed_otherwise"]:
        print(f"   failed under the detector only, not by a race report: {t}")
    for t in r["passed_only_under_race"]:
        print(f"   failed plainly only: {t}")
    for site, op, prev_site, prev_op in r["races"]:
        print(f"   race: {site} ({op})  vs  {prev_site} ({prev_op})")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
