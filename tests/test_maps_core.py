"""The maps' hot paths on both cores (C _speedups, pure _pycore): errors, locks, GC, refs, MAPSAFE_CORE."""

from __future__ import annotations

import gc
import importlib.util
import os
import subprocess
import sys
import threading
import weakref

import pytest

import mapsafe
from mapsafe import _core, _pycore

C_BUILT = importlib.util.find_spec("mapsafe._speedups") is not None
CORES = {"python": _pycore}
if C_BUILT:
    from mapsafe import _speedups

    CORES["c"] = _speedups
needs_c = pytest.mark.skipif(not C_BUILT, reason="the C core (mapsafe._speedups) is not built")


class Boom(Exception):
    """What the keys below raise; the tests check it arrives unchanged."""


class BadHash:
    def __hash__(self):
        raise Boom("hash", 1)


class BadEq:
    """Hashes like 42, so storing it in a map holding 42 calls __eq__, which raises."""

    def __hash__(self):
        return 42

    def __eq__(self, other):
        raise Boom("eq", 2)


class Key:
    """A hashable key whose only references are the test's and the map's."""


BAD_KEYS = [  # (make key, exception type, its args or None) for a store or read of the key
    pytest.param(BadHash, Boom, ("hash", 1), id="hash-raises"),
    pytest.param(BadEq, Boom, ("eq", 2), id="eq-raises"),
    pytest.param(lambda: [1], TypeError, None, id="unhashable"),
]


def assert_raised(err, exc_type, args):
    assert type(err.value) is exc_type
    if args is not None:
        assert err.value.args == args


def assert_unlocked(m):
    """No lock was left held: another thread can store, and joins well within the timeout.

    It stores 42, whose shard is the one BadEq's hash picks.
    """
    t = threading.Thread(target=m.__setitem__, args=(42, "x"), daemon=True)
    t.start()
    t.join(timeout=10)
    assert not t.is_alive(), "the store blocked: a lock was left held"
    assert m[42] == "x"


def run_python(code, core=None):
    env = {k: v for k, v in os.environ.items() if k != "MAPSAFE_CORE"}
    if core is not None:
        env["MAPSAFE_CORE"] = core
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


# -- each core on its own: tiny subclasses with a plain dict and a non-reentrant Lock --------

CORE_TYPES = {"sync": "SyncCore", "locked": "LockedCore", "sharded": "ShardedCore"}


@pytest.fixture(params=sorted(CORES))
def core(request):
    return CORES[request.param]


def init_args(core, kind, d, lock, put=None):
    if kind == "sync":
        return (d, lock, {})
    if kind == "locked":
        rw = type("RW", (core.RWCore,), {"__slots__": ()})()
        rw._core_init(threading.RLock(), None)
        return (d, rw, lock, {}, False)
    return ((d,), ((lock, lock.acquire, lock.release, d, put),), {}, (threading.RLock(), lock), True)


def bare(core, kind, d, lock, put=None):
    cls = type("Bare", (getattr(core, CORE_TYPES[kind]),), {"__slots__": ("__weakref__",)})
    m = cls()
    m._core_init(*init_args(core, kind, d, lock, put))
    return m


def read(m, key):
    return m.get(key) if hasattr(m, "get") else m[key]  # SyncCore has only m[k]


@pytest.mark.parametrize("kind", sorted(CORE_TYPES))
@pytest.mark.parametrize("new_key, exc_type, args", BAD_KEYS)
def test_core_bad_key_propagates_unchanged_and_releases_the_lock(core, kind, new_key, exc_type, args):
    lock, d = threading.Lock(), {42: "int"}
    m = bare(core, kind, d, lock)
    with pytest.raises(exc_type) as err:
        m[new_key()] = "v"
    assert_raised(err, exc_type, args)
    assert not lock.locked()  # checked now: the read below would deadlock on a held Lock
    with pytest.raises(exc_type) as err:
        read(m, new_key())
    assert_raised(err, exc_type, args)
    assert d == {42: "int"} and not lock.locked()


def test_core_sharded_put_runs_locked_and_its_error_releases_the_lock(core):
    lock, d, calls = threading.Lock(), {}, []

    def put(key, value):
        calls.append((key, value, lock.locked()))
        if value == "bad":
            raise Boom("put", key)

    m = bare(core, "sharded", d, lock, put)
    m["k"] = "good"
    with pytest.raises(Boom) as err:
        m["k"] = "bad"
    assert err.value.args == ("put", "k") and not lock.locked()
    assert calls == [("k", "good", True), ("k", "bad", True)] and d == {}  # put stores, not the core


