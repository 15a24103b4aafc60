"""Whole-program lint: thread code, classes and maps followed across the files of a tree, one shape per test."""

from __future__ import annotations

import json
import textwrap

from mapsafe.lint.checker import Selection, lint_paths
from mapsafe.lint.report_json import render as render_json
from mapsafe.lint.report_sarif import build as build_sarif
from mapsafe.lint.report_text import render as render_text


def lint_tree(root, files: dict[str, str], select=("MS",), max_depth=None):
    """Write ``files`` (relative path -> source) under ``root`` and lint the tree as one program."""
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    kw = {} if max_depth is None else {"max_depth": max_depth}
    result = lint_paths([str(root)], Selection(select), **kw)
    for f in result.findings:
        f.path = str(f.path).replace(str(root) + "/", "")
    return result


def where(result) -> list[tuple[str, int, str]]:
    return sorted((f.path, f.line, f.code) for f in result.findings)


STORE = """
    class Store:
        def __init__(self):
            self._cache = {}

        def refresh(self, k):
            self._cache[k] = k

        def dump(self):
            return [k for k in self._cache]
"""


def test_a_thread_started_in_one_file_writes_a_map_through_a_method_of_another(tmp_path):
    result = lint_tree(tmp_path, {
        "app/__init__.py": "",
        "app/store.py": STORE,
        "app/svc.py": """
            import threading
            from .store import Store

            class Poller:
                def __init__(self):
                    self.store = Store()

                def run(self):
                    while True:
                        self.store.refresh(1)

                def start(self):
                    threading.Thread(target=self.run).start()

                def report(self):
                    return self.store.dump()
        """,
    })
    assert where(result) == [("app/store.py", 7, "MS201"), ("app/store.py", 10, "MS202")]
    (write,) = [f for f in result.findings if f.code == "MS201"]
    assert "Poller.run() runs via Thread(target=...) at " in write.message and "svc.py:14" in write.message
    assert [step for step, _, _ in write.trace] == [
        "Poller.run (thread via Thread(target=...))", "Store.refresh", f"{tmp_path}/app/store.py:7"]
    assert write.trace[0][1:] == (str(tmp_path / "app/svc.py"), 14)
    assert write.trace[1][1:] == (str(tmp_path / "app/svc.py"), 11)  # where run() calls refresh()


def test_the_finding_names_its_path_in_text_json_and_sarif(tmp_path):
    result = lint_tree(tmp_path, {
        "app/__init__.py": "",
        "app/store.py": STORE,
        "app/svc.py": """
            import threading
            from app.store import Store
            STORE = Store()

            def poll():
                STORE.refresh(1)

            def main():
                threading.Thread(target=poll).start()
                print(STORE.dump())
        """,
    })
    write = [f for f in result.findings if f.code == "MS201"]
    assert write, where(result)
    f = write[0]
    assert [step for step, _, _ in f.trace][:2] == ["poll (thread via Thread(target=...))", "Store.refresh"]
    text = render_text([f])
    assert "[path: poll (thread via Thread(target=...)) at " in text and " → Store.refresh at " in text
    (data,) = json.loads(render_json([f]))
    assert [step["step"] for step in data["call_path"]][:2] == ["poll (thread via Thread(target=...))", "Store.refresh"]
    flow = build_sarif([f])["runs"][0]["results"][0]["codeFlows"][0]["threadFlows"][0]["locations"]
    assert len(flow) == len(f.trace) and flow[-1]["location"]["physicalLocation"]["region"]["startLine"] == f.line


def test_a_local_alias_is_the_same_map(tmp_path):
    result = lint_tree(tmp_path, {"m.py": """
        import threading

        class Registry:
            def __init__(self):
                self._workers = {}
                threading.Thread(target=self._reap).start()

            def _reap(self):
                workers = self._workers
                for name in workers:
                    print(name)

            def add(self, name, w):
                self._workers[name] = w
    """})
    assert ("m.py", 11, "MS202") in where(result)


