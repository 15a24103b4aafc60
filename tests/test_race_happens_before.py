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


# Thread A writes a plain dict, then publishes through a container; the
# main thread waits until it observes that, then reads the dict. With
# `racy`, A writes the dict again past its publish: that write is ordered
# with nothing, so the same program races (which shows that a quiet run is
# the container's edges, not the detector missing the dict).
PUBLISH = """\
import threading, mapsafe
{setup}
data = {{}}
def producer():
    data["x"] = 1
    {publish}
    {after}
t = threading.Thread(target=producer)
t.start()
while not ({observe}):
    pass
y = data["x"]
t.join()
"""
PUBLISH_AFTER = 'data["x"] = 2'
PUBLISH_READ = 'y = data["x"]'


def publish_program(setup: str, publish: str, observe: str, racy: bool = False) -> str:
    return PUBLISH.format(setup=setup, publish=publish, after=PUBLISH_AFTER if racy else "pass", observe=observe)


def lines_of(src: str, *texts: str) -> set:
    """The numbers of the lines of ``src`` that are ``texts``, indentation aside."""
    return {n for n, line in enumerate(src.splitlines(), 1) if line.strip() in texts}


def check_publish(setup: str, publish: str, observe: str, racy: bool) -> None:
    """No race in the program, or (``racy``) the write after the publish races the read."""
    src = publish_program(setup, publish, observe, racy)
    _check(src, racy, lines_of(src, PUBLISH_AFTER, PUBLISH_READ) if racy else set())


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
    check_publish(f"m = {ctor}", publish, observe, racy=False)


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


# -- asyncio hand-offs across threads ------------------------------------------


def test_call_soon_threadsafe_orders_the_caller_before_the_callback():
    src = """\
    import asyncio, threading
    d = {{}}
    async def main():
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        def cb():
            x = d.get("k")
            done.set()
        def producer():
            {body}
        t = threading.Thread(target=producer)
        t.start()
        await done.wait()
        t.join()
    asyncio.run(main())
    """
    _check(src.format(body='d["k"] = 1; loop.call_soon_threadsafe(cb)'), False, set())
    _check(src.format(body='loop.call_soon_threadsafe(cb); d["k"] = 1'), True, {7, 10})


# The loop runs in its own thread; the main thread submits coro() to it.
COROUTINE_THREADSAFE = """\
import asyncio, threading, time
d = {{}}
done = []
loop = asyncio.new_event_loop()
t = threading.Thread(target=loop.run_forever)
t.start()
async def coro():
    x = d.get("k")
    d["r"] = 2
    done.append(1)
    return 1
{submit}
{wait}
y = d["r"]
loop.call_soon_threadsafe(loop.stop)
t.join()
loop.close()
"""


def test_run_coroutine_threadsafe_orders_submit_and_completion():
    src = COROUTINE_THREADSAFE.format(
        submit='d["k"] = 1; f = asyncio.run_coroutine_threadsafe(coro(), loop)', wait="f.result()"
    )
    _check(src, False, set())


def test_run_coroutine_threadsafe_write_after_submit_races():
    src = COROUTINE_THREADSAFE.format(
        submit='f = asyncio.run_coroutine_threadsafe(coro(), loop); d["k"] = 1', wait="f.result()"
    )
    _check(src, True, {8, 12})


def test_run_coroutine_threadsafe_unwaited_result_races():
    # Polling a plain list is no synchronization; it only makes the read come after the write.
    src = COROUTINE_THREADSAFE.format(
        submit="f = asyncio.run_coroutine_threadsafe(coro(), loop)", wait="while not done: time.sleep(0.001)"
    )
    _check(src, True, {9, 14})


# fn runs in an executor thread, and does not finish before main() lets it
# go (main() would observe a finished future as soon as it wraps it); main()
# is the loop's coroutine.
EXECUTOR = """\
import asyncio, time
d = {{}}
done, go = [], []
def fn():
    x = d.get("k")
    d["r"] = 1
    done.append(1)
    while not go: time.sleep(0.001)
async def main():
    loop = asyncio.get_running_loop()
    {body}
asyncio.run(main())
"""

