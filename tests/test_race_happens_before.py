"""Each happens-before source orders accesses (no race); without it, the same program races."""

from __future__ import annotations

import pytest

from _race_harness import race


def _check(src: str, racy: bool, lines: set) -> None:
    run = race(src)
    if racy:
        assert run.returncode == 66, run.stderr
        assert run.lines() & lines, (run.lines(), run.stderr)
    else:
        assert run.races == [], run.stderr
        assert run.returncode == 0, run.stderr


def test_start_orders_parent_before_child():
    _check(
        """\
        import threading
        d = {"k": 0}
        def child():
            x = d["k"]
        d["k"] = 1
        t = threading.Thread(target=child)
        t.start()
        t.join()
        """,
        False,
        set(),
    )


def test_write_after_start_races_with_child():
    _check(
        """\
        import threading
        d = {"k": 0}
        def child():
            x = d["k"]
        t = threading.Thread(target=child)
        t.start()
        d["k"] = 1
        t.join()
        """,
        True,
        {4, 7},
    )


JOIN = """\
import threading, time
d = {{"k": 0}}
def child():
    d["k"] = 1
t = threading.Thread(target=child)
t.start()
{sync}
x = d["k"]
t.join()
"""


def test_join_orders_child_before_parent():
    _check(JOIN.format(sync="t.join()"), False, set())


def test_sleeping_is_not_synchronization():
    _check(JOIN.format(sync="time.sleep(0.1)"), True, {4, 8})


# Two workers each increment d["n"] 200 times while holding {enter}/{exit};
# the racy variant drops the synchronization.
WORKERS = """\
import threading
{setup}
d = {{"n": 0}}
def work():
    for _ in range(200):
        {enter}
        d["n"] += 1
        {exit}
ts = [threading.Thread(target=work) for _ in range(2)]
for t in ts: t.start()
for t in ts: t.join()
assert d["n"] == 400
"""

LOCKS = [
    ("Lock acquire/release", "lock = threading.Lock()", "lock.acquire()", "lock.release()"),
    (
        "RLock acquire/release",
        "lock = threading.RLock()",
        "lock.acquire(); lock.acquire()",
        "lock.release(); lock.release()",
    ),
    ("Condition acquire/release", "c = threading.Condition()", "c.acquire()", "c.release()"),
    ("Semaphore acquire/release", "s = threading.Semaphore(1)", "s.acquire()", "s.release()"),
    ("BoundedSemaphore", "s = threading.BoundedSemaphore(1)", "s.acquire()", "s.release()"),
]


@pytest.mark.parametrize("name, setup, enter, exit", LOCKS, ids=[c[0] for c in LOCKS])
def test_lock_like_objects_order_critical_sections(name, setup, enter, exit):
    _check(WORKERS.format(setup=setup, enter=enter, exit=exit), False, set())


@pytest.mark.parametrize(
    "setup, obj",
    [
        ("lock = threading.Lock()", "lock"),
        ("lock = threading.RLock()", "lock"),
        ("lock = threading.Condition()", "lock"),
        ("lock = threading.Semaphore()", "lock"),
        ("lock = threading.BoundedSemaphore()", "lock"),
    ],
    ids=["Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore"],
)
def test_with_statement_orders_critical_sections(setup, obj):
    src = f"""\
    import threading
    {setup}
    d = {{"n": 0}}
    def work():
        for _ in range(200):
            with {obj}:
                d["n"] += 1
    ts = [threading.Thread(target=work) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert d["n"] == 400
    """
    _check(src, False, set())


def test_unlocked_workers_race():
    # Without the GIL the unlocked updates really are lost, so the program's
    # own total check goes: only the report is the test's business.
    unlocked = WORKERS.replace('assert d["n"] == 400\n', "")
    _check(unlocked.format(setup="", enter="pass", exit="pass"), True, {7})


def test_two_different_locks_do_not_order():
    src = """\
    import threading
    a, b = threading.Lock(), threading.Lock()
    d = {"n": 0}
    def work(lock):
        for _ in range(100):
            with lock:
                d["n"] += 1
    ts = [threading.Thread(target=work, args=(l,)) for l in (a, b)]
    for t in ts: t.start()
    for t in ts: t.join()
    """
    _check(src, True, {7})


# Thread `producer` writes, then signals; the main thread waits, then reads.
SIGNAL = """\
import threading, queue, time
{setup}
d = {{}}
def producer():
    d["k"] = 1
    {signal}
t = threading.Thread(target=producer)
t.start()
{wait}
x = d["k"]
t.join()
"""

SIGNALS = [
    ("Event", "ev = threading.Event()", "ev.set()", "ev.wait()"),
    ("Event is_set", "ev = threading.Event()", "ev.set()", "while not ev.is_set(): time.sleep(0.001)"),
    ("Semaphore", "s = threading.Semaphore(0)", "s.release()", "s.acquire()"),
    ("Barrier", "b = threading.Barrier(2)", "b.wait()", "b.wait()"),
    ("Queue", "q = queue.Queue()", "q.put('x')", "q.get()"),
    ("LifoQueue", "q = queue.LifoQueue()", "q.put('x')", "q.get()"),
    ("PriorityQueue", "q = queue.PriorityQueue()", "q.put(1)", "q.get()"),
    ("SimpleQueue", "q = queue.SimpleQueue()", "q.put('x')", "q.get()"),
    ("Queue join/task_done", "q = queue.Queue(); q.put(1)", "q.get(); q.task_done()", "q.join()"),
    (
        "Condition wait/notify",
        "c = threading.Condition(); ready = []",
        "with c:\n        ready.append(1); c.notify()",
        "with c:\n    c.wait_for(lambda: ready)",
    ),
]