def test_a_map_of_another_object_reached_through_an_attribute(tmp_path):
    result = lint_tree(tmp_path, {
        "pool.py": """
            class Pool:
                def __init__(self):
                    self.workers = {}
        """,
        "mgr.py": """
            import threading
            from pool import Pool

            class Manager:
                def __init__(self, pool: Pool):
                    self.pool = pool
                    threading.Thread(target=self.watch).start()

                def watch(self):
                    for w in self.pool.workers.values():
                        print(w)

                def hire(self, name):
                    self.pool.workers[name] = object()
        """,
    })
    assert ("mgr.py", 11, "MS202") in where(result)


def test_a_thread_subclass_of_a_projects_own_thread_class_in_another_file(tmp_path):
    result = lint_tree(tmp_path, {
        "base.py": """
            import threading

            class Service(threading.Thread):
                daemon = True
        """,
        "state.py": "CACHE = {}\n",
        "worker.py": """
            import state
            from base import Service

            class Refresher(Service):
                def run(self):
                    state.CACHE["k"] = 1

            def dump():
                return [k for k in state.CACHE]
        """,
    })
    assert ("worker.py", 7, "MS201") in where(result)


def test_a_function_that_starts_a_thread_on_its_argument_is_a_wrapper(tmp_path):
    result = lint_tree(tmp_path, {
        "util/__init__.py": "from .spawn import spawn\n",  # a re-export
        "util/spawn.py": """
            import threading

            def spawn(fn, *args):
                t = threading.Thread(target=fn, args=args, daemon=True)
                t.start()
                return t
        """,
        "app.py": """
            from util import spawn
            seen = set()

            def collect(x):
                seen.add(x)

            def main():
                spawn(collect, 1)
                for x in seen:
                    print(x)
        """,
    })
    found = where(result)
    assert ("app.py", 6, "MS201") in found and ("app.py", 10, "MS202") in found
    (write,) = [f for f in result.findings if f.code == "MS201"]
    assert "spawn()" in write.message


def test_a_periodic_timer_class_that_calls_back_runs_the_callback_on_its_thread(tmp_path):
    result = lint_tree(tmp_path, {
        "timer.py": """
            import threading

            class Periodic(threading.Thread):
                def __init__(self, interval, callback):
                    super().__init__(daemon=True)
                    self.interval, self.callback = interval, callback
                    self.cb = callback

                def run(self):
                    while True:
                        self.cb()
        """,
        "stats.py": """
            from collections import defaultdict
            from timer import Periodic
            counts = defaultdict(int)

            def tick():
                for k in counts:
                    counts[k] = 0

            def hit(k):
                counts[k] += 1

            Periodic(1.0, tick).start()
        """,
    })
    found = where(result)
    assert ("stats.py", 7, "MS202") in found, found


def test_a_project_dict_subclass_in_another_file_is_a_map(tmp_path):
    result = lint_tree(tmp_path, {
        "maps.py": """
            class AttrDict(dict):
                pass
        """,
        "job.py": """
            import threading
            from maps import AttrDict
            results = AttrDict()

            def work(i):
                results[i] = i * i

            def main():
                threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
                for t in threads:
                    t.start()
                return [k for k in results]
        """,
    })
    assert ("job.py", 7, "MS201") in where(result) and ("job.py", 13, "MS202") in where(result)


def test_the_same_tree_with_a_lock_is_clean(tmp_path):
    result = lint_tree(tmp_path, {
        "app/__init__.py": "",
        "app/store.py": """
            import threading

            class Store:
                def __init__(self):
                    self._cache = {}
                    self._lock = threading.Lock()

                def refresh(self, k):
                    with self._lock:
                        self._cache[k] = k

                def dump(self):
                    with self._lock:
                        return [k for k in self._cache]
        """,
        "app/svc.py": """
            import threading
            from .store import Store
            STORE = Store()

            def main():
                threading.Thread(target=STORE.refresh, args=(1,)).start()
                return STORE.dump()
        """,
    })
    assert where(result) == []


def test_import_cycles_and_recursive_calls_terminate(tmp_path):
    result = lint_tree(tmp_path, {
        "a.py": """
            import threading
            import b
            SEEN = {}

            def ping(n):
                SEEN[n] = 1
                b.pong(n - 1)

            def main():
                threading.Thread(target=ping, args=(3,)).start()
                return [k for k in SEEN]
        """,
        "b.py": """
            import a
            from a import ping as again

            def pong(n):
                if n:
                    a.ping(n)
                    again(n)
        """,
    })
    assert ("a.py", 7, "MS201") in where(result)


