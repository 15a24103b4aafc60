"""Unit tests of the detector's pure parts: clocks, shadow state, the rewriter, suppressions."""

from __future__ import annotations

import _thread
import ast
import sys
import traceback

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapsafe.race import helpers, runtime
from mapsafe.race.clock import happens_before, join_into
from mapsafe.race.rewrite import rewrite
from mapsafe.race.shadow import Shadow
from mapsafe.race.suppress import SuppressionFileError, Suppressions

# -- clocks ------------------------------------------------------------------------


def test_join_is_pointwise_max():
    a = {0: 3, 1: 1}
    join_into(a, {1: 5, 2: 2, 0: 1})
    assert a == {0: 3, 1: 5, 2: 2}


def test_epoch_happens_before():
    assert happens_before(1, 4, {1: 4})
    assert not happens_before(1, 5, {1: 4})
    assert not happens_before(2, 1, {1: 9})


# -- shadow state (FastTrack) -------------------------------------------------------


def test_read_shared_remembers_every_concurrent_reader():
    s = Shadow(_thread.allocate_lock)
    d = {}
    t0 = {0: 1}
    t1 = {1: 1}
    t2 = {2: 1}
    assert s.key_read(d, "k", "r", 0, t0, None) is None
    assert s.key_read(d, "k", "r", 1, t1, None) is None  # concurrent reads: now read-shared
    # A writer ordered after reader 0 only still races with reader 1.
    races = s.key_write(d, "k", "w", False, 2, {0: 1, 2: 1}, None)
    assert [r.previous.tid for r in races] == [1]
    # A writer ordered after everything races with nobody.
    assert s.key_write(d, "k", "w", False, 0, {0: 2, 1: 1, 2: 1}, None) is None
    assert t2 == {2: 1}


@pytest.mark.parametrize("shared", [False, True])
def test_same_epoch_reads_are_not_recorded_twice(shared):
    s = Shadow(_thread.allocate_lock)
    d = {}
    if shared:  # another thread touched the map first: key states, not the owner's records
        s.key_read(d, "other", "r", 2, {2: 1}, None)
    s.key_read(d, "k", "first", 0, {0: 1, 2: 1}, None)
    s.key_read(d, "k", "second", 0, {0: 1, 2: 1}, None)
    races = s.key_write(d, "k", "w", False, 1, {1: 1}, None)
    assert races and races[0].previous.op == "first"


def test_value_writes_race_with_value_reads_but_not_key_set_reads():
    s = Shadow(_thread.allocate_lock)
    d = {"k": 1}
    s.whole_read(d, "len", False, 0, {0: 1}, None)
    assert s.key_write(d, "k", "w", False, 1, {1: 1}, None) is None
    s.whole_read(d, "copy", True, 0, {0: 1}, None)
    races = s.key_write(d, "k", "w", False, 1, {1: 2}, None)
    assert races and races[0].previous.op == "copy"


def test_sweep_forgets_only_dead_dicts():
    s = Shadow(_thread.allocate_lock)
    live = {}
    s.key_read(live, "k", "r", 0, {0: 1}, None)
    for _ in range(10):
        s.key_read({}, "k", "r", 0, {0: 1}, None)
    assert len(s.dicts) == 11
    s.sweep()
    assert list(s.dicts) == [id(live)]
    assert len(s.take_garbage()) == 10


def _begin(s, d, shared):
    """A map one thread owns (records in the owner tables), or one a second
    thread (tid 2) touched first (key states); the keys a test fills in then
    live in the returned table. Thread 0's clock {0: 1, 2: 1} is ordered after
    tid 2's access."""
    if shared:
        s.key_read(d, "other", "r", 2, {2: 1}, None)
    return s.dicts[id(d)] if shared else None