EXECUTOR_CASES = [
    (
        "run_in_executor",
        'd["k"] = 1; go.append(1)\n    await loop.run_in_executor(None, fn)\n    x = d["r"]',
        False,
        set(),
    ),
    ("to_thread", 'd["k"] = 1; go.append(1)\n    await asyncio.to_thread(fn)\n    x = d["r"]', False, set()),
    (
        "run_in_executor, write after submit",
        'f = loop.run_in_executor(None, fn)\n    d["k"] = 1; go.append(1)\n    await f',
        True,
        {5, 13},
    ),
    (
        "to_thread, write after submit",
        "f = asyncio.ensure_future(asyncio.to_thread(fn))\n    await asyncio.sleep(0)\n"
        '    d["k"] = 1; go.append(1)\n    await f',
        True,
        {5, 14},
    ),
    # main() blocks the loop meanwhile, so no completion callback runs in it.
    (
        "run_in_executor, read before await",
        "f = loop.run_in_executor(None, fn)\n    while not done: time.sleep(0.001)\n"
        '    x = d["r"]; go.append(1)\n    await f',
        True,
        {6, 14},
    ),
]


@pytest.mark.parametrize("name, body, racy, lines", EXECUTOR_CASES, ids=[c[0] for c in EXECUTOR_CASES])
def test_executor_hand_offs_from_a_loop(name, body, racy, lines):
    _check(EXECUTOR.format(body=body), racy, lines)


# -- queue items are matched to the put the queue's order hands out -------------

# Thread a puts a token, then (after it) thread b writes d["b"] and puts an
# identical token; main gets one token. Every token is the same object (True),
# so only the queue's order says which put main received.
TOKENS = """\
import threading, queue, time
q = queue.{cls}()
d = {{}}
def a():
    d["a"] = 1
    q.put({token_a})
def b():
    d["b"] = 1
    q.put({token_b})
ta = threading.Thread(target=a); ta.start()
while q.qsize() < 1: time.sleep(0.001)
tb = threading.Thread(target=b); tb.start()
while q.qsize() < 2: time.sleep(0.001)
q.get()
x = d["{read}"]
ta.join(); tb.join()
"""

TOKEN_CASES = [
    # Bug: the newest put's True was matched to the oldest put's clock (by id()).
    ("LifoQueue gets the newest", "LifoQueue", "True", "True", "b", False),
    ("LifoQueue not the oldest", "LifoQueue", "True", "True", "a", True),
    ("Queue gets the oldest", "Queue", "True", "True", "a", False),
    ("Queue not the newest", "Queue", "True", "True", "b", True),
    ("SimpleQueue gets the oldest", "SimpleQueue", "True", "True", "a", False),
    ("SimpleQueue not the newest", "SimpleQueue", "True", "True", "b", True),
    ("PriorityQueue gets the least", "PriorityQueue", "2", "1", "b", False),
    ("PriorityQueue not the other", "PriorityQueue", "2", "1", "a", True),
    # Two puts of the very same object: the get is ordered after both.
    ("PriorityQueue identical entries", "PriorityQueue", "1", "1", "a", False),
]


@pytest.mark.parametrize(
    "name, cls, token_a, token_b, read, racy", TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES]
)
def test_queue_get_is_ordered_after_the_put_it_received(name, cls, token_a, token_b, read, racy):
    src = TOKENS.format(cls=cls, token_a=token_a, token_b=token_b, read=read)
    _check(src, racy, {5 if read == "a" else 8, 15})


def test_queue_clocks_are_dropped_with_their_items():
    # Many puts and gets of one shared object: every clock leaves with its item.
    src = """\
    import threading, queue
    from mapsafe.race import helpers
    q = queue.LifoQueue()
    def work():
        for _ in range(500):
            q.put(True)
            q.get()
    ts = [threading.Thread(target=work) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    D = helpers.active_detector()
    print(D._clock(q).items.size)
    """
    run = race(src)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0"]


# -- LockedMap's read()/write() blocks and its methods are one order --------------


LOCKED_BLOCKS = """\
m = mapsafe.LockedMap()
def write_block():
    with m.write() as w:
        w["ready"] = True
def read_block():
    with m.read() as view:
        return view.get("ready")
def write_block_get():
    with m.write() as w:
        return w.get("ready")
"""

LOCKED_BLOCK_CASES = [
    # Bug: the write() block published on its RWLock's clock, m.get() acquired the map's.
    ("write() then get", "write_block()", "m.get('ready')"),
    ("write() then getitem", "write_block()", "'ready' in m and m['ready']"),
    ("write() then read()", "write_block()", "read_block()"),
    ("setitem then read()", "m['ready'] = True", "read_block()"),
    ("write() then write()", "write_block()", "write_block_get()"),
]


