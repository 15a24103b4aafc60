"""Escape analysis, cheap: classes whose instances never leave the call that makes them."""

from __future__ import annotations

import ast

from .calls import callables, thread_arguments
from .scopes import ClassInfo, Scope

__all__ = ["Confinement"]

_MAX_DEPTH = 4  # factories and parameters followed for one object


class Confinement:
    """Is every instance of a class confined to the call that builds it?

    An instance is confined when it is built into a local (or returned by a
    factory whose callers do that), and is then only used through its
    attributes, passed to functions whose parameter is used the same way, or
    returned; and no method of the class hands ``self`` out (stores it, passes
    it, starts a thread on it). Then two threads never share one instance, so
    its own maps never race. When not to rely on it: anything the program
    cannot see (a ``self`` kept by a library) makes the answer wrong, so it is
    only used to drop findings on instance attributes, never to add any.
    """

    def __init__(self, program, call_sites, thread_calls=()) -> None:
        self.program = program
        self.call_sites = call_sites  # the thread model's (call, caller, callees, ...) rows
        # thread starts with known targets: id(call) -> (call, how, starter, targets)
        self.thread_calls = {id(row[0]): row for row in thread_calls}
        self._answers: dict[int, bool] = {}
        self._built: dict[int, list[tuple[ast.Call, Scope]]] | None = None
        self._parents: dict[int, dict[int, ast.AST]] = {}
        self._classes: list[ClassInfo] = []  # the class being asked about, and its subclasses

    def confined(self, info: ClassInfo) -> bool:
        key = id(info)
        if key not in self._answers:
            self._answers[key] = False  # a cycle through this class: not confined
            self._answers[key] = self._confined(info)
        return self._answers[key]

    def _confined(self, info: ClassInfo) -> bool:
        program = self.program
        classes = self._subclasses().get(id(info), [])
        for cls in classes:
            if any(_hands_out_self(program, cls, method) for method in cls.methods.values()):
                return False
        sites = [site for cls in classes for site in self._constructions().get(id(cls), ())]
        if not sites:
            return False  # built where the program cannot see: say nothing
        self._classes = classes  # what _local_confined's uses of attributes are checked against
        return all(self._call_result_confined(call, scope, 0) for call, scope in sites)

    def _subclasses(self) -> dict[int, list[ClassInfo]]:
        """id(class) -> the class and every class deriving from it (one pass over all MROs)."""
        found = self.__dict__.get("_subs")
        if found is None:
            found = self._subs = {}
            for cls in self.program.classes:
                for base in self.program.mro(cls):
                    found.setdefault(id(base), []).append(cls)
        return found

    def _constructions(self) -> dict[int, list[tuple[ast.Call, Scope]]]:
        if self._built is None:
            built: dict[int, list[tuple[ast.Call, Scope]]] = {}
            program = self.program
            for scope in program.scopes:
                for node in _own_nodes(scope):
                    if type(node) is ast.Call:
                        info = program.resolve_class(node.func, scope)
                        if info is not None:
                            built.setdefault(id(info), []).append((node, scope))
            self._built = built
        return self._built

    def _parent(self, scope: Scope, node: ast.AST) -> ast.AST | None:
        parents = self._parents.get(scope.id)
        if parents is None:
            parents = {}
            for parent in _own_nodes(scope):
                for child in ast.iter_child_nodes(parent):
                    parents[id(child)] = parent
            self._parents[scope.id] = parents
        return parents.get(id(node))

    def _call_result_confined(self, call: ast.Call, scope: Scope, depth: int) -> bool:
        """Does the value of ``call`` (an instance being built, or a factory's result) stay in ``scope``?"""
        if depth > _MAX_DEPTH:
            return False
        parent = self._parent(scope, call)
        kind = type(parent)
        if kind is ast.Expr:
            return True  # built and dropped
        if kind is ast.Attribute and parent.value is call:
            return True  # Foo().method(): the methods do not hand self out (checked above)
        if kind is ast.Assign and parent.value is call and len(parent.targets) == 1 \
                and type(parent.targets[0]) is ast.Name:
            return self._local_confined(parent.targets[0].id, scope, depth)
        if kind is ast.Return and scope.kind == "function":
            return self._factory_confined(scope, depth)
        return False

    def _factory_confined(self, fn: Scope, depth: int) -> bool:
        sites = [(call, caller) for call, caller, callees, *_ in self._call_sites() if fn in callees]
        return bool(sites) and all(self._call_result_confined(call, caller, depth + 1) for call, caller in sites)

    def _call_sites(self):
        return self.call_sites

    def _local_confined(self, name: str, scope: Scope, depth: int) -> bool:
        """Is the local ``name`` of ``scope`` only used through attributes, passed to functions
        that keep it confined, or returned?"""
        program = self.program
        _, bindings = program.bindings_of(scope, name)
        # `cfg = None` before the real binding (`cfg = Cfg.from_msg(m)` in a try) binds no object
        bindings = [b for b in bindings if not (b.kind == "assign" and type(b.value) is ast.Constant
                                                 and b.value.value is None)]
        if len(bindings) != 1 or bindings[0].kind not in ("assign", "param"):
            return False
        nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
        for node in _own_nodes(scope):
            if type(node) in nested and node is not scope.node:
                if any(type(n) is ast.Name and n.id == name for n in ast.walk(node)):
                    return False  # a closure over it may run anywhere
        for node in _own_nodes(scope):
            if type(node) is not ast.Name or node.id != name or type(node.ctx) is not ast.Load:
                continue
            parent = self._parent(scope, node)
            kind = type(parent)
            if kind is ast.Attribute and parent.value is node:
                grand = self._parent(scope, parent)
                leaves = (type(grand) is ast.Call and parent in grand.args) or type(grand) in (
                    ast.keyword, ast.Return, ast.Yield, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Starred)
                if leaves and any(_shares_self(program, cls, parent.attr) for cls in self._classes):
                    if not (type(grand) is ast.Call and self._map_read_by(grand, grand.args.index(parent), scope,
                                                                           parent.attr, depth)):
                        return False  # Thread(target=obj.run), register(obj.params): a bound method or map leaves
                continue  # obj.attr, obj.attr = v, obj.params[k] = v, obj.method(...), "%s" % (obj.name,)
            if kind is ast.Return:
                if scope.kind != "function" or not self._factory_confined(scope, depth):
                    return False
                continue
            if kind is ast.Call and node in parent.args:
                if not (self._handed_to_thread(node, parent, scope, depth)
                        or self._passed_confined(parent, parent.args.index(node), scope, depth)):
                    return False
                continue
            if kind in (ast.Tuple, ast.List) and self._handed_to_thread(node, parent, scope, depth):
                continue  # Timer(delay, run, args=(cfg,)): the thread owns it from here on
            if kind is ast.keyword:
                return False  # f(cfg=obj): not followed
            if kind in (ast.Compare, ast.BoolOp, ast.UnaryOp, ast.If, ast.While, ast.IfExp, ast.Assert):
                continue  # tests it: `if cfg is None`, `not cfg`
            return False  # stored, aliased, put in a container, yielded, ...
        return True

    def _handed_to_thread(self, node: ast.Name, packed: ast.AST, scope: Scope, depth: int) -> bool:
        """Is ``node`` (in ``packed``: the ``args=`` tuple, or the call itself) an argument a
        thread start passes to its target (``args=(cfg,)``, ``submit(run, cfg)``), after
        which this scope never uses it again, and does the target keep it confined? Then the
        object moves to that thread: the start orders what came before, nothing comes after."""
        if type(packed) is ast.Call:
            call = packed  # executor.submit(run, cfg)
        else:
            holder = self._parent(scope, packed)
            call = self._parent(scope, holder) if type(holder) is ast.keyword else holder
        row = self.thread_calls.get(id(call))
        if row is None or row[2] is not scope or depth >= _MAX_DEPTH:
            return False
        passed = thread_arguments(call, row[1])
        if not any(arg is node for arg in passed):
            return False
        position = next(i for i, arg in enumerate(passed) if arg is node)
        end = getattr(call, "end_lineno", call.lineno) or call.lineno
        if any(type(n) is ast.Name and n.id == node.id and n.lineno > end and not self._exclusive(scope, call, n)
               for n in _own_nodes(scope)):
            return False  # used again after the start: shared with the thread
        if any(type(loop) in (ast.For, ast.While, ast.AsyncFor) and loop.lineno < call.lineno <= loop.end_lineno
               and not any(type(n) is ast.Name and n.id == node.id and type(n.ctx) is ast.Store
                           and loop.lineno <= n.lineno <= call.lineno for n in ast.walk(loop))
               for loop in _own_nodes(scope)):
            return False  # started in a loop, on an object made before it: every thread gets the same one
        for fn in row[3]:
            names = _positional_params(fn)
            if names is None or position >= len(names) or not self._local_confined(names[position], fn, depth + 1):
                return False
        return True

    def _exclusive(self, scope: Scope, a: ast.AST, b: ast.AST) -> bool:
        """Are ``a`` and ``b`` in different branches of one ``if`` (so one run reaches only one)?"""
        def branches(node: ast.AST) -> dict[int, str]:
            out: dict[int, str] = {}
            child, parent = node, self._parent(scope, node)
            while parent is not None:
                if type(parent) is ast.If:
                    out[id(parent)] = "body" if any(child is stmt for stmt in parent.body) else (
                        "orelse" if any(child is stmt for stmt in parent.orelse) else "test")
                child, parent = parent, self._parent(scope, parent)
            return out
        mine, theirs = branches(a), branches(b)
        return any(side != "test" and theirs.get(key) not in (None, "test", side) for key, side in mine.items())

    def _map_read_by(self, call: ast.Call, position: int, scope: Scope, attr: str, depth: int) -> bool:
        """Is ``obj.<attr>`` (one of the object's maps), passed at ``position`` of ``call``, only
        read there and not kept: a builtin that copies or reads it (``env.update(cfg.env)``,
        ``sorted(...)``), or a project function that only indexes, iterates or reads it?"""
        if any(attr in info.methods for cls in self._classes for info in self.program.mro(cls)):
            return False  # a bound method: it runs with the object's self
        func = call.func
        if type(func) is ast.Name and func.id in _READERS:
            return True
        if type(func) is ast.Attribute and func.attr in _COPIED_INTO:
            return True  # new_env.update(cfg.env): the items are copied, the map is not kept
        if depth >= _MAX_DEPTH:
            return False
        targets = callables(self.program, func, scope)
        if not targets:
            return False
        for fn in targets:
            names = _positional_params(fn)
            if names is None or position >= len(names) or not self._map_param_read(names[position], fn, depth + 1):
                return False
        return True

    def _map_param_read(self, name: str, fn: Scope, depth: int) -> bool:
        """Does ``fn`` use its map parameter ``name`` only where it stays: ``m[k]``, ``m.get(k)``,
        ``for k in m``, ``k in m``, a builtin that reads it, or a truth test?"""
        _, bindings = self.program.bindings_of(fn, name)
        if len(bindings) != 1 or bindings[0].kind != "param":
            return False
        for node in _own_nodes(fn):
            if type(node) in (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef) and node is not fn.node:
                if any(type(n) is ast.Name and n.id == name for n in ast.walk(node)):
                    return False  # a closure over it may keep it
                continue
            if type(node) is not ast.Name or node.id != name or type(node.ctx) is not ast.Load:
                continue
            parent = self._parent(fn, node)
            kind = type(parent)
            if kind is ast.Subscript and parent.value is node:
                continue
            if kind is ast.Attribute and parent.value is node:
                grand = self._parent(fn, parent)
                if type(grand) is ast.Call and grand.func is parent and parent.attr in _MAP_READ_METHODS:
                    continue  # m.get(k), m.items(): not kept (a loop over a view is still a use here)
                return False
            if kind in (ast.For, ast.AsyncFor, ast.comprehension) and parent.iter is node:
                continue
            if kind is ast.Compare or kind in (ast.If, ast.While, ast.BoolOp, ast.UnaryOp, ast.IfExp, ast.Assert):
                continue
            if kind is ast.Call and node in parent.args:
                func = parent.func
                if (type(func) is ast.Name and func.id in _READERS) or (
                        type(func) is ast.Attribute and func.attr in _COPIED_INTO):
                    continue
            return False
        return True

    def _passed_confined(self, call: ast.Call, position: int, scope: Scope, depth: int) -> bool:
        if depth >= _MAX_DEPTH:
            return False
        targets = callables(self.program, call.func, scope)
        if not targets:
            return False  # a callee the program cannot see may keep it
        for fn in targets:
            names = _positional_params(fn)
            if names is None or position >= len(names) or not self._local_confined(names[position], fn, depth + 1):
                return False
        return True