@pytest.mark.parametrize("shared", [False, True])
def test_history_keeps_at_most_n_key_states_per_dict_and_counts_what_it_forgot(shared):
    s = Shadow(_thread.allocate_lock, history=8)
    d = {}
    _begin(s, d, shared)
    for i in range(100):
        s.key_write(d, i, "w", True, 0, {0: 1, 2: 1}, None)  # one write each: one access per key
    ds = s.dicts[id(d)]
    keys = [k for k in ds.keys if k != "other"] if shared else list(ds.ow)
    assert len(keys) <= 8 and keys[-1] == 99  # the newest are kept
    assert s.forgotten() == 100 + shared - (len(ds.keys) + len(ds.ow) + len(ds.orr))  # one access each
    # A forgotten key's next access starts afresh: an unordered write by
    # another thread to key 0 finds nothing to race with (hidden, not invented)...
    assert s.key_write(d, 0, "w", False, 1, {1: 1}, None) is None
    # ...while a key still remembered races as before.
    races = s.key_write(d, 99, "w", False, 1, {1: 1}, None)
    assert races and races[0].previous.key == 99 and races[0].previous.tid == 0


@pytest.mark.parametrize("shared", [False, True])
def test_history_forgets_the_canonical_keys_of_forgotten_states_too(shared):
    class K:  # a key whose __eq__ is the program's: kept by identity (_ById)
        def __init__(self, n):
            self.n = n

        def __hash__(self):
            return hash(self.n)

        def __eq__(self, other):
            return isinstance(other, K) and other.n == self.n

    s = Shadow(_thread.allocate_lock, history=16)
    d = {}
    _begin(s, d, shared)
    for i in range(1000):
        s.key_read(d, K(i), "r", 0, {0: 1, 2: 1}, None)
    ds = s.dicts[id(d)]
    kept = len(ds.keys) + len(ds.orr)
    assert kept <= 17 and len(ds.canon) <= 17  # bounded, not 1000
    assert s.forgotten() == 1000 + shared - kept


@pytest.mark.parametrize("bad", [0, -1])
def test_history_below_one_is_refused(bad):
    with pytest.raises(ValueError, match="history must be at least 1"):
        Shadow(_thread.allocate_lock, history=bad)


# -- the rewriter ------------------------------------------------------------------


def _run(src: str, instrument: bool) -> dict:
    tree = ast.parse(src)
    ns: dict = dict(helpers.HELPERS) if instrument else {}
    code = compile(rewrite(tree) if instrument else tree, "<snippet>", "exec")
    exec(code, ns)
    return {k: v for k, v in ns.items() if k not in helpers.HELPERS and not k.startswith("__") and not callable(v)}


ORDER = """\
log = []
def f(x):
    log.append(x)
    return x
d = {"a": {"b": 1}, "k": 0}
d[f("k")] = f(5)
d[f("a")][f("b")] += f(10)
del d[f("k")], d[f("a")][f("b")]
x = f(d).get(f("zz"), f("dflt"))
y = f("a") in f(d)
"""


def test_evaluation_order_is_pythons():
    plain = _run(ORDER, False)
    assert _run(ORDER, True) == plain
    assert plain["log"][:6] == [5, "k", "a", "b", 10, "k"]  # the value first, as Python does


def test_annotations_are_untouched():
    src = "from __future__ import annotations\ndef f(x: dict[str, int]) -> list[int]: pass\nA: dict[str, int] = {}\n"
    tree = rewrite(ast.parse(src))
    ns = dict(helpers.HELPERS)
    exec(compile(tree, "<a>", "exec"), ns)
    assert ns["f"].__annotations__ == {"x": "dict[str, int]", "return": "list[int]"}
    assert "getitem" not in ast.unparse(tree).split("def f")[1].split(":")[0]


def test_tracebacks_point_at_the_users_line():
    src = "d = {}\n\n\nx = d['missing']\n"
    ns = dict(helpers.HELPERS)
    with pytest.raises(KeyError) as info:
        exec(compile(rewrite(ast.parse(src)), "<tb>", "exec"), ns)
    lines = [f.lineno for f in traceback.extract_tb(info.value.__traceback__) if f.filename == "<tb>"]
    assert lines == [4]


def test_helpers_leave_non_dicts_alone():
    class Weird:
        def __getitem__(self, k):
            return ("got", k)

        def get(self, *a, **kw):
            return ("get", a, kw)

    assert helpers.getitem(Weird(), 3) == ("got", 3)
    assert helpers.call(Weird(), "get", 1, name="x") == ("get", (1,), {"name": "x"})
    assert helpers.arg(len, [1, 2]) == [1, 2]