def test_an_unparsable_file_is_one_ms000_and_the_rest_is_still_linted(tmp_path):
    result = lint_tree(tmp_path, {
        "old.py": "print 'python 2'\n",
        "new.py": """
            import threading
            d = {}
            def w():
                d[1] = 2
            def main():
                threading.Thread(target=w).start()
                return [k for k in d]
        """,
    })
    found = where(result)
    assert ("old.py", 1, "MS000") in found and ("new.py", 5, "MS201") in found


def test_the_call_depth_bound_stops_the_walk(tmp_path):
    files = {"deep.py": """
        import threading
        d = {}
        def f0(): f1()
        def f1(): f2()
        def f2(): f3()
        def f3(): d[1] = 1
        def main():
            threading.Thread(target=f0).start()
            return [k for k in d]
    """}
    assert ("deep.py", 7, "MS201") in where(lint_tree(tmp_path, files))
    assert where(lint_tree(tmp_path, files, max_depth=2)) == []


NATIVE = {
    "app.py": """
        import nativelib
        EVENTS = {}

        def on_event(name):
            EVENTS[name] = EVENTS.get(name, 0) + 1

        def handler(k):
            EVENTS[k] = 1

        def main():
            client = nativelib.Client()
            client.add_callback(handler)
            return list(EVENTS)
    """,
}


def test_thread_entries_name_callbacks_the_linter_cannot_see(tmp_path):
    assert where(lint_tree(tmp_path, NATIVE)) == []  # nothing here starts a thread that the linter sees
    result = lint_paths([str(tmp_path)], Selection(("MS",)),
                        thread_entries=["app:on_event", "nativelib.Client.add_callback", "app:nope", "x.y"])
    found = sorted((f.path.rsplit("/", 1)[-1], f.line, f.code) for f in result.findings)
    assert ("app.py", 6, "MS203") in found and ("app.py", 9, "MS201") in found, found
    assert result.warnings == ["thread-entries: 'app:nope' matches nothing in the linted files",
                               "thread-entries: 'x.y' matches nothing in the linted files"]


