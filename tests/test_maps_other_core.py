"""The map test suite, run again under the core this process is not using.

The maps' hot paths have two interchangeable implementations (the C core,
_speedups.c, and the pure-Python core, _pycore.py). This session tests the
active one; this test runs every map test file (and the cache family's) in a child
pytest under the other, so one `python3 -m pytest` covers both.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mapsafe import _core

TESTS = Path(__file__).parent
MAP_SUITE = sorted(
    str(p) for p in TESTS.glob("test_maps_*.py") if p.name != Path(__file__).name
) + [str(TESTS / name) for name in ("test_cache.py", "test_weakvaluemap.py", "test_cowmap.py")]


def _other_core() -> str | None:
    if _core.NAME == "c":
        return "python"
    try:
        import mapsafe._speedups  # noqa: F401
    except ImportError:
        return None
    return "c"


@pytest.mark.skipif(_other_core() is None, reason="the C core is not built, so there is no other core")
def test_map_suite_passes_under_the_other_core():
    other = _other_core()
    env = dict(os.environ, MAPSAFE_CORE=other)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *MAP_SUITE],
        env=env,
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=900,
    )
    tail = "\n".join(out.stdout.splitlines()[-30:])
    assert out.returncode == 0, f"map suite failed under MAPSAFE_CORE={other}:\n{tail}\n{out.stderr[-2000:]}"
    passed = re.search(r"(\d+) passed", out.stdout)
    assert passed and int(passed.group(1)) >= 500, tail  # the whole suite ran, not a stray subset
