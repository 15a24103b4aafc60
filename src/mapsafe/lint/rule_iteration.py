"""MS101: a dict's key set changed inside a loop that iterates that dict."""

from __future__ import annotations

import ast
from typing import Callable, Iterator

from .context import FileContext
from .messages import Finding, MutationDuringIteration
from .scopes import Index, Scope, chain_name

__all__ = ["CODES", "check"]

CODES = ("MS101",)

_VIEWS = frozenset({"keys", "items", "values"})
# Methods only mappings have: evidence that a bare `for k in x` iterates a dict.
_MAPPING_ONLY = frozenset({"keys", "items", "values", "setdefault", "popitem"})
_KEY_SET_MUTATORS = frozenset({"pop", "popitem", "clear", "update", "setdefault"})
_DICT_ANNOTATIONS = frozenset(
    {"dict", "Dict", "DefaultDict", "defaultdict", "OrderedDict", "MutableMapping", "Counter"}
)
_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
Helper = Callable[[ast.Call], "str | None"]  # a call in a loop body -> how it changes the keys, or None


def check(index: Index, ctx: FileContext) -> Iterator[Finding]:
    evidence: dict[int, set[str]] = {}  # scope id -> chains that some mapping-only method is called on
    for loop, scope in index.for_loops:
        target = _iterated_dict(loop)
        if target is None:
            continue
        dict_node, chain, key_name, is_view = target
        if is_view:
            if _known_other(index, scope, dict_node):
                continue  # e.g. email.message.Message: keys() returns a list copy
        elif not _known_dict(index, scope, dict_node, chain, evidence):
            continue
        copy = f"list({chain}{'.items()' if _view_of(loop) == 'items' else ''})"
        for node, how in _mutations(loop.body, chain, key_name, _helper_mutations(index, scope, chain)):
            yield ctx.finding(MutationDuringIteration, node, chain, how, loop.lineno, copy)


def _view_of(loop: ast.For | ast.AsyncFor) -> str | None:
    it = _unwrap(loop.iter)[0]
    if type(it) is ast.Call and type(it.func) is ast.Attribute and it.func.attr in _VIEWS:
        return it.func.attr
    return None


def _unwrap(it: ast.expr) -> tuple[ast.expr, str | None]:
    """Look through enumerate(x) and reversed(x), which iterate x itself."""
    if type(it) is ast.Call and type(it.func) is ast.Name and len(it.args) == 1 and not it.keywords:
        if it.func.id in ("enumerate", "reversed"):
            return it.args[0], it.func.id
    return it, None


def _iterated_dict(loop: ast.For | ast.AsyncFor) -> tuple[ast.expr, str, str | None, bool] | None:
    """(dict expression, its chain name, the loop's key variable, iterates a view) or None."""
    it, wrapper = _unwrap(loop.iter)
    target = loop.target
    if wrapper == "enumerate":
        # `for i, x in enumerate(seq): seq[i] = ...` is list code: the counter indexes it.
        # Only a view (`enumerate(d.items())`) says for sure that it is a dict.
        if type(target) is not ast.Tuple or len(target.elts) != 2:
            return None
        target = target.elts[1]
        if not (type(it) is ast.Call and type(it.func) is ast.Attribute and it.func.attr in _VIEWS):
            return None
    view = None
    if type(it) is ast.Call and type(it.func) is ast.Attribute and it.func.attr in _VIEWS:
        if it.args or it.keywords:
            return None
        view = it.func.attr
        it = it.func.value
    chain = chain_name(it)
    if chain is None:
        return None
    key_name = None
    if view in (None, "keys") and type(target) is ast.Name:
        key_name = target.id
    elif view == "items" and type(target) in (ast.Tuple, ast.List) and target.elts:
        first = target.elts[0]
        if type(first) is ast.Name:
            key_name = first.id
    return it, chain, key_name, view is not None


def _known_dict(index: Index, scope: Scope, node: ast.expr, chain: str, evidence: dict[int, set[str]]) -> bool:
    """Is the bare iterable certainly a mapping? Bound to a dict, annotated as one, or used as one."""
    if type(node) is ast.Name:
        owner, bindings = index.bindings_of(scope, node.id)
        if owner is not None and index.all_dict(bindings, owner):
            return True
        for binding in bindings:
            if binding.kind == "param" and _dict_annotation(binding.value):
                return True
    elif type(node) is ast.Attribute and type(node.value) is ast.Name:
        found = index.self_class(scope, node.value.id)
        info = found[0] if found else index.resolve_class(node.value, scope)
        if info is not None:
            for cls in index.mro(info):
                bindings = cls.attrs.get(node.attr)
                if bindings:
                    if index.all_dict(bindings, cls.scope):
                        return True
                    break
    chains = evidence.get(scope.id)
    if chains is None:
        chains = evidence[scope.id] = _mapping_chains(scope)
    return chain in chains


