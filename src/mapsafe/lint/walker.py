"""One walk per scope: each access to a possibly shared map (with its lock state), call edge and thread start."""

from __future__ import annotations

import ast
import re

from .locks import lock_key
from .maps import Target
from .scopes import Scope

__all__ = ["Access", "ScopeWalker", "THREAD_CLASSES"]

THREAD_CLASSES = frozenset({"threading.Thread", "dummy_threading.Thread"})
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
# loop.<method>(..., callback, ...): the callback's position; it runs on the loop's thread.
_LOOP_CALLBACKS = {"call_soon": 0, "call_soon_threadsafe": 0, "call_later": 1, "call_at": 1}
# A child process's target is no thread entry, but the arguments it is started with are what
# its parameters denote there (a map the child's own threads then share).
_PROCESSES = frozenset({"multiprocessing.Process", "multiprocessing.context.Process"})
_THREADING_SERVERS = frozenset({"socketserver.ThreadingMixIn", "socketserver.ThreadingTCPServer",
                                "socketserver.ThreadingUDPServer", "socketserver.ThreadingUnixStreamServer",
                                "socketserver.ThreadingUnixDatagramServer", "http.server.ThreadingHTTPServer",
                                "xmlrpc.server.SimpleXMLRPCServer"})
# Names that say "a pool of threads" when we cannot see the constructor.
_POOL_NAME = re.compile(r"executor|thread_?pool|(?:^|_)pool(?:$|_)", re.IGNORECASE)
_NOT_THREADS = re.compile(r"process|proc(?:$|_)", re.IGNORECASE)
_MAP_METHODS = frozenset({"map", "imap", "imap_unordered", "starmap", "map_async", "starmap_async"})

# os.register_at_fork(after_in_child=f), multiprocessing.util.register_after_fork(obj, f)
_AT_FORK = frozenset({"register_at_fork", "register_after_fork"})
_WRITERS = frozenset({"pop", "popitem", "clear", "update", "setdefault", "__setitem__", "__delitem__",
                      # sets
                      "add", "discard", "remove", "difference_update", "intersection_update",
                      "symmetric_difference_update"})
_VIEWS = frozenset({"keys", "items", "values"})
_DELETERS = frozenset({"pop", "popitem", "clear", "remove", "discard"})  # writes that take keys out
# Builtins that consume an iterable whole, in C.
_CONSUMERS = frozenset({"list", "tuple", "sorted", "set", "frozenset", "dict", "any", "all", "sum", "min", "max"})
_ONE_KEY = frozenset({"get", "pop", "setdefault", "add", "discard", "remove", "__getitem__", "__setitem__",
                      "__delitem__", "__contains__"})
_LOOPS = (ast.For, ast.AsyncFor, ast.While)


class Access:
    """One use of a target: kind is 'read', 'write', 'iter' or 'compound' (check-then-act, read-modify-write)."""

    __slots__ = ("target", "kind", "node", "scope", "held", "pattern", "fix", "in_compound", "key", "idempotent",
                 "harmed_by")

    def __init__(self, target: Target, kind: str, node: ast.AST, scope: Scope, held: frozenset) -> None:
        self.target = target
        self.kind = kind
        self.node = node
        self.scope = scope
        self.held = held  # the locks held here (`with lock:`, acquire() ... release()); empty if none
        self.pattern = ""
        self.fix = ""
        self.in_compound = False  # the write half of a compound access (reported as MS203, not MS201)
        self.idempotent = False
        # for a check-then-act: the rival writes that can break it. "delete" for `if k in d:
        # del d[k]` (only another delete makes its del fail), "store" for `if k not in d:
        # d[k] = v` (only another store is lost); "any" for a read-modify-write (d[k] += 1)
        self.harmed_by = "any"
        self.key: ast.AST | None = None  # the key expression of a one-key access (d[k], d.get(k), ...)
        # a write that two threads can both make without harm: a memo store (the key was looked
        # up first in the same function) or a set add (grow-only); see ThreadModel._idempotent

    @property
    def line(self) -> int:
        return self.node.lineno  # type: ignore[attr-defined]

    def breaks(self, check: "Access") -> bool:
        """Can this write break the check-then-act ``check`` (another thread's)?"""
        needed = check.harmed_by
        if needed == "any":
            return True
        if self.kind == "compound":  # a check-then-del deletes; a check-then-store or a read-modify-write stores
            return ("delete" if self.harmed_by == "delete" else "store") == needed
        node = self.node
        if type(node) is ast.Subscript:
            deletes = type(node.ctx) is ast.Del
        else:  # a method call (pop, clear, update, setdefault, ...) or `d |= other`
            deletes = type(node) is ast.Call and getattr(node.func, "attr", None) in _DELETERS
        return deletes == (needed == "delete")


