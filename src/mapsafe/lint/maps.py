"""Map identity: which possibly shared map an expression denotes, however the code reaches it."""

from __future__ import annotations

import ast

from .calls import callables
from .classes import class_of, distinctive_member
from .program import Global
from .scopes import Scope

__all__ = ["Target", "MapIdentity"]

_MAX_ALIAS = 4  # local aliases followed (d = self._cache; e = d)


class Target:
    """A map that may be shared: a module global, a closure variable, or a class or instance attribute."""

    __slots__ = ("key", "display", "instance", "closure_owner", "cls")

    def __init__(self, key: tuple, display: str, instance: bool = False, closure_owner: Scope | None = None) -> None:
        self.key = key
        self.display = display
        self.instance = instance  # per-object attribute: only threads sharing one object share it
        self.closure_owner = closure_owner  # for a closure variable: the function that creates it
        self.cls = None  # for an attribute: the ClassInfo that binds it


class MapIdentity:
    """One Target per map, reached by name, ``self.attr``, ``obj.attr``, ``mod.NAME``, an import or an alias."""

    def __init__(self, program) -> None:
        self.program = program
        self._targets: dict[tuple, Target] = {}
        self._resolved: dict[tuple[int, str], Target | None] = {}

    def target_of(self, node: ast.AST, scope: Scope, hops: int = 0) -> Target | None:
        kind = type(node)
        if kind is ast.Call:
            return self._returned(node, scope, hops)
        if kind is ast.Name:
            cache_key = (scope.id, node.id)
        elif kind is ast.Attribute:
            chain = _chain(node)
            if chain is None:
                return self._attr_target(node, scope, hops)  # (f().attr): not cached
            cache_key = (scope.id, chain)
        else:
            return None
        if cache_key in self._resolved:
            return self._resolved[cache_key]
        self._resolved[cache_key] = None  # a cycle of aliases resolves to nothing
        found = self._name_target(node.id, scope, hops) if kind is ast.Name else self._attr_target(node, scope, hops)
        self._resolved[cache_key] = found
        return found

    def _make(self, key: tuple, display: str, instance: bool = False, owner: Scope | None = None) -> Target:
        target = self._targets.get(key)
        if target is None:
            target = self._targets[key] = Target(key, display, instance, owner)
        return target

    def _global(self, found: Global, display: str) -> Target | None:
        index = found.index
        if not index.all_dict(found.bindings, index.module):
            return None
        return self._make(("global", index.uid, found.name), display)

    def _name_target(self, name: str, scope: Scope, hops: int) -> Target | None:
        program = self.program
        owner, bindings = program.bindings_of(scope, name)
        if owner is None or owner.kind == "class" or not bindings:
            return None
        if len(bindings) == 1 and bindings[0].kind == "import":
            found = program.resolve(program.index_of(scope).absolute(str(bindings[0].value)))
            return self._global(found, name) if isinstance(found, Global) else None
        if program.all_dict(bindings, owner):
            if owner.kind == "module":
                return self._make(("global", program.index_of(owner).uid, name), name)
            return self._make(("closure", owner.id, name), name, owner=owner)
        if all(b.kind == "param" for b in bindings) and hops < _MAX_ALIAS:
            # A parameter: the one map every known call site passes for it.
            passed = program.call_args.get((owner.id, name), ())
            targets: dict[int, Target | None] = {}
            for arg, caller in passed:
                if type(arg) in (ast.Dict, ast.DictComp):
                    continue  # a map the call makes for itself: that call's own
                if caller is owner and type(arg) is ast.Name and arg.id == name:
                    continue  # passed on to itself (a Timer that re-arms with its own argument)
                found = self.target_of(arg, caller, hops + 1)
                targets[id(found)] = found
            if None in targets.values():
                return None
            shared = [t for t in targets.values() if t is not None and t.closure_owner is None]
            if len(targets) == 1 or len(shared) == 1:
                # The one map every call site passes; or, where some callers pass a map of
                # their own call (a test's local dict) and the others one shared map, that
                # shared map: the function may touch it from any of its contexts. (The local
                # maps' own accesses here are then not followed: a may-alias of one target.)
                return shared[0] if shared else next(iter(targets.values()))
            return None
        # A local alias: every binding is an expression that denotes one and the same map.
        if owner.kind in ("function", "lambda") and hops < _MAX_ALIAS and all(
            b.kind == "assign" and b.value is not None for b in bindings
        ):
            targets = {id(t): t for t in (self.target_of(b.value, owner, hops + 1) for b in bindings)}
            if len(targets) == 1 and None not in targets.values():
                return next(iter(targets.values()))
        return None

    def _returned(self, call: ast.Call, scope: Scope, hops: int) -> Target | None:
        """A getter's map: the one map every ``return`` of the called function gives."""
        if hops >= _MAX_ALIAS or call.args or call.keywords:
            return None  # a getter takes no arguments; anything else is a computation
        found: dict[int, Target | None] = {}
        for fn in callables(self.program, call.func, scope):
            for node in self.program.returns(fn):
                target = self.target_of(node.value, fn, hops + 1) if node.value is not None else None
                found[id(target)] = target
        if len(found) == 1 and None not in found.values():
            return next(iter(found.values()))
        return None

    def _attr_target(self, node: ast.Attribute, scope: Scope, hops: int) -> Target | None:
        program = self.program
        attr = node.attr
        found = program.resolve_node(node, scope)  # mod.CACHE, pkg.mod.CACHE
        if isinstance(found, Global):
            return self._global(found, f"{found.index.name.rsplit('.', 1)[-1]}.{attr}")
        owner = class_of(program, node.value, scope)
        if owner is None:
            owner = _by_attribute_name(program, node, scope)
            if owner is None:
                return None
        info, is_instance = owner
        if is_instance and type(node.value) is ast.Name and _fresh_local(program, node.value.id, scope):
            # An object this call makes and keeps to itself (until it returns it): its maps
            # are this call's own, like a local dict's.
            for cls in program.mro(info):
                if cls.attrs.get(attr):
                    if not program.all_dict(cls.attrs[attr], cls.scope):
                        return None
                    name = node.value.id
                    return self._make(("fresh", scope.id, name, attr), f"{name}.{attr}", owner=scope)
            return None
        via_self = type(node.value) is ast.Name and program.self_class(scope, node.value.id) is not None
        for cls in program.mro(info):
            bindings = cls.attrs.get(attr)
            if bindings:
                if not program.all_dict(bindings, cls.scope):
                    return None
                instance = attr in cls.instance_attrs
                display = f"self.{attr}" if via_self and is_instance else f"{cls.name}.{attr}"
                target = self._make(("attr", cls.index.uid, cls.scope.qualname, attr), display, instance)
                target.cls = cls
                return target
        return None


