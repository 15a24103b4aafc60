"""Shadow state per dict and per key: FastTrack epochs, conflict checks, races."""

from __future__ import annotations

import sys
from _thread import get_ident as _get_ident
from dataclasses import dataclass, field
from itertools import islice
from types import MappingProxyType
from typing import Any

from . import core as _core
from . import packed as _packed

__all__ = ["Access", "Finalizer", "FINALIZING", "Race", "ThreadInfo", "Shadow", "capture"]

# How many frames of each access are remembered for the report.
STACK_DEPTH = 8

# Default bound on the key states kept per dict (`mapsafe race --history`).
HISTORY = 8192


# Stacks are interned: a loop records the same stack over and over, and one
# shared tuple per distinct stack keeps memory flat. Bounded; cleared when full.
# Only single dict operations touch it (setdefault, len, clear).
_STACKS: dict = {}
_STACKS_MAX = 100_000


# Frames in SKIP_FILES (the detector's helpers) are left out of stacks;
# a frame in STOP_FILES (thread bootstrap, runpy, the runner) ends the stack,
# as everything below it is plumbing. Filled in by the runtime.
SKIP_FILES: set = set()
STOP_FILES: set = set()


def capture(frame: Any, depth: int = STACK_DEPTH, stop: bool = True, /) -> tuple:
    """((code, lineno), ...) from ``frame`` outwards; names are resolved only when reporting.

    ``stop=False`` walks past plumbing met before the first user frame
    instead of ending there (thread creation sites are often inside an
    executor); plumbing after a user frame still ends the stack.
    """
    out = []
    ids = []
    while frame is not None and depth:
        code = frame.f_code
        filename = code.co_filename
        if filename in SKIP_FILES or (not stop and not out and filename in STOP_FILES):
            frame = frame.f_back
            continue
        if filename in STOP_FILES:
            break
        line = frame.f_lineno
        out.append((code, line))
        ids.append(id(code))
        ids.append(line)
        frame = frame.f_back
        depth -= 1
    # Keyed by code ids (cheap to hash, unlike code objects); the stored
    # stack holds the code objects, so those ids cannot be reused meanwhile.
    key = tuple(ids)
    stack = _STACKS.get(key)
    if stack is None:
        if len(_STACKS) >= _STACKS_MAX:
            _STACKS.clear()
        stack = _STACKS.setdefault(key, tuple(out))
    return stack


py_capture = capture  # the Python walk, whichever core runs (the tests compare them)


# Threads running a finalizer now: get_ident() -> Finalizer. Each thread
# sets and restores only its own entry, by single dict operations.
FINALIZING: dict = {}


@dataclass(frozen=True)
class Finalizer:
    """The finalizer an access was made in: ``__del__`` or a weakref.finalize callback."""

    how: str  # "__del__ of Foo" or "weakref.finalize callback"
    site_kind: str  # "created at" (the finalized object) or "registered at" (the finalize call)
    site: tuple  # frames of that site; () when unknown


class Access:
    """One remembered access: its epoch (tid, clk), what it did and where."""

    __slots__ = ("tid", "clk", "op", "write", "key", "whole", "frames", "final")

    def __init__(self, tid: int, clk: int, op: str, write: bool, key: Any, whole: str, frames: tuple) -> None:
        # Made in a finalizer? Looked up only when some thread is in one.
        self.final = FINALIZING.get(_get_ident()) if FINALIZING else None
        self.tid = tid
        self.clk = clk
        self.op = op  # the operation as written: "d[k]", "d[k] = v", "d.pop", "iteration", ...
        self.write = write
        self.key = key  # the key for single-key accesses, None for whole-map ones
        self.whole = whole  # "" for single-key; "keys" or "values" for whole-map reads; "clear"
        self.frames = frames


@dataclass
class ThreadInfo:
    """What a report says about a thread: its name, liveness and creation site."""

    tid: int
    name: str
    running: bool
    created: tuple  # frames of the Thread.start() call; () for the main thread


