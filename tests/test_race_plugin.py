"""The pytest plugin, end to end: `pytest --mapsafe-race` fails the test that raced."""

from __future__ import annotations

import os
import subprocess
import sys

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


def _pytest(tmp_path, *args):
    (tmp_path / "test_prog.py").write_text(TESTS)
    (tmp_path / "helper.py").write_text(HELPER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAPSAFE_", "PYTEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf", *args, "test_prog.py"],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=120, env=env,
    )


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
