"""`mapsafe race` on Cache, @cached, WeakValueMap, CopyOnWriteMap: each write's edges, and a load's to its waiters."""

from __future__ import annotations

import pytest

from _race_harness import race
from test_race_happens_before import _check, check_publish, lines_of

# -- each write happens before the read that observes it ---------------------------
# (PUBLISH in test_race_happens_before: a thread writes a plain dict and
# publishes; the main thread observes, then reads the dict.)

CACHE = "c = mapsafe.Cache()"
# A get() that loads None stores nothing, so the observer loops until the
# put. (Published by a load instead, the producer could join the
# observer's own load, get its None and never store: the program hung.)
LOADING = "c = mapsafe.Cache(cache_none=False)"
NONE_FN = "f = mapsafe.cached(cache_none=False)(lambda k: None)"
WEAK = "from mapsafe.weakvaluemap import WeakValueMap\nclass V: pass\nv = V(); m = WeakValueMap()"
COW = "from mapsafe.cowmap import CopyOnWriteMap\nm = CopyOnWriteMap()"

PUBLISH_CASES = [
    ("Cache put / get_if_present", CACHE, "c.put('ready', True)", "c.get_if_present('ready')"),
    ("Cache setitem / in", CACHE, "c['ready'] = True", "'ready' in c"),
    ("Cache setitem / in, getitem", CACHE, "c['ready'] = True", "'ready' in c and c['ready']"),
    # Bug this guards against: a get() that hits returned with no edge.
    ("Cache put / get that hits", LOADING, "c.put('ready', True)", "c.get('ready', lambda k: None)"),
    ("Cache put / len", CACHE, "c.put('ready', True)", "len(c)"),
    ("Cache put / as_map get", CACHE, "c.put('ready', True)", "c.as_map().get('ready')"),
    ("Cache put / as_map iteration", CACHE, "c.put('ready', True)", "'ready' in list(c.as_map())"),
    ("Cache load / get_if_present", CACHE, "c.get('ready', lambda k: True)", "c.get_if_present('ready')"),
    ("Cache default loader / in", "c = mapsafe.Cache(loader=lambda k: True)", "c.get('ready')", "'ready' in c"),
    ("Cache invalidate / not in", CACHE + "; c.put('ready', 0)", "c.invalidate('ready')", "'ready' not in c"),
    ("Cache del / not in", CACHE + "; c.put('ready', 0)", "del c['ready']", "'ready' not in c"),
    ("Cache invalidate_all / not in", CACHE + "; c.put('ready', 0)", "c.invalidate_all()", "'ready' not in c"),
    ("Cache cache_clear / not in", CACHE + "; c.put('ready', 0)", "c.cache_clear()", "'ready' not in c"),
    # @cached goes through Cache._hit and Cache._load.
    ("@cached load / get_if_present", "f = mapsafe.cached(lambda k: True)", "f('ready')",
     "f.cache.get_if_present('ready')"),
    ("@cached put / hit", NONE_FN, "f.cache.put('ready', True)", "f('ready')"),
    ("@cached method put / hit",
     "class O:\n    @mapsafe.cached(cache_none=False)\n    def f(self, k):\n        return None\no = O()",
     "o.f.cache.put('ready', True)", "o.f('ready')"),
    ("WeakValueMap setitem / get", WEAK, "m['ready'] = v", "m.get('ready')"),
    ("WeakValueMap set / in", WEAK, "m.set('ready', v)", "'ready' in m"),
    ("WeakValueMap get_or_create / getitem", WEAK, "m.get_or_create('ready', lambda k: v)",
     "'ready' in m and m['ready']"),
    ("WeakValueMap setdefault / iteration", WEAK, "m.setdefault('ready', v)", "'ready' in list(m)"),
    ("WeakValueMap update / items", WEAK, "m.update(ready=v)", "('ready', v) in list(m.items())"),
    ("WeakValueMap setitem / snapshot", WEAK, "m['ready'] = v", "m.snapshot().get('ready')"),
    ("WeakValueMap pop / not in", WEAK + "; m['ready'] = v", "m.pop('ready')", "'ready' not in m"),
    ("WeakValueMap clear / len", WEAK + "; m['ready'] = v", "m.clear()", "len(m) == 0"),
    ("CopyOnWriteMap setitem / get", COW, "m['ready'] = True", "m.get('ready')"),
    ("CopyOnWriteMap update / in, getitem", COW, "m.update(ready=True)", "'ready' in m and m['ready']"),
    ("CopyOnWriteMap update_with / snapshot", COW, "m.update_with(lambda d: d.update(ready=True))",
     "m.snapshot().get('ready')"),
    ("CopyOnWriteMap update_with new mapping / items", COW, "m.update_with(lambda d: {'ready': True})",
     "('ready', True) in list(m.items())"),
    ("CopyOnWriteMap setdefault / copy", COW, "m.setdefault('ready', True)", "m.copy().get('ready')"),
    ("CopyOnWriteMap setitem / iteration", COW, "m['ready'] = True", "'ready' in list(m)"),
    ("CopyOnWriteMap del / len", COW + "; m['ready'] = 0", "del m['ready']", "len(m) == 0"),
]
PUBLISH_IDS = [c[0] for c in PUBLISH_CASES]


