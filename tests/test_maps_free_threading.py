"""Free-threaded CPython: importing mapsafe (either core) keeps the GIL disabled."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

import pytest

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
# .ci/run's free-threaded lane sets this, so the lane fails instead of skipping
# if it ever runs on an interpreter with the GIL.
EXPECTED = os.environ.get("MAPSAFE_EXPECT_FREE_THREADED") == "1"


@pytest.mark.parametrize("core", ["c", "python"])
def test_the_gil_stays_disabled_after_importing_mapsafe(core):
    if not FREE_THREADED:
        if EXPECTED:
            pytest.fail(f"MAPSAFE_EXPECT_FREE_THREADED=1, but {sys.executable} has the GIL")
        pytest.skip("the GIL can only stay disabled on a free-threaded build (CI's free-threaded lane)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}  # the interpreter's default
    env["MAPSAFE_CORE"] = core
    code = (
        "import sys\n"
        "assert not sys._is_gil_enabled(), 'the GIL was on before the import'\n"
        "import mapsafe, mapsafe._core\n"
        "m = mapsafe.LockedMap(a=1); m['b'] = 2; mapsafe.SyncMap(m); mapsafe.ShardedMap(m)\n"
        "print(mapsafe._core.NAME, sys._is_gil_enabled())\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    if core == "c" and "not built" in r.stderr:
        pytest.fail(f"the C core is not built for {sysconfig.get_config_var('EXT_SUFFIX')}: {r.stderr}")
    assert r.stdout.split() == [core, "False"], r.stdout + r.stderr
    assert "GIL" not in r.stderr, r.stderr  # no RuntimeWarning about enabling the GIL