def test_core_failing_release_raises_with_the_first_error_as_its_context(core):
    # Regression: the C core cleared release()'s exception, so it was lost; the
    # pure core's `finally: release()` raises it, with the store's error as __context__.
    raw = threading.Lock()

    class FailingRelease:
        acquire = raw.acquire

        def release(self):
            raw.release()
            raise Boom("release")

        def __enter__(self):
            raw.acquire()

        def __exit__(self, *exc_info):
            self.release()

    m = type("Bare", (core.SyncCore,), {"__slots__": ()})()
    m._core_init({}, FailingRelease(), {})
    with pytest.raises(Boom) as err:
        m[[1]] = 1
    assert err.value.args == ("release",) and type(err.value.__context__) is TypeError
    assert not raw.locked()


@pytest.mark.parametrize("key", [(), (1,), (1, 2)])
def test_core_missing_tuple_key_raises_keyerror_of_the_tuple(core, key):
    # Regression: PyErr_SetObject(KeyError, key) unpacks a tuple key into the args.
    m = bare(core, "sync", {}, threading.Lock())
    with pytest.raises(KeyError) as err:
        m[key]
    assert err.value.args == (key,)


@pytest.mark.parametrize("kind", sorted(CORE_TYPES))
def test_core_init_twice_raises_and_keeps_the_first_fields(core, kind):
    d, lock = {"a": 1}, threading.Lock()
    m = bare(core, kind, d, lock)
    other = {}
    with pytest.raises(RuntimeError, match="already initialised"):
        m._core_init(*init_args(core, kind, other, threading.Lock()))
    m["a"] = 2
    assert d == {"a": 2} and other == {} and read(m, "a") == 2 and not lock.locked()


@pytest.mark.parametrize("kind", ["locked", "sharded"])
def test_core_init_takes_only_a_bool_flag_so_no_user_code_runs_inside_it(core, kind):
    # Regression: the C core took the flag's truth value between check_fresh and its
    # stores, so a __bool__ calling _core_init again was accepted, then overwritten (a leak).
    m = type("Bare", (getattr(core, CORE_TYPES[kind]),), {"__slots__": ()})()
    calls = []

    class Flag:
        def __bool__(self):
            calls.append("bool")
            m._core_init(*init_args(core, kind, {}, threading.Lock()))
            return True

    with pytest.raises(TypeError, match="must be a bool"):
        m._core_init(*init_args(core, kind, {}, threading.Lock())[:-1], Flag())
    assert calls == []
    d, lock = {}, threading.Lock()
    m._core_init(*init_args(core, kind, d, lock))  # the refused call left it uninitialised
    m["k"] = 1
    assert d == {"k": 1} and read(m, "k") == 1


@pytest.mark.parametrize("kind", sorted(CORE_TYPES))
def test_core_fields_are_traversed_so_a_self_cycle_is_collected(core, kind):
    d = {}
    m = bare(core, kind, d, threading.Lock())
    d["self"] = m  # the cycle runs through the core's own field only
    ref = weakref.ref(m)
    del m, d
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("name", sorted(CORES))
def test_uninitialised_maps_raise_clearly_not_crash(name):
    code = (
        "import mapsafe\n"
        "for cls in (mapsafe.SyncMap, mapsafe.LockedMap, mapsafe.ShardedMap):\n"
        "    m = cls.__new__(cls)\n"
        "    for op, call in (('getitem', lambda: m['k']), ('setitem', lambda: m.__setitem__('k', 1)),\n"
        "                     ('get', lambda: m.get('k'))):\n"
        "        try:\n"
        "            call()\n"
        "            print(cls.__name__, op, 'no error')\n"
        "        except Exception as e:\n"
        "            print(cls.__name__, op, type(e).__name__, e)\n"
        "print('done')\n"
    )
    r = run_python(code, name)
    assert r.returncode == 0 and r.stdout.endswith("done\n"), r.stderr
    got = {" ".join(line.split()[:2]): line.split()[2] for line in r.stdout.splitlines()[:-1]}
    assert len(got) == 9
    for what, exc in got.items():
        assert exc == ("RuntimeError" if name == "c" else "AttributeError"), r.stdout
    if name == "c":
        assert "SyncMap object is not initialised" in r.stdout


# -- the public maps, on the active core ---------------------------------------------------


