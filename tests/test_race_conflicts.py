"""Each conflict kind of `mapsafe race`: a racing pair is reported at its lines, a safe pair is not."""

from __future__ import annotations

import pytest

from _race_harness import race

# `a` runs in a second thread, `b` in the main thread; nothing orders them.
# (The sleep only makes the real order repeatable; the detector must not
# depend on it, and sleeping is not synchronization.)
TEMPLATE = """\
import json, threading, time
d = {setup}
def other():
    {a}  # line 4
t = threading.Thread(target=other)
t.start()
time.sleep(0.02)
{b}  # line 8
t.join()
"""
LINE_A, LINE_B = 4, 8

KS = "{'j': 0, 'k': 1}"
INTS = "{1: 0, 2: 0}"

RACY = [
    # same key, at least one write
    ("store/store", KS, "d['k'] = 1", "d['k'] = 2"),
    ("store/getitem", KS, "d['k'] = 1", "x = d['k']"),
    ("store/get", KS, "d['k'] = 1", "x = d.get('k')"),
    ("store/in", KS, "d['k'] = 1", "x = 'k' in d"),
    ("store/not in", KS, "d['k'] = 1", "x = 'k' not in d"),
    ("augassign/getitem", KS, "d['k'] += 1", "x = d['k']"),
    ("del/get", KS, "del d['k']", "x = d.get('k')"),
    ("pop/get", KS, "d.pop('k')", "x = d.get('k')"),
    ("popitem/get", KS, "d.popitem()", "x = d.get('k')"),
    ("setdefault insert/get", KS, "d.setdefault('new', 1)", "x = d.get('new')"),
    ("update dict/getitem", KS, "d.update({'k': 2})", "x = d['k']"),
    ("update pairs/getitem", KS, "d.update([('k', 2)])", "x = d['k']"),
    ("update kwargs/getitem", KS, "d.update(k=2)", "x = d['k']"),
    ("clear/get", KS, "d.clear()", "x = d.get('k')"),
    # whole-map reads vs writes that change the key set
    ("insert/for", KS, "d['new'] = 1", "for x in d: pass"),
    ("insert/keys", KS, "d['new'] = 1", "x = list(d.keys())"),
    ("insert/len", KS, "d['new'] = 1", "x = len(d)"),
    ("delete/len", KS, "del d['j']", "x = len(d)"),
    ("insert/sorted", KS, "d['new'] = 1", "x = sorted(d)"),
    ("insert/set", KS, "d['new'] = 1", "x = set(d)"),
    ("insert/tuple", KS, "d['new'] = 1", "x = tuple(d)"),
    ("insert/min", KS, "d['new'] = 1", "x = min(d)"),
    ("insert/max", KS, "d['new'] = 1", "x = max(d)"),
    ("insert/any", KS, "d['new'] = 1", "x = any(d)"),
    ("insert/all", KS, "d['new'] = 1", "x = all(d)"),
    ("insert/sum", INTS, "d[3] = 1", "x = sum(d)"),
    ("insert/listcomp", KS, "d['new'] = 1", "x = [k for k in d]"),
    ("clear/len", KS, "d.clear()", "x = len(d)"),
    # whole-map reads of values vs any write
    ("value write/values", KS, "d['k'] = 5", "x = list(d.values())"),
    ("value write/items", KS, "d['k'] = 5", "x = list(d.items())"),
    ("value write/copy", KS, "d['k'] = 5", "x = d.copy()"),
    ("value write/==", KS, "d['k'] = 5", "x = d == {'k': 1}"),
    ("value write/repr", KS, "d['k'] = 5", "x = repr(d)"),
    ("value write/dict()", KS, "d['k'] = 5", "x = dict(d)"),
    ("value write/json.dumps", KS, "d['k'] = 5", "x = json.dumps(d)"),
    ("value write/dictcomp", KS, "d['k'] = 5", "x = {k: v for k, v in d.items()}"),
]

SAFE = [
    ("store/store other key", KS, "d['k'] = 1", "d['j'] = 2"),
    ("insert/insert other key", KS, "d['a'] = 1", "d['b'] = 2"),
    ("getitem/getitem", KS, "x = d['k']", "y = d['k']"),
    ("get/in", KS, "x = d.get('k')", "y = 'k' in d"),
    ("pop missing/get", KS, "d.pop('zz', None)", "x = d.get('zz')"),
    ("setdefault found/get", KS, "d.setdefault('k', 5)", "x = d.get('k')"),
    ("update other key/getitem", KS, "d.update(j=2)", "x = d['k']"),
    ("value write/for", KS, "d['k'] = 5", "for x in d: pass"),
    ("value write/keys", KS, "d['k'] = 5", "x = list(d.keys())"),
    ("value write/len", KS, "d['k'] = 5", "x = len(d)"),
    ("len/items", KS, "x = len(d)", "y = list(d.items())"),
    ("copy/==", KS, "x = d.copy()", "y = d == {'k': 1}"),
]


def _src(setup: str, a: str, b: str) -> str:
    return TEMPLATE.format(setup=setup, a=a, b=b)


