"""MS201, MS202, MS203: unprotected writes, iteration and check-then-act on dicts shared between threads."""

from __future__ import annotations

from typing import Iterator

from .context import FileContext
from .messages import CheckThenAct, Finding, UnprotectedSharedIteration, UnprotectedSharedWrite
from .scopes import Index
from .threads import Access, ThreadModel

__all__ = ["CODES", "check"]

CODES = ("MS201", "MS202", "MS203")


def check(index: Index, ctx: FileContext) -> Iterator[Finding]:
    if not index.maybe_threads and not ctx.incoming:
        return  # precision: a module that starts no threads gets no MS2xx finding
    model = ThreadModel(index, ctx.incoming)
    ctx.outgoing.extend(model.outgoing)
    if not model.entries:
        return
    for accesses in model.by_target().values():
        # The write half of a check-then-act is represented by the compound access itself.
        accesses = [a for a in accesses if not a.in_compound]
        writes = [a for a in accesses if a.kind in ("write", "compound")]
        if not writes or not any(model.thread_contexts(a) for a in accesses):
            continue  # only read, or never touched by thread code
        for access in accesses:
            if model.is_protected(access):
                continue
            name = access.target.display
            if access.kind == "compound":
                other = _first_conflict(model, access, writes)
                if other is not None:
                    yield ctx.finding(CheckThenAct, access.node, access.pattern, name,
                                      _because(access, other, "writes"), access.fix)
                    continue
            if access.kind in ("write", "compound"):  # a compound with no rival writer is a plain write
                mine = model.thread_contexts(access)
                if not mine:
                    continue
                other = _first_conflict(model, access, accesses, mine)
                if other is not None:
                    entry = model.entries[mine[0] - 1]
                    yield ctx.finding(UnprotectedSharedWrite, access.node, name, entry.describe(),
                                      _because(access, other, "uses"))
            elif access.kind == "iter":
                other = _first_conflict(model, access, writes)
                if other is not None:
                    yield ctx.finding(UnprotectedSharedIteration, access.node, name,
                                      _because(access, other, "writes"))


def _first_conflict(model: ThreadModel, access: Access, others: list[Access],
                    contexts: list[int] | None = None) -> Access | None:
    # Prefer a different site to name in the message; fall back to the access itself
    # (the same code running in several threads at once).
    self_conflict = None
    for other in others:
        if model.conflict(access, other, contexts):
            if other is access or other.line == access.line:
                self_conflict = self_conflict or other
                continue
            return other
    return self_conflict


def _because(access: Access, other: Access, verb: str) -> str:
    if other is access or other.line == access.line:
        return "the same code runs in several threads at once"
    return f"another thread {verb} it at line {other.line}"
