"""The maps are generic: mypy checks keys and values of user code, and ``SyncMap[str, int]`` works at runtime.

mypy runs once (programmatically, with its cache under a temporary
directory) over a few small modules: one of correct uses, whose
``reveal_type`` notes are checked, and one per misuse, each of which must
give the expected error.
"""

from __future__ import annotations

import re
import textwrap
import typing
from pathlib import Path

import pytest

from mapsafe import Cache, CopyOnWriteMap, LockedMap, ShardedMap, SyncMap, WeakValueMap

ROOT = Path(__file__).resolve().parent.parent

try:
    import mypy.api as mypy_api
except ImportError:  # not a skip: mypy is in the test extra, so a missing one is a broken setup
    pytest.fail("mypy is not installed: the test extra brings it (pip install -e '.[test]')", pytrace=False)

GOOD = """
    import operator
    from mapsafe import DELETE, MISSING, Cache, CopyOnWriteMap, LockedMap, ShardedMap, SyncMap, WeakValueMap

    def bump(key: str, old: object) -> int:
        return 1 if old is MISSING or not isinstance(old, int) else old + 1

    m: SyncMap[str, int] = SyncMap()
    m["a"] = 1
    reveal_type(m.get("a"))  # SYNC_GET
    reveal_type(m.get("a", 0))  # SYNC_GET_DEFAULT
    reveal_type(m["a"])  # SYNC_ITEM
    reveal_type(m.compute("a", bump))  # SYNC_COMPUTE
    reveal_type(m.merge("a", 1, operator.add))  # SYNC_MERGE
    reveal_type(m.compute_if_absent("b", len))  # SYNC_IF_ABSENT
    reveal_type(m.compute_if_present("a", lambda k, old: DELETE if old > 9 else old * 2))  # SYNC_IF_PRESENT
    reveal_type(m.add("a"))  # SYNC_ADD
    reveal_type(m.load("a"))  # SYNC_LOAD
    reveal_type(m.load_or_store("a", 2))  # SYNC_LOAD_OR_STORE
    reveal_type(m.pop("a", None))  # SYNC_POP
    reveal_type(m.snapshot())  # SYNC_SNAPSHOT
    reveal_type(m.copy())  # SYNC_COPY
    reveal_type(list(m.items()))  # SYNC_ITEMS
    reveal_type(SyncMap[str, int]())  # SYNC_SUBSCRIPTED

    lm: LockedMap[str, bytes] = LockedMap()
    reveal_type(lm.get("k"))  # LOCKED_GET
    sm: ShardedMap[int, str] = ShardedMap(maxsize=10)
    reveal_type(sm.get(1))  # SHARDED_GET
    reveal_type(sm.compute(1, lambda k, old: "x"))  # SHARDED_COMPUTE
    cow: CopyOnWriteMap[str, float] = CopyOnWriteMap()
    reveal_type(cow.get("k"))  # COW_GET

    class Obj:
        pass

    wv: WeakValueMap[str, Obj] = WeakValueMap()
    reveal_type(wv.get_or_create("k", lambda key: Obj()))  # WEAK_GET_OR_CREATE
    c: Cache[str, int] = Cache(loader=len)
    reveal_type(c.get("abc"))  # CACHE_GET
    reveal_type(c.get_if_present("abc"))  # CACHE_GET_IF_PRESENT
"""