@dataclass
class Race:
    """Two conflicting accesses to one dict, neither ordered before the other."""

    dict_id: int
    created: tuple  # frames where the dict was created (or first seen)
    created_seen: bool  # True when ``created`` is a creation site, False for "first seen"
    current: Access
    previous: Access
    threads: dict = field(default_factory=dict)  # tid -> ThreadInfo, filled in by the runtime
    map_type: str = "dict"  # the type name of the map: dict, defaultdict, set, ...

    @property
    def key_repr(self) -> str | None:
        for acc in (self.current, self.previous):
            if not acc.whole:
                try:
                    return _short_repr(acc.key)
                except Exception:  # a user __repr__ must not break reporting
                    return f"<{type(acc.key).__name__} object>"
        return None

    def site_pair(self) -> tuple:
        """The pair of source locations that identifies this race for deduplication."""
        a = _top(self.current.frames)
        b = _top(self.previous.frames)
        return (a, b) if a <= b else (b, a)


def _top(frames: tuple) -> tuple:
    if not frames:
        return ("?", 0)
    code, line = frames[0]
    return (code.co_filename, line or 0)


def _short_repr(obj: Any, limit: int = 80) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _KeyState:
    """Per-key FastTrack state.

    ``w`` is the last write (an Access) or None. ``r`` is None, the last read
    (an Access) while reads are totally ordered, or a dict tid -> Access once
    two reads were concurrent ("read-shared"), until the next write.
    """

    __slots__ = ("w", "r")

    def __init__(self) -> None:
        self.w = None
        self.r = None


# An empty table no one can write to: what a map's whole-map tables are
# until it needs them (see _DictShadow).
_NO_TABLE = MappingProxyType({})


def _write_tables(ds: "_DictShadow") -> None:
    """Give ``ds`` its own ``kw`` and ``vw`` before one is written (caller holds ds.lock)."""
    if ds.vw is _NO_TABLE:
        ds.kw, ds.vw = {}, {}


def _read_tables(ds: "_DictShadow") -> None:
    """Give ``ds`` its own ``kreads`` and ``vreads`` before one is written (caller holds ds.lock)."""
    if ds.kreads is _NO_TABLE:
        ds.kreads, ds.vreads = {}, {}


class _DictShadow:
    """Everything remembered about one dict."""

    __slots__ = ("lock", "obj", "created", "created_seen", "keys", "canon", "kw", "vw", "kreads", "vreads", "clears",
                 "orders", "forgotten", "stale", "owner", "own_tid", "ow", "orr", "okw", "ovw", "made")

    def __init__(self, obj: dict, created: tuple, created_seen: bool, lock: Any, owner: int) -> None:
        # Guards every other mutable field. One lock per dict, so threads
        # working on different dicts never wait for each other.
        self.lock = lock
        # A strong reference: while the dict is tracked its id cannot be
        # reused by another dict, so stale state can never be blamed on a new
        # dict. Shadow.sweep() drops dicts that only the detector still holds.
        self.obj = obj
        self.created = created
        self.created_seen = created_seen
        self.keys: dict = {}  # shadow key (see _shadow_key) -> _KeyState
        # A key whose hashing or comparing may run program code -> its _ById,
        # the one this dict's state is keyed by. Used outside ``lock`` only,
        # by single dict operations, so no program code runs under the lock.
        self.canon: dict = {}
        # Whole-map bookkeeping, each tid -> the last such Access of that thread.
        # The last per thread is enough: a thread's earlier accesses are
        # ordered before its later ones, so if the last is ordered, all are.
        # Each is the shared empty _NO_TABLE until the first access that
        # writes it (_write_tables, _read_tables; clears and orders where
        # they are written): a map one thread fills never needs them.
        self.kw: Any = _NO_TABLE  # writes that changed the key set (and clears)
        self.vw: Any = _NO_TABLE  # every write (and clears)
        self.kreads: Any = _NO_TABLE  # whole-map reads of the key set only (len, iteration)
        self.vreads: Any = _NO_TABLE  # whole-map reads of keys and values (copy, ==, repr)
        self.clears: Any = _NO_TABLE  # clear() calls: a write to every key
        # Reorders (OrderedDict.move_to_end): they change the order every
        # iteration sees and the order other reorders and inserts work on.
        self.orders: Any = _NO_TABLE
        # Accesses dropped with the oldest key states when ``keys`` outgrew
        # the history bound (see Shadow.history); lock.
        self.forgotten = 0
        # _ById keys whose state was dropped: their ``canon`` entries are
        # removed outside ``lock`` (that runs the program's __hash__/__eq__).
        # Appended under lock, taken by Shadow._drop_stale with one swap.
        self.stale: list = []
        # The owner phase (see Shadow, "One thread's map"); all under ``lock``.
        # ``owner`` is the one thread that has touched the map so far, or
        # None once a second thread has (then it stays None). ``own_tid``
        # is that first thread, for good. While one thread owns the map its
        # single-key accesses are kept here, not as Access objects: ``ow`` /
        # ``orr`` map a shadow key to the owner's last write / its reads since
        # that write, each as one int: _pack(clock, op, stack).
        # A key is in ``keys`` or in these, never both: a key's state moves
        # to ``keys`` (an Access each) the first time the general path needs
        # it. ``okw`` / ``ovw`` are the owner's last key-set-changing write
        # and last write, (packed, key, shadow key) or None, until the map is
        # shared: then they become its ``kw`` / ``vw`` entries, and ``made``
        # maps (shadow key, packed) to those Accesses, so that the key's own
        # record becomes the same Access, not an equal one (reports pair
        # races by identity).
        self.owner = owner
        self.own_tid = owner
        self.ow: dict = {}
        self.orr: dict = {}
        self.okw: Any = None
        self.ovw: Any = None
        self.made: Any = None


