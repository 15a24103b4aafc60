"""Each lint rule on code it must flag and code it must leave alone."""

from __future__ import annotations

import textwrap

from _lint_harness import codes, lines, lint


# -- MS101: changing a dict's keys while iterating it ---------------------------------------------


def test_ms101_del_while_iterating_module_dict():
    findings = lint("""
        d = {"a": 1, "b": 2}
        for k in d:
            if d[k] > 1:
                del d[k]
    """)
    assert lines(findings) == [(5, "MS101")]
    assert "'d' changes its keys (del) inside the loop over it at line 3" in findings[0].message
    assert "list(d)" in findings[0].message


def test_ms101_every_mutator_on_views():
    findings = lint("""
        def f(d: dict, other):
            for k in d.keys():
                d.pop(k)
            for k, v in d.items():
                d.update(other)
            for v in d.values():
                d.clear()
            for k in d.keys():
                d.popitem()
            for k in d.keys():
                d.setdefault(k + "x", 0)
            for v in d.values():
                d[v] = 1
    """)
    assert lines(findings) == [(4, "MS101"), (6, "MS101"), (8, "MS101"), (10, "MS101"), (12, "MS101"), (14, "MS101")]


def test_ms101_self_attribute_dict():
    findings = lint("""
        class Registry:
            def __init__(self):
                self.items = {}

            def prune(self):
                for name in self.items:
                    if not self.items[name]:
                        del self.items[name]
    """)
    assert codes(findings) == ["MS101"]
    assert "'self.items'" in findings[0].message


def test_ms101_insertion_of_a_new_key():
    assert codes(lint("""
        counts = {}
        for word in counts:
            counts[word.upper()] = counts[word]
    """)) == ["MS101"]


def test_ms101_enumerate_and_reversed_iterate_the_dict_itself():
    assert codes(lint("""
        d = {}
        for i, (k, v) in enumerate(d.items()):
            del d[k]
        for k in reversed(d):
            d.pop(k)
    """)) == ["MS101", "MS101"]


def test_ms101_enumerate_index_assignment_is_list_code():
    # Regression (samtranslator, jsonpath_ng): `value[i] = ...` over enumerate(value) in a
    # function that also handles dicts elsewhere is list code, not a dict insertion.
    assert lint("""
        def clean(value):
            if isinstance(value, list):
                for i, v in enumerate(value):
                    value[i] = clean(v)
                return value
            return {k: clean(v) for k, v in value.items()}
    """) == []


def test_ms101_clean_when_iterating_copies():
    assert lint("""
        d = {"a": 1}
        for k in list(d):
            del d[k]
        for k in dict(d):
            d.pop(k)
        for k, v in d.copy().items():
            d.clear()
        for k in sorted(d):
            del d[k]
        for k, v in list(d.items()):
            d[k + "!"] = v
    """) == []


def test_ms101_clean_when_mutation_is_followed_by_break_or_return():
    assert lint("""
        d = {}
        def first(d: dict):
            for k in d:
                del d[k]
                return k
        for k in d:
            if k.startswith("x"):
                d.pop(k)
                break
        def raise_it(d: dict):
            for k in d:
                del d[k]
                raise KeyError(k)
    """) == []


def test_ms101_break_of_an_inner_loop_does_not_end_the_outer_one():
    # Regression: a `break` only leaves the innermost loop; the dict loop goes on.
    assert codes(lint("""
        d = {}
        for k in d:
            for x in range(3):
                del d[k]
                break
    """)) == ["MS101"]


def test_ms101_continue_does_not_exempt():
    assert codes(lint("""
        d = {}
        for k in d:
            d.pop(k)
            continue
    """)) == ["MS101"]


def test_ms101_clean_for_value_updates_of_the_visited_key():
    assert lint("""
        d = {"a": 1}
        for k in d:
            d[k] = d[k] + 1
        for k, v in d.items():
            d[k] = v * 2
            d.setdefault(k, 0)
        for k in d.keys():
            d[k] += 1
    """) == []