# -- suppressions ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["nonsense", "file:", "line:app.py", "line:app.py:x", "bogus:thing"])
def test_bad_suppression_lines_are_rejected_with_their_line_number(text):
    with pytest.raises(SuppressionFileError, match=r"supp:2:"):
        Suppressions.parse("# comment\n" + text + "\n", "supp")


def test_suppression_rules_parse():
    s = Suppressions.parse("file:*/vendor/*\nfunc:worker_*  # trailing comment\nline:app.py:12\nrace:helper.py\n")
    assert [r.kind for r in s.rules] == ["file", "func", "line", "race"]


def test_no_detector_means_no_overhead_beyond_the_call():
    assert helpers.active_detector() is None
    d = {"k": 1}
    helpers.setitem(2, d, "k")
    assert d == {"k": 2} and sys.getrefcount(d) == 2


# -- property: instrumentation never changes what a program does -----------------


_KEYS = st.sampled_from(["0", "1", "2", "(1, 2)", "'a'"])
_STATEMENTS = st.one_of(
    st.builds("d[{}] = {}".format, _KEYS, st.integers(0, 9)),
    st.builds("out.append(d[{}])".format, _KEYS),
    st.builds("out.append(d.get({}, -1))".format, _KEYS),
    st.builds("out.append(d.pop({}, None))".format, _KEYS),
    st.builds("out.append(d.setdefault({}, 5))".format, _KEYS),
    st.builds("del d[{}]".format, _KEYS),
    st.builds("d[{}] += 1".format, _KEYS),
    st.builds("out.append({} in d)".format, _KEYS),
    st.builds("d.update({{{}: 7}})".format, _KEYS),
    st.just("out.append(len(d))"),
    st.just("out.append(sorted(map(str, d)))"),
    st.just("out.append([k for k in d])"),
    st.just("out.append(d == {0: 0})"),
    st.just("out.append(d.popitem() if d else None)"),
    st.just("out.append(list(d.items()))"),
    st.just("d.clear()"),
)


def _outcome(src: str, instrument: bool) -> tuple:
    ns: dict = dict(helpers.HELPERS) if instrument else {}
    tree = ast.parse(src)
    code = compile(rewrite(tree) if instrument else tree, "<prop>", "exec")
    try:
        exec(code, ns)
        error = None
    except Exception as exc:  # the same exception, at the same statement
        error = (type(exc), str(exc))
    return ns["d"], ns["out"], error


@settings(max_examples=60, deadline=None)
@given(st.lists(_STATEMENTS, max_size=25))
def test_instrumented_code_behaves_like_plain_code_and_one_thread_never_races(statements):
    src = "d = {}\nout = []\n" + "\n".join(statements) + "\n"
    plain = _outcome(src, instrument=False)
    found = []
    detector = runtime.Detector(found.append)
    helpers.start(detector)
    try:
        traced = _outcome(src, instrument=True)
    finally:
        helpers.stop()
    assert traced == plain
    assert found == [] and not detector.warned


def test_rewrite_after_pytest_assertion_rewriting_compiles():
    # Bug: pytest adds imports with a line number and no end; filling the end
    # from the module (line 1) gave an invalid range and compile() failed,
    # so `pytest --mapsafe-race` could not import such a test module.
    import ast

    from _pytest.assertion.rewrite import rewrite_asserts

    from mapsafe.race.rewrite import rewrite
    from mapsafe.race.helpers import HELPERS

    source = b'"""doc"""\n\nimport os\n\n\ndef test_x():\n    d = {"a": 1}\n    assert d["a"] == 1\n'
    tree = ast.parse(source)
    rewrite_asserts(tree, source, "test_x.py", None)
    code = compile(rewrite(tree), "test_x.py", "exec")
    namespace: dict = dict(HELPERS)  # what the loader injects
    exec(code, namespace)  # noqa: S102 - our own source string
    namespace["test_x"]()


