"""MS301: a module-level dict or unbounded mapsafe.Cache used as a memo and never evicted, cleared or size-checked."""

from __future__ import annotations

import ast
from typing import Iterator

from .context import FileContext
from .messages import Finding, UnboundedMemoCache
from .scopes import Index, Scope

__all__ = ["CODES", "check"]

CODES = ("MS301",)

_EVICTORS = frozenset({"pop", "popitem", "clear", "__delitem__", "__len__"})
_READERS = frozenset({"get", "keys", "items", "values", "copy", "__contains__", "__getitem__"})
_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
# mapsafe's loading cache evicts by itself, unless built with maxsize=None and neither
# max_weight= nor an expiry (ttl=, tti=: expired entries are swept as it is written): then it
# only grows, as a dict does.
_MAPSAFE_CACHES = frozenset({"mapsafe.Cache", "mapsafe.cache.Cache"})
# What mapsafe.Cache's own methods do to its entries (`get` with a loader stores too: see
# _classify); any other, such as invalidate(), escapes as on a dict: it may evict.
_CACHE_METHODS = {"put": "store", "get_if_present": "lookup", "stats": "read", "cache_info": "read"}


class _Uses:
    """How one function uses a candidate dict."""

    __slots__ = ("stores", "lookups", "returned_reads")

    def __init__(self) -> None:
        self.stores: list[tuple[str, ast.AST]] = []  # (key dump, node)
        self.lookups: set[str] = set()  # key dumps looked up
        self.returned_reads: set[str] = set()  # key dumps of reads whose value the function returns


def _self_evicting(index: Index, bindings: list, module: Scope) -> bool:
    """Weak dictionaries drop entries by themselves, and sets hold no computed values."""
    for binding in bindings:
        value = binding.value
        if type(value) in (ast.Set, ast.SetComp):
            return True
        if type(value) is ast.Call:
            name = index.qualified(value.func, module) or ""
            if name.startswith("weakref.") or name in ("set", "frozenset"):
                return True
    return False


def _mapsafe_cache(index: Index, value: object, module: Scope) -> str | None:
    """For a call of mapsafe.Cache: 'loading' or 'cache' (with or without a default loader) if
    it is unbounded, 'bounded' if it is not; None for anything else."""
    if type(value) is not ast.Call or index.qualified(value.func, module) not in _MAPSAFE_CACHES:
        return None
    given = {keyword.arg: keyword.value for keyword in value.keywords}
    if None in given or any(type(arg) is ast.Starred for arg in value.args):
        return "bounded"  # Cache(*args, **options): cannot tell, and a false alarm costs more
    maxsize = value.args[0] if value.args else given.get("maxsize")  # absent: the default, 128
    limits = [given.get(name) for name in ("max_weight", "ttl", "tti")]
    if not _is_none(maxsize) or any(limit is not None and not _is_none(limit) for limit in limits):
        return "bounded"
    return "loading" if "loader" in given and not _is_none(given["loader"]) else "cache"


def _is_none(node: ast.AST | None) -> bool:
    return type(node) is ast.Constant and node.value is None


def _candidate(index: Index, bindings: list, module: Scope) -> str | None:
    """'dict', 'cache' or 'loading' when every binding makes a map that only grows; else None."""
    made = {_mapsafe_cache(index, b.value if b.kind == "assign" else None, module) for b in bindings}
    if made == {None}:
        if index.all_dict(bindings, module) and not _self_evicting(index, bindings, module):
            return "dict"
        return None
    return made.pop() if len(made) == 1 and made != {"bounded"} else None