def test_ms101_keys_proved_present_by_an_if_are_value_updates():
    # Regressions (pydantic json_schema, networkx gomory_hu): `if key == "$ref": d["$ref"] = ...`
    # and `if k in d: d[k] = ...` replace values of keys that exist; the key set is unchanged.
    assert lint("""
        def remap(schema: dict, other):
            for key, value in schema.items():
                if key == "$ref":
                    schema["$ref"] = value.upper()
                for node in other:
                    if node in schema and schema[node] == key:
                        schema[node] = key
                if schema[value] > 1:
                    schema[value] = 0
    """) == []
    assert codes(lint("""
        def remap(schema: dict):
            for key, value in schema.items():
                if key == "$ref":
                    schema["$id"] = value
    """)) == ["MS101"]


def test_ms101_needs_evidence_that_a_bare_iterable_is_a_dict():
    # `x` could be a list or set; without a dict binding or a .items()/.keys() use, stay silent.
    assert lint("""
        def f(x):
            for k in x:
                x.pop(k)
    """) == []
    assert codes(lint("""
        def f(x):
            print(x.items())
            for k in x:
                x.pop(k)
    """)) == ["MS101"]


def test_ms101_keys_of_a_non_dict_object_are_not_flagged():
    # email.message.Message.keys() returns a list: deleting headers in the loop is fine.
    assert lint("""
        from email.message import Message
        class Box:
            def __init__(self):
                self.msg = Message()
            def strip(self):
                for header in self.msg.keys():
                    del self.msg[header]
    """) == []


def test_ms101_other_dicts_and_nested_functions_are_not_confused():
    assert lint("""
        a = {}
        b = {}
        for k in a:
            b[k] = 1
            del b[k]
            def later():
                del a[k]
    """) == []


# -- MS2xx: dicts shared between threads -------------------------------------------------------


def test_no_threads_no_ms2xx():
    # The same code with threads below is flagged; a module that starts no threads gets nothing.
    assert lint("""
        counts = {}
        def worker(n):
            counts[n] = counts.get(n, 0) + 1
        def report():
            for k in counts:
                print(k)
    """) == []


def test_ms203_read_modify_write_in_worker_threads():
    findings = lint("""
        import threading
        counts = {}
        def worker(n):
            counts["total"] = counts.get("total", 0) + n
        def main():
            threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
    """)
    assert lines(findings) == [(5, "MS203")]
    assert "several threads at once" in findings[0].message
    assert "merge()" in findings[0].message


def test_ms203_augmented_assignment_and_check_then_act():
    findings = lint("""
        from concurrent.futures import ThreadPoolExecutor
        hits = {}
        seen = {}
        def work(key):
            hits[key] += 1
            if key not in seen:
                seen[key] = []
        def run(keys):
            with ThreadPoolExecutor(4) as pool:
                pool.map(work, keys)
    """)
    assert lines(findings) == [(6, "MS203"), (7, "MS203")]
    assert "setdefault()" in findings[1].message and "compute_if_absent()" in findings[1].message


def test_ms203_if_in_then_delete():
    findings = lint("""
        import threading
        pending = {}
        def finish(key):
            if key in pending:
                del pending[key]
        def cancel(key):
            pending.pop(key, None)
        def start(key):
            pending[key] = 1
            threading.Thread(target=finish, args=(key,)).start()
    """)
    assert codes(findings) == ["MS203"]  # cancel()'s pop can take the key between the check and the del
    assert "pop(key, None)" in findings[0].message


def test_ms203_check_then_del_is_not_broken_by_a_store_nor_check_then_store_by_a_delete():
    # Only another delete makes `if k in d: del d[k]` fail; only another store is lost by
    # `if k not in d: d[k] = v`. A store racing the first, or a delete the second, is some serial order.
    assert lint("""
        import threading
        pending = {}
        def finish(key):
            if key in pending:
                del pending[key]
        def start(key):
            pending[key] = 1
            threading.Thread(target=finish, args=(key,)).start()
    """) == []
    assert lint("""
        import threading
        seen = {}
        def mark(key):
            if key not in seen:
                seen[key] = 1
        def forget(key):
            seen.pop(key, None)
        def main(key):
            threading.Thread(target=mark, args=(key,)).start()
    """) == []