@pytest.mark.parametrize("key", ["k", (), (1,), (1, 2)])
def test_missing_key_raises_keyerror_of_the_key(make, key):
    m = make({"other": 1})
    with pytest.raises(KeyError) as err:
        m[key]
    assert err.value.args == (key,)
    with pytest.raises(KeyError) as err:
        del m[key]
    assert err.value.args == (key,)


def test_del_goes_through_mapbase_and_removes_the_key(make):
    # A C mp_ass_subscript slot serves both m[k] = v and del m[k]; deletion must reach MapBase._delitem.
    m = make({"k": 1, (1, 2): 2, "keep": 3})
    del m["k"]
    del m[(1, 2)]
    assert m == {"keep": 3} and "k" not in m and m.get((1, 2)) is None


@pytest.mark.parametrize("new_key, exc_type, args", BAD_KEYS)
def test_bad_key_propagates_unchanged_and_leaves_map_unchanged_and_unlocked(make, new_key, exc_type, args):
    m = make({42: "int"})
    for op in (lambda k: m.__setitem__(k, "v"), lambda k: m[k], lambda k: m.get(k)):
        with pytest.raises(exc_type) as err:
            op(new_key())
        assert_raised(err, exc_type, args)
    assert m == {42: "int"}
    assert_unlocked(m)


def test_full_cache_shard_eq_error_propagates_before_any_eviction():
    start = {42: "int", **{i: i for i in range(7)}}
    m = mapsafe.ShardedMap(start, maxsize=8, shards=1)  # full: the next new key would evict
    with pytest.raises(Boom) as err:
        m[BadEq()] = "v"
    assert err.value.args == ("eq", 2) and m == start
    assert_unlocked(m)
    assert len(m) == 8


def test_init_twice_raises_runtime_error_and_map_keeps_working(make):
    m = make({"a": 1})
    kind = next(k for k, name in CORE_TYPES.items() if isinstance(m, getattr(_core, name)))
    other = {}
    with pytest.raises(RuntimeError, match="already initialised"):
        m._core_init(*init_args(_core, kind, other, threading.RLock()))
    m["b"] = 2
    assert m == {"a": 1, "b": 2} and other == {}
    assert_unlocked(m)


def test_get_takes_one_or_two_positional_arguments(make):
    m = make({"a": 1})
    for call in (lambda: m.get(), lambda: m.get(1, 2, 3), lambda: m.get("a", default=0),
                 lambda: m.get(key="a")):
        with pytest.raises(TypeError):
            call()
    assert m.get("a") == 1 and m.get("z") is None and m.get("z", 5) == 5


def test_map_containing_itself_is_collected(make):
    m = make()
    m["self"] = m
    ref = weakref.ref(m)
    del m
    gc.collect()
    assert ref() is None


def refcounts(*objs):
    return [sys.getrefcount(o) for o in objs]


def test_hot_paths_leak_no_references(make):
    key, value, missing, default, bad = Key(), object(), Key(), object(), BadEq()
    before = refcounts(key, value, missing, default, bad)
    m = make({42: "int"})
    for _ in range(10_000):
        m[key] = value
        m[key]
        m.get(key)
        m.get(missing, default)
        try:
            m[missing]
        except KeyError:
            pass
        try:
            m[bad] = value  # the error path: released lock, dropped exception
        except Boom:
            pass
    assert m[key] is value and m.get(missing, default) is default
    del m
    gc.collect()
    assert refcounts(key, value, missing, default, bad) == before


def test_store_and_python_paths_agree_on_the_shard_of_negative_hashes():
    # The C store picks the shard as hash % n in C; reads, `in` and pop use Python's %.
    m = mapsafe.ShardedMap(shards=7)
    keys = [*range(-30, 30), -(2**62), 2**62 + 1]  # hash(-1) == -2
    for k in keys:
        m[k] = k
    for k in keys:
        assert m._maps[hash(k) % 7].get(k) == k
        assert k in m and m.pop(k) == k
    assert len(m) == 0


def test_threads_hammering_the_hot_paths_end_with_exact_contents(make):
    m = make()
    n_threads, n_ops, n_own, n_shared = 4, 2000, 100, 8
    barrier, errors = threading.Barrier(n_threads), []

    def worker(tid):
        try:
            barrier.wait(timeout=10)
            for i in range(n_ops):
                own, shared = (tid, i % n_own), f"s{i % n_shared}"
                m[own] = i
                if m[own] != i or m.get(own) != i:
                    errors.append(("own key lost a write", own, i))
                m[shared] = (tid, i)
                seen = m.get(shared)
                if seen[1] % n_shared != i % n_shared:
                    errors.append(("shared key holds another key's value", shared, seen))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and errors == []
    assert len(m) == n_threads * n_own + n_shared
    for tid in range(n_threads):
        assert all(m[(tid, j)] == n_ops - n_own + j for j in range(n_own))
    for r in range(n_shared):  # some thread's last write of the key wins
        assert m[f"s{r}"] in {(t, n_ops - n_shared + r) for t in range(n_threads)}


