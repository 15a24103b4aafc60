"""Shapes found in real projects' thread bugs and false alarms (benchmarks/lint_recall, lint_precision),
each as a short source string or a small tree, in the project's own words."""

from __future__ import annotations

from _lint_harness import lines, lint
from test_lint_program import lint_tree, where


def test_an_attribute_only_one_class_binds_is_that_class_map_whatever_holds_the_object():
    # mutmut: the thread iterates m.start_time_by_pid, m taken out of a list of tuples the
    # linter cannot type; only one class binds self.start_time_by_pid.
    findings = lint("""
        import threading
        class Data:
            def __init__(self):
                self.start_time_by_pid = {}
            def register(self, pid):
                self.start_time_by_pid[pid] = 1
        def checker(entries):
            def inner():
                for m, name in entries:
                    for pid in m.start_time_by_pid.items():
                        print(pid)
            return inner
        def run(entries):
            threading.Thread(target=checker(entries), daemon=True).start()
            for m, name in entries:
                m.register(1)
    """)
    assert lines(findings) == [(11, "MS202")]  # register() writes it from the main thread


def test_a_common_attribute_name_of_an_unknown_object_is_not_guessed():
    # `.data` could be any library object's; only private or compound names are matched.
    assert lint("""
        import threading
        class Box:
            def __init__(self):
                self.data = {}
            def put(self, k):
                self.data[k] = 1
        def watch(items):
            for obj in items:
                for k in obj.data:
                    print(k)
        def main(items):
            threading.Thread(target=watch, args=(items,)).start()
            Box().put(1)
    """) == []


def test_a_map_passed_through_a_process_then_to_a_thread_and_a_rearming_timer(tmp_path):
    # PiCN: Process(target=self._run, args=[self._table]) -> _run(table) starts a thread and a
    # Timer that re-arms itself with the same argument; a test passes a local dict of its own.
    result = lint_tree(tmp_path, {
        "layer.py": """
            import multiprocessing
            import threading

            class Layer:
                def __init__(self):
                    self._table = {}

                def start_process(self):
                    multiprocessing.Process(target=self._run, args=[self._table]).start()

                def _run(self, table):
                    threading.Thread(target=self.handle, args=[table]).start()
                    self.ageing(table)

                def handle(self, table):
                    for cid in table.keys():
                        print(cid)

                def ageing(self, table):
                    self.add(table)
                    threading.Timer(1.0, self.ageing, args=[table]).start()

                def add(self, table):
                    table[len(table)] = 1
        """,
        "test_layer.py": """
            from layer import Layer

            def test_add():
                mine = {}
                Layer().add(mine)
                assert mine
        """,
    })
    assert ("layer.py", 17, "MS202") in where(result)  # the thread walks what the Timer's add() inserts
    assert ("layer.py", 25, "MS201") in where(result)


def test_a_method_whose_return_annotation_names_a_generic_project_class_is_a_factory(tmp_path):
    # proxystore: store = self.get_store() (-> Store[K]); store.get() runs on a pool thread.
    result = lint_tree(tmp_path, {
        "cache.py": """
            class LRUCache:
                def __init__(self):
                    self.data = {}

                def set(self, key, value):
                    self.data[key] = value

                def keys(self):
                    return [k for k in self.data]
        """,
        "store.py": """
            from typing import Generic, TypeVar
            from cache import LRUCache
            K = TypeVar("K")

            class Store(Generic[K]):
                def __init__(self):
                    self.cache = LRUCache()

                def get(self, key):
                    self.cache.set(key, 1)

                def cached(self):
                    return self.cache.keys()
        """,
        "factory.py": """
            from concurrent.futures import ThreadPoolExecutor
            from store import Store
            _pool = ThreadPoolExecutor()
            _stores = {}

            def find(name):
                return _stores[name]

            class Factory:
                def get_store(self) -> "Store[str]":
                    return find("x")

                def resolve(self):
                    store = self.get_store()
                    store.get("k")

                def resolve_async(self):
                    return _pool.submit(self.resolve)
        """,
    })
    assert where(result) == [("cache.py", 7, "MS201"), ("cache.py", 10, "MS202")]