def test_ms201_and_ms202_self_attribute_of_threaded_object():
    findings = lint("""
        import threading
        class Service:
            def __init__(self):
                self.data = {}
                self._thread = threading.Thread(target=self._loop, daemon=True)

            def _loop(self):
                while True:
                    self.data["tick"] = 1

            def dump(self):
                for k, v in self.data.items():
                    print(k, v)
    """)
    assert lines(findings) == [(10, "MS201"), (13, "MS202")]
    assert "_loop() runs via Thread(target=...) at line 6" in findings[0].message
    assert "another thread uses it at line 13" in findings[0].message
    assert "another thread writes it at line 10" in findings[1].message


def test_ms2xx_clean_under_a_lock():
    assert lint("""
        import threading
        class Service:
            def __init__(self):
                self.data = {}
                self._lock = threading.Lock()
                self._thread = threading.Thread(target=self._loop)

            def _loop(self):
                with self._lock:
                    self.data["tick"] = self.data.get("tick", 0) + 1

            def dump(self):
                self._lock.acquire()
                try:
                    for k in self.data:
                        print(k)
                finally:
                    self._lock.release()
    """) == []


def test_ms2xx_lock_recognised_by_constructor_and_by_name():
    assert codes(lint("""
        import threading
        guard = threading.RLock()
        state_mutex = object()
        table = {}
        def w1(k):
            with guard:
                table[k] = 1
        def w2(k):
            with state_mutex:
                for key in table:
                    print(key)
        threading.Thread(target=w1, args=(1,)).start()
        threading.Thread(target=w2, args=(1,)).start()
    """)) == ["MS204"]  # both are locks (no MS201/MS202); but two different ones (MS204)


def test_ms204_two_locks_around_single_operations_cannot_harm_each_other():
    # A store under one lock and a pop under another interleave as some serial order; a
    # get-then-del under each can both pass the get, and one del raises KeyError.
    src = """
        import threading
        a_lock, b_lock = threading.Lock(), threading.Lock()
        table = {}
        def w1(k):
            with a_lock:
                table[k] = 1
        def w2(k):
            with b_lock:
                table.pop(k, None)
        threading.Thread(target=w1, args=(1,)).start()
        threading.Thread(target=w2, args=(1,)).start()
    """
    assert lint(src) == []
    findings = lint(src + """
        def w3(k):
            with a_lock:
                info = table.get(k)
                if info:
                    del table[k]
        threading.Thread(target=w3, args=(1,)).start()
    """)
    assert codes(findings) == ["MS204"] and findings[0].line == 17  # the get-then-del's test


def test_ms2xx_lock_held_by_every_caller_or_locked_suffix():
    assert lint("""
        import threading
        _lock = threading.Lock()
        table = {}
        def _store(k):
            table[k] = 1
        def _drop_locked(k):
            del table[k]
        def worker(k):
            with _lock:
                _store(k)
                _drop_locked(k)
        for i in range(3):
            threading.Thread(target=worker, args=(i,)).start()
    """) == []


def test_ms2xx_other_lock_shapes_protect():
    assert lint("""
        import threading
        from mapsafe import RWLock
        rw = RWLock()
        gate = threading.Semaphore()
        table = {}
        def writer(k):
            with rw.write():
                table[k] = 1
        def reader():
            with rw.read():
                for k in table:
                    print(k)
        def try_writer(k):
            if not gate.acquire(timeout=1):
                return
            table.pop(k, None)
            gate.release()
        def maybe_writer(k):
            if gate.acquire(blocking=False):
                table[k] = 2
                gate.release()
        for i in range(2):
            threading.Thread(target=writer, args=(i,)).start()
            threading.Thread(target=try_writer, args=(i,)).start()
            threading.Thread(target=maybe_writer, args=(i,)).start()
        threading.Thread(target=reader).start()
    """, select=["MS201", "MS202", "MS203"]) == []  # (rw and gate are two locks: MS204, tested below)


def test_ms2xx_lock_helpers_called_in_with_protect():
    assert lint("""
        import threading
        class Store:
            def __init__(self):
                self.data = {}
                threading.Thread(target=self.fill).start()
            def _locked(self):
                return self._mu
            def fill(self):
                with self._locked():
                    self.data["a"] = 1
            def dump(self):
                with self._locked():
                    return [k for k in self.data]
    """) == []


