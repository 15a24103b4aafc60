"""Scopes as data: one pass over a module recording what every name and attribute is bound to."""

from __future__ import annotations

import ast
import re
from typing import Iterator

__all__ = ["Scope", "ClassInfo", "Index", "DICT_FACTORIES", "SET_FACTORIES", "MAP_BASES", "chain_name"]

# Calls whose result is an unsynchronized mapping.
DICT_FACTORIES = frozenset(
    {
        "dict",
        "dict.fromkeys",
        "collections.defaultdict",
        "collections.OrderedDict",
        "collections.Counter",
        "collections.ChainMap",
        "collections.UserDict",
        "typing.DefaultDict",
        "weakref.WeakValueDictionary",
        "weakref.WeakKeyDictionary",
    }
)
# Calls whose result is an unsynchronized set: iterating one while another thread adds raises too.
SET_FACTORIES = frozenset({"set", "weakref.WeakSet"})
# Bases that make a project class a mapping (or set) with the same hazards as dict.
MAP_BASES = DICT_FACTORIES | SET_FACTORIES | frozenset(
    {"collections.abc.MutableMapping", "typing.MutableMapping", "collections.abc.MutableSet", "typing.MutableSet"}
)
# Constructors of lock-like objects: `with x:` or x.acquire() protects.
LOCK_FACTORIES = frozenset(
    {
        "threading.Lock",
        "threading.RLock",
        "threading.Condition",
        "threading.Semaphore",
        "threading.BoundedSemaphore",
        "_thread.allocate_lock",
        "_thread.RLock",
        "mapsafe.RWLock",
        "mapsafe.rwlock.RWLock",
    }
)
# "lock", "_lock", "cache_lock", "rlock", "mutex", "mtx", "_mx", "_state_mutex", "writeLock", "lock2", "mxDB".
_LOCK_WORD = re.compile(r"(?:^|_)(?:r?lock|mutex|mtx|mx)s?\d*(?:$|_)", re.IGNORECASE)
_LOCK_CALL = re.compile(r"(?:^|_)(?:r?lock(?:ed|ing)?|mutex)(?:$|_)", re.IGNORECASE)
_LOCK_CAMEL = re.compile(r"^(?:r?lock|mutex|mx)[A-Z0-9]|(?:Lock|Mutex)\d*$")  # case matters: not "block"


def chain_name(node: ast.AST) -> str | None:
    """'a.b.c' for a chain of names and attributes, with simple subscripts as 'a[k]'; else None."""
    parts: list[str] = []
    while True:
        kind = type(node)
        if kind is ast.Attribute:
            parts.append("." + node.attr)
            node = node.value
        elif kind is ast.Name:
            parts.append(node.id)
            break
        elif kind is ast.Subscript:
            index = node.slice
            if type(index) is ast.Constant:
                parts.append(f"[{index.value!r}]")
            elif type(index) is ast.Name:
                parts.append(f"[{index.id}]")
            else:
                return None
            node = node.value
        else:
            return None
    return "".join(reversed(parts))


def is_lock_name(name: str) -> bool:
    """Does an identifier say it is a lock or mutex (but not 'block' or 'clock')?"""
    return bool(_LOCK_WORD.search(name) or _LOCK_CAMEL.search(name))


class Binding:
    """One way a name gets a value in a scope: 'assign' (value node), 'with' (context expr),
    'import' (dotted name), 'def', 'class', 'param', 'for' (the loop's iterable) or 'other'."""

    __slots__ = ("kind", "value")

    def __init__(self, kind: str, value: object = None) -> None:
        self.kind = kind
        self.value = value


class ClassInfo:
    """A class statement: its methods, bases and the values assigned to its attributes."""

    __slots__ = ("name", "node", "scope", "bases", "methods", "attrs", "instance_attrs", "index")

    def __init__(self, name: str, node: ast.ClassDef, scope: "Scope", index: "Index") -> None:
        self.name = name
        self.node = node
        self.scope = scope
        self.index = index  # the module that defines it
        self.bases: list[ast.expr] = list(node.bases)
        self.methods: dict[str, Scope] = {}
        # attribute -> values assigned to it, in the class body or as self.<attr> = value
        self.attrs: dict[str, list[Binding]] = {}
        # attributes assigned through self (per instance, not per class)
        self.instance_attrs: set[str] = set()


