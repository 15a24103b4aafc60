"""The pytest plugin, end to end: `pytest --mapsafe-race` fails the test that raced."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

TESTS = '''\
import threading
import helper

def test_racy():
    d = {}
    def w():
        d["k"] = 1
    t = threading.Thread(target=w)
    t.start()
    x = d.get("k")
    t.join()

def test_locked():
    d = {}
    lock = threading.Lock()
    def w():
        with lock:
            d["k"] = 1
    t = threading.Thread(target=w)
    t.start()
    with lock:
        x = d.get("k")
    t.join()

def test_racy_in_helper_module():
    d = {}
    ts = [threading.Thread(target=helper.bump, args=(d,)) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()

def test_assertions_still_rewritten():
    x = {"a": 1}
    assert x["a"] == 2
'''

HELPER = '''\
def bump(d):
    d["k"] = d.get("k", 0) + 1
'''


def _run(tmp_path, files, *args, rflags="-rf"):
    """pytest on a generated project: ``files`` maps file name to source; tests are in test_prog.py."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    # Without CI and BUILD_NUMBER: under them pytest prints each failure's
    # whole message in the short summary too, and the counts below would double.
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("MAPSAFE_", "PYTEST_")) and k not in ("CI", "BUILD_NUMBER")
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", rflags, *args, "test_prog.py"],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=120, env=env,
    )


def _pytest(tmp_path, *args):
    return _run(tmp_path, {"test_prog.py": TESTS, "helper.py": HELPER}, *args)


def _require(module, requirement):
    # Not a skip: these plugins are in the test extra, so a missing one is a broken setup.
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{requirement} is not installed; install the test extra: pip install -e '.[test]'")


def _summary(out):
    """The short test summary's lines, e.g. 'FAILED test_prog.py::test_x - ...'."""
    return out.split("short test summary info")[1].splitlines()[1:-1]