@pytest.mark.parametrize("name, setup, publish, observe", PUBLISH_CASES, ids=PUBLISH_IDS)
def test_publish_happens_before_the_read_that_observes_it(name, setup, publish, observe):
    check_publish(setup, publish, observe, racy=False)


@pytest.mark.parametrize("name, setup, publish, observe", PUBLISH_CASES, ids=PUBLISH_IDS)
def test_write_after_the_publish_races(name, setup, publish, observe):
    check_publish(setup, publish, observe, racy=True)


# N threads ask for one cold key at once. The loader waits until the
# other N - 1 all wait for its load (in the registry of waiters that
# Flight keeps to find wait cycles), then writes a plain dict, which every
# thread reads once its call returns. With `after`, the thread that loaded
# writes the dict again once its own call returns: ordered with no other
# thread's read. (A waiter that blocks on its Flight's threading.Event is
# ordered by the Event's edges too; the publish and window tests are the
# ones that fail without the containers' own.)
STAMPEDE = """\
import threading, time, mapsafe
from mapsafe import _loading
N = 6
data = {{}}
owner, waiting = [], []
class V: pass
value = V()
def loader(k):
    owner.append(threading.get_ident())
    for _ in range(10_000):
        if len(_loading._waiting) >= N - 1:
            break
        time.sleep(0.001)
    waiting.append(len(_loading._waiting))
    data["x"] = 1
    {outcome}
{setup}
go = threading.Barrier(N)
def worker():
    go.wait()
    try:
        get()
    except ValueError:
        pass
    y = data["x"]
    {after}
ts = [threading.Thread(target=worker) for _ in range(N)]
for t in ts: t.start()
for t in ts: t.join()
print(len(owner), waiting)
"""

STAMPEDE_AFTER = 'if owner == [threading.get_ident()]: data["x"] = 2'

# How each caller asks; {options} are the cache's.
CALLERS = {
    "Cache.get": "cache = mapsafe.Cache({options})\ndef get(): return cache.get('k', loader)",
    "Cache default loader": "cache = mapsafe.Cache(loader=loader, {options})\ndef get(): return cache.get('k')",
    "@cached": "f = mapsafe.cached({options})(loader)\ndef get(): return f('k')",
    "@cached method": (
        "class O:\n    @mapsafe.cached({options})\n    def f(self, k):\n        return loader(k)\n"
        "o = O()\ndef get(): return o.f('k')"
    ),
    "WeakValueMap.get_or_create": (
        "from mapsafe.weakvaluemap import WeakValueMap\nm = WeakValueMap()\n"
        "def get(): return m.get_or_create('k', loader)"
    ),
}

