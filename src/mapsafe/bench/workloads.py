"""The workloads: what each models, its per-thread loop and its correctness check."""

from __future__ import annotations

import dataclasses
import gc
import random
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from itertools import accumulate
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

from .impls import BASELINE, LRU, RAW_REDIS, Adapter, CacheAdapter, Impl

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Workload", "Plan", "Tally", "Loader", "WORKLOADS", "GROUPS", "DEFAULT", "by_name", "SWEEP_RATIOS", "M",
           "PREFILL", "cache_value", "zipf_trace", "loopscan_trace"]

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

# What a workload's rounds run on: a map (Adapter, map and redis workloads) or a cache (CacheAdapter).
AdT = TypeVar("AdT", Adapter, CacheAdapter)
_T = TypeVar("_T")


@dataclass
class Tally:
    """What one thread saw; written only by that thread, read after it joined."""

    ops: int = 0  # operations completed in the timed phase
    bad: int = 0  # operations whose result failed the check
    first_bad: str = ""
    errors: int = 0  # exceptions raised by the implementation
    first_error: str = ""
    latencies: list[int] = field(default_factory=list)  # sampled single-op times, ns
    seen: list[tuple[int, int]] = field(default_factory=list)  # load_or_store results to cross-check
    measured: float | None = None  # what a one-shot workload's thread measured itself (bytes)

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
    prefill: dict[int, int]  # written before the timed phase (cache workloads: loaded)
    maxsize: int | None = None  # cache workloads: the bound every cache is built with


def _rng(seed: int, name: str, param: float | None, threads: int, tid: int) -> random.Random:
    # String seeds hash through SHA-512: stable across runs and PYTHONHASHSEED.
    return random.Random(f"{seed}/{name}/{param}/{threads}/{tid}")


def _wrap(seq: list[_T]) -> list[_T]:
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


def _timer_overhead() -> int:
    """The median cost of reading perf_counter_ns twice: subtracted from every operation timed alone."""
    empty = []
    for _ in range(63):
        t0 = perf_counter_ns()
        empty.append(perf_counter_ns() - t0)
    return sorted(empty)[31]


def drive_each(op: Callable[[int], None], tally: Tally, stop: list[bool]) -> None:
    """Call ``op(i)``, ``i`` cycling over the sequence, until ``stop[0]``; ``op`` times its own operation.

    For operations slow enough (a network round trip) that timing every
    one costs little: the percentiles then come from all of them. As in
    drive(), the first call always runs.
    """
    i = ops = 0
    while True:
        try:
            op(i)
        except Exception as exc:  # an implementation failure, counted against it
            tally.error(exc)
        ops += 1
        i = i + 1 if i + 1 < SEQ_LEN else 0
        if stop[0]:
            break
    tally.ops = ops


