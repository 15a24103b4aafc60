"""What a race does to the program, and how to fix it: each race's consequence.

A race is two unordered accesses; the reader wants to know what can go
wrong. ``classify`` names it from the two operations (the access records
say what was written in the source: ``d[k] += v``, ``in``, ``iteration``):

========================  =====================================================
kind                      when
========================  =====================================================
``lost-update``           a read-modify-write (``d[k] += 1``, ``Counter.update``,
                          a defaultdict's inserted default) raced a write
``check-then-act``        a test (``in``, a missing ``pop``, a found ``setdefault``, an
                          ``add`` of a present element) raced a write of the key
``iteration``             iterating raced an insert or delete (RuntimeError)
``torn-read``             a whole-map read (``len``, ``copy``, ``print``...)
                          raced a write: it may see a state that never existed
``reorder``               an ``OrderedDict`` reorder raced another change
``clear``                 ``clear()`` raced any other access
``write-write``           two plain writes of one key
``read-write``            a plain read raced a write of the key
========================  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from .shadow import Access, Race

__all__ = ["Consequence", "classify"]


@dataclass(frozen=True)
class Consequence:
    kind: str  # one of the kinds above
    text: str  # one sentence: what can go wrong
    fix: str  # one sentence: what to do about it


# Operation names (shadow.Access.op) of the read half of a read-modify-write,
# and of writes that are read-modify-writes.
def _rmw(op: str) -> bool:
    return (
        "v (read)" in op
        or "read-modify-write" in op
        or "(missing: inserts)" in op
        or (op.startswith("d[k] ") and op.endswith("= v") and op != "d[k] = v")
    )


# Reads that a program makes to decide what to write.
_TESTS = ("in", "d.pop (missing)", "d.setdefault (found)", "s.add (present)", "s.update (present)",
          "s.discard (absent)",
          "s.remove (absent)", "match {k: ...}")

_ITERATIONS = ("iteration", "*unpacking")


def classify(race: Race) -> Consequence:
    cur, prev = race.current, race.previous
    what = race.map_type
    key = race.key_repr
    for a, b in ((cur, prev), (prev, cur)):
        if a.whole == "clear":
            return Consequence(
                "clear",
                f"{a.op} raced {_name(b)}: the other thread may see the {what} half cleared, or keep "
                "working on entries that are gone",
                "hold one lock around clear() and every other access, or swap in a new map instead of clearing",
            )
    for a, b in ((cur, prev), (prev, cur)):
        if a.whole and not a.write:
            if a.op in _ITERATIONS:
                if a.whole == "keys":
                    return Consequence(
                        "iteration",
                        f"iteration raced an insert or delete (key {_key(b)} by {b.op}): "
                        f"RuntimeError: {what} changed size during iteration possible, or entries skipped",
                        "iterate a snapshot taken under the writers' lock (list(d.items()) inside it), "
                        "or share a mapsafe map, whose iteration is safe",
                    )
                return Consequence(
                    "iteration",
                    f"iteration raced a write (key {_key(b)} by {b.op}): the loop may see some writes and not "
                    "others",
                    "iterate a snapshot taken under the writers' lock, or share a mapsafe map",
                )
            return Consequence(
                "torn-read",
                f"{a.op} read the whole {what} while another thread wrote key {_key(b)} ({b.op}): "
                "it may see a state that never existed",
                f"take the whole-{what} read under the lock the writers hold, or share a mapsafe map "
                "and read a snapshot of it",
            )
    if "move_to_end" in (cur.op, prev.op):
        return Consequence(
            "reorder",
            f"move_to_end() raced another change of the order ({_name(prev if cur.op == 'move_to_end' else cur)}): "
            "an LRU order kept this way can lose or repeat entries",
            "hold one lock around every access of the OrderedDict, lookups included",
        )
    reads = [a for a in (cur, prev) if not a.write]
    if any(_rmw(a.op) for a in (cur, prev)):
        return Consequence(
            "lost-update",
            f"lost update: a read-modify-write of key {key} raced a write; one thread's update can be lost",
            "make the update one atomic step: one lock around the read and the write, or a mapsafe map's "
            "merge() or compute()",
        )
    if reads and reads[0].op in _TESTS:
        return Consequence(
            "check-then-act",
            f"check-then-act: key {key} was tested ({reads[0].op}) in one thread while another wrote it "
            f"({_name(cur if cur.write else prev)}); what was decided from the test may be stale",
            "test and write in one step: setdefault(), or a mapsafe map's load_or_store() or "
            "compute_if_absent(), or one lock around the test and the write"
            if race.map_type != "set" and "set" not in race.map_type.lower()
            else "hold one lock around the test and the add (or remove), or keep the set in a mapsafe map's "
            "keys and use load_or_store()",
        )
    if not reads:
        return Consequence(
            "write-write",
            f"two unordered writes of key {key}: which value stays depends on thread timing",
            "order the writes with one lock, or give the key a single writer",
        )
    return Consequence(
        "read-write",
        f"a read of key {key} raced a write: the value read depends on thread timing",
        "read under the lock the writers hold, or hand the value over by a queue or a future",
    )


def _key(acc: Access) -> str:
    try:
        return repr(acc.key) if not acc.whole else "(all keys)"
    except Exception:
        return f"<{type(acc.key).__name__} object>"


def _name(acc: Access) -> str:
    return acc.op if acc.whole else f"{acc.op} of key {_key(acc)}"
