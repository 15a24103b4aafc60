"""Owner records: one access of a map's owner thread, packed into one int.

While a single thread uses a map (shadow.Shadow, "one thread's map"), its
accesses are kept as these ints, one per key, not as Access objects: a map
one thread fills then costs one dict entry per key and no object the cyclic
GC must walk. An int holds the access's clock, op and stack:
clk << 26 | stack index << 10 | op index.

Ops and stacks get indexes in OPS and STACKS, first come first served, for
good (the list keeps each stack alive, so an id in STACK_INDEX is that
stack's). Past their bounds they share index 0: the op "access" and the
empty stack, so a report then shows no frames for that access, never wrong
ones. The tables are read with single list and dict operations and added to
under _LOCK. The C core (_racecore.c) packs the same way, reading OP_INDEX
and STACK_INDEX and leaving new ops and stacks to pack() here.
"""

from __future__ import annotations

import _thread
from typing import Any

__all__ = ["OP_BITS", "STACK_BITS", "OPS", "OP_INDEX", "STACKS", "STACK_INDEX", "pack", "clock_of", "unpack"]

OP_BITS = 10
STACK_BITS = 16
CLOCK_SHIFT = OP_BITS + STACK_BITS
OPS: list = ["access"]
OP_INDEX: dict = {"access": 0}
STACKS: list = [()]
STACK_INDEX: dict = {id(STACKS[0]): 0}
_LOCK = _thread.allocate_lock()


def _index(table: list, index: dict, key: Any, obj: Any, bits: int) -> int:
    i = index.get(key)
    if i is None:
        with _LOCK:  # new: rare (ops are the rewriter's constants, stacks are interned)
            i = index.get(key)
            if i is None:
                if len(table) >= 1 << bits:
                    return 0
                i = len(table)
                table.append(obj)
                index[key] = i
    return i


def pack(clk: int, op: str, stack: tuple) -> int:
    """The record of an access at epoch ``clk``: its op and its (interned) stack."""
    op_i = _index(OPS, OP_INDEX, op, op, OP_BITS)
    return clk << CLOCK_SHIFT | _index(STACKS, STACK_INDEX, id(stack), stack, STACK_BITS) << OP_BITS | op_i


def clock_of(packed: int) -> int:
    return packed >> CLOCK_SHIFT


def unpack(packed: int) -> tuple:
    """(clock, op, stack) of a record."""
    return (packed >> CLOCK_SHIFT, OPS[packed & ((1 << OP_BITS) - 1)],
            STACKS[packed >> OP_BITS & ((1 << STACK_BITS) - 1)])
