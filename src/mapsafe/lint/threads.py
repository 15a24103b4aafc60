"""Thread context: which code runs on which thread, along the call graph of the whole program."""

from __future__ import annotations

import ast
from collections import deque
from typing import Sequence

from . import calls
from .classes import class_of, distinctive_member
from .escape import Confinement
from .locks import lock_key
from .maps import MapIdentity, Target
from .program import Program
from .scopes import Scope, chain_name
from .walker import _EXECUTORS, _NOT_THREADS, _POOL_NAME, _PROCESS_POOLS, THREAD_CLASSES, Access, ScopeWalker

__all__ = ["Entry", "Access", "Target", "ThreadModel", "MAIN", "DEFAULT_MAX_DEPTH"]

MAIN = 0  # the context id of the main thread (import-time code, and code nobody in the program calls)
DEFAULT_MAX_DEPTH = 16  # calls followed from a thread entry (lint option max-call-depth)
CALLER = "caller"  # lock-key kind: some lock its callers hold (a *_locked function)
_THREAD_IDENTITY = frozenset({"threading.get_ident", "threading.get_native_id", "_thread.get_ident",
                              "threading.current_thread", "threading.currentThread"})


class Entry:
    """One place where a function is handed to another thread."""

    __slots__ = ("id", "scope", "how", "line", "starter", "multi", "multi_self", "start_line", "join_line", "path",
                 "own_args", "scoped_join", "via", "started_at", "loop")

    def __init__(self, ident: int, scope: Scope, how: str, line: int, starter: Scope | None, multi: bool,
                 multi_self: bool, start_line: int, path: str = "") -> None:
        self.id = ident
        self.scope = scope  # the function that runs on the thread
        self.how = how  # e.g. "Thread(target=...)" for messages
        self.line = line
        self.starter = starter  # the scope whose code starts it (None for Thread subclasses)
        self.multi = multi  # may run in several threads at once, sharing globals and closures
        self.multi_self = multi_self  # ... and sharing one `self`
        self.start_line = start_line  # in the starter: code above this runs before the thread starts
        self.join_line: int | None = None  # in the starter: code below this runs after it is joined
        self.path = path  # the file where it is started (or, for a Thread subclass, defined)
        self.own_args: frozenset[int] = frozenset()  # argument positions that differ for each thread
        self.scoped_join: int | None = None  # started through a wrapper that joins it: the call's line
        self.via: tuple[str, int] | None = None  # through a wrapper: (file, line) of the wrapper's own start
        # The line messages name: the thread's start() call where it is found (what
        # `mapsafe race` and Go report as where a thread was created), else ``line``.
        self.started_at = line
        self.loop = False  # the event loop's context: coroutines and loop callbacks, one thread

    def describe(self, here: str = "") -> str:
        """'worker() runs via Thread(target=...) at line 6', with the file when it is not ``here``."""
        if self.loop:
            return "async code runs on the event loop's thread"
        if not self.line:
            return f"{self.scope.qualname}() runs via {self.how}"
        where = f"line {self.started_at}" if self.path == here else f"{self.path}:{self.started_at}"
        return f"{self.scope.qualname}() runs via {self.how} at {where}"


