"""Vector clocks and epochs: the happens-before arithmetic, free of threading."""

from __future__ import annotations

__all__ = ["VectorClock", "join_into", "happens_before"]

# A vector clock is a plain dict {thread id: clock}; a missing entry means 0.
# Plain dicts keep the hot path cheap (one .get per comparison). The detector
# only ever touches them with its own lock held, so nothing here needs to be
# atomic.
VectorClock = dict


def join_into(target: dict, source: dict) -> None:
    """Pointwise maximum: ``target := target ⊔ source`` (acquire semantics)."""
    get = target.get
    for tid, clk in source.items():
        if clk > get(tid, 0):
            target[tid] = clk


def happens_before(tid: int, clk: int, vc: dict) -> bool:
    """True when the epoch ``clk@tid`` is ordered before the holder of ``vc``."""
    return clk <= vc.get(tid, 0)
