"""A Wing–Gong linearizability checker, with Lowe's memoisation, for histories of map operations.

A history is a list of :class:`Op`: who called what, what came back, and
the clock just before the call and just after it returned. It is
linearizable if the operations can be put in one order that keeps every
real-time precedence (an op that returned before another was called comes
first) and in which a plain ``dict``, given each call in turn, returns
exactly what the map returned. The model below is that dict: for dict
methods it *is* the dict's own method, and the Go and ConcurrentHashMap
style methods are written out from their docstrings in ``mapbase.py``.

The search is Wing and Gong's (try each minimal pending call; backtrack
when a return is reached that nothing explains), with Lowe's cache of
(linearized set, model state) pairs, as in porcupine, so each such
configuration is explored once. A map of independent keys is checked one
key at a time (P-compositionality: the history is linearizable iff each
key's sub-history is); ops that read or write several keys join their keys
into one part, and ``len`` and ``snapshot`` make the whole history one part.

Limits: every op must have returned (no pending calls); values must be
hashable, since model states are cached; callbacks must be pure, since the
model calls them again.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Iterable, NamedTuple

from mapsafe import DELETE, MISSING

__all__ = [
    "Op",
    "Raised",
    "Verdict",
    "Const",
    "bump",
    "perform",
    "outcome",
    "apply_model",
    "same",
    "keys_of",
    "split_updates",
    "parts",
    "linearize",
    "check",
]


class Raised(NamedTuple):
    """The outcome of a call that raised: the exception's type."""

    type: type


class Op(NamedTuple):
    """One completed call: ``call`` and ``ret`` are clock readings taken just before and just after it."""

    thread: Any
    name: str
    args: tuple
    result: Any  # what it returned, or a Raised
    call: int
    ret: int

    def __str__(self) -> str:
        args = ", ".join(_show(a) for a in self.args)
        return f"thread {self.thread}  {self.name}({args}) -> {_show(self.result)}"


def _show(value: Any) -> str:
    if isinstance(value, Raised):
        return f"raised {value.type.__name__}"
    if callable(value) and not isinstance(value, Const):
        return getattr(value, "__name__", repr(value))
    return repr(value)


# -- callbacks: pure, so the model can call them again ---------------------------------------