class ThreadModel:
    """Thread entries, call edges, contexts per scope, and all accesses to candidate shared maps."""

    def __init__(self, program: Program, max_depth: int = DEFAULT_MAX_DEPTH,
                 thread_entries: Sequence[str] = ()) -> None:
        self.program = program
        self.max_depth = max_depth
        # thread-entries config: 'pkg.mod:func' names a function that runs on a thread;
        # 'lib.Client.add_callback' a callable outside the tree that runs its first argument on one
        self.named_entries = [name for name in thread_entries if ":" in name]
        self.external_wrappers = {name for name in thread_entries if ":" not in name}
        self.matched_wrappers: set[str] = set()
        self.unknown_entries: list[str] = []
        if not program.maybe_threads and not thread_entries:
            self._reset()
            return
        # Two walks: the first finds the call sites, whose arguments tell what each
        # parameter may be (a map, a class's instance, a function); the second walk
        # uses that to resolve parameters (program.call_args) in calls, classes and maps.
        program.call_args = {}
        program.memo.clear()
        for walk in range(2):
            self._reset()
            self._calls_only = walk == 0  # the first walk only needs the call sites
            for scope in program.scopes:
                ScopeWalker(self, scope).run()
            if walk == 0:
                program.call_args = self._call_args()
                program.memo.clear()  # what depended on the call sites may change now
        self._idempotent()
        self._named_entries()
        self.unknown_entries.extend(sorted(self.external_wrappers - self.matched_wrappers))
        self._thread_subclasses()
        self._through_wrappers()
        if not self.entries:
            return
        self._finalizers()
        self._event_loop()
        for entry in self.entries:
            joins = [line for line in self._joins.get(entry.starter.id if entry.starter else -1, ())
                     if line > entry.line]
            entry.join_line = entry.scoped_join or (min(joins) if joins else None)
        self._compute_contexts()
        self._compute_protection()

    def _reset(self) -> None:
        """The state one walk fills in."""
        self._calls_only = False
        self.matched_wrappers = set()
        self.maps = MapIdentity(self.program)
        self.fork_child: set[int] = set()  # scopes that run in a forked child, where no other thread exists
        self.entries: list[Entry] = []
        self.accesses: list[Access] = []
        # callee scope id -> [(caller, locks held at the call, line)]
        self.edges: dict[int, list[tuple[Scope, frozenset, int]]] = {}
        # thread starts with known targets: (call, how, starter, targets), for the arguments they pass
        self.thread_calls: list[tuple[ast.Call, str, Scope, list[Scope]]] = []
        # every call with known callees: (call, caller, callees, locks held, in_loop, start_line)
        self.call_sites: list[tuple[ast.Call, Scope, list[Scope], frozenset, bool, int]] = []
        # wrappers: function scope id -> [(parameter slot, how, multi, line of the start in the wrapper,
        # own_args of that start, (file, line) of that start)] whose argument runs on a thread
        self.wrappers: dict[int, list[tuple[tuple[int, str], str, bool, int, frozenset[int], tuple[str, int]]]] = {}
        # (__init__ scope id, parameter) -> [(scope that calls self.<attr>(), locks held, line)]
        self.callback_calls: dict[tuple[int, tuple[int, str]], list[tuple[Scope, frozenset, int]]] = {}
        self.contexts: dict[int, set[int]] = {}  # scope id -> context ids (MAIN or entry ids)
        self.via: dict[tuple[int, int], tuple[Scope, int]] = {}  # (scope id, ctx) -> (caller, line) first seen
        self.protected_scopes: set[int] = set()
        self.inherited: dict[int, frozenset] = {}  # scope id -> locks every call of it holds
        self._lock_effects: dict[int, tuple[frozenset, frozenset]] = {}  # lock_effect, per walk
        self._joins: dict[int, list[int]] = {}  # scope id -> lines after which started threads are joined
        self._instantiated_in_loop: set[int] = set()  # id() of classes called inside a loop
        self.loop_callbacks: list[Scope] = []  # functions handed to loop.call_soon(...) and the like
        self.loop_ctx: int | None = None  # the event loop's context id, when the program has async code
        self._compound_nodes: set[int] = set()

    def _call_args(self) -> dict[tuple[int, str], list[tuple[ast.expr, Scope]]]:
        """(function scope id, parameter name) -> the (argument, caller scope) of every known call."""
        out: dict[tuple[int, str], list[tuple[ast.expr, Scope]]] = {}
        for call, caller, callees, *_ in self.call_sites:
            for fn in callees:
                node = fn.node
                if type(node) not in (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda):
                    continue
                args = node.args
                for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs):
                    slot = calls.param_slot(fn, arg.arg)
                    if slot is None:
                        continue  # self
                    value = calls.bound_argument(call, slot)
                    if value is not None:
                        out.setdefault((fn.id, arg.arg), []).append((value, caller))
        # Thread(target=f, args=(a, b)), Timer(t, f, args=[...]), executor.submit(f, a, b)
        for call, how, starter, targets in self.thread_calls:
            passed = calls.thread_arguments(call, how)
            for fn in targets:
                if type(fn.node) not in (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda):
                    continue
                args = fn.node.args
                for arg in (*args.posonlyargs, *args.args):
                    slot = calls.param_slot(fn, arg.arg)
                    if slot is not None and 0 <= slot[0] < len(passed):
                        out.setdefault((fn.id, arg.arg), []).append((passed[slot[0]], starter))
        return out

    # -- map identity and calls -------------------------------------------------------

    def target_of(self, node: ast.AST, scope: Scope) -> Target | None:
        if self._calls_only:
            return None
        return self.maps.target_of(node, scope)

    def callables(self, node: ast.AST, scope: Scope) -> list[Scope]:
        return calls.callables(self.program, node, scope)

    def path_of(self, scope: Scope) -> str:
        return getattr(self.program.index_of(scope), "path", "")

    # -- entries ------------------------------------------------------------------

    def add_entry(self, target: ast.AST, how: str, call: ast.Call, starter: Scope, multi: bool,
                  start_line: int, own_args: frozenset[int] = frozenset()) -> None:
        program = self.program
        multi_self = multi and type(target) is ast.Attribute and type(target.value) is ast.Name and (
            program.self_class(starter, target.value.id) is not None
        )
        # A parameter of the starter is resolved at the starter's call sites (as a wrapper,
        # below), each with its own loop: spawn(f) called in a loop starts f many times.
        param = type(target) is ast.Name and starter.kind == "function" and calls.param_slot(starter, target.id)
        found = [] if param else self.callables(target, starter)
        if not found and type(target) is ast.Attribute and class_of(program, target.value, starter) is None \
                and distinctive_member(program, target, starter):
            # Thread(target=d1._client_disconnect), where d1's class is unknown: the one class that
            # defines that method (thread starts only: a call edge guessed by name would add more
            # code to a thread than a wrong entry does)
            method = program.only_method(target.attr)
            found = [method] if method is not None else []
        if found:
            self.thread_calls.append((call, how, starter, found))
        for scope in found:
            ident = len(self.entries) + 1
            entry = Entry(ident, scope, how, call.lineno, starter, multi, multi_self, start_line,
                          self.path_of(starter))
            entry.own_args = own_args
            if how in ("Thread(target=...)", "Timer"):
                entry.started_at = _start_call_line(call, starter)
            self.entries.append(entry)
        if found:
            return
        # A wrapper: the function runs whatever its caller passes for this parameter.
        slot = None
        owner = starter
        if type(target) is ast.Name and starter.kind == "function":
            slot = calls.param_slot(starter, target.id)
        elif type(target) is ast.Attribute:
            got = self.init_param_attr(target, starter)
            if got is not None:
                owner, slot = got
        if slot is not None:
            self.wrappers.setdefault(owner.id, []).append(
                (slot, how, multi, start_line, own_args, (self.path_of(starter), call.lineno)))

    def pass_arguments(self, target: ast.AST, how: str, call: ast.Call, starter: Scope) -> None:
        """A call that runs ``target`` elsewhere (a child process) with the call's ``args``: no
        entry, but the target's parameters denote what is passed (``program.call_args``)."""
        found = self.callables(target, starter)
        if found:
            self.thread_calls.append((call, how, starter, found))

    def lock_effect(self, fn: Scope) -> tuple[frozenset, frozenset]:
        """(locks ``fn`` acquires and returns holding, locks it releases that it did not take):
        ``def openDB(self): self.mx.acquire() ...`` and ``def closeDB(self): ... self.mx.release()``."""
        cache = self._lock_effects
        found = cache.get(fn.id)
        if found is None:
            acquired, released = set(), set()
            if fn.kind == "function":
                todo = list(fn.body())
                while todo:
                    node = todo.pop()
                    if type(node) in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda):
                        continue
                    if (type(node) is ast.Call and type(node.func) is ast.Attribute
                            and node.func.attr in ("acquire", "release")
                            and self.program.is_lock_expr(node.func.value, fn)):
                        key = lock_key(self.program, node.func.value, fn)
                        (acquired if node.func.attr == "acquire" else released).add(key)
                    todo.extend(ast.iter_child_nodes(node))
            found = cache[fn.id] = (frozenset(acquired - released), frozenset(released - acquired))
        return found

    def add_handler_entries(self, info, call: ast.Call, starter: Scope) -> None:
        """A request handler class of a threading server: each request runs its handle(),
        setup(), finish() and do_GET()-style methods on a thread of its own."""
        seen: set[str] = set()
        for cls in self.program.mro(info):
            for name, method in cls.methods.items():
                if name in seen or not (name in ("handle", "setup", "finish") or name.startswith("do_")):
                    continue
                seen.add(name)
                ident = len(self.entries) + 1
                # many requests at once, each with a handler object of its own (not one shared self)
                self.entries.append(Entry(ident, method, f"a threading server's handler {info.name}", call.lineno,
                                          starter, True, False, call.lineno, self.path_of(starter)))

    def _event_loop(self) -> None:
        """Coroutines and loop callbacks run on the event loop's one thread, not on the thread
        that creates the coroutine (``run_coroutine_threadsafe(self.async_add(), loop)``):
        one context for all of them, which does not race with itself."""
        if not any(type(scope.node) is ast.AsyncFunctionDef for scope in self.program.scopes) \
                and not self.loop_callbacks:
            return
        ident = len(self.entries) + 1
        sentinel = Scope("function", ast.Pass(lineno=0, col_offset=0), "<event loop>", None, -1)
        entry = Entry(ident, sentinel, "the event loop", 0, None, False, False, 0)
        entry.loop = True
        self.entries.append(entry)
        self.loop_ctx = ident

    def _finalizers(self) -> None:
        """__del__ runs in whichever thread drops the last reference (or the GC runs in),
        so in a program with threads it is thread code of its own."""
        for info in self.program.classes:
            method = info.methods.get("__del__")
            if method is not None:
                ident = len(self.entries) + 1
                self.entries.append(Entry(ident, method, "__del__ (runs in whichever thread releases the object)",
                                          method.line, None, True, False, 0, self.path_of(method)))

    def init_param_attr(self, node: ast.AST, scope: Scope) -> tuple[Scope, tuple[int, str]] | None:
        """(__init__, its parameter slot) when ``node`` is ``self.attr`` and __init__ stores a parameter there."""
        if type(node) is not ast.Attribute or type(node.value) is not ast.Name:
            return None
        found = self.program.self_class(scope, node.value.id)
        if found is None:
            return None
        init = self.program.method(found[0], "__init__")
        if init is None:
            return None
        for cls in self.program.mro(found[0]):
            for binding in cls.attrs.get(node.attr, ()):
                if binding.kind == "assign" and type(binding.value) is ast.Name:
                    slot = calls.param_slot(init, binding.value.id)
                    if slot is not None:
                        return init, slot
        return None

    def _through_wrappers(self) -> None:
        """Arguments passed to wrappers become thread entries; wrappers of wrappers too."""
        done: set[tuple[int, int, tuple[int, str]]] = set()
        changed = True
        while changed:
            changed = False
            for call, caller, callees, _held, in_loop, start_line in self.call_sites:
                for callee in callees:
                    for slot, how, multi, inner_start, own_args, site in list(self.wrappers.get(callee.id, ())):
                        key = (id(call), callee.id, slot)
                        if key in done:
                            continue
                        done.add(key)
                        argument = calls.bound_argument(call, slot)
                        if argument is None:
                            continue
                        before = len(self.wrappers.get(caller.id, ()))
                        made = len(self.entries)
                        self.add_entry(argument, f"{how} in {callee.qualname}()", call, caller, multi or in_loop,
                                       start_line, own_args)
                        joined = any(line > inner_start for line in self._joins.get(callee.id, ()))
                        for entry in self.entries[made:]:
                            entry.via = entry.via or site
                            if joined:  # the wrapper joins what it starts
                                entry.scoped_join = call.lineno
                        changed = changed or len(self.wrappers.get(caller.id, ())) != before
        # Constructor arguments that the object later calls as self.<attr>(): edges from that code.
        for call, caller, callees, _held, _in_loop, _start in self.call_sites:
            for callee in callees:
                for (init_id, slot), sites in self.callback_calls.items():
                    if init_id != callee.id:
                        continue
                    argument = calls.bound_argument(call, slot)
                    if argument is None:
                        continue
                    for fn in self.callables(argument, caller):
                        for site_scope, held, line in sites:
                            self.edges.setdefault(fn.id, []).append((site_scope, held, line))

    def is_thread_pool(self, node: ast.AST, scope: Scope, by_name: bool) -> bool:
        """Is ``node`` a pool of threads: built by a thread-pool constructor, or (by_name) named like one?"""
        index = self.program
        values: list = []
        if type(node) is ast.Name:
            _, bindings = index.bindings_of(scope, node.id)
            values = [b.value for b in bindings if b.kind in ("assign", "with")]
            name = node.id
        elif type(node) is ast.Attribute:
            name = node.attr
            if type(node.value) is ast.Name:
                found = index.self_class(scope, node.value.id)
                if found is not None:
                    for cls in index.mro(found[0]):
                        values.extend(b.value for b in cls.attrs.get(node.attr, ()) if b.kind == "assign")
        elif type(node) is ast.Call:
            values = [node]
            name = ""
        else:
            return False
        for value in values:
            if type(value) is ast.Call:
                qualified = index.qualified(value.func, scope)
                if qualified in _EXECUTORS:
                    return True
                if qualified in _PROCESS_POOLS:
                    return False
        return by_name and bool(_POOL_NAME.search(name)) and not _NOT_THREADS.search(name)

    def _idempotent(self) -> None:
        """Mark writes that two threads can both make without harm: a set's add (grow-only), and
        a memo store ``C[k] = v`` in a function that looked ``k`` up in ``C`` first (``k in C``,
        ``C.get(k)``, ``C[k]``): threads that miss together store the same result."""
        looked_up: dict[tuple[int, tuple], list[tuple[str, int]]] = {}
        for access in self.accesses:
            if access.kind == "read" and access.key is not None:
                looked_up.setdefault((access.scope.id, access.target.key), []).append(
                    (ast.dump(access.key), access.line))
        for access in self.accesses:
            if access.kind != "write" or access.in_compound:
                continue
            node = access.node
            if type(node) is ast.Call and type(node.func) is ast.Attribute and node.func.attr == "add":
                access.idempotent = True
            elif type(node) is ast.Subscript and type(node.ctx) is ast.Store and access.key is not None:
                key = ast.dump(access.key)
                access.idempotent = any(k == key and line <= access.line
                                        for k, line in looked_up.get((access.scope.id, access.target.key), ()))

    def _named_entries(self) -> None:
        for name in self.named_entries:
            module, _, qualname = name.partition(":")
            found = self.program.resolve(f"{module}.{qualname}")
            if not isinstance(found, Scope) or found.kind != "function":
                self.unknown_entries.append(name)
                continue
            ident = len(self.entries) + 1
            self.entries.append(Entry(ident, found, "thread-entries config", 0, None, False, False, 0,
                                      self.path_of(found)))

    def _thread_subclasses(self) -> None:
        program = self.program
        for info in program.classes:
            if not (program.external_bases(info) & THREAD_CLASSES):
                continue
            run = program.method(info, "run")
            if run is None or run.owner is None:
                continue  # threading.Thread's own run: its target, seen where it is passed
            ident = len(self.entries) + 1
            multi = id(info) in self._instantiated_in_loop
            self.entries.append(Entry(ident, run, f"Thread subclass {info.name}", info.node.lineno, None, multi,
                                      False, 0, self.path_of(info.scope)))

    # -- contexts and protection --------------------------------------------------------

    def _compute_contexts(self) -> None:
        program = self.program
        contexts: dict[int, set[int]] = {scope.id: set() for scope in program.scopes}
        callees: dict[int, list[tuple[Scope, int]]] = {}
        for callee_id, callers in self.edges.items():
            for caller, _, line in callers:
                callees.setdefault(caller.id, []).append((program.scopes[callee_id], line))
        entry_scopes = {entry.scope.id for entry in self.entries}
        loop = self.loop_ctx
        coroutines = {scope.id for scope in program.scopes if type(scope.node) is ast.AsyncFunctionDef}
        todo: list[tuple[Scope, int, int]] = []  # (scope, context, calls from the entry)
        for entry in self.entries:
            if not entry.loop:
                todo.append((entry.scope, entry.id, 0))
        if loop is not None:
            for scope in program.scopes:
                if scope.id in coroutines:
                    todo.append((scope, loop, 0))
            for scope in self.loop_callbacks:
                todo.append((scope, loop, 0))
            entry_scopes |= coroutines | {scope.id for scope in self.loop_callbacks}
        for scope in program.scopes:
            if scope.kind in ("module", "class"):
                todo.append((scope, MAIN, 0))
            elif scope.id not in self.edges and scope.id not in entry_scopes:
                parent = scope.parent
                if scope.kind == "function" and parent is not None and parent.kind in ("module", "class"):
                    todo.append((scope, MAIN, 0))  # public API: called from anywhere, say the main thread
        via = self.via
        while True:
            # Breadth first (a queue), so that a scope is first reached by a shortest path: the
            # path recorded for it, and its depth, against which max_depth is checked.
            queue = deque(sorted(todo, key=lambda item: item[2]))
            todo = []
            while queue:
                scope, ctx, depth = queue.popleft()
                seen = contexts[scope.id]
                if ctx in seen:
                    continue
                seen.add(ctx)
                if depth >= self.max_depth:
                    continue
                for callee, line in callees.get(scope.id, ()):
                    if callee.id in coroutines and ctx != loop:
                        continue  # calling a coroutine function only makes the coroutine; the loop runs it
                    if ctx not in contexts[callee.id] and (callee.id, ctx) not in via:
                        via[(callee.id, ctx)] = (scope, line)
                    queue.append((callee, ctx, depth + 1))
            # Nested functions nobody calls by name (callbacks, key functions) run where they are defined.
            for scope in program.scopes:
                if not contexts[scope.id] and scope.parent is not None and scope.id not in entry_scopes:
                    for ctx in contexts[scope.parent.id]:
                        todo.append((scope, ctx, 0))
            if not todo:
                break
        self.contexts = contexts

    def trace(self, access: Access, ctx: int) -> list[tuple[str, str, int]]:
        """The calls from thread entry ``ctx`` down to ``access``, as (step, path, line):
        ('Poller.run (thread via Thread(target=...))', 'svc.py', 40), ('Store.refresh', 'svc.py', 52)
        (the call), ..., ('store.py:88', 'store.py', 88) (the access)."""
        if ctx == MAIN:
            return []
        entry = self.entries[ctx - 1]
        steps: list[tuple[str, str, int]] = []
        scope = access.scope
        seen: set[int] = set()
        while scope is not entry.scope and scope.id not in seen:
            seen.add(scope.id)
            hop = self.via.get((scope.id, ctx))
            if hop is None:
                break
            caller, line = hop
            steps.append((scope.qualname, self.path_of(caller), line))
            scope = caller
        if entry.loop:  # the chain ends at the coroutine or loop callback it starts from
            steps.append((f"{scope.qualname} (on the event loop)", self.path_of(scope), scope.line))
            steps.reverse()
            here = self.path_of(access.scope)
            steps.append((f"{here}:{access.line}", here, access.line))
            return steps
        entry_path = entry.path or self.path_of(entry.scope)
        steps.append((f"{entry.scope.qualname} (thread via {entry.how})", entry_path,
                      entry.started_at or entry.scope.line))
        steps.reverse()
        here = self.path_of(access.scope)
        steps.append((f"{here}:{access.line}", here, access.line))
        return steps

    def _compute_protection(self) -> None:
        """The locks every call of a function holds (its callers' locks at the call, and theirs).

        A thread's entry starts with none, and so does a function nobody calls; a function
        whose name ends in ``_locked`` is called with some lock held (the CALLER token).
        """
        entry_scopes = {entry.scope.id for entry in self.entries}
        inherited: dict[int, frozenset | None] = {}
        for scope in self.program.scopes:
            if scope.kind == "function" and scope.name.endswith("_locked"):
                inherited[scope.id] = frozenset({(CALLER, scope.id)})
            elif scope.id in entry_scopes or scope.id not in self.edges:
                inherited[scope.id] = frozenset()
            else:
                inherited[scope.id] = None  # not known yet: every lock, until a caller says otherwise
        changed = True
        while changed:  # the sets only shrink, so this ends
            changed = False
            for callee_id, callers in self.edges.items():
                if callee_id in entry_scopes or (CALLER, callee_id) in (inherited.get(callee_id) or ()):
                    continue
                meet: frozenset | None = None
                for caller, held, _ in callers:
                    above = inherited.get(caller.id)
                    if above is None:
                        continue  # a caller not known yet adds no constraint
                    here = held | above
                    meet = here if meet is None else meet & here
                if meet is not None and meet != inherited.get(callee_id):
                    inherited[callee_id] = meet
                    changed = True
        self.inherited = {k: v or frozenset() for k, v in inherited.items()}
        self.protected_scopes = {k for k, v in self.inherited.items() if v}

    # -- queries used by the rules ---------------------------------------------------------

    def locks_at(self, access: Access) -> frozenset:
        """The locks held at the access: taken in its function, or by every caller of it."""
        return access.held | self.inherited.get(access.scope.id, frozenset())

    def is_protected(self, access: Access) -> bool:
        return bool(self.locks_at(access))

    def thread_contexts(self, access: Access) -> list[int]:
        return [ctx for ctx in self.contexts.get(access.scope.id, ()) if ctx != MAIN]

    def _excluded(self, access: Access, ctx: int, own_ctx: int | None = None) -> bool:
        """Does ``access`` (running in context ``own_ctx``) certainly happen before thread
        ``ctx`` starts, or after it is joined?"""
        if ctx == MAIN:
            return False
        entry = self.entries[ctx - 1]
        scope = access.scope
        starter = entry.starter
        if (own_ctx == MAIN and entry.join_line is not None and starter is not None and starter.kind == "function"
                and self.contexts.get(starter.id, set()) <= {MAIN}):
            # Structured: the starter joins its threads before it returns, and only the main
            # thread runs it, so main-thread code outside it runs before or after, never during.
            if scope is starter:
                if access.line < entry.start_line or access.line > entry.join_line:
                    return True
            elif scope.id not in self._reachable(starter):
                return True
        if scope.kind in ("module", "class") and entry.starter is not scope:
            return True  # import-time code runs before functions start threads
        # The window only holds when the starter runs once for this dict: import-time code, a
        # main(), or a closure dict that each call of the starter creates afresh. A function
        # called again while its first thread still runs races with that thread.
        if entry.starter is scope and (
            scope.kind == "module" or scope.name == "main" or access.target.closure_owner is scope
        ):
            line = access.line
            if line < entry.start_line:
                return True
            if entry.join_line is not None and line > entry.join_line:
                return True
        if access.target.instance and scope.name == "__init__" and scope.owner is not None:
            return entry.starter is not scope  # an object is built before its methods can start threads
        return False

    def _reachable(self, scope: Scope) -> set[int]:
        """Ids of the scopes ``scope`` may call, directly or not (nested functions included)."""
        cache = self.__dict__.setdefault("_reach", {})
        found = cache.get(scope.id)
        if found is None:
            callees: dict[int, list[int]] = self.__dict__.get("_callees") or {}
            if not callees:
                for callee_id, callers in self.edges.items():
                    for caller, _, _ in callers:
                        callees.setdefault(caller.id, []).append(callee_id)
                self._callees = callees
            found, todo = set(), [scope.id, *(c.id for c in scope.children)]
            while todo:
                current = todo.pop()
                if current in found:
                    continue
                found.add(current)
                todo.extend(callees.get(current, ()))
                todo.extend(c.id for c in self.program.scopes[current].children)
            cache[scope.id] = found
        return found

    def _entries_of(self, scope: Scope) -> list[Entry]:
        """The entries that run ``scope`` itself (built once, after the entries are known)."""
        table = self.__dict__.get("_by_entry_scope")
        if table is None:
            table = {}
            for entry in self.entries:
                table.setdefault(entry.scope.id, []).append(entry)
            self._by_entry_scope = table
        return table.get(scope.id, [])

    def own_key(self, access: Access) -> bool:
        """Is the access's key the thread's own: ``get_ident()``, ``current_thread()`` (or its
        name or ident), a local bound to one, or a parameter of the thread's entry function
        (each thread started with its own argument)?"""
        key = access.key
        if key is None:
            return False
        scope = access.scope
        if type(key) is ast.Name:
            owner, bindings = self.program.bindings_of(scope, key.id)
            if owner is scope and bindings and all(b.kind == "param" for b in bindings):
                # Thread(target=f, args=(i,)) in `for i in range(n)`: each thread its own i
                slot = calls.param_slot(scope, key.id)
                entries = self._entries_of(scope)
                return bool(slot and entries) and all(slot[0] in entry.own_args for entry in entries)
            if len(bindings) == 1 and bindings[0].kind == "assign" and bindings[0].value is not None:
                key = bindings[0].value
        if type(key) is ast.Attribute and key.attr in ("name", "ident", "native_id"):
            key = key.value
        if type(key) is ast.Call:
            return self.program.qualified(key.func, scope) in _THREAD_IDENTITY
        return False

    def conflict(self, a: Access, b: Access, a_contexts: list[int] | None = None) -> bool:
        """Can ``a`` and ``b`` run at the same time on different threads, and harm each other?"""
        target = a.target
        if "iter" not in (a.kind, b.kind) and _distinct_keys(self, a, b):
            return False  # they touch different keys: one-key operations on different keys cannot harm
        if target.closure_owner is not None and a.scope is target.closure_owner and b.scope is target.closure_owner:
            return False  # a local dict: each call has its own
        if a.scope.id in self.fork_child or b.scope.id in self.fork_child:
            return False
        if target.instance and target.cls is not None and self._confinement().confined(target.cls):
            return False  # every instance stays in the call that builds it: no two threads share one
        a_ctx = a_contexts if a_contexts is not None else self.contexts.get(a.scope.id, ())
        b_ctx = self.contexts.get(b.scope.id, ())
        for ca in a_ctx:
            for cb in b_ctx:
                if {ca, cb} == {MAIN, self.loop_ctx}:
                    # Assumed not to overlap: a program that runs asyncio.run(main()) interleaves
                    # its coroutines with no other main-thread code; one whose loop has a thread
                    # of its own hands work to it (run_coroutine_threadsafe, call_soon_threadsafe)
                    # rather than touching the loop's maps from the main thread.
                    continue
                if target.instance and (self._finalizing(ca) or self._finalizing(cb)):
                    continue  # __del__: nobody else holds the object any more, so its own maps are private
                if ca == cb:
                    if ca == MAIN:
                        continue
                    entry = self.entries[ca - 1]
                    if not (entry.multi_self if target.instance else entry.multi):
                        continue
                    if target.closure_owner is not None and entry.starter is not target.closure_owner:
                        continue
                if self._excluded(a, cb, ca) or self._excluded(b, ca, cb):
                    continue
                return True
        return False

    def _confinement(self) -> Confinement:
        found = self.__dict__.get("_confined")
        if found is None:
            found = self._confined = Confinement(self.program, self.call_sites, self.thread_calls)
        return found

    def _finalizing(self, ctx: int) -> bool:
        return ctx != MAIN and self.entries[ctx - 1].how.startswith("__del__")

    def by_target(self) -> dict[tuple, list[Access]]:
        out: dict[tuple, list[Access]] = {}
        for access in self.accesses:
            out.setdefault(access.target.key, []).append(access)
        return out


