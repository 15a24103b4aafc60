"""The call graph: which functions a call may run, with methods resolved through classes and imports."""

from __future__ import annotations

import ast

from .classes import class_of
from .scopes import ClassInfo, Scope

__all__ = ["callables", "param_slot", "bound_argument", "thread_arguments"]

_PARTIAL = frozenset({"functools.partial"})


_MAX_HOPS = 6  # parameters followed back through call sites (f(cb) -> g(cb) -> h(self.m))


def callables(program, node: ast.AST, scope: Scope, hops: int = 0) -> list[Scope]:
    """The functions (or lambdas) that calling ``node`` may run, as far as the program tells.

    Besides names, methods and imports: a parameter runs what the known call
    sites pass for it, and a call of a factory runs the nested function or
    lambda the factory returns (``Thread(target=self.wrap(cb))``).
    """
    if hops == 0:
        key = ("callables", scope.id, node)
        memo = program.memo
        if key not in memo:
            memo[key] = _callables(program, node, scope, 0)
        return list(memo[key])  # type: ignore[arg-type]
    return _callables(program, node, scope, hops)


def _callables(program, node: ast.AST, scope: Scope, hops: int) -> list[Scope]:
    kind = type(node)
    if kind is ast.Lambda:
        inner = program.scope_of.get(node)
        return [inner] if inner is not None else []
    if kind is ast.Name:
        _, bindings = program.bindings_of(scope, node.id)
        out = [b.value for b in bindings if b.kind == "def"]
        if not out:
            for b in bindings:
                if b.kind == "class":
                    out.extend(_constructor(program, b.value))
        if not out and len(bindings) == 1 and bindings[0].kind == "import":
            out = _resolved(program, node, scope)
        if not out and bindings and all(b.kind == "param" for b in bindings) and hops < _MAX_HOPS:
            owner, _ = program.bindings_of(scope, node.id)
            for argument, caller in program.call_args.get((owner.id, node.id), ()):
                out.extend(c for c in callables(program, argument, caller, hops + 1) if c not in out)
        if not out and hops < _MAX_HOPS:
            owner, _ = program.bindings_of(scope, node.id)
            for b in bindings:
                if b.kind == "assign" and b.value is not None:  # f = self.a if c else self.b
                    out.extend(c for c in callables(program, b.value, owner or scope, hops + 1) if c not in out)
                elif b.kind == "for":  # for call in callables: ... an item of the iterable
                    for item in _items(program, b.value, owner or scope):
                        out.extend(c for c in callables(program, item, owner or scope, hops + 1) if c not in out)
        if not out:
            out = _dunder_call(program, node, scope)  # an instance: calling it runs __call__
        return out  # type: ignore[return-value]
    if kind is ast.Attribute:
        found = _resolved(program, node, scope)  # mod.func, pkg.mod.Class
        if found:
            return found
        owner = class_of(program, node.value, scope)
        if owner is not None:
            method = program.method(owner[0], node.attr)
            if method is not None:
                return [method]
        return _dunder_call(program, node, scope)
    if kind is ast.IfExp:
        return [*callables(program, node.body, scope, hops), *callables(program, node.orelse, scope, hops)]
    if kind is ast.Subscript and type(node.value) is ast.Dict:  # {A: f, B: g}[key]
        return [c for v in node.value.values for c in callables(program, v, scope, hops)]
    if kind is ast.Call:
        func = node.func
        if type(func) is ast.Attribute and func.attr == "get" and type(func.value) is ast.Dict:
            # {A: f, B: g}.get(key, default)
            choices = [*func.value.values, *node.args[1:2]]
            return [c for v in choices for c in callables(program, v, scope, hops)]
        if node.args and program.qualified(node.func, scope) in _PARTIAL:
            return callables(program, node.args[0], scope, hops)
        info = program.resolve_class(node.func, scope)
        if info is not None:  # Thread(target=Ticker()): calling the instance runs __call__
            method = program.method(info, "__call__")
            return [method] if method is not None else []
        if hops < _MAX_HOPS:
            return [inner for factory in callables(program, node.func, scope, hops + 1)
                    for inner in _returned_functions(program, factory)]
    return []