def _same(a: ast.AST, b: ast.AST) -> bool:
    return ast.dump(a) == ast.dump(b)


class ScopeWalker:
    """Walks one scope's own code (not nested defs), tracking held locks and loops."""

    def __init__(self, model, scope: Scope) -> None:
        self.model = model
        self.index = model.program
        self.scope = scope
        self.loop_line: int | None = None  # line of the outermost loop we are in, within this scope
        self.counters: list[str] = []  # loop variables that take a new value each time (range, enumerate)
        self.item_copies: set[int] = set()  # id() of the argument of list(...), sorted(...) and the like
        self.gc_mid_copy = model.program.target < (3, 12)  # see expr(): list(d.items()) is not one step
        self.locks: list[tuple] = []  # identities (lock_key) of the locks held here, outermost first

    def run(self) -> None:
        scope = self.scope
        if scope.kind == "lambda":
            self.expr(scope.node.body)  # type: ignore[attr-defined]
        else:
            self.block(scope.body())

    # -- statements --------------------------------------------------------------------

    def block(self, stmts: list[ast.stmt]) -> None:
        held_here: list[tuple] = []  # locks acquired by statements of this block, released later in it
        base = list(self.locks)
        for stmt in stmts:
            acquired, released = self._acquire_release(stmt)
            if released is not None and released in held_here:
                held_here.remove(released)
                self.locks = base + held_here
            self.stmt(stmt)
            if acquired is not None:
                held_here.append(acquired)
                self.locks = base + held_here
        self.locks = base

    def _acquire_release(self, stmt: ast.stmt) -> tuple[tuple | None, tuple | None]:
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
                key = lock_key(self.index, call.func.value, self.scope)
                return (key, None) if method == "acquire" else (None, key)
        if type(call) is ast.Call:
            # cursor = self.openDB() ... self.closeDB(cursor): a method that takes a lock and
            # returns holding it, and one that releases it
            for fn in self.model.callables(call.func, self.scope):
                taken, released = self.model.lock_effect(fn)
                if taken or released:
                    return (next(iter(taken)) if taken else None, next(iter(released)) if released else None)
        return None, None

    def stmt(self, node: ast.stmt) -> None:
        kind = type(node)
        if kind in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            for decorator in node.decorator_list:
                self.expr(decorator)
            return
        if kind is ast.With or kind is ast.AsyncWith:
            taken: list[tuple] = []
            pool = False
            for item in node.items:
                self.expr(item.context_expr)
                if self.index.is_lock_expr(item.context_expr, self.scope):
                    taken.append(lock_key(self.index, item.context_expr, self.scope))
                elif self.model.is_thread_pool(item.context_expr, self.scope, by_name=False):
                    pool = True
            outer = self.locks
            self.locks = outer + taken
            self.block(node.body)
            self.locks = outer
            if pool:  # leaving `with ThreadPoolExecutor() as ex:` waits for its threads
                self.model._joins.setdefault(self.scope.id, []).append(node.end_lineno or node.lineno)
            return
        if kind in _LOOPS:
            outer = self.loop_line
            if outer is None:
                self.loop_line = node.lineno
            counters = _counters(node) if kind is not ast.While else []
            if kind is ast.While:
                self.expr(node.test)
            else:
                self.iterate(node.iter)
                self.expr(node.target)
            self.counters.extend(counters)
            self.block(node.body)
            del self.counters[len(self.counters) - len(counters):]
            self.block(node.orelse)
            self.loop_line = outer
            if outer is None and self._joins_in(node.body):
                self.model._joins.setdefault(self.scope.id, []).append(node.end_lineno or node.lineno)
            return
        if kind is ast.If:
            acquired = self._test_acquires(node.test)
            self.expr(node.test)
            self.compound_if(node)
            outer = self.locks
            self.locks = outer + acquired
            self.block(node.body)
            self.locks = outer
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

    def _test_acquires(self, test: ast.expr) -> list[tuple]:
        if (type(test) is ast.Call and type(test.func) is ast.Attribute and test.func.attr == "acquire"
                and self.index.is_lock_expr(test.func.value, self.scope)):
            return [lock_key(self.index, test.func.value, self.scope)]
        return []

    @staticmethod
    def _is_join(value: ast.expr) -> bool:
        if type(value) is not ast.Call:
            return False
        func = value.func
        if type(func) is ast.Attribute:
            # t.join(), pool.shutdown(), q.join(); barrier.wait() / event.wait() the threads
            # reach when done; fut.result() of the submitted work
            return func.attr in ("join", "shutdown", "wait", "result")
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
        got = None
        if key is None:
            key, dict_node, absent = self._got_then_test(test)
            got = test
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
        access.key = key
        access.harmed_by = "store" if absent else "delete"
        k, d = _source_of(key), target.display
        act = f"{d}[{k}] = ..." if absent else f"del {d}[{k}]"
        if got is not None:  # info = d.get(k) ... if info: del d[k]
            access.pattern = f'"{_source_of(got)}" (a {d}.get({k}) read earlier), then "{act}"'
        else:
            access.pattern = f'"if {k} {"not in" if absent else "in"} {d}: {act}"'
        access.fix = ("use setdefault(), or mapsafe's compute_if_absent()" if absent
                      else "use pop(key, None), or mapsafe's compute_if_present()")
        self.model._compound_nodes.update(id(w) for w in writes)

    def _got_then_test(self, test: ast.expr) -> tuple[ast.expr | None, ast.expr | None, bool]:
        """(key, dict, absent) for a test of a local bound only to ``d.get(k)`` (one map, one
        key): ``info = d.get(k)`` then ``if info:`` / ``if info is not None:`` (present) or
        ``if not info:`` / ``if info is None:`` (absent); else (None, None, True)."""
        absent = False
        if type(test) is ast.UnaryOp and type(test.op) is ast.Not:
            test, absent = test.operand, True
        elif (type(test) is ast.Compare and len(test.ops) == 1 and type(test.ops[0]) in (ast.Is, ast.IsNot)
              and type(test.comparators[0]) is ast.Constant and test.comparators[0].value is None):
            absent = type(test.ops[0]) is ast.Is
            test = test.left
        if type(test) is not ast.Name:
            return None, None, True
        owner, bindings = self.index.bindings_of(self.scope, test.id)
        if owner is not self.scope or not bindings:
            return None, None, True
        gets = [b.value for b in bindings
                if b.kind == "assign" and type(b.value) is ast.Call and type(b.value.func) is ast.Attribute
                and b.value.func.attr == "get" and b.value.args]
        if len(gets) != len(bindings) or len({ast.dump(g.func.value) + ast.dump(g.args[0]) for g in gets}) != 1:
            return None, None, True  # bound otherwise too, or to reads of different keys or maps
        value = gets[0]
        return value.args[0], value.func.value, absent

    def compound(self, target: Target, node: ast.AST, key: ast.expr, pattern: str, fix: str) -> None:
        """Record a read-modify-write of ``target[key]``, and walk the key expression."""
        access = self.record(target, "compound", node)
        access.key, access.pattern, access.fix = key, pattern, fix
        self.expr(key)

    def aug_assign(self, node: ast.AugAssign) -> None:
        self.expr(node.value)
        target_node = node.target
        if type(target_node) is ast.Subscript:
            target = self.model.target_of(target_node.value, self.scope)
            if target is not None:
                self.compound(target, node, target_node.slice, f'"{_source_of(node)}"',
                              "use mapsafe's merge(key, value, operator.add), or hold a lock")
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
                    self.compound(target, node, target_node.slice, f'"{_source_of(node)}"',
                                  "use mapsafe's merge() or compute(), or hold a lock")
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
        access = Access(target, kind, node, self.scope, frozenset(self.locks))
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
            self.record(target, kind, node).key = node.slice
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
                        kind_here = "write" if func.attr in _WRITERS else "read"
                        if func.attr == "items" and id(node) in self.item_copies and self.gc_mid_copy:
                            # list(d.items()) makes a tuple per entry; before 3.12 any allocation
                            # could run the cyclic GC, and a finalizer it runs lets other threads
                            # in mid-copy ('dictionary changed size during iteration'). From 3.12
                            # the GC runs only between bytecodes (gh-97922): one step, as list(d),
                            # d.copy() and list(d.values()) always are.
                            kind_here = "iter"
                        access = self.record(target, kind_here, node)
                        if func.attr in _ONE_KEY and node.args:
                            access.key = node.args[0]
                    else:
                        stack.append(func.value)
                else:
                    stack.append(func)
                    if type(func) is ast.Name and func.id in _CONSUMERS and node.args:
                        self.item_copies.add(id(node.args[0]))  # list(d.items()): see above
                stack.extend(node.args)
                stack.extend(k.value for k in node.keywords)
                continue
            if kind is ast.Subscript:
                self.subscript(node, "read" if type(node.ctx) is ast.Load else "write")
                continue
            if kind is ast.Compare and len(node.ops) == 1 and type(node.ops[0]) in (ast.In, ast.NotIn):
                target = self.model.target_of(node.comparators[0], self.scope)
                if target is not None:
                    self.record(target, "read", node).key = node.left  # `k in d`: a lookup of k
                    stack.append(node.left)
                    continue
            if kind is ast.Lambda:
                continue  # its own scope
            if kind in (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp):
                outer = self.loop_line
                if outer is None:
                    self.loop_line = node.lineno
                counters = [name for generator in node.generators for name in _counters(generator)]
                self.counters.extend(counters)
                for generator in node.generators:
                    self.iterate(generator.iter)
                    for condition in generator.ifs:
                        self.expr(condition)
                if kind is ast.DictComp:
                    self.expr(node.key)
                    self.expr(node.value)
                else:
                    self.expr(node.elt)
                del self.counters[len(self.counters) - len(counters):]
                self.loop_line = outer
                continue
            stack.extend(ast.iter_child_nodes(node))

    def call(self, node: ast.Call) -> None:
        """Record a call edge, and a thread entry when the call hands a function to another thread."""
        model = self.model
        index = self.index
        scope = self.scope
        func = node.func
        held = frozenset(self.locks)
        in_loop = self.loop_line is not None
        start_line = self.loop_line if self.loop_line is not None else node.lineno
        callees = model.callables(func, scope)
        for callee in callees:
            model.edges.setdefault(callee.id, []).append((scope, held, node.lineno))
        if callees:
            model.call_sites.append((node, scope, callees, held, in_loop, start_line))
        elif type(func) is ast.Attribute:
            self._callback_attr_call(node, held)
        if callees is not None and type(func) is ast.Attribute and func.attr in _AT_FORK:
            self.at_fork(node)
        if type(func) in (ast.Name, ast.Attribute):
            info = index.resolve_class(func, scope)
            if info is not None and in_loop:
                model._instantiated_in_loop.add(id(info))
        args = node.args
        qualified = index.qualified(func, scope) if type(func) in (ast.Name, ast.Attribute) else None
        if model.external_wrappers and type(func) in (ast.Name, ast.Attribute):
            named = self._external_name(func, qualified)
            if named in model.external_wrappers and args:
                model.matched_wrappers.add(named)
                model.add_entry(args[0], f"{named}() (thread-entries)", node, scope, in_loop, start_line)
                return
        if qualified in THREAD_CLASSES:
            target = _keyword(node, "target") or (args[1] if len(args) > 1 else None)
            if target is not None:
                own = self._distinct_args(_keyword(node, "args") or (args[3] if len(args) > 3 else None))
                model.add_entry(target, "Thread(target=...)", node, scope, in_loop, start_line, own)
            return
        if qualified in _PROCESSES:
            target = _keyword(node, "target") or (args[1] if len(args) > 1 else None)
            if target is not None:
                model.pass_arguments(target, "Process(target=...)", node, scope)
            return
        if qualified == "weakref.finalize" and len(args) > 1:
            model.add_entry(args[1], "weakref.finalize() (runs in whichever thread collects the object)", node,
                            scope, True, start_line)
            return
        if type(func) in (ast.Name, ast.Attribute) and self._threading_server(func, qualified):
            handler = args[1] if len(args) > 1 else _keyword(node, "RequestHandlerClass")
            info = index.resolve_class(handler, scope) if handler is not None else None
            if info is not None:
                model.add_handler_entries(info, node, scope)
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
        if method in _LOOP_CALLBACKS:  # loop.call_soon_threadsafe(cb): cb runs on the loop's thread
            position = _LOOP_CALLBACKS[method]
            if len(args) > position:
                model.loop_callbacks.extend(model.callables(args[position], scope))
            return
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

    def _external_name(self, func: ast.AST, qualified: str | None) -> str | None:
        """'lib.Client.add_callback' for client.add_callback where client = lib.Client(...); else qualified."""
        if type(func) is ast.Attribute and type(func.value) in (ast.Name, ast.Attribute):
            receiver = func.value
            values = []
            if type(receiver) is ast.Name:
                _, bindings = self.index.bindings_of(self.scope, receiver.id)
                values = [b.value for b in bindings if b.kind == "assign"]
            else:
                base = receiver.value
                found = self.index.self_class(self.scope, base.id) if type(base) is ast.Name else None
                if found is not None:
                    values = [b.value for cls in self.index.mro(found[0]) for b in cls.attrs.get(receiver.attr, ())
                              if b.kind == "assign"]
            made = {self.index.qualified(v.func, self.scope) for v in values if type(v) is ast.Call}
            if len(made) == 1 and None not in made:
                return f"{made.pop()}.{func.attr}"
        return qualified

    def _threading_server(self, func: ast.AST, qualified: str | None) -> bool:
        """A server class that handles each request on its own thread (socketserver.ThreadingMixIn)."""
        if qualified in _THREADING_SERVERS:
            return True
        info = self.index.resolve_class(func, self.scope)
        return info is not None and bool(self.index.external_bases(info) & _THREADING_SERVERS)

    def _distinct_args(self, args: ast.expr | None) -> frozenset[int]:
        """Positions of ``args=(...)`` that hold a loop counter: each thread gets its own value."""
        if type(args) not in (ast.Tuple, ast.List):
            return frozenset()
        return frozenset(i for i, element in enumerate(args.elts)
                         if type(element) is ast.Name and element.id in self.counters)

    def _callback_attr_call(self, node: ast.Call, held: frozenset) -> None:
        """``self.fn()`` where ``fn`` is a constructor parameter: whatever callers pass runs here."""
        slot = self.model.init_param_attr(node.func, self.scope)
        if slot is not None:
            init, param = slot
            self.model.callback_calls.setdefault((init.id, param), []).append((self.scope, held, node.lineno))

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


def _counters(loop) -> list[str]:
    """The loop variables of ``for i in range(...)`` and ``for i, x in enumerate(...)``: distinct each pass."""
    it, target = loop.iter, loop.target
    if type(it) is not ast.Call or type(it.func) is not ast.Name:
        return []
    if it.func.id == "range" and type(target) is ast.Name:
        return [target.id]
    if it.func.id == "enumerate" and type(target) is ast.Tuple and target.elts and type(target.elts[0]) is ast.Name:
        return [target.elts[0].id]
    return []


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    for keyword in node.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


_QUOTE_LIMIT = 60  # characters of the user's code quoted in a message


def _source_of(node: ast.AST) -> str:
    """The user's own code for ``node``, as messages quote it: one line, at most _QUOTE_LIMIT characters."""
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 3] + "..."
