"""The maps' contract, one table in code: per method, its happens-before kind, atomicity, lock and user code.

The docs' Semantics table is rendered from it when the site is built
(docs/_hooks/tables.py replaces a marker, so no copy can go stale), the
race detector takes its lists of map reads and writes from it, and the
contract tests are parametrised on it. Change the table, not its copies.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Op", "OPS", "MAPS", "names", "render_markdown"]

MAPS = ("SyncMap", "LockedMap", "ShardedMap")

# What "lock" means per map, for the columns below.
_W = {"SyncMap": "write lock", "LockedMap": "mutex", "ShardedMap": "key's shard"}
_NONE = {"SyncMap": "none", "LockedMap": "mutex", "ShardedMap": "none"}


@dataclass(frozen=True)
class Op:
    """One method of the maps.

    ``kind`` is what it is for happens-before, as Go's ``sync.Map`` doc
    names per method: a ``read`` happens after the writes it observes; a
    ``write`` happens before the reads that observe it (and, like Go's
    ``Swap``, a write that returns the old value also reads it).
    ``atomic`` says whether readers can never see it half done, per map.
    ``lock`` is the lock it holds, per map. ``user_code`` names the user
    code that runs while that lock is held ("" for none beyond a key's
    ``__hash__``/``__eq__``, which every dict operation may call).
    """

    name: str
    kind: str
    atomic: tuple[bool, bool, bool]
    lock: tuple[str, str, str]
    user_code: str = ""
    maps: tuple[str, ...] = MAPS

    def atomic_in(self, map_name: str) -> bool:
        return self.atomic[MAPS.index(map_name)]

    def lock_in(self, map_name: str) -> str:
        return self.lock[MAPS.index(map_name)]


def _op(
    name: str,
    kind: str,
    lock: dict[str, str],
    user_code: str = "",
    atomic: tuple[bool, bool, bool] = (True, True, True),
    maps: tuple[str, ...] = MAPS,
) -> Op:
    return Op(name, kind, atomic, (lock[MAPS[0]], lock[MAPS[1]], lock[MAPS[2]]), user_code, maps)


_ALL = {"SyncMap": "write lock", "LockedMap": "mutex", "ShardedMap": "callback lock, then every shard"}
_CB = {"SyncMap": "write lock", "LockedMap": "mutex", "ShardedMap": "callback lock, then key's shard"}
_COPY = {"SyncMap": "none", "LockedMap": "mutex", "ShardedMap": "none (per-shard copies)"}

OPS: tuple[Op, ...] = (
    # reads
    _op("get", "read", _NONE),
    _op("load", "read", _NONE),
    _op("__getitem__", "read", _NONE),
    _op("__contains__", "read", _NONE),
    _op("__len__", "read", {**_NONE, "ShardedMap": "callback lock, then every shard"}),
    _op("approx_len", "read", {**_NONE, "SyncMap": "-", "LockedMap": "-"}, atomic=(True, True, False),
        maps=("ShardedMap",)),
    _op("snapshot", "read", {**_NONE, "ShardedMap": "callback lock, then every shard"}),
    _op("copy", "read", {**_NONE, "ShardedMap": "each shard in turn"}, atomic=(True, True, False)),
    _op("__iter__", "read", _COPY),
    _op("keys", "read", _COPY),
    _op("values", "read", _COPY),
    _op("items", "read", _COPY),
    _op("range", "read", _COPY, user_code=""),
    _op("__eq__", "read", {**_NONE, "ShardedMap": "callback lock, then every shard"}),
    _op("__repr__", "read", {**_NONE, "ShardedMap": "callback lock, then every shard"}),
    _op("reader", "read", {"SyncMap": "none", "LockedMap": "-", "ShardedMap": "-"}, maps=("SyncMap",)),
    _op("read", "read", {"SyncMap": "-", "LockedMap": "read lock", "ShardedMap": "-"},
        user_code="the with block", maps=("LockedMap",)),
    # writes
    _op("__setitem__", "write", _W),
    _op("store", "write", _W),
    _op("__delitem__", "write", _W),
    _op("delete", "write", _W),
    _op("pop", "write", _W),
    _op("popitem", "write", _W),
    _op("setdefault", "write", _W),
    _op("load_or_store", "write", _W),
    _op("load_and_delete", "write", _W),
    _op("swap", "write", _W),
    _op("compare_and_swap", "write", _W, user_code=""),
    _op("compare_and_delete", "write", _W, user_code=""),
    _op("compute", "write", _CB, user_code="the callback"),
    _op("compute_if_absent", "write", _CB, user_code="the factory"),
    _op("compute_if_present", "write", _CB, user_code="the callback"),
    _op("merge", "write", {**_CB, "ShardedMap": "key's shard (a known operator on numbers), else callback lock, then key's shard"},
        user_code="the merge function"),
    _op("add", "write", {**_CB, "ShardedMap": "key's shard (numbers), else callback lock, then key's shard"},
        user_code="`+` of a stored value that is not a number"),
    _op("update", "write", {**_W, "ShardedMap": "callback lock, then the shards it touches"},
        atomic=(True, True, False)),
    _op("__ior__", "write", {**_W, "ShardedMap": "callback lock, then the shards it touches"},
        atomic=(True, True, False)),
    _op("clear", "write", _ALL, atomic=(True, True, False)),
    _op("write", "write", {"SyncMap": "-", "LockedMap": "write lock", "ShardedMap": "-"},
        user_code="the with block", maps=("LockedMap",)),
)


def names(kind: str) -> tuple[str, ...]:
    """The method names of one happens-before kind ("read" or "write")."""
    return tuple(op.name for op in OPS if op.kind == kind)


def _cell(op: Op, map_name: str) -> str:
    if map_name not in op.maps:
        return "—"
    atomic = "atomic" if op.atomic_in(map_name) else "not atomic for readers"
    return f"{op.lock_in(map_name)}; {atomic}"


def render_markdown() -> str:
    """The contract as a Markdown table: the docs' Semantics page shows it."""
    lines = [
        "| method | happens-before | `SyncMap` | `LockedMap` | `ShardedMap` | user code under the lock |",
        "|---|---|---|---|---|---|",
    ]
    for op in OPS:
        cells = " | ".join(_cell(op, m) for m in MAPS)
        user = op.user_code or "a key's `__hash__`/`__eq__` only"
        lines.append(f"| `{op.name}` | {op.kind} | {cells} | {user} |")
    return "\n".join(lines) + "\n"