@pytest.mark.parametrize("name, publish, observe", LOCKED_BLOCK_CASES, ids=[c[0] for c in LOCKED_BLOCK_CASES])
def test_lockedmap_blocks_and_methods_are_one_order(name, publish, observe):
    check_publish(LOCKED_BLOCKS, publish, observe, racy=False)


@pytest.mark.parametrize("name, publish, observe", LOCKED_BLOCK_CASES[:4], ids=[c[0] for c in LOCKED_BLOCK_CASES[:4]])
def test_lockedmap_write_after_the_block_races(name, publish, observe):
    check_publish(LOCKED_BLOCKS, publish, observe, racy=True)


# -- concurrent.futures.wait / as_completed, and Future's other observers --------

# Task 0 finishes at once; task 1 writes d[1], then waits for main's go.
# Main reads d[1] once the first future is done.
UNFINISHED = """\
import concurrent.futures as cf, time
d = {{}}
wrote, go = [], []
def task(i):
    if i:
        d[i] = i
        wrote.append(1)
        while not go: time.sleep(0.001)
    return i
with cf.ThreadPoolExecutor(max_workers=2) as pool:
    fs = [pool.submit(task, i) for i in range(2)]
    while not wrote: time.sleep(0.001)
    {first}
    x = d.get(1)
    go.append(1)
"""


@pytest.mark.parametrize(
    "first",
    [
        "cf.wait(fs, return_when=cf.FIRST_COMPLETED)",
        "next(cf.as_completed(fs))",
    ],
    ids=["wait FIRST_COMPLETED", "as_completed"],
)
def test_futures_observed_done_order_only_their_own_tasks(first):
    _check(UNFINISHED.format(first=first), True, {6, 14})


def test_wait_for_all_orders_every_task():
    first, rest = "    {first}\n    x = d.get(1)\n    go.append(1)\n", "    go.append(1)\n    cf.wait(fs)\n    x = d.get(1)\n"
    _check(UNFINISHED.replace(first, rest).format(), False, set())


FUTURE_DONE = """\
import concurrent.futures as cf, time
d = {{}}
done = []
def task():
    d["k"] = 1
    done.append(1)
with cf.ThreadPoolExecutor(max_workers=1) as pool:
    f = pool.submit(task)
    while not {observe}: time.sleep(0.001)
    x = d["k"]
"""


def test_future_done_observes_the_result():
    _check(FUTURE_DONE.format(observe="f.done()"), False, set())


def test_future_seen_finished_some_other_way_races():
    _check(FUTURE_DONE.format(observe="done"), True, {5, 11})


# The only worker is held at a gate, so the second future is still pending
# when main cancels it; a watcher thread sees the cancellation.
CANCEL = """\
import concurrent.futures as cf, threading, time
d = {{}}
with cf.ThreadPoolExecutor(max_workers=1) as pool:
    gate = threading.Event()
    pool.submit(gate.wait)
    f = pool.submit(int)
    def watcher():
        while not {observe}: time.sleep(0.001)
        x = d["k"]
    t = threading.Thread(target=watcher)
    t.start()
    {cancel}
    t.join()
    gate.set()
"""

CANCEL_CASES = [
    ("cancelled", "f.cancelled()", 'd["k"] = 1; assert f.cancel()', False),
    ("done", "f.done()", 'd["k"] = 1; assert f.cancel()', False),
    ("write after cancel", "f.cancelled()", 'assert f.cancel(); d["k"] = 1', True),
]


@pytest.mark.parametrize("name, observe, cancel, racy", CANCEL_CASES, ids=[c[0] for c in CANCEL_CASES])
def test_successful_cancel_publishes(name, observe, cancel, racy):
    _check(CANCEL.format(observe=observe, cancel=cancel), racy, {9, 12})


# -- multiprocessing.pool.ThreadPool ---------------------------------------------

THREADPOOL = """\
from multiprocessing.pool import ThreadPool
import threading, time
d = {{"k": 0}}
done = []
def task(i=0):
    x = d["k"]
    d[i] = i
    done.append(i)
    return i
with ThreadPool(2) as pool:
    d["k"] = 1
    {body}
"""

