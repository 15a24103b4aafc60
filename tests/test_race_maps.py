"""`mapsafe race` on every map kind, set operation, store form and whole-map reader, and its fidelity to plain python."""

from __future__ import annotations

import pytest

from _race_harness import race, run_race

HEADER = "import collections, concurrent.futures, contextlib, copy, json, pickle, sys, threading, time, types, weakref"


def _racy(setup: str, a: str, b: str, after: str = "") -> tuple:
    """``a`` in a second thread, ``b`` in the main thread, nothing ordering them.

    (The sleep only makes the real order, a then b, repeatable; it is not
    synchronization, and the detector must not depend on it.) Returns the
    source and the lines where ``a`` and ``b`` start.
    """
    lines = [HEADER, *setup.splitlines(), "def other():"]
    line_a = len(lines) + 1
    lines += ["    " + x for x in a.splitlines()]
    lines += ["t = threading.Thread(target=other)", "t.start()", "time.sleep(0.02)"]
    line_b = len(lines) + 1
    lines += [*b.splitlines(), "t.join()", *after.splitlines()]
    return "\n".join(lines) + "\n", line_a, line_b


def _locked(setup: str, a: str, b: str, after: str = "") -> str:
    """The same pair ordered by a lock, in a fixed order: ``b``, release, then ``a``."""
    lines = [HEADER, *setup.splitlines(), "lock = threading.Lock()", "def other():", "    with lock:"]
    lines += ["        " + x for x in a.splitlines()]
    lines += ["lock.acquire()", "t = threading.Thread(target=other)", "t.start()", "try:"]
    lines += ["    " + x for x in b.splitlines()]
    lines += ["finally:", "    lock.release()", "t.join()", *after.splitlines()]
    return "\n".join(lines) + "\n"


def case(name: str, setup: str, a: str, b: str, after: str = ""):
    return pytest.param(setup, a, b, after, id=name)


KS = "d = {'j': 0, 'k': 1}"
DD = "d = collections.defaultdict(int)"
CTR = "c = collections.Counter(a=3)"
OD = "d = collections.OrderedDict(a=1, b=2, c=3)"
SETS = "s = {1, 2}; w = {9}"

# -- 1. map kinds ---------------------------------------------------------

