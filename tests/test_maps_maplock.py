"""MapLock, the maps' write lock, on both cores: threading.RLock's contract, and a wait Ctrl-C can end.

The pure-Python core's MapLock is threading.RLock itself, so the same tests
state the contract the C one must meet. The C paths that take it without a
Python call are tested through the maps (test_maps_model, test_maps_core,
test_maps_faults, test_maps_concurrency).
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

import mapsafe
from mapsafe import _core, _pycore
from test_maps_core import CORES

WAIT = 10.0  # seconds: the bound on every wait below; a pass never comes near it


@pytest.fixture(params=sorted(CORES))
def MapLock(request):
    return CORES[request.param].MapLock


def in_thread(fn):
    """fn() in another thread; its result (or exception) once it ends."""
    out = []

    def run():
        try:
            out.append(("ok", fn()))
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out.append(("raised", exc))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(WAIT)
    assert not t.is_alive(), "the other thread did not finish"
    return out[0]


def test_the_maps_write_under_it_when_stats_are_off():
    maplock = type(_core.MapLock())  # threading.RLock is a factory function
    assert type(mapsafe.SyncMap()._lock) is maplock
    sharded = mapsafe.ShardedMap(shards=2)
    assert all(type(s.lock) is maplock for s in sharded._shards)
    assert type(sharded._callback_lock) is maplock
    assert type(mapsafe.SyncMap(stats=True)._lock) is _core.ProfiledRLock  # counted through its methods


def test_pure_core_maplock_is_threading_rlock():
    assert _pycore.MapLock is threading.RLock


def test_reentrant_and_owned_by_one_thread(MapLock):
    lock = MapLock()
    assert lock.acquire() is True and lock.acquire() is True
    assert lock._is_owned() and lock._recursion_count() == 2
    assert in_thread(lambda: lock.acquire(blocking=False)) == ("ok", False)
    assert in_thread(lambda: lock.acquire(timeout=0.01)) == ("ok", False)
    kind, err = in_thread(lock.release)
    assert kind == "raised" and isinstance(err, RuntimeError)  # not the owner's to release
    lock.release()
    assert lock._recursion_count() == 1
    lock.release()
    assert not lock._is_owned() and lock._recursion_count() == 0
    with pytest.raises(RuntimeError):
        lock.release()  # released once too often
    assert in_thread(lambda: (lock.acquire(blocking=False), lock.release())[0]) == ("ok", True)


def test_with_block_releases_on_an_exception(MapLock):
    lock = MapLock()
    with pytest.raises(KeyError):
        with lock:
            raise KeyError("inside")
    assert not lock._is_owned()
    assert in_thread(lambda: (lock.acquire(timeout=WAIT), lock.release())[0]) == ("ok", True)


def test_bad_arguments_are_refused_and_take_nothing(MapLock):
    lock = MapLock()
    with pytest.raises(ValueError, match="non-blocking"):
        lock.acquire(False, 1)
    with pytest.raises(ValueError):
        lock.acquire(timeout=-5)
    with pytest.raises(ValueError):
        lock.acquire(timeout=-2)  # regression: -2 was the C core's error marker, and made a SystemError
    with pytest.raises(TypeError):
        lock.acquire(timeout="soon")
    assert not lock._is_owned()


def test_a_condition_on_it_waits_and_is_notified(MapLock):
    lock = MapLock()
    cond = threading.Condition(lock)
    ready = []

    def waiter():
        with cond:
            with cond:  # held twice: wait() gives up both holds and takes both back
                got = cond.wait_for(lambda: ready, timeout=WAIT)
                return got, lock._recursion_count()

    t_out = []
    t = threading.Thread(target=lambda: t_out.append(waiter()), daemon=True)
    t.start()
    with cond:
        ready.append(1)
        cond.notify_all()
    t.join(WAIT)
    assert t_out == [([1], 2)]


def interrupt_while_held(lock, blocked):
    """Run blocked() while another thread holds lock, and SIGINT this process
    0.2 s in: blocked() must raise KeyboardInterrupt. The holder is let go
    and joined whatever happens."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    holding, done = threading.Event(), threading.Event()

    def holder():
        with lock:
            holding.set()
            done.wait(WAIT)

    t = threading.Thread(target=holder, daemon=True)
    t.start()
    assert holding.wait(WAIT)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            blocked()
    finally:
        timer.cancel()
        done.set()
        t.join(WAIT)


def test_a_contended_wait_ends_on_ctrl_c_with_the_lock_not_taken(MapLock):
    lock = MapLock()
    interrupt_while_held(lock, lambda: lock.acquire(timeout=WAIT))
    assert not lock._is_owned()
    assert lock.acquire(timeout=WAIT) is True  # free, and takeable by this thread
    lock.release()


def test_a_map_write_waiting_for_its_lock_ends_on_ctrl_c_and_changes_nothing():
    # The C path's own wait (m[k] = v, merge), not the Python acquire().
    for m in (mapsafe.SyncMap({"a": 1}), mapsafe.ShardedMap({"a": 1}, shards=1)):
        lock = m._lock if isinstance(m, mapsafe.SyncMap) else m._shards[0].lock
        interrupt_while_held(lock, lambda: m.add("a", 5))
        assert m.snapshot() == {"a": 1} and not lock._is_owned()
        assert m.add("a", 5) == 6


def test_fork_reinit_frees_a_lock_another_thread_held(MapLock):
    lock = MapLock()
    lock._at_fork_reinit()  # what _forks does in a child; here: as if no thread held it
    assert lock.acquire(blocking=False) is True
    lock.release()


@pytest.mark.parametrize("core", sorted(CORES))
def test_an_rwlock_timeout_of_minus_two_means_no_timeout_on_both_cores(core):
    # Regression: the C core read -2.0 as its "conversion failed" marker and
    # returned NULL with no exception set (a SystemError).
    rw = type("RW", (CORES[core].RWCore,), {"__slots__": ()})()
    rw._core_init(threading.RLock(), None)
    assert rw.acquire_read(timeout=-2) is True
    rw.release_read()
    assert rw.acquire_write(timeout=-2.0) is True
    rw.release_write()