def _block(out, title):
    """The body of the failure or error section headed ``___ title ___``."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("_") and line.strip("_ ") == title)
    body = []
    for line in lines[start + 1:]:
        # The next section's header; a race report's own separator is all "=".
        if line.startswith("___") or (line.startswith("=") and line.strip("=")):
            break
        body.append(line)
    return "\n".join(body) + "\n"


def _failed(out, word="FAILED"):
    """The node ids that the short test summary lists under ``word``."""
    return {line[len(word) + 1:].split()[0] for line in _summary(out) if line.startswith(word + " ")}


def test_plugin_fails_exactly_the_racy_tests(tmp_path):
    proc = _pytest(tmp_path, "--mapsafe-race")
    out = proc.stdout
    assert "FAILED test_prog.py::test_racy " in out
    assert "FAILED test_prog.py::test_racy_in_helper_module " in out
    assert "test_locked" not in out.split("short test summary")[1]
    assert "mapsafe race: 1 data race(s) while running test_prog.py::test_racy\n" in out
    assert "test_prog.py:7 in w" in out and "helper.py:2 in bump" in out
    # pytest's own assertion rewriting still explains failures in instrumented tests
    assert "assert 1 == 2" in out
    assert proc.returncode == 1


def test_plugin_is_inert_without_the_option(tmp_path):
    proc = _pytest(tmp_path)
    assert "1 failed, 3 passed" in proc.stdout
    assert "DATA RACE" not in proc.stdout


# -- fixtures ------------------------------------------------------------

FIXTURES = '''\
import threading
import pytest

def _race(d):
    def w():
        d["k"] = 1
    t = threading.Thread(target=w)
    t.start()
    x = d.get("k")
    t.join()

@pytest.fixture
def racy_setup():
    d = {}
    _race(d)
    return d

@pytest.fixture
def racy_teardown():
    d = {}
    yield d
    def w():
        d["k"] = 1
    t = threading.Thread(target=w)
    t.start()
    x = d.get("k")
    t.join()

@pytest.fixture
def locked():
    d = {}
    lock = threading.Lock()
    def w():
        with lock:
            d["k"] = 1
    t = threading.Thread(target=w)
    t.start()
    with lock:
        x = d.get("k")
    yield d
    t.join()
    d["k"] = 2  # after join(): ordered

def test_uses_racy_setup(racy_setup):
    pass

def test_uses_racy_teardown(racy_teardown):
    pass

def test_uses_locked(locked):
    pass

def test_uses_nothing():
    pass
'''


def test_race_in_fixture_setup_fails_the_test_that_used_it_and_the_test_still_runs(tmp_path):
    # Regression: a race during a fixture's setup used to go unreported (exit 0, no output).
    proc = _run(tmp_path, {"test_prog.py": FIXTURES}, "--mapsafe-race", rflags="-rfE")
    out = proc.stdout
    assert _failed(out) == {"test_prog.py::test_uses_racy_setup"}
    block = _block(out, "test_uses_racy_setup")
    assert block.startswith(
        "mapsafe race: 1 data race(s) while running test_prog.py::test_uses_racy_setup\nDuring setup (a fixture):\n"
    )
    assert "test_prog.py:9 in _race" in block and "test_prog.py:15 in racy_setup" in block
    assert "1 failed, 3 passed, 1 error" in out
    assert proc.returncode == 1


def test_race_in_fixture_teardown_fails_that_tests_teardown(tmp_path):
    proc = _run(tmp_path, {"test_prog.py": FIXTURES}, "--mapsafe-race", rflags="-rfE")
    out = proc.stdout
    assert _failed(out, "ERROR") == {"test_prog.py::test_uses_racy_teardown"}
    block = _block(out, "ERROR at teardown of test_uses_racy_teardown")
    assert block.startswith(
        "mapsafe race: 1 data race(s) while running test_prog.py::test_uses_racy_teardown\n"
        "During teardown (a fixture):\n"
    )
    assert "test_prog.py:26 in racy_teardown" in block and "test_prog.py:23 in w" in block
    assert proc.returncode == 1


def test_correctly_locked_fixtures_report_nothing(tmp_path):
    tests = FIXTURES.split("def test_uses_racy_setup")[0] + "def test_uses_locked(locked):\n    pass\n"
    proc = _run(tmp_path, {"test_prog.py": tests}, "--mapsafe-race", rflags="-rfE")
    assert "1 passed" in proc.stdout
    assert "DATA RACE" not in proc.stdout
    assert "0 test(s) failed by data races; 0 distinct data race(s) in this session" in proc.stdout
    assert proc.returncode == 0


# -- races that span tests -----------------------------------------------

SPANNING = '''\
import threading
import time

SHARED = {}
MORE = {}
GO = [False]  # a list, not a dict: not tracked, and no happens-before
LEFT = []

def _wait_finished(t):
    # Waits without join(), which would order the thread before us.
    deadline = time.monotonic() + 60
    while t.is_alive():
        assert time.monotonic() < deadline, "thread did not finish"
        time.sleep(0.001)

def test_thread_writes_and_is_never_joined():
    def w():
        SHARED["k"] = 1
    t = threading.Thread(target=w)
    t.start()
    _wait_finished(t)

def test_main_writes_what_that_thread_wrote():
    SHARED["k"] = 2

def test_main_writes_and_leaves_a_thread():
    def w():
        while not GO[0]:
            time.sleep(0.001)
        MORE["k"] = 2
    t = threading.Thread(target=w)
    t.start()
    MORE["k"] = 1
    LEFT.append(t)

def test_the_left_thread_writes():
    GO[0] = True
    _wait_finished(LEFT[0])
'''


def test_race_spanning_tests_fails_the_later_test_and_names_both(tmp_path):
    proc = _run(tmp_path, {"test_prog.py": SPANNING}, "--mapsafe-race")
    out = proc.stdout
    assert _failed(out) == {
        "test_prog.py::test_main_writes_what_that_thread_wrote",
        "test_prog.py::test_the_left_thread_writes",
    }
    # previous access by a thread of the earlier test
    assert (
        "This race spans tests: the previous access was in test_prog.py::test_thread_writes_and_is_never_joined "
        "(call), the current one in test_prog.py::test_main_writes_what_that_thread_wrote (call).\n"
    ) in out
    # previous access by the main thread in the earlier test, current by a thread it left running
    assert (
        "This race spans tests: the previous access was in test_prog.py::test_main_writes_and_leaves_a_thread "
        "(call), the current one in test_prog.py::test_the_left_thread_writes (call).\n"
    ) in out
    assert "2 failed, 2 passed" in out
    assert proc.returncode == 1


# -- per-test de-duplication -----------------------------------------------

DUPLICATES = '''\
import threading
import helper

def _bump_twice():
    d = {}
    ts = [threading.Thread(target=helper.bump, args=(d,)) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()

def test_first():
    _bump_twice()

def test_again():
    _bump_twice()

def test_again_and_fails_on_its_own():
    _bump_twice()
    assert 1 == 2

def test_locked():
    d = {}
    lock = threading.Lock()
    def w():
        with lock:
            helper.bump(d)
    ts = [threading.Thread(target=w) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
'''


def test_every_racing_test_fails_and_a_repeat_refers_to_the_first_report(tmp_path):
    proc = _run(tmp_path, {"test_prog.py": DUPLICATES, "helper.py": HELPER}, "--mapsafe-race")
    out = proc.stdout
    assert _failed(out) == {
        "test_prog.py::test_first", "test_prog.py::test_again", "test_prog.py::test_again_and_fails_on_its_own",
    }
    assert out.count("WARNING: DATA RACE") == 1  # one full report, in the first test
    assert "mapsafe race: 1 data race(s) while running test_prog.py::test_first\n=" in out
    reference = "same race as reported in test_prog.py::test_first (site helper.py:2 / helper.py:2)\n"
    assert f"mapsafe race: 1 data race(s) while running test_prog.py::test_again\n{reference}" in out
    # the test's own failure is kept, and the race is shown after it
    assert "FAILED test_prog.py::test_again_and_fails_on_its_own - assert 1 == 2" in out
    assert (
        f"mapsafe race: 1 data race(s) while running test_prog.py::test_again_and_fails_on_its_own\n{reference}"
    ) in out
    assert "3 test(s) failed by data races; 1 distinct data race(s) in this session" in out
    assert proc.returncode == 1


def test_race_outside_any_test_fails_the_run_from_the_summary(tmp_path):
    at_import = DUPLICATES.split("def test_first")[0] + "_bump_twice()\n\ndef test_nothing():\n    pass\n"
    proc = _run(tmp_path, {"test_prog.py": at_import, "helper.py": HELPER}, "--mapsafe-race")
    out = proc.stdout
    assert "1 passed" in out
    assert "mapsafe race: data race outside any test (during collection or between tests)\n" in out
    assert "test_prog.py:7 in _bump_twice\n  test_prog.py:10 in <module>\n" in out
    assert "0 test(s) failed by data races; 1 distinct data race(s) in this session (1 outside any test)" in out
    assert proc.returncode == 1


# -- pytest-run-parallel -------------------------------------------------

PARALLEL = '''\
import threading

COUNTS = {}
LOCK = threading.Lock()
SAFE = {}

def test_copies_race():
    COUNTS["n"] = COUNTS.get("n", 0) + 1

def test_copies_locked():
    with LOCK:
        SAFE["n"] = SAFE.get("n", 0) + 1

def test_local_only():
    d = {}
    d["k"] = 1
    assert d["k"] == 1
'''


def test_run_parallel_copies_that_race_fail_their_test(tmp_path):
    _require("pytest_run_parallel", "pytest-run-parallel")
    proc = _run(tmp_path, {"test_prog.py": PARALLEL}, "--mapsafe-race", "--parallel-threads=4", rflags="-rfE")
    out = proc.stdout
    assert "Collected 3 items to run in parallel" in out
    # pytest-run-parallel reports a failed parallel call as "PARALLEL FAILED"
    assert _failed(out, "PARALLEL FAILED") == {"test_prog.py::test_copies_race"}
    assert "mapsafe race: 1 data race(s) while running test_prog.py::test_copies_race\n" in out
    assert out.count("WARNING: DATA RACE") == 1
    # both accesses are the test's own copies, each in its own thread: the race is the test's
    assert "test_prog.py:8 in test_copies_race" in out and "(closure)" in out
    assert "spans tests" not in out
    assert "2 passed, 1 error" in out
    assert proc.returncode == 1


def test_run_parallel_locked_copies_report_nothing(tmp_path):
    _require("pytest_run_parallel", "pytest-run-parallel")
    tests = PARALLEL.replace("def test_copies_race():", "def _unused():")
    proc = _run(tmp_path, {"test_prog.py": tests}, "--mapsafe-race", "--parallel-threads=4")
    assert "Collected 2 items to run in parallel" in proc.stdout
    assert "2 passed" in proc.stdout and "DATA RACE" not in proc.stdout
    assert proc.returncode == 0


# -- pytest-xdist --------------------------------------------------------

XDIST = '''\
import threading

def _twice(f):
    d = {}
    ts = [threading.Thread(target=f, args=(d,)) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()

def bump_a(d):
    d["n"] = d.get("n", 0) + 1

def bump_b(d):
    d["n"] = d.get("n", 0) + 1

def test_racy_a():
    _twice(bump_a)

def test_racy_b():
    _twice(bump_b)

def test_clean_1():
    pass

def test_clean_2():
    d = {}
    lock = threading.Lock()
    def w(d):
        with lock:
            bump_a(d)
    _twice(w)
'''


def test_xdist_workers_each_detect_and_the_controller_shows_it(tmp_path):
    _require("xdist", "pytest-xdist")
    proc = _run(tmp_path, {"test_prog.py": XDIST}, "--mapsafe-race", "-n", "2")
    out = proc.stdout
    assert _failed(out) == {"test_prog.py::test_racy_a", "test_prog.py::test_racy_b"}
    # distinct sites, so each is reported in full by whichever worker ran it
    assert out.count("WARNING: DATA RACE") == 2
    assert "mapsafe race: 1 data race(s) while running test_prog.py::test_racy_a\n" in out
    assert "test_prog.py:10 in bump_a" in out and "test_prog.py:13 in bump_b" in out
    assert "[gw" in out  # the failures came from workers
    assert "2 test(s) failed by data races; 2 distinct data race(s) in this session" in out
    assert "2 failed, 2 passed" in out
    assert proc.returncode == 1


def test_xdist_race_free_run_exits_0(tmp_path):
    _require("xdist", "pytest-xdist")
    tests = XDIST.split("def test_racy_a")[0] + "def test_clean_2" + XDIST.split("def test_clean_2")[1]
    proc = _run(tmp_path, {"test_prog.py": tests}, "--mapsafe-race", "-n", "2")
    assert "1 passed" in proc.stdout and "DATA RACE" not in proc.stdout
    assert "0 test(s) failed by data races; 0 distinct data race(s) in this session" in proc.stdout
    assert proc.returncode == 0


RACYPKG = '''\
import threading
hits = {}
class MyWarning(Warning):
    pass
def count():
    def w():
        for _ in range(200):
            hits["total"] = hits.get("total", 0) + 1
    ts = [threading.Thread(target=w) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    return hits
'''


def test_a_package_the_conftest_imports_is_still_instrumented(tmp_path):
    # pytest imports the initial conftest.py files before pytest_configure:
    # the detector starts earlier, so the package they import is rewritten.
    (tmp_path / "racypkg").mkdir()
    (tmp_path / "racypkg" / "__init__.py").write_text(RACYPKG)
    files = {
        "conftest.py": "import racypkg\n",
        "test_prog.py": "import racypkg\ndef test_count():\n    assert racypkg.count()['total'] >= 1\n",
    }
    proc = _run(tmp_path, files, "--mapsafe-race")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "FAILED test_prog.py::test_count" in out and "racypkg/__init__.py:8" in out, out


def test_a_package_imported_before_the_detector_started_is_named_in_a_warning(tmp_path):
    # An ini filterwarnings entry naming the package's warning class imports it
    # before any plugin can start: it cannot be instrumented, and pytest says so.
    (tmp_path / "racypkg").mkdir()
    (tmp_path / "racypkg" / "__init__.py").write_text(RACYPKG)
    files = {
        "pytest.ini": "[pytest]\nfilterwarnings =\n    ignore::racypkg.MyWarning\n",
        "test_prog.py": "import racypkg\ndef test_count():\n    assert racypkg.count()['total'] >= 1\n",
    }
    proc = _run(tmp_path, files, "--mapsafe-race")
    out = proc.stdout + proc.stderr
    assert "imported before the detector started and are not instrumented: racypkg" in out, out
