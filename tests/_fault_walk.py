"""Fault injection, run in a child process with MAPSAFE_FAULTS=1: fail every point of every operation in turn.

For each map configuration and operation, the operation is run once to count
the fault points it passes, then once per point with that point raising.
After each injected fault the map must hold exactly what it held before or
exactly what the operation would have made of it (it happened or it did
not), no compute callback may be recorded as running, and another thread
must be able to finish a write and a compound operation (no lock held, no
waiter stranded). RWLock scenarios do the same for waits: the faulted
thread waits behind a holder, and afterwards a writer and readers must all
get in. Prints one JSON line: points walked, and every failure.
"""

from __future__ import annotations

import json
import operator
import sys
import threading
import time

import mapsafe
from mapsafe import DELETE, MISSING, _faults
from mapsafe._faults import InjectedFault

HANG = 10.0  # seconds before a probe counts as stuck


def finishes(fn, timeout=HANG):
    done = []
    t = threading.Thread(target=lambda: done.append(fn()), daemon=True)
    t.start()
    t.join(timeout)
    return bool(done)


def configs():
    yield "SyncMap", lambda d: mapsafe.SyncMap(d)
    yield "SyncMap(stats)", lambda d: mapsafe.SyncMap(d, stats=True)
    yield "LockedMap", lambda d: mapsafe.LockedMap(d)
    yield "LockedMap(stats)", lambda d: mapsafe.LockedMap(d, stats=True)
    yield "ShardedMap", lambda d: mapsafe.ShardedMap(d, shards=4)
    yield "ShardedMap(stats)", lambda d: mapsafe.ShardedMap(d, shards=4, stats=True)
    yield "ShardedMap(maxsize,ttl)", lambda d: mapsafe.ShardedMap(d, shards=2, maxsize=64, ttl=3600)


def add_one(k, old):
    return 1 if old is MISSING else old + 1


# name -> (operation on the map, the same on a dict model)
OPS = {
    "setitem-new": (lambda m: m.__setitem__("n", 9), lambda d: d.__setitem__("n", 9)),
    "setitem-old": (lambda m: m.__setitem__("a", 9), lambda d: d.__setitem__("a", 9)),
    "get": (lambda m: m.get("a"), lambda d: d.get("a")),
    "delitem": (lambda m: m.__delitem__("a"), lambda d: d.__delitem__("a")),
    "pop": (lambda m: m.pop("b"), lambda d: d.pop("b")),
    "swap": (lambda m: m.swap("a", 5), lambda d: d.__setitem__("a", 5)),
    "load_or_store": (lambda m: m.load_or_store("n", 3), lambda d: d.setdefault("n", 3)),
    "compare_and_swap": (lambda m: m.compare_and_swap("a", 1, 7), lambda d: d.__setitem__("a", 7)),
    "compare_and_delete": (lambda m: m.compare_and_delete("b", 2), lambda d: d.pop("b")),
    "compute": (lambda m: m.compute("a", add_one), lambda d: d.__setitem__("a", 2)),
    "compute-delete": (lambda m: m.compute("a", lambda k, v: DELETE), lambda d: d.pop("a")),
    "compute_if_absent": (lambda m: m.compute_if_absent("n", lambda k: 4), lambda d: d.setdefault("n", 4)),
    "merge": (lambda m: m.merge("a", 10, operator.add), lambda d: d.__setitem__("a", 11)),
    "merge-new": (lambda m: m.merge("n", 10, operator.sub), lambda d: d.__setitem__("n", 10)),
    "merge-callback": (lambda m: m.merge("a", 10, lambda old, v: old * v), lambda d: d.__setitem__("a", 10)),
    "add": (lambda m: m.add("b", 5), lambda d: d.__setitem__("b", 7)),
    "setdefault": (lambda m: m.setdefault("n", 8), lambda d: d.setdefault("n", 8)),
    "update": (lambda m: m.update({"a": 0, "z": 0}), lambda d: d.update({"a": 0, "z": 0})),
    "clear": (lambda m: m.clear(), lambda d: d.clear()),
    "popitem": (lambda m: m.popitem(), None),  # which item depends on the map
    "snapshot": (lambda m: m.snapshot(), lambda d: None),
    "len": (lambda m: len(m), lambda d: None),
}


def locked_map_ops():
    def write_block(m):
        with m.write() as d:
            d["a"] = 100
            d["w"] = 1

    def read_block(m):
        with m.read() as view:
            return dict(view)

    return {
        "write-block": (write_block, lambda d: d.update({"a": 100, "w": 1})),
        "read-block": (read_block, lambda d: None),
    }


def check_map(name, op_name, make, op, model, failures):
    base = {"a": 1, "b": 2, "c": 3}
    m = make(dict(base))
    _faults.arm(None)
    op(m)
    points = _faults.disarm()
    walked = 0
    for i in range(len(points)):
        m = make(dict(base))
        _faults.arm(i)
        try:
            op(m)
        except InjectedFault:
            pass
        else:
            failures.append(f"{name} {op_name}: point {i} ({points[i]}) did not raise")
        finally:
            _faults.disarm()
        walked += 1
        where = f"{name} {op_name} at {points[i]} (#{i})"
        now = m.snapshot()
        after = dict(base)
        if model is not None:
            model(after)
            if now != base and now != after:
                failures.append(f"{where}: neither happened nor not: {now}")
        elif now != base and (len(now) != len(base) - 1 or not set(now.items()) <= set(base.items())):
            failures.append(f"{where}: popitem left {now}")
        if m._computing:
            failures.append(f"{where}: a callback is still recorded as running: {m._computing}")
        if not finishes(lambda: (m.__setitem__("probe", 1), m.merge("a", 1, operator.add), m.pop("probe"))):
            failures.append(f"{where}: another thread could not write: a lock was left held")
            return walked  # that map is stuck; the next config gets a fresh one
    return walked