KINDS_RACY = [
    case("defaultdict counter += / +=", DD, "d['k'] += 1", "d['k'] += 1", "print(dict(d))"),
    case("defaultdict missing read inserts / len", DD, "x = d['k']", "x = len(d)", "print(dict(d), x)"),
    case("defaultdict missing read inserts / iteration", DD, "x = d['k']", "for x in d: pass", "print(dict(d))"),
    case("defaultdict missing read inserts / in", DD, "x = d['k']", "x = 'k' in d", "print(dict(d), x)"),
    case("Counter.update / Counter.update", "c = collections.Counter()", "c.update(['x', 'y'])",
         "c.update(['x'])", "print(sorted(c.items()))"),
    case("Counter.update generator / getitem", "c = collections.Counter()", "c.update(ch for ch in 'xy')",
         "x = c['x']", "print(sorted(c.items()), x)"),
    case("Counter += Counter / += Counter", CTR, "global c; c += collections.Counter(a=1)",
         "c += collections.Counter(a=2)", "print(sorted(c.items()))"),
    case("Counter += Counter / getitem", CTR, "global c; c += collections.Counter(a=1)", "x = c['a']",
         "print(sorted(c.items()), x)"),
    case("Counter.subtract / getitem", CTR, "c.subtract(['a'])", "x = c['a']", "print(sorted(c.items()), x)"),
    case("Counter.subtract / Counter.subtract", CTR, "c.subtract(['a'])", "c.subtract(a=1)",
         "print(sorted(c.items()))"),
    case("Counter.update / most_common", CTR, "c.update(['b'])", "x = c.most_common()", "print(x)"),
    case("OrderedDict move_to_end / move_to_end other key", OD, "d.move_to_end('a')", "d.move_to_end('b')",
         "print(list(d))"),
    case("OrderedDict move_to_end / move_to_end same key", OD, "d.move_to_end('a')",
         "d.move_to_end('a', last=False)", "print(list(d))"),
    case("OrderedDict move_to_end / iteration", OD, "d.move_to_end('a')", "x = list(d)", "print(x)"),
    case("OrderedDict popitem(last=False) / get", OD, "d.popitem(last=False)", "x = d.get('a')",
         "print(list(d), x)"),
    case("OrderedDict popitem(last=False) / in", OD, "d.popitem(last=False)", "x = 'a' in d", "print(list(d), x)"),
    case("dict subclass store / getitem", "class D(dict): pass\nd = D(k=0)", "d['k'] = 1", "x = d['k']",
         "print(d, x)"),
    case("dict subclass insert / len", "class D(dict): pass\nd = D(k=0)", "d['new'] = 1", "x = len(d)",
         "print(d, x)"),
    case("__missing__ subclass store / getitem",
         "class M(dict):\n    def __missing__(self, k):\n        return k * 2\nd = M()",
         "d['k'] = 'v'", "print(d['k'], d['j'])", "print(d)"),
    case("UserDict store / getitem", "d = collections.UserDict(k=0)", "d['k'] = 1", "x = d['k']", "print(d, x)"),
    case("UserDict store / get", "d = collections.UserDict(k=0)", "d['k'] = 1", "x = d.get('k')", "print(d, x)"),
    case("UserDict insert / len", "d = collections.UserDict(k=0)", "d['new'] = 1", "x = len(d)", "print(d, x)"),
    case("UserDict del / in", "d = collections.UserDict(k=0)", "del d['k']", "x = 'k' in d", "print(d, x)"),
    case("WeakValueDictionary store / get",
         "class O: pass\no = O(); d = weakref.WeakValueDictionary(); d['k'] = o",
         "d['k'] = o", "x = d.get('k') is o", "print(x, len(d))"),
    case("WeakValueDictionary insert / in",
         "class O: pass\no = O(); d = weakref.WeakValueDictionary()",
         "d['k'] = o", "x = 'k' in d", "print(x, len(d))"),
    case("ChainMap getitem / store to first map", "first = {}; cm = collections.ChainMap(first, {'k': 0})",
         "first['k'] = 1", "x = cm['k']", "print(x)"),
    case("ChainMap get / store to first map", "first = {}; cm = collections.ChainMap(first, {'k': 0})",
         "first['k'] = 1", "x = cm.get('k')", "print(x)"),
    case("ChainMap store / first map get", "first = {}; cm = collections.ChainMap(first, {'k': 0})",
         "cm['k'] = 1", "x = first.get('k')", "print(x, first)"),
]

KINDS_SAFE_UNORDERED = [
    case("defaultdict += other keys", DD, "d['a'] += 1", "d['b'] += 1"),
    case("Counter.update other keys", "c = collections.Counter()", "c.update(['a'])", "c.update(['b'])"),
    case("Counter most_common / most_common", CTR, "x = c.most_common()", "y = c.most_common()"),
    case("OrderedDict get / get", OD, "x = d.get('a')", "y = d['a']"),
    case("UserDict other keys", "d = collections.UserDict(k=0)", "d['a'] = 1", "d['b'] = 2"),
    case("ChainMap read / store to second map key", "first = {}; cm = collections.ChainMap(first, {'k': 0})",
         "first['other'] = 1", "x = cm['k']"),
]

# -- 2. sets --------------------------------------------------------------

