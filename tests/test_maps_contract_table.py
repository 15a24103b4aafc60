"""The maps' contract table (mapsafe.contract) against the maps, the race detector and the docs."""

from __future__ import annotations

import importlib.util
import inspect
import operator
import threading
from pathlib import Path

import pytest

import mapsafe
from mapsafe import contract

ROOT = Path(__file__).resolve().parent.parent
MAP_TYPES = {"SyncMap": mapsafe.SyncMap, "LockedMap": mapsafe.LockedMap, "ShardedMap": mapsafe.ShardedMap}
# Public methods that are not operations on the contents.
NOT_OPERATIONS = {"stats", "fromkeys", "lock", "__init__", "__new__", "__reduce__", "__deepcopy__", "__copy__",
                  "__class_getitem__", "__init_subclass__", "__subclasshook__", "__reversed__", "__or__",
                  "__ror__", "__ne__", "__hash__"}

# One call of each operation, on a map holding {"a": 1, "b": 2}.
CALLS = {
    "get": lambda m: m.get("a"),
    "load": lambda m: m.load("a"),
    "__getitem__": lambda m: m["a"],
    "__contains__": lambda m: "a" in m,
    "__len__": len,
    "approx_len": lambda m: m.approx_len(),
    "snapshot": lambda m: m.snapshot(),
    "copy": lambda m: m.copy(),
    "__iter__": list,
    "keys": lambda m: list(m.keys()),
    "values": lambda m: list(m.values()),
    "items": lambda m: list(m.items()),
    "range": lambda m: m.range(lambda k, v: None),
    "__eq__": lambda m: m == {"a": 1},
    "__repr__": repr,
    "read": lambda m: m.read().__enter__() and m.read().__exit__(None, None, None),
    "reader": lambda m: (m.reader()["a"], m.reader().get("b"), "a" in m.reader(), len(m.reader())),
    "__setitem__": lambda m: m.__setitem__("a", 5),
    "store": lambda m: m.store("a", 5),
    "__delitem__": lambda m: m.__delitem__("a"),
    "delete": lambda m: m.delete("a"),
    "pop": lambda m: m.pop("a"),
    "popitem": lambda m: m.popitem(),
    "setdefault": lambda m: m.setdefault("c", 3),
    "load_or_store": lambda m: m.load_or_store("c", 3),
    "load_and_delete": lambda m: m.load_and_delete("a"),
    "swap": lambda m: m.swap("a", 5),
    "compare_and_swap": lambda m: m.compare_and_swap("a", 1, 5),
    "compare_and_delete": lambda m: m.compare_and_delete("a", 1),
    "compute": lambda m: m.compute("a", lambda k, v: 5),
    "compute_if_absent": lambda m: m.compute_if_absent("c", lambda k: 3),
    "compute_if_present": lambda m: m.compute_if_present("a", lambda k, v: 5),
    "merge": lambda m: m.merge("a", 4, operator.add),
    "add": lambda m: m.add("a", 4),
    "update": lambda m: m.update({"a": 5, "c": 3}),
    "__ior__": lambda m: operator.ior(m, {"a": 5}),
    "clear": lambda m: m.clear(),
    "write": lambda m: m.write().__enter__().update(a=5) or m.write().__exit__(None, None, None),
}

CASES = [(op, name) for op in contract.OPS for name in op.maps]


def test_every_operation_has_a_call_here():
    assert set(CALLS) == {op.name for op in contract.OPS}


@pytest.mark.parametrize("name", sorted(MAP_TYPES))
def test_every_public_method_of_every_map_is_in_the_table(name):
    cls = MAP_TYPES[name]
    public = {n for n, _ in inspect.getmembers(cls) if not n.startswith("_") or n in contract.names("read")
              + contract.names("write")}
    dunder_ops = {n for n in dir(cls) if n.startswith("__") and n in {op.name for op in contract.OPS}}
    listed = {op.name for op in contract.OPS if name in op.maps}
    assert (public | dunder_ops) - NOT_OPERATIONS - listed == set()
    assert listed <= set(dir(cls))