THREADPOOL_CASES = [
    ("apply", "pool.apply(task, (1,)); x = d[1]"),
    ("apply_async get", "r = pool.apply_async(task, (1,)); r.get(); x = d[1]"),
    ("apply_async wait", "r = pool.apply_async(task, (1,)); r.wait(); x = d[1]"),
    ("apply_async ready", "r = pool.apply_async(task, (1,))\n    while not r.ready(): time.sleep(0.001)\n    x = d[1]"),
    (
        "apply_async callback",
        "ev = threading.Event()\n    pool.apply_async(task, (1,), callback=lambda v: (d[1], ev.set()))\n    ev.wait()",
    ),
    ("map", "pool.map(task, [1, 2]); x = d[1] + d[2]"),
    ("map_async", "pool.map_async(task, [1, 2]).get(); x = d[1] + d[2]"),
    ("starmap", "pool.starmap(task, [(1,), (2,)]); x = d[1] + d[2]"),
    ("imap", "for i in pool.imap(task, [1, 2]): x = d[i]"),
    ("imap chunks", "for i in pool.imap(task, range(1, 8), chunksize=3): x = d[i]"),
    ("imap_unordered", "for i in pool.imap_unordered(task, [1, 2]): x = d[i]"),
]


@pytest.mark.parametrize("name, body", THREADPOOL_CASES, ids=[c[0] for c in THREADPOOL_CASES])
def test_threadpool_orders_submit_task_and_result(name, body):
    _check(THREADPOOL.format(body=body), False, set())


@pytest.mark.parametrize(
    "body, lines",
    [
        ("r = pool.apply_async(task, (1,))\n    while not done: time.sleep(0.001)\n    x = d[1]", {7, 14}),
        ("r = pool.apply_async(task, (1,)); d['k'] = 2; r.get()", {6, 12}),
    ],
    ids=["unwaited result", "write after submit"],
)
def test_threadpool_without_the_edge_races(body, lines):
    _check(THREADPOOL.format(body=body), True, lines)


# -- Thread.join(timeout) ------------------------------------------------------


def test_join_that_times_out_does_not_order():
    src = """\
    import threading, time
    d = {}
    wrote, go = [], []
    def child():
        d["k"] = 1
        wrote.append(1)
        while not go: time.sleep(0.001)
    t = threading.Thread(target=child)
    t.start()
    while not wrote: time.sleep(0.001)
    t.join(0.01)
    assert t.is_alive()
    x = d["k"]
    go.append(1)
    t.join()
    """
    _check(src, True, {5, 13})


def test_join_with_timeout_that_sees_the_end_orders():
    _check(JOIN.format(sync="t.join(30); assert not t.is_alive()"), False, set())


# -- threading.local -------------------------------------------------------------


def test_a_dict_on_a_thread_local_is_never_shared():
    src = """\
    import threading
    local = threading.local()
    def work():
        local.d = {}
        for i in range(200):
            local.d[i % 7] = local.d.get(i % 7, 0) + 1
    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts: t.start()
    for t in ts: t.join()
    """
    _check(src, False, set())


# A map one thread used alone, then touched by another thread with no order:
# the race names the first thread's access at its own line and op, though it
# was made while the map was that thread's alone (kept as a packed record).
# Polling a module global with sleep is no synchronization to the detector.
OWNER_THEN_UNORDERED = """\
import threading, time
box = []
def worker():
    d = {{}}
    d["k"] = 1
    x = d.get("other")
    box.append(d)
    time.sleep(0.2)
t = threading.Thread(target=worker)
t.start()
while not box:
    time.sleep(0.001)
{access}
t.join()
"""


@pytest.mark.parametrize("access, line, op", [
    ('box[0]["k"] = 2', 5, "d[k] = v"),  # write after the owner's write
    ('x = box[0]["k"]', 5, "d[k] = v"),  # read after it
    ('box[0]["other"] = 3', 6, "d.get"),  # write after the owner's read
    ("box[0].clear()", 5, "d[k] = v"),  # a whole-map write
])
def test_a_race_with_an_access_made_while_one_thread_owned_the_map_names_it(access, line, op):
    run = race(OWNER_THEN_UNORDERED.format(access=access))
    assert run.returncode == 66, run.stderr
    previous = [r["previous"] for r in run.races]
    assert any(p["frames"][0]["line"] == line and p["operation"] == op for p in previous), (previous, run.stderr)