@pytest.mark.parametrize("name, setup, signal, wait", SIGNALS, ids=[c[0] for c in SIGNALS])
def test_signal_then_wait_orders(name, setup, signal, wait):
    _check(SIGNAL.format(setup=setup, signal=signal, wait=wait), False, set())


def test_without_the_signal_it_races():
    # A plain list is not synchronization for the detector; it only makes
    # the real order repeatable (the write lands before the read).
    _check(
        SIGNAL.format(setup="done = []", signal="done.append(1)", wait="while not done: time.sleep(0.001)"),
        True,
        {5, 10},
    )


def test_unrelated_puts_do_not_order_each_other():
    # Both producers write d["k"], then put; the consumer gets both items.
    # The gets order the consumer after each producer, but the producers
    # stay unordered with each other.
    src = """\
    import threading, queue
    q = queue.Queue()
    d = {}
    def producer(i):
        d["k"] = i
        q.put(i)
    ts = [threading.Thread(target=producer, args=(i,)) for i in range(2)]
    for t in ts: t.start()
    q.get(); q.get()
    x = d["k"]
    for t in ts: t.join()
    """
    run = race(src)
    assert run.lines() == {5}
    assert len(run.races) == 1


FUTURES = """\
import concurrent.futures as cf, threading
d = {{}}
def task(i=0):
    d["k"] = i
    return i
with cf.ThreadPoolExecutor(max_workers=2) as pool:
    {body}
"""

FUTURE_CASES = [
    ("result", "f = pool.submit(task); f.result(); x = d['k']"),
    ("exception", "f = pool.submit(task); f.exception(); x = d['k']"),
    ("as_completed", "fs = [pool.submit(task)]\n    for f in cf.as_completed(fs): x = d['k']"),
    ("wait", "fs = [pool.submit(task)]; cf.wait(fs); x = d['k']"),
    ("map", "list(pool.map(task, [1])); x = d['k']"),
    (
        "add_done_callback",
        "ev = threading.Event()\n    f = pool.submit(task)\n"
        "    f.add_done_callback(lambda f: (d['k'], ev.set()))\n    ev.wait()",
    ),
    ("submit orders submitter before task", "d['k'] = 5; pool.submit(task).result()"),
]


@pytest.mark.parametrize("name, body", FUTURE_CASES, ids=[c[0] for c in FUTURE_CASES])
def test_futures_order(name, body):
    _check(FUTURES.format(body=body), False, set())


def test_unwaited_future_races():
    _check(FUTURES.format(body="f = pool.submit(task); x = d.get('k')"), True, {4, 7})


def test_timer_start_and_join_order():
    src = """\
    import threading
    d = {"k": 0}
    def fire():
        d["k"] += 1
    d["k"] = 1
    t = threading.Timer(0.01, fire)
    t.start()
    t.join()
    x = d["k"]
    """
    _check(src, False, set())


MAPS = """\
import threading, mapsafe
m = {ctor}
d = {{}}
def producer():
    d["k"] = 1
    {publish}
t = threading.Thread(target=producer)
t.start()
while not ({observe}):
    pass
x = d["k"]
t.join()
"""


@pytest.mark.parametrize(
    "ctor, publish, observe",
    [
        ("mapsafe.SyncMap()", "m.store('ready', True)", "m.load('ready')[1]"),
        ("mapsafe.SyncMap()", "m['ready'] = True", "'ready' in m"),
        ("mapsafe.LockedMap()", "m.compute('ready', lambda k, old: True)", "m.get('ready')"),
        ("mapsafe.ShardedMap()", "m.load_or_store('ready', True)", "m.get('ready')"),
        # the hot paths (the C core's, when it is built) and each map's other get
        ("mapsafe.SyncMap()", "m['ready'] = True", "m.get('ready')"),
        ("mapsafe.SyncMap(stats=True)", "m['ready'] = True", "m.get('ready')"),
        ("mapsafe.SyncMap()", "m['ready'] = True", "m.load('ready')[1] and m['ready']"),
        ("mapsafe.LockedMap()", "m['ready'] = True", "m.get('ready')"),
        ("mapsafe.LockedMap(stats=True)", "m['ready'] = True", "m.get('ready')"),
        ("mapsafe.ShardedMap()", "m['ready'] = True", "m.get('ready')"),
        ("mapsafe.ShardedMap(maxsize=64, ttl=60)", "m['ready'] = True", "m.get('ready')"),
    ],
    ids=[
        "SyncMap store/load", "SyncMap setitem/in", "LockedMap compute/get", "ShardedMap load_or_store/get",
        "SyncMap setitem/get", "SyncMap stats setitem/get", "SyncMap setitem/getitem",
        "LockedMap setitem/get", "LockedMap stats setitem/get", "ShardedMap setitem/get",
        "ShardedMap cache setitem/get",
    ],
)
def test_mapsafe_map_write_happens_before_the_read_that_observes_it(ctor, publish, observe):
    _check(MAPS.format(ctor=ctor, publish=publish, observe=observe), False, set())


def test_lockedmap_write_sections_order_the_underlying_dict():
    src = """\
    import threading, mapsafe
    m = mapsafe.LockedMap(n=0)
    def work():
        for _ in range(100):
            with m.write() as d:
                d["n"] += 1
    ts = [threading.Thread(target=work) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert m["n"] == 200
    """
    _check(src, False, set())


def test_rwlock_orders_writers():
    src = """\
    import threading, mapsafe
    rw = mapsafe.RWLock()
    d = {"n": 0}
    def work():
        for _ in range(100):
            with rw.write():
                d["n"] += 1
            with rw.read():
                x = d["n"]
    ts = [threading.Thread(target=work) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    """
    _check(src, False, set())