# Builtins that read a map passed to them and keep nothing of it (their result is new).
_READERS = frozenset({"len", "list", "tuple", "set", "frozenset", "dict", "sorted", "any", "all", "sum", "min",
                      "max", "str", "repr", "print", "bool", "enumerate", "zip"})
# x.update(m), x.extend(m): m's items are copied into x, m itself is not kept.
_COPIED_INTO = frozenset({"update", "extend"})
# Map methods whose call reads (or changes) the map in place and returns no hold on it.
_MAP_READ_METHODS = frozenset({"get", "keys", "values", "items", "copy", "__contains__", "__getitem__", "setdefault",
                               "pop", "update", "clear", "popitem"})


def _shares_self(program, cls: ClassInfo, attr: str) -> bool:
    """Does passing ``self.<attr>`` on share the object: a bound method (it runs with this
    ``self``), or one of the object's own maps? A plain value (``self.host``) does not."""
    for info in program.mro(cls):
        if attr in info.methods:
            return True
        bindings = info.attrs.get(attr)
        if bindings and any(b.value is not None and program.is_dict_value(b.value, info.scope) for b in bindings):
            return True
    return False


def _positional_params(fn: Scope) -> list[str] | None:
    """The positional parameters of a def as its callers fill them (a method's self left out);
    None for a lambda or anything else that is not a def."""
    if type(fn.node) not in (ast.FunctionDef, ast.AsyncFunctionDef):
        return None
    args = fn.node.args  # type: ignore[attr-defined]
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    if fn.self_name is not None and names and names[0] == fn.self_name:
        names = names[1:]
    return names