def test_a_fault_of_the_detector_itself_warns_once_and_a_fault_of_user_code_is_silent():
    warnings: list = []
    detector = runtime.Detector(None, warn=warnings.append)
    d: dict = {}
    frame = sys._getframe()
    detector.access(detector.key_read, d, frame)  # missing arguments: the detector's own fault
    detector.access(detector.key_read, d, frame)

    class BadEq:
        def __hash__(self):
            return 1

        def __eq__(self, other):
            raise TypeError("user eq")

    detector.read_key(d, 1, "d[k]", frame)
    detector.read_key(d, BadEq(), "d[k]", frame)  # user code raised: the program's to raise
    assert len(warnings) == 1 and "internal error (TypeError" in warnings[0], warnings


@pytest.mark.parametrize(
    "cur, prev, kind",
    [
        (("d[k] += v", True, "k", ""), ("d[k] = v", True, "k", ""), "lost-update"),
        (("d[k] += v (read)", False, "k", ""), ("d[k] += v", True, "k", ""), "lost-update"),
        (("Counter.update (read-modify-write)", True, "k", ""), ("d[k]", False, "k", ""), "lost-update"),
        (("d[k] (missing: inserts)", True, "k", ""), ("d[k] (missing: inserts)", True, "k", ""), "lost-update"),
        (("in", False, "k", ""), ("d[k] = v", True, "k", ""), "check-then-act"),
        (("s.add (present)", False, 1, ""), ("s.discard", True, 1, ""), "check-then-act"),
        (("iteration", False, None, "keys"), ("d[k] = v", True, "new", ""), "iteration"),
        (("len()", False, None, "keys"), ("d[k] = v", True, "new", ""), "torn-read"),
        (("formatting", False, None, "values"), ("d[k] = v", True, "k", ""), "torn-read"),
        (("d.clear()", True, None, "clear"), ("d.get", False, "k", ""), "clear"),
        (("move_to_end", True, "a", ""), ("move_to_end", True, "b", ""), "reorder"),
        (("d[k] = v", True, "k", ""), ("d.pop", True, "k", ""), "write-write"),
        (("d.get", False, "k", ""), ("d[k] = v", True, "k", ""), "read-write"),
    ],
)
def test_each_race_is_named_by_its_consequence(cur, prev, kind):
    from mapsafe.race.consequence import classify
    from mapsafe.race.shadow import Access, Race

    def access(tid, spec):
        op, write, key, whole = spec
        return Access(tid, 1, op, write, key, whole, ())

    race = Race(0x10, (), False, access(1, cur), access(2, prev))
    consequence = classify(race)
    assert consequence.kind == kind
    assert consequence.text and consequence.fix
    # The same pair seen from the other side is the same consequence.
    assert classify(Race(0x10, (), False, access(2, prev), access(1, cur))).kind == kind


# -- the C core of the helpers -------------------------------------------------------

import collections  # noqa: E402
import copy  # noqa: E402
import os  # noqa: E402

_C_HELPERS = ("getitem", "setitem", "get", "contains", "wcall1", "arg", "fmt")


def test_the_helpers_run_on_the_core_mapsafe_core_chooses():
    want = "python" if os.environ.get("MAPSAFE_CORE", "auto").strip().lower() == "python" else "c"
    # Not a skip: the C core is built by the README's install; a missing one is a broken setup.
    assert helpers.CORE == want, f"MAPSAFE_CORE={os.environ.get('MAPSAFE_CORE', 'auto')}, helpers on {helpers.CORE}"
    for name in _C_HELPERS:
        fn = getattr(helpers._namespace, name)
        assert (fn is getattr(helpers, name)) == (want == "python"), name


def _call_outcome(fn, args):
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # the operation's own error, as plain Python raises it
        return ("raised", type(exc), str(exc))


def _recorded(D):
    """What the detector remembers: per dict, per key, the ops of its last
    write and read, whether kept as key states or as the owner's records."""
    from mapsafe.race import packed as packed_
    from mapsafe.race import shadow

    def op(acc):
        return None if acc is None else acc.op if isinstance(acc, shadow.Access) else "shared"

    def own_op(packed):
        return None if packed is None else packed_.unpack(packed)[1]

    out = []
    for ds in D.shadow.dicts.values():
        seen = {k: (op(ks.w), op(ks.r)) for k, ks in ds.keys.items()}
        for k in set(ds.ow) | set(ds.orr):
            assert k not in seen  # a key's state is in one place
            seen[k] = (own_op(ds.ow.get(k)), own_op(ds.orr.get(k)))
        out.append(sorted(
            (repr(k.obj if type(k).__name__ == "_ById" else k), w, r) for k, (w, r) in seen.items()
        ))
    return sorted(out)