EXPECTED_REVEALS = {
    "SYNC_GET": "builtins.int | None",
    "SYNC_GET_DEFAULT": "builtins.int",
    "SYNC_ITEM": "builtins.int",
    "SYNC_COMPUTE": "builtins.int | None",
    "SYNC_MERGE": "builtins.int | None",
    "SYNC_IF_ABSENT": "builtins.int | None",
    "SYNC_IF_PRESENT": "builtins.int | None",
    "SYNC_ADD": "builtins.int",
    "SYNC_LOAD": "tuple[builtins.int | None, builtins.bool]",
    "SYNC_LOAD_OR_STORE": "tuple[builtins.int, builtins.bool]",
    "SYNC_POP": "builtins.int | None",
    "SYNC_SNAPSHOT": "builtins.dict[builtins.str, builtins.int]",
    "SYNC_COPY": "mapsafe.syncmap.SyncMap[builtins.str, builtins.int]",
    "SYNC_ITEMS": "builtins.list[tuple[builtins.str, builtins.int]]",
    "SYNC_SUBSCRIPTED": "mapsafe.syncmap.SyncMap[builtins.str, builtins.int]",
    "LOCKED_GET": "builtins.bytes | None",
    "SHARDED_GET": "builtins.str | None",
    "SHARDED_COMPUTE": "builtins.str | None",
    "COW_GET": "builtins.float | None",
    "WEAK_GET_OR_CREATE": "good.Obj",
    "CACHE_GET": "builtins.int",
    "CACHE_GET_IF_PRESENT": "builtins.int | None",
}

# name -> (source, a regex the error line must match)
BAD = {
    "bad_merge_value": (
        'm.merge("a", "x", operator.add)',
        r'Argument 2 to "merge" of "MapBase" has incompatible type "str"; expected "int"',
    ),
    "bad_get_target": (
        'x: str = m.get("a")',
        r'Incompatible types in assignment \(expression has type "int \| None", variable has type "str"\)',
    ),
    "bad_key": ("m[1] = 2", r'Invalid index type "int" for "SyncMap\[str, int\]"; expected type "str"'),
    "bad_value": ('m["a"] = "one"', r'Incompatible types in assignment \(expression has type "str", target has type "int"\)'),
    "bad_compute_result": (
        'm.compute("a", lambda k, old: "x")',
        r'(Incompatible return value type|Argument 2 to "compute").*"str"',
    ),
    "bad_merge_fn": (
        'm.merge("a", 1, lambda old, new: old + "x")',
        r'Unsupported operand types for \+ \("int" and "str"\)',
    ),
    "bad_locked_key": ('lm: LockedMap[str, int] = LockedMap()\nlm.get(1)', r'No overload variant of "get" of "LockedMap" matches argument type "int"'),
    "bad_sharded_value": ('sm: ShardedMap[str, int] = ShardedMap()\nsm["a"] = b"x"', r'expression has type "bytes", target has type "int"'),
    "bad_cache_loader": ('c: Cache[str, int] = Cache()\nc.get("a", lambda key: key)', r'Argument 2 .*incompatible type "Callable\[\[str\], str\]"; expected "Callable\[\[str\], int\] \| None"'),
}

BAD_PRELUDE = """
import operator
from mapsafe import Cache, LockedMap, ShardedMap, SyncMap
m: SyncMap[str, int] = SyncMap()
"""


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy --strict over GOOD and every BAD snippet, once: each module's output lines."""
    root = tmp_path_factory.mktemp("typing")
    config = root / "mypy.ini"
    config.write_text(
        f"[mypy]\nstrict = True\npython_version = 3.11\ncache_dir = {root / 'mypy_cache'}\n"
        "warn_unused_configs = False\n"
    )
    files = [root / "good.py"]
    files[0].write_text(textwrap.dedent(GOOD))
    for name, (source, _) in BAD.items():
        path = root / f"{name}.py"
        path.write_text(BAD_PRELUDE + source + "\n")
        files.append(path)
    stdout, stderr, _status = mypy_api.run(["--config-file", str(config), *map(str, files)])
    assert "error: Cannot find implementation or library stub" not in stdout, stdout
    out: dict[str, list[str]] = {path.stem: [] for path in files}
    for line in stdout.splitlines():
        name = Path(line.split(":", 1)[0]).stem
        if name in out:
            out[name].append(line)
    out["_raw"] = [stdout, stderr]
    return out


def test_correct_use_type_checks(mypy_run: dict[str, list[str]]) -> None:
    errors = [line for line in mypy_run["good"] if ": error:" in line]
    assert errors == [], "\n".join(mypy_run["_raw"])