def _distinct_keys(model: ThreadModel, a: Access, b: Access) -> bool:
    """Do two one-key accesses certainly use different keys (in different threads)? Each a
    thread's own key, a thread's own key and a literal one, or two different literals."""
    if a.key is None or b.key is None:
        return False
    a_literal, b_literal = type(a.key) is ast.Constant, type(b.key) is ast.Constant
    if a_literal and b_literal:
        return a.key.value != b.key.value
    a_own, b_own = model.own_key(a), model.own_key(b)
    return (a_own and b_own) or (a_own and b_literal) or (b_own and a_literal)


def _start_call_line(call: ast.Call, starter: Scope) -> int:
    """The line of the ``start()`` that starts the Thread or Timer ``call`` makes, else the call's own.

    Found for ``Thread(...).start()``, and for ``x = Thread(...)`` or ``self.x =
    Thread(...)`` followed by ``x.start()`` in the same function, or by
    ``self.x.start()`` in any method of the same class.
    """
    bound = None
    for node in ast.walk(starter.node):
        kind = type(node)
        if kind is ast.Attribute and node.value is call and node.attr == "start":
            return call.lineno  # Thread(...).start()
        if kind is ast.Assign and node.value is call and len(node.targets) == 1:
            bound = chain_name(node.targets[0])
    if bound is None:
        return call.lineno
    places = [(starter.node, bound)]
    owner = starter.owner
    if starter.self_name and bound.startswith(starter.self_name + ".") and owner is not None:
        attr = bound[len(starter.self_name):]  # ".x"
        places += [(method.node, method.self_name + attr) for method in owner.methods.values()
                   if getattr(method, "self_name", None)]
    for tree, chain in places:
        lines = sorted(node.lineno for node in ast.walk(tree)
                       if type(node) is ast.Call and type(node.func) is ast.Attribute and node.func.attr == "start"
                       and not node.args and chain_name(node.func.value) == chain
                       and (tree is not starter.node or node.lineno >= call.lineno))
        if lines:
            return lines[0]
    return call.lineno
