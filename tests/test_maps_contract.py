"""Contract tests shared by SyncMap, LockedMap and ShardedMap: dict behaviour plus Go/CHM methods."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Mapping, MutableMapping

import pytest

import mapsafe
from mapsafe import DELETE, MISSING, RecursiveUpdateError


# -- construction and dict compatibility ------------------------------------------


def test_constructor_takes_what_dict_takes(make):
    assert make() == {}
    assert make({"a": 1}) == {"a": 1}
    assert make([("a", 1), ("b", 2)]) == {"a": 1, "b": 2}
    assert make({"a": 1}, b=2) == {"a": 1, "b": 2}
    assert make(a=1, b=2) == dict(a=1, b=2)
    assert make(make({"x": 9})) == {"x": 9}


def test_constructor_rejects_bad_input(make):
    with pytest.raises(TypeError, match="at most 1"):
        make({}, {})
    with pytest.raises(ValueError, match="element #1 has length 3"):
        make([("a", 1), ("b", 2, 3)])
    with pytest.raises(TypeError, match="unhashable"):
        make([([], 1)])


def test_is_a_mutable_mapping_and_not_a_dict(make):
    m = make()
    assert isinstance(m, MutableMapping)
    assert not isinstance(m, dict)


def test_getitem_setitem_delitem_len_contains(make):
    m = make()
    m["a"] = 1
    m["b"] = 2
    m["a"] = 3
    assert m["a"] == 3 and len(m) == 2 and "a" in m and "z" not in m
    del m["a"]
    assert "a" not in m and len(m) == 1
    with pytest.raises(KeyError) as err:
        m["a"]
    assert err.value.args == ("a",)
    with pytest.raises(KeyError) as err:
        del m["a"]
    assert err.value.args == ("a",)


def test_get_pop_popitem_setdefault(make):
    m = make({"a": 1})
    assert m.get("a") == 1 and m.get("z") is None and m.get("z", 7) == 7
    assert m.pop("a") == 1 and "a" not in m
    assert m.pop("a", "dflt") == "dflt"
    with pytest.raises(KeyError) as err:
        m.pop("a")
    assert err.value.args == ("a",)
    assert m.setdefault("k", []) == [] and m["k"] == []
    m["k"].append(1)
    assert m.setdefault("k", "other") == [1]
    assert m.setdefault("n") is None and "n" in m
    m.clear()
    m["x"] = 1
    assert m.popitem() == ("x", 1)
    with pytest.raises(KeyError, match="empty"):
        m.popitem()


def test_popitem_drains_every_item_once(make):
    m = make({i: -i for i in range(50)})
    seen = dict(m.popitem() for _ in range(50))
    assert seen == {i: -i for i in range(50)} and len(m) == 0


def test_update_and_or_operators(make):
    m = make({"a": 1})
    m.update({"b": 2}, c=3)
    m.update([("d", 4)])
    assert m == {"a": 1, "b": 2, "c": 3, "d": 4}
    merged = m | {"a": 10, "e": 5}
    assert type(merged) is type(m) or type(merged).__name__ == type(m).__name__
    assert merged == {"a": 10, "b": 2, "c": 3, "d": 4, "e": 5}
    assert m["a"] == 1  # | does not modify
    right = {"a": 0, "z": 26} | m
    assert right == {"a": 1, "z": 26, "b": 2, "c": 3, "d": 4}
    m |= {"f": 6}
    m |= [("g", 7)]
    assert m["f"] == 6 and m["g"] == 7
    with pytest.raises(TypeError):
        m | 3  # noqa: B018


def test_update_with_unhashable_key_leaves_map_unchanged(make):
    m = make({"a": 1})
    with pytest.raises(TypeError, match="unhashable"):
        m.update([("b", 2), ({}, 3)])
    assert m == {"a": 1}


def test_unhashable_keys_raise_type_error_and_change_nothing(make):
    m = make({"a": 1})
    for op in (
        lambda: m.__setitem__([], 1),
        lambda: m.__getitem__([]),
        lambda: m.get([]),
        lambda: m.pop([]),
        lambda: m.setdefault([], 1),
        lambda: m.store([], 1),
        lambda: m.load_or_store([], 1),
        lambda: m.swap([], 1),
        lambda: m.compare_and_swap([], 1, 2),
        lambda: m.compute([], lambda k, v: 1),
        lambda: m.compute_if_absent([], lambda k: 1),
        lambda: m.merge([], 1, lambda a, b: a),
    ):
        with pytest.raises(TypeError, match="unhashable"):
            op()
    assert m == {"a": 1}


def test_equality_against_any_mapping(make):
    class Plain(Mapping):
        def __init__(self, d):
            self.d = d

        def __getitem__(self, k):
            return self.d[k]

        def __iter__(self):
            return iter(self.d)

        def __len__(self):
            return len(self.d)

    m = make({"a": 1})
    assert m == {"a": 1} and {"a": 1} == m
    assert m != {"a": 2} and m != {"a": 1, "b": 2}
    assert m == Plain({"a": 1}) and m != Plain({})
    assert m == mapsafe.SyncMap({"a": 1}) == mapsafe.ShardedMap({"a": 1})
    assert (m == 3) is False
    with pytest.raises(TypeError, match="unhashable"):
        hash(m)


def test_repr_copy_fromkeys(make):
    m = make({"a": 1})
    assert repr(m).endswith("({'a': 1})")
    assert repr(m).split("(")[0] in ("SyncMap", "LockedMap", "ShardedMap")
    c = m.copy()
    assert c == m and c is not m and type(c) is type(m)
    c["b"] = 2
    assert "b" not in m
    f = type(m).fromkeys("xy", 0)
    assert f == {"x": 0, "y": 0}
    assert copy.copy(m) == m


def test_keys_values_items_views(make):
    m = make({"a": 1, "b": 2})
    assert set(m.keys()) == {"a", "b"} and "a" in m.keys()
    assert sorted(m.values()) == [1, 2]
    assert set(m.items()) == {("a", 1), ("b", 2)} and ("a", 1) in m.items()
    assert len(m.keys()) == len(m.items()) == len(m.values()) == 2
    assert sorted(m) == ["a", "b"]
    assert set(reversed(m)) == {"a", "b"}


def test_pickle_and_deepcopy_keep_contents_and_options(make):
    m = make({"a": [1, 2], "b": {"c": 3}})
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert clone == m and type(clone) is type(m)
        assert clone._options() == m._options()
        clone["a"].append(3)
        assert m["a"] == [1, 2]  # deep
        clone["new"] = 1  # its locks work
        assert "new" not in m


def test_typing_subscript(map_cls):
    alias = map_cls[str, int]
    assert alias.__origin__ is map_cls and alias.__args__ == (str, int)


# -- Go sync.Map methods --------------------------------------------------------------


def test_load_store_delete(make):
    m = make()
    assert m.load("k") == (None, False)
    assert m.store("k", 1) is None
    assert m.load("k") == (1, True)
    m.store("none", None)
    assert m.load("none") == (None, True)
    assert m.delete("k") is None and m.delete("k") is None
    assert m.load("k") == (None, False)


def test_load_or_store_and_load_and_delete(make):
    m = make()
    assert m.load_or_store("k", 1) == (1, False)
    assert m.load_or_store("k", 2) == (1, True)
    assert m.load_and_delete("k") == (1, True)
    assert m.load_and_delete("k") == (None, False)


def test_swap(make):
    m = make()
    assert m.swap("k", 1) == (None, False)
    assert m.swap("k", 2) == (1, True)
    assert m["k"] == 2


def test_compare_and_swap_and_delete(make):
    m = make({"k": 1})
    assert m.compare_and_swap("k", 1, 2) is True and m["k"] == 2
    assert m.compare_and_swap("k", 1, 3) is False and m["k"] == 2
    assert m.compare_and_swap("missing", None, 1) is False and "missing" not in m
    assert m.compare_and_swap("k", 2.0, 4) is True  # compares with ==
    assert m.compare_and_delete("k", 5) is False and "k" in m
    assert m.compare_and_delete("k", 4) is True and "k" not in m
    assert m.compare_and_delete("k", 4) is False


def test_range_visits_each_and_stops_on_exactly_false(make):
    m = make({i: i for i in range(10)})
    seen = []
    assert m.range(lambda k, v: seen.append((k, v))) is None
    assert sorted(seen) == [(i, i) for i in range(10)]
    count = []
    m.range(lambda k, v: count.append(k) or False)
    assert len(count) == 1
    falsy = []
    m.range(lambda k, v: falsy.append(k) or 0)  # 0 is not False: keep going
    assert len(falsy) == 10


def test_range_callback_may_mutate_the_map(make):
    m = make({i: i for i in range(10)})

    def fn(k, v):
        m[k + 100] = v
        m.pop(k)

    m.range(fn)
    assert m == {i + 100: i for i in range(10)}


# -- compute family -------------------------------------------------------------------


def test_compute(make):
    m = make()
    assert m.compute("k", lambda k, old: (k, old)) == ("k", MISSING)
    assert m.compute("k", lambda k, old: old[0] * 2) == "kk"
    assert m.compute("k", lambda k, old: DELETE) is None and "k" not in m
    assert m.compute("absent", lambda k, old: DELETE) is None and "absent" not in m


def test_compute_if_absent(make):
    m = make()
    calls = []
    assert m.compute_if_absent("k", lambda k: calls.append(k) or 1) == 1
    assert m.compute_if_absent("k", lambda k: calls.append(k) or 2) == 1
    assert calls == ["k"] and m["k"] == 1
    assert m.compute_if_absent("d", lambda k: DELETE) is None and "d" not in m


def test_compute_if_present(make):
    m = make({"k": 1})
    assert m.compute_if_present("k", lambda k, v: v + 1) == 2
    assert m.compute_if_present("absent", lambda k, v: 1 / 0) is None
    assert "absent" not in m
    assert m.compute_if_present("k", lambda k, v: DELETE) is None and "k" not in m


def test_merge(make):
    m = make()
    assert m.merge("c", 1, lambda a, b: a + b) == 1
    assert m.merge("c", 5, lambda a, b: a + b) == 6
    assert m.merge("c", 0, lambda a, b: DELETE) is None and "c" not in m


def test_snapshot_is_a_detached_dict(make):
    m = make({"a": 1})
    snap = m.snapshot()
    assert type(snap) is dict and snap == {"a": 1}
    m["b"] = 2
    assert snap == {"a": 1}


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.compute("k", lambda k, v: 1 / 0),
        lambda m: m.compute_if_absent("new", lambda k: 1 / 0),
        lambda m: m.compute_if_present("k", lambda k, v: 1 / 0),
        lambda m: m.merge("k", 1, lambda a, b: 1 / 0),
        lambda m: m.range(lambda k, v: 1 / 0),
    ],
)
def test_callback_exception_propagates_and_leaves_map_unchanged(make, call):
    m = make({"k": 1})
    with pytest.raises(ZeroDivisionError):
        call(m)
    assert m == {"k": 1}
    m["k"] = 2  # and no lock was left held
    assert m.compute("k", lambda k, v: v + 1) == 3


def test_callbacks_may_use_other_keys_of_the_same_map(make):
    m = make({"a": 1, "b": 2})

    def fn(k, old):
        m["other"] = m["b"] + old  # read and write other keys
        assert m.get("a") == old  # reads of the key see the old value
        return len(m) + sum(m.values())

    assert m.compute("a", fn) == 3 + (1 + 2 + 3)
    assert m.compute_if_absent("z", lambda k: m.setdefault("y", 5) * 2) == 10
    assert m.snapshot()["z"] == 10 and m["y"] == 5


@pytest.mark.parametrize(
    "nested",
    [
        lambda m: m.__setitem__("k", 0),
        lambda m: m.store("k", 0),
        lambda m: m.pop("k"),
        lambda m: m.__delitem__("k"),
        lambda m: m.compute("k", lambda k, v: 0),
        lambda m: m.merge("k", 0, lambda a, b: 0),
        lambda m: m.swap("k", 0),
        lambda m: m.update({"k": 0}),
        lambda m: m.clear(),
    ],
)
def test_recursive_update_of_the_computed_key_raises_clearly(make, nested):
    m = make({"k": 1})
    with pytest.raises(RecursiveUpdateError, match="recursive update of key 'k'"):
        m.compute("k", lambda k, old: nested(m))
    assert m == {"k": 1}
    assert m.compute("k", lambda k, old: old + 1) == 2  # nothing left locked or marked


def test_sentinels_are_singletons_without_truth_value():
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert copy.deepcopy(DELETE) is DELETE
    assert repr(MISSING) == "mapsafe.MISSING"
    with pytest.raises(TypeError, match="no truth value"):
        bool(MISSING)


def test_stats_report_counts(make):
    m = make({"a": 1})
    m.get("a")
    m.get("zz")
    m["b"] = 2
    s = m.stats()
    assert s["size"] == 2 and s["type"] in ("SyncMap", "LockedMap", "ShardedMap")
    if s["enabled"]:
        assert s["hits"] == 1 and s["misses"] == 1
        assert s["lock"]["acquisitions"] >= 1 and s["lock"]["contended"] == 0


def test_bool_options_are_validated(map_cls):
    with pytest.raises(TypeError, match="stats must be True or False"):
        map_cls(stats="yes")