def test_ms2xx_targets_through_partial_and_an_instance_method():
    findings = lint("""
        import functools
        import threading
        seen = {}
        class Job:
            def run(self, k):
                seen[k] = True
        def note(k):
            seen[k] = False
        def main():
            job = Job()
            threading.Thread(target=job.run, args=(1,)).start()
            threading.Thread(target=functools.partial(note, 2)).start()
            for k in seen:
                print(k)
    """)
    assert lines(findings) == [(7, "MS201"), (9, "MS201"), (14, "MS202")]


def test_ms2xx_a_lock_is_not_a_block_or_clock():
    assert codes(lint("""
        import threading
        table = {}
        def worker(k, block):
            with block:
                table["n"] = table.get("n", 0) + k
        for i in range(3):
            threading.Thread(target=worker, args=(i, None)).start()
    """)) == ["MS203"]


def test_ms2xx_mapsafe_maps_are_safe():
    assert lint("""
        import threading
        from mapsafe import SyncMap
        counts = SyncMap()
        def worker(n):
            counts[n] = counts.get(n, 0) + 1
            for k in counts:
                pass
        for i in range(4):
            threading.Thread(target=worker, args=(i,)).start()
    """) == []


_REDIS_SHAPES = """
    import threading
    from collections.abc import MutableMapping
    import mapsafe.redis
    from mapsafe.redis import RedisMap as RM

    class Sessions(RM):
        pass

    class Store:
        def __init__(self):
            self.a: MutableMapping = {a}
            self.b = {b}
            self.c = {c}
            threading.Thread(target=self.run).start()

        def run(self):
            for k, v in self.a.items():
                del self.a[k]
            for k in self.b:
                self.b.pop(k)
            if "k" not in self.c:
                self.c["k"] = 1

        def add(self, k):
            self.a[k] = 0
            self.b[k] = self.b.get(k, 0) + 1
            for key in self.c.keys():
                self.c[key + "x"] = 1
"""


def test_ms_rules_redis_maps_are_safe():
    # RedisMap's operations are atomic on the server and its iteration is a
    # SCAN, which tolerates writes: however it is imported, annotated or
    # subclassed, no thread rule fires on it (as for SyncMap above).
    redis_maps = dict(a='RM("redis://127.0.0.1:6379/0", "a")', b='mapsafe.redis.RedisMap("redis://h/0", "b")',
                      c='Sessions("redis://127.0.0.1:6379/0", "c")')
    assert lint(_REDIS_SHAPES.format(**redis_maps)) == []
    # The control: the same code on dicts has every kind of finding.
    found = codes(lint(_REDIS_SHAPES.format(a="{}", b="dict()", c="{}")))
    assert {"MS101", "MS201", "MS202", "MS203"} <= set(found), found


def test_ms2xx_local_dicts_are_never_shared():
    assert lint("""
        import threading
        def worker(n):
            local = {}
            local[n] = local.get(n, 0) + 1
            for k in local:
                del local[k]
                break
        for i in range(4):
            threading.Thread(target=worker, args=(i,)).start()
    """) == []


def test_ms2xx_closure_dict_shared_with_pool_workers():
    findings = lint("""
        from concurrent.futures import ThreadPoolExecutor
        def run(items):
            results = {}
            def work(x):
                results[x] = x * 2
                return len([k for k in results])
            with ThreadPoolExecutor() as ex:
                ex.map(work, items)
            return results
    """)
    assert lines(findings) == [(6, "MS201"), (7, "MS202")]


def test_ms2xx_accesses_before_start_and_after_join_do_not_race():
    assert lint("""
        import threading
        def main():
            results = {}
            results["start"] = 0
            def work():
                results["done"] = 1
            t = threading.Thread(target=work)
            t.start()
            t.join()
            for k in results:
                print(k)
    """) == []


def test_ms2xx_access_while_thread_runs_is_flagged():
    assert codes(lint("""
        import threading
        def main():
            results = {}
            def work():
                results["done"] = 1
            t = threading.Thread(target=work)
            t.start()
            for k in results:
                print(k)
            t.join()
    """)) == ["MS201", "MS202"]