class _ById:
    """A key of the program's own type, as the shadow state keys it: by
    identity of one canonical object, so looking it up under a detector lock
    runs no ``__hash__`` or ``__eq__`` of the program's. Its own hash and
    equality are object's, identity, in C: a lookup that meets one (the C
    core's, under a lock) runs no Python code at all."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj


# Key types whose hashing and comparing run no program code.
_SAFE_KEYS = frozenset((str, int, float, bytes, bool, type(None), complex))


def _safe_key(key: Any, depth: int = 0) -> bool:
    t = type(key)
    if t in _SAFE_KEYS:
        return True
    if (t is tuple or t is frozenset) and depth < 3:
        return all(_safe_key(x, depth + 1) for x in key)
    return False


def _shadow_key(ds: "_DictShadow", key: Any) -> Any:
    """``key`` itself if comparing it runs no program code, else its _ById.
    Called with no detector lock held: this is where the program's
    ``__hash__`` and ``__eq__`` run, as single dict operations."""
    if type(key) is str or _safe_key(key):
        return key
    sk = ds.canon.get(key)
    if sk is None:
        sk = ds.canon.setdefault(key, _ById(key))
    return sk


# What Shadow._key_state_locked returns for an access the owner phase took.
_OWNED = object()


def _own_access(tid: int, packed: int, write: bool, key: Any) -> "Access":
    """The Access an owner-phase record stands for."""
    clk, op, frames = _packed.unpack(packed)
    acc = Access(tid, clk, op, write, key, "", frames)
    acc.final = None  # owner-phase records are never made in finalizers (see Shadow._owns)
    return acc


def _accesses_of(ks: "_KeyState") -> int:
    r = ks.r
    return (ks.w is not None) + (0 if r is None else 1 if r.__class__ is Access else len(r))


def _count_accesses(ds: "_DictShadow") -> int:
    """The accesses ``ds`` remembers (caller holds ds.lock)."""
    tables = (ds.kw, ds.vw, ds.kreads, ds.vreads, ds.clears, ds.orders, ds.ow, ds.orr)
    owned = (ds.okw is not None) + (ds.ovw is not None)
    return sum(_accesses_of(ks) for ks in ds.keys.values()) + sum(len(t) for t in tables) + owned


def _unordered(acc: Access, tid: int, vc: dict) -> bool:
    """True when ``acc`` is by another thread and not ordered before ``vc``."""
    return acc.tid != tid and acc.clk > vc.get(acc.tid, 0)


class Shadow:
    """The table of tracked dicts and the FastTrack checks over it.

    Thread-safe without the GIL: the table is added to and read with
    single dict operations and swept under ``table_lock``; each dict's state
    is guarded by its own lock. ``vc`` arguments are the calling thread's
    own clock, which only that thread changes. Check methods return a list
    of new races, or None.

    One thread's map: until a second thread touches a map, its single-key
    accesses are remembered as packed ints in the map's owner tables, not
    as Access and _KeyState objects, and nothing is checked (nothing can
    conflict). A thread-local or per-request dict then costs a dict entry
    per key and no object the cyclic GC must walk. No history is dropped
    when the phase ends: each record becomes an Access when its key is next
    touched, so the same races are found as without the phase, and with the
    same stacks.
    """

    def __init__(
        self, lock_factory: Any, max_dicts: int = 200_000, history: int = HISTORY, owner_phase: bool = True
    ) -> None:
        if history < 1:
            raise ValueError(f"history must be at least 1, got {history}")
        self.lock_factory = lock_factory
        # False: every map is shared from its first access (the tests compare
        # the two: the phase must not change which races are found). Read-only.
        self.owner_phase = owner_phase
        # At most this many key states per dict; past it the oldest eighth is
        # forgotten (see _evict_locked). Read-only after construction.
        self.history = history
        self.forgotten_swept = 0  # ``forgotten`` of dicts no longer in the table; table_lock
        self.table_lock = lock_factory()  # guards sweeping `dicts` (one sweep at a time)
        # id(dict) -> _DictShadow. Added to by setdefault and read by single
        # gets, with no lock; removed from only by a sweep, under table_lock.
        self.dicts: dict = {}
        self.max_dicts = max_dicts
        # len(self.dicts) at which a sweep is next worthwhile: written under
        # table_lock, read without it by _add (an instance attribute read is a
        # single dict get; a stale value only moves one sweep a little).
        self._next_sweep = 1024
        self.pending_garbage: list = []  # dicts dropped by sweep(), freed outside any lock
        # tid -> epoch of that thread's latest remembered access (nondecreasing:
        # each thread writes only its own entry, by single dict sets). Tells
        # the detector when an ended thread's slot may be handed on.
        self.last_access: dict = {}

    # -- the table -----------------------------------------------------

    def _get(self, d: dict, tid: int, frame: Any) -> _DictShadow:
        ds = self.dicts.get(id(d))  # atomic: a single dict operation
        if ds is None:
            ds = self._add(d, capture(frame, 1), False, tid)
        return ds

    def _add(self, d: dict, created: tuple, seen: bool, tid: int) -> _DictShadow:
        ds = self.dicts.get(id(d))  # atomic: a single dict operation
        if ds is not None:
            return ds  # tracked dicts are held, so the same id is the same dict
        if len(self.dicts) >= self._next_sweep:  # an instance attribute: a single dict get
            with self.table_lock:
                if len(self.dicts) >= self._next_sweep:  # another thread may have swept meanwhile
                    self._sweep_locked()
                garbage, self.pending_garbage = self.pending_garbage, []
            # Dropped here, outside every lock: finalizers may run user code.
            garbage.clear()
        # One dict operation: of two threads adding the same dict at once,
        # one state wins and both use it. No lock, so making per-request
        # dicts never waits on another thread.
        owner = tid if self.owner_phase else None
        return self.dicts.setdefault(id(d), _DictShadow(d, created, seen, self.lock_factory(), owner))

    def created(self, d: dict, tid: int, frame: Any) -> None:
        """A dict was just created by instrumented code at ``frame``, in thread ``tid``."""
        # A new dict cannot already be tracked (we hold strong references to
        # tracked ones), so this never discards live history.
        self._add(d, capture(frame, 1), True, tid)

    def sweep(self) -> None:
        with self.table_lock:
            self._sweep_locked()

    def _sweep_locked(self) -> None:
        """Forget dicts that nothing but the detector refers to; bound the table."""
        # Dicts are added without table_lock (_add), so the scan is of a copy
        # (one dict operation). getrefcount counts: the _DictShadow slot, and
        # its own argument (the copy holds the _DictShadow, not the dict).
        dead = [k for k, ds in dict(self.dicts).items() if sys.getrefcount(ds.obj) <= 2]
        garbage = self.pending_garbage
        for k in dead:
            ds = self.dicts.pop(k)
            garbage.append(ds.obj)
            # Nothing but the detector holds the dict, so no thread is in an
            # access to it: its counter is read without its lock.
            self.forgotten_swept += ds.forgotten
        if len(self.dicts) > self.max_dicts:
            # Still too many live dicts: forget the oldest. This can only hide
            # races (lost history), never invent one.
            for k in list(dict(self.dicts))[: len(self.dicts) - self.max_dicts // 2]:
                ds = self.dicts.pop(k, None)
                if ds is None:
                    continue
                garbage.append(ds.obj)
                with ds.lock:  # table_lock, then a dict's lock: the one order both are taken in
                    self.forgotten_swept += ds.forgotten + _count_accesses(ds)
        self._next_sweep = max(1024, 2 * len(self.dicts))

    def take_garbage(self) -> list:
        with self.table_lock:
            garbage, self.pending_garbage = self.pending_garbage, []
        return garbage

    # -- bounded history -----------------------------------------------

    def _new_key_locked(self, ds: _DictShadow, sk: Any) -> _KeyState:
        keys = ds.keys
        ks = keys[sk] = _KeyState()
        if len(keys) > self.history:
            self._evict_locked(ds)
        return ks

    def _evict_locked(self, ds: _DictShadow) -> None:
        """Forget the oldest eighth of ``ds``'s key states: the keys first
        seen longest ago (``keys`` keeps insertion order, so this is a slice,
        not a scan). This only hides races, never invents one: a forgotten
        key's next access starts its history afresh. The key state just made
        is the newest, so it stays."""
        keys = ds.keys
        dropped = 0
        for sk in list(islice(keys, max(1, len(keys) // 8))):
            dropped += _accesses_of(keys.pop(sk))
            if sk.__class__ is _ById:
                ds.stale.append(sk)
        ds.forgotten += dropped

    def _drop_stale(self, ds: _DictShadow) -> None:
        """Remove the ``canon`` entries of forgotten keys. Runs the program's
        ``__hash__``/``__eq__``, so no detector lock is held; a thread that
        looked up the old _ById just before keeps using it for one access,
        which only splits that key's history (hides, never invents)."""
        with ds.lock:
            stale, ds.stale = ds.stale, []
        canon = ds.canon
        for sk in stale:
            try:
                if canon.get(sk.obj) is sk:
                    canon.pop(sk.obj, None)
            except Exception:  # the program's __eq__ raised: that entry stays
                pass

    # -- one thread's map: the owner phase -----------------------------

    def _owns(self, ds: _DictShadow, own: int, ks: Any, tid: int) -> bool:
        """Whether a single-key access goes to the owner phase (caller holds
        ds.lock and saw ``own``, the owner, not None). Another thread's access
        ends the phase first. A key already in ``keys`` stays there (an
        owner's reorder put it there), and an access made in a finalizer is
        remembered as an Access, which names its finalizer."""
        if own != tid:
            self._share_locked(ds)
            return False
        return ks is None and not (FINALIZING and FINALIZING.get(_get_ident()))

    def _key_state_locked(
        self, ds: _DictShadow, sk: Any, key: Any, op: str, write: bool, keyset: bool, tid: int, vc: dict, frame: Any
    ) -> Any:
        """The first step of a single-key access (caller holds ds.lock):
        _OWNED when it was the owner's and is recorded, else the key's state
        (None for a key with none), with the owner's records of it moved in."""
        ks = ds.keys.get(sk)
        own = ds.owner
        if own is not None and self._owns(ds, own, ks, tid):
            self._own_locked(ds, sk, key, op, write, keyset, tid, vc[tid], frame)
            return _OWNED
        if ks is None and (ds.ow or ds.orr):
            ks = self._take_own_locked(ds, sk, key)
        return ks

    def _own_locked(
        self, ds: _DictShadow, sk: Any, key: Any, op: str, write: bool, keyset: bool, tid: int, clk: int, frame: Any
    ) -> None:
        """The owner's access to one key: nothing to check (no other thread
        has touched the map), only to remember. FastTrack's rules, one
        thread's part of them: a write supersedes that thread's earlier
        reads of the key, a read is kept until the next write."""
        orr = ds.orr
        if write:
            if not keyset:
                w = ds.ow.get(sk)
                if w is not None and _packed.clock_of(w) == clk:
                    r = orr.get(sk)
                    if r is None or _packed.clock_of(r) == clk:
                        return  # FastTrack's same epoch: the first record stands
        else:
            r = orr.get(sk)
            if r is not None:
                if _packed.clock_of(r) == clk:
                    return
            else:
                w = ds.ow.get(sk)
                if w is not None and _packed.clock_of(w) == clk:
                    return  # our write in this epoch covers the read
        packed = _packed.pack(clk, op, capture(frame))
        if write:
            ds.ow[sk] = packed
            if orr:
                orr.pop(sk, None)
            rec = (packed, key, sk)
            ds.ovw = rec
            if keyset:
                ds.okw = rec
        else:
            orr[sk] = packed
        self.last_access[tid] = clk
        if len(ds.ow) + len(ds.orr) > self.history:
            self._evict_own_locked(ds)

    def _share_locked(self, ds: _DictShadow) -> None:
        """A second thread touches the map: the owner phase ends for good.
        The owner's key records stay where they are, moved to ``keys`` one by
        one as keys are touched again (_take_own_locked); its last writes go
        to the whole-map tables now, as every later whole-map access checks
        those."""
        owner = ds.owner
        ds.owner = None
        if ds.okw is None and ds.ovw is None:
            return
        _write_tables(ds)
        made = ds.made = {}
        for rec, table in ((ds.okw, ds.kw), (ds.ovw, ds.vw)):
            if rec is not None:
                acc = made.get(rec[2:] + rec[:1])
                if acc is None:
                    acc = made[rec[2:] + rec[:1]] = _own_access(owner, rec[0], True, rec[1])
                # The owner's latest: a general-path write of the owner's since
                # would have dropped the record (see _key_write_locked).
                table[owner] = acc
        ds.okw = ds.ovw = None

    def _take_own_locked(self, ds: _DictShadow, sk: Any, key: Any) -> _KeyState | None:
        """Move key ``sk``'s owner-phase records into ``keys``, as Accesses;
        None when it has none."""
        if not (ds.ow or ds.orr):
            return None
        w = ds.ow.pop(sk, None)
        r = ds.orr.pop(sk, None)
        if w is None and r is None:
            return None
        ks = self._new_key_locked(ds, sk)
        if w is not None:
            made = ds.made.pop((sk, w), None) if ds.made else None
            ks.w = made or _own_access(ds.own_tid, w, True, key)
        if r is not None:
            ks.r = _own_access(ds.own_tid, r, False, key)
        return ks

    def _evict_own_locked(self, ds: _DictShadow) -> None:
        """The owner phase's share of the history bound: the oldest eighth of
        its key records goes, as in _evict_locked."""
        dropped = 0
        for table in (ds.ow, ds.orr):
            for sk in list(islice(table, max(1, len(table) // 8) if table else 0)):
                del table[sk]
                dropped += 1
                if sk.__class__ is _ById and sk not in ds.keys and sk not in ds.ow and sk not in ds.orr:
                    ds.stale.append(sk)
        ds.forgotten += dropped

    def forgotten(self) -> int:
        """How many remembered accesses were dropped to keep history bounded."""
        with self.table_lock:
            total = self.forgotten_swept
            for ds in list(self.dicts.values()):
                with ds.lock:
                    total += ds.forgotten
        return total

    # -- the checks ----------------------------------------------------

    def _race(self, ds: _DictShadow, cur: Access, prev: Access, races: list | None) -> list:
        if races is None:
            races = []
        races.append(Race(id(ds.obj), ds.created, ds.created_seen, cur, prev, map_type=type(ds.obj).__name__))
        return races

    def key_read(self, d: dict, key: Any, op: str, tid: int, vc: dict, frame: Any) -> list | None:
        """A read of one key: ``d[k]``, ``get``, ``in``, a missing ``pop``..."""
        ds = self.dicts.get(id(d))  # atomic: a single dict operation
        if ds is None:
            ds = self._add(d, capture(frame, 1), False, tid)
        sk = key if type(key) is str else _shadow_key(ds, key)
        with ds.lock:
            ks = self._key_state_locked(ds, sk, key, op, False, False, tid, vc, frame)
            if ks is _OWNED:
                races = None
            else:
                if ks is not None:
                    # The fast paths, inline: most accesses end here.
                    clk = vc[tid]
                    r = ks.r
                    if r.__class__ is Access and r.tid == tid and r.clk == clk:
                        # FastTrack's "same epoch" case: nothing new to learn or check.
                        return None
                    w = ks.w
                    if r is None and w is not None and w.tid == tid and w.clk == clk:
                        # Our own write in this epoch covers this read: whoever is
                        # unordered with the read is unordered with the write too.
                        return None
                races = self._key_read_locked(ds, ks, sk, key, op, tid, vc, frame)
        if ds.stale:
            self._drop_stale(ds)
        return races

    def _key_read_locked(
        self, ds: _DictShadow, ks: Any, sk: Any, key: Any, op: str, tid: int, vc: dict, frame: Any
    ) -> list | None:
        clk = vc[tid]
        if ks is None:
            ks = self._new_key_locked(ds, sk)
        cur = Access(tid, clk, op, False, key, "", capture(frame))
        self.last_access[tid] = cur.clk
        races = None
        w = ks.w
        if w is not None and _unordered(w, tid, vc):
            races = self._race(ds, cur, w, races)
        if ds.clears:
            for prev in ds.clears.values():
                if _unordered(prev, tid, vc):
                    races = self._race(ds, cur, prev, races)
        r = ks.r
        if r is None:
            ks.r = cur
        elif r.__class__ is Access:
            if r.tid == tid or not _unordered(r, tid, vc):
                ks.r = cur
            else:
                ks.r = {r.tid: r, tid: cur}  # read-shared
        else:
            r[tid] = cur
        return races

    def key_write(
        self, d: dict, key: Any, op: str, keyset: bool, tid: int, vc: dict, frame: Any
    ) -> list | None:
        """A write of one key; ``keyset`` when it inserts or removes the key."""
        ds = self.dicts.get(id(d))  # atomic: a single dict operation
        if ds is None:
            ds = self._add(d, capture(frame, 1), False, tid)
        sk = key if type(key) is str else _shadow_key(ds, key)
        with ds.lock:
            ks = self._key_state_locked(ds, sk, key, op, True, keyset, tid, vc, frame)
            if ks is _OWNED:
                races = None
            else:
                if ks is not None and not keyset:
                    w = ks.w
                    clk = vc[tid]
                    if w is not None and w.tid == tid and w.clk == clk:
                        r = ks.r
                        if r is None or (r.__class__ is Access and r.tid == tid and r.clk == clk):
                            # Same epoch as our last write, and only we read since:
                            # every check was done then. (A key-set change is always
                            # checked: whole-map reads may have come in between.)
                            return None
                races = self._key_write_locked(ds, ks, sk, key, op, keyset, tid, vc, frame)
        if ds.stale:
            self._drop_stale(ds)
        return races

    def _key_write_locked(
        self, ds: _DictShadow, ks: Any, sk: Any, key: Any, op: str, keyset: bool, tid: int, vc: dict, frame: Any
    ) -> list | None:
        _write_tables(ds)
        cur = Access(tid, vc[tid], op, True, key, "", capture(frame))
        self.last_access[tid] = cur.clk
        races = None
        if ks is None:
            ks = self._new_key_locked(ds, sk)
        else:
            w = ks.w
            if w is not None and _unordered(w, tid, vc):
                races = self._race(ds, cur, w, races)
            r = ks.r
            if r is not None:
                for prev in (r,) if r.__class__ is Access else tuple(r.values()):
                    if _unordered(prev, tid, vc):
                        races = self._race(ds, cur, prev, races)
        for table in (ds.clears, ds.vreads, ds.kreads, ds.orders) if keyset else (ds.clears, ds.vreads):
            if table:
                for prev in table.values():
                    if _unordered(prev, tid, vc):
                        races = self._race(ds, cur, prev, races)
        ks.w = cur
        ks.r = None
        ds.vw[tid] = cur
        if keyset:
            ds.kw[tid] = cur
        if ds.owner == tid:  # the owner's own write, made here (a reorder): later than its records
            ds.ovw = None
            if keyset:
                ds.okw = None
        return races

    def order_write(self, d: dict, key: Any, op: str, tid: int, vc: dict, frame: Any) -> list | None:
        """A reorder (``move_to_end``): a key-set write of ``key`` that also
        conflicts with other threads' inserts, deletes and reorders."""
        ds = self._get(d, tid, frame)
        sk = key if type(key) is str else _shadow_key(ds, key)
        with ds.lock:
            if ds.owner is not None and ds.owner != tid:
                self._share_locked(ds)
            # The key's state, with the owner's records of it moved in (as
            # _key_state_locked does for single-key accesses).
            ks = ds.keys.get(sk) or self._take_own_locked(ds, sk, key)
            races = self._key_write_locked(ds, ks, sk, key, op, True, tid, vc, frame)
            cur = ds.kw[tid]
            for prev in tuple(ds.kw.values()):
                if prev is not cur and _unordered(prev, tid, vc) and not any(prev is r.previous for r in races or ()):
                    races = self._race(ds, cur, prev, races)
            if ds.orders is _NO_TABLE:
                ds.orders = {}
            ds.orders[tid] = cur
        if ds.stale:
            self._drop_stale(ds)
        return races

    def whole_read(self, d: dict, op: str, values: bool, tid: int, vc: dict, frame: Any) -> list | None:
        """A read of the whole map: of its key set only, or also of its values."""
        ds = self._get(d, tid, frame)
        with ds.lock:
            if ds.owner is not None and ds.owner != tid:
                self._share_locked(ds)
            return self._whole_read_locked(ds, op, values, tid, vc, frame)

    def _whole_read_locked(self, ds: _DictShadow, op: str, values: bool, tid: int, vc: dict, frame: Any) -> list | None:
        _read_tables(ds)
        mine = ds.vreads if values else ds.kreads
        prev_mine = mine.get(tid)
        if prev_mine is not None and prev_mine.clk == vc[tid]:
            return None  # same epoch: already checked
        cur = Access(tid, vc[tid], op, False, None, "values" if values else "keys", capture(frame))
        self.last_access[tid] = cur.clk
        races = None
        for prev in (ds.vw if values else ds.kw).values():
            if _unordered(prev, tid, vc):
                races = self._race(ds, cur, prev, races)
        mine[tid] = cur
        return races

    def clear(self, d: dict, op: str, tid: int, vc: dict, frame: Any) -> list | None:
        """``d.clear()``: a write to every key, and a change of the key set."""
        ds = self._get(d, tid, frame)
        with ds.lock:
            if ds.owner is not None and ds.owner != tid:
                self._share_locked(ds)
            return self._clear_locked(ds, op, tid, vc, frame)

    def _clear_locked(self, ds: _DictShadow, op: str, tid: int, vc: dict, frame: Any) -> list | None:
        _write_tables(ds)
        if ds.clears is _NO_TABLE:
            ds.clears = {}
        cur = Access(tid, vc[tid], op, True, None, "clear", capture(frame))
        self.last_access[tid] = cur.clk
        races = None
        for table in (ds.vw, ds.kreads, ds.vreads):
            for prev in table.values():
                if _unordered(prev, tid, vc):
                    races = self._race(ds, cur, prev, races)
        for ks in ds.keys.values():
            r = ks.r
            if r is not None:
                for prev in (r,) if r.__class__ is Access else tuple(r.values()):
                    if _unordered(prev, tid, vc):
                        races = self._race(ds, cur, prev, races)
        # The owner phase's reads not yet moved to ``keys`` (its writes are
        # in ``vw`` since the map was shared, or are this thread's own).
        own_tid = ds.own_tid
        if ds.orr and own_tid != tid:
            seen = vc.get(own_tid, 0)
            for sk, packed in ds.orr.items():
                if _packed.clock_of(packed) > seen:
                    prev = _own_access(own_tid, packed, False, sk.obj if sk.__class__ is _ById else sk)
                    races = self._race(ds, cur, prev, races)
        ds.ow.clear()
        ds.orr.clear()
        ds.okw = ds.ovw = None
        ds.keys.clear()
        ds.clears[tid] = cur
        ds.kw[tid] = cur
        ds.vw[tid] = cur
        return races


if _core.C is not None:  # the same walk in C (_racecore.c), over the same file tables
    # Its own interning table: it keys stacks by instruction offset, not line,
    # so sharing _STACKS with py_capture could hand one a stack of the other.
    _C_STACKS: dict = {}
    _core.C.init_capture(SKIP_FILES, STOP_FILES, _C_STACKS, _STACKS_MAX, STACK_DEPTH)
    _core.C.init_owner(FINALIZING, _packed.OP_INDEX, _packed.STACK_INDEX, _packed.OP_BITS, _packed.STACK_BITS)
    capture = _core.C.capture  # noqa: F811