# -- subclasses are modelled like their base --------------------------------------

SUBCLASS_SIGNALS = [
    (
        "Condition",
        "class C(threading.Condition): pass\nc = C(); ready = []",
        "with c:\n        ready.append(1); c.notify()",
        "with c:\n    c.wait_for(lambda: ready)",
    ),
    ("Event", "class E(threading.Event): pass\nev = E()", "ev.set()", "ev.wait()"),
    ("Semaphore", "class S(threading.Semaphore): pass\ns = S(0)", "s.release()", "s.acquire()"),
    ("Queue", "class Q(queue.Queue): pass\nq = Q()", "q.put('x')", "q.get()"),
    ("LifoQueue", "class Q(queue.LifoQueue): pass\nq = Q()", "q.put(True)", "q.get()"),
    ("SimpleQueue", "class Q(queue.SimpleQueue): pass\nq = Q()", "q.put('x')", "q.get()"),
]


# Condition, Semaphore and SimpleQueue subclasses are modelled at the call site:
# these need helpers to test is_sync_type(t) rather than `t in SYNC_CALL_TYPES`.
@pytest.mark.parametrize("name, setup, signal, wait", SUBCLASS_SIGNALS, ids=[c[0] for c in SUBCLASS_SIGNALS])
def test_subclass_signal_then_wait_orders(name, setup, signal, wait):
    _check(SIGNAL.format(setup=setup, signal=signal, wait=wait), False, set())


# These need the helpers switch to is_sync_type (see above).
SUBCLASS_LOCKS = [
    ("RLock", "class R(type(threading.RLock())): pass\nlock = R()", "lock.acquire()", "lock.release()"),
    ("Python RLock", "class R(threading._PyRLock): pass\nlock = R()", "lock.acquire()", "lock.release()"),
    ("Condition", "class C(threading.Condition): pass\nlock = C()", "lock.acquire()", "lock.release()"),
    ("Semaphore", "class S(threading.Semaphore): pass\nlock = S()", "lock.acquire()", "lock.release()"),
    ("RLock with", "class R(type(threading.RLock())): pass\nlock = R()", "with lock:", "pass"),
    ("Condition with", "class C(threading.Condition): pass\nlock = C()", "with lock:", "pass"),
    ("Semaphore with", "class S(threading.BoundedSemaphore): pass\nlock = S()", "with lock:", "pass"),
]


@pytest.mark.parametrize("name, setup, enter, exit", SUBCLASS_LOCKS, ids=[c[0] for c in SUBCLASS_LOCKS])
def test_subclass_locks_order_critical_sections(name, setup, enter, exit):
    src = WORKERS.format(setup=setup, enter=enter, exit=exit)
    if enter.startswith("with"):  # the increment goes inside the block
        src = src.replace("        d[\"n\"] += 1\n", "            d[\"n\"] += 1\n")
    _check(src, False, set())


def test_thread_subclass_start_and_join_order():
    src = """\
    import threading
    d = {"k": 0}
    class T(threading.Thread):
        def run(self):
            d["k"] += 1
        def join(self, timeout=None):
            super().join(timeout)
    d["k"] = 1
    t = T()
    t.start()
    t.join()
    x = d["k"]
    """
    _check(src, False, set())


# -- Condition.wait_for: the predicate runs holding the lock ------------------------

WAIT_FOR = """\
import threading, time
c = threading.Condition()
d = {{"n": 0}}
calls = []
def waiter():
    with c:
        c.wait_for(lambda: (calls.append(1), d["n"] >= 1)[1])
t = threading.Thread(target=waiter)
t.start()
while not calls: time.sleep(0.001)
{write}
with c:
    c.notify_all()
t.join()
"""


def test_wait_for_predicate_reads_under_the_lock():
    # Bug: the lock's edges were recorded only around the whole wait_for call,
    # so the predicate's reads raced with the notifier's locked write.
    _check(WAIT_FOR.format(write='with c: d["n"] = 1'), False, set())


def test_wait_for_predicate_races_with_an_unlocked_write():
    _check(WAIT_FOR.format(write='d["n"] = 1'), True, {7, 11})


# -- the call-site models of sync, called directly (no helpers needed) -------------