def test_ms2xx_one_writer_and_single_key_readers_cannot_be_harmed():
    # One writer thread and a reader of single keys: every dict read and write is atomic,
    # so no interleaving does harm (the reader sees the old or the new value).
    assert lint("""
        import threading
        status = {}
        def poll():
            status["n"] = status.get("n", 0) + 1
        def current():
            return status.get("n")
        threading.Thread(target=poll).start()
    """) == []


def test_ms201_a_write_races_with_another_threads_walk_not_with_its_single_writes():
    findings = lint("""
        import threading
        status = {}
        def poll():
            status["n"] = 1
        def reset():
            status.clear()
        def report():
            for k in status:
                print(k)
        threading.Thread(target=poll).start()
    """)
    # clear() and a store are each one atomic dict operation: any interleaving is a serial
    # order. The walk at line 9 is what the store can break.
    assert lines(findings) == [(5, "MS201"), (9, "MS202")]
    assert "another thread uses it at line 9" in findings[0].message


def test_ms2xx_read_only_sharing_is_fine():
    assert lint("""
        import threading
        CONFIG = {"a": 1}
        def worker():
            for k in CONFIG:
                print(CONFIG[k])
        for i in range(3):
            threading.Thread(target=worker).start()
    """) == []


def test_ms2xx_entry_kinds_timer_submit_callback_to_thread_run_in_executor_subclass():
    # Every entry writes the dict that the main thread walks, so each write races with the walk.
    src = """
        import asyncio
        import threading
        from concurrent.futures import ThreadPoolExecutor
        shared = {}
        def on_timer():
            shared["last"] = 1
        def on_done(fut):
            shared["last"] = 1
        def job():
            return 1
        def blocking():
            shared["last"] = 1
        def in_loop():
            shared["last"] = 1
        class Worker(threading.Thread):
            def run(self):
                shared["last"] = 1
        def main():
            threading.Timer(1.0, on_timer).start()
            executor = ThreadPoolExecutor()
            fut = executor.submit(job)
            fut.add_done_callback(on_done)
        async def amain(loop):
            await asyncio.to_thread(blocking)
            await loop.run_in_executor(None, in_loop)
        def report():
            for k in shared:
                pass
        Worker().start()
    """
    findings = lint(src, select=["MS201"])
    assert lines(findings) == [(7, "MS201"), (9, "MS201"), (13, "MS201"), (15, "MS201"), (18, "MS201")]


def test_ms2xx_process_pools_are_not_threads():
    assert lint("""
        from concurrent.futures import ProcessPoolExecutor
        totals = {}
        def work(x):
            totals[x] = totals.get(x, 0) + 1
        def main(xs):
            with ProcessPoolExecutor() as pool:
                pool.map(work, xs)
    """) == []


def test_ms2xx_thread_code_reaches_helpers_through_calls():
    findings = lint("""
        import threading
        registry = {}
        def _add(k):
            registry[k] = True
        def worker(k):
            _add(k)
        def snapshot():
            return [k for k in registry]
        threading.Thread(target=worker, args=(1,)).start()
    """)
    assert lines(findings) == [(5, "MS201"), (9, "MS202")]


def test_ms2xx_fork_handlers_run_without_other_threads():
    # Regression (multiprocessing.resource_sharer): an after-fork handler runs in the child,
    # where only one thread exists, so its unlocked iteration is not racy.
    assert codes(lint("""
        import os
        import threading
        class Sharer:
            def __init__(self):
                self._cache = {}
                self._lock = threading.Lock()
                os.register_at_fork(after_in_child=self._afterfork)
            def start(self):
                threading.Thread(target=self._serve).start()
            def _serve(self):
                with self._lock:
                    self._cache.pop(1, None)
            def _afterfork(self):
                for key in self._cache:
                    print(key)
                self._cache.clear()
            def dump(self):
                for key in self._cache:
                    print(key)
    """)) == ["MS202"]


def test_ms2xx_import_time_registry_is_not_racy():
    assert lint("""
        import threading
        HANDLERS = {}
        HANDLERS["a"] = print
        for name in ("b", "c"):
            HANDLERS[name] = print
        def worker():
            return HANDLERS["a"]
        threading.Thread(target=worker).start()
    """) == []


