"""The workloads: what each models, its per-thread loop and its correctness check."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Callable

from .impls import Adapter

__all__ = ["Workload", "Plan", "Tally", "WORKLOADS", "by_name", "SWEEP_RATIOS", "M", "PREFILL"]

# Values are key * M + tag, so any loaded value names the key it was stored
# for: a value v loaded for key k with v // M != k was never stored for k.
M = 1024
# Tag of values written before the timed phase; thread tags are < PREFILL.
# M - 1, spelled as a literal: the workers read it per operation, and on
# free-threaded CPython a constant of the module's code is immortal (no
# reference counting), while a computed int is one object whose count every
# worker would write.
PREFILL = 1023
SAMPLE_EVERY = 32  # time one operation in this many for the latency percentiles
SEQ_LEN = 4096  # length of each thread's pre-generated, cycled operation sequence
SWEEP_RATIOS = (0.5, 0.8, 0.95, 0.99)  # read fractions of the read_ratio sweep


@dataclass
class Tally:
    """What one thread saw; written only by that thread, read after it joined."""

    ops: int = 0  # operations completed in the timed phase
    bad: int = 0  # operations whose result failed the check
    first_bad: str = ""
    errors: int = 0  # exceptions raised by the implementation
    first_error: str = ""
    latencies: list[int] = field(default_factory=list)  # sampled single-op times, ns
    seen: list[tuple[Any, Any]] = field(default_factory=list)  # load_or_store results to cross-check

    def fail(self, message: str) -> None:
        self.bad += 1
        if not self.first_bad:
            self.first_bad = message

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = f"{type(exc).__name__}: {exc}"


@dataclass
class Plan:
    """A workload's pre-generated, implementation-independent operations.

    The same plan is run on every implementation, so they all see the same
    operation sequences; the same seed gives the same plan.
    """

    keys: int
    threads: int
    param: float | None
    seqs: list[list[int]]  # per thread: keys, SEQ_LEN long plus SAMPLE_EVERY of wrap-around
    reads: list[list[bool]]  # per thread: True where the operation reads, parallel to seqs
    prefill: dict[int, int]  # written before the timed phase


def _rng(seed: int, name: str, param: float | None, threads: int, tid: int) -> random.Random:
    # String seeds hash through SHA-512: stable across runs and PYTHONHASHSEED.
    return random.Random(f"{seed}/{name}/{param}/{threads}/{tid}")


def _wrap(seq: list) -> list:
    return seq + seq[:SAMPLE_EVERY]


def drive(chunk: Callable[[int, int], None], tally: Tally, stop: list[bool]) -> None:
    """Run ``chunk`` over the cycled sequence until ``stop[0]``; time one op in SAMPLE_EVERY.

    ``stop[0]`` is read with one list operation (atomic); it only ever goes
    from False to True, so a stale read costs at most one more chunk. The
    first chunk always runs: on a loaded machine a thread may be scheduled
    only after a short round has ended, and a round must measure something.
    """
    lat = tally.latencies
    n = SAMPLE_EVERY - 1
    # Timing chunk(i, 1) also times the call and the slice around the one
    # operation; the median of timing empty chunks is subtracted for that.
    empty = []
    for _ in range(63):
        t0 = perf_counter_ns()
        chunk(0, 0)
        empty.append(perf_counter_ns() - t0)
    overhead = sorted(empty)[31]
    i = ops = 0
    while True:
        try:
            chunk(i, n)
            t0 = perf_counter_ns()
            chunk(i + n, 1)
            lat.append(max(0, perf_counter_ns() - t0 - overhead))
        except Exception as exc:  # an implementation failure, counted against it
            tally.error(exc)
        i += SAMPLE_EVERY
        if i >= SEQ_LEN:
            i -= SEQ_LEN
        ops += SAMPLE_EVERY
        if stop[0]:
            break
    tally.ops = ops


class Workload:
    """Base: a named workload with a plan, a thread body and a check."""

    name = ""
    fixed_work = False  # True: a round repeats a fixed job until the duration is used up

    @property
    def summary(self) -> str:
        return (type(self).__doc__ or "").strip().splitlines()[0]

    def params(self, read_ratio: float) -> list[float | None]:
        """The variants to run; most workloads have one."""
        return [None]

    def plan(self, keys: int, threads: int, param: float | None, seed: int) -> Plan:
        raise NotImplementedError

    def setup(self, ad: Adapter, plan: Plan) -> None:
        """Fill the map before the timed phase."""
        put = ad.put
        for k, v in plan.prefill.items():
            put(k, v)

    def fill(self, ad: Adapter, plan: Plan) -> None:
        """Build the map's contents without timing anything (for the memory measure)."""
        self.setup(ad, plan)

    def body(self, ad: Adapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        raise NotImplementedError

    def verify(self, ad: Adapter, plan: Plan, tallies: list[Tally]) -> list[str]:
        """Failures found after the threads joined (the per-op checks are in the tallies)."""
        return []


class _Loads(Workload):
    """Loads only; one in 64 is the rare case (a miss for hits, a hit for misses)."""

    mostly_hits = True

    def plan(self, keys, threads, param, seed):
        seqs = []
        for tid in range(threads):
            rng = _rng(seed, self.name, param, threads, tid)
            seq = []
            for j in range(SEQ_LEN):
                absent = (j % 64 == 0) == self.mostly_hits
                seq.append(rng.randrange(keys, 2 * keys) if absent else rng.randrange(keys))
            seqs.append(_wrap(seq))
        prefill = {k: k * M + PREFILL for k in range(keys)}
        return Plan(keys, threads, param, seqs, [], prefill)

    def body(self, ad, plan, tid, tally, stop):
        get, seq = ad.get, plan.seqs[tid]
        expect = [k * M + PREFILL for k in range(plan.keys)] + [None] * plan.keys

        def chunk(i, n):
            for k in seq[i:i + n]:
                v = get(k)
                if v != expect[k]:
                    tally.fail(f"load({k}) returned {v!r}, expected {expect[k]!r}")

        drive(chunk, tally, stop)


class ReadMostlyHits(_Loads):
    """Read-mostly hits (Go's LoadMostlyHits): loads of a pre-filled map, 63 in 64 find their key."""

    name = "hits"
    mostly_hits = True


class MostlyMisses(_Loads):
    """Mostly misses (Go's LoadMostlyMisses): loads of a pre-filled map, 63 in 64 find nothing."""

    name = "misses"
    mostly_hits = False


class LoadOrStoreBalanced(Workload):
    """Balanced load-or-store (Go's LoadOrStoreBalanced): half find their key, half race to store a new one.

    Every thread walks the same sequence of new keys, so threads collide on
    them: the first stores its value and every other thread must get that
    value back, which is what the check compares against the final map.
    """

    name = "load_or_store"

    def plan(self, keys, threads, param, seed):
        seqs, reads = [], []
        for tid in range(threads):
            rng = _rng(seed, self.name, param, threads, tid)
            seqs.append(_wrap([rng.randrange(keys) for _ in range(SEQ_LEN)]))
            reads.append(_wrap([j % 2 == 0 for j in range(SEQ_LEN)]))  # True: a pre-filled key
        prefill = {k: k * M + PREFILL for k in range(keys)}
        return Plan(keys, threads, param, seqs, reads, prefill)

    def body(self, ad, plan, tid, tally, stop):
        los, seq, old = ad.load_or_store, plan.seqs[tid], plan.reads[tid]
        seen = tally.seen.append
        # Every thread walks the same new keys in the same order, so they
        # collide on them: the first stores, the others must load its value.
        fresh = [plan.keys]

        def chunk(i, n):
            nxt = fresh[0]
            for k, prefilled in zip(seq[i:i + n], old[i:i + n]):
                if prefilled:
                    v = los(k, k * M + tid)
                    if v != k * M + PREFILL:
                        tally.fail(f"load_or_store({k}) returned {v!r} for a pre-filled key")
                else:
                    v = los(nxt, nxt * M + tid)
                    seen((nxt, v))
                    nxt += 1
            fresh[0] = nxt

        drive(chunk, tally, stop)

    def verify(self, ad, plan, tallies):
        final = ad.snapshot()
        lost = 0
        example = ""
        for tid, tally in enumerate(tallies):
            for k, v in tally.seen:
                if final.get(k) != v:
                    lost += 1
                    example = example or f"thread {tid} got {v!r} for key {k} but the map holds {final.get(k)!r}"
        if lost:
            return [f"{lost} load_or_store results disagree with the map ({example})"]
        return []


class DisjointKeys(Workload):
    """Disjoint key sets per thread: each reads and writes only its own keys, at --read-ratio reads.

    Models per-thread state kept in one shared map. Only the owner writes a
    key, always the same value, so every load must return exactly that.
    """

    name = "disjoint"

    def params(self, read_ratio):
        return [read_ratio]

    def plan(self, keys, threads, param, seed):
        seqs, reads = [], []
        for tid in range(threads):
            rng = _rng(seed, self.name, param, threads, tid)
            own = range(tid, keys, threads) or range(tid, tid + 1)
            seqs.append(_wrap([rng.choice(own) for _ in range(SEQ_LEN)]))
            reads.append(_wrap([rng.random() < param for _ in range(SEQ_LEN)]))
        owners = max(keys, threads)
        prefill = {k: k * M + k % threads for k in range(owners)}
        return Plan(keys, threads, param, seqs, reads, prefill)

    def body(self, ad, plan, tid, tally, stop):
        get, put, seq, rd = ad.get, ad.put, plan.seqs[tid], plan.reads[tid]

        def chunk(i, n):
            for k, is_read in zip(seq[i:i + n], rd[i:i + n]):
                if is_read:
                    v = get(k)
                    if v != k * M + tid:  # only this thread writes k, always this value
                        tally.fail(f"load({k}) returned {v!r}, expected {k * M + tid}")
                else:
                    put(k, k * M + tid)

        drive(chunk, tally, stop)

    def verify(self, ad, plan, tallies):
        final = ad.snapshot()
        if final != plan.prefill:
            wrong = sum(1 for k, v in plan.prefill.items() if final.get(k) != v) + len(final.keys() - plan.prefill)
            return [f"{wrong} keys wrong or extra after the run"]
        return []


class ReadRatio(Workload):
    """Read ratio sweep: loads and stores of shared keys at 50/80/95/99 % reads (and --read-ratio).

    The advisor reads the SyncMap / dict+Lock crossover off this sweep.
    """

    name = "read_ratio"

    def params(self, read_ratio):
        return sorted(set(SWEEP_RATIOS) | {read_ratio})

    def plan(self, keys, threads, param, seed):
        seqs, reads = [], []
        for tid in range(threads):
            rng = _rng(seed, self.name, param, threads, tid)
            seqs.append(_wrap([rng.randrange(keys) for _ in range(SEQ_LEN)]))
            reads.append(_wrap([rng.random() < param for _ in range(SEQ_LEN)]))
        prefill = {k: k * M + PREFILL for k in range(keys)}
        return Plan(keys, threads, param, seqs, reads, prefill)

    def body(self, ad, plan, tid, tally, stop):
        get, put, seq, rd = ad.get, ad.put, plan.seqs[tid], plan.reads[tid]
        tags = plan.threads

        def chunk(i, n):
            for k, is_read in zip(seq[i:i + n], rd[i:i + n]):
                if is_read:
                    v = get(k)
                    # Keys are never deleted, and every value stored for k is k*M + tag.
                    if v is None or v // M != k or (v % M >= tags and v % M != PREFILL):
                        tally.fail(f"load({k}) returned {v!r}, which was never stored for {k}")
                else:
                    put(k, k * M + tid)

        drive(chunk, tally, stop)

    def verify(self, ad, plan, tallies):
        final = ad.snapshot()
        if len(final) != plan.keys:
            return [f"map holds {len(final)} keys after the run, expected {plan.keys}"]
        return []


class Counter(Workload):
    """Counter increments: all threads increment 64 shared counters; totals must be exact.

    The maps use merge(); the idioms get-and-set under their lock (the
    unlocked dict without one, which is how it loses updates).
    """

    name = "counter"
    hot = 64  # counters shared by all threads

    def plan(self, keys, threads, param, seed):
        hot = max(1, min(keys, self.hot))
        seqs = []
        for tid in range(threads):
            rng = _rng(seed, self.name, param, threads, tid)
            seqs.append(_wrap([rng.randrange(hot) for _ in range(SEQ_LEN)]))
        return Plan(keys, threads, param, seqs, [], {})

    def body(self, ad, plan, tid, tally, stop):
        incr, seq = ad.incr, plan.seqs[tid]

        def chunk(i, n):
            for k in seq[i:i + n]:
                incr(k)

        drive(chunk, tally, stop)

    def verify(self, ad, plan, tallies):
        expected: dict[int, int] = {}
        for tid, tally in enumerate(tallies):
            if tally.errors:
                return []  # an exception mid-chunk leaves counts unknowable; the error is reported
            seq = plan.seqs[tid][:SEQ_LEN]
            whole, part = divmod(tally.ops, SEQ_LEN)
            for j, k in enumerate(seq):
                expected[k] = expected.get(k, 0) + whole + (j < part)
        final = ad.snapshot()
        want, got = sum(expected.values()), sum(final.values())
        wrong = [k for k in expected.keys() | final.keys() if final.get(k, 0) != expected.get(k, 0)]
        if wrong:
            return [f"{len(wrong)} counters wrong: {want - got} of {want} increments lost" if got <= want
                    else f"{len(wrong)} counters wrong: {got - want} increments too many (of {want})"]
        return []


class IterateWhileWriting(Workload):
    """Iteration while writing: one thread iterates the map while the others insert and delete.

    ops = entries visited + writes. Iteration must not raise, and every entry
    it yields must hold a value stored for that key. With one thread, it
    alternates a full iteration and 256 writes (and no latency is sampled).
    """

    name = "iterate"
    solo_writes = 256  # with one thread: writes between two iterations

    def plan(self, keys, threads, param, seed):
        seqs, reads = [], []
        for tid in range(threads):
            rng = _rng(seed, self.name, param, threads, tid)
            seqs.append(_wrap([rng.randrange(keys // 2, keys + keys // 2) for _ in range(SEQ_LEN)]))
            reads.append(_wrap([rng.random() < 0.5 for _ in range(SEQ_LEN)]))  # True: delete
        prefill = {k: k * M + PREFILL for k in range(keys)}
        return Plan(keys, threads, param, seqs, reads, prefill)

    def body(self, ad, plan, tid, tally, stop):
        put, delete, iterate = ad.put, ad.delete, ad.iterate
        seq, dels = plan.seqs[tid], plan.reads[tid]

        def writes(i, n):
            for k, is_delete in zip(seq[i:i + n], dels[i:i + n]):
                if is_delete:
                    delete(k)
                else:
                    put(k, k * M + tid)

        if tid > 0:
            drive(writes, tally, stop)
            return
        visited = [0]

        def visit(k, v):
            visited[0] += 1
            if v // M != k:
                tally.fail(f"iteration yielded {k!r}: {v!r}, which was never stored for it")
            return True

        i = written = 0
        while True:  # at least one iteration, as in drive()
            try:
                iterate(visit)
                if plan.threads == 1:
                    writes(i, self.solo_writes)
                    written += self.solo_writes
                    i = (i + self.solo_writes) % SEQ_LEN
            except Exception as exc:  # e.g. "dictionary changed size during iteration"
                tally.error(exc)
            if stop[0]:
                break
        tally.ops = visited[0] + written


class Growth(Workload):
    """Growth: threads insert --keys new keys into an empty map, every insert timed.

    The p99 and maximum single-insert latency show resize pauses. A round
    repeats the fill on fresh maps until --duration is used up.
    """

    name = "growth"
    fixed_work = True

    def plan(self, keys, threads, param, seed):
        # Threads insert interleaved keys, each in its own seeded order, so
        # they all drive the same table through every resize.
        seqs = []
        for tid in range(threads):
            own = list(range(tid, keys, threads))
            _rng(seed, self.name, param, threads, tid).shuffle(own)
            seqs.append(own)
        return Plan(keys, threads, param, seqs, [], {})

    def setup(self, ad, plan):
        pass  # growth starts from an empty map

    def fill(self, ad, plan):
        put = ad.put
        for tid, seq in enumerate(plan.seqs):
            for k in seq:
                put(k, k * M + tid)

    def body(self, ad, plan, tid, tally, stop):
        put, lat = ad.put, tally.latencies
        seq = plan.seqs[tid]
        done = 0
        empty = []
        for _ in range(63):
            t0 = perf_counter_ns()
            empty.append(perf_counter_ns() - t0)
        overhead = sorted(empty)[31]  # the cost of the timer itself, subtracted
        for start in range(0, len(seq), 256):
            if stop[0]:
                break
            for k in seq[start:start + 256]:
                t0 = perf_counter_ns()
                put(k, k * M + tid)
                lat.append(max(0, perf_counter_ns() - t0 - overhead))
            done += len(seq[start:start + 256])
        tally.ops += done

    def verify(self, ad, plan, tallies):
        if any(t.errors for t in tallies) or sum(t.ops for t in tallies) != plan.keys:
            return []  # interrupted or failed mid-way: nothing to compare against
        final = ad.snapshot()
        expected = {k: k * M + k % plan.threads for k in range(plan.keys)}
        if final != expected:
            missing = len(expected.keys() - final.keys())
            wrong = sum(1 for k, v in final.items() if expected.get(k) != v)
            return [f"after inserting {plan.keys} keys: {missing} missing, {wrong} wrong"]
        return []


WORKLOADS: tuple[Workload, ...] = (
    ReadMostlyHits(),
    MostlyMisses(),
    LoadOrStoreBalanced(),
    DisjointKeys(),
    ReadRatio(),
    Counter(),
    IterateWhileWriting(),
    Growth(),
)


def by_name() -> dict[str, Workload]:
    return {w.name: w for w in WORKLOADS}
