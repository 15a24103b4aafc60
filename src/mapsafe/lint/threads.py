"""Which code runs on which thread, and every access to a possibly shared dict, with its lock state."""

from __future__ import annotations

import ast
import re

from .scopes import Index, Scope

__all__ = ["Entry", "Access", "Target", "ThreadModel", "MAIN"]

MAIN = 0  # the context id of the main thread (import-time code, and code nobody in the module calls)

_THREAD_CLASSES = frozenset({"threading.Thread", "dummy_threading.Thread"})
_TIMERS = frozenset({"threading.Timer", "dummy_threading.Timer"})
_EXECUTORS = frozenset(
    {
        "concurrent.futures.ThreadPoolExecutor",
        "concurrent.futures.thread.ThreadPoolExecutor",
        "multiprocessing.pool.ThreadPool",
        "multiprocessing.dummy.Pool",
    }
)
_PROCESS_POOLS = frozenset(
    {"concurrent.futures.ProcessPoolExecutor", "concurrent.futures.process.ProcessPoolExecutor", "multiprocessing.Pool",
     "multiprocessing.pool.Pool"}
)
_TO_THREAD = frozenset({"asyncio.to_thread"})
_PARTIAL = frozenset({"functools.partial"})
# Names that say "a pool of threads" when we cannot see the constructor.
_POOL_NAME = re.compile(r"executor|thread_?pool|(?:^|_)pool(?:$|_)", re.IGNORECASE)
_NOT_THREADS = re.compile(r"process|proc(?:$|_)", re.IGNORECASE)
_MAP_METHODS = frozenset({"map", "imap", "imap_unordered", "starmap", "map_async", "starmap_async"})

# os.register_at_fork(after_in_child=f), multiprocessing.util.register_after_fork(obj, f)
_AT_FORK = frozenset({"register_at_fork", "register_after_fork"})
_WRITERS = frozenset({"pop", "popitem", "clear", "update", "setdefault", "__setitem__", "__delitem__"})
_VIEWS = frozenset({"keys", "items", "values"})
_LOOPS = (ast.For, ast.AsyncFor, ast.While)


class Target:
    """A dict that may be shared: a module global, a closure variable, or a class or instance attribute."""

    __slots__ = ("key", "display", "instance", "closure_owner")

    def __init__(self, key: tuple, display: str, instance: bool = False, closure_owner: Scope | None = None) -> None:
        self.key = key
        self.display = display
        self.instance = instance  # per-object attribute: only threads sharing one `self` share it
        self.closure_owner = closure_owner  # for a closure variable: the function that creates it


class Entry:
    """One place where a function is handed to another thread."""

    __slots__ = ("id", "scope", "how", "line", "starter", "multi", "multi_self", "start_line", "join_line")

    def __init__(self, ident: int, scope: Scope, how: str, line: int, starter: Scope | None, multi: bool,
                 multi_self: bool, start_line: int) -> None:
        self.id = ident
        self.scope = scope  # the function that runs on the thread
        self.how = how  # e.g. "Thread(target=...)" for messages
        self.line = line
        self.starter = starter  # the scope whose code starts it (None for Thread subclasses)
        self.multi = multi  # may run in several threads at once, sharing globals and closures
        self.multi_self = multi_self  # ... and sharing one `self`
        self.start_line = start_line  # in the starter: code above this runs before the thread starts
        self.join_line: int | None = None  # in the starter: code below this runs after it is joined

    def describe(self) -> str:
        if not self.line:
            return f"{self.scope.name}() runs via {self.how}"
        return f"{self.scope.name}() runs via {self.how} at line {self.line}"


class Access:
    """One use of a target: kind is 'read', 'write', 'iter' or 'compound' (check-then-act, read-modify-write)."""

    __slots__ = ("target", "kind", "node", "scope", "held", "pattern", "fix", "in_compound")

    def __init__(self, target: Target, kind: str, node: ast.AST, scope: Scope, held: bool) -> None:
        self.target = target
        self.kind = kind
        self.node = node
        self.scope = scope
        self.held = held  # inside `with lock:` or between acquire() and release()
        self.pattern = ""
        self.fix = ""
        self.in_compound = False  # the write half of a compound access (reported as MS203, not MS201)

    @property
    def line(self) -> int:
        return self.node.lineno  # type: ignore[attr-defined]