def _known_other(index: Index, scope: Scope, node: ast.expr) -> bool:
    """Is ``node`` certainly bound to something built by a call that is not a dict factory?"""
    bindings: list = []
    owner_scope = scope
    if type(node) is ast.Name:
        owner, bindings = index.bindings_of(scope, node.id)
        owner_scope = owner or scope
    elif type(node) is ast.Attribute and type(node.value) is ast.Name:
        found = index.self_class(scope, node.value.id)
        if found is not None:
            for cls in index.mro(found[0]):
                if node.attr in cls.attrs:
                    bindings = cls.attrs[node.attr]
                    owner_scope = cls.scope
                    break
    if not bindings:
        return False
    for binding in bindings:
        value = binding.value
        if binding.kind != "assign" or type(value) is not ast.Call or index.is_dict_value(value, owner_scope):
            return False
        if type(value.func) is ast.Name and value.func.id[:1].islower():
            return False  # a factory function might return a dict
    return True


def _dict_annotation(annotation: object) -> bool:
    node = annotation
    if type(node) is ast.Subscript:
        node = node.value
    if type(node) is ast.Attribute:
        return node.attr in _DICT_ANNOTATIONS
    return type(node) is ast.Name and node.id in _DICT_ANNOTATIONS


def _mapping_chains(scope: Scope) -> set[str]:
    chains: set[str] = set()
    for node in _walk(scope.body()):
        if type(node) is ast.Call and type(node.func) is ast.Attribute and node.func.attr in _MAPPING_ONLY:
            chain = chain_name(node.func.value)
            if chain is not None:
                chains.add(chain)
    return chains


