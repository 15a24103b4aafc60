"""Escape analysis, cheap: classes whose instances never leave the call that makes them."""

from __future__ import annotations

import ast

from .calls import callables, param_slot
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

    def __init__(self, program, call_sites) -> None:
        self.program = program
        self.call_sites = call_sites  # the thread model's (call, caller, callees, ...) rows
        self._answers: dict[int, bool] = {}
        self._built: dict[int, list[tuple[ast.Call, Scope]]] | None = None
        self._parents: dict[int, dict[int, ast.AST]] = {}

    def confined(self, info: ClassInfo) -> bool:
        key = id(info)
        if key not in self._answers:
            self._answers[key] = False  # a cycle through this class: not confined
            self._answers[key] = self._confined(info)
        return self._answers[key]

    def _confined(self, info: ClassInfo) -> bool:
        program = self.program
        classes = [c for c in program.classes if any(base is info for base in program.mro(c))]
        for cls in classes:
            if any(_hands_out_self(method) for method in cls.methods.values()):
                return False
        sites = [site for cls in classes for site in self._constructions().get(id(cls), ())]
        if not sites:
            return False  # built where the program cannot see: say nothing
        return all(self._call_result_confined(call, scope, 0) for call, scope in sites)

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
                if (type(grand) is ast.Call and parent in grand.args) or type(grand) is ast.keyword:
                    return False  # Thread(target=obj.run), register(obj.params): a bound method or map leaves
                if type(grand) in (ast.Return, ast.Yield, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Starred):
                    return False
                continue  # obj.attr, obj.attr = v, obj.params[k] = v, obj.method(...)
            if kind is ast.Return:
                if scope.kind != "function" or not self._factory_confined(scope, depth):
                    return False
                continue
            if kind is ast.Call and node in parent.args:
                if not self._passed_confined(parent, parent.args.index(node), scope, depth):
                    return False
                continue
            if kind is ast.keyword:
                return False  # f(cfg=obj): not followed
            if kind in (ast.Compare, ast.BoolOp, ast.UnaryOp, ast.If, ast.While, ast.IfExp, ast.Assert):
                continue  # tests it: `if cfg is None`, `not cfg`
            return False  # stored, aliased, put in a container, yielded, ...
        return True

    def _passed_confined(self, call: ast.Call, position: int, scope: Scope, depth: int) -> bool:
        if depth >= _MAX_DEPTH:
            return False
        targets = callables(self.program, call.func, scope)
        if not targets:
            return False  # a callee the program cannot see may keep it
        for fn in targets:
            if type(fn.node) not in (ast.FunctionDef, ast.AsyncFunctionDef):
                return False
            args = fn.node.args
            names = [a.arg for a in (*args.posonlyargs, *args.args)]
            if fn.self_name is not None and names and names[0] == fn.self_name:
                names = names[1:]
            if position >= len(names) or param_slot(fn, names[position]) is None:
                return False
            if not self._local_confined(names[position], fn, depth + 1):
                return False
        return True


def _hands_out_self(method: Scope) -> bool:
    """Does a method use ``self`` other than through its attributes (store it, pass it, return it)?"""
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