# -- MS301: unbounded memo caches --------------------------------------------------------------


def test_ms301_memo_cache():
    findings = lint("""
        _cache = {}
        def fib(n):
            if n in _cache:
                return _cache[n]
            result = n if n < 2 else fib(n - 1) + fib(n - 2)
            _cache[n] = result
            return result
    """, select=["MS301"])
    assert lines(findings) == [(7, "MS301")]
    message = findings[0].message
    assert message.startswith("module-level dict '_cache' memoizes fib() but nothing ever evicts from it")
    assert "use a bounded cache such as @mapsafe.cached(maxsize=...), mapsafe.Cache(maxsize=...)," in message
    assert "functools.lru_cache(maxsize=...)" in message and "mapsafe.ShardedMap(maxsize=..., ttl=...)" in message
    assert "\n" not in message


def test_ms301_get_and_try_except_forms():
    assert codes(lint("""
        import json
        _parsed = {}
        _loaded = {}
        def parse(text):
            hit = _parsed.get(text)
            if hit is None:
                hit = _parsed[text] = json.loads(text)
            return hit
        def load(path):
            try:
                return _loaded[path]
            except KeyError:
                value = _loaded[path] = open(path).read()
                return value
    """, select=["MS301"])) == ["MS301", "MS301"]


def test_ms301_clean_when_evicted_or_size_checked():
    assert lint("""
        _a = {}
        _b = {}
        _c = {}
        def fa(x):
            if x in _a:
                return _a[x]
            _a[x] = v = x * 2
            return v
        def reset():
            _a.clear()
        def fb(x):
            if x in _b:
                return _b[x]
            if len(_b) > 100:
                _b.popitem()
            _b[x] = v = x * 2
            return v
        def fc(x):
            if x in _c:
                return _c[x]
            _c[x] = v = x * 2
            return v
        def forget(x):
            del _c[x]
    """) == []


def test_ms301_registry_filled_at_import_time_is_not_a_cache():
    assert lint("""
        CODECS = {}
        CODECS["utf-8"] = object()
        def register(name, codec):
            if name in CODECS:
                raise ValueError(name)
            CODECS[name] = codec
        def decorator(fn):
            CODECS[fn.__name__] = fn
            return fn
        def get(name):
            return CODECS[name]
    """) == []


def test_ms301_not_for_keys_that_are_flags_or_constants():
    assert lint("""
        _by_flag = {}
        _by_table = {}
        ALPHA = "abc"
        def describe(verbose=False):
            if verbose in _by_flag:
                return _by_flag[verbose]
            _by_flag[verbose] = text = "x" if verbose else "y"
            return text
        def _table(alphabet):
            if alphabet not in _by_table:
                _by_table[alphabet] = [c * 2 for c in alphabet]
            return _by_table[alphabet]
        def encode(s):
            return _table(ALPHA)
    """) == []


def test_ms301_not_for_bounded_or_non_memo_patterns():
    # Regressions from the stdlib/site-packages review: keys bounded by another collection
    # (networkx), keys that are versions (jedi, libcst), and read-then-reset buffers
    # (prompt_toolkit typeahead) are not unbounded memo caches.
    assert lint("""
        backends = {"a": 1}
        _loaded = {}
        _by_version = {}
        _buffer = {}
        def load(name):
            if name in _loaded:
                return _loaded[name]
            if name not in backends:
                raise ImportError(name)
            rv = _loaded[name] = backends[name] * 2
            return rv
        def grammar(version_info):
            try:
                return _by_version[version_info[:2]]
            except KeyError:
                pass
            _by_version[version_info[:2]] = g = str(version_info)
            return g
        def take(key):
            result = _buffer[key]
            _buffer[key] = []
            return result
    """) == []
    # Regression (PIL.ImageColor): a prefilled table whose existing values are replaced.
    assert lint("""
        colormap = {"red": "#f00"}
        def getrgb(color):
            rgb = colormap.get(color, None)
            if rgb:
                parsed = colormap[color] = (255, 0, 0)
                return parsed
            return None
    """) == []
    # Regression (webencodings): the key is itself read out of another module table.
    assert lint("""
        LABELS = {"utf8": "utf-8"}
        CACHE = {}
        def lookup(label):
            name = LABELS.get(label.lower())
            if name is None:
                return None
            encoding = CACHE.get(name)
            if encoding is None:
                encoding = CACHE[name] = object()
            return encoding
    """) == []