def _hands_out_self(program, cls: ClassInfo, method: Scope) -> bool:
    """Does a method use ``self`` other than through its attributes (store it, pass it, return
    it, or pass on a bound method or a map of it)?"""
    name = method.self_name
    if name is None or method.is_classmethod:
        return False
    for node in ast.walk(method.node):
        if type(node) in (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda) and node is not method.node:
            if any(type(n) is ast.Name and n.id == name for n in ast.walk(node)):
                return True
    parents = {id(child): parent for parent in ast.walk(method.node) for child in ast.iter_child_nodes(parent)}
    for parent in ast.walk(method.node):
        for child in ast.iter_child_nodes(parent):
            if type(child) is ast.Name and child.id == name and type(child.ctx) is ast.Load:
                if type(parent) is ast.Attribute and parent.value is child:
                    grand = parents.get(id(parent))
                    if type(grand) is ast.keyword or (type(grand) is ast.Call and parent in grand.args):
                        if _shares_self(program, cls, parent.attr):
                            return True  # Thread(target=self.run), schedule(self.tick): a bound method leaves
                    continue
                if type(parent) is ast.Call and type(parent.func) is ast.Name and parent.func.id == "super":
                    continue
                if type(parent) in (ast.Compare, ast.BoolOp, ast.UnaryOp):
                    continue
                return True
    return False


def _own_nodes(scope: Scope):
    """The nodes of a scope's own code; nested definitions are yielded but not entered."""
    todo = list(scope.body())
    while todo:
        node = todo.pop()
        yield node
        if type(node) in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda):
            continue
        todo.extend(ast.iter_child_nodes(node))