def _epoch_in_thread(D, body):
    """Run ``body()`` in a new thread; return the epoch (tid, clock) of that thread inside it.

    No hooks are installed here, so starting and joining the thread adds no edge.
    """
    import threading

    out = []

    def run():
        ts = D.state()
        out.append((ts.tid, ts.vc[ts.tid]))
        body()

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out[0]


@pytest.mark.parametrize(
    "make",
    [
        "threading.Condition()",
        "type('C', (threading.Condition,), {})()",
        "type('R', (type(threading.RLock()),), {})()",
        "type('R', (threading._PyRLock,), {})()",
        "type('S', (threading.Semaphore,), {})()",
    ],
    ids=["Condition", "Condition subclass", "RLock subclass", "Python RLock subclass", "Semaphore subclass"],
)
def test_with_on_a_subclass_orders_like_its_base(make):
    import threading

    from mapsafe.race import runtime, sync
    from mapsafe.race.clock import happens_before

    D = runtime.Detector()
    lock, other = eval(make), eval(make)

    def hold():
        with sync.with_(D, lock, type(lock)):
            pass

    tid, clk = _epoch_in_thread(D, hold)
    with sync.with_(D, other, type(other)):
        assert not happens_before(tid, clk, D.state().vc)
    with sync.with_(D, lock, type(lock)):
        assert happens_before(tid, clk, D.state().vc)
    if isinstance(lock, threading.Condition):  # its edges are its lock's
        with sync.with_(D, lock._lock, type(lock._lock)):
            assert happens_before(tid, clk, D.state().vc)


def test_sync_call_on_subclasses_orders_like_the_base():
    import queue
    import threading

    from mapsafe.race import runtime, sync
    from mapsafe.race.clock import happens_before

    class C(threading.Condition):
        pass

    class Q(queue.SimpleQueue):
        pass

    D = runtime.Detector()
    c, q = C(), Q()

    def release():
        assert sync.sync_call(D, c, C, "acquire", (), {})
        sync.sync_call(D, c, C, "release", (), {})

    tid, clk = _epoch_in_thread(D, release)
    assert sync.sync_call(D, c._lock, type(c._lock), "acquire", (), {})
    assert happens_before(tid, clk, D.state().vc)
    c._lock.release()

    tid, clk = _epoch_in_thread(D, lambda: sync.sync_call(D, q, Q, "put", ("x",), {}))
    assert not happens_before(tid, clk, D.state().vc)
    assert sync.sync_call(D, q, Q, "get", (), {}) == "x"
    assert happens_before(tid, clk, D.state().vc)
    # `with` on a SimpleQueue fails as it would without the detector.
    assert sync.with_(D, q, Q) is q


def test_wait_for_predicate_runs_ordered_after_the_notifier():
    import threading

    from mapsafe.race import runtime, sync
    from mapsafe.race.clock import happens_before

    D = runtime.Detector()
    c = threading.Condition()
    seen = []
    epochs = []

    def predicate():
        seen.append(dict(D.state().vc))
        return len(seen) > 1

    def notify():
        ts = D.state()
        with sync.with_(D, c, type(c)):
            epochs.append((ts.tid, ts.vc[ts.tid]))
            c.notify()

    # The notifier can take the lock only once wait_for waits, after the first predicate call.
    t = threading.Thread(target=notify)
    with sync.with_(D, c, type(c)):
        t.start()
        assert sync.sync_call(D, c, type(c), "wait_for", (predicate,), {})
    t.join()
    tid, clk = epochs[0]
    assert not happens_before(tid, clk, seen[0])
    assert happens_before(tid, clk, seen[-1])  # the call after the notify, before wait_for returned


def test_queue_puts_are_matched_in_the_queue_order():
    from mapsafe.race import runtime, sync

    D = runtime.Detector()
    q = object()
    for order, want in ((sync.FIFO, 1), (sync.LIFO, 3), (sync.SIMPLE, 1)):
        key = object()
        sc = D._clock(key)
        for i in (1, 2, 3):
            D.state().vc[0] = i
            sync.put_item(D, key, True, order)
        D.state().vc[0] = 0
        sync.got_item(D, key, True, order)
        assert D.state().vc[0] == want, order
        assert sc.items.size == 2
    # PriorityQueue: every put of the very object returned, then one is dropped.
    sync.put_item(D, q, 5, sync.PRIORITY)
    D.state().vc[0] = 9
    sync.put_item(D, q, 5, sync.PRIORITY)
    D.state().vc[0] = 0
    sync.got_item(D, q, 5, sync.PRIORITY)
    assert D.state().vc[0] == 9
    assert D._clock(q).items.size == 1