@pytest.mark.parametrize("name, setup, a, b", RACY, ids=[c[0] for c in RACY])
def test_conflicting_accesses_race(name, setup, a, b):
    run = race(_src(setup, a, b))
    assert run.returncode == 66, run.stderr
    assert len(run.races) == 1, run.stderr
    assert run.lines() == {LINE_A, LINE_B}
    assert "WARNING: DATA RACE" in run.stderr
    assert "Found 1 data race(s)" in run.stderr


@pytest.mark.parametrize("name, setup, a, b", SAFE, ids=[c[0] for c in SAFE])
def test_non_conflicting_accesses_do_not_race(name, setup, a, b):
    run = race(_src(setup, a, b))
    assert run.races == [], run.stderr
    assert run.returncode == 0, run.stderr
    assert "DATA RACE" not in run.stderr


def test_the_same_race_is_reported_once():
    run = race(
        """\
        import threading
        d = {}
        def w():
            for i in range(200):
                d["n"] = i
        ts = [threading.Thread(target=w) for _ in range(3)]
        for t in ts: t.start()
        for t in ts: t.join()
        """
    )
    assert len(run.races) == 1
    assert run.lines() == {5}


def test_a_dict_made_by_c_code_is_tracked():
    # json.loads makes the dict; instrumented code touching it is enough.
    run = race(
        """\
        import json, threading
        d = json.loads('{"k": 1}')
        def w():
            d["k"] = 2
        t = threading.Thread(target=w); t.start()
        x = d["k"]
        t.join()
        """
    )
    assert run.lines() == {4, 6}
    assert run.races[0]["dict"]["creation_known"] is False


def test_kwargs_dicts_of_different_calls_do_not_race():
    # Per-call dicts may reuse an address once freed; they must never be confused.
    run = race(
        """\
        import threading
        def f(**kw):
            kw["x"] = kw.get("x", 0) + 1
            return kw["x"]
        def w():
            for _ in range(2000):
                f(a=1)
        ts = [threading.Thread(target=w) for _ in range(2)]
        for t in ts: t.start()
        for t in ts: t.join()
        """
    )
    assert run.races == [], run.stderr


def test_mapsafe_maps_are_not_tracked_as_dicts():
    # Their own locks order their methods; the detector models them as sync objects.
    run = race(
        """\
        import threading, mapsafe
        for m in (mapsafe.SyncMap(), mapsafe.LockedMap(), mapsafe.ShardedMap()):
            def w():
                m["k"] = 1
            t = threading.Thread(target=w); t.start()
            x = m.get("k")
            t.join()
        """
    )
    assert run.races == []


FINALIZER = """\
import threading, time, weakref
registry = {{}}
class Conn:
    "A connection."
    def __init__(self, name):
        self.name = name
    def __del__(self):
        "Closes it."
        registry[self.name] = "closed"  # line 9
def cleanup(name):
    registry[name] = "finalized"  # line 11
def make():
    c = Conn("a")  # line 13
    class Res: pass
    res = Res()
    weakref.finalize(res, cleanup, "r")  # line 16
    del c, res
t = threading.Thread(target=make); t.start()
{order}
for k in registry:  # line 20
    pass
t.join()
print(sorted(registry), Conn.__del__.__doc__, Conn.__init__.__doc__)
"""


@pytest.mark.parametrize("order, racy", [("time.sleep(0.05)", True), ("t.join()", False)])
def test_finalizers_are_the_thread_that_ran_them_and_reports_say_where_the_object_came_from(order, racy):
    src = FINALIZER.format(order=order)
    run = race(src)
    plain = race(src, plain=True)
    assert run.stdout == plain.stdout
    if not racy:
        assert run.races == [] and run.returncode == 0, run.stderr
        return
    assert run.returncode == 66
    finals = {}
    for r in run.races:
        for side in ("current", "previous"):
            fin = r[side]["finalizer"]
            if fin is not None:
                finals[r[side]["frames"][0]["line"]] = fin
    # The __del__ that wrote, with the object's creation site; the finalize
    # callback, with where it was registered. Both raced line 20's iteration.
    assert 20 in run.lines()
    assert set(finals) <= {9, 11} and finals, run.stderr
    if 9 in finals:
        assert finals[9]["how"] == "__del__ of Conn" and finals[9]["site"][0]["line"] == 13
    if 11 in finals:
        assert finals[11]["how"] == "weakref.finalize callback" and finals[11]["site"][0]["line"] == 16
    assert "(in a finalizer: " in run.stderr


def test_an_in_place_op_on_a_map_held_in_an_attribute_is_a_read_modify_write():
    src = """\
    import collections, threading, time
    class Stats:
        def __init__(self):
            self.counts = collections.Counter()
            self._obj = 5  # a name a proxy of the detector's could have used
    s = Stats()
    def w():
        s.counts += collections.Counter(a=1)  # line 8
    t = threading.Thread(target=w); t.start(); time.sleep(0.05)
    s.counts += collections.Counter(a=2)  # line 10
    s._obj += 1
    t.join()
    print(s.counts, s._obj)
    """
    run = race(src)
    assert run.stdout == race(src, plain=True).stdout == "Counter({'a': 3}) 6\n"
    assert run.returncode == 66 and run.lines() == {8, 10}
    assert {r["kind"] for r in run.races} == {"lost-update"}