def check(index: Index, ctx: FileContext) -> Iterator[Finding]:
    module = index.module
    candidates: dict[str, str] = {}  # name -> what _candidate made of it
    for name, bindings in module.bindings.items():
        kind = _candidate(index, bindings, module)
        if kind is not None and not any(
            name in scope.globals and name in scope.bindings for scope in index.scopes[1:]
        ):
            candidates[name] = kind  # rebinding it from a function (`global c; c = {}`) is a reset
    if not candidates:
        return
    unbounded = set(candidates)  # minus those evicted, size-checked or handed elsewhere
    uses: dict[str, dict[int, _Uses]] = {name: {} for name in candidates}
    for scope in index.scopes:
        for node, parent, grand in _nodes(scope):
            if type(node) is not ast.Name or node.id not in candidates or type(node.ctx) is not ast.Load:
                continue
            name = node.id
            if index.lookup(scope, name) is not module:
                continue
            kind, key, site = _classify(node, parent, grand, candidates[name])
            if kind in ("evict", "escape"):
                unbounded.discard(name)
                continue
            if scope.kind not in ("function", "lambda"):
                continue  # filled or read at import time: a registry, not a cache
            per = uses[name].setdefault(scope.id, _Uses())
            if kind == "store":
                per.stores.append((key, site))  # type: ignore[arg-type]
            elif kind == "lookup":
                per.lookups.add(key)  # type: ignore[arg-type]
            elif kind == "returned":
                per.lookups.add(key)  # type: ignore[arg-type]
                per.returned_reads.add(key)  # type: ignore[arg-type]
            elif kind == "both":  # setdefault: a lookup and a store in one call
                per.stores.append((key, site))  # type: ignore[arg-type]
                per.lookups.add(key)  # type: ignore[arg-type]
    for name in sorted(unbounded):
        for scope_id, per in sorted(uses[name].items()):
            scope = index.scopes[scope_id - index.first_id]
            hit = _memo_store(index, scope, name, per)
            if hit is not None:
                noun = "dict" if candidates[name] == "dict" else "mapsafe.Cache(maxsize=None)"
                yield ctx.finding(UnboundedMemoCache, hit, noun, name, scope.qualname)
                break


def _nodes(scope: Scope) -> Iterator[tuple[ast.AST, ast.AST | None, ast.AST | None]]:
    """(node, parent, grandparent) for the code of one scope, not nested scopes."""
    roots = [scope.node.body] if scope.kind == "lambda" else list(scope.body())  # type: ignore[attr-defined]
    stack: list[tuple[ast.AST, ast.AST | None, ast.AST | None]] = [(root, None, None) for root in roots]
    while stack:
        node, parent, grand = stack.pop()
        yield node, parent, grand
        if isinstance(node, _NESTED):
            # decorators and defaults run in this scope; bodies do not
            if type(node) is ast.Lambda:
                children = list(node.args.defaults)
            elif type(node) is ast.ClassDef:
                children = [*node.decorator_list, *node.bases]
            else:
                children = [*node.decorator_list, *node.args.defaults]  # type: ignore[union-attr]
            stack.extend((child, node, parent) for child in children)
            continue
        stack.extend((child, node, parent) for child in ast.iter_child_nodes(node))


def _classify(node: ast.Name, parent: ast.AST | None, grand: ast.AST | None,
              container: str) -> tuple[str, str | None, ast.AST | None]:
    """What a use of the candidate (``container``, as _candidate named it) does: 'store',
    'lookup', 'both', 'read', 'evict' or 'escape'."""
    kind = type(parent)
    if kind is ast.Subscript and parent.value is node:
        ctx = type(parent.ctx)
        key = ast.dump(parent.slice)
        if ctx is ast.Store:
            if type(grand) is ast.Assign:
                parent._mapsafe_value = grand.value  # type: ignore[attr-defined]
            return "store", key, parent
        if ctx is ast.Del:
            return "evict", None, None
        return ("returned" if type(grand) is ast.Return else "lookup"), key, parent
    if kind is ast.Attribute:
        method = parent.attr
        call = grand if type(grand) is ast.Call and grand.func is parent else None
        if container != "dict":
            effect = _CACHE_METHODS.get(method)
            if method == "get" and call is not None and (
                container == "loading" or len(call.args) > 1 or any(k.arg == "loader" for k in call.keywords)
            ):
                effect = "both"  # a miss runs the loader and keeps what it returns
            if effect in ("both", "store", "lookup"):
                if call is None or not call.args:
                    return "escape", None, None
                return effect, ast.dump(call.args[0]), call
            if effect is not None:
                return effect, None, None
        if method in _EVICTORS:
            return "evict", None, None
        if call is not None and method == "setdefault" and call.args:
            return "both", ast.dump(call.args[0]), call
        if call is not None and method == "get" and call.args:
            return "lookup", ast.dump(call.args[0]), call
        if method in _READERS or method == "update":
            return "read", None, None
        return "escape", None, None  # something we do not understand: assume it may evict
    if kind is ast.Compare and node in parent.comparators and len(parent.ops) == 1:
        if type(parent.ops[0]) in (ast.In, ast.NotIn):
            return "lookup", ast.dump(parent.left), parent
        return "read", None, None
    if kind is ast.Call:
        func = parent.func
        if type(func) is ast.Name and func.id in ("len", "sys.getsizeof"):
            return "evict", None, None  # a size check bounds it
        if node is func:
            return "escape", None, None
        return "escape", None, None  # handed to other code, which may evict
    if kind in (ast.For, ast.AsyncFor, ast.comprehension) or kind in (ast.If, ast.While, ast.BoolOp, ast.UnaryOp):
        return "read", None, None
    return "escape", None, None  # returned, aliased, stored elsewhere: may be evicted there