SETS_RACY = [
    case("add / in", SETS, "s.add(3)", "x = 3 in s", "print(sorted(s), x)"),
    case("add / add same", SETS, "s.add(3)", "s.add(3)", "print(sorted(s))"),
    case("add / not in", SETS, "s.add(3)", "x = 3 not in s", "print(x)"),
    case("discard / in", SETS, "s.discard(1)", "x = 1 in s", "print(sorted(s), x)"),
    case("remove / in", SETS, "s.remove(1)", "x = 1 in s", "print(sorted(s), x)"),
    case("remove / add back", SETS, "s.remove(1)", "s.add(1)", "print(sorted(s))"),
    case("add / len", SETS, "s.add(3)", "x = len(s)", "print(x)"),
    case("add / for", SETS, "s.add(3)", "for x in s: pass"),
    case("add / sorted", SETS, "s.add(3)", "x = sorted(s)", "print(x)"),
    case("pop / in", "s = {7}", "s.pop()", "x = 7 in s", "print(s, x)"),
    case("pop / len", "s = {7}", "s.pop()", "x = len(s)", "print(s, x)"),
    case("update / in", SETS, "s.update([3])", "x = 3 in s", "print(sorted(s), x)"),
    case("update / update", SETS, "s.update([3])", "s.update({3, 4})", "print(sorted(s))"),
    case("|= / in", SETS, "global s; s |= {3}", "x = 3 in s", "print(sorted(s), x)"),
    case("-= / in", SETS, "global s; s -= {1}", "x = 1 in s", "print(sorted(s), x)"),
    case("intersection_update / in", SETS, "s.intersection_update({2})", "x = 1 in s", "print(sorted(s), x)"),
    case("difference_update / in", SETS, "s.difference_update([1])", "x = 1 in s", "print(sorted(s), x)"),
    case("add / s | w", SETS, "s.add(3)", "x = s | w", "print(sorted(x))"),
    case("add / w | s", SETS, "s.add(3)", "x = w | s", "print(sorted(x))"),
    case("add / s & w", SETS, "s.add(3)", "x = s & w", "print(sorted(x))"),
    case("add / s - w", SETS, "s.add(3)", "x = s - w", "print(sorted(x))"),
    case("add / s.union(w)", SETS, "s.add(3)", "x = s.union(w)", "print(sorted(x))"),
    case("add / w.union(s)", SETS, "s.add(3)", "x = w.union(s)", "print(sorted(x))"),
    case("add / s.issubset(w)", SETS, "s.add(3)", "x = s.issubset(w)", "print(x)"),
    case("check-then-act", "seen = set()", "if 5 not in seen: seen.add(5)", "if 5 not in seen: seen.add(5)",
         "print(seen)"),
    case("insert / keys() & u", "d = {'a': 1}; u = {'a', 'b'}", "d['new'] = 1", "x = d.keys() & u",
         "print(sorted(x))"),
    case("insert / u & keys()", "d = {'a': 1}; u = {'a', 'new'}", "d['new'] = 1",
         "x = u & d.keys()", "print(sorted(x))"),
    case("value write / items() & u", "d = {'a': 1}; u = {('a', 1)}", "d['a'] = 2",
         "x = d.items() & u", "print(x)"),
    case("insert / in keys()", "d = {'a': 1}", "d['new'] = 1", "x = 'new' in d.keys()", "print(x)"),
]

SETS_SAFE_UNORDERED = [
    case("add different elements", SETS, "s.add(3)", "s.add(4)"),
    case("add / in other element", SETS, "s.add(3)", "x = 4 in s"),
    case("discard absent / in absent", SETS, "s.discard(5)", "x = 5 in s"),
    case("add present / in", SETS, "s.add(1)", "x = 1 in s"),
    case("union / len", SETS, "x = s.union(w)", "y = len(s)"),
    case("remove / add other", SETS, "s.remove(1)", "s.add(5)"),
]

# -- 3. syntax forms --------------------------------------------------------

NEST = "d = {'o': {'i': 0}}"
FN = "def f(*a, **k): return a, k"

