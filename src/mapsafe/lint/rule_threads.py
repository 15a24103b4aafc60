"""MS201-MS204: unprotected writes, iteration and check-then-act on dicts shared between threads, and mixed locks."""

from __future__ import annotations

from typing import Iterator, Sequence

from .context import FileContext
from .locks import UNKNOWN, display
from .messages import CheckThenAct, Finding, InconsistentLocking, UnprotectedSharedIteration, UnprotectedSharedWrite
from .program import Program
from .threads import CALLER, DEFAULT_MAX_DEPTH, Access, ThreadModel

__all__ = ["CODES", "check"]

CODES = ("MS201", "MS202", "MS203", "MS204")


def check(program: Program, contexts: dict[int, FileContext], max_depth: int = DEFAULT_MAX_DEPTH,
          thread_entries: Sequence[str] = (), unknown: list[str] | None = None) -> Iterator[Finding]:
    """Findings over the whole program; ``contexts`` maps each module's scope id to its file.

    ``unknown`` receives the ``thread_entries`` names that match nothing.
    """
    if not program.maybe_threads and not thread_entries:
        return  # precision: a program that starts no threads gets no MS2xx finding
    model = ThreadModel(program, max_depth, thread_entries)
    if unknown is not None:
        unknown.extend(model.unknown_entries)
    if not model.entries:
        return

    def place(kind, access: Access, *args: object) -> Finding:
        ctx = contexts[program.index_of(access.scope).module.id]
        finding = ctx.finding(kind, access.node, *args)
        mine = model.thread_contexts(access)
        if mine:
            finding.trace = tuple(model.trace(access, mine[0]))
        return finding

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
            here = model.path_of(access.scope)
            if access.kind == "compound":
                other = _first_conflict(model, access, [w for w in writes if w.breaks(access)])
                if other is not None:
                    yield place(CheckThenAct, access, access.pattern, name,
                                _because(model, access, other, "writes"), access.fix)
                    continue
            if access.kind in ("write", "compound"):  # a compound with no rival writer is a plain write
                mine = model.thread_contexts(access)
                if not mine:
                    continue
                # One dict read or write is atomic (on free-threaded builds too), so a rival
                # that only reads or writes single keys, or clears, is never broken by this
                # write: every interleaving of two single operations is some serial order.
                # What a write can break is another thread's iteration (RuntimeError, skipped
                # keys) or its check-then-act and read-modify-write (a lost update).
                rivals = [a for a in accesses if _harms(access, a)]
                if access.idempotent:  # two memo stores of one key, or two adds, cannot harm each other
                    rivals = [a for a in rivals if not a.idempotent]
                other = _first_conflict(model, access, rivals, mine)
                if other is not None:
                    entry = model.entries[mine[0] - 1]
                    yield place(UnprotectedSharedWrite, access, name, entry.describe(here),
                                _because(model, access, other, "uses"))
            elif access.kind == "iter":
                other = _first_conflict(model, access, writes)
                if other is not None:
                    yield place(UnprotectedSharedIteration, access, name, _because(model, access, other, "writes"))
        yield from _mixed_locks(model, accesses, place)


def _mixed_locks(model: ThreadModel, accesses: list[Access], place) -> Iterator[Finding]:
    """MS204: guarded uses of one map, in threads that can overlap, that share no lock.

    Only locks whose identity is known on both sides count (``self._lock`` of a known class,
    a module's lock, a local): two spellings the linter cannot resolve may be one lock.
    """
    guarded = [(a, model.locks_at(a)) for a in accesses if model.locks_at(a)]
    known = [(a, locks) for a, locks in guarded if all(key[0] not in (UNKNOWN, CALLER) for key in locks)]
    reported: set[int] = set()
    for i, (a, a_locks) in enumerate(known):
        for b, b_locks in known[i + 1:]:
            if a_locks & b_locks or id(b) in reported or not (_harms(a, b) or _harms(b, a)):
                continue  # a shared lock, or nothing either side does can break the other's
            if model.conflict(a, b) or model.conflict(b, a):
                reported.add(id(b))
                there = model.path_of(a.scope)
                where = f"line {a.line}" if there == model.path_of(b.scope) else f"{there}:{a.line}"
                yield place(InconsistentLocking, b, b.target.display, _names(b_locks), _names(a_locks), where)


def _harms(writer: Access, other: Access) -> bool:
    """Can ``writer`` break ``other`` when they overlap: a write against a walk, or against a
    check-then-act it can break? (Single reads and writes are atomic, as for MS201.)"""
    if writer.kind not in ("write", "compound"):
        return False
    return other.kind == "iter" or (other.kind == "compound" and writer.breaks(other))


def _names(locks: frozenset) -> str:
    return " and ".join(sorted(display(key) for key in locks))


def _first_conflict(model: ThreadModel, access: Access, others: list[Access],
                    contexts: list[int] | None = None) -> Access | None:
    # Prefer a different site to name in the message; fall back to the access itself
    # (the same code running in several threads at once).
    self_conflict = None
    for other in others:
        if model.conflict(access, other, contexts):
            if _same_site(model, access, other):
                self_conflict = self_conflict or other
                continue
            return other
    return self_conflict


def _because(model: ThreadModel, access: Access, other: Access, verb: str) -> str:
    if _same_site(model, access, other):
        return "the same code runs in several threads at once"
    there = model.path_of(other.scope)
    where = f"line {other.line}" if there == model.path_of(access.scope) else f"{there}:{other.line}"
    return f"another thread {verb} it at {where}"


def _same_site(model: ThreadModel, a: Access, b: Access) -> bool:
    return a is b or (a.line == b.line and model.path_of(a.scope) == model.path_of(b.scope))
