"""`mapsafe race` end to end: faithfulness to plain python, options, bad input."""

from __future__ import annotations

import os
import json
import re
import textwrap
import subprocess
import sys

import pytest

from _race_harness import clean_env, race, run_race

RACY = """\
import threading
d = {}
def w():
    d["k"] = 1
t = threading.Thread(target=w, name="writer")
t.start()
x = d.get("k")
t.join()
print("done")
"""


def _mapsafe(*args: str, cwd: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = clean_env()
    return subprocess.run(
        [sys.executable, "-m", "mapsafe", "race", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60, input=stdin, env=env,
    )


# -- faithfulness ------------------------------------------------------------


@pytest.mark.parametrize(
    "src",
    [
        # an uncaught KeyError from an augmented assignment in a function
        "d = {'a': 1}\ndef f():\n    d['a'] += 1\n    d['zz'] += 1\nf()\n",
        # an exception chained from another, raised from a dict method
        "d = {}\ntry:\n    d.pop('x')\nexcept KeyError as e:\n    raise ValueError('no x') from e\n",
        # a syntax error
        "x = (\nprint(1)\n",
        # sys.exit with a message, and with a number
        "import sys\nprint('out')\nsys.exit('bye')\n",
        "import sys\nprint('out')\nsys.exit(7)\n",
        # an exception in a thread, then a normal exit
        "import threading\nd = {}\nt = threading.Thread(target=lambda: d['nope'])\n"
        "t.start(); t.join()\nprint('after')\n",
    ],
    ids=["keyerror", "chained", "syntax", "exit-message", "exit-code", "thread-exception"],
)
def test_output_tracebacks_and_exit_codes_match_plain_python(src):
    plain = run_race(src, plain=True)
    traced = race(src)
    assert traced.races == []
    assert traced.stdout == plain.stdout
    assert traced.stderr == plain.stderr
    assert traced.returncode == plain.returncode


def test_semantics_and_types_are_unchanged():
    src = """\
    import json, collections
    d = {"a": 1, "b": [1, 2]}
    assert type(d) is dict and type({}) is dict and type(dict(a=1)) is dict
    d["a"] += 1
    d["b"][0] += 10
    del d["b"][1]
    assert d == {"a": 2, "b": [11]} and d["a"] == 2 and "a" in d and "z" not in d
    assert d.get("z", 5) == 5 and d.setdefault("c", 3) == 3 and d.pop("c") == 3
    assert sorted(d) == ["a", "b"] and len(d) == 2 and list(d.items())[0] == ("a", 2)
    assert json.dumps({"x": 1}) == '{"x": 1}' and str(d) == repr(d)
    class K:
        data = {}
        data["x"] = 1
        def m(self, **kw):
            kw["n"] = kw.get("n", 0) + 1
            return kw
    assert K().m(n=1) == {"n": 2} and K.data == {"x": 1}
    s = "abc"; l = [1, 2, 3]
    assert s[1:] == "bc" and l[-1] == 3 and (l[0], s[0]) == (1, "a")
    i = 0
    e = {0: "zero"}
    assert e[(i := 0)] == "zero" and i == 0
    def gen(m):
        for k in m:
            yield k
    assert list(gen({1: 1, 2: 2})) == [1, 2]
    print("ok")
    """
    run = race(src)
    assert run.stdout == "ok\n", run.stderr
    assert run.returncode == 0


def test_argv_stdin_and_name_are_those_of_a_script():
    src = """\
    import sys
    print(__name__, sys.argv[1:], sys.stdin.read().strip())
    """
    run = run_race(src, args=("a", "--b"))
    plain = run_race(src, args=("a", "--b"), plain=True)
    assert run.stdout == plain.stdout == "__main__ ['a', '--b'] \n"


def test_stdin_is_passed_through(tmp_path):
    (tmp_path / "echo.py").write_text("import sys\nprint(sys.stdin.read().upper())\n")
    proc = _mapsafe("echo.py", cwd=str(tmp_path), stdin="hello")
    assert proc.stdout == "HELLO\n" and proc.returncode == 0


# -- exit status -------------------------------------------------------------


def test_races_make_a_clean_exit_66():
    run = race(RACY)
    assert run.stdout == "done\n"
    assert run.returncode == 66
    assert run.stderr.count("WARNING: DATA RACE") == 1
    assert run.stderr.rstrip().endswith("Found 1 data race(s)")


def test_exitcode_option():
    assert race(RACY, "--exitcode", "3").returncode == 3


def test_the_programs_own_failure_status_wins():
    run = race(RACY + "import sys\nsys.exit(5)\n")
    assert run.returncode == 5
    assert len(run.races) == 1


def test_exitcode_from_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.mapsafe.race]\nexitcode = 9\n")
    (tmp_path / "prog.py").write_text(RACY)
    assert _mapsafe("prog.py", cwd=str(tmp_path)).returncode == 9


# -- the report ----------------------------------------------------------------


def test_report_shape_names_both_accesses_threads_and_creation_site():
    run = race(RACY)
    text = run.stderr
    assert "==================\nWARNING: DATA RACE\n" in text
    assert "of key 'k'" in text and "(created at prog.py:2)" in text
    assert "prog.py:4 in w" in text and "prog.py:7 in <module>" in text
    assert "by thread writer" in text and "by thread MainThread" in text
    # Its state is as of the moment the race was found: on free-threaded builds
    # the writer may still be running then.
    assert re.search(r"Thread writer \((finished|running)\) created at:\n  prog\.py:6 in <module>", text), text


def test_json_report_fields():
    (r,) = race(RACY).races
    assert r["key"] == "'k'" and r["scope"] == "key" and r["kind"] == "read-write"
    assert "raced a write" in r["consequence"] and r["fix"]
    assert r["dict"]["created_at"][0] == {"file": "prog.py", "line": 2, "function": "<module>"}
    sides = {r["current"]["thread"]: r["current"], r["previous"]["thread"]: r["previous"]}
    assert set(sides) == {"writer", "MainThread"}
    assert sides["writer"]["operation"] == "d[k] = v" and sides["writer"]["write"] is True
    assert sides["MainThread"]["operation"] == "d.get" and sides["MainThread"]["write"] is False
    assert sides["writer"]["frames"][0] == {"file": "prog.py", "line": 4, "function": "w"}
    assert sides["writer"]["thread_created_at"][0]["line"] == 6


def test_strip_path_prefix(tmp_path):
    (tmp_path / "prog.py").write_text(RACY)
    prefix = os.path.join(str(tmp_path), "")
    proc = _mapsafe("--strip-path-prefix", prefix, str(tmp_path / "prog.py"), cwd="/")
    assert "  prog.py:4 in w" in proc.stderr
    assert prefix not in proc.stderr


# -- halting and suppressing ----------------------------------------------------


def test_rough_edge_6_halt_on_error_reports_and_exits_with_the_race_status(tmp_path):
    # `wrote` is a plain list, which the detector does not treat as
    # synchronization: it only makes the real order repeatable. The racing
    # read sits in a `try: ... except Exception`, as the project's own
    # example once did: halting must not be an exception the program can catch.
    src = """\
    import atexit, threading, time
    d = {}
    wrote = []
    atexit.register(print, "atexit ran")
    def w():
        d["k"] = 1; wrote.append(1)
    t = threading.Thread(target=w)
    t.start()
    while not wrote: time.sleep(0.001)
    try:
        x = d.get("k")
    except Exception:
        print("caught")
    print("not reached")
    """
    report = tmp_path / "races.json"
    run = race(src, "--halt-on-error", "--json", str(report))
    assert run.stdout == ""  # neither the handler, nor the rest, nor the atexit handler ran
    assert run.stderr.count("WARNING: DATA RACE") == 1
    assert "DataRaceError" not in run.stderr and "Traceback" not in run.stderr
    assert "Found 1 data race(s)" in run.stderr  # the summary, before the exit
    assert 'prog.py", line 11' in run.stderr or "prog.py:11" in run.stderr, run.stderr
    assert run.returncode == 66
    assert len(json.loads(report.read_text())["races"]) == 1  # the report is written before the exit


def test_suppressions_file(tmp_path):
    (tmp_path / "prog.py").write_text(RACY)
    (tmp_path / "supp.txt").write_text("# known\nfunc:w\n")
    proc = _mapsafe("--suppress", "supp.txt", "prog.py", cwd=str(tmp_path))
    assert "DATA RACE" not in proc.stderr and proc.returncode == 0
    (tmp_path / "supp.txt").write_text("line:prog.py:7\n")
    proc = _mapsafe("--suppress", "supp.txt", "prog.py", cwd=str(tmp_path))
    assert "DATA RACE" not in proc.stderr and proc.returncode == 0
    (tmp_path / "supp.txt").write_text("file:other.py\n")
    proc = _mapsafe("--suppress", "supp.txt", "prog.py", cwd=str(tmp_path))
    assert proc.returncode == 66


def test_bad_suppressions_file_is_one_line_exit_2(tmp_path):
    (tmp_path / "prog.py").write_text(RACY)
    (tmp_path / "supp.txt").write_text("bogus rule\n")
    proc = _mapsafe("--suppress", "supp.txt", "prog.py", cwd=str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "supp.txt:1" in proc.stderr
    assert "(one rule per line: file:GLOB" in proc.stderr


def test_inline_ignore_comment():
    run = race(RACY.replace('x = d.get("k")', 'x = d.get("k")  # mapsafe: ignore-race'))
    assert run.races == [] and run.returncode == 0


# -- scope -------------------------------------------------------------------------


HELPER_MOD = """\
def bump(d):
    d["k"] = d.get("k", 0) + 1
"""
USES_HELPER = """\
import threading
import helper
d = {}
ts = [threading.Thread(target=helper.bump, args=(d,)) for _ in range(2)]
for t in ts: t.start()
for t in ts: t.join()
"""


def test_modules_under_the_scripts_directory_are_instrumented():
    run = race(USES_HELPER, files={"helper.py": HELPER_MOD})
    assert len(run.races) == 1
    assert run.races[0]["current"]["frames"][0]["file"] == "helper.py"


def test_modules_elsewhere_need_include(tmp_path):
    lib = tmp_path / "lib"
    app = tmp_path / "app"
    lib.mkdir(), app.mkdir()
    (lib / "helper.py").write_text(HELPER_MOD)
    (app / "prog.py").write_text("import sys\nsys.path.insert(0, %r)\n" % str(lib) + USES_HELPER)
    assert _mapsafe("prog.py", cwd=str(app)).returncode == 0
    assert _mapsafe("--include", "helper", "prog.py", cwd=str(app)).returncode == 66
    assert _mapsafe("--include", str(lib / "*.py"), "prog.py", cwd=str(app)).returncode == 66


def test_run_module_with_dash_m(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("import sys\nprint(__name__, sys.argv[1:])\n" + RACY)
    proc = _mapsafe("-m", "pkg", "--flag", "x", cwd=str(tmp_path))
    assert proc.stdout == "__main__ ['--flag', 'x']\ndone\n"
    assert "pkg/__main__.py:6 in w" in proc.stderr  # two lines were prepended
    assert proc.returncode == 66


def test_daemon_threads_still_running_at_exit_are_reported_so_far():
    # The main thread polls until it sees the write: whichever access comes
    # second reports the race, before the program can end.
    src = """\
    import threading, time
    d = {}
    def spin():
        while True:
            d["k"] = 1
            time.sleep(0.001)
    threading.Thread(target=spin, daemon=True).start()
    while d.get("k") is None:
        time.sleep(0.001)
    print("bye")
    """
    run = race(src)
    assert run.stdout == "bye\n"
    assert run.lines() == {5, 8}
    assert run.returncode == 66


def test_user_mapping_code_runs_as_often_as_under_plain_python():
    # The detector never calls a user mapping's keys() itself: the update's
    # keys are found from a snapshot instead, so the program sees one call.
    src = """\
    import threading
    class Counting:
        calls = 0
        def keys(self):
            Counting.calls += 1
            return ["a"]
        def __getitem__(self, k):
            return 1
    d = {}
    def other():
        d.update(Counting())
    t = threading.Thread(target=other); t.start(); t.join()
    x = d["a"]
    d.update(Counting())
    print(d, Counting.calls)
    """
    plain, run = run_race(src, plain=True), race(src)
    assert run.stdout == plain.stdout == "{'a': 1} 2\n"
    assert run.races == [] and run.returncode == 0


def test_a_key_whose_hash_or_eq_raises_is_reported_as_plain_python_raises_it():
    src = """\
    import threading
    class BadHash:
        def __hash__(self):
            raise ValueError("no hash today")
    class BadEq:
        def __hash__(self):
            return 1
        def __eq__(self, other):
            raise TypeError("no eq today")
    d = {1: "one"}
    def other():
        d[2] = "two"
        x = d[1]  # key 1 (hash 1) is in the detector's own tables: BadEq collides there too
    t = threading.Thread(target=other); t.start(); t.join()
    def store(key): d[key] = 0
    def load(key): return d[key]
    def test(key): return key in d
    def get(key): return d.get(key)
    def pop(key): return d.pop(key)
    def delete(key): del d[key]
    def setdefault(key): return d.setdefault(key)
    def bump(key): d[key] += 1
    for key in (BadHash(), BadEq()):
        for op in (store, load, test, get, pop, delete, setdefault, bump):
            try:
                op(key)
            except Exception as exc:
                print(op.__name__, type(exc).__name__, exc)
    print(sorted(map(str, d.values())))
    """
    plain, run = run_race(src, plain=True), race(src)
    assert run.stdout == plain.stdout
    assert run.stdout.count("no hash today") == 8 and run.stdout.count("no eq today") == 8
    assert run.stderr == plain.stderr == ""
    assert run.returncode == plain.returncode == 0


# -- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.py"], "can't open file 'missing.py'"),
        (["-m", "no_such_module_xyz"], "no module named 'no_such_module_xyz'"),
        (["--bogus", "prog.py"], "unrecognized arguments: --bogus"),
        ([], "expected SCRIPT"),
        (["--exitcode", "x", "prog.py"], "invalid int value"),
    ],
)
def test_bad_command_lines_are_one_line_exit_2(tmp_path, args, message):
    (tmp_path / "prog.py").write_text("print(1)\n")
    proc = _mapsafe(*args, cwd=str(tmp_path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_halt_on_error_in_a_worker_thread_ends_the_process():
    src = """\
    import threading, time
    d = {}
    read = []  # a plain list: not synchronization for the detector
    def w():
        while not read: time.sleep(0.001)
        try:
            d["k"] = 1
        except RuntimeError:
            print("caught")
        print("not reached")
    t = threading.Thread(target=w)
    t.start()
    x = d.get("k"); read.append(1)
    t.join()
    print("main done")
    """
    run = race(src, "--halt-on-error", "--exitcode", "70")
    assert run.stdout == ""
    assert run.stderr.count("WARNING: DATA RACE") == 1 and "Traceback" not in run.stderr
    assert run.returncode == 70


@pytest.mark.parametrize(
    "module",
    ["x = (\n", "def f():\n    return {}['x']\nf()\n"],
    ids=["syntax-error", "keyerror-at-import"],
)
def test_errors_in_imported_instrumented_modules_match_plain_python(module):
    files = {"mod.py": module}
    plain = run_race("import mod\n", plain=True, files=files)
    traced = race("import mod\n", files=files)
    assert traced.stderr == plain.stderr
    assert traced.returncode == plain.returncode == 1


EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


@pytest.mark.parametrize(
    "name, racy_line",
    [
        ("lost_update.py", 10),
        ("iterate_while_insert.py", 15),
        ("check_then_act_cache.py", 21),
        ("locked_counter.py", None),
    ],
)
def test_examples(name, racy_line):
    proc = _mapsafe(name, cwd=EXAMPLES)
    if racy_line is None:
        assert proc.returncode == 0 and "DATA RACE" not in proc.stderr
    else:
        assert proc.returncode == 66
        assert f"{name}:{racy_line} in " in proc.stderr
        # thread creation sites reach past executor internals to the user's line
        assert ") created at:\n  " + name in proc.stderr


def test_calls_keep_their_keyword_arguments_whatever_their_names():
    # The helpers that rewritten calls go through take their own parameters
    # positionally only: a keyword named func, f, obj or a is the callee's.
    src = """\
    def show(**kw):
        return sorted(kw.items())
    state = dict(func="pkg.mod:f", f=1, obj=2, a=3, name=4, args=5, kwargs=6)
    print(state, len(state))
    print(show(func=1, f=2, a=3, obj=4), sorted(state, key=len, reverse=True))
    print(*sorted(state), sep="|", end="!\\n")
    """
    plain, run = run_race(src, plain=True), race(src)
    assert run.stdout == plain.stdout and run.returncode == plain.returncode == 0
    assert run.stderr == plain.stderr == ""


# -- fork ----------------------------------------------------------------------------


def _race_in(tmp_path, src, timeout):
    """Run ``src`` as tmp_path/prog.py under `mapsafe race --json races.json`."""
    (tmp_path / "prog.py").write_text(textwrap.dedent(src))
    env = clean_env()
    return subprocess.run(
        [sys.executable, "-m", "mapsafe", "race", "--json", "races.json", "prog.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=env,
    )


def test_forked_children_of_a_threaded_program_never_hang_and_keep_to_their_own_report(tmp_path):
    # Threads hammer a dict while the main thread forks: a child inherits
    # whatever detector lock a thread held at that moment. Each child gets a
    # detector of its own, so all exit; every child, ended normally or by
    # os._exit, writes its own FILE.PID, and the parent's FILE is the parent's.
    src = """\
    import os, sys, threading
    shared = {}
    stop = False
    def churn():
        i = 0
        while not stop:
            shared[i % 50] = i
            i += 1
    ts = [threading.Thread(target=churn) for _ in range(2)]
    for t in ts: t.start()
    kids = []
    for n in range(20):
        pid = os.fork()
        if pid == 0:
            local = {}
            for i in range(1000):
                local[i] = shared.get(i % 50)
            if n == 0:
                sys.exit(0)  # through the runner: the child's own report
            os._exit(0 if len(local) == 1000 else 3)
        kids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in kids]
    stop = True
    for t in ts: t.join()
    print("children ok:", codes.count(0), "of", len(codes), *kids)
    """
    proc = _race_in(tmp_path, src, timeout=120)
    words = proc.stdout.split()
    assert words[:5] == ["children", "ok:", "20", "of", "20"], proc.stdout + proc.stderr
    assert proc.returncode == 66  # the parent's own write/write race
    parent = json.loads((tmp_path / "races.json").read_text())
    assert parent["count"] >= 1 and {r["kind"] for r in parent["races"]} == {"write-write"}
    kids = words[5:]
    for pid in kids:
        child = json.loads((tmp_path / f"races.json.{pid}").read_text())
        assert child["count"] == 0  # the child read a dict no thread of its own wrote
    assert sorted(p.name for p in tmp_path.glob("races.json*")) == sorted(
        ["races.json"] + [f"races.json.{pid}" for pid in kids]
    )


def test_a_hundred_forked_children_give_a_hundred_reports_and_keep_their_exit_status(tmp_path):
    # Each child races on a dict of its own, then ends by os._exit (as
    # multiprocessing's fork workers do, skipping every exit hook) with a
    # status of its own. Every race is reported under the child's pid, each
    # child writes FILE.PID, and no child's status is changed.
    src = """\
    import os, threading
    kids = []
    for n in range(100):
        pid = os.fork()
        if pid == 0:
            d = {}
            def bump():
                d["hits"] = d.get("hits", 0) + 1
            ts = [threading.Thread(target=bump) for _ in range(2)]
            for t in ts: t.start()
            for t in ts: t.join()
            os._exit(n % 7)
        kids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in kids]
    print(codes == [n % 7 for n in range(100)], *kids)
    """
    proc = _race_in(tmp_path, src, timeout=300)
    words = proc.stdout.split()
    assert words[0] == "True", proc.stdout + proc.stderr
    kids = words[1:]
    assert len(kids) == 100 and proc.returncode == 0  # the parent itself raced on nothing
    for pid in kids:
        child = json.loads((tmp_path / f"races.json.{pid}").read_text())
        # Which of the two is reported depends on how the two threads interleaved.
        assert child["count"] == 1 and child["races"][0]["kind"] in ("lost-update", "read-write", "write-write"), pid
        assert f"WARNING: DATA RACE (in child process {pid})" in proc.stderr
    assert proc.stderr.count("WARNING: DATA RACE") == 100
    assert json.loads((tmp_path / "races.json").read_text())["count"] == 0
    assert sorted(p.name for p in tmp_path.glob("races.json*")) == sorted(
        ["races.json"] + [f"races.json.{pid}" for pid in kids]
    )


def test_a_fork_pools_workers_report_their_races(tmp_path):
    # multiprocessing's fork start method: each worker runs a task that races
    # within the worker, then the pool ends it by os._exit.
    src = """\
    import multiprocessing as mp, threading
    def task(i):
        d = {}
        def bump():
            for _ in range(50):
                d["n"] = d.get("n", 0) + 1
        ts = [threading.Thread(target=bump) for _ in range(2)]
        for t in ts: t.start()
        for t in ts: t.join()
        return i
    if __name__ == "__main__":
        pool = mp.get_context("fork").Pool(2, maxtasksperchild=1)
        print(sum(pool.map(task, range(6), chunksize=1)))
        pool.close()  # not terminate(): that kills workers, their reports with them
        pool.join()
    """
    proc = _race_in(tmp_path, src, timeout=300)
    assert proc.stdout == "15\n" and proc.returncode == 0, proc.stderr
    reports = [json.loads(p.read_text()) for p in tmp_path.iterdir() if re.fullmatch(r"races\.json\.\d+", p.name)]
    # Six tasks, one per worker; the pool may start a spare worker that runs none.
    assert sum(r["count"] for r in reports) == 6 and proc.stderr.count("(in child process") == 6


def test_a_program_that_exits_from_a_signal_handler_gets_its_report():
    src = """\
    import signal, sys, threading
    d = {}
    def bump():
        for _ in range(100):
            d["k"] = d.get("k", 0) + 1
    t = threading.Thread(target=bump)
    t.start()
    bump()
    t.join()
    signal.signal(signal.SIGALRM, lambda signum, frame: sys.exit(3))
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    threading.Event().wait(60)  # the handler's SystemExit ends this wait
    print("not reached")
    """
    plain, run = run_race(src, plain=True), race(src)
    assert plain.returncode == run.returncode == 3 and run.stdout == plain.stdout == ""
    assert "WARNING: DATA RACE" in run.stderr and "Found 1 data race(s)" in run.stderr


def test_an_exception_while_python_waits_for_threads_at_exit_is_ignored_as_python_ignores_it():
    # The signal lands while the runner (like python's own shutdown) waits
    # for a non-daemon thread: python prints it as ignored and keeps the
    # program's exit status; so does the runner, and the report still comes.
    src = """\
    import signal, sys, threading
    d = {}
    done = threading.Event()
    def bump():
        for _ in range(100):
            d["k"] = d.get("k", 0) + 1
        done.wait(60)
    t = threading.Thread(target=bump)
    t.start()
    for _ in range(100):
        d["k"] = d.get("k", 0) + 1
    def handler(signum, frame):
        done.set()
        sys.exit(3)
    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    print("main done")
    """
    plain, run = run_race(src, plain=True), race(src)
    assert plain.stdout == run.stdout == "main done\n"
    assert plain.returncode == 0 and run.returncode == 66  # 66: races found, program status 0
    assert "SystemExit: 3" in plain.stderr and "SystemExit: 3" in run.stderr
    assert ("Exception ignored in: <module 'threading'" in plain.stderr) == (
        "Exception ignored in: <module 'threading'" in run.stderr
    )
    assert "Found 1 data race(s)" in run.stderr


def test_the_programs_own_recursion_error_is_the_programs():
    src = """\
    import sys
    d = {"k": 0}
    def deep(n):
        d["k"] = d.get("k", 0) + 1
        return deep(n + 1)
    try:
        deep(0)
    except RecursionError:
        print("caught", d["k"] > 100)
    """
    plain, run = run_race(src, plain=True), race(src)
    assert run.stdout == plain.stdout == "caught True\n"
    assert run.stderr == plain.stderr == "" and run.returncode == 0


def test_a_keys_eq_that_takes_a_lock_never_deadlocks_with_the_detectors_own_locks():
    # The program's __hash__ and __eq__ run with no detector lock held: here
    # __eq__ takes L, and the other thread holds L while it touches the dict.
    src = """\
    import threading
    L = threading.Lock()
    class K:
        def __init__(self, n):
            self.n = n
        def __hash__(self):
            return 1  # every K collides: each lookup compares
        def __eq__(self, other):
            with L:
                return isinstance(other, K) and other.n == self.n
    d = {}
    def a():
        for i in range(3000):
            d[K(i % 7)] = i
    def b():
        for i in range(3000):
            with L:
                d["x"] = i
    ts = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in ts: t.start()
    for t in ts: t.join()
    print(len(d))
    """
    run = race(src)  # a deadlock would end in the harness's hang limit
    assert run.stdout == "8\n", run.stderr


# -- bounded state -------------------------------------------------------------------


STREAM = """\
import threading
window, lock = {}, threading.Lock()
def stream(start):
    for key in range(start, 100_000, 2):
        with lock:
            window[key] = key
            if len(window) > 16:
                del window[next(iter(window))]
ts = [threading.Thread(target=stream, args=(s,)) for s in range(2)]
for t in ts: t.start()
for t in ts: t.join()
# This process's own peak RSS (a wait4() from the test would also count the
# forked copy of pytest that exec'd it).
with open("/proc/self/status") as fh:
    peak = next(line.split()[1] for line in fh if line.startswith("VmHWM:"))
print(len(window), peak)
"""


def test_distinct_keys_streaming_through_a_small_dict_keep_memory_bounded(tmp_path):
    # 100,000 distinct keys through a 16-entry dict: history is capped per
    # map (--history 1000 here), the summary and the JSON say how much was
    # forgotten, and peak RSS stays within 3x of plain python's, measured here.
    (tmp_path / "prog.py").write_text(STREAM)
    env = clean_env()
    runs = {}
    for name, cmd in (("plain", [sys.executable, "prog.py"]),
                      ("race", [sys.executable, "-m", "mapsafe", "race", "--history", "1000", "--json", "r.json",
                                "prog.py"])):
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
        words = proc.stdout.split()
        assert proc.returncode == 0 and words[0] == "16", proc.stderr
        runs[name] = (int(words[1]), proc.stderr)
    (plain_rss, _), (race_rss, err) = runs["plain"], runs["race"]
    forgotten = json.loads((tmp_path / "r.json").read_text())["forgotten"]
    # Each key had one remembered access (its last write) when forgotten; at
    # most 1,000 key states are kept, and eviction leaves at least 7/8 of that.
    assert 100_000 - 1000 <= forgotten <= 100_000 - 1000 * 7 // 8, forgotten
    assert err == (f"mapsafe race: {forgotten} earlier accesses were forgotten: a map outgrew 1000 key states "
                   "(--history); races with them can have been missed\n")
    assert race_rss < 3 * plain_rss, (race_rss, plain_rss)


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_a_history_below_one_is_a_usage_error(value):
    run = run_race("print('ran')\n", "--history", value)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "--history: bad value for race.history" in run.stderr
    assert "Traceback" not in run.stderr


# -- the newcomer's rough edges (issue 15) ----------------------------------------


def test_rough_edge_4_an_unwritable_json_path_is_refused_before_the_program_runs(tmp_path):
    (tmp_path / "prog.py").write_text('print("ran")\n')
    for path, reason in [(tmp_path / "missing" / "r.json", "no such directory"), (tmp_path, "it is a directory")]:
        proc = _mapsafe("--json", str(path), "prog.py", cwd=str(tmp_path))
        assert proc.returncode == 2 and proc.stdout == "", proc  # the program never ran
        assert proc.stderr.count("\n") == 1 and "--json" in proc.stderr and reason in proc.stderr, proc.stderr


def test_rough_edge_5_a_directory_stdin_and_c_run_as_python_runs_them(tmp_path):
    show = 'import sys; print(sys.argv, __name__, sys.path[0] == {!r})\n'
    app = tmp_path / "app"
    app.mkdir()
    (app / "__main__.py").write_text(show.format(str(app)) + RACY)
    cases = [(("app", "x"), None, "app"), (("-", "x"), show.format("") + RACY, "-"),
             (("-c", show.format("") + RACY, "x"), None, "-c")]
    for args, stdin, argv0 in cases:
        proc = _mapsafe(*args, cwd=str(tmp_path), stdin=stdin)
        plain = subprocess.run([sys.executable, *args], cwd=str(tmp_path), capture_output=True, text=True,
                               timeout=60, input=stdin)
        assert plain.stdout.splitlines()[0] == f"[{argv0!r}, 'x'] __main__ True", plain
        assert proc.stdout == plain.stdout, (args, proc.stderr)  # the program ran as under python
        assert proc.stderr.count("WARNING: DATA RACE") == 1 and proc.returncode == 66, (args, proc.stderr)
    (tmp_path / "empty").mkdir()
    proc = _mapsafe("empty", cwd=str(tmp_path))
    assert proc.returncode == 2 and "can't find '__main__' module in 'empty'" in proc.stderr
    proc = _mapsafe("-c", "pass", "-m", "x", cwd=str(tmp_path))
    assert proc.returncode == 2 and "-c and -m" in proc.stderr


def test_rough_edge_14_suppressed_races_are_counted_on_stderr(tmp_path):
    (tmp_path / "prog.py").write_text(RACY)
    (tmp_path / "ok.supp").write_text("func:w\n")
    proc = _mapsafe("--suppress", "ok.supp", "prog.py", cwd=str(tmp_path))
    assert proc.returncode == 0 and "DATA RACE" not in proc.stderr
    assert proc.stderr == "mapsafe race: 1 race(s) suppressed by ok.supp\n", proc.stderr
    (tmp_path / "ok.supp").write_text("func:nothing_here\n")
    proc = _mapsafe("--suppress", "ok.supp", "prog.py", cwd=str(tmp_path))
    assert proc.returncode == 66 and "suppressed" not in proc.stderr


def test_rough_edge_15_mappings_the_detector_cannot_see_inside_are_named_at_exit(tmp_path):
    (tmp_path / "prog.py").write_text(textwrap.dedent("""\
        import collections.abc, os, threading, weakref
        import mapsafe
        class K: pass
        key = K()
        w = weakref.WeakKeyDictionary()
        class Store(collections.abc.MutableMapping):  # instrumented code over a dict: tracked through it
            def __init__(self): self._d = {}
            def __getitem__(self, k): return self._d[k]
            def __setitem__(self, k, v): self._d[k] = v
            def __delitem__(self, k): del self._d[k]
            def __iter__(self): return iter(self._d)
            def __len__(self): return len(self._d)
        s, sm = Store(), mapsafe.SyncMap()
        def f():
            w[key] = 1; s["a"] = 1; sm["a"] = 1; os.environ.get("HOME")
        t = threading.Thread(target=f); t.start(); t.join()
        print(w[key], s["a"], sm["a"])
    """))
    proc = _mapsafe("prog.py", cwd=str(tmp_path))
    assert proc.returncode == 0 and proc.stdout == "1 1 1\n", proc
    assert proc.stderr == ("mapsafe race: not tracked: weakref.WeakKeyDictionary objects, a mutable mapping or set "
                           "the detector cannot see inside: races on them are not reported\n"), proc.stderr
    (tmp_path / "prog.py").write_text("d = {}\nd['a'] = 1\nprint(d)\n")
    proc = _mapsafe("prog.py", cwd=str(tmp_path))
    assert proc.stderr == "" and proc.returncode == 0  # nothing untracked: nothing said