class Const:
    """A compute_if_absent factory that always returns ``value``."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, key: Any) -> Any:
        return self.value

    def __repr__(self) -> str:
        return f"const({self.value!r})"


def bump(key: Any, old: Any) -> Any:
    """A compute callback: count up from 1, and remove the key (DELETE) once it reaches 3."""
    if old is MISSING:
        return 1
    return DELETE if old >= 3 else old + 1


# -- calling an op, on a map or on the model dict -----------------------------------------------

# Ops spelled as syntax; the rest are called as methods of that name.
_SYNTAX: dict[str, Callable[..., Any]] = {
    "__getitem__": operator.getitem,  # m[k]
    "__setitem__": operator.setitem,  # m[k] = v
    "__delitem__": operator.delitem,  # del m[k]
    "__contains__": operator.contains,  # k in m
    "__len__": len,  # len(m)
}


def perform(target: Any, name: str, args: tuple) -> Any:
    """Call op ``name`` on ``target`` (a map, or the model's dict) as user code would."""
    syntax = _SYNTAX.get(name)
    if syntax is not None:
        return syntax(target, *args)
    return getattr(target, name)(*args)


def outcome(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or Raised(type) if it raised."""
    try:
        return fn(*args)
    except Exception as exc:  # an outcome like any other: the model says whether it may happen
        return Raised(type(exc))


# The sequential specification of the methods a dict does not have, from
# their docstrings. Each takes the model dict and the op's arguments; the
# dict methods (get, pop, setdefault, update, m[k], del m[k], in, len) are
# the dict's own.


def _load(d: dict, key: Any) -> tuple[Any, bool]:
    return (d[key], True) if key in d else (None, False)


def _store(d: dict, key: Any, value: Any) -> None:
    d[key] = value


def _delete(d: dict, key: Any) -> None:
    d.pop(key, None)


def _load_or_store(d: dict, key: Any, value: Any) -> tuple[Any, bool]:
    if key in d:
        return d[key], True
    d[key] = value
    return value, False


def _load_and_delete(d: dict, key: Any) -> tuple[Any, bool]:
    return (d.pop(key), True) if key in d else (None, False)


def _swap(d: dict, key: Any, value: Any) -> tuple[Any, bool]:
    previous = _load(d, key)
    d[key] = value
    return previous


def _compare_and_swap(d: dict, key: Any, old: Any, new: Any) -> bool:
    if key not in d or not (d[key] == old):
        return False
    d[key] = new
    return True


def _compare_and_delete(d: dict, key: Any, old: Any) -> bool:
    if key not in d or not (d[key] == old):
        return False
    del d[key]
    return True


def _settle(d: dict, key: Any, new: Any) -> Any:
    """Store a callback's result; DELETE removes the key, and the op then returns None."""
    if new is DELETE:
        d.pop(key, None)
        return None
    d[key] = new
    return new


def _compute(d: dict, key: Any, fn: Callable[[Any, Any], Any]) -> Any:
    return _settle(d, key, fn(key, d.get(key, MISSING)))


def _compute_if_absent(d: dict, key: Any, factory: Callable[[Any], Any]) -> Any:
    if key in d:
        return d[key]
    return _settle(d, key, factory(key))


def _compute_if_present(d: dict, key: Any, fn: Callable[[Any, Any], Any]) -> Any:
    if key not in d:
        return None
    return _settle(d, key, fn(key, d[key]))


def _merge(d: dict, key: Any, value: Any, fn: Callable[[Any, Any], Any]) -> Any:
    if key not in d:
        d[key] = value
        return value
    return _settle(d, key, fn(d[key], value))


_MODEL: dict[str, Callable[..., Any]] = {
    "snapshot": dict.copy,
    "load": _load,
    "store": _store,
    "delete": _delete,
    "load_or_store": _load_or_store,
    "load_and_delete": _load_and_delete,
    "swap": _swap,
    "compare_and_swap": _compare_and_swap,
    "compare_and_delete": _compare_and_delete,
    "compute": _compute,
    "compute_if_absent": _compute_if_absent,
    "compute_if_present": _compute_if_present,
    "merge": _merge,
}


def apply_model(d: dict, name: str, args: tuple) -> Any:
    """Apply op ``name`` to the model dict ``d`` (in place); its outcome, as outcome() gives it."""
    spec = _MODEL.get(name)
    if spec is not None:
        return outcome(spec, d, *args)
    return outcome(perform, d, name, args)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type, all the way down: 0 must not pass for None or False."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


# -- which keys an op touches ----------------------------------------------------------------------

_WHOLE_MAP = frozenset({"__len__", "snapshot"})


def keys_of(op: Op) -> tuple | None:
    """The keys ``op`` reads or writes, or None for all of them."""
    if op.name in _WHOLE_MAP:
        return None
    if op.name == "update":
        keys = tuple(op.args[0])
        return keys or None  # an empty update touches nothing; checking it with everything is simplest
    return (op.args[0],)


def split_updates(history: Iterable[Op]) -> list[Op]:
    """Each completed ``update`` as one ``m[k] = v`` per pair, over the same interval.

    For a map whose ``update`` is not atomic (ShardedMap: atomic per shard
    only, and which keys share a shard is not part of its contract), this
    is what it does promise: every pair is stored, each at some instant
    between the call and the return.
    """
    out = []
    for op in history:
        if op.name == "update" and op.result is None:
            out.extend(op._replace(name="__setitem__", args=pair) for pair in dict(op.args[0]).items())
        else:
            out.append(op)
    return out


def parts(history: list[Op]) -> list[list[Op]]:
    """The history split into independently checkable parts: ops on connected sets of keys."""
    keysets = [keys_of(op) for op in history]
    if any(keys is None for keys in keysets):
        return [list(history)] if history else []
    parent: dict[Any, Any] = {}

    def find(key: Any) -> Any:
        root = parent.setdefault(key, key)
        while parent[root] != root:
            root = parent[root]
        parent[key] = root
        return root

    for keys in keysets:
        for key in keys[1:]:
            parent[find(key)] = find(keys[0])
    grouped: dict[Any, list[Op]] = {}
    for op, keys in zip(history, keysets):
        grouped.setdefault(find(keys[0]), []).append(op)
    return list(grouped.values())


# -- the search ----------------------------------------------------------------------------------


class Verdict(NamedTuple):
    """What check() found.

    ``orders`` holds one witness linearization per part when ``ok``;
    ``failing`` is, when not ``ok``, the first part that has none, in call
    order: the smallest history check() can show for the violation.
    """

    ok: bool
    orders: list[list[Op]]
    failing: list[Op]
    ops: int

    def __bool__(self) -> bool:
        return self.ok

    def explain(self) -> str:
        if self.ok:
            return f"linearizable: {self.ops} ops in {len(self.orders)} part(s)"
        t0 = min(op.call for op in self.failing)
        lines = [
            f"not linearizable: no order of these {len(self.failing)} ops (of {self.ops}) "
            "matches a dict; [call, return] are relative clock readings"
        ]
        lines.extend(f"  [{op.call - t0:>9}, {op.ret - t0:>9}]  {op}" for op in self.failing)
        return "\n".join(lines)


def _state(d: dict) -> frozenset:
    return frozenset(d.items())


def _restrict(initial: dict, ops: list[Op]) -> dict:
    """``initial`` cut down to the keys ``ops`` touch (all of it if one touches every key)."""
    keys: set = set()
    for op in ops:
        touched = keys_of(op)
        if touched is None:
            return dict(initial)
        keys.update(touched)
    return {k: v for k, v in initial.items() if k in keys}


def linearize(ops: list[Op], initial: dict) -> list[Op] | None:
    """An order of ``ops`` that a dict starting as ``initial`` explains, or None if there is none."""
    for op in ops:
        if op.ret < op.call:
            raise ValueError(f"op returned before it was called: {op}")
    n = len(ops)
    # Calls before returns at equal clock readings: such ops may have overlapped.
    events = sorted([(op.call, 0, i) for i, op in enumerate(ops)] + [(op.ret, 1, i) for i, op in enumerate(ops)])
    # The events as a doubly linked list: node 0 is the head, node j is
    # events[j - 1], and -1 ends the list. Linearizing an op lifts its call
    # and return nodes out; backtracking puts them back, in reverse order.
    size = 2 * n + 1
    nxt = list(range(1, size)) + [-1]
    prv = list(range(-1, size - 1))
    op_of = [-1] * size
    is_call = [False] * size
    ret_node = [0] * n
    for j, (_, is_return, i) in enumerate(events, 1):
        op_of[j] = i
        is_call[j] = not is_return
        if is_return:
            ret_node[i] = j

    def lift(c: int) -> None:
        r = ret_node[op_of[c]]
        nxt[prv[c]] = nxt[c]
        prv[nxt[c]] = prv[c]  # a call is always followed, at least by its own return
        nxt[prv[r]] = nxt[r]
        if nxt[r] != -1:
            prv[nxt[r]] = prv[r]

    def unlift(c: int) -> None:
        r = ret_node[op_of[c]]
        nxt[prv[r]] = r
        if nxt[r] != -1:
            prv[nxt[r]] = r
        nxt[prv[c]] = c
        prv[nxt[c]] = c

    steps: dict[tuple[frozenset, int], frozenset | None] = {}  # (state, op) -> state after, None if refused

    def step(state: frozenset, i: int) -> frozenset | None:
        key = (state, i)
        if key not in steps:
            d = dict(state)
            op = ops[i]
            steps[key] = _state(d) if same(apply_model(d, op.name, op.args), op.result) else None
        return steps[key]

    state = _state(initial)
    linearized = 0  # bit i set: ops[i] is in the order being built
    seen: set[tuple[int, frozenset]] = set()  # Lowe's cache: configurations already explored
    stack: list[tuple[int, frozenset]] = []  # (call node, state before it), in linearization order
    node = nxt[0]
    while nxt[0] != -1:
        if is_call[node]:
            i = op_of[node]
            after = step(state, i)
            if after is not None:
                bits = linearized | (1 << i)
                if (bits, after) not in seen:
                    seen.add((bits, after))
                    stack.append((node, state))
                    state, linearized = after, bits
                    lift(node)
                    node = nxt[0]
                    continue
            node = nxt[node]
        else:
            # A return whose call nothing linearized so far can precede: undo the last choice.
            if not stack:
                return None
            node, state = stack.pop()
            linearized &= ~(1 << op_of[node])
            unlift(node)
            node = nxt[node]
    return [ops[op_of[c]] for c, _ in stack]


def check(history: Iterable[Op], initial: dict | None = None, *, partition: bool = True) -> Verdict:
    """Is ``history``, run on a map that started as ``initial``, linearizable against a dict?

    With ``partition`` (the default) each independent part is searched on
    its own, which is equivalent and much faster.
    """
    history = list(history)
    initial = dict(initial or {})
    groups = parts(history) if partition else ([history] if history else [])
    orders = []
    for group in groups:
        order = linearize(group, _restrict(initial, group))
        if order is None:
            return Verdict(False, orders, sorted(group, key=operator.attrgetter("call")), len(history))
        orders.append(order)
    return Verdict(True, orders, [], len(history))