# The loader's last line, and the cache's options.
OUTCOMES = {
    "value": ("return value", ""),
    # Handed to the waiters by the load alone: nothing is stored.
    "None not cached": ("return None", "cache_none=False"),
    "exception": ("raise ValueError(k)", ""),
}

STAMPEDES = [
    pytest.param(caller, *OUTCOMES[outcome], id=f"{name}, {outcome}")
    for name, caller in CALLERS.items()
    for outcome in OUTCOMES
    if not (name.startswith("WeakValueMap") and outcome == "None not cached")  # None is no value there
]


def _stampede(caller: str, outcome: str, options: str, racy: bool) -> str:
    setup = caller.format(options=options)
    return STAMPEDE.format(setup=setup, outcome=outcome, after=STAMPEDE_AFTER if racy else "pass")


@pytest.mark.parametrize("caller, outcome, options", STAMPEDES)
def test_stampede_loader_happens_before_every_waiters_return(caller, outcome, options):
    run = race(_stampede(caller, outcome, options, racy=False))
    assert run.races == [], run.stderr
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1", "[5]"], (run.stdout, run.stderr)  # one load, which five waited for


@pytest.mark.parametrize("caller, outcome, options", STAMPEDES)
def test_stampede_loading_thread_writing_after_its_call_races(caller, outcome, options):
    src = _stampede(caller, outcome, options, racy=True)
    _check(src, True, lines_of(src, STAMPEDE_AFTER, 'y = data["x"]'))


# -- a load publishes once its loader has run, before anyone can see the value --

# Bug this guards against: the load's release came after the get returned,
# while a lock-free reader could already see the value. The entry it
# evicts is freed in the loading thread once the new one is visible and
# before its get returns; its __del__ holds the get there until the main
# thread has read what the loader wrote. (The loading thread makes the
# evicted value: free-threaded CPython frees an object in the thread that
# made it.)
EVICTION_WINDOW = """\
import threading, mapsafe
c = mapsafe.Cache(maxsize=1, negative_ttl=60)
data = {{}}
read = threading.Event()
where = []
class Evicted:
    def __del__(self):
        where.append(threading.current_thread().name)
        read.wait(10)
def loader(k):
    data["x"] = 1
    {outcome}
def producer():
    c.put("old", Evicted())
    try:
        c.get("ready", loader)
    except ValueError:
        pass
def observed():
    try:
        return c.get_if_present("ready")
    except ValueError:
        return True
t = threading.Thread(target=producer, name="loading")
t.start()
while not observed():
    pass
y = data["x"]
read.set()
t.join()
print(where)
"""


@pytest.mark.parametrize("outcome", ["return True", "raise ValueError(k)"], ids=["value", "failure cached"])
def test_load_publishes_before_its_value_is_visible(outcome):
    run = race(EVICTION_WINDOW.format(outcome=outcome))
    assert run.races == [], run.stderr
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["['loading']"], (run.stdout, run.stderr)  # the window was held open


# A refresh runs its loader in a thread of its own; the value it stores is
# published like a load's. The refresh waits until the get that started it
# has returned (else that get's own acquire could order the main thread
# after it). Observed without the cache (a plain list, which orders
# nothing), the same read races.
REFRESH = """\
import threading, time, mapsafe
now = [0.0]
c = mapsafe.Cache(refresh_after=1, clock=lambda: now[0])
data = {{}}
calls, returned = [], []
def loader(k):
    for _ in range(10_000 if calls else 0):  # only the refresh waits
        if returned:
            break
        time.sleep(0.001)
    data["x"] = len(calls) + 1
    calls.append(1)
    return len(calls)
c.get("k", loader)
now[0] = 5.0
c.get("k", loader)
returned.append(1)
while not ({observe}):
    pass
y = data["x"]
"""


def test_refresh_publishes_what_its_loader_wrote():
    _check(REFRESH.format(observe='c.get_if_present("k") == 2'), False, set())


def test_refresh_observed_without_the_cache_races():
    _check(REFRESH.format(observe="len(calls) == 2"), True, {11, 20})
