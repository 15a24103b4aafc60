"""Which class an expression's value belongs to: self and cls, constructor calls, annotations, attributes, factories."""

from __future__ import annotations

import ast

from .scopes import ClassInfo, Scope

__all__ = ["class_of", "distinctive_member"]

_MAX_DEPTH = 6  # attribute chains (a.b.c.d) and aliases followed for one expression


def class_of(program, node: ast.AST, scope: Scope, depth: int = 0) -> tuple[ClassInfo, bool] | None:
    """(class, is_instance) when the program tells what ``node`` evaluates to, else None.

    Known: a method's ``self`` (instance) or ``cls`` (class); a class name
    (the class object); ``Foo(...)``; a local or attribute assigned only
    ``Foo(...)``; a parameter or attribute annotated ``Foo``; a call of a
    function whose every ``return`` gives ``Foo(...)``.
    """
    if depth > _MAX_DEPTH:
        return None
    if depth == 0:
        key = ("class_of", scope.id, node)
        memo = program.memo
        if key not in memo:
            memo[key] = _class_of(program, node, scope, 0)
        return memo[key]  # type: ignore[return-value]
    return _class_of(program, node, scope, depth)


def _class_of(program, node: ast.AST, scope: Scope, depth: int) -> tuple[ClassInfo, bool] | None:
    kind = type(node)
    if kind is ast.Name:
        found = program.self_class(scope, node.id)
        if found is not None:
            return found[0], not found[1]
        info = program.resolve_class(node, scope)
        if info is not None:
            return info, False
        owner, bindings = program.bindings_of(scope, node.id)
        return _from_bindings(program, bindings, owner or scope, depth, name=node.id)
    if kind is ast.Attribute:
        info = program.resolve_class(node, scope)  # mod.Class
        if info is not None:
            return info, False
        base = class_of(program, node.value, scope, depth + 1)
        if base is None:
            return None
        for cls in program.mro(base[0]):
            bindings = cls.attrs.get(node.attr)
            if bindings:
                return _from_bindings(program, bindings, cls.scope, depth, cls)
        return None
    if kind is ast.Call:
        return instance_made_by(program, node, scope, depth)
    return None


def instance_made_by(program, call: ast.Call, scope: Scope, depth: int = 0) -> tuple[ClassInfo, bool] | None:
    """``Foo(...)`` makes a Foo; so does ``make_foo(...)`` when every return of make_foo gives a Foo
    (``return Foo(...)``, or ``return _the_foo`` for a module's instance)."""
    info = program.resolve_class(call.func, scope)
    if info is not None:
        return info, True
    for fn in _functions(program, call.func, scope, depth):
        annotation = getattr(fn.node, "returns", None)
        if annotation is not None:  # def get_store(...) -> Store: what its author says it returns
            got = _annotated(program, annotation, fn)
            if got is not None:
                return got
        returns = [n.value for n in program.returns(fn) if n.value is not None]
        made = [class_of(program, v, fn, depth + 1) for v in returns]
        kinds = {(id(r[0]), r[1]) for r in made if r is not None}
        if returns and None not in made and len(kinds) == 1 and made[0][1]:
            return made[0]  # every return gives an instance of one class (a factory, or a getter of one)
    return None


def _functions(program, func: ast.AST, scope: Scope, depth: int) -> list[Scope]:
    if type(func) is ast.Name:
        _, bindings = program.bindings_of(scope, func.id)
        found = [b.value for b in bindings if b.kind == "def"]
        if found:
            return found
    if type(func) in (ast.Name, ast.Attribute):
        target = program.resolve_node(func, scope)
        if isinstance(target, Scope) and target.kind == "function":
            return [target]
    if type(func) is ast.Attribute:  # self.get_store(), client.make_pool(): a method of a known class
        owner = class_of(program, func.value, scope, depth + 1)
        if owner is not None:
            method = program.method(owner[0], func.attr)
            if method is not None:
                return [method]
    return []


def _from_bindings(program, bindings, scope: Scope, depth: int,
                   cls: ClassInfo | None = None, name: str = "") -> tuple[ClassInfo, bool] | None:
    found: tuple[ClassInfo, bool] | None = None
    if name and bindings and all(b.kind == "param" and b.value is None for b in bindings):
        # An unannotated parameter: what the known call sites pass for it.
        passed = program.call_args.get((scope.id, name), ())
        bindings = []
        for argument, caller in passed:
            got = class_of(program, argument, caller, depth + 1)
            if got is None or (found is not None and found[0] is not got[0]):
                return None
            found = got
        return found
    for binding in bindings:
        if cls is not None and binding.kind == "assign" and type(binding.value) is ast.Name:
            # self.pool = pool: the name is a local of the method that stores it, usually __init__
            got = _from_method_local(program, cls, binding.value.id, depth)
        elif binding.kind == "assign" and type(binding.value) is ast.Call:
            got = instance_made_by(program, binding.value, scope, depth + 1)
        elif binding.kind == "param" and binding.value is not None:
            got = _annotated(program, binding.value, scope)
        elif binding.kind == "assign" and binding.value is not None:
            got = class_of(program, binding.value, scope, depth + 1)  # an alias: x = self.pool
        else:
            got = None
        if got is None or (found is not None and found[0] is not got[0]):
            return None  # unknown, or two different classes
        found = got
    return found


def _from_method_local(program, cls: ClassInfo, name: str, depth: int) -> tuple[ClassInfo, bool] | None:
    for method in cls.methods.values():
        if name in method.bindings:
            return _from_bindings(program, method.bindings[name], method, depth + 1, name=name)
    return None


def _annotated(program, annotation: ast.AST, scope: Scope) -> tuple[ClassInfo, bool] | None:
    if type(annotation) is ast.Constant and isinstance(annotation.value, str):
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return None
    if type(annotation) is ast.Subscript:
        got = _annotated(program, annotation.value, scope)  # Store[K, V]: a generic project class
        if got is not None:
            return got
        annotation = annotation.slice  # Optional[Foo]
        if type(annotation) is ast.Tuple and annotation.elts:  # Union[Foo, None]
            annotation = annotation.elts[0]
    if type(annotation) is ast.BinOp and type(annotation.op) is ast.BitOr:  # Foo | None
        annotation = annotation.left
    info = program.resolve_class(annotation, scope.parent or scope)
    return (info, True) if info is not None else None


def distinctive_member(program, node: ast.Attribute, scope: Scope) -> bool:
    """May ``obj.<name>`` be matched by its name alone: a private (``_cache``) or compound
    (``start_time_by_pid``) name, on an object that is not an imported name, a class or a
    function (whose attributes belong to code outside the program or are not instances')?"""
    attr = node.attr
    if not (attr.startswith("_") and not attr.startswith("__")) and "_" not in attr.strip("_"):
        return False
    base = node.value
    while type(base) in (ast.Attribute, ast.Subscript):
        base = base.value
    if type(base) is not ast.Name:
        return False
    _, bindings = program.bindings_of(scope, base.id)
    return bool(bindings) and not any(b.kind in ("import", "class", "def") for b in bindings)
