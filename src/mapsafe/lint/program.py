"""The module graph: every linted file as one program, with imports resolved between them."""

from __future__ import annotations

import ast
import os
import sys
from typing import Iterable

from .scopes import Binding, ClassInfo, Index, Scope

__all__ = ["Program", "Global", "module_name_for"]

_MAX_HOPS = 32  # re-exports followed for one name; a cycle of imports ends here


class Global:
    """A module-level name of a linted module, bound by assignments (``CACHE = {}``)."""

    __slots__ = ("index", "name")

    def __init__(self, index: Index, name: str) -> None:
        self.index = index
        self.name = name

    @property
    def bindings(self) -> list[Binding]:
        return self.index.bindings_of(self.index.module, self.name)[1]


def module_name_for(path: str) -> tuple[str, bool]:
    """('pkg.sub.mod', is_package) for a file, from the folders above it that hold an ``__init__.py``."""
    path = os.path.abspath(path)
    folder, base = os.path.split(path)
    stem = base[:-3] if base.endswith(".py") else base
    is_package = stem == "__init__"
    parts = [] if is_package else [stem]
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        folder, name = os.path.split(folder)
        parts.append(name)
        if not name:
            break
    return ".".join(reversed(parts)), is_package


class Program:
    """Modules by dotted name, and the Index queries over all of them.

    The rules that follow threads ask their questions here: each query is
    answered by the module that holds the scope asked about, and names
    imported from another linted module resolve into it. Scope ids are
    distinct across modules, so ``scopes[i].id == i``.
    """

    def __init__(self, indexes: Iterable[Index] = (), target: tuple[int, int] | None = None) -> None:
        # the oldest Python the code runs on: what is one step there (list(d.items()) is not,
        # before 3.12, whose cyclic GC could run, and let other threads in, mid-copy)
        self.target = target or sys.version_info[:2]
        self.modules: dict[str, Index] = {}
        self.indexes: list[Index] = []
        self.scopes: list[Scope] = []
        self.classes: list[ClassInfo] = []
        self.scope_of: dict[ast.AST, Scope] = {}
        self.maybe_threads = False
        # (function scope id, parameter) -> [(argument, caller scope)] at the known call sites;
        # filled by the thread model's first walk, so that later queries can follow parameters
        self.call_args: dict[tuple[int, str], list[tuple[ast.expr, Scope]]] = {}
        self._home: dict[int, Index] = {}  # module scope id -> its Index
        self._returns: dict[int, list[ast.Return]] = {}  # function scope id -> its own returns
        # answers that depend on call_args (class_of, callables): cleared whenever call_args changes
        self.memo: dict[tuple, object] = {}
        # ("attr" | "method", name) -> the classes that bind self.<name> / define the method, and
        # the one class hierarchy among them (None: several, or none)
        self._by_member: dict[tuple[str, str], list[ClassInfo]] | None = None
        self._only: dict[tuple[str, str], ClassInfo | None] = {}
        for index in indexes:
            self.add(index)

    @property
    def next_id(self) -> int:
        """The first scope id of the next module added."""
        return len(self.scopes)

    def add(self, index: Index) -> None:
        if index.first_id != len(self.scopes):
            raise ValueError(f"module {index.name!r} starts at scope id {index.first_id}, expected {len(self.scopes)}")
        index.program = self
        # identity in map and lock keys: two files may share a module name (two conftest.py)
        index.uid = f"{index.name}#{index.module.id}"
        self.indexes.append(index)
        if index.name:
            self.modules.setdefault(index.name, index)
        self.scopes.extend(index.scopes)
        self.classes.extend(index.classes)
        self.scope_of.update(index.scope_of)
        self.maybe_threads = self.maybe_threads or index.maybe_threads
        self._home[index.module.id] = index

    # -- the module graph -------------------------------------------------------

    def index_of(self, scope: Scope) -> Index:
        """The module a scope belongs to."""
        while scope.parent is not None:
            scope = scope.parent
        return self._home[scope.id]

    def resolve(self, dotted: str, hops: int = 0) -> object | None:
        """What 'pkg.mod.name.attr' denotes: an Index, a Scope (def or method), a ClassInfo,
        or a Global; through re-exports (``from .impl import f`` in ``__init__``) and aliases."""
        if hops > _MAX_HOPS or not dotted:
            return None
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            index = self.modules.get(".".join(parts[:cut]))
            if index is None:
                continue
            if cut == len(parts) and cut > 1:
                # 'util.spawn' names a submodule, unless util's own namespace rebinds spawn
                # (`from .spawn import spawn` in its __init__): then it is that binding.
                parent = self.modules.get(".".join(parts[:-1]))
                if parent is not None:
                    bindings = parent.bindings_of(parent.module, parts[-1])[1]
                    if bindings and not all(b.kind == "import" and parent.absolute(str(b.value)) == dotted
                                            for b in bindings):
                        return self._member(parent, parts[-1:], hops)
            return self._member(index, parts[cut:], hops)
        return None

    def _member(self, obj: object, names: list[str], hops: int) -> object | None:
        for i, name in enumerate(names):
            if isinstance(obj, Index):
                bindings = obj.bindings_of(obj.module, name)[1]
                if not bindings:
                    obj = self.modules.get(f"{obj.name}.{name}")  # a submodule not imported here
                    if obj is None:
                        return None
                    continue
                kinds = {b.kind for b in bindings}
                if len(kinds) != 1:
                    return None  # bound two ways: cannot tell which
                binding = bindings[-1]
                if binding.kind in ("def", "class"):
                    obj = binding.value
                elif binding.kind == "import":
                    target = obj.absolute(str(binding.value))
                    return self.resolve(".".join([target, *names[i + 1:]]), hops + 1)
                elif binding.kind == "assign" and i == len(names) - 1:
                    return Global(obj, name)
                else:
                    return None
            elif isinstance(obj, ClassInfo):
                method = obj.index.method(obj, name)
                if method is None:
                    return None
                obj = method
            else:
                return None
        return obj

    def only_class_binding(self, attr: str) -> ClassInfo | None:
        """The one class of the program that binds ``self.<attr>``, when exactly one does
        (subclasses that bind it again count as that class's), else None."""
        return self._only_class("attr", attr)

    def only_method(self, name: str) -> Scope | None:
        """The method ``name`` of the one class of the program that defines it, when exactly one
        does (a subclass's override counts as its base's), else None."""
        info = self._only_class("method", name)
        return info.methods[name] if info is not None else None

    def _only_class(self, kind: str, name: str) -> ClassInfo | None:
        if self._by_member is None:
            self._by_member = {}
            for info in self.classes:
                for attr in info.instance_attrs:
                    self._by_member.setdefault(("attr", attr), []).append(info)
                for method in info.methods:
                    self._by_member.setdefault(("method", method), []).append(info)
        key = (kind, name)
        if key not in self._only:
            found = self._by_member.get(key, [])
            ids = {id(info) for info in found}
            roots = [info for info in found
                     if not any(base is not info and id(base) in ids for base in self.mro(info))]
            self._only[key] = roots[0] if len(roots) == 1 else None
        return self._only[key]

    def returns(self, fn: Scope) -> list[ast.Return]:
        """The ``return`` statements of a function's own code (not of functions nested in it)."""
        found = self._returns.get(fn.id)
        if found is None:
            found = []
            todo = list(fn.body()) if fn.kind == "function" else []
            while todo:
                node = todo.pop()
                if type(node) is ast.Return:
                    found.append(node)
                elif type(node) not in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda):
                    todo.extend(ast.iter_child_nodes(node))
            self._returns[fn.id] = found
        return found

    # -- Index queries, answered by the scope's own module -------------------------

    def bindings_of(self, scope: Scope, name: str) -> tuple[Scope | None, list[Binding]]:
        return self.index_of(scope).bindings_of(scope, name)

    def qualified(self, node: ast.AST, scope: Scope) -> str | None:
        return self.index_of(scope).qualified(node, scope)

    def resolve_node(self, node: ast.AST, scope: Scope) -> object | None:
        return self.index_of(scope).resolve(node, scope)

    def resolve_class(self, node: ast.AST, scope: Scope) -> ClassInfo | None:
        return self.index_of(scope).resolve_class(node, scope)

    def mro(self, info: ClassInfo):
        return info.index.mro(info)

    def method(self, info: ClassInfo, name: str) -> Scope | None:
        return info.index.method(info, name)

    def external_bases(self, info: ClassInfo) -> set[str]:
        return info.index.external_bases(info)

    def self_class(self, scope: Scope, name: str) -> tuple[ClassInfo, bool] | None:
        return self.index_of(scope).self_class(scope, name)

    def is_dict_value(self, node: object, scope: Scope) -> bool:
        return self.index_of(scope).is_dict_value(node, scope)

    def all_dict(self, bindings: list[Binding], scope: Scope) -> bool:
        return self.index_of(scope).all_dict(bindings, scope)

    def is_lock_expr(self, node: ast.AST, scope: Scope) -> bool:
        return self.index_of(scope).is_lock_expr(node, scope)