_objects = st.one_of(
    st.dictionaries(st.one_of(st.text(max_size=2), st.integers(-3, 3)), st.integers(), max_size=4),
    st.lists(st.integers(), max_size=4),
    st.tuples(st.integers(), st.text(max_size=1)),
    st.text(max_size=3),
    st.sets(st.integers(-3, 3), max_size=3),
    st.builds(lambda d: collections.defaultdict(int, d), st.dictionaries(st.text(max_size=1), st.integers(), max_size=3)),
    st.builds(collections.Counter, st.text(max_size=4)),
    st.none(),
)
_keys = st.one_of(st.text(max_size=2), st.integers(-3, 5), st.tuples(st.integers(0, 2)), st.just([1]), st.none(),
                  st.booleans(), st.floats(allow_nan=False, width=16))
_callees = st.sampled_from([len, sorted, list, repr, str, print, bool])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_c_helpers_do_what_the_python_helpers_do(data):
    if helpers._C is None:
        pytest.skip("MAPSAFE_CORE=python: the C core is compared in the C-core pass")
    name = data.draw(st.sampled_from(_C_HELPERS))
    obj = data.draw(_objects)
    if name == "getitem":
        args = (obj, data.draw(_keys))
    elif name == "setitem":
        args = (data.draw(st.integers()), obj, data.draw(_keys)) + data.draw(st.sampled_from([(), ("d[k] += v",)]))
    elif name == "get":
        args = (obj, data.draw(_keys)) + data.draw(st.sampled_from([(), (0,)]))
    elif name == "contains":
        args = (data.draw(_keys), obj)
    elif name == "fmt":
        args = (obj,)
    else:  # wcall1, arg
        callee = data.draw(_callees)
        if callee is print:
            callee = repr  # no output in a test
        args = (callee, obj)
    results = []
    for fn in (getattr(helpers, name), getattr(helpers._C, name)):
        D = runtime.Detector(None)
        mine = copy.deepcopy(args)
        helpers.start(D)
        try:
            outcome = _call_outcome(fn, mine)
        finally:
            helpers.stop()
        results.append((outcome, repr(mine), _recorded(D)))
    assert results[0] == results[1]


def _frames_at(depth, out):
    if depth:
        return _frames_at(depth - 1, out)
    out.append(sys._getframe())
    return out


@pytest.mark.parametrize("depth", [0, 1, 3, 8, 12])
@pytest.mark.parametrize("stop", [True, False])
def test_the_c_capture_gives_the_stacks_the_python_one_gives(depth, stop):
    from mapsafe.race import shadow

    if helpers._C is None:
        pytest.skip("MAPSAFE_CORE=python: the C core is compared in the C-core pass")
    frame = _frames_at(depth, [])[0]
    # The outer frames include this one, at its current line: compare on one line.
    c, p = shadow.capture(frame, 64, stop), shadow.py_capture(frame, 64, stop)
    assert c == p and len(c) > depth and c[0] == (frame.f_code, frame.f_lineno)
    for limit in {1, depth + 1}:  # only the finished frames of _frames_at: their lines are fixed
        got = [shadow.capture(frame, limit, stop) for _ in range(2)]
        assert got[0] == shadow.py_capture(frame, limit, stop) and len(got[0]) == limit
        assert got[0] is got[1]  # interned: the same tuple again
    assert shadow.capture(None) == () == shadow.py_capture(None)


# -- one thread's map: the owner phase ---------------------------------------------

from mapsafe.race import shadow as _shadow  # noqa: E402

_SITES = [_frames_at(n, [])[0] for n in range(3)]  # three frames with distinct stacks
_STEP = st.tuples(
    st.sampled_from(["read", "write", "insert", "delete", "len", "copy", "clear", "move", "sync", "tick"]),
    st.integers(0, 2),  # the thread (for sync: the acquirer)
    st.sampled_from(["a", "b", 7]),  # the key
    st.integers(0, 2),  # the site (for sync: the releaser)
)


