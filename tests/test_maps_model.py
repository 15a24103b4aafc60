"""Model-based tests: random call sequences on every map, checked against a plain dict."""

from __future__ import annotations

import copy
import operator
import pickle

import pytest
from conftest import MAP_FACTORIES
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from mapsafe import DELETE, MISSING

# A small key domain so that operations keep hitting keys that earlier ones
# touched; ints and strings also land in different ShardedMap shards.
KEYS = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, "a", "b"])
STR_KEYS = st.sampled_from(["a", "b", "c"])  # usable as update(**kwargs) names
VALUES = st.one_of(st.integers(0, 3), st.none())
MAPPINGS = st.dictionaries(KEYS, VALUES, max_size=4)
PAIRS = st.lists(st.tuples(KEYS, VALUES), max_size=4)
KWARGS = st.dictionaries(STR_KEYS, VALUES, max_size=3)

# What a compute-family callback does: return a fixed value, DELETE, or a
# value derived from the old one (so passing the wrong old value shows).
ACTIONS = st.one_of(
    st.tuples(st.just("value"), VALUES),
    st.just(("delete", None)),
    st.just(("bump", None)),
)


def _number(x):
    return x if isinstance(x, int) else 0


def outcome(action, old, extra=None):
    """What a callback following ``action`` returns, given the old value."""
    kind, arg = action
    if kind == "value":
        return arg
    if kind == "delete":
        return DELETE
    return (0 if old is MISSING else _number(old) + 1) + _number(extra)


class Recorder:
    """A callback that follows an action and records every call's arguments."""

    def __init__(self, action):
        self.action = action
        self.calls = []

    def compute(self, key, old):
        self.calls.append((key, old))
        return outcome(self.action, old)

    def factory(self, key):
        self.calls.append((key,))
        return outcome(self.action, MISSING)

    def merge(self, old, value):
        self.calls.append((old, value))
        return outcome(self.action, old, value)


def same(a, b):
    """Equal and of the same type: 0 must not pass for None or False."""
    return type(a) is type(b) and a == b


