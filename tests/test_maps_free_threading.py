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


# -- _dictget: dict.get without free-threaded 3.13's nested dict lock ---------------------

from mapsafe import _dictget  # noqa: E402


class _Key:
    """A key whose __hash__ or __eq__ raises what it is told to (a user's bug)."""

    def __init__(self, name, hash_raises=None, eq_raises=None):
        self.name, self.hash_raises, self.eq_raises = name, hash_raises, eq_raises

    def __hash__(self):
        if self.hash_raises is not None:
            raise self.hash_raises
        return 7

    def __eq__(self, other):
        if self.eq_raises is not None:
            raise self.eq_raises
        if not isinstance(other, _Key) or other.eq_raises is not None:
            return NotImplemented  # the dict then asks the other key, which raises
        return other.name == self.name


def test_dict_get_is_subscript_get_exactly_on_free_threaded_3_13():
    slow = FREE_THREADED and sys.version_info < (3, 14)
    assert _dictget.SLOW_DICT_GET is slow
    assert (_dictget.dict_get is _dictget.subscript_get) is slow
    assert (_dictget.dict_get is dict.get) is not slow


@pytest.mark.parametrize("get", [_dictget.subscript_get, dict.get], ids=["subscript_get", "dict.get"])
def test_subscript_get_answers_and_raises_as_dict_get_does(get):
    stored = _Key("a")
    d = {1: "one", stored: "a", None: 0}
    assert get(d, 1) == "one"
    assert get(d, 2) is None
    assert get(d, 2, "dflt") == "dflt"
    assert get(d, None, "dflt") == 0
    assert get(d, _Key("a")) == "a"  # an equal key, not the stored object
    with pytest.raises(TypeError, match="unhashable"):
        get(d, [1])
    # The user's own KeyError from __hash__ or __eq__ is theirs: it propagates, not a miss.
    with pytest.raises(KeyError, match="from hash"):
        get(d, _Key("b", hash_raises=KeyError("from hash")))
    with pytest.raises(KeyError, match="from eq"):
        get(d, _Key("b", eq_raises=KeyError("from eq")))
    with pytest.raises(ValueError, match="from eq"):
        get(d, _Key("b", eq_raises=ValueError("from eq")))
    assert d == {1: "one", stored: "a", None: 0}


def test_bound_get_reads_the_dict_it_was_bound_to():
    d = {"k": 1}
    get = _dictget.bound_get(d)
    assert get("k") == 1 and get("x") is None and get("x", 5) == 5
    d["x"] = 2
    assert get("x") == 2


@pytest.mark.parametrize("cls", ["SyncMap", "LockedMap", "ShardedMap"])
def test_a_keys_own_keyerror_propagates_from_map_reads(cls):
    import mapsafe

    m = getattr(mapsafe, cls)()
    m[_Key("a")] = 1
    assert m.get(_Key("a")) == 1 and m.get(_Key("zz")) is None and m.get(_Key("zz"), 5) == 5
    with pytest.raises(KeyError, match="from eq"):
        m.get(_Key("b", eq_raises=KeyError("from eq")))
    assert [(k.name, v) for k, v in m.items()] == [("a", 1)]