SYNTAX_RACY = [
    case("chained assign / getitem", KS, "y = d['k'] = 5", "x = d['k']", "print(d, x)"),
    case("getitem / chained assign", KS, "x = d['k']", "y = d['k'] = 5", "print(d)"),
    case("tuple target / getitem", KS, "d['k'], x = 1, 2", "x = d['k']", "print(d, x)"),
    case("for target / getitem", KS, "for d['k'] in range(3): pass", "x = d['k']", "print(d, x)"),
    case("del two / get", KS, "del d['j'], d['k']", "x = d.get('k')", "print(d, x)"),
    case("del two / get first", KS, "del d['j'], d['k']", "x = d.get('j')", "print(d, x)"),
    case("nested += / inner getitem", NEST, "d['o']['i'] += 1", "x = d['o']['i']", "print(d, x)"),
    case("nested += / nested +=", NEST, "d['o']['i'] += 1", "d['o']['i'] += 1", "print(d)"),
    case("insert / {**d}", KS, "d['new'] = 1", "x = {**d}", "print(x)"),
    case("value write / {**d}", KS, "d['k'] = 5", "x = {**d}", "print(x)"),
    case("insert / f(**d)", KS + "\n" + FN, "d['new'] = 1", "x = f(**d)", "print(x)"),
    case("insert / [*d]", KS, "d['new'] = 1", "x = [*d]", "print(x)"),
    case("insert / {*d}", KS, "d['new'] = 1", "x = {*d}", "print(sorted(x))"),
    case("insert / f(*d)", KS + "\n" + FN, "d['new'] = 1", "x = f(*d)", "print(x)"),
    case("insert / (*d,)", KS, "d['new'] = 1", "x = (*d,)", "print(x)"),
    case("store / match {'k': v}", KS, "d['k'] = 5", "match d:\n    case {'k': v}:\n        print(v)"),
    case("insert / match {'k': v}", "d = {}", "d['k'] = 5",
         "match d:\n    case {'k': v}:\n        print(v)\n    case _:\n        print('none')"),
    case("insert / match {**rest}", KS, "d['new'] = 1", "match d:\n    case {**rest}:\n        print(rest)"),
    case("value write / match {**rest}", KS, "d['k'] = 5", "match d:\n    case {**rest}:\n        print(rest)"),
    case("store / class body read", KS, "d['k'] = 5", "class C: x = d['k']", "print(C.x)"),
    case("store / class body +=", KS, "d['k'] = 5", "class C: d['k'] += 1", "print(d)"),
    case("getitem / class body store", KS, "x = d['k']", "class C: d['k'] = 7", "print(d)"),
    case("store / walrus", KS, "d['k'] = 5", "(x := d['k'])", "print(x)"),
    case("store / walrus in condition", KS, "d['k'] = 5", "if (x := d['k']) > 0: pass", "print(x)"),
    case("annotated store / getitem", KS, "d['k']: int = 5", "x = d['k']", "print(d, x)"),
    case("getitem / annotated store", KS, "x = d['k']", "d['k']: int = 5", "print(d)"),
    case("with ... as d[k] / getitem", KS, "with contextlib.nullcontext(7) as d['k']: pass", "x = d['k']",
         "print(d, x)"),
    case("getitem / with ... as d[k]", KS, "x = d['k']", "with contextlib.nullcontext(7) as d['k']: pass",
         "print(d)"),
]

SYNTAX_SAFE_UNORDERED = [
    case("nested += / other inner key", NEST, "d['o']['i'] += 1", "d['o']['z'] = 1"),
    case("nested read outer / nested read outer", NEST, "x = d['o']", "y = d['o']['i']"),
    case("match {'k': v} / store other key", KS, "d['j'] = 5", "match d:\n    case {'k': v}:\n        pass"),
    case("value write / [*d]", KS, "d['k'] = 5", "x = [*d]"),
    case("chained assign / store other key", KS, "y = d['k'] = 5", "d['j'] = 6"),
    case("for target / getitem other key", KS, "for d['k'] in range(3): pass", "x = d['j']"),
]

# -- 4. whole-map reads by C or uninstrumented code, each racing an insert ----

READERS = [
    ("f-string", "x = f'{d}'"),
    ("print", "print(d)"),
    ("percent", "x = '%s' % d"),
    ("str", "x = str(d)"),
    ("repr", "x = repr(d)"),
    ("join", "x = ','.join(d)"),
    ("[*d]", "x = [*d]"),
    ("{*d}", "x = {*d}"),
    ("d | {}", "x = d | {}"),
    ("reversed", "x = reversed(d)"),
    ("list(map(str, d))", "x = list(map(str, d))"),
    ("list(zip(d))", "x = list(zip(d))"),
    ("copy.copy", "x = copy.copy(d)"),
    ("copy.deepcopy", "x = copy.deepcopy(d)"),
    ("pickle.dumps", "x = pickle.dumps(d)"),
    ("dict.fromkeys", "x = dict.fromkeys(d)"),
    ("json.dumps nested", "x = json.dumps({'nested': d})"),
    ("print([d])", "print([d])"),
    ("print nested in tuple", "print(('t', d))"),
    ("format", "x = format(d)"),
    ("json.dumps in a list", "x = json.dumps([d])"),
    ("copy.deepcopy nested", "x = copy.deepcopy({'nested': d})"),
    ("print nested in a dict", "print({'nested': d})"),
]
READERS_RACY = [case(f"insert / {name}", "d = {'k': 1}", "d['new'] = 1", b) for name, b in READERS]