def _memo_store(index: Index, scope: Scope, name: str, per: _Uses) -> ast.AST | None:
    """The store that makes ``scope`` a memo function of ``name``, if it is one."""
    if not per.stores:
        return None
    params = _params(scope)
    derived = _derived_names(scope, params)
    returned = per.returned_reads | _returned_read_keys(scope, name)
    for key, site in per.stores:
        if key not in per.lookups or key not in returned:
            continue
        key_node = site.slice if type(site) is ast.Subscript else site.args[0]  # type: ignore[attr-defined]
        used = {n.id for n in ast.walk(key_node) if type(n) is ast.Name and n.id in derived}
        if not used:
            continue
        if used <= params and all(_flag_param(scope, n) for n in used):
            continue  # keyed only by True/False flags: a handful of entries at most
        if _stores_argument(site, params):
            continue  # remembers what it was given (a setter or registry), not what it computed
        if _guarded_by_membership(scope, key):
            continue  # `if k not in known: raise`: the keys are bounded by another collection
        if all("version" in n.lower() for n in used):
            continue  # keyed by a (language, grammar, protocol) version: a closed, small set
        if _only_when_present(scope, name, key, site):
            continue  # stored only where a lookup proved the key there: a value update, no growth
        if _looked_up_elsewhere(index, scope, name, used):
            continue  # the key was itself found in another module-level table: bounded by it
        if _stores_literal(site):
            continue  # stores a fresh [] or a constant: a buffer or a flag table, not a memo
        if _constant_callers(index, scope, used & params):
            continue  # a private helper always called with constants: a fixed, small key set
        return site
    return None


def _guarded_by_membership(scope: Scope, key: str) -> bool:
    """Does the function leave early (`return`/`raise`) unless ``key`` is in some collection?

    Covers `if k not in cache: return` (it only replaces existing keys) and
    `if k not in installed: raise` (keys bounded by another collection).
    """
    for stmt in scope.body():
        if type(stmt) is ast.If and type(stmt.test) is ast.Compare and len(stmt.test.ops) == 1:
            test = stmt.test
            if (type(test.ops[0]) is ast.NotIn and ast.dump(test.left) == key
                    and stmt.body and type(stmt.body[-1]) in (ast.Return, ast.Raise)):
                return True
    return False


def _only_when_present(scope: Scope, cache: str, key: str, site: ast.AST) -> bool:
    """Is ``site`` inside `if k in cache:` or `if hit:` where `hit = cache.get(k)`?"""
    hits = {
        target.id
        for node, _, _ in _nodes(scope) if type(node) is ast.Assign and _read_key(node.value, cache) == key
        for target in node.targets if type(target) is ast.Name
    }

    def proves(test: ast.expr) -> bool:
        if type(test) is ast.Name:
            return test.id in hits
        if type(test) is ast.Compare and len(test.ops) == 1 and type(test.ops[0]) is ast.In:
            holder = test.comparators[0]
            return type(holder) is ast.Name and holder.id == cache and ast.dump(test.left) == key
        if type(test) is ast.Compare and len(test.ops) == 1 and type(test.ops[0]) is ast.IsNot:
            return type(test.left) is ast.Name and test.left.id in hits
        return False

    for node, _, _ in _nodes(scope):
        if type(node) is ast.If and proves(node.test):
            if any(inner is site for stmt in node.body for inner in ast.walk(stmt)):
                return True
    return False


def _looked_up_elsewhere(index: Index, scope: Scope, cache: str, names: set[str]) -> bool:
    """Is every key name a local read out of another module-level table (`name = LABELS.get(x)`)?"""
    module = index.module
    for name in names:
        bindings = scope.bindings.get(name, [])
        if not bindings:
            return False
        for binding in bindings:
            value = binding.value
            if binding.kind != "assign":
                return False
            if type(value) is ast.Call and type(value.func) is ast.Attribute and value.func.attr == "get":
                table = value.func.value
            elif type(value) is ast.Subscript:
                table = value.value
            else:
                return False
            if type(table) is not ast.Name or table.id == cache or table.id not in module.bindings:
                return False
            if index.lookup(scope, table.id) is not module:
                return False
    return True