class ThreadModel:
    """Thread entries, call edges, contexts per scope, and all accesses to candidate shared dicts."""

    def __init__(self, index: Index, incoming: list[tuple[str, str, bool]] = ()) -> None:
        self.index = index
        # (dotted name, how, multi): functions imported from elsewhere that this module runs on threads
        self.outgoing: list[tuple[str, str, bool]] = []
        self.fork_child: set[int] = set()  # scopes that run in a forked child, where no other thread exists
        self.entries: list[Entry] = []
        self.accesses: list[Access] = []
        self.edges: dict[int, list[tuple[Scope, bool]]] = {}  # callee scope id -> [(caller, protected)]
        self.contexts: dict[int, set[int]] = {}  # scope id -> context ids (MAIN or entry ids)
        self.protected_scopes: set[int] = set()
        self._targets: dict[tuple, Target] = {}
        self._resolved: dict[tuple[int, str], Target | None] = {}
        self._joins: dict[int, list[int]] = {}  # scope id -> lines after which started threads are joined
        self._instantiated_in_loop: set[str] = set()  # class names called inside a loop
        self._compound_nodes: set[int] = set()
        if not index.maybe_threads and not incoming:
            return
        for scope in index.scopes:
            _ScopeWalker(self, scope).run()
        self._thread_subclasses()
        self._incoming(incoming)
        if not self.entries:
            return
        for entry in self.entries:
            joins = [line for line in self._joins.get(entry.starter.id if entry.starter else -1, ())
                     if line > entry.line]
            entry.join_line = min(joins) if joins else None
        self._compute_contexts()
        self._compute_protection()

    def _incoming(self, incoming: list[tuple[str, str, bool]]) -> None:
        """Functions of this module that other linted files run on threads."""
        by_name = {s.qualname: s for s in self.index.scopes if s.kind == "function"}
        for qualname, how, multi in incoming:
            scope = by_name.get(qualname)
            if scope is not None:
                ident = len(self.entries) + 1
                self.entries.append(Entry(ident, scope, how, 0, None, multi, False, 0))

    # -- targets ------------------------------------------------------------------

    def target_of(self, node: ast.AST, scope: Scope) -> Target | None:
        kind = type(node)
        if kind is ast.Name:
            cache_key = (scope.id, node.id)
            if cache_key in self._resolved:
                return self._resolved[cache_key]
            found = self._name_target(node.id, scope)
            self._resolved[cache_key] = found
            return found
        if kind is ast.Attribute and type(node.value) is ast.Name:
            cache_key = (scope.id, node.value.id + "." + node.attr)
            if cache_key in self._resolved:
                return self._resolved[cache_key]
            found = self._attr_target(node.value, node.attr, scope)
            self._resolved[cache_key] = found
            return found
        return None

    def _make(self, key: tuple, display: str, instance: bool = False, owner: Scope | None = None) -> Target:
        target = self._targets.get(key)
        if target is None:
            target = self._targets[key] = Target(key, display, instance, owner)
        return target

    def _name_target(self, name: str, scope: Scope) -> Target | None:
        index = self.index
        owner, bindings = index.bindings_of(scope, name)
        if owner is None or owner.kind == "class" or not index.all_dict(bindings, owner):
            return None
        if owner.kind == "module":
            return self._make(("global", name), name)
        return self._make(("closure", owner.id, name), name, owner=owner)

    def _attr_target(self, base: ast.Name, attr: str, scope: Scope) -> Target | None:
        index = self.index
        found = index.self_class(scope, base.id)
        if found is not None:
            info = found[0]
        else:
            info = index.resolve_class(base, scope)
            if info is None:
                return None
        for cls in index.mro(info):
            bindings = cls.attrs.get(attr)
            if bindings:
                if not index.all_dict(bindings, cls.scope):
                    return None
                instance = attr in cls.instance_attrs
                display = f"self.{attr}" if found is not None and not found[1] else f"{cls.name}.{attr}"
                return self._make(("attr", cls.name, attr), display, instance)
        return None

    # -- entries ------------------------------------------------------------------

    def callables(self, node: ast.AST, scope: Scope) -> list[Scope]:
        """The functions (or lambdas) that calling ``node`` may run, as far as this module tells."""
        index = self.index
        kind = type(node)
        if kind is ast.Lambda:
            inner = index.scope_of.get(node)
            return [inner] if inner is not None else []
        if kind is ast.Name:
            _, bindings = index.bindings_of(scope, node.id)
            out = [b.value for b in bindings if b.kind == "def"]
            if not out:
                for b in bindings:
                    if b.kind == "class":
                        init = index.method(b.value, "__init__")  # type: ignore[arg-type]
                        if init is not None:
                            out.append(init)
            return out  # type: ignore[return-value]
        if kind is ast.Attribute and type(node.value) is ast.Name:
            base = node.value
            found = index.self_class(scope, base.id)
            info = found[0] if found else index.resolve_class(base, scope)
            if info is None:
                _, bindings = index.bindings_of(scope, base.id)
                if len(bindings) == 1 and bindings[0].kind == "assign" and type(bindings[0].value) is ast.Call:
                    info = index.resolve_class(bindings[0].value.func, scope)  # type: ignore[attr-defined]
            if info is not None:
                method = index.method(info, node.attr)
                return [method] if method is not None else []
            return []
        if kind is ast.Call and node.args and index.qualified(node.func, scope) in _PARTIAL:
            return self.callables(node.args[0], scope)
        return []

    def add_entry(self, target: ast.AST, how: str, call: ast.Call, starter: Scope, multi: bool,
                  start_line: int) -> None:
        if type(target) in (ast.Name, ast.Attribute):
            imported = self.imported_name(target, starter)
            if imported is not None:
                self.outgoing.append((imported, f"{how} in another linted file", multi))
                return
        multi_self = multi and type(target) is ast.Attribute and type(target.value) is ast.Name and (
            self.index.self_class(starter, target.value.id) is not None
        )
        for scope in self.callables(target, starter):
            ident = len(self.entries) + 1
            self.entries.append(Entry(ident, scope, how, call.lineno, starter, multi, multi_self, start_line))

    def imported_name(self, node: ast.AST, scope: Scope) -> str | None:
        """'pkg.mod.func' when ``node`` names a function imported from another module."""
        base = node
        while type(base) is ast.Attribute:
            base = base.value
        if type(base) is not ast.Name:
            return None
        _, bindings = self.index.bindings_of(scope, base.id)
        if len(bindings) != 1 or bindings[0].kind != "import":
            return None
        return self.index.qualified(node, scope)

    def is_thread_pool(self, node: ast.AST, scope: Scope, by_name: bool) -> bool:
        """Is ``node`` a pool of threads: built by a thread-pool constructor, or (by_name) named like one?"""
        index = self.index
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

    def _thread_subclasses(self) -> None:
        index = self.index
        thread_classes: set[str] = set()
        changed = True
        while changed:  # subclasses of subclasses, within the module
            changed = False
            for info in index.classes:
                if info.name in thread_classes:
                    continue
                parent = info.scope.parent or index.module
                for base in info.bases:
                    if index.qualified(base, parent) in _THREAD_CLASSES or (
                        type(base) is ast.Name and base.id in thread_classes
                    ):
                        thread_classes.add(info.name)
                        changed = True
                        break
        for info in index.classes:
            if info.name in thread_classes:
                run = index.method(info, "run")
                if run is not None and run.owner is not None and run.owner.name in thread_classes:
                    multi = info.name in self._instantiated_in_loop
                    ident = len(self.entries) + 1
                    self.entries.append(
                        Entry(ident, run, f"Thread subclass {info.name}", info.node.lineno, None, multi, False, 0)
                    )

    # -- contexts and protection --------------------------------------------------------

    def _compute_contexts(self) -> None:
        index = self.index
        contexts: dict[int, set[int]] = {scope.id: set() for scope in index.scopes}
        callees: dict[int, list[Scope]] = {}
        for callee_id, callers in self.edges.items():
            for caller, _ in callers:
                callees.setdefault(caller.id, []).append(index.scopes[callee_id])
        entry_scopes = {entry.scope.id for entry in self.entries}
        todo: list[tuple[Scope, int]] = []
        for entry in self.entries:
            todo.append((entry.scope, entry.id))
        for scope in index.scopes:
            if scope.kind in ("module", "class"):
                todo.append((scope, MAIN))
            elif scope.id not in self.edges and scope.id not in entry_scopes:
                parent = scope.parent
                if scope.kind == "function" and parent is not None and parent.kind in ("module", "class"):
                    todo.append((scope, MAIN))  # public API: called from anywhere, say the main thread
        while True:
            while todo:
                scope, ctx = todo.pop()
                seen = contexts[scope.id]
                if ctx in seen:
                    continue
                seen.add(ctx)
                for callee in callees.get(scope.id, ()):
                    todo.append((callee, ctx))
            # Nested functions nobody calls by name (callbacks, key functions) run where they are defined.
            for scope in index.scopes:
                if not contexts[scope.id] and scope.parent is not None and scope.id not in entry_scopes:
                    for ctx in contexts[scope.parent.id]:
                        todo.append((scope, ctx))
            if not todo:
                break
        self.contexts = contexts

    def _compute_protection(self) -> None:
        """A function is protected when its name ends in _locked, or every call to it holds a lock."""
        entry_scopes = {entry.scope.id for entry in self.entries}
        protected = {s.id for s in self.index.scopes if s.kind == "function" and s.name.endswith("_locked")}
        changed = True
        while changed:
            changed = False
            for callee_id, callers in self.edges.items():
                if callee_id in protected or callee_id in entry_scopes:
                    continue
                if all(held or caller.id in protected for caller, held in callers):
                    protected.add(callee_id)
                    changed = True
        self.protected_scopes = protected

    # -- queries used by the rules ---------------------------------------------------------

    def is_protected(self, access: Access) -> bool:
        return access.held or access.scope.id in self.protected_scopes

    def thread_contexts(self, access: Access) -> list[int]:
        return [ctx for ctx in self.contexts.get(access.scope.id, ()) if ctx != MAIN]

    def _excluded(self, access: Access, ctx: int) -> bool:
        """Does ``access`` certainly happen before thread ``ctx`` starts, or after it is joined?"""
        if ctx == MAIN:
            return False
        entry = self.entries[ctx - 1]
        scope = access.scope
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

    def conflict(self, a: Access, b: Access, a_contexts: list[int] | None = None) -> bool:
        """Can ``a`` and ``b`` run at the same time on different threads?"""
        target = a.target
        if target.closure_owner is not None and a.scope is target.closure_owner and b.scope is target.closure_owner:
            return False  # a local dict: each call has its own
        if a.scope.id in self.fork_child or b.scope.id in self.fork_child:
            return False
        a_ctx = a_contexts if a_contexts is not None else self.contexts.get(a.scope.id, ())
        b_ctx = self.contexts.get(b.scope.id, ())
        for ca in a_ctx:
            for cb in b_ctx:
                if ca == cb:
                    if ca == MAIN:
                        continue
                    entry = self.entries[ca - 1]
                    if not (entry.multi_self if target.instance else entry.multi):
                        continue
                    if target.closure_owner is not None and entry.starter is not target.closure_owner:
                        continue
                if self._excluded(a, cb) or self._excluded(b, ca):
                    continue
                return True
        return False

    def by_target(self) -> dict[tuple, list[Access]]:
        out: dict[tuple, list[Access]] = {}
        for access in self.accesses:
            out.setdefault(access.target.key, []).append(access)
        return out