def test_coroutines_run_on_the_event_loop_not_on_the_thread_that_makes_them():
    # python-zeroconf: sync API on an executor thread hands async_add() to the loop with
    # run_coroutine_threadsafe; every write of the registry then runs on the loop's one thread.
    assert lint("""
        import asyncio
        from concurrent.futures import ThreadPoolExecutor
        class Registry:
            def __init__(self):
                self.services = {}
            async def async_add(self, name):
                self.services[name] = 1
            async def async_expire(self):
                for name in self.services:
                    print(name)
            def add(self, loop, name):
                asyncio.run_coroutine_threadsafe(self.async_add(name), loop).result()
            def later(self, loop):
                loop.call_soon_threadsafe(self.prune)
            def prune(self):
                self.services.clear()
        def main(loop):
            reg = Registry()
            ThreadPoolExecutor().submit(reg.add, loop, "a")
            reg.later(loop)
    """) == []


def test_a_function_both_the_event_loop_and_a_thread_run_races():
    findings = lint("""
        import threading
        SEEN = {}
        def note(k):
            SEEN[k] = 1
        async def on_packet(k):
            for key in SEEN:
                print(key)
        def worker():
            note(2)
        threading.Thread(target=worker).start()
    """)
    assert lines(findings) == [(5, "MS201"), (7, "MS202")]
    (walk,) = [f for f in findings if f.code == "MS202"]
    assert walk.trace[0][0] == "on_packet (on the event loop)"


def test_an_object_handed_to_the_thread_it_starts_is_that_threads_own():
    # multimaster: cfg is built fresh per call and passed to a Timer (or run in place); the
    # creator never touches it again, so its maps are the thread's own.
    assert lint("""
        import threading
        class StartConfig:
            def __init__(self, host):
                self.host = host
                self.env = {}
            def hostname(self):
                return str(self.host)
        def run_node(cfg):
            if "DISPLAY" in cfg.env:
                del cfg.env["DISPLAY"]
            merged = {}
            merged.update(cfg.env)
            return cfg.hostname()
        def start_node(name, delay):
            cfg = StartConfig(name)
            cfg.env["A"] = "1"
            if delay:
                threading.Timer(delay, run_node, args=(cfg,)).start()
            else:
                run_node(cfg)
    """) == []


def test_an_object_used_again_after_its_thread_starts_is_shared():
    findings = lint("""
        import threading
        class StartConfig:
            def __init__(self):
                self.env = {}
        def run_node(cfg):
            if "DISPLAY" in cfg.env:
                del cfg.env["DISPLAY"]
        def start_node():
            cfg = StartConfig()
            threading.Timer(1.0, run_node, args=(cfg,)).start()
            cfg.env.pop("DISPLAY", None)
    """)
    assert lines(findings) == [(7, "MS203")]


_ITEMS_COPY = """
    import threading
    pending = {}
    def searcher(k):
        pending[k] = 1
    def retry():
        items = list(pending.items())
        return len(items)
    threading.Thread(target=searcher, args=(1,)).start()
"""


def test_copying_items_is_a_walk_before_3_12_and_one_step_after():
    # caproto: list(d.items()) raised 'dictionary changed size during iteration' in the wild.
    # Before 3.12 the tuple each entry needs could run the cyclic GC, and a finalizer lets
    # other threads in mid-copy; from 3.12 the GC runs only between bytecodes.
    assert lines(lint(_ITEMS_COPY, target=(3, 11))) == [(5, "MS201"), (7, "MS202")]
    assert lint(_ITEMS_COPY, target=(3, 12)) == []
    assert lint(_ITEMS_COPY.replace("pending.items()", "pending"), target=(3, 11)) == []  # list(d): one step


def test_a_get_then_delete_is_a_check_then_act():
    # Pyro5: info = d.get(k); if info: ... del d[k], in two threads that delete the same ids.
    findings = lint("""
        import threading
        streams = {}
        def expire(k):
            info = streams.get(k, None)
            if info:
                del streams[k]
        for i in range(2):
            threading.Thread(target=expire, args=("s",)).start()
    """)
    assert lines(findings) == [(6, "MS203")]
    assert findings[0].message.startswith(
        '"info" (a streams.get(k) read earlier), then "del streams[k]" on shared dict \'streams\'')