def test_ms301_not_for_local_or_escaping_dicts():
    assert lint("""
        _shared = {}
        def f(x):
            memo = {}
            if x in memo:
                return memo[x]
            memo[x] = v = x + 1
            return v
        def g(x):
            if x in _shared:
                return _shared[x]
            _shared[x] = v = x + 1
            return v
        def expose():
            return _shared
    """) == []


# -- selection and suppression ------------------------------------------------------------------

_MIXED = """
    d = {}
    _memo = {}
    def f(x):
        if x in _memo:
            return _memo[x]
        _memo[x] = r = x * 2
        return r
    for k in d:
        del d[k]
"""


def test_select_and_ignore_by_code_and_prefix():
    assert codes(lint(_MIXED, select=["MS"])) == ["MS301", "MS101"]
    assert codes(lint(_MIXED, select=["MS1"])) == ["MS101"]
    assert codes(lint(_MIXED, select=["MS"], ignore=["MS101"])) == ["MS301"]
    assert codes(lint(_MIXED, select=["MS"], ignore=["MS3"])) == ["MS101"]
    # The longer match wins: ignore a family, but select one code back.
    assert codes(lint(_MIXED, select=["MS101"], ignore=["MS1"])) == ["MS101"]


def test_ms301_is_opt_in_and_a_select_that_names_it_turns_it_on():
    assert codes(lint(_MIXED)) == ["MS101"]  # the default: every rule but the opt-in ones
    assert codes(lint(_MIXED, ignore=["MS101"])) == []
    assert codes(lint(_MIXED, select=["MS301"])) == ["MS301"]
    assert codes(lint(_MIXED, select=["MS3", "MS1"])) == ["MS301", "MS101"]


def test_noqa_and_mapsafe_ignore_comments():
    src = """
        d = {}
        for k in d:
            del d[k]  # noqa
        for k in d:
            del d[k]  # noqa: MS101
        for k in d:
            del d[k]  # NOQA:MS1
        for k in d:
            del d[k]  # mapsafe: ignore[MS101]
        for k in d:
            del d[k]  # mapsafe: ignore
        for k in d:
            del d[k]  # noqa: MS201
        for k in d:
            del d[k]  # mapsafe: ignore[MS301, MS201]
    """
    assert lines(lint(src)) == [(14, "MS101"), (16, "MS101")]


def test_ms2xx_per_thread_keys_lose_no_updates_but_a_walk_still_races():
    source = """
        import threading
        results = {}
        def worker(i):
            results[i] = results.get(i, 0) + 1
            results[threading.get_ident()] = 1
            me = threading.current_thread().name
            results[me] += 1
        def main():
            for i in range(4):
                threading.Thread(target=worker, args=(i,)).start()
    """
    assert lint(source) == []
    found = lint(source + """
        def report():
            for k in results:
                print(k)
    """)
    assert lines(found) == [(5, "MS201"), (6, "MS201"), (8, "MS201"), (14, "MS202")]
    shared = lint(source.replace("results[i] = results.get(i, 0) + 1", 'results["n"] = results.get("n", 0) + 1'))
    assert lines(shared) == [(5, "MS203")]


def test_ms204_one_map_guarded_by_two_locks_is_reported_once_per_use():
    findings = lint("""
        import threading
        class Registry:
            def __init__(self):
                self._items = {}
                self._lock = threading.Lock()
                self._other = threading.Lock()
                threading.Thread(target=self._reap).start()
            def _reap(self):
                with self._lock:
                    for k in self._items:
                        print(k)
            def add(self, k):
                with self._other:
                    self._items[k] = 1
            def get(self, k):
                with self._other:
                    return self._items.get(k)
    """)
    assert lines(findings) == [(15, "MS204")]
    assert "guarded by Registry._other here but by Registry._lock at line 11" in findings[0].message