def _returned_functions(program, factory: Scope) -> list[Scope]:
    """The nested functions and lambdas a factory returns (``def wrapper(): ...; return wrapper``)."""
    out = []
    for stmt in program.returns(factory):
        if stmt.value is not None:
            value = stmt.value
            if type(value) is ast.Lambda:
                inner = program.scope_of.get(value)
                if inner is not None and inner.parent is factory:
                    out.append(inner)
            elif type(value) is ast.Name:
                for b in factory.bindings.get(value.id, ()):
                    if b.kind == "def" and b.value.parent is factory:  # type: ignore[union-attr]
                        out.append(b.value)
    return out


def _items(program, iterable: ast.AST, scope: Scope) -> list[ast.expr]:
    """The item expressions of a literal list, tuple or set, or of a comprehension, directly
    or through a local bound once to one."""
    if type(iterable) is ast.Name:
        _, bindings = program.bindings_of(scope, iterable.id)
        if len(bindings) != 1 or bindings[0].kind != "assign":
            return []
        iterable = bindings[0].value
    if type(iterable) in (ast.List, ast.Tuple, ast.Set):
        return list(iterable.elts)
    if type(iterable) in (ast.ListComp, ast.SetComp, ast.GeneratorExp):
        return [iterable.elt]
    return []


def _dunder_call(program, node: ast.AST, scope: Scope) -> list[Scope]:
    """``__call__`` of the project class ``node`` is an instance of (``Thread(target=self)``)."""
    owner = class_of(program, node, scope)
    if owner is None or not owner[1]:
        return []
    method = program.method(owner[0], "__call__")
    return [method] if method is not None else []


def _resolved(program, node: ast.AST, scope: Scope) -> list[Scope]:
    found = program.resolve_node(node, scope)
    if isinstance(found, Scope) and found.kind in ("function", "lambda"):
        return [found]
    if isinstance(found, ClassInfo):
        return _constructor(program, found)
    return []


def _constructor(program, info: ClassInfo) -> list[Scope]:
    init = program.method(info, "__init__")
    return [init] if init is not None else []


def param_slot(fn: Scope, name: str) -> tuple[int, str] | None:
    """(position, name) of parameter ``name`` of ``fn``, the position counted as callers pass it
    (a method's self excluded); position -1 for keyword-only. None if it is not a parameter."""
    args = fn.node.args  # type: ignore[attr-defined]
    positional = [a.arg for a in (*args.posonlyargs, *args.args)]
    if fn.self_name is not None and positional and positional[0] == fn.self_name:
        positional = positional[1:]
    if name in positional:
        return positional.index(name), name
    if name in (a.arg for a in args.kwonlyargs):
        return -1, name
    return None


def bound_argument(call: ast.Call, slot: tuple[int, str]) -> ast.expr | None:
    """The argument expression a call passes for a parameter slot."""
    position, name = slot
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    starred = any(type(a) is ast.Starred for a in call.args[:position + 1])
    if 0 <= position < len(call.args) and not starred:
        return call.args[position]
    return None


def thread_arguments(call: ast.Call, how: str) -> list[ast.expr]:
    """The positional arguments a thread start passes to its target, where they are plain."""
    if how.startswith("executor.submit"):
        values = call.args[1:]
    else:
        values = None
        for keyword in call.keywords:
            if keyword.arg == "args":
                values = keyword.value
        if values is None:  # Thread/Process(group, target, name, args), Timer(interval, function, args)
            position = 3 if how.startswith(("Thread", "Process")) else 2 if how.startswith("Timer") else None
            values = call.args[position] if position is not None and len(call.args) > position else None
        values = list(values.elts) if type(values) in (ast.Tuple, ast.List) else []
    return [] if any(type(v) is ast.Starred for v in values) else list(values)