def _chain(node: ast.AST) -> str | None:
    parts = []
    while type(node) is ast.Attribute:
        parts.append(node.attr)
        node = node.value
    if type(node) is not ast.Name:
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _fresh_local(program, name: str, scope: Scope) -> bool:
    """Is ``name`` a local of ``scope`` bound once, to ``Cls(...)``, that never leaves the call
    except by ``return`` (never an argument, a thread target's owner, stored, or aliased)?"""
    if scope.kind != "function":
        return False
    owner, bindings = program.bindings_of(scope, name)
    if owner is not scope or len(bindings) != 1 or bindings[0].kind != "assign":
        return False
    if type(bindings[0].value) is not ast.Call or program.resolve_class(bindings[0].value.func, scope) is None:
        return False
    todo = list(scope.body())
    while todo:
        node = todo.pop()
        kind = type(node)
        if kind in (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef):
            if any(type(n) is ast.Name and n.id == name for n in ast.walk(node)):
                return False  # a closure over it may run anywhere
            continue
        if kind is ast.Return:
            if type(node.value) is ast.Name:
                continue
        elif kind is ast.Attribute and type(node.value) is ast.Name and node.value.id == name:
            continue  # result.params[...]: a use, not an escape (method calls on it are checked below)
        elif kind is ast.Name and node.id == name and type(node.ctx) is ast.Load:
            return False  # passed, stored, aliased or yielded
        if kind is ast.Call and type(node.func) is ast.Attribute and type(node.func.value) is ast.Name \
                and node.func.value.id == name:
            return False  # result.start(), result.add(...): its own methods might share it
        todo.extend(ast.iter_child_nodes(node))
    return True


def _by_attribute_name(program, node: ast.Attribute, scope: Scope):
    """(class, True) for ``obj.start_time_by_pid`` where the program cannot tell ``obj``'s class
    (an item of a list of tuples, say), but exactly one class of the program binds
    ``self.start_time_by_pid``: that class's instances are the only ones that have it.

    Only for names a library object is unlikely to share: private (``_cache``) or compound
    (``start_time_by_pid``) names, not ``data`` or ``headers``; and never through a name the
    module imports, whose attributes belong to code outside the program.
    """
    if not distinctive_member(program, node, scope):
        return None
    info = program.only_class_binding(node.attr)
    return (info, True) if info is not None else None