class Scope:
    """A module, class, function or lambda body, with its bindings."""

    __slots__ = (
        "kind",
        "node",
        "name",
        "parent",
        "children",
        "bindings",
        "globals",
        "nonlocals",
        "cls",
        "owner",
        "self_name",
        "is_classmethod",
        "id",
    )

    def __init__(self, kind: str, node: ast.AST, name: str, parent: "Scope | None", ident: int) -> None:
        self.kind = kind  # "module", "class", "function" or "lambda"
        self.node = node
        self.name = name
        self.parent = parent
        self.children: list[Scope] = []
        self.bindings: dict[str, list[Binding]] = {}
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()
        self.cls: ClassInfo | None = None  # for a class scope: its ClassInfo
        self.owner: ClassInfo | None = None  # for a method: the class it is defined in
        self.self_name: str | None = None  # for a method: its first parameter
        self.is_classmethod = False
        self.id = ident

    @property
    def qualname(self) -> str:
        names = []
        scope: Scope | None = self
        while scope is not None and scope.kind != "module":
            names.append(scope.name)
            scope = scope.parent
        return ".".join(reversed(names)) or "<module>"

    @property
    def line(self) -> int:
        return getattr(self.node, "lineno", 1)

    def bind(self, name: str, kind: str, value: object = None) -> None:
        self.bindings.setdefault(name, []).append(Binding(kind, value))

    def body(self) -> list[ast.AST]:
        node = self.node
        if self.kind == "lambda":
            return [node.body]  # type: ignore[attr-defined]
        return node.body  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<Scope {self.kind} {self.qualname}>"


_THREADISH_ATTRS = frozenset(
    {"submit", "map", "add_done_callback", "run_in_executor", "to_thread", "apply_async", "imap",
     "imap_unordered", "starmap", "starmap_async", "map_async"}
)
_THREADISH_NAMES = frozenset({"Thread", "Timer", "to_thread", "ThreadPoolExecutor", "ThreadPool"})
_MUTATORS = frozenset({"pop", "popitem", "clear", "update", "setdefault"})