def rw_scenarios():
    """(name, holder's hold, the faulted thread's operation)."""
    def acquire_read(rw):
        if rw.acquire_read():
            rw.release_read()

    def acquire_write(rw):
        if rw.acquire_write():
            rw.release_write()

    def with_read(rw):
        with rw.read():
            pass

    def with_write(rw):
        with rw.write():
            pass

    def timed_write(rw):
        if rw.acquire_write(timeout=0.05):
            rw.release_write()

    for holder in ("read", "write"):
        for name, fn in (("acquire_read", acquire_read), ("acquire_write", acquire_write),
                         ("with-read", with_read), ("with-write", with_write), ("timed-write", timed_write)):
            if holder == "read" and name in ("acquire_read", "with-read"):
                continue  # readers do not wait for readers
            yield f"{name} behind a {holder}r", holder, fn


def check_rwlock(failures):
    walked = 0
    for name, holder, op in rw_scenarios():
        def run(fault_at):
            rw = mapsafe.RWLock()
            held, release = threading.Event(), threading.Event()

            def hold():
                with (rw.write() if holder == "write" else rw.read()):
                    held.set()
                    release.wait(HANG)

            t = threading.Thread(target=hold, daemon=True)
            t.start()
            held.wait(HANG)
            # Let the holder go a little after the faulted thread starts waiting.
            threading.Timer(0.02, release.set).start()
            _faults.arm(fault_at)
            raised = False
            try:
                op(rw)
            except InjectedFault:
                raised = True
            finally:
                points = _faults.disarm()
            t.join(HANG)
            return rw, points, raised, t.is_alive()

        _, points, _, _ = run(None)
        for i in range(len(points)):
            rw, _, raised, stuck = run(i)
            walked += 1
            where = f"RWLock {name} at {points[i]} (#{i})"
            if not raised:
                failures.append(f"{where}: did not raise")
            if stuck:
                failures.append(f"{where}: the holder could not release")
                continue
            state = (rw._writer, dict(rw._readers), rw._waiting_readers, rw._waiting_writers, rw._read_passes)
            if state != (None, {}, 0, 0, 0):
                failures.append(f"{where}: state left behind: {state}")
            if not finishes(lambda: (rw.acquire_write() and rw.release_write(),
                                     rw.acquire_read() and rw.release_read())):
                failures.append(f"{where}: a later writer or reader was stranded")
    return walked


def check_lockedmap_waits(failures):
    """LockedMap's short operations waiting behind another thread's write() block."""
    ops = {
        "setitem": (lambda m: m.__setitem__("a", 5), lambda d: d.__setitem__("a", 5)),
        "get": (lambda m: m.get("a"), None),
        "contains": (lambda m: "a" in m, None),
        "pop": (lambda m: m.pop("b"), lambda d: d.pop("b")),
        "compute": (lambda m: m.compute("a", add_one), lambda d: d.__setitem__("a", 2)),
        "snapshot": (lambda m: m.snapshot(), None),
        "write-block": (lambda m: m.write().__enter__() and m.write().__exit__(None, None, None), None),
    }
    walked = 0
    for stats in (False, True):
        for op_name, (op, model) in ops.items():
            def run(fault_at):
                m = mapsafe.LockedMap({"a": 1, "b": 2}, stats=stats)
                held, release = threading.Event(), threading.Event()

                def hold():
                    with m.write():
                        held.set()
                        release.wait(HANG)

                t = threading.Thread(target=hold, daemon=True)
                t.start()
                held.wait(HANG)
                threading.Timer(0.02, release.set).start()
                _faults.arm(fault_at)
                try:
                    op(m)
                except InjectedFault:
                    pass
                finally:
                    points = _faults.disarm()
                t.join(HANG)
                return m, points, t.is_alive()

            _, points, _ = run(None)
            for i in range(len(points)):
                m, _, stuck = run(i)
                walked += 1
                where = f"LockedMap(stats={stats}) {op_name} behind write() at {points[i]} (#{i})"
                rw = m.lock
                state = (rw._writer, dict(rw._readers), rw._waiting_readers, rw._waiting_writers, rw._read_passes)
                if stuck or state != (None, {}, 0, 0, 0):
                    failures.append(f"{where}: holder stuck={stuck}, state left behind: {state}")
                    continue
                after = {"a": 1, "b": 2}
                if model is not None:
                    model(after)
                if m.snapshot() not in ({"a": 1, "b": 2}, after):
                    failures.append(f"{where}: neither happened nor not: {m.snapshot()}")
                if not finishes(lambda: (m.__setitem__("probe", 1), m.compute("a", add_one))):
                    failures.append(f"{where}: another thread could not write")
    return walked


def main() -> None:
    if not _faults.ENABLED:
        print(json.dumps({"error": "MAPSAFE_FAULTS=1 is not set"}))
        sys.exit(1)
    failures: list[str] = []
    walked = 0
    for name, make in configs():
        ops = dict(OPS)
        if name.startswith("LockedMap"):
            ops.update(locked_map_ops())
        for op_name, (op, model) in ops.items():
            walked += check_map(name, op_name, make, op, model, failures)
    walked += check_rwlock(failures)
    walked += check_lockedmap_waits(failures)
    print(json.dumps({"walked": walked, "failures": failures[:50], "failed": len(failures)}))


if __name__ == "__main__":
    time.sleep(0)
    main()