def _stores_literal(site: ast.AST) -> bool:
    value = getattr(site, "_mapsafe_value", None)
    if type(site) is ast.Call and len(site.args) > 1:
        value = site.args[1]
    if type(value) is ast.Constant:
        return True
    return type(value) in (ast.List, ast.Dict, ast.Set, ast.Tuple) and not any(
        getattr(value, field, None) for field in ("elts", "keys")
    )


def _constant_callers(index: Index, scope: Scope, key_params: set[str]) -> bool:
    """Is ``scope`` a private module function whose every call passes constants for ``key_params``?"""
    node = scope.node
    if type(node) not in (ast.FunctionDef, ast.AsyncFunctionDef) or not node.name.startswith("_"):
        return False
    if scope.parent is not index.module or not key_params:
        return False
    positions = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]  # type: ignore[attr-defined]
    module = index.module
    uses = calls = 0
    for other in ast.walk(index.tree):
        if type(other) is ast.Name and other.id == node.name and type(other.ctx) is ast.Load:
            uses += 1
        if type(other) is ast.Call and type(other.func) is ast.Name and other.func.id == node.name:
            calls += 1
            for param in key_params:
                arg = None
                if param in positions and positions.index(param) < len(other.args):
                    arg = other.args[positions.index(param)]
                for keyword in other.keywords:
                    if keyword.arg == param:
                        arg = keyword.value
                if arg is None:
                    continue  # the default: a constant too
                if type(arg) is ast.Constant:
                    continue
                if type(arg) is ast.Name and all(
                    b.kind == "assign" and type(b.value) is ast.Constant for b in module.bindings.get(arg.id, [None])
                    if b is not None
                ) and arg.id in module.bindings:
                    continue
                return False
    return calls > 0 and uses == calls  # passed around as a value, it could get any argument


def _stores_argument(site: ast.AST, params: set[str]) -> bool:
    parent_value = getattr(site, "_mapsafe_value", None)
    if type(site) is ast.Call and len(site.args) > 1:  # setdefault(key, value)
        parent_value = site.args[1]
    return type(parent_value) is ast.Name and parent_value.id in params


def _params(scope: Scope) -> set[str]:
    return {
        name for name, bindings in scope.bindings.items()
        if any(b.kind == "param" for b in bindings) and name not in ("self", "cls")
    }


def _flag_param(scope: Scope, name: str) -> bool:
    """A parameter whose default is True, False, 0 or 1: a flag with two values."""
    node = scope.node
    if type(node) not in (ast.FunctionDef, ast.AsyncFunctionDef):
        return False
    args = node.args  # type: ignore[attr-defined]
    positional = [*args.posonlyargs, *args.args]
    defaults = dict(zip([a.arg for a in positional[len(positional) - len(args.defaults):]], args.defaults))
    defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
    default = defaults.get(name)
    return type(default) is ast.Constant and (type(default.value) is bool or default.value in (0, 1))


def _derived_names(scope: Scope, params: set[str]) -> set[str]:
    """The function's parameters (not self/cls), and locals computed from them."""
    derived = set(params)
    for name, bindings in scope.bindings.items():
        for binding in bindings:
            if binding.kind == "assign" and isinstance(binding.value, ast.AST):
                if any(type(n) is ast.Name and n.id in params for n in ast.walk(binding.value)):
                    derived.add(name)
    return derived


def _returned_read_keys(scope: Scope, name: str) -> set[str]:
    """Keys whose value, read from the dict, the function returns or keeps in a local."""
    read_into: dict[str, str] = {}  # local -> key dump it was read from
    keys: set[str] = set()
    returns: list[ast.expr] = []
    for node, _, _ in _nodes(scope):
        kind = type(node)
        if kind is ast.Assign:
            key = _read_key(node.value, name)
            if key is not None:
                for target in node.targets:
                    if type(target) is ast.Name:
                        read_into[target.id] = key
        elif kind is ast.Return and node.value is not None:
            returns.append(node.value)
    for value in returns:
        key = _read_key(value, name)
        if key is not None:
            keys.add(key)
    # A value read into a local is used (returned, copied, wrapped): a memo hit. A registry
    # only tests `key in d` before storing, and never reads the value back.
    keys.update(read_into.values())
    return keys


def _read_key(value: ast.AST, name: str) -> str | None:
    if type(value) is ast.Subscript and type(value.value) is ast.Name and value.value.id == name:
        return ast.dump(value.slice)
    if type(value) is ast.Call and type(value.func) is ast.Attribute and value.func.attr in (
        "get", "setdefault", "get_if_present"
    ):
        receiver = value.func.value
        if type(receiver) is ast.Name and receiver.id == name and value.args:
            return ast.dump(value.args[0])
    return None