@pytest.mark.parametrize("tag", sorted(EXPECTED_REVEALS))
def test_revealed_types(mypy_run: dict[str, list[str]], tag: str) -> None:
    source = textwrap.dedent(GOOD).splitlines()
    lineno = next(i for i, text in enumerate(source, 1) if text.endswith(f"# {tag}"))
    notes = [line for line in mypy_run["good"] if f":{lineno}: note: Revealed type is " in line]
    assert len(notes) == 1, "\n".join(mypy_run["_raw"])
    revealed = notes[0].split("Revealed type is ", 1)[1].strip('"')
    # mypy may print builtins unqualified ("int | None") or qualified ("builtins.int | None").
    assert revealed.replace("builtins.", "") == EXPECTED_REVEALS[tag].replace("builtins.", "")


@pytest.mark.parametrize("name", sorted(BAD))
def test_misuse_is_an_error(mypy_run: dict[str, list[str]], name: str) -> None:
    errors = [line for line in mypy_run[name] if ": error:" in line]
    assert errors, f"mypy accepted {BAD[name][0]!r}:\n" + "\n".join(mypy_run["_raw"])
    assert any(re.search(BAD[name][1], line) for line in errors), "\n".join(errors)


# -- at runtime ---------------------------------------------------------------------

GENERIC_CLASSES = [SyncMap, LockedMap, ShardedMap, CopyOnWriteMap, WeakValueMap, Cache]


@pytest.mark.parametrize("cls", GENERIC_CLASSES, ids=lambda c: c.__name__)
def test_subscripting_works_at_runtime(cls: type) -> None:
    alias = cls[str, int]  # type: ignore[index]
    assert typing.get_origin(alias) is cls
    assert typing.get_args(alias) == (str, int)


def test_runtime_evaluated_annotations() -> None:
    namespace: dict[str, object] = {}
    # No `from __future__ import annotations` here: the annotations are evaluated at def time.
    exec(
        "from mapsafe import SyncMap, Cache\n"
        "def f(m: SyncMap[str, int], c: Cache[str, bytes]) -> SyncMap[str, int]:\n"
        "    return m\n",
        namespace,
    )
    hints = typing.get_type_hints(namespace["f"])  # type: ignore[arg-type]
    assert typing.get_args(hints["m"]) == (str, int)
    assert typing.get_args(hints["c"]) == (str, bytes)
    m = SyncMap[str, int]()
    m["a"] = 1
    assert type(m) is SyncMap and m.get("a") == 1


@pytest.mark.parametrize("make", [
    SyncMap, lambda: SyncMap(stats=True), LockedMap, ShardedMap, lambda: ShardedMap(maxsize=8),
    CopyOnWriteMap, WeakValueMap, Cache,
], ids=["SyncMap", "SyncMap-stats", "LockedMap", "ShardedMap", "ShardedMap-cache", "CopyOnWriteMap",
        "WeakValueMap", "Cache"])
def test_instances_keep_their_slots(make: typing.Callable[[], object]) -> None:
    # Being generic adds nothing to the instances: no __dict__, and typing's
    # Generic is not in the MRO of the maps' classes (nor Cache's).
    obj = make()
    assert not hasattr(obj, "__dict__")
    assert typing.Generic not in type(obj).__mro__


def test_cache_mro_is_unchanged() -> None:
    from mapsafe._core import CacheCore

    assert Cache.__mro__ == (Cache, CacheCore, object)


# -- the package itself -------------------------------------------------------------


def test_the_package_is_strict_clean(tmp_path: Path) -> None:
    # `mypy` with pyproject.toml's settings, as a contributor runs it: strict, for 3.11.
    # The lint and the race detector are still excluded there (ignore_errors); nothing else is.
    stdout, stderr, status = mypy_api.run(["--config-file", str(ROOT / "pyproject.toml"),
                                           "--cache-dir", str(tmp_path / "cache"),
                                           str(ROOT / "src" / "mapsafe")])
    assert status == 0, stdout + stderr
    assert stdout.startswith("Success: no issues found"), stdout