def _walk(nodes: list) -> Iterator[ast.AST]:
    """Every node under ``nodes`` that runs in the same scope (not inside nested defs or lambdas)."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, _NESTED):
            continue
        stack.extend(ast.iter_child_nodes(node))


def _mutations(body: list[ast.stmt], chain: str, key_name: str | None,
               helper: Helper | None = None) -> Iterator[tuple[ast.AST, str]]:
    """Key-set changes of ``chain`` in a loop body that the loop may survive."""
    existing = frozenset({ast.dump(ast.Name(key_name, ast.Load()))}) if key_name else frozenset()
    yield from _block(body, chain, existing, exits_after=False, break_exits=True, helper=helper)


def _helper_mutations(index: Index, scope: Scope, chain: str) -> Helper:
    """For a loop over ``chain`` in ``scope``: which calls in its body change ``chain``'s keys
    inside the function they call (``self._evict(k)`` doing ``del self._cache[k]``), one call deep."""
    head, _, rest = chain.partition(".")

    def helper(call: ast.Call) -> str | None:
        func = call.func
        fn, inner = None, chain
        if type(func) is ast.Attribute and type(func.value) is ast.Name and func.value.id == head and rest:
            found = index.self_class(scope, head)
            if found is not None:
                fn = index.method(found[0], func.attr)
                if fn is not None and fn.self_name:
                    inner = f"{fn.self_name}.{rest}"
        elif type(func) is ast.Name and not rest:
            owner, bindings = index.bindings_of(scope, func.id)
            defs = [b.value for b in bindings if b.kind == "def"]
            module_level = index.lookup(scope, head) is index.module
            if len(defs) == len(bindings) == 1 and module_level:
                fn = defs[0]
        if fn is None or fn.kind != "function" or fn is scope:
            return None
        for node, how in _mutations(fn.node.body, inner, None):  # type: ignore[attr-defined]
            return f"{how} in {fn.qualname}() at line {node.lineno}"
        return None

    return helper


def _known_keys(test: ast.expr, chain: str, existing: frozenset[str]) -> frozenset[str]:
    """Keys an `if` test proves present: `k in d`, a read of `d[k]`, or `k == <loop key>`."""
    found = set(existing)
    for node in ast.walk(test):
        kind = type(node)
        if kind is ast.Compare and len(node.ops) == 1:
            op = type(node.ops[0])
            right = node.comparators[0]
            if op is ast.In and chain_name(right) == chain:
                found.add(ast.dump(node.left))
            elif op is ast.Eq:
                left_dump, right_dump = ast.dump(node.left), ast.dump(right)
                if left_dump in existing:
                    found.add(right_dump)
                elif right_dump in existing:
                    found.add(left_dump)
        elif kind is ast.Subscript and type(node.ctx) is ast.Load and chain_name(node.value) == chain:
            found.add(ast.dump(node.slice))
    return frozenset(found)


def _rest_exits(rest: list[ast.stmt], exits_after: bool, break_exits: bool) -> bool:
    """Does control leave the iterating loop once the statements in ``rest`` have run?"""
    for stmt in rest:
        kind = type(stmt)
        if kind is ast.Return or kind is ast.Raise:
            return True
        if kind is ast.Break:
            return break_exits
        if kind is ast.Continue:
            return False
    return exits_after


def _block(
    stmts: list[ast.stmt], chain: str, key_name: frozenset[str], exits_after: bool, break_exits: bool,
    helper: Helper | None = None,
) -> Iterator[tuple[ast.AST, str]]:
    # key_name: dumps of key expressions certainly present in the dict here (the loop key,
    # and keys an enclosing `if` proved present): assigning them changes values, not keys.
    for i, stmt in enumerate(stmts):
        kind = type(stmt)
        if kind in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            continue
        leaves = kind is ast.Return or kind is ast.Raise or _rest_exits(stmts[i + 1 :], exits_after, break_exits)
        if kind is ast.If:
            yield from _in_expr(stmt.test, chain, key_name, leaves, helper)
            present = _known_keys(stmt.test, chain, key_name)
            yield from _block(stmt.body, chain, present, leaves, break_exits, helper)
            yield from _block(stmt.orelse, chain, key_name, leaves, break_exits, helper)
        elif kind in (ast.For, ast.AsyncFor, ast.While):
            head = stmt.iter if kind is not ast.While else stmt.test
            yield from _in_expr(head, chain, key_name, leaves, helper)
            # An inner loop's body repeats; its `break` lands after the inner loop.
            yield from _block(stmt.body, chain, key_name, False, leaves, helper)
            yield from _block(stmt.orelse, chain, key_name, leaves, break_exits, helper)
        elif kind in (ast.With, ast.AsyncWith):
            for item in stmt.items:
                yield from _in_expr(item.context_expr, chain, key_name, leaves, helper)
            yield from _block(stmt.body, chain, key_name, leaves, break_exits, helper)
        elif kind is ast.Try or kind.__name__ == "TryStar":
            yield from _block(stmt.body, chain, key_name, leaves, break_exits, helper)
            for handler in stmt.handlers:
                yield from _block(handler.body, chain, key_name, leaves, break_exits, helper)
            yield from _block(stmt.orelse, chain, key_name, leaves, break_exits, helper)
            yield from _block(stmt.finalbody, chain, key_name, leaves, break_exits, helper)
        elif kind.__name__ == "Match":
            yield from _in_expr(stmt.subject, chain, key_name, leaves, helper)
            for case in stmt.cases:
                yield from _block(case.body, chain, key_name, leaves, break_exits, helper)
        else:
            yield from _in_statement(stmt, chain, key_name, leaves, helper)


def _in_statement(stmt: ast.stmt, chain: str, key_name: frozenset[str], leaves: bool,
                  helper: Helper | None = None) -> Iterator[tuple[ast.AST, str]]:
    kind = type(stmt)
    if not leaves:
        if kind is ast.Delete:
            for target in stmt.targets:
                if type(target) is ast.Subscript and chain_name(target.value) == chain:
                    yield target, "del"
        elif kind is ast.Assign or kind is ast.AnnAssign:
            targets = stmt.targets if kind is ast.Assign else [stmt.target]
            for target in targets:
                if type(target) is ast.Subscript and chain_name(target.value) == chain:
                    if ast.dump(target.slice) not in key_name:
                        yield target, "a new key"
        elif kind is ast.AugAssign and type(stmt.op) is ast.BitOr and chain_name(stmt.target) == chain:
            yield stmt, "|="
    for field in stmt._fields:
        value = getattr(stmt, field, None)
        if isinstance(value, ast.expr):
            yield from _in_expr(value, chain, key_name, leaves, helper)
        elif type(value) is list:
            for item in value:
                if isinstance(item, ast.expr):
                    yield from _in_expr(item, chain, key_name, leaves, helper)


def _in_expr(expr: ast.expr, chain: str, key_name: frozenset[str], leaves: bool,
             helper: Helper | None = None) -> Iterator[tuple[ast.AST, str]]:
    if leaves:
        return
    for node in _walk([expr]):
        if type(node) is ast.Call:
            func = node.func
            if helper is not None:
                how = helper(node)
                if how is not None:
                    yield node, how
                    continue
            if type(func) is ast.Attribute and func.attr in _KEY_SET_MUTATORS and chain_name(func.value) == chain:
                if func.attr == "setdefault" and node.args and ast.dump(node.args[0]) in key_name:
                    continue  # the key exists: setdefault cannot add it
                yield node, f"{func.attr}()"