def test_ms204_the_same_lock_through_a_context_manager_and_a_global_is_one_lock():
    assert lint("""
        import threading
        from contextlib import contextmanager
        LOCK = threading.Lock()
        table = {}
        @contextmanager
        def locked():
            with LOCK:
                yield
        def walk():
            with LOCK:
                for k in table:
                    print(k)
        def add(k):
            with locked():
                table[k] = 1
        threading.Thread(target=walk).start()
        threading.Thread(target=add, args=(1,)).start()
    """) == []


def test_ms2xx_a_method_that_returns_holding_a_lock_protects_until_the_one_that_releases_it():
    assert lint("""
        import threading
        class DB:
            def __init__(self):
                self.mx = threading.Lock()
                self.cache = {}
                threading.Thread(target=self.poll).start()
            def open(self):
                self.mx.acquire()
                return object()
            def close(self, cursor):
                self.mx.release()
            def poll(self):
                cursor = self.open()
                try:
                    self.cache["k"] = cursor
                finally:
                    self.close(cursor)
            def walk(self):
                with self.mx:
                    for k in self.cache:
                        print(k)
    """) == []


def test_ms2xx_maps_bound_by_a_tuple_assignment():
    assert lines(lint("""
        import threading
        A, B = {}, {}
        def w():
            A[1] = 1
        def main():
            threading.Thread(target=w).start()
            for k in A:
                print(k)
    """)) == [(5, "MS201"), (8, "MS202")]


def test_ms201_memo_stores_and_set_adds_from_several_threads_cannot_harm_each_other():
    source = """
        import threading
        CACHE = {}
        SEEN = set()
        def lookup(path):
            if path in CACHE:
                return CACHE[path]
            CACHE[path] = value = path.upper()
            SEEN.add(path)
            return value
        def main(paths):
            for p in paths:
                threading.Thread(target=lookup, args=(p,)).start()
    """
    assert lint(source, select=["MS2"]) == []
    # A memo store and an invalidation are single operations: no finding. A walk is broken by them.
    assert lint(source + """
        def forget(path):
            CACHE.pop(path, None)
            SEEN.discard(path)
    """, select=["MS2"]) == []
    assert codes(lint(source + """
        def report():
            return sorted(p for p in SEEN)
    """, select=["MS2"])) == ["MS201", "MS202"]


def test_ms2xx_mx_names_a_lock():
    assert lint("""
        import threading
        class Net:
            def __init__(self, mx):
                self._mx = mx
                self.peers = {}
                threading.Thread(target=self.loop).start()
            def loop(self):
                with self._mx:
                    self.peers["a"] = 1
            def walk(self):
                with self._mx:
                    for p in self.peers:
                        print(p)
    """) == []


def test_rough_edge_16_lint_and_race_name_the_same_line_for_a_threads_creation():
    # Go reports where a goroutine was created by its `go` statement; here that is
    # the thread's start() call, which `mapsafe race` records. Lint names it too.
    from _race_harness import race

    src = textwrap.dedent("""\
        import threading
        class Store:
            def __init__(self):
                self.jobs = {}
                self.t = threading.Thread(target=self.run)
            def start(self):
                self.t.start()
            def run(self):
                self.jobs["k"] = 1
            def read(self):
                for k in self.jobs:
                    pass
        s = Store()
        s.start()
        s.read()
        shared = {}
        def worker():
            shared["x"] = 1
        t = threading.Thread(target=worker)
        print("between")
        t.start()
        for k in shared:
            pass
        t.join()
        s.t.join()
    """)
    starts = [n for n, line in enumerate(src.splitlines(), 1) if line.strip() in ("self.t.start()", "t.start()")]
    assert len(starts) == 2
    messages = [f.message for f in lint(src) if f.code == "MS201"]
    assert any(f"Store.run() runs via Thread(target=...) at line {starts[0]}" in m for m in messages), messages
    assert any(f"worker() runs via Thread(target=...) at line {starts[1]}" in m for m in messages), messages
    run = race(src)
    created = {frame["line"] for r in run.races for side in ("current", "previous")
               for frame in r[side]["thread_created_at"][:1] if frame["file"].endswith("prog.py")}
    assert created == set(starts), run.races  # the same lines, from the detector