# -- found by running real suites (benchmarks/race_suites) -------------------------


PIPE = """\
import threading
from multiprocessing import Pipe
tasks = {{}}
a, b = Pipe()
def scheduler():
    tasks[0] = "task"  # line 6
    a.send(0)
t = threading.Thread(target=scheduler); t.start()
{before}
task_id = b.recv()
x = tasks[0]  # line 11
t.join()
"""


@pytest.mark.parametrize("before, racy", [("", False), ("y = tasks.get(0)", True)])
def test_a_message_through_a_multiprocessing_pipe_orders_sender_before_receiver(before, racy):
    # pebble's process pool: the scheduler registers a task, then sends it; the
    # message manager looks it up once the reply came back.
    _check(PIPE.format(before=before), racy, {6, 9})


FUTURE_SUBCLASS = """\
import threading, time
from concurrent.futures import Future
from concurrent.futures._base import CANCELLED, RUNNING
class PoolFuture(Future):
    def set_running_or_notify_cancel(self):
        with self._condition:
            self._state = RUNNING
        return True
    def cancel(self):
        with self._condition:
            self._state = CANCELLED
            self._condition.notify_all()
        return True
tasks = {0: "task"}
f = PoolFuture()
def pool_manager():
    while not f.cancelled():  # the stdlib's, under its condition
        time.sleep(0.001)
    tasks.pop(0)  # line 19
def message_manager():
    x = tasks[0]  # line 21
    f.set_running_or_notify_cancel()
b = threading.Thread(target=pool_manager); b.start()
a = threading.Thread(target=message_manager); a.start()
a.join()
f.cancel()
b.join()
"""


def test_a_future_subclass_changing_state_under_its_condition_orders_stdlib_observers():
    # pebble's ProcessFuture: state changes in user code under `with
    # self._condition`, observed by the stdlib's Future.cancelled().
    _check(FUTURE_SUBCLASS, False, set())


def test_future_running_observes_set_running_or_notify_cancel():
    _check(
        """\
        import threading, time
        from concurrent.futures import Future
        tasks = {}
        f = Future()
        def worker():
            tasks[0] = "started"
            f.set_running_or_notify_cancel()
        t = threading.Thread(target=worker); t.start()
        while not f.running():
            time.sleep(0.001)
        x = tasks[0]
        f.set_result(None)
        t.join()
        """,
        False,
        set(),
    )


SQLITE_LOCK = """\
import os, sqlite3, tempfile, threading, time
from mapsafe.race.annotate import happens_after, happens_before
path = os.path.join(tempfile.mkdtemp(), "lock.db")
setup = sqlite3.connect(path, isolation_level=None)
setup.execute("CREATE TABLE lock (name TEXT PRIMARY KEY)")
setup.close()
def acquire(con):
    while con.execute("INSERT OR IGNORE INTO lock VALUES ('demo')").rowcount != 1:
        time.sleep(0.001)
    {after}
def release(con):
    {before}
    con.execute("DELETE FROM lock WHERE name = 'demo'")
state = {{"num": 0}}
def worker():
    con = sqlite3.connect(path, isolation_level=None)
    acquire(con)
    state["num"] += 1  # line 18
    release(con)
main = sqlite3.connect(path, isolation_level=None)
acquire(main)
t = threading.Thread(target=worker); t.start()
state["num"] += 1  # line 23
release(main)
t.join()
print(state["num"])
"""


@pytest.mark.parametrize("annotated", [True, False])
def test_a_lock_held_in_sqlite_is_ordered_only_when_declared(annotated):
    # diskcache's Lock: a row in a database, one connection per thread. No
    # Python object stands for that lock, so without the declared edges the
    # detector reports the critical sections (a false race it cannot avoid).
    src = SQLITE_LOCK.format(
        after="happens_after('lock:demo')" if annotated else "pass",
        before="happens_before('lock:demo')" if annotated else "pass",
    )
    _check(src, not annotated, {18, 23})


def test_happens_before_tokens_must_be_hashable_with_or_without_the_detector():
    from mapsafe.race.annotate import happens_after

    with pytest.raises(TypeError, match="token must be hashable, not list"):
        happens_after([1])