def test_cli_max_call_depth_must_be_positive(tmp_path, capsys):
    from mapsafe.cli import main

    (tmp_path / "a.py").write_text("x = 1\n")
    assert main(["lint", "--max-call-depth", "0", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max-call-depth must be at least 1, got 0" in err[0]


def test_the_cache_gives_the_same_findings_and_skips_an_unchanged_tree(tmp_path):
    from mapsafe.lint.cache import Cache

    tree = tmp_path / "tree"
    files = {
        "app/__init__.py": "",
        "app/store.py": STORE,
        "app/svc.py": """
            import threading
            from .store import Store
            STORE = Store()

            def main():
                threading.Thread(target=STORE.refresh, args=(1,)).start()
                local = {1: 1}
                for k in local:
                    del local[k]
                return STORE.dump()
        """,
    }
    cold = lint_tree(tree, files)
    cache = Cache(str(tmp_path))
    first = lint_paths([str(tree)], Selection(("MS",)), cache=cache)
    assert (cache.hits, cache.misses) == (0, 1)
    warm_cache = Cache(str(tmp_path))
    warm = lint_paths([str(tree)], Selection(("MS",)), cache=warm_cache)
    assert (warm_cache.hits, warm_cache.misses) == (1, 0)
    for run in (first, warm):
        for f in run.findings:
            f.path = str(f.path).replace(str(tree) + "/", "")
        assert [(f.path, f.line, f.code, f.message, f.trace) for f in run.findings] == [
            (f.path, f.line, f.code, f.message, f.trace) for f in cold.findings]
    assert {f.code for f in warm.findings} >= {"MS101", "MS201"}
    # A changed file changes the key: the whole program is checked again.
    (tree / "app/store.py").write_text(textwrap.dedent(STORE).replace("self._cache[k] = k", "pass"))
    changed_cache = Cache(str(tmp_path))
    changed = lint_paths([str(tree)], Selection(("MS",)), cache=changed_cache)
    assert (changed_cache.hits, changed_cache.misses) == (0, 1)
    assert "MS201" not in {f.code for f in changed.findings}
    # A corrupt entry is a miss, never an error; the selection applies to cached findings too.
    for entry in (tmp_path / ".mapsafe_cache").rglob("*.json"):
        entry.write_text("{not json")
    again = lint_paths([str(tree)], Selection(("MS1",)), cache=Cache(str(tmp_path)))
    assert {f.code for f in again.findings} == {"MS101"}
    assert (tmp_path / ".mapsafe_cache" / ".gitignore").read_text().endswith("*\n")


def test_no_cache_writes_nothing(tmp_path, monkeypatch):
    from mapsafe.cli import main

    (tmp_path / "a.py").write_text("d = {}\nfor k in d:\n    del d[k]\n")
    monkeypatch.chdir(tmp_path)
    assert main(["lint", "--no-cache", "a.py"]) == 1
    assert not (tmp_path / ".mapsafe_cache").exists()
    assert main(["lint", "a.py"]) == 1
    assert (tmp_path / ".mapsafe_cache").is_dir()


def test_threads_a_helper_starts_and_joins_do_not_race_with_its_callers_code(tmp_path):
    result = lint_tree(tmp_path, {
        "runner.py": """
            import threading

            def run_all(fn, n):
                threads = [threading.Thread(target=fn, args=(i,)) for i in range(n)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
        """,
        "test_it.py": """
            import threading
            from runner import run_all
            done = threading.Barrier(2)

            def test_counts():
                seen = {}

                def work(i):
                    seen[i] = i

                run_all(work, 4)
                for k in seen:
                    print(k)

            def test_barrier():
                out = {}

                def work():
                    out["x"] = 1
                    done.wait()

                threading.Thread(target=work).start()
                done.wait()
                for k in out:
                    print(k)
        """,
    })
    assert where(result) == []


def test_a_helper_that_does_not_join_still_races(tmp_path):
    result = lint_tree(tmp_path, {
        "runner.py": """
            import threading

            def run_all(fn):
                threading.Thread(target=fn).start()
        """,
        "app.py": """
            from runner import run_all
            seen = {}

            def work():
                seen["x"] = 1

            def main():
                run_all(work)
                for k in seen:
                    print(k)
        """,
    })
    assert ("app.py", 10, "MS202") in where(result)


def test_ms301_leaves_weak_dictionaries_and_sets_alone(tmp_path):
    result = lint_tree(tmp_path, {"memo.py": """
        import weakref
        _statements = weakref.WeakValueDictionary()
        _plain = {}

        def parse(text):
            if text not in _statements:
                _statements[text] = object()
            return _statements[text]

        def parse2(text):
            if text not in _plain:
                _plain[text] = object()
            return _plain[text]
    """})
    assert [code for _, _, code in where(result)] == ["MS301"]
    assert "_plain" in result.findings[0].message


def test_an_object_a_call_makes_and_keeps_to_itself_is_not_shared(tmp_path):
    files = {"cfg.py": """
        import threading

        class Config:
            def __init__(self):
                self.params = {}

            def dump(self):
                return [k for k in self.params]

        def build(name):
            cfg = Config()
            cfg.params[name] = 1
            return cfg

        def serve(names):
            for n in names:
                threading.Thread(target=build, args=(n,)).start()
    """}
    assert where(lint_tree(tmp_path, files)) == []
    leaked = {"cfg.py": files["cfg.py"].replace("            cfg.params[name] = 1\n",
                                                "            cfg.params[name] = 1\n            SEEN.append(cfg)\n")}
    leaked["cfg.py"] = leaked["cfg.py"].replace("import threading\n", "import threading\n        SEEN = []\n")
    # Once it escapes, its maps count as every instance's again (the conservative answer).
    assert ("cfg.py", 14, "MS201") in where(lint_tree(tmp_path / "leaked", leaked))


def test_more_thread_entries_handlers_finalizers_and_callable_objects(tmp_path):
    result = lint_tree(tmp_path, {"srv.py": """
        import socketserver
        import threading
        import weakref
        SESSIONS = {}
        CLOSED = {}
        TICKS = {}

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                SESSIONS[self.client_address] = self.request

        class Resource:
            def __del__(self):
                CLOSED["last"] = self

        class Ticker:
            def __call__(self):
                TICKS["n"] = 1

        def on_collect(name):
            CLOSED["gc"] = name

        def main(obj):
            weakref.finalize(obj, on_collect, "x")
            threading.Thread(target=Ticker()).start()
            with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as server:
                server.serve_forever()

        def report():
            for table in (SESSIONS, CLOSED, TICKS):
                print(len(table))
            for k in SESSIONS:
                print(k)
            for k in CLOSED:
                print(k)
            for k in TICKS:
                print(k)
    """})
    found = where(result)
    assert ("srv.py", 11, "MS201") in found  # handle() runs on a thread per request
    assert ("srv.py", 15, "MS201") in found or ("srv.py", 22, "MS201") in found  # __del__, finalize
    assert ("srv.py", 19, "MS201") in found  # Thread(target=Ticker()) runs __call__
    messages = " ".join(f.message for f in result.findings)
    assert "handler Handler" in messages and "Ticker.__call__() runs via Thread(target=...)" in messages


def test_a_tree_of_5000_files_finishes_and_reports_progress(tmp_path):
    for i in range(5000):
        (tmp_path / f"m{i}.py").write_text(f"import threading\nX{i} = {{}}\ndef f():\n    X{i}[1] = 1\n")
    (tmp_path / "m0.py").write_text("import threading\nd = {}\ndef w():\n    d[1] = 1\n"
                                    "def main():\n    threading.Thread(target=w).start()\n    for k in d:\n        pass\n")
    steps = []
    result = lint_paths([str(tmp_path)], Selection(("MS",)), progress=lambda *a: steps.append(a))
    assert result.checked == 5000 and not result.errors
    assert [(f.line, f.code) for f in result.findings] == [(4, "MS201"), (7, "MS202")]
    assert steps[-1] == ("analysing the whole program", 5000, 5000)
    assert ("parsing", 2500, 5000) in steps


def test_the_progress_line_is_for_terminals_only(tmp_path, capsys, monkeypatch):
    from mapsafe.cli import main

    (tmp_path / "a.py").write_text("x = 1\n")
    monkeypatch.chdir(tmp_path)
    assert main(["lint", "--no-cache", "a.py"]) == 0
    assert capsys.readouterr().err == ""  # stderr is not a terminal here: no progress line


def test_a_module_singleton_reached_through_its_accessor_in_another_file(tmp_path):
    result = lint_tree(tmp_path, {
        "cache.py": """
            import weakref

            class TraceCache:
                def __init__(self):
                    self._cache = weakref.WeakValueDictionary()

                def save(self, key, trace):
                    self._cache[key] = trace

                def active(self):
                    for key, trace in self._cache.items():
                        yield key, trace

            _trace_cache = TraceCache()

            def trace_cache():
                return _trace_cache
        """,
        "profiler.py": """
            import threading
            from cache import trace_cache

            def sample():
                return list(trace_cache().active())

            def start():
                threading.Thread(target=sample, daemon=True).start()
        """,
    })
    assert ("cache.py", 12, "MS202") in where(result)


def test_thread_targets_chosen_by_a_condition_a_dispatch_table_or_a_list(tmp_path):
    result = lint_tree(tmp_path, {"pick.py": """
        import threading
        from concurrent.futures import ThreadPoolExecutor
        from functools import partial
        A = {}
        B = {}
        C = {}
        D = {}

        def fa(x):
            A[x] = 1

        def fb(x):
            B[x] = 1

        def fc(x):
            C[x] = 1

        def fd(x):
            D[x] = 1

        def start(kind, fast):
            target = fa if fast else fb
            threading.Thread(target=target, args=(1,)).start()
            pick = {"c": fc}.get(kind, fd)
            threading.Thread(target=pick, args=(1,)).start()

        def fan_out(items):
            calls = [partial(fa, item) for item in items]
            with ThreadPoolExecutor() as ex:
                for call in calls:
                    ex.submit(call)

        def report():
            for table in (A, B, C, D):
                print(len(table))
            for k in A: print(k)
            for k in B: print(k)
            for k in C: print(k)
            for k in D: print(k)
    """})
    found = where(result)
    for line in (11, 14, 17, 20):
        assert ("pick.py", line, "MS201") in found, found


def test_a_finalizer_owns_the_dying_objects_maps_but_not_the_modules(tmp_path):
    result = lint_tree(tmp_path, {"pool.py": """
        import threading
        REGISTRY = {}

        class Pool:
            def __init__(self):
                self._threads = {}
                threading.Thread(target=self.spawn).start()

            def spawn(self):
                self._threads["w"] = threading.current_thread()
                for name in REGISTRY:
                    print(name)

            def __del__(self):
                self._threads.clear()
                REGISTRY.pop(id(self), None)
    """})
    found = where(result)
    assert ("pool.py", 16, "MS201") not in found  # self._threads: only the dying object has it
    assert ("pool.py", 17, "MS201") in found and ("pool.py", 12, "MS202") in found


def test_instances_that_never_leave_the_call_that_builds_them_share_no_maps(tmp_path):
    files = {"cfg.py": """
        import threading

        class Config:
            def __init__(self, name):
                self.params = {"name": name}

            def dump(self):
                return [k for k in self.params]

        def make(name):
            return Config(name)

        def render(cfg):
            return cfg.dump()

        def handle(name):
            cfg = make(name)
            cfg.params["seen"] = 1
            return render(cfg)

        def serve(names):
            for n in names:
                threading.Thread(target=handle, args=(n,)).start()
    """}
    assert where(lint_tree(tmp_path, files)) == []
    # One handed to another thread (here its bound method) is shared.
    leaky = {"cfg.py": files["cfg.py"].replace(
        '            cfg.params["seen"] = 1',
        '            threading.Thread(target=cfg.dump).start()\n            cfg.params["seen"] = 1')}
    assert ("cfg.py", 9, "MS202") in where(lint_tree(tmp_path / "leaky", leaky))


def test_the_depth_bound_counts_the_shortest_path_to_a_function(tmp_path):
    # d() is 1 call from the thread's entry directly, and 4 calls away through a, b, c:
    # with a bound of 2, e() (2 calls away through d) is still thread code.
    files = {"deep.py": """
        import threading
        table = {}
        def e(): table[1] = 1
        def d(): e()
        def c(): d()
        def b(): c()
        def a(): b()
        def entry():
            a()
            d()
        def main():
            threading.Thread(target=entry).start()
            for k in table:
                print(k)
    """}
    assert ("deep.py", 4, "MS201") in where(lint_tree(tmp_path, files, max_depth=2))
    assert where(lint_tree(tmp_path / "shallow", files, max_depth=1)) == []


def test_two_files_with_one_module_name_keep_their_maps_apart(tmp_path):
    # Two scripts named like one module (no packages): each CACHE is its own map.
    result = lint_tree(tmp_path, {
        "a/tool.py": """
            import threading
            CACHE = {}
            def fill():
                CACHE["k"] = 1
            threading.Thread(target=fill).start()
        """,
        "b/tool.py": """
            CACHE = {}
            def walk():
                for k in CACHE:
                    print(k)
        """,
    })
    assert where(result) == []


def test_a_run_collects_garbage_less_often_and_gives_the_callers_thresholds_back(tmp_path, monkeypatch):
    import gc

    from mapsafe.lint import checker
    (tmp_path / "a.py").write_text("d = {}\nfor k in d:\n    del d[k]\n")
    before = gc.get_threshold()
    seen = []
    real = checker._lint_sources
    monkeypatch.setattr(checker, "_lint_sources", lambda *a: (seen.append(gc.get_threshold()), real(*a))[1])
    result = lint_paths([str(tmp_path)], Selection(("MS",)))
    assert [(f.line, f.code) for f in result.findings] == [(3, "MS101")]
    assert seen[0][0] >= 100_000 and gc.get_threshold() == before