STORING_SETUP = (
    "d = {'k': 1}; lst = []\n"
    "def f(m): return 1\n"
    "ex = concurrent.futures.ThreadPoolExecutor(1)"
)
STORING_AFTER = "ex.shutdown()"
STORING_SAFE_UNORDERED = [
    case(f"insert / {name}", STORING_SETUP, "d['new'] = 1", b, STORING_AFTER)
    for name, b in [
        ("lst.append", "lst.append(d)"),
        ("Thread args", "x = threading.Thread(target=f, args=(d,))"),
        ("Thread kwargs", "x = threading.Thread(target=f, kwargs={'m': d})"),
        ("executor.submit", "fut = ex.submit(f, d); fut.result()"),
        ("isinstance", "x = isinstance(d, dict)"),
        ("id", "x = id(d)"),
        ("list display", "x = [d]"),
        ("tuple display", "x = (d, 1)"),
        ("type", "x = type(d)"),
    ]
]

RACY = KINDS_RACY + SETS_RACY + SYNTAX_RACY + READERS_RACY
SAFE_UNORDERED = KINDS_SAFE_UNORDERED + SETS_SAFE_UNORDERED + SYNTAX_SAFE_UNORDERED + STORING_SAFE_UNORDERED
# Programs whose stdout is compared with plain python's, racy and ordered.
COMPARED = [p for p in RACY if p.values[3]] + [
    case(f"insert / {name}", "d = {'k': 1}", "d['new'] = 1", b, "print(x)")
    for name, b in READERS if b.startswith("x = ") and name not in ("reversed", "d | {}")
]


@pytest.mark.parametrize("setup, a, b, after", RACY)
def test_unordered_pair_races_at_both_lines(setup, a, b, after):
    src, line_a, line_b = _racy(setup, a, b, after)
    run = race(src)
    assert run.returncode == 66, run.stderr
    assert run.lines() == {line_a, line_b}, run.stderr
    assert "WARNING: DATA RACE" in run.stderr


@pytest.mark.parametrize("setup, a, b, after", RACY)
def test_same_pair_ordered_by_a_lock_does_not_race(setup, a, b, after):
    run = race(_locked(setup, a, b, after))
    assert run.races == [], run.stderr
    assert run.returncode == 0, run.stderr
    assert "DATA RACE" not in run.stderr


@pytest.mark.parametrize("setup, a, b, after", SAFE_UNORDERED)
def test_unordered_pair_that_does_not_conflict_does_not_race(setup, a, b, after):
    src, _, _ = _racy(setup, a, b, after)
    run = race(src)
    assert run.races == [], run.stderr
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("setup, a, b, after", COMPARED)
def test_stdout_is_plain_pythons(setup, a, b, after):
    # Ordered by the lock, so both runs make the same interleaving.
    src = _locked(setup, a, b, after)
    run = race(src)
    plain = run_race(src, plain=True)
    assert plain.returncode == 0, plain.stderr
    assert run.stdout == plain.stdout
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(
    "setup, a, b, after",
    [p for p in RACY if p.id in (
        "defaultdict counter += / +=", "Counter += Counter / += Counter", "__missing__ subclass store / getitem",
        "check-then-act", "store / class body read", "insert / match {**rest}", "insert / {**d}",
    )] + [p for p in READERS_RACY if p.id in ("insert / print", "insert / print([d])")],
)
def test_racy_run_prints_what_plain_python_prints(setup, a, b, after):
    src, _, _ = _racy(setup, a, b, after)
    run = race(src)
    assert run.stdout == run_race(src, plain=True).stdout
    assert run.returncode == 66, run.stderr


def test_insert_in_a_python_missing_is_reported_where_it_is_written():
    # __missing__ is instrumented user code: its own store is the insert.
    run = race(
        """\
        import threading, time
        class M(dict):
            def __missing__(self, k):
                self[k] = 0
                return 0
        d = M()
        def other():
            x = d['k']
        t = threading.Thread(target=other); t.start()
        time.sleep(0.02)
        n = len(d)
        t.join()
        print(d, n)
        """
    )
    assert run.returncode == 66, run.stderr
    assert run.lines() == {4, 11}, run.stderr
    assert run.stdout == "{'k': 0} 1\n"


