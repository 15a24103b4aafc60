"""The call graph: which functions a call may run, with methods resolved through classes and imports."""

from __future__ import annotations

import ast

from .classes import class_of
from .scopes import ClassInfo, Scope

__all__ = ["callables", "param_slot", "bound_argument"]

_PARTIAL = frozenset({"functools.partial"})


def callables(program, node: ast.AST, scope: Scope) -> list[Scope]:
    """The functions (or lambdas) that calling ``node`` may run, as far as the program tells."""
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
        return out  # type: ignore[return-value]
    if kind is ast.Attribute:
        found = _resolved(program, node, scope)  # mod.func, pkg.mod.Class
        if found:
            return found
        owner = class_of(program, node.value, scope)
        if owner is not None:
            method = program.method(owner[0], node.attr)
            return [method] if method is not None else []
        return []
    if kind is ast.Call and node.args and program.qualified(node.func, scope) in _PARTIAL:
        return callables(program, node.args[0], scope)
    return []


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