class Workload(Generic[AdT]):
    """Base: a named workload with a plan, a thread body and a check, on a map or a cache (``AdT``)."""

    name = ""
    kind = "map"  # "map": runs Impl.build's maps; "cache": Impl.cache's caches
    unit = "ops/s"  # what a round's number is, one of results.UNITS
    versus = BASELINE  # the implementation the tables' ratio column divides by; "" for none
    fixed_work = False  # True: a round repeats a fixed job until the duration is used up
    once = False  # True: a round runs its job once, ignoring the duration, and score() rates it
    tracks_memory = True  # False: no peak-memory measure (it would only measure the harness)
    advised = True  # False: the advisor recommends nothing for it (it measures a cost, not a choice)

    @property
    def summary(self) -> str:
        return (type(self).__doc__ or "").strip().splitlines()[0]

    def params(self, read_ratio: float) -> Sequence[float | None]:
        """The variants to run; most workloads have one."""
        return [None]

    def accepts(self, impl: Impl) -> bool:
        """Whether ``impl`` runs this workload: it has this kind, and does not limit itself to others."""
        builder = impl.cache if self.kind == "cache" else impl.build
        return builder is not None and (not impl.workloads or self.name in impl.workloads)

    def thread_counts(self, threads: list[int]) -> list[int]:
        """The thread counts to run, from --threads; single-threaded workloads override it."""
        return threads

    def round_count(self, rounds: int) -> int:
        """Rounds per cell, from --rounds; deterministic workloads need one."""
        return rounds

    def detail(self, keys: int) -> str:
        """What the table's numbers are, at --keys ``keys``; shown under its title."""
        return ""

    def plan(self, keys: int, threads: int, param: float | None, seed: int) -> Plan:
        raise NotImplementedError

    def build(self, impl: Impl, plan: Plan) -> AdT:
        """A fresh, empty map (or cache) of ``impl`` for one round."""
        raise NotImplementedError

    def setup(self, ad: AdT, plan: Plan) -> None:
        """Fill the map (or warm the cache) before the timed phase."""
        raise NotImplementedError

    def fill(self, ad: AdT, plan: Plan) -> None:
        """Build the map's contents without timing anything (for the memory measure)."""
        self.setup(ad, plan)

    def body(self, ad: AdT, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        raise NotImplementedError

    def verify(self, ad: AdT, plan: Plan, tallies: list[Tally]) -> list[str]:
        """Failures found after the threads joined (the per-op checks are in the tallies)."""
        return []

    def score(self, ad: AdT, plan: Plan, tallies: list[Tally], elapsed: float) -> float:
        """A round's number, in ``unit``: here operations per second."""
        return sum(t.ops for t in tallies) / elapsed


class _MapWorkload(Workload[Adapter]):
    """Base of the map workloads: a fresh map of ``impl.build`` per round, filled with ``plan.prefill``."""

    def build(self, impl: Impl, plan: Plan) -> Adapter:
        """A fresh, empty map of ``impl`` for one round."""
        assert impl.build is not None  # accepts() runs only implementations that build maps
        return impl.build()

    def setup(self, ad: Adapter, plan: Plan) -> None:
        """Fill the map before the timed phase."""
        put = ad.put
        for k, v in plan.prefill.items():
            put(k, v)


class _Loads(_MapWorkload):
    """Loads only; one in 64 is the rare case (a miss for hits, a hit for misses)."""

    mostly_hits = True

    def plan(self, keys: int, threads: int, param: float | None, seed: int) -> Plan:
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

    def body(self, ad: Adapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        get, seq = ad.get, plan.seqs[tid]
        expect = [k * M + PREFILL for k in range(plan.keys)] + [None] * plan.keys

        def chunk(i: int, n: int) -> None:
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


class LoadOrStoreBalanced(_MapWorkload):
    """Balanced load-or-store (Go's LoadOrStoreBalanced): half find their key, half race to store a new one.

    Every thread walks the same sequence of new keys, so threads collide on
    them: the first stores its value and every other thread must get that
    value back, which is what the check compares against the final map.
    """

    name = "load_or_store"

    def plan(self, keys: int, threads: int, param: float | None, seed: int) -> Plan:
        seqs, reads = [], []
        for tid in range(threads):
            rng = _rng(seed, self.name, param, threads, tid)
            seqs.append(_wrap([rng.randrange(keys) for _ in range(SEQ_LEN)]))
            reads.append(_wrap([j % 2 == 0 for j in range(SEQ_LEN)]))  # True: a pre-filled key
        prefill = {k: k * M + PREFILL for k in range(keys)}
        return Plan(keys, threads, param, seqs, reads, prefill)

    def body(self, ad: Adapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        los, seq, old = ad.load_or_store, plan.seqs[tid], plan.reads[tid]
        seen = tally.seen.append
        # Every thread walks the same new keys in the same order, so they
        # collide on them: the first stores, the others must load its value.
        fresh = [plan.keys]

        def chunk(i: int, n: int) -> None:
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

    def verify(self, ad: Adapter, plan: Plan, tallies: list[Tally]) -> list[str]:
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


class DisjointKeys(_MapWorkload):
    """Disjoint key sets per thread: each reads and writes only its own keys, at --read-ratio reads.

    Models per-thread state kept in one shared map. Only the owner writes a
    key, always the same value, so every load must return exactly that.
    """

    name = "disjoint"

    def params(self, read_ratio: float) -> list[float]:
        return [read_ratio]

    def plan(self, keys: int, threads: int, param: float | None, seed: int) -> Plan:
        assert param is not None  # params() gives every variant its read ratio
        seqs, reads = [], []
        for tid in range(threads):
            rng = _rng(seed, self.name, param, threads, tid)
            own = range(tid, keys, threads) or range(tid, tid + 1)
            seqs.append(_wrap([rng.choice(own) for _ in range(SEQ_LEN)]))
            reads.append(_wrap([rng.random() < param for _ in range(SEQ_LEN)]))
        owners = max(keys, threads)
        prefill = {k: k * M + k % threads for k in range(owners)}
        return Plan(keys, threads, param, seqs, reads, prefill)

    def body(self, ad: Adapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        get, put, seq, rd = ad.get, ad.put, plan.seqs[tid], plan.reads[tid]

        def chunk(i: int, n: int) -> None:
            for k, is_read in zip(seq[i:i + n], rd[i:i + n]):
                if is_read:
                    v = get(k)
                    if v != k * M + tid:  # only this thread writes k, always this value
                        tally.fail(f"load({k}) returned {v!r}, expected {k * M + tid}")
                else:
                    put(k, k * M + tid)

        drive(chunk, tally, stop)

    def verify(self, ad: Adapter, plan: Plan, tallies: list[Tally]) -> list[str]:
        final = ad.snapshot()
        if final != plan.prefill:
            wrong = sum(1 for k, v in plan.prefill.items() if final.get(k) != v) + len(final.keys() - plan.prefill)
            return [f"{wrong} keys wrong or extra after the run"]
        return []


class ReadRatio(_MapWorkload):
    """Read ratio sweep: loads and stores of shared keys at 50/80/95/99 % reads (and --read-ratio).

    The advisor reads the SyncMap / dict+Lock crossover off this sweep.
    """

    name = "read_ratio"

    def params(self, read_ratio: float) -> list[float]:
        return sorted(set(SWEEP_RATIOS) | {read_ratio})

    def plan(self, keys: int, threads: int, param: float | None, seed: int) -> Plan:
        assert param is not None  # params() gives every variant its read ratio
        seqs, reads = [], []
        for tid in range(threads):
            rng = _rng(seed, self.name, param, threads, tid)
            seqs.append(_wrap([rng.randrange(keys) for _ in range(SEQ_LEN)]))
            reads.append(_wrap([rng.random() < param for _ in range(SEQ_LEN)]))
        prefill = {k: k * M + PREFILL for k in range(keys)}
        return Plan(keys, threads, param, seqs, reads, prefill)

    def body(self, ad: Adapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        get, put, seq, rd = ad.get, ad.put, plan.seqs[tid], plan.reads[tid]
        tags = plan.threads

        def chunk(i: int, n: int) -> None:
            for k, is_read in zip(seq[i:i + n], rd[i:i + n]):
                if is_read:
                    v = get(k)
                    # Keys are never deleted, and every value stored for k is k*M + tag.
                    if v is None or v // M != k or (v % M >= tags and v % M != PREFILL):
                        tally.fail(f"load({k}) returned {v!r}, which was never stored for {k}")
                else:
                    put(k, k * M + tid)

        drive(chunk, tally, stop)

    def verify(self, ad: Adapter, plan: Plan, tallies: list[Tally]) -> list[str]:
        final = ad.snapshot()
        if len(final) != plan.keys:
            return [f"map holds {len(final)} keys after the run, expected {plan.keys}"]
        return []


class Counter(_MapWorkload):
    """Counter increments: all threads increment 64 shared counters; totals must be exact.

    The maps use merge(); the idioms get-and-set under their lock (the
    unlocked dict without one, which is how it loses updates).
    """

    name = "counter"
    hot = 64  # counters shared by all threads

    def plan(self, keys: int, threads: int, param: float | None, seed: int) -> Plan:
        hot = max(1, min(keys, self.hot))
        seqs = []
        for tid in range(threads):
            rng = _rng(seed, self.name, param, threads, tid)
            seqs.append(_wrap([rng.randrange(hot) for _ in range(SEQ_LEN)]))
        return Plan(keys, threads, param, seqs, [], {})

    def body(self, ad: Adapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        incr, seq = ad.incr, plan.seqs[tid]

        def chunk(i: int, n: int) -> None:
            for k in seq[i:i + n]:
                incr(k)

        drive(chunk, tally, stop)

    def verify(self, ad: Adapter, plan: Plan, tallies: list[Tally]) -> list[str]:
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


class IterateWhileWriting(_MapWorkload):
    """Iteration while writing: one thread iterates the map while the others insert and delete.

    ops = entries visited + writes. Iteration must not raise, and every entry
    it yields must hold a value stored for that key. With one thread, it
    alternates a full iteration and 256 writes (and no latency is sampled).
    """

    name = "iterate"
    solo_writes = 256  # with one thread: writes between two iterations

    def plan(self, keys: int, threads: int, param: float | None, seed: int) -> Plan:
        seqs, reads = [], []
        for tid in range(threads):
            rng = _rng(seed, self.name, param, threads, tid)
            seqs.append(_wrap([rng.randrange(keys // 2, keys + keys // 2) for _ in range(SEQ_LEN)]))
            reads.append(_wrap([rng.random() < 0.5 for _ in range(SEQ_LEN)]))  # True: delete
        prefill = {k: k * M + PREFILL for k in range(keys)}
        return Plan(keys, threads, param, seqs, reads, prefill)

    def body(self, ad: Adapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        put, delete, iterate = ad.put, ad.delete, ad.iterate
        seq, dels = plan.seqs[tid], plan.reads[tid]

        def writes(i: int, n: int) -> None:
            for k, is_delete in zip(seq[i:i + n], dels[i:i + n]):
                if is_delete:
                    delete(k)
                else:
                    put(k, k * M + tid)

        if tid > 0:
            drive(writes, tally, stop)
            return
        visited = [0]

        def visit(k: int, v: int) -> bool:
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


class Growth(_MapWorkload):
    """Growth: threads insert --keys new keys into an empty map, every insert timed.

    The p99 and maximum single-insert latency show resize pauses. A round
    repeats the fill on fresh maps until --duration is used up.
    """

    name = "growth"
    fixed_work = True

    def plan(self, keys: int, threads: int, param: float | None, seed: int) -> Plan:
        # Threads insert interleaved keys, each in its own seeded order, so
        # they all drive the same table through every resize.
        seqs = []
        for tid in range(threads):
            own = list(range(tid, keys, threads))
            _rng(seed, self.name, param, threads, tid).shuffle(own)
            seqs.append(own)
        return Plan(keys, threads, param, seqs, [], {})

    def setup(self, ad: Adapter, plan: Plan) -> None:
        pass  # growth starts from an empty map

    def fill(self, ad: Adapter, plan: Plan) -> None:
        put = ad.put
        for tid, seq in enumerate(plan.seqs):
            for k in seq:
                put(k, k * M + tid)

    def body(self, ad: Adapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        put, lat = ad.put, tally.latencies
        seq = plan.seqs[tid]
        done = 0
        overhead = _timer_overhead()
        for start in range(0, len(seq), 256):
            if stop[0]:
                break
            for k in seq[start:start + 256]:
                t0 = perf_counter_ns()
                put(k, k * M + tid)
                lat.append(max(0, perf_counter_ns() - t0 - overhead))
            done += len(seq[start:start + 256])
        tally.ops += done

    def verify(self, ad: Adapter, plan: Plan, tallies: list[Tally]) -> list[str]:
        if any(t.errors for t in tallies) or sum(t.ops for t in tallies) != plan.keys:
            return []  # interrupted or failed mid-way: nothing to compare against
        final = ad.snapshot()
        expected = {k: k * M + k % plan.threads for k in range(plan.keys)}
        if final != expected:
            missing = len(expected.keys() - final.keys())
            wrong = sum(1 for k, v in final.items() if expected.get(k) != v)
            return [f"after inserting {plan.keys} keys: {missing} missing, {wrong} wrong"]
        return []


# -- on a Redis server ---------------------------------------------------------


class _OnServer(_MapWorkload):
    """Base: RedisMap against plain redis-py on the --redis server, in one run, every operation timed."""

    kind = "redis"
    versus = RAW_REDIS
    tracks_memory = False  # the map's memory is the server's
    advised = False  # it measures what the API costs over the plain client; there is nothing to choose

    def accepts(self, impl: Impl) -> bool:
        return impl.server_build is not None and super().accepts(impl)

    def setup(self, ad: Adapter, plan: Plan) -> None:
        """Fill the map in a few commands, not one round trip per key."""
        put_all = getattr(ad, "put_all", None)  # a ServerAdapter's; a test's plain Adapter has none
        if put_all is None:
            super().setup(ad, plan)
        elif plan.prefill:
            put_all(plan.prefill)


class RedisReadWrite(_OnServer, ReadRatio):
    """Redis reads and writes: RedisMap get/store against redis-py HGET/HSET, at 100%, 0% and --read-ratio reads.

    The keys, operations and checks are read_ratio's, on one hash on the
    server; each round uses a new throwaway hash, removed after it.
    """

    name = "redis_rw"

    def params(self, read_ratio: float) -> list[float]:
        return sorted({0.0, read_ratio, 1.0})

    def detail(self, keys: int) -> str:
        return (f"RedisMap get/store against redis-py HGET/HSET (int(reply) on reads), one hash of {keys} int keys "
                "on the --redis server; every operation timed")

    def body(self, ad: Adapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        get, put, seq, rd = ad.get, ad.put, plan.seqs[tid], plan.reads[tid]
        lat, clock, overhead = tally.latencies.append, perf_counter_ns, _timer_overhead()
        tags = plan.threads

        def op(i: int) -> None:
            k = seq[i]
            if rd[i]:
                t0 = clock()
                v = get(k)
                lat(max(0, clock() - t0 - overhead))
                # Keys are never deleted, and every value stored for k is k*M + tag.
                if v is None or v // M != k or (v % M >= tags and v % M != PREFILL):
                    tally.fail(f"load({k}) returned {v!r}, which was never stored for {k}")
            else:
                v = k * M + tid
                t0 = clock()
                put(k, v)
                lat(max(0, clock() - t0 - overhead))

        drive_each(op, tally, stop)


class RedisCounter(_OnServer, Counter):
    """Redis counters: RedisMap.add (one EVALSHA of its increment script) against HINCRBY; totals must be exact."""

    name = "redis_counter"

    def detail(self, keys: int) -> str:
        return (f"RedisMap.add, i.e. merge(k, 1, operator.add): one EVALSHA, against redis-py HINCRBY, on "
                f"{max(1, min(keys, self.hot))} counters shared by all threads; every operation timed")

    def body(self, ad: Adapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        incr, seq = ad.incr, plan.seqs[tid]
        lat, clock, overhead = tally.latencies.append, perf_counter_ns, _timer_overhead()

        def op(i: int) -> None:
            k = seq[i]
            t0 = clock()
            incr(k)
            lat(max(0, clock() - t0 - overhead))

        drive_each(op, tally, stop)


# -- caches -------------------------------------------------------------------


def cache_value(k: int) -> int:
    """The value every cache workload's loader returns for ``k`` (checkable as the maps' values are)."""
    return k * M + PREFILL


class Loader:
    """A loader that counts its calls, exactly with any number of threads; sleeps ``delay`` s each."""

    def __init__(self, delay: float = 0.0) -> None:
        # The decorators under test wrap it as the function it stands for (mapsafe.cached names its cache after it).
        self.__name__ = self.__qualname__ = "loader"
        self.calls = 0  # loads so far, under _lock
        self._lock = threading.Lock()
        self._delay = delay

    def __call__(self, k: int) -> int:
        with self._lock:
            self.calls += 1
        if self._delay:
            time.sleep(self._delay)
        return cache_value(k)


def zipf_trace(rng: random.Random, keys: int, alpha: float, length: int) -> list[int]:
    """``length`` requests for keys 0..keys-1, key i with probability proportional to 1 / (i + 1) ** alpha."""
    cum = list(accumulate(1.0 / (i + 1) ** alpha for i in range(keys)))
    return rng.choices(range(keys), cum_weights=cum, k=length)


def loopscan_trace(rng: random.Random, hot: int, loops: int, scan: int, cycles: int) -> list[int]:
    """``cycles`` times: ``loops`` shuffled passes over keys 0..hot-1, then ``scan`` keys never asked again."""
    keys = list(range(hot))
    fresh = hot
    trace: list[int] = []
    for _ in range(cycles):
        for _ in range(loops):
            rng.shuffle(keys)
            trace.extend(keys)
        trace.extend(range(fresh, fresh + scan))
        fresh += scan
    return trace


def _cache_size(keys: int) -> int:
    """The bound of the hit-rate workloads' caches: a twentieth of the key space."""
    return max(8, keys // 20)


class _CacheWorkload(Workload[CacheAdapter]):
    """Base of the cache workloads: a fresh cache per round, bounded by ``plan.maxsize``."""

    kind = "cache"

    def loader(self, plan: Plan) -> Callable[[int], int]:
        return cache_value  # cheap and uncounted: no lock on the timed miss path

    def build(self, impl: Impl, plan: Plan) -> CacheAdapter:
        loader = self.loader(plan)
        # accepts() runs only implementations that build caches; every cache plan has a maxsize.
        assert impl.cache is not None and plan.maxsize is not None
        ad = impl.cache(plan.maxsize, loader)
        return dataclasses.replace(ad, loader=loader, call_once=impl.call_once,
                                   bound=plan.maxsize if impl.bounded else None)

    def setup(self, ad: CacheAdapter, plan: Plan) -> None:
        """Warm the cache: load the pre-filled keys."""
        get = ad.get
        for k in plan.prefill:
            get(k)

    def verify(self, ad: CacheAdapter, plan: Plan, tallies: list[Tally]) -> list[str]:
        n = ad.size()
        if ad.bound is not None and n > ad.bound:
            return [f"holds {n} entries after the run, over its maxsize of {ad.bound}"]
        return []


class Stampede(_CacheWorkload):
    """Cache stampede: every thread asks one cold key at once; counts the loader's runs (20 ms each).

    A round is one burst on a fresh cache: a barrier releases the threads
    together, each asks for the same absent key (drawn from the seed), and
    the loader sleeps 20 ms, so every thread normally asks while it runs.
    The round's number is how many times the loader ran. Every thread must
    get the loaded value, and an implementation that promises to load each
    key once fails the check if it loaded more.
    """

    name = "cache_stampede"
    unit = "loads"
    versus = ""
    once = True
    tracks_memory = False
    delay = 0.02  # the loader's sleep: longer than it takes every thread to arrive

    def detail(self, keys: int) -> str:
        return (f"loader runs per burst of simultaneous requests for one cold key ({self.delay * 1000:g} ms "
                "loader, a fresh cache each round); 1 is call-once")

    def plan(self, keys: int, threads: int, param: float | None, seed: int) -> Plan:
        cold = _rng(seed, self.name, param, threads, 0).randrange(keys, 2 * keys)
        return Plan(keys, threads, param, [[cold]] * threads, [], {}, maxsize=keys)

    def loader(self, plan: Plan) -> Loader:
        return Loader(self.delay)

    def body(self, ad: CacheAdapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        k = plan.seqs[tid][0]
        v = ad.get(k)
        if v != cache_value(k):
            tally.fail(f"get({k}) returned {v!r}, expected {cache_value(k)!r}")
        tally.ops = 1

    def score(self, ad: CacheAdapter, plan: Plan, tallies: list[Tally], elapsed: float) -> float:
        return float(ad.loader.calls)

    def verify(self, ad: CacheAdapter, plan: Plan, tallies: list[Tally]) -> list[str]:
        failures = super().verify(ad, plan, tallies)
        calls = ad.loader.calls
        if ad.call_once and calls != 1:
            failures.append(f"the loader ran {calls} times for one key, which this cache promises to load once")
        return failures


class _Deterministic(_CacheWorkload):
    """Base: one thread, one round: the same plan on a fresh cache gives the same number."""

    versus = LRU
    once = True
    tracks_memory = False

    def thread_counts(self, threads: list[int]) -> list[int]:
        return [1]

    def round_count(self, rounds: int) -> int:
        return 1


class _HitRate(_Deterministic):
    """Base: one thread replays one seeded trace; the number is the fraction of requests that hit.

    Every cache gets the same trace and the same bound; a request that ran
    the loader is a miss.
    """

    unit = "hit rate"

    def accepts(self, impl: Impl) -> bool:
        return impl.bounded and super().accepts(impl)  # without a bound nothing is evicted: no policy to compare

    def trace(self, keys: int, rng: random.Random) -> list[int]:
        raise NotImplementedError

    def plan(self, keys: int, threads: int, param: float | None, seed: int) -> Plan:
        trace = self.trace(keys, _rng(seed, self.name, param, 1, 0))
        return Plan(keys, threads, param, [trace] * threads, [], {}, maxsize=_cache_size(keys))

    def loader(self, plan: Plan) -> Loader:
        return Loader()

    def body(self, ad: CacheAdapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        get, trace = ad.get, plan.seqs[tid]
        for k in trace:
            v = get(k)
            if v != k * M + PREFILL:
                tally.fail(f"get({k}) returned {v!r}, expected {k * M + PREFILL!r}")
        tally.ops = len(trace)

    def score(self, ad: CacheAdapter, plan: Plan, tallies: list[Tally], elapsed: float) -> float:
        calls: int = ad.loader.calls  # the Loader of this workload's loader()
        return 1.0 - calls / len(plan.seqs[0])


class ZipfHitRate(_HitRate):
    """Cache hit rate on a Zipf trace: one thread, the same seeded trace and maxsize for every cache.

    Key i (of --keys) is asked with probability proportional to
    1 / (i + 1) ** 0.99 (YCSB's Zipf constant); the trace is 20 requests
    per key long and the caches hold a twentieth of the keys.
    """

    name = "cache_zipf"
    alpha = 0.99

    def detail(self, keys: int) -> str:
        return (f"hit rate on a Zipf({self.alpha}) trace over {keys} keys, {20 * keys} requests, "
                f"maxsize {_cache_size(keys)}; one thread, seeded")

    def trace(self, keys: int, rng: random.Random) -> list[int]:
        return zipf_trace(rng, keys, self.alpha, 20 * keys)


class LoopScanHitRate(_HitRate):
    """Cache hit rate on loops over a hot set broken by long one-time scans: one thread, seeded.

    Each cycle reads a hot set of half the cache's size twice, in a fresh
    shuffled order each time, then scans twice the cache's size of keys
    never asked before or after. A cache that keeps the hot set through
    the scans hits on both loops; one that lets a scan flush it (LRU, FIFO)
    misses the first loop after every scan. No cache can hit a scan key.
    """

    name = "cache_loopscan"

    def detail(self, keys: int) -> str:
        c = _cache_size(keys)
        return (f"hit rate on cycles of 2 loops over {c // 2} hot keys then a scan of {2 * c} new keys, "
                f"{self._cycles(keys)} cycles, maxsize {c}; one thread, seeded; at most "
                f"{(c // 2 * 2) / (c // 2 * 2 + 2 * c):.1%} can hit")

    def _cycles(self, keys: int) -> int:
        c = _cache_size(keys)
        return max(3, 20 * keys // (c // 2 * 2 + 2 * c))  # about as long as the Zipf trace

    def trace(self, keys: int, rng: random.Random) -> list[int]:
        c = _cache_size(keys)
        return loopscan_trace(rng, c // 2, 2, 2 * c, self._cycles(keys))


class _CacheHits(_CacheWorkload):
    """Base: threads read a warm cache; a fixed share of reads asks a key never asked before."""

    hit_fraction = 0.9

    def detail(self, keys: int) -> str:
        return (f"ops/s of cache reads, {self.hit_fraction:.0%} of them on {max(1, keys // 2)} warm keys and the "
                f"rest on new keys (a cheap loader), maxsize {keys}")

    def plan(self, keys: int, threads: int, param: float | None, seed: int) -> Plan:
        hot = max(1, keys // 2)
        misses = round(SEQ_LEN * (1 - self.hit_fraction))
        seqs, reads = [], []
        for tid in range(threads):
            rng = _rng(seed, self.name, param, threads, tid)
            # Random positions, an exact count: the sampled latencies see misses in proportion.
            miss_at = set(rng.sample(range(SEQ_LEN), misses))
            seqs.append(_wrap([rng.randrange(hot) for _ in range(SEQ_LEN)]))
            reads.append(_wrap([j not in miss_at for j in range(SEQ_LEN)]))  # True: a warm key
        prefill = {k: cache_value(k) for k in range(hot)}
        return Plan(keys, threads, param, seqs, reads, prefill, maxsize=keys)

    def body(self, ad: CacheAdapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        get, seq, warm = ad.get, plan.seqs[tid], plan.reads[tid]
        expect = [cache_value(k) for k in range(len(plan.prefill))]
        # New keys are negative, distinct between threads and never repeated.
        fresh, step = [-1 - tid], plan.threads

        def chunk(i: int, n: int) -> None:
            new = fresh[0]
            for k, is_warm in zip(seq[i:i + n], warm[i:i + n]):
                if is_warm:
                    v = get(k)
                    if v != expect[k]:
                        tally.fail(f"get({k}) returned {v!r}, expected {expect[k]!r}")
                else:
                    v = get(new)
                    if v != new * M + PREFILL:
                        tally.fail(f"get({new}) returned {v!r}, expected {new * M + PREFILL!r}")
                    new -= step
            fresh[0] = new

        drive(chunk, tally, stop)


class CacheHit90(_CacheHits):
    """Cache throughput at 90% hits: threads read a warm cache, one read in ten asks a new key."""

    name = "cache_hit90"
    hit_fraction = 0.9


class CacheHit99(_CacheHits):
    """Cache throughput at 99% hits: threads read a warm cache, one read in a hundred asks a new key."""

    name = "cache_hit99"
    hit_fraction = 0.99


class CacheMemory(_Deterministic):
    """Cache memory per entry: tracemalloc's growth while one thread loads --keys keys, per key.

    The keys and values exist before the measure starts, so the number is
    the cache's own bookkeeping per entry (its key wrapper, entry record and
    table slot), with a maxsize of --keys, so nothing is evicted.
    """

    name = "cache_memory"
    unit = "B/entry"

    def detail(self, keys: int) -> str:
        return f"bytes per entry after loading {keys} int keys with int values into a cache of maxsize {keys}"

    def plan(self, keys: int, threads: int, param: float | None, seed: int) -> Plan:
        order = list(range(keys))
        _rng(seed, self.name, param, 1, 0).shuffle(order)
        prefill = {k: cache_value(k) for k in range(keys)}  # the values, made before measuring
        return Plan(keys, threads, param, [order] * threads, [], prefill, maxsize=keys)

    def loader(self, plan: Plan) -> Callable[[int], int]:
        return plan.prefill.__getitem__  # returns values that already exist: only the cache's memory is counted

    def setup(self, ad: CacheAdapter, plan: Plan) -> None:
        pass  # the body loads, measuring

    def body(self, ad: CacheAdapter, plan: Plan, tid: int, tally: Tally, stop: list[bool]) -> None:
        if tracemalloc.is_tracing():
            tally.error(RuntimeError("tracemalloc was already tracing, so bytes per entry were not measured"))
            return
        get, order = ad.get, plan.seqs[tid]
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for k in order:
                get(k)
            tally.measured = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        tally.ops = len(order)

    def score(self, ad: CacheAdapter, plan: Plan, tallies: list[Tally], elapsed: float) -> float:
        used = tallies[0].measured
        return max(0.0, used) / plan.keys if used is not None else 0.0

    def verify(self, ad: CacheAdapter, plan: Plan, tallies: list[Tally]) -> list[str]:
        n = ad.size()
        if n != plan.keys:
            return [f"holds {n} of the {plan.keys} entries loaded into it, so bytes per entry are not comparable"]
        return []


WORKLOADS: tuple[Workload[Any], ...] = (
    ReadMostlyHits(),
    MostlyMisses(),
    LoadOrStoreBalanced(),
    DisjointKeys(),
    ReadRatio(),
    Counter(),
    IterateWhileWriting(),
    Growth(),
    Stampede(),
    ZipfHitRate(),
    LoopScanHitRate(),
    CacheHit90(),
    CacheHit99(),
    CacheMemory(),
    RedisReadWrite(),
    RedisCounter(),
)

# Names that select several workloads at once (--workloads cache).
GROUPS: dict[str, tuple[Workload[Any], ...]] = {
    "maps": tuple(w for w in WORKLOADS if w.kind == "map"),
    "cache": tuple(w for w in WORKLOADS if w.kind == "cache"),
    "redis": tuple(w for w in WORKLOADS if w.kind == "redis"),
    # Every workload that runs in this process: the redis ones need a server, and --redis adds them.
    "all": tuple(w for w in WORKLOADS if w.kind != "redis"),
}
DEFAULT = GROUPS["maps"]  # what a run without --workloads runs


def by_name() -> dict[str, Workload[Any]]:
    """Name -> Workload; hyphens may stand for underscores (cache-stampede)."""
    table = {w.name: w for w in WORKLOADS}
    table.update({w.name.replace("_", "-"): w for w in WORKLOADS})
    return table