# -- thread slots ---------------------------------------------------------------------
# An ended thread's slot in the vector clocks goes to a later thread once a
# starting thread's clock covers the ended one's last remembered access. The
# programs print how many slots the detector made, to show a slot was reused.

SLOTS = "from mapsafe.race.helpers import active_detector\n"


def test_a_reused_slot_still_reports_the_old_threads_races_under_its_own_name():
    src = SLOTS + """\
import threading, time
d = {}
wrote, reused = [], []
def first():
    d["k"] = 1  # line 6
    wrote.append(1)
def second():
    d["other"] = 2
def third():
    while not (wrote and reused): time.sleep(0.001)
    print(d["k"])  # line 12: no edge from first's write
t3 = threading.Thread(target=third, name="third"); t3.start()
t1 = threading.Thread(target=first, name="first"); t1.start(); t1.join()
t2 = threading.Thread(target=second, name="second"); t2.start(); t2.join()
reused.append(1)
t3.join()
print("slots", active_detector().next_tid)
"""
    run = race(src)
    assert run.stdout == "1\nslots 3\n", run.stderr  # main, third, and one for first then second
    assert len(run.races) == 1 and run.lines() == {6, 12}, run.stderr
    race_ = run.races[0]
    assert {race_["current"]["thread"], race_["previous"]["thread"]} == {"first", "third"}


def test_a_reused_slots_new_thread_starts_past_every_epoch_the_old_one_published():
    # first's last access comes before five signals; third learns first's
    # clock from the last one. second, in first's slot, writes d["k"] with
    # no edge to third: the race must be found although third has seen the
    # slot at a later epoch than first's last access.
    src = SLOTS + """\
import threading, time
d = {}
signals, wrote = [threading.Event() for _ in range(5)], []
def first():
    d["a"] = 1
    for ev in signals:
        ev.set()
def second():
    d["k"] = 2  # line 10
    wrote.append(1)
def third():
    signals[-1].wait()
    while not wrote: time.sleep(0.001)
    print(d["k"])  # line 15
t1 = threading.Thread(target=first); t1.start()
t3 = threading.Thread(target=third); t3.start()
t1.join()
t2 = threading.Thread(target=second); t2.start(); t2.join()
t3.join()
print("slots", active_detector().next_tid)
"""
    run = race(src)
    assert run.stdout == "2\nslots 3\n", run.stderr
    assert len(run.races) == 1 and run.lines() == {10, 15}, run.stderr


def test_a_reused_slot_does_not_race_with_its_own_earlier_thread():
    src = SLOTS + """\
import threading
d = {}
def write(n):
    d["k"] = d.get("k", 0) + n
for n in range(50):
    t = threading.Thread(target=write, args=(n,)); t.start(); t.join()
print(d["k"], "slots", active_detector().next_tid)
"""
    run = race(src)
    assert run.races == [] and run.returncode == 0, run.stderr
    assert run.stdout == "1225 slots 2\n"


@pytest.mark.parametrize("finish", ["join", "signal"])
def test_thread_per_task_keeps_clocks_as_long_as_the_threads_alive_at_once(finish):
    # 3000 short tasks, a thread each, at most 8 alive at once: joined in
    # order, or daemon threads that signal a semaphore as their last act and
    # are never joined. The clocks stay bounded by the threads alive at once.
    src = SLOTS + f"""\
import threading
FINISH = {finish!r}
stats, lock, done = {{}}, threading.Lock(), threading.Semaphore(0)
def handle(i):
    req = {{"path": "/item/" + str(i % 50)}}
    with lock:
        stats[req["path"]] = stats.get(req["path"], 0) + 1
    done.release()
live = []
for i in range(3000):
    t = threading.Thread(target=handle, args=(i,), daemon=FINISH == "signal")
    t.start()
    live.append(t)
    if len(live) > 8:
        if FINISH == "join":
            live.pop(0).join()
        else:
            live.pop(0)
            done.acquire()
for t in live:
    t.join() if FINISH == "join" else done.acquire()
with lock:
    total = sum(stats.values())
D = active_detector()
print(total, D.next_tid <= 12, len(D.state().vc) <= 12)
"""
    run = race(src)
    assert run.races == [] and run.stdout == "3000 True True\n", run.stdout + run.stderr
