"""Lock identity: which lock a `with` or `acquire()` takes, however the code names it."""

from __future__ import annotations

import ast

from .calls import callables
from .classes import class_of
from .program import Global
from .scopes import Scope

__all__ = ["lock_key", "UNKNOWN", "display"]

# The first item of a key that is not a resolved identity: two such keys may be one lock.
UNKNOWN = "expr"


def lock_key(program, node: ast.AST, scope: Scope, depth: int = 0) -> tuple:
    """A hashable identity for the lock ``node`` denotes: the same for ``self._lock`` in every
    method of a class, ``obj._lock`` where obj's class is known, a module global however it is
    imported, and a project context manager (``with self._locked():``) that takes that lock."""
    kind = type(node)
    if kind is ast.Call:
        func = node.func
        if type(func) is ast.Attribute and program.is_lock_expr(func.value, scope):
            return lock_key(program, func.value, scope, depth)  # rw.read(), lock.acquire_timeout(1)
        if depth < 3:
            for fn in callables(program, func, scope):
                inner = _taken_by_context_manager(program, fn, depth)
                if inner is not None:
                    return inner
    elif kind is ast.Name:
        owner, bindings = program.bindings_of(scope, node.id)
        if owner is not None:
            if len(bindings) == 1 and bindings[0].kind == "import":
                found = program.resolve(program.index_of(scope).absolute(str(bindings[0].value)))
                if isinstance(found, Global):
                    return ("global", found.index.uid, found.name)
            if owner.kind == "module":
                return ("global", program.index_of(owner).uid, node.id)
            return ("local", owner.id, node.id)
    elif kind is ast.Attribute:
        found = program.resolve_node(node, scope)
        if isinstance(found, Global):
            return ("global", found.index.uid, found.name)
        owner = class_of(program, node.value, scope)
        if owner is not None:
            for cls in program.mro(owner[0]):
                if node.attr in cls.attrs:
                    return ("attr", cls.index.uid, cls.scope.qualname, node.attr)
    return (UNKNOWN, program.index_of(scope).uid, ast.dump(node))


def _taken_by_context_manager(program, fn: Scope, depth: int) -> tuple | None:
    """The lock a ``@contextmanager`` function holds around its ``yield``, if one."""
    node = fn.node
    if type(node) not in (ast.FunctionDef, ast.AsyncFunctionDef):
        return None
    names = {program.qualified(d, fn.parent or fn) or "" for d in node.decorator_list}
    if not any(name.endswith("contextmanager") for name in names):
        return None
    for stmt in ast.walk(node):
        if type(stmt) in (ast.With, ast.AsyncWith) and any(type(n) in (ast.Yield, ast.YieldFrom)
                                                           for n in ast.walk(stmt)):
            for item in stmt.items:
                if program.is_lock_expr(item.context_expr, fn):
                    return lock_key(program, item.context_expr, fn, depth + 1)
    return None


def display(key: tuple) -> str:
    """How a message names a lock: 'Store._lock', 'mod.LOCK', a local's name."""
    kind = key[0]
    if kind == "attr":
        return f"{key[2]}.{key[3]}"
    if kind == "global":
        module = key[1].split("#", 1)[0]  # the module's dotted name, before its uid suffix
        return f"{module.rsplit('.', 1)[-1]}.{key[2]}" if module else key[2]
    if kind == "local":
        return key[2]
    return "a lock"