def _play(steps, owner_phase):
    """Run ``steps`` on a Shadow; every race found, per step, as comparable tuples."""
    s = Shadow(_thread.allocate_lock, owner_phase=owner_phase)
    d = {}
    vcs = {t: {t: 1} for t in range(3)}
    found = []

    def side(acc):
        return (acc.tid, acc.clk, acc.op, acc.write, repr(acc.key) if not acc.whole else None, acc.whole,
                acc.frames)

    for op, t, key, site in steps:
        vc, frame = vcs[t], _SITES[site]
        if op == "sync":  # thread `site` releases, thread `t` acquires: an edge
            if site != t:
                join_into(vc, vcs[site])
                vcs[site][site] += 1
            continue
        if op == "tick":
            vc[t] += 1
            continue
        races = {
            "read": lambda: s.key_read(d, key, "d[k]", t, vc, frame),
            "write": lambda: s.key_write(d, key, "d[k] = v", False, t, vc, frame),
            "insert": lambda: s.key_write(d, key, "d[k] = v", True, t, vc, frame),
            "delete": lambda: s.key_write(d, key, "del d[k]", True, t, vc, frame),
            "len": lambda: s.whole_read(d, "len", False, t, vc, frame),
            "copy": lambda: s.whole_read(d, "copy", True, t, vc, frame),
            "clear": lambda: s.clear(d, "d.clear", t, vc, frame),
            "move": lambda: s.order_write(d, key, "d.move_to_end", t, vc, frame),
        }[op]()
        found.append(sorted(((side(r.current), side(r.previous)) for r in races or ()), key=repr))
    return found, s.forgotten()


@settings(max_examples=int(__import__("os").environ.get("OWNER_EXAMPLES", "400")), deadline=None)
@given(st.lists(_STEP, max_size=40))
def test_the_owner_phase_finds_the_races_full_tracking_finds_with_the_same_stacks(steps):
    # The phase keeps a one-thread map's history as packed records and turns
    # them into key states later: the same races must come out, step by step,
    # naming the same earlier accesses (thread, epoch, op, key, stack).
    assert _play(steps, True) == _play(steps, False)


def test_a_map_one_thread_fills_costs_no_object_per_key():
    import gc

    s = Shadow(_thread.allocate_lock)
    d = {}
    s.key_read(d, "warm-up", "d[k]", 0, {0: 1}, None)  # the map's own state, made once

    def detector_objects():
        return sum(type(o) in (_shadow.Access, _shadow._KeyState) for o in gc.get_objects())

    before = detector_objects()
    for i in range(1000):
        s.key_write(d, i, "d[k] = v", True, 0, {0: 1}, None)
        s.key_read(d, i, "d[k]", 0, {0: 1}, None)
    assert detector_objects() == before
    ds = s.dicts[id(d)]
    assert not ds.keys and len(ds.ow) == 1000 and ds.owner == 0
    # A second thread's unordered read of one key: the phase ends, that key
    # (and only it) gets a key state, and the race names the owner's write.
    races = s.key_read(d, 5, "d[k]", 1, {1: 1}, None)
    assert [(r.previous.tid, r.previous.op, r.previous.key) for r in races] == [(0, "d[k] = v", 5)]
    assert ds.owner is None and list(ds.keys) == [5] and len(ds.ow) == 999


def test_owner_records_past_the_stack_table_bound_show_no_stack_never_a_wrong_one(monkeypatch):
    from mapsafe.race import packed

    monkeypatch.setattr(packed, "STACKS", [()])
    monkeypatch.setattr(packed, "STACK_INDEX", {id(()): 0})
    monkeypatch.setattr(packed, "OPS", ["access"])
    monkeypatch.setattr(packed, "OP_INDEX", {"access": 0})
    monkeypatch.setattr(packed, "STACK_BITS", 1)  # room for one stack past ()
    monkeypatch.setattr(packed, "OP_BITS", 1)  # and one op past "access"
    stacks = [((code, 1),) for code in (packed.pack.__code__, packed.unpack.__code__)]
    ops = ["d[k]", "d.get"]
    got = [packed.unpack(packed.pack(3, op, stack)) for op, stack in zip(ops, stacks)]
    assert got == [(3, "d[k]", stacks[0]), (3, "access", ())]  # the second is past both bounds