def test_an_executor_left_running_does_not_hang_the_run():
    # Plain python shuts the executor's idle worker down at exit; the
    # detector must not wait for it forever first.
    src = """\
        import concurrent.futures
        ex = concurrent.futures.ThreadPoolExecutor(1)
        print(ex.submit(len, {'k': 1}).result())
        """
    run = race(src)
    assert run.stdout == run_race(src, plain=True).stdout == "1\n"
    assert run.returncode == 0, run.stderr


def test_check_then_act_with_a_lock_held_across_both_does_not_race():
    run = race(
        """\
        import threading
        seen = set(); lock = threading.Lock()
        def w():
            for i in range(50):
                with lock:
                    if i not in seen:
                        seen.add(i)
        ts = [threading.Thread(target=w) for _ in range(2)]
        for t in ts: t.start()
        for t in ts: t.join()
        print(len(seen))
        """
    )
    assert run.races == [], run.stderr
    assert run.stdout == "50\n"


# -- 5. frames are kept -----------------------------------------------------

FRAMES = {
    "logging lineno funcName": """\
        import logging
        logging.basicConfig(format="%(lineno)d %(funcName)s %(message)s")
        def f(d):
            logging.warning("x %s", d['k'])
            logging.warning("map %s", d)
            d['k'] += 1
            logging.getLogger("n").error("again %r", d)
        f({'k': 1})
        logging.warning("module %s", {'a': 1})
        """,
    "warnings stacklevel": """\
        import warnings
        def f(d):
            warnings.warn("x", stacklevel=2)
            warnings.warn(f"y {d}", stacklevel=1)
        def g():
            d = {'k': 1}
            f(d)
        g()
        """,
    "sys._getframe": """\
        import sys
        def f(d):
            print(sys._getframe(0).f_code.co_name, d['k'])
            print(sys._getframe(1).f_code.co_name, len(d))
            print(sys._getframe(0).f_lineno, sys._getframe(0).f_locals.keys() >= {'d'})
        def g():
            f({'k': 1})
        g()
        """,
    "super().__init__(d)": """\
        class D(dict):
            def __init__(self, d):
                super().__init__(d)
                super().__setitem__('extra', len(d))
        d = {'k': 1}
        print(D(d), D(d)['k'])
        """,
    "eval with no namespace": """\
        def f(d):
            print(eval("d['k']"))
            print(eval("len(d)"), eval("sorted(locals())"))
        f({'k': 1})
        m = {'j': 2}
        print(eval("m['j']"))
        """,
    "locals() in a function": """\
        def f(d):
            d['k'] += 1
            x = d.get('k')
            print(len(d), d)
            print(locals())
        f({'k': 1})
        """,
    "locals() in a function with a nested call": """\
        def g(m):
            return m
        def f(d):
            y = g(g(d))
            d['k'] += 1
            print(sorted(locals()))
        f({'k': 1})
        """,
    "vars() and dir() in a function": """\
        def f(d):
            d['k'] += 1
            print(g(d), sorted(vars()), dir())
        def g(m): return m
        f({'k': 1})
        """,
    "traceback of a KeyError": """\
        def f(d):
            return d['missing']
        f({'k': 1})
        """,
}


@pytest.mark.parametrize("src", FRAMES.values(), ids=FRAMES.keys())
def test_frame_sensitive_code_behaves_as_plain_python(src):
    run = race(src)
    plain = run_race(src, plain=True)
    assert run.stdout == plain.stdout
    assert run.stderr == plain.stderr
    assert run.returncode == plain.returncode


def test_locals_shows_no_helper_names():
    run = race(
        """\
        def f(d):
            d['k'] += 1
            print(d, len(d))
            print(g(d))
            print(sorted(locals()))
        def g(m): return m
        f({'k': 1})
        """
    )
    assert run.stdout.splitlines()[-1] == "['d']", run.stdout


# -- 6. bad input -------------------------------------------------------------