class MapMachine(RuleBasedStateMachine):
    """Every public operation, applied to the map and to a dict in lockstep."""

    factory = None  # set per configuration (a staticmethod)
    lifo_popitem = False  # SyncMap and LockedMap document popitem as LIFO

    def __init__(self):
        super().__init__()
        self.m = self.factory()
        self.model = {}

    # -- dict interface: writes ---------------------------------------------------

    @rule(k=KEYS, v=VALUES)
    def setitem(self, k, v):
        self.m[k] = v
        self.model[k] = v

    @rule(k=KEYS)
    def delitem(self, k):
        if k in self.model:
            del self.m[k]
            del self.model[k]
        else:
            with pytest.raises(KeyError) as err:
                del self.m[k]
            assert err.value.args == (k,)

    @rule(k=KEYS, default=VALUES, with_default=st.booleans())
    def pop(self, k, default, with_default):
        if with_default:
            assert same(self.m.pop(k, default), self.model.pop(k, default))
        elif k in self.model:
            assert same(self.m.pop(k), self.model.pop(k))
        else:
            with pytest.raises(KeyError) as err:
                self.m.pop(k)
            assert err.value.args == (k,)

    @rule()
    def popitem(self):
        if not self.model:
            with pytest.raises(KeyError):
                self.m.popitem()
            return
        pair = self.m.popitem()
        assert type(pair) is tuple and len(pair) == 2
        key, value = pair
        assert key in self.model and same(self.model[key], value), (pair, self.model)
        if self.lifo_popitem:
            assert key == next(reversed(self.model)), "popitem must remove the most recently inserted pair"
        del self.model[key]

    @rule(k=KEYS, v=VALUES, with_default=st.booleans())
    def setdefault(self, k, v, with_default):
        if with_default:
            assert same(self.m.setdefault(k, v), self.model.setdefault(k, v))
        else:
            assert same(self.m.setdefault(k), self.model.setdefault(k))

    @rule(mapping=MAPPINGS, kwargs=KWARGS)
    def update_mapping(self, mapping, kwargs):
        assert self.m.update(mapping, **kwargs) is None
        self.model.update(mapping, **kwargs)

    @rule(pairs=PAIRS)
    def update_pairs(self, pairs):
        self.m.update(pairs)
        self.model.update(pairs)

    @rule(kwargs=KWARGS)
    def update_kwargs(self, kwargs):
        self.m.update(**kwargs)
        self.model.update(**kwargs)

    @rule(mapping=MAPPINGS)
    def update_from_another_map(self, mapping):
        self.m.update(type(self.m.copy())(mapping))
        self.model.update(mapping)

    @rule(mapping=MAPPINGS, as_pairs=st.booleans())
    def ior(self, mapping, as_pairs):
        before = self.m
        self.m |= list(mapping.items()) if as_pairs else mapping
        assert self.m is before  # in place
        self.model |= mapping

    @rule()
    def clear(self):
        self.m.clear()
        self.model.clear()

    # -- dict interface: reads ---------------------------------------------------------

    @rule(k=KEYS, default=VALUES)
    def get_and_getitem(self, k, default):
        assert same(self.m.get(k), self.model.get(k))
        assert same(self.m.get(k, default), self.model.get(k, default))
        if k in self.model:
            assert same(self.m[k], self.model[k])
        else:
            with pytest.raises(KeyError) as err:
                self.m[k]
            assert err.value.args == (k,)

    @rule()
    def views_len_contains(self):
        keys = list(self.m)
        assert len(keys) == len(set(keys)) == len(self.model)
        assert set(keys) == set(self.model)
        assert set(self.m.keys()) == self.model.keys()
        assert sorted(map(repr, self.m.values())) == sorted(map(repr, self.model.values()))
        items = list(self.m.items())
        assert len(items) == len(self.model) and dict(items) == self.model
        assert set(reversed(self.m)) == set(self.model)
        assert len(self.m) == len(self.m.keys()) == len(self.m.items()) == len(self.m.values()) == len(self.model)
        for k in [0, 1, 2, 3, 4, 5, 6, 7, "a", "b", "c"]:
            assert (k in self.m) == (k in self.model)
            assert (k in self.m.keys()) == (k in self.model)
        for pair in self.model.items():
            assert pair in self.m.items()
        assert ("absent-key", 0) not in self.m.items()

    @rule(k=KEYS, v=VALUES)
    def equality(self, k, v):
        assert self.m == self.model and self.model == self.m
        assert not (self.m != self.model)
        other = dict(self.model)
        other[k] = "different" if k in other else v
        assert self.m != other and other != self.m

    @rule(stop_at_first=st.booleans())
    def range_(self, stop_at_first):
        seen = []
        if stop_at_first:
            self.m.range(lambda k, v: seen.append((k, v)) or False)
            assert len(seen) == min(1, len(self.model))
        else:
            assert self.m.range(lambda k, v: seen.append((k, v))) is None
            assert len(seen) == len(self.model) and dict(seen) == self.model
        for k, v in seen:
            assert same(self.model[k], v)

    # -- Go sync.Map methods ----------------------------------------------------------

    @rule(k=KEYS, v=VALUES)
    def store(self, k, v):
        assert self.m.store(k, v) is None
        self.model[k] = v

    @rule(k=KEYS)
    def load(self, k):
        value, ok = self.m.load(k)
        assert ok is (k in self.model)
        assert same(value, self.model.get(k))

    @rule(k=KEYS)
    def delete(self, k):
        assert self.m.delete(k) is None
        self.model.pop(k, None)

    @rule(k=KEYS, v=VALUES)
    def load_or_store(self, k, v):
        actual, loaded = self.m.load_or_store(k, v)
        assert loaded is (k in self.model)
        assert same(actual, self.model.setdefault(k, v))

    @rule(k=KEYS)
    def load_and_delete(self, k):
        value, loaded = self.m.load_and_delete(k)
        assert loaded is (k in self.model)
        assert same(value, self.model.pop(k, None))

    @rule(k=KEYS, v=VALUES)
    def swap(self, k, v):
        previous, loaded = self.m.swap(k, v)
        assert loaded is (k in self.model)
        assert same(previous, self.model.get(k))
        self.model[k] = v

    @rule(k=KEYS, old=VALUES, new=VALUES, use_current=st.booleans())
    def compare_and_swap(self, k, old, new, use_current):
        if use_current and k in self.model:
            old = self.model[k]  # make hits common, not only lucky draws
        expected = k in self.model and self.model[k] == old
        assert self.m.compare_and_swap(k, old, new) is expected
        if expected:
            self.model[k] = new

    @rule(k=KEYS, old=VALUES, use_current=st.booleans())
    def compare_and_delete(self, k, old, use_current):
        if use_current and k in self.model:
            old = self.model[k]
        expected = k in self.model and self.model[k] == old
        assert self.m.compare_and_delete(k, old) is expected
        if expected:
            del self.model[k]

    # -- compute family ---------------------------------------------------------------

    @rule(k=KEYS, action=ACTIONS)
    def compute(self, k, action):
        fn = Recorder(action)
        result = self.m.compute(k, fn.compute)
        old = self.model.get(k, MISSING)
        assert len(fn.calls) == 1 and fn.calls[0][0] == k
        assert fn.calls[0][1] is old if old is MISSING else same(fn.calls[0][1], old)
        new = outcome(action, old)
        if new is DELETE:
            assert result is None
            self.model.pop(k, None)
        else:
            assert same(result, new)
            self.model[k] = new

    @rule(k=KEYS, action=ACTIONS)
    def compute_if_absent(self, k, action):
        fn = Recorder(action)
        result = self.m.compute_if_absent(k, fn.factory)
        if k in self.model:
            assert fn.calls == [] and same(result, self.model[k])
            return
        assert fn.calls == [(k,)]
        new = outcome(action, MISSING)
        if new is DELETE:
            assert result is None  # stores nothing
        else:
            assert same(result, new)
            self.model[k] = new

    @rule(k=KEYS, action=ACTIONS)
    def compute_if_present(self, k, action):
        fn = Recorder(action)
        result = self.m.compute_if_present(k, fn.compute)
        if k not in self.model:
            assert fn.calls == [] and result is None
            return
        old = self.model[k]
        assert len(fn.calls) == 1 and fn.calls[0][0] == k and same(fn.calls[0][1], old)
        new = outcome(action, old)
        if new is DELETE:
            assert result is None
            del self.model[k]
        else:
            assert same(result, new)
            self.model[k] = new

    @rule(k=KEYS, v=VALUES, action=ACTIONS)
    def merge(self, k, v, action):
        fn = Recorder(action)
        result = self.m.merge(k, v, fn.merge)
        if k not in self.model:
            assert fn.calls == [] and same(result, v)
            self.model[k] = v
            return
        old = self.model[k]
        assert len(fn.calls) == 1 and same(fn.calls[0][0], old) and same(fn.calls[0][1], v)
        new = outcome(action, old, v)
        if new is DELETE:
            assert result is None
            del self.model[k]
        else:
            assert same(result, new)
            self.model[k] = new

    # The known operators, which the C core applies in C to ints and floats
    # (and hands to the Python path for anything else), and add().
    @rule(
        k=KEYS,
        v=st.one_of(st.integers(-3, 3), st.floats(-2, 2), st.just(2**70), st.booleans(), st.just("s"), st.none()),
        op=st.sampled_from(["add", "sub", "mul", "or_", "and_", "xor", "add()"]),
    )
    def merge_with_an_operator(self, k, v, op):
        fn = operator.add if op == "add()" else getattr(operator, op)
        call = (lambda: self.m.add(k, v)) if op == "add()" else (lambda: self.m.merge(k, v, fn))
        if k not in self.model:
            assert same(call(), v)
            self.model[k] = v
            return
        try:
            expected = fn(self.model[k], v)
        except (TypeError, OverflowError) as exc:  # "s" + 1; a huge int + a float
            with pytest.raises(type(exc)) as raised:
                call()
            assert str(raised.value) == str(exc)  # the operator's own error, and the map unchanged
            return
        assert same(call(), expected)
        self.model[k] = expected

    # -- whole-map copies -----------------------------------------------------------------

    @rule(how=st.sampled_from(["copy", "copy.copy", "copy.deepcopy", "pickle"]), k=KEYS)
    def clones_are_equal_and_independent(self, how, k):
        clone = {
            "copy": lambda m: m.copy(),
            "copy.copy": copy.copy,
            "copy.deepcopy": copy.deepcopy,
            "pickle": lambda m: pickle.loads(pickle.dumps(m)),
        }[how](self.m)
        assert clone is not self.m and clone == self.model
        assert type(clone) is type(self.m.copy())
        clone.pop(next(iter(self.model), k), None)
        clone[k] = "only-in-clone"
        clone["extra"] = 1
        assert self.m == self.model  # the original did not change
        self.m[k] = "only-in-original"
        assert clone[k] == "only-in-clone"
        self.model[k] = "only-in-original"

    @rule(k=KEYS)
    def snapshot(self, k):
        snap = self.m.snapshot()
        assert type(snap) is dict and snap == self.model
        snap[k] = "only-in-snapshot"
        assert self.m == self.model

    @rule(mapping=MAPPINGS)
    def or_operators(self, mapping):
        merged = self.m | mapping
        assert type(merged) is type(self.m.copy()) and merged is not self.m
        assert merged == {**self.model, **mapping}
        reflected = mapping | self.m
        assert type(reflected) is type(self.m.copy())
        assert reflected == {**mapping, **self.model}
        assert self.m == self.model  # neither operand changed

    # -- after every step ------------------------------------------------------------------

    @invariant()
    def equals_model(self):
        assert self.m.snapshot() == self.model
        assert len(self.m) == len(self.model)


_SETTINGS = settings(max_examples=60, stateful_step_count=30, deadline=None, database=None)


def _machine_test_case(name: str):
    machine = type(
        f"MapMachine_{name}",
        (MapMachine,),
        {
            "factory": staticmethod(MAP_FACTORIES[name]),
            "lifo_popitem": name.startswith(("SyncMap", "LockedMap")),
        },
    )
    case = machine.TestCase
    case.settings = _SETTINGS
    case.__name__ = case.__qualname__ = "Test" + name.replace("-", "_")
    return case


for _name in sorted(MAP_FACTORIES):
    _case = _machine_test_case(_name)
    globals()[_case.__name__] = _case
del _name, _case