def _same(a: ast.AST, b: ast.AST) -> bool:
    return ast.dump(a) == ast.dump(b)


class _ScopeWalker:
    """Walks one scope's own code (not nested defs), tracking held locks and loops."""

    def __init__(self, model: ThreadModel, scope: Scope) -> None:
        self.model = model
        self.index = model.index
        self.scope = scope
        self.loop_line: int | None = None  # line of the outermost loop we are in, within this scope
        self.held = 0

    def run(self) -> None:
        scope = self.scope
        if scope.kind == "lambda":
            self.expr(scope.node.body)  # type: ignore[attr-defined]
        else:
            self.block(scope.body())

    # -- statements --------------------------------------------------------------------

    def block(self, stmts: list[ast.stmt]) -> None:
        held_here: list[str] = []  # locks acquired by statements of this block, released later in it
        base = self.held
        for stmt in stmts:
            acquired, released = self._acquire_release(stmt)
            if released is not None and released in held_here:
                held_here.remove(released)
                self.held = base + len(held_here)
            self.stmt(stmt)
            if acquired is not None:
                held_here.append(acquired)
                self.held = base + len(held_here)
        self.held = base

    def _acquire_release(self, stmt: ast.stmt) -> tuple[str | None, str | None]:
        call = None
        if type(stmt) is ast.Expr:
            call = stmt.value
        elif type(stmt) is ast.Assign:
            call = stmt.value
        elif type(stmt) is ast.If and type(stmt.test) is ast.UnaryOp and type(stmt.test.op) is ast.Not:
            body = stmt.body
            if body and type(body[-1]) in (ast.Return, ast.Raise):
                call = stmt.test.operand  # `if not lock.acquire(...): return` holds it afterwards
        if type(call) is ast.Call and type(call.func) is ast.Attribute:
            method = call.func.attr
            if method in ("acquire", "release") and self.index.is_lock_expr(call.func.value, self.scope):
                name = ast.dump(call.func.value)
                return (name, None) if method == "acquire" else (None, name)
        return None, None

    def stmt(self, node: ast.stmt) -> None:
        kind = type(node)
        if kind in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            for decorator in node.decorator_list:
                self.expr(decorator)
            return
        if kind is ast.With or kind is ast.AsyncWith:
            locked = False
            pool = False
            for item in node.items:
                self.expr(item.context_expr)
                if self.index.is_lock_expr(item.context_expr, self.scope):
                    locked = True
                elif self.model.is_thread_pool(item.context_expr, self.scope, by_name=False):
                    pool = True
            self.held += locked
            self.block(node.body)
            self.held -= locked
            if pool:  # leaving `with ThreadPoolExecutor() as ex:` waits for its threads
                self.model._joins.setdefault(self.scope.id, []).append(node.end_lineno or node.lineno)
            return
        if kind in _LOOPS:
            outer = self.loop_line
            if outer is None:
                self.loop_line = node.lineno
            if kind is ast.While:
                self.expr(node.test)
            else:
                self.iterate(node.iter)
                self.expr(node.target)
            self.block(node.body)
            self.block(node.orelse)
            self.loop_line = outer
            if outer is None and self._joins_in(node.body):
                self.model._joins.setdefault(self.scope.id, []).append(node.end_lineno or node.lineno)
            return
        if kind is ast.If:
            acquired = self._test_acquires(node.test)
            self.expr(node.test)
            self.compound_if(node)
            self.held += acquired
            self.block(node.body)
            self.held -= acquired
            self.block(node.orelse)
            return
        if kind is ast.Try or kind.__name__ == "TryStar":
            self.block(node.body)
            for handler in node.handlers:
                if handler.type is not None:
                    self.expr(handler.type)
                self.block(handler.body)
            self.block(node.orelse)
            self.block(node.finalbody)
            return
        if kind is ast.Expr:
            value = node.value
            if self.loop_line is None and self._is_join(value):
                self.model._joins.setdefault(self.scope.id, []).append(node.lineno)
            self.expr(value)
            return
        if kind is ast.AugAssign:
            self.aug_assign(node)
            return
        if kind is ast.Assign:
            self.assign(node)
            return
        if kind is ast.Delete:
            for target in node.targets:
                if type(target) is ast.Subscript:
                    self.subscript(target, "write")
                else:
                    self.expr(target)
            return
        for field in node._fields:
            value = getattr(node, field, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, ast.stmt):
                        self.stmt(item)
                    elif isinstance(item, ast.AST):
                        self.expr_or_case(item)
            elif isinstance(value, ast.AST):
                self.expr(value)

    def expr_or_case(self, node: ast.AST) -> None:
        if type(node).__name__ == "match_case":
            self.block(node.body)  # type: ignore[attr-defined]
        else:
            self.expr(node)

    def _test_acquires(self, test: ast.expr) -> int:
        return int(
            type(test) is ast.Call and type(test.func) is ast.Attribute and test.func.attr == "acquire"
            and self.index.is_lock_expr(test.func.value, self.scope)
        )

    @staticmethod
    def _is_join(value: ast.expr) -> bool:
        if type(value) is not ast.Call:
            return False
        func = value.func
        if type(func) is ast.Attribute:
            return func.attr in ("join", "shutdown")
        return type(func) is ast.Name and func.id == "wait"

    def _joins_in(self, body: list[ast.stmt]) -> bool:
        return any(type(stmt) is ast.Expr and self._is_join(stmt.value) for stmt in body)

    # -- compound operations (MS203) -----------------------------------------------

    def compound_if(self, node: ast.If) -> None:
        """`if k not in d: d[k] = v`, `if d.get(k) is None: d[k] = v`, `if k in d: del d[k]`."""
        test = node.test
        key = dict_node = None
        absent = True
        if type(test) is ast.Compare and len(test.ops) == 1 and type(test.ops[0]) in (ast.In, ast.NotIn):
            key, dict_node = test.left, test.comparators[0]
            absent = type(test.ops[0]) is ast.NotIn
        elif type(test) is ast.UnaryOp and type(test.op) is ast.Not and type(test.operand) is ast.Compare:
            inner = test.operand
            if len(inner.ops) == 1 and type(inner.ops[0]) is ast.In:
                key, dict_node = inner.left, inner.comparators[0]
        elif type(test) is ast.Compare and len(test.ops) == 1 and type(test.ops[0]) is ast.Is:
            left = test.left
            if (type(left) is ast.Call and type(left.func) is ast.Attribute and left.func.attr == "get"
                    and left.args and type(test.comparators[0]) is ast.Constant and test.comparators[0].value is None):
                key, dict_node = left.args[0], left.func.value
        if key is None or dict_node is None:
            return
        if type(dict_node) is ast.Call and type(dict_node.func) is ast.Attribute and dict_node.func.attr == "keys":
            dict_node = dict_node.func.value
        target = self.model.target_of(dict_node, self.scope)
        if target is None:
            return
        writes: list[ast.AST] = []
        for stmt in node.body:
            for sub in ast.walk(stmt):
                kind = type(sub)
                if kind is ast.Subscript and type(sub.ctx) in (ast.Store, ast.Del) and _same(sub.slice, key):
                    if absent != (type(sub.ctx) is ast.Del) and self.model.target_of(sub.value, self.scope) is target:
                        writes.append(sub)
                elif (kind is ast.Call and not absent and type(sub.func) is ast.Attribute and sub.func.attr == "pop"
                      and len(sub.args) == 1 and _same(sub.args[0], key)
                      and self.model.target_of(sub.func.value, self.scope) is target):
                    writes.append(sub)
        if not writes:
            return
        access = self.record(target, "compound", test)
        if absent:
            access.pattern = f"'if key not in {target.display}: {target.display}[key] = ...'"
            access.fix = "use setdefault(), or mapsafe's compute_if_absent()"
        else:
            access.pattern = f"'if key in {target.display}: del {target.display}[key]'"
            access.fix = "use pop(key, None), or mapsafe's compute_if_present()"
        self.model._compound_nodes.update(id(w) for w in writes)

    def aug_assign(self, node: ast.AugAssign) -> None:
        self.expr(node.value)
        target_node = node.target
        if type(target_node) is ast.Subscript:
            target = self.model.target_of(target_node.value, self.scope)
            if target is not None:
                access = self.record(target, "compound", node)
                access.pattern = f"'{target.display}[key] {_op(node.op)}= ...'"
                access.fix = "use mapsafe's merge(key, value, operator.add), or hold a lock"
                self.expr(target_node.slice)
                return
        elif type(node.op) is ast.BitOr and type(target_node) in (ast.Name, ast.Attribute):
            target = self.model.target_of(target_node, self.scope)
            if target is not None:
                self.record(target, "write", node)  # d |= other is d.update(other)
                return
        self.expr(target_node)

    def assign(self, node: ast.Assign) -> None:
        self.expr(node.value)
        for target_node in node.targets:
            if type(target_node) is ast.Subscript:
                target = self.model.target_of(target_node.value, self.scope)
                if target is not None and len(node.targets) == 1 and self._reads_same_key(node.value, target_node):
                    access = self.record(target, "compound", node)
                    access.pattern = f"'{target.display}[key] = {target.display}.get(key) ...'"
                    access.fix = "use mapsafe's merge() or compute(), or hold a lock"
                    self.expr(target_node.slice)
                    continue
                self.subscript(target_node, "write")
            else:
                self.expr(target_node)

    def _reads_same_key(self, value: ast.expr, store: ast.Subscript) -> bool:
        target = self.model.target_of(store.value, self.scope)
        for sub in ast.walk(value):
            kind = type(sub)
            if kind is ast.Subscript and _same(sub.slice, store.slice):
                if self.model.target_of(sub.value, self.scope) is target:
                    return True
            elif kind is ast.Call and type(sub.func) is ast.Attribute and sub.func.attr == "get" and sub.args:
                if _same(sub.args[0], store.slice) and self.model.target_of(sub.func.value, self.scope) is target:
                    return True
        return False

    # -- expressions -----------------------------------------------------------------

    def record(self, target: Target, kind: str, node: ast.AST) -> Access:
        access = Access(target, kind, node, self.scope, self.held > 0)
        if kind == "write" and id(node) in self.model._compound_nodes:
            access.in_compound = True
        self.model.accesses.append(access)
        return access

    def iterate(self, node: ast.expr) -> None:
        """The iterable of a for loop or comprehension."""
        inner = node
        if type(inner) is ast.Call and type(inner.func) is ast.Name and inner.func.id in ("enumerate", "reversed") \
                and len(inner.args) == 1:
            inner = inner.args[0]
        if type(inner) is ast.Call and type(inner.func) is ast.Attribute and inner.func.attr in _VIEWS \
                and not inner.args:
            inner = inner.func.value
        target = self.model.target_of(inner, self.scope)
        if target is not None:
            self.record(target, "iter", node)
            return
        self.expr(node)

    def subscript(self, node: ast.Subscript, kind: str) -> None:
        target = self.model.target_of(node.value, self.scope)
        if target is not None:
            self.record(target, kind, node)
        else:
            self.expr(node.value)
        self.expr(node.slice)

    def expr(self, node: ast.AST) -> None:
        stack = [node]
        while stack:
            node = stack.pop()
            kind = type(node)
            if kind is ast.Name or kind is ast.Attribute:
                if type(node.ctx) is not ast.Load:
                    if kind is ast.Attribute:
                        stack.append(node.value)
                    continue  # rebinding a name or attribute is not a dict operation
                target = self.model.target_of(node, self.scope)
                if target is not None:
                    self.record(target, "read", node)
                elif kind is ast.Attribute:
                    stack.append(node.value)
                continue
            if kind is ast.Call:
                self.call(node)
                func = node.func
                if type(func) is ast.Attribute:
                    target = self.model.target_of(func.value, self.scope)
                    if target is not None:
                        self.record(target, "write" if func.attr in _WRITERS else "read", node)
                    else:
                        stack.append(func.value)
                else:
                    stack.append(func)
                stack.extend(node.args)
                stack.extend(k.value for k in node.keywords)
                continue
            if kind is ast.Subscript:
                self.subscript(node, "read" if type(node.ctx) is ast.Load else "write")
                continue
            if kind is ast.Lambda:
                continue  # its own scope
            if kind in (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp):
                outer = self.loop_line
                if outer is None:
                    self.loop_line = node.lineno
                for generator in node.generators:
                    self.iterate(generator.iter)
                    for condition in generator.ifs:
                        self.expr(condition)
                if kind is ast.DictComp:
                    self.expr(node.key)
                    self.expr(node.value)
                else:
                    self.expr(node.elt)
                self.loop_line = outer
                continue
            stack.extend(ast.iter_child_nodes(node))

    def call(self, node: ast.Call) -> None:
        """Record a call edge, and a thread entry when the call hands a function to another thread."""
        model = self.model
        index = self.index
        scope = self.scope
        func = node.func
        callees = model.callables(func, scope)
        for callee in callees:
            model.edges.setdefault(callee.id, []).append((scope, self.held > 0))
        if callees is not None and type(func) is ast.Attribute and func.attr in _AT_FORK:
            self.at_fork(node)
        if type(func) is ast.Name:
            info = index.resolve_class(func, scope)
            if info is not None and self.loop_line is not None:
                model._instantiated_in_loop.add(info.name)
        in_loop = self.loop_line is not None
        start_line = self.loop_line if self.loop_line is not None else node.lineno
        args = node.args
        qualified = index.qualified(func, scope) if type(func) in (ast.Name, ast.Attribute) else None
        if qualified in _THREAD_CLASSES:
            target = _keyword(node, "target") or (args[1] if len(args) > 1 else None)
            if target is not None:
                model.add_entry(target, "Thread(target=...)", node, scope, in_loop, start_line)
            return
        if qualified in _TIMERS:
            target = _keyword(node, "function") or (args[1] if len(args) > 1 else None)
            if target is not None:
                model.add_entry(target, "Timer", node, scope, in_loop, start_line)
            return
        if qualified in _TO_THREAD:
            if args:
                model.add_entry(args[0], "asyncio.to_thread()", node, scope, True, start_line)
            return
        if type(func) is not ast.Attribute or not args:
            return
        method = func.attr
        receiver = func.value
        if method == "submit" and model.is_thread_pool(receiver, scope, by_name=True):
            model.add_entry(args[0], "executor.submit()", node, scope, in_loop, start_line)
        elif method in _MAP_METHODS and model.is_thread_pool(receiver, scope, by_name=False):
            model.add_entry(args[0], f"pool.{method}()", node, scope, True, start_line)
        elif method == "apply_async" and model.is_thread_pool(receiver, scope, by_name=False):
            model.add_entry(args[0], "pool.apply_async()", node, scope, in_loop, start_line)
        elif method == "run_in_executor" and len(args) > 1:
            model.add_entry(args[1], "loop.run_in_executor()", node, scope, True, start_line)
        elif method == "add_done_callback" and self._is_thread_future(receiver):
            model.add_entry(args[0], "Future.add_done_callback()", node, scope, in_loop, start_line)

    def at_fork(self, node: ast.Call) -> None:
        """Fork handlers run in the child, where the forking thread is the only thread."""
        handlers = [k.value for k in node.keywords if k.arg == "after_in_child"]
        if node.func.attr == "register_after_fork" and len(node.args) > 1:  # type: ignore[attr-defined]
            handlers.append(node.args[1])
        for handler in handlers:
            for scope in self.model.callables(handler, self.scope):
                self.model.fork_child.add(scope.id)

    def _is_thread_future(self, node: ast.AST) -> bool:
        """A future from a thread pool's submit(): its callbacks run on the worker thread."""
        values: list = [node]
        if type(node) is ast.Name:
            _, bindings = self.index.bindings_of(self.scope, node.id)
            values = [b.value for b in bindings if b.kind == "assign"]
        for value in values:
            if type(value) is ast.Call and type(value.func) is ast.Attribute and value.func.attr == "submit":
                if self.model.is_thread_pool(value.func.value, self.scope, by_name=True):
                    return True
        return False


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    for keyword in node.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _op(op: ast.operator) -> str:
    return {
        ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
        ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>", ast.Pow: "**",
        ast.MatMult: "@",
    }.get(type(op), "?")