@pytest.mark.parametrize("op, name", CASES, ids=[f"{n}.{op.name}" for op, n in CASES])
def test_reads_never_change_the_map_and_writes_do(op, name):
    m = MAP_TYPES[name]({"a": 1, "b": 2})
    CALLS[op.name](m)
    if op.kind == "read":
        assert m.snapshot() == {"a": 1, "b": 2}
    else:
        assert m.snapshot() != {"a": 1, "b": 2}


# The multi-key writes the table calls atomic for readers (ShardedMap's are not).
MULTI_KEY = [(op, name) for op, name in CASES
             if op.name in ("update", "__ior__", "clear", "write") and op.atomic_in(name)]


@pytest.mark.parametrize("op, name", MULTI_KEY, ids=[f"{n}.{op.name}" for op, n in MULTI_KEY])
def test_multi_key_writes_the_table_calls_atomic_are_never_seen_half_done(op, name):
    keys = [f"k{i}" for i in range(40)]
    m = MAP_TYPES[name]({k: 0 for k in keys})
    stop, torn, rounds = threading.Event(), [], []

    def writer():
        v = 0
        while not stop.is_set():
            v += 1
            rounds.append(v)
            if op.name == "clear":
                m.clear()
                m.update({k: v for k in keys})
            elif op.name == "write":
                with m.write() as d:
                    d.update({k: v for k in keys})
            elif op.name == "__ior__":
                operator.ior(m, {k: v for k in keys})
            else:
                m.update({k: v for k in keys})

    t = threading.Thread(target=writer)
    t.start()
    try:
        # Check until the writer has made enough rounds (a reader can starve it
        # on some schedulers), within a bound so a stuck writer fails, not hangs.
        for checks in range(200_000):
            values = list(m.snapshot().values())
            if values and (len(values) != len(keys) or len(set(values)) != 1):
                torn.append(values)
            if checks >= 2000 and len(rounds) >= 20:
                break
    finally:
        stop.set()
        t.join(30)
    assert torn == [] and len(rounds) >= 2 and m.snapshot() == {k: rounds[-1] for k in keys}


@pytest.mark.parametrize("name", sorted(MAP_TYPES))
@pytest.mark.parametrize("method", ["compare_and_swap", "compare_and_delete"])
def test_value_eq_runs_with_no_lock_held_as_the_table_says(name, method):
    op = next(op for op in contract.OPS if op.name == method)
    assert op.user_code == ""  # the table promises: only a key's hash/eq under the lock
    m = MAP_TYPES[name]()
    seen = []

    class Value:
        def __eq__(self, other):
            # Another thread can write the same key only if no lock is held.
            t = threading.Thread(target=m.__setitem__, args=("probe", 1))
            t.start()
            t.join(10)
            seen.append(not t.is_alive())
            return True

        __hash__ = object.__hash__

    m["k"] = Value()
    args = ("k", object(), "new") if method == "compare_and_swap" else ("k", object())
    assert getattr(m, method)(*args)
    assert seen and all(seen)


def test_the_race_detector_takes_its_map_methods_from_the_table():
    from mapsafe.race import hooks_maps

    assert set(hooks_maps.map_methods("read")) == set(contract.names("read")) - {"read", "reader"}
    assert set(hooks_maps.map_methods("write")) == set(contract.names("write")) - {"write"}


def test_the_docs_semantics_page_renders_the_contract_at_build_time():
    # The page holds only the marker; the MkDocs hook puts the table in its place.
    # tests/test_docs.py builds the whole site and checks the table is in the HTML.
    spec = importlib.util.spec_from_file_location("docs_hooks_tables", ROOT / "docs" / "_hooks" / "tables.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    page = (ROOT / "docs" / "maps" / "semantics.md").read_text(encoding="utf-8")
    assert "<!-- mapsafe:contract-table -->" in page and "| `load_or_store` |" not in page
    rendered = hooks.on_page_markdown(page)
    assert contract.render_markdown() in rendered
    assert "<!-- mapsafe:contract-table -->" not in rendered