BAD = {
    "__getitem__ override": """\
        class G(dict):
            def __getitem__(self, k):
                return 'got ' + str(k)
        g = G(a=1)
        print(g['a'], g['zz'], g.get('a'), 'zz' in g)
        g['b'] = 2
        print(g, len(g), sorted(g))
        """,
    "__contains__ and __setitem__ overrides": """\
        class C(dict):
            def __contains__(self, k):
                return True
            def __setitem__(self, k, v):
                super().__setitem__(k, v * 2)
        c = C()
        c['a'] = 1
        print('zz' in c, 'a' in c, c['a'], c)
        """,
    "__hash__ raises": """\
        class H:
            def __hash__(self):
                raise ValueError('no hash')
        d = {'k': 1}; s = {1}
        for name, op in [('set', lambda: d.__setitem__(H(), 1)), ('get', lambda: d.get(H())), ('in', lambda: H() in d)]:
            try:
                op()
            except ValueError as e:
                print(name, e)
        for stmt in ["d[H()] = 1", "d[H()]", "H() in d", "del d[H()]", "d.pop(H())", "d.setdefault(H(), 1)",
                     "d.get(H())", "s.add(H())", "H() in s", "s.discard(H())", "d[H()] += 1"]:
            try:
                exec(stmt)
            except ValueError as e:
                print(stmt, e)
        try:
            d[H()] = 1
        except ValueError as e:
            print('store', e)
        try:
            x = d[H()]
        except ValueError as e:
            print('load', e)
        try:
            d[H()] += 1
        except ValueError as e:
            print('aug', e)
        try:
            x = H() in s
        except ValueError as e:
            print('set in', e)
        try:
            s.add(H())
        except ValueError as e:
            print('set add', e)
        print(d, s)
        """,
    "__hash__ raises, uncaught": """\
        class H:
            def __hash__(self):
                raise ValueError('no hash')
        d = {}
        d[H()] = 1
        """,
    "__hash__ raises, caught": """\
        class H:
            def __hash__(self):
                raise ValueError('no hash')
        d = {}
        try:
            d[H()] = 1
        except ValueError as e:
            print('store', e)
        try:
            d.get(H())
        except ValueError as e:
            print('get', e)
        print(d)
        """,
    "a map method that raises runs once": """\
        import collections
        c = collections.Counter()
        try:
            c.update(['a', []])
        except TypeError as e:
            print('update', e)
        print(c)
        od = collections.OrderedDict()
        try:
            od.pop('x')
        except KeyError as e:
            print('od.pop', e)
        class D(dict):
            def pop(self, k):
                print('D.pop called', k)
                raise KeyError(k)
        d = D()
        try:
            d.pop('x')
        except KeyError as e:
            print('D.pop', e)
        s = {1}
        try:
            s.remove(5)
        except KeyError as e:
            print('remove', e)
        """,
    "mappingproxy reads": """\
        import types
        d = {'k': 1}
        mp = types.MappingProxyType(d)
        print(mp['k'], mp.get('k'), mp.get('zz', 0), 'k' in mp, len(mp), list(mp), dict(mp.items()))
        print(f"{mp}", [*mp], {**mp}, mp | {'z': 2}, mp == d, mp.copy())
        d['new'] = 2
        for k in mp: print(k, mp[k])
        try:
            mp['k'] = 3
        except TypeError as e:
            print('store', e)
        try:
            mp['missing']
        except KeyError as e:
            print('load', e)
        """,
    "mappingproxy read while another thread writes under a lock": """\
        import threading, types
        d = {'k': 1}; mp = types.MappingProxyType(d); lock = threading.Lock()
        def w():
            with lock:
                d['new'] = 2
        lock.acquire()
        t = threading.Thread(target=w); t.start()
        print(len(mp), mp.get('new'), sorted(mp))
        lock.release()
        t.join()
        print(len(mp), mp.get('new'), sorted(mp))
        """,
}


@pytest.mark.parametrize("src", BAD.values(), ids=BAD.keys())
def test_odd_maps_and_keys_behave_as_plain_python(src):
    run = race(src)
    plain = run_race(src, plain=True)
    assert run.stdout == plain.stdout
    assert run.stderr == plain.stderr
    assert run.returncode == plain.returncode
    assert run.races == []