class Index:
    """Everything the rules need to know about one module, from one walk of its tree.

    Scope ids start at ``first_id``, so that the modules of one Program have
    distinct ids; ``name`` is the module's dotted name ("" when unknown), and
    ``program`` (set by Program) resolves imports into the other modules.
    """

    def __init__(self, tree: ast.Module, first_id: int = 0, name: str = "", is_package: bool = False) -> None:
        self.tree = tree
        self.first_id = first_id
        self.name = name
        self.is_package = is_package
        self.program = None  # a Program once one adopts this module; None for one file alone
        self._bindings_cache: dict[tuple[int, str], tuple] = {}  # bindings_of, filled once walked
        self._qualified_cache: dict[tuple[int, ast.AST], str | None] = {}  # (scope id, node) -> qualified
        self.module = Scope("module", tree, "<module>", None, first_id)
        self.scopes: list[Scope] = [self.module]
        self.classes: list[ClassInfo] = []
        self.scope_of: dict[ast.AST, Scope] = {tree: self.module}  # def/lambda/class node -> scope
        self.for_loops: list[tuple[ast.For | ast.AsyncFor, Scope]] = []
        # does the module mention anything that could start a thread? (cheap bail-out for MS2xx)
        self.maybe_threads = False
        self._walk_body(tree.body, self.module)
        self._bindings_cache.clear()  # anything looked up while the walk was still binding names
        self._qualified_cache.clear()

    # -- the walk -------------------------------------------------------------

    def _new_scope(self, kind: str, node: ast.AST, name: str, parent: Scope) -> Scope:
        scope = Scope(kind, node, name, parent, self.first_id + len(self.scopes))
        self.scopes.append(scope)
        parent.children.append(scope)
        self.scope_of[node] = scope
        return scope

    def _walk_body(self, body: list[ast.stmt], scope: Scope) -> None:
        for stmt in body:
            self._stmt(stmt, scope)

    def _stmt(self, node: ast.stmt, scope: Scope) -> None:
        kind = type(node)
        if kind is ast.FunctionDef or kind is ast.AsyncFunctionDef:
            self._function(node, scope)
        elif kind is ast.ClassDef:
            self._class(node, scope)
        elif kind is ast.Assign:
            self._expr(node.value, scope)
            for target in node.targets:
                self._target(target, scope, node.value)
        elif kind is ast.AnnAssign:
            if node.value is not None:
                self._expr(node.value, scope)
                self._target(node.target, scope, node.value)
            elif type(node.target) is not ast.Name:
                self._expr(node.target, scope)
        elif kind is ast.AugAssign:
            self._expr(node.value, scope)
            self._target(node.target, scope, None)
        elif kind is ast.For or kind is ast.AsyncFor:
            self.for_loops.append((node, scope))
            self._expr(node.iter, scope)
            if type(node.target) is ast.Name:
                scope.bind(node.target.id, "for", node.iter)  # an item of the iterable
            else:
                self._target(node.target, scope, None)
            self._walk_body(node.body, scope)
            self._walk_body(node.orelse, scope)
        elif kind is ast.With or kind is ast.AsyncWith:
            for item in node.items:
                self._expr(item.context_expr, scope)
                if item.optional_vars is not None:
                    if type(item.optional_vars) is ast.Name:
                        scope.bind(item.optional_vars.id, "with", item.context_expr)
                    else:
                        self._target(item.optional_vars, scope, None)
            self._walk_body(node.body, scope)
        elif kind is ast.Import:
            for alias in node.names:
                if alias.asname:
                    scope.bind(alias.asname, "import", alias.name)
                else:
                    top = alias.name.split(".", 1)[0]
                    scope.bind(top, "import", top)
        elif kind is ast.ImportFrom:
            base = "." * node.level + (node.module or "")
            for alias in node.names:
                if alias.name != "*":
                    sep = "" if base.endswith(".") or not base else "."
                    scope.bind(alias.asname or alias.name, "import", f"{base}{sep}{alias.name}")
        elif kind is ast.Global:
            scope.globals.update(node.names)
        elif kind is ast.Nonlocal:
            scope.nonlocals.update(node.names)
        elif kind is ast.Try or (hasattr(ast, "TryStar") and kind is getattr(ast, "TryStar")):
            self._walk_body(node.body, scope)
            for handler in node.handlers:
                if handler.type is not None:
                    self._expr(handler.type, scope)
                if handler.name:
                    scope.bind(handler.name, "other")
                self._walk_body(handler.body, scope)
            self._walk_body(node.orelse, scope)
            self._walk_body(node.finalbody, scope)
        else:
            # If, While, Expr, Return, Raise, Assert, Delete, Match, ...: expressions and bodies
            for field in node._fields:
                value = getattr(node, field, None)
                if type(value) is list:
                    for item in value:
                        if isinstance(item, ast.stmt):
                            self._stmt(item, scope)
                        elif isinstance(item, ast.AST):
                            self._expr(item, scope)
                elif isinstance(value, ast.AST):
                    self._expr(value, scope)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: Scope) -> None:
        for decorator in node.decorator_list:
            self._expr(decorator, scope)
        self._arguments(node.args, scope)
        if node.returns is not None:
            self._expr(node.returns, scope)
        inner = self._new_scope("function", node, node.name, scope)
        scope.bind(node.name, "def", inner)
        if scope.kind == "class" and scope.cls is not None:
            info = scope.cls
            inner.owner = info
            info.methods.setdefault(node.name, inner)
            decorators = {d.id for d in node.decorator_list if type(d) is ast.Name}
            positional = node.args.posonlyargs + node.args.args
            if "staticmethod" not in decorators and positional:
                inner.self_name = positional[0].arg
                inner.is_classmethod = "classmethod" in decorators
        self._params(node.args, inner)
        self._walk_body(node.body, inner)

    def _arguments(self, args: ast.arguments, scope: Scope) -> None:
        for default in args.defaults:
            self._expr(default, scope)
        for default in args.kw_defaults:
            if default is not None:
                self._expr(default, scope)

    def _params(self, args: ast.arguments, inner: Scope) -> None:
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs):
            inner.bind(arg.arg, "param", arg.annotation)
        if args.vararg is not None:
            inner.bind(args.vararg.arg, "other")
        if args.kwarg is not None:
            inner.bind(args.kwarg.arg, "other")

    def _class(self, node: ast.ClassDef, scope: Scope) -> None:
        for decorator in node.decorator_list:
            self._expr(decorator, scope)
        for base in node.bases:
            self._expr(base, scope)
            if (type(base) is ast.Name and base.id.endswith("Thread")) or (
                type(base) is ast.Attribute and base.attr.endswith("Thread")
            ):
                self.maybe_threads = True
        inner = self._new_scope("class", node, node.name, scope)
        info = ClassInfo(node.name, node, inner, self)
        inner.cls = info
        self.classes.append(info)
        scope.bind(node.name, "class", info)
        self._walk_body(node.body, inner)
        for name, bindings in inner.bindings.items():
            if name not in info.methods:
                info.attrs.setdefault(name, []).extend(bindings)

    def _target(self, target: ast.expr, scope: Scope, value: ast.expr | None) -> None:
        kind = type(target)
        if kind is ast.Name:
            scope.bind(target.id, "assign" if value is not None else "other", value)
        elif kind is ast.Tuple or kind is ast.List:
            values = value.elts if type(value) in (ast.Tuple, ast.List) else None
            if values is not None and len(values) == len(target.elts) and not any(
                    type(v) is ast.Starred for v in values):
                for element, item in zip(target.elts, values):  # a, b = {}, {}
                    self._target(element, scope, item)
            else:
                for element in target.elts:
                    self._target(element, scope, None)
        elif kind is ast.Starred:
            self._target(target.value, scope, None)
        elif kind is ast.Attribute:
            self._expr(target.value, scope)
            base = target.value
            if type(base) is ast.Name:
                method = self._method_for_self(scope, base.id)
                if method is not None and method.owner is not None:
                    info = method.owner
                    info.attrs.setdefault(target.attr, []).append(
                        Binding("assign" if value is not None else "other", value)
                    )
                    if not method.is_classmethod:
                        info.instance_attrs.add(target.attr)
        else:
            self._expr(target, scope)

    @staticmethod
    def _method_for_self(scope: Scope, name: str) -> Scope | None:
        """The method whose first parameter ``name`` is, seen from ``scope`` (closures included)."""
        current: Scope | None = scope
        while current is not None and current.kind in ("function", "lambda"):
            if name in current.bindings and current.self_name != name:
                return None  # shadowed by a local of a nested function
            if current.self_name == name:
                return current
            current = current.parent
        return None

    def _expr(self, node: ast.AST, scope: Scope) -> None:
        # Iterative: expressions can nest deeply, and only a few node types matter here.
        stack = [node]
        pop = stack.pop
        push = stack.extend
        while stack:
            node = pop()
            kind = type(node)
            if kind is ast.Lambda:
                self._arguments(node.args, scope)
                inner = self._new_scope("lambda", node, "<lambda>", scope)
                self._params(node.args, inner)
                self._expr(node.body, inner)
                continue
            if kind is ast.NamedExpr:
                target_scope = scope
                if target_scope.kind == "class":
                    target_scope = scope  # (a walrus in a class body is an error anyway)
                target_scope.bind(node.target.id, "assign", node.value)
                stack.append(node.value)
                continue
            if kind is ast.Call:
                func = node.func
                if type(func) is ast.Attribute:
                    if func.attr in _THREADISH_ATTRS or func.attr in _THREADISH_NAMES:
                        self.maybe_threads = True
                elif type(func) is ast.Name and func.id in _THREADISH_NAMES:
                    self.maybe_threads = True
            push(ast.iter_child_nodes(node))

    # -- queries ----------------------------------------------------------------

    def lookup(self, scope: Scope, name: str) -> Scope | None:
        """The scope that binds ``name`` as seen from ``scope`` (Python's LEGB rule), or None."""
        current: Scope | None = scope
        first = True
        while current is not None:
            if current.kind == "module":
                return current if name in current.bindings else None
            if name in current.globals:
                return self.module
            if first or current.kind != "class":
                if name in current.bindings and name not in current.nonlocals:
                    return current
            first = False
            current = current.parent
        return None

    def bindings_of(self, scope: Scope, name: str) -> tuple[Scope | None, list[Binding]]:
        """(the scope that binds ``name`` seen from ``scope``, its bindings); callers must not
        change the list: it is cached (the index does not change once built)."""
        cache = self._bindings_cache
        key = (scope.id, name)
        hit = cache.get(key)
        if hit is not None:
            return hit
        owner = self.lookup(scope, name)
        if owner is None:
            result: tuple[Scope | None, list[Binding]] = (None, [])
        else:
            found = list(owner.bindings.get(name, ()))
            if owner is self.module:
                # `global name` in functions adds module-level bindings too
                for other in self._declaring_global().get(name, ()):
                    found.extend(other.bindings.get(name, ()))
            result = (owner, found)
        cache[key] = result
        return result

    def _declaring_global(self) -> dict[str, list[Scope]]:
        """name -> the scopes (not the module) that declare ``global name``; built once."""
        table = self.__dict__.get("_globals_table")
        if table is None:
            table = {}
            for other in self.scopes:
                if other is not self.module:
                    for name in other.globals:
                        table.setdefault(name, []).append(other)
            self._globals_table = table
        return table

    def qualified(self, node: ast.AST, scope: Scope) -> str | None:
        """'threading.Thread' for Thread, threading.Thread or an alias of it; builtins as themselves."""
        key = (scope.id, node)  # the node itself, not id(): a parsed string annotation is short-lived
        cache = self._qualified_cache
        if key in cache:
            return cache[key]
        result = cache[key] = self._qualified(node, scope)
        return result

    def _qualified(self, node: ast.AST, scope: Scope) -> str | None:
        parts: list[str] = []
        while type(node) is ast.Attribute:
            parts.append(node.attr)
            node = node.value
        if type(node) is not ast.Name:
            return None
        owner, bindings = self.bindings_of(scope, node.id)
        if owner is None:
            head = node.id  # a builtin, or a name from a star import
        else:
            imports = {str(b.value) for b in bindings if b.kind == "import"}
            # `import pkg.a` and `import pkg.b` both bind pkg to the package: one meaning
            if len(imports) != 1 or not all(b.kind == "import" for b in bindings):
                return None
            head = self.absolute(imports.pop())
        parts.append(head)
        return ".".join(reversed(parts))

    def absolute(self, name: str) -> str:
        """A relative import's target ('.mod.f', '..pkg.f') as a dotted name from the root."""
        level = len(name) - len(name.lstrip("."))
        if level == 0:
            return name
        package = self.name.split(".") if self.name else []
        if not self.is_package:
            package = package[:-1]
        if level > 1:
            package = package[: max(len(package) - (level - 1), 0)]
        rest = name[level:]
        return ".".join([*package, rest] if rest else package)

    def resolve(self, node: ast.AST, scope: Scope) -> object | None:
        """What a name or dotted chain denotes in the whole program: a Scope (a def), a
        ClassInfo, an Index (a module) or a Binding (a module global); None if unknown."""
        if self.program is None:
            return None
        dotted = self.qualified(node, scope)
        if dotted is None:
            return None
        return self.program.resolve(dotted)

    def class_named(self, name: str) -> ClassInfo | None:
        for info in self.classes:
            if info.name == name:
                return info
        return None

    def resolve_class(self, node: ast.AST, scope: Scope) -> ClassInfo | None:
        if type(node) is ast.Name:
            _, bindings = self.bindings_of(scope, node.id)
            if len(bindings) == 1 and bindings[0].kind == "class":
                return bindings[0].value  # type: ignore[return-value]
        if type(node) in (ast.Name, ast.Attribute):
            found = self.resolve(node, scope)  # imported from another linted module
            if isinstance(found, ClassInfo):
                return found
        return None

    def mro(self, info: ClassInfo) -> Iterator[ClassInfo]:
        """The class and its bases known to the program (this module's, and imported ones), each once."""
        seen: set[int] = set()
        todo = [info]
        while todo:
            current = todo.pop(0)
            if id(current) in seen:
                continue
            seen.add(id(current))
            yield current
            home = current.index
            for base in current.bases:
                found = home.resolve_class(base, current.scope.parent or home.module)
                if found is not None:
                    todo.append(found)

    def external_bases(self, info: ClassInfo) -> set[str]:
        """Dotted names of the bases, along the known MRO, defined outside the program ('threading.Thread')."""
        out: set[str] = set()
        for cls in self.mro(info):
            home = cls.index
            for base in cls.bases:
                if home.resolve_class(base, cls.scope.parent or home.module) is None:
                    name = home.qualified(base, cls.scope.parent or home.module)
                    if name is not None:
                        out.add(name)
        return out

    def method(self, info: ClassInfo, name: str) -> Scope | None:
        for cls in self.mro(info):
            if name in cls.methods:
                return cls.methods[name]
        return None

    def self_class(self, scope: Scope, name: str) -> tuple[ClassInfo, bool] | None:
        """(class, is_class_object) when ``name`` in ``scope`` is a method's self or cls."""
        method = self._method_for_self(scope, name)
        if method is None or method.owner is None:
            return None
        return method.owner, method.is_classmethod

    def is_dict_value(self, node: object, scope: Scope) -> bool:
        """Is ``node`` a fresh unsynchronized map or set: a literal, a comprehension, a
        factory call, or a call of a project class deriving from one?"""
        kind = type(node)
        if kind in (ast.Dict, ast.DictComp, ast.Set, ast.SetComp):
            return True
        if kind is ast.Call:
            func = node.func  # type: ignore[attr-defined]
            name = self.qualified(func, scope)
            if name in DICT_FACTORIES or name in SET_FACTORIES:
                return True
            info = self.resolve_class(func, scope)
            if info is not None:
                return bool(self.external_bases(info) & MAP_BASES)
            return self._returns_dicts(func, scope)
        return False

    def _returns_dicts(self, func: ast.AST, scope: Scope) -> bool:
        """A call of a function or method whose every ``return`` gives a fresh map (a factory)."""
        fn = None
        if type(func) is ast.Name:
            bindings = self.bindings_of(scope, func.id)[1]
            defs = [b.value for b in bindings if b.kind == "def"]
            fn = defs[0] if len(defs) == len(bindings) == 1 else None
        elif type(func) is ast.Attribute and type(func.value) is ast.Name:
            found = self.self_class(scope, func.value.id)
            if found is None and scope.kind == "class" and func.value.id == "self" and scope.cls is not None:
                found = (scope.cls, False)  # an attribute's value, stored by one of the class's methods
            fn = self.method(found[0], func.attr) if found is not None else None
        if fn is None or fn.kind != "function" or getattr(self, "_in_factory", None) is fn:
            return False
        home = fn.owner.index if fn.owner is not None else self
        returns = [n for n in ast.walk(fn.node) if type(n) is ast.Return]
        if not returns or any(r.value is None for r in returns):
            return False
        home._in_factory = fn  # a recursive factory is not a dict factory
        try:
            return all(home.is_dict_value(r.value, fn) for r in returns)
        finally:
            home._in_factory = None

    def all_dict(self, bindings: list[Binding], scope: Scope) -> bool:
        """Is every binding an assignment of a fresh plain dict?"""
        if not bindings:
            return False
        for binding in bindings:
            if binding.kind != "assign" or not self.is_dict_value(binding.value, scope):
                return False
        return True

    def is_lock_expr(self, node: ast.AST, scope: Scope) -> bool:
        """Is ``node`` a lock-like object: made by a lock constructor, or named like a lock?"""
        kind = type(node)
        if kind is ast.Call:
            func = node.func  # lock.acquire_timeout(), rw.read(), rw.write()
            if type(func) is ast.Attribute and self.is_lock_expr(func.value, scope):
                return True
            # helpers that take a lock: `with self._locked():`, `with lock_for(key):`
            name = func.attr if type(func) is ast.Attribute else getattr(func, "id", "")
            return bool(_LOCK_CALL.search(name))
        if kind is ast.Name:
            if is_lock_name(node.id):
                return True
            _, bindings = self.bindings_of(scope, node.id)
            return any(
                b.kind == "assign" and type(b.value) is ast.Call
                and self.qualified(b.value.func, scope) in LOCK_FACTORIES
                for b in bindings
            )
        if kind is ast.Attribute:
            if is_lock_name(node.attr):
                return True
            base = node.value
            if type(base) is ast.Name:
                owner = self.self_class(scope, base.id) or (
                    (self.resolve_class(base, scope), True) if self.resolve_class(base, scope) else None
                )
                if owner is not None:
                    for cls in self.mro(owner[0]):
                        for b in cls.attrs.get(node.attr, ()):
                            if b.kind == "assign" and type(b.value) is ast.Call and self.qualified(
                                b.value.func, cls.scope
                            ) in LOCK_FACTORIES:
                                return True
        return False