# -- MAPSAFE_CORE, and the two cores side by side (subprocesses) ----------------------------


@pytest.mark.parametrize("value", ["python", "c", " C ", None])
def test_mapsafe_core_picks_the_core(value):
    if value != "python" and not C_BUILT:
        pytest.skip("the C core is not built")
    # The maps must also be built on the picked core, not just name it.
    r = run_python("import mapsafe as m; print(m._core.NAME, m.ShardedMap.__mro__[1].__module__)", value)
    expected = "python mapsafe._pycore" if value == "python" else "c mapsafe._speedups"
    assert r.returncode == 0 and r.stdout.split() == expected.split(), r.stderr


def test_bad_mapsafe_core_fails_import_with_config_error():
    code = (
        "import sys\n"
        "try:\n"
        "    import mapsafe\n"
        "except Exception as e:\n"
        "    print(isinstance(e, sys.modules['mapsafe.errors'].ConfigError), e)\n"
    )
    r = run_python(code, "bogus")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True MAPSAFE_CORE must be one of auto, c, python; got 'bogus'"


@pytest.mark.parametrize("how", [["-m", "mapsafe"], ["-c", "from mapsafe.cli import main; main()"]])
def test_rough_edge_1_a_bad_mapsafe_core_under_the_command_is_a_one_line_usage_error(how):
    env = {k: v for k, v in os.environ.items() if k != "MAPSAFE_CORE"}
    env["MAPSAFE_CORE"] = "bogus"
    r = subprocess.run([sys.executable, *how, "--version"], capture_output=True, text=True, env=env, timeout=60)
    if how[0] == "-m":  # the command: one line, exit 2
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr == ("mapsafe: error: MAPSAFE_CORE must be one of auto, c, python; got 'bogus' "
                            "(set MAPSAFE_CORE to auto, c or python, or unset it)\n")
    else:  # a program importing mapsafe gets the exception
        assert r.returncode == 1 and "ConfigError: MAPSAFE_CORE must be one of" in r.stderr


PROBE = f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from conftest import MAP_FACTORIES
calls = {{"get()": lambda m: m.get(), "get(k)": lambda m: m.get("k"), "get(z, 5)": lambda m: m.get("z", 5),
         "get(k, 2, 3)": lambda m: m.get("k", 2, 3), "m[[1]]": lambda m: m[[1]],
         "m[[1]] = 1": lambda m: m.__setitem__([1], 1), "m[(1, 2)]": lambda m: m[(1, 2)],
         "kw get(z, default=5)": lambda m: m.get("z", default=5), "kw get(key=k)": lambda m: m.get(key="k")}}
for name, new in sorted(MAP_FACTORIES.items()):
    m = new(k=1)
    for label, call in calls.items():
        try:
            out = repr(call(m))
        except Exception as e:
            out = type(e).__name__ + (repr(e.args) if isinstance(e, KeyError) else "")
        print(name, label, "->", out)
"""


@needs_c
def test_both_cores_handle_get_arguments_and_key_errors_alike():
    # Regression: with the pure core, ShardedMap.get in cache/stats mode was
    # _get_slow(key, default=None) and took keywords; the C get does not.
    c, py = (run_python(PROBE, name) for name in ("c", "python"))
    assert c.returncode == py.returncode == 0, c.stderr + py.stderr
    assert c.stdout == py.stdout and len(c.stdout.splitlines()) == 8 * 9
    assert all(line.endswith("-> TypeError") for line in c.stdout.splitlines() if " kw " in line)


@needs_c
def test_importing_the_c_core_again_keeps_lockedmap_working():
    # Regression: RWCore's type was a C static that a second import replaced, so
    # RWLock (built on the first RWCore) failed LockedCore._core_init's type check.
    code = (
        "import importlib, sys, mapsafe\n"
        "importlib.reload(sys.modules['mapsafe._speedups'])\n"
        "del sys.modules['mapsafe._speedups']\n"
        "importlib.import_module('mapsafe._speedups')\n"
        "print(mapsafe.LockedMap(a=1)['a'])\n"
    )
    r = run_python(code, "c")
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
