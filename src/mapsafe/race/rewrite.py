"""AST instrumentation of dict accesses, and the import hook that applies it."""

from __future__ import annotations

import _thread
import ast
import fnmatch
import importlib.abc
import importlib.machinery
import os
import sys
import sysconfig
from typing import Any, Iterable

from .helpers import HELPERS

__all__ = ["rewrite", "compile_instrumented", "RaceImportHook", "OPT_OUT"]

# A module containing this marker is never instrumented.
OPT_OUT = b"mapsafe: no-race"

# Methods routed through the `call` helper: dict methods, and the methods of
# the synchronization objects that are modelled at the call site.
_METHODS = frozenset(
    (
        "get", "pop", "popitem", "setdefault", "update", "keys", "values", "items", "copy", "clear",
        "acquire", "release", "wait", "wait_for", "put", "put_nowait", "get_nowait",
    )
)
# Builtins that read a whole dict passed as their first argument.
_WHOLE_FUNCS = frozenset(
    (
        "len", "list", "sorted", "set", "frozenset", "tuple", "sum", "min", "max", "any", "all",
        "iter", "enumerate", "dict", "repr", "str", "dumps",
    )
)
_INPLACE = {
    ast.Add: "@ms_iadd", ast.Sub: "@ms_isub", ast.Mult: "@ms_imul", ast.MatMult: "@ms_imatmul",
    ast.Div: "@ms_itruediv", ast.FloorDiv: "@ms_ifloordiv", ast.Mod: "@ms_imod", ast.Pow: "@ms_ipow",
    ast.LShift: "@ms_ilshift", ast.RShift: "@ms_irshift", ast.BitOr: "@ms_ior", ast.BitXor: "@ms_ixor",
    ast.BitAnd: "@ms_iand",
}
# Literal containers are never dicts-being-iterated; skip wrapping them.
_LITERALS = (ast.Constant, ast.Tuple, ast.List, ast.Set, ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.JoinedStr)


def _name(ident: str) -> ast.Name:
    return ast.Name(id=ident, ctx=ast.Load())


def _call(helper: str, args: list, keywords: list | None = None, like: ast.AST | None = None) -> ast.Call:
    node = ast.Call(func=_name(helper), args=args, keywords=keywords or [])
    return ast.copy_location(node, like) if like is not None else node


def _plain_subscript(node: ast.AST) -> bool:
    return isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Slice)


class _Rewriter(ast.NodeTransformer):
    """Turns dict-touching expressions into calls of the runtime helpers.

    Every helper takes its operands in Python's own evaluation order and
    performs the original operation, so semantics and exceptions are kept;
    new nodes copy the location of the node they replace, so tracebacks
    point at the user's lines. Class bodies are left alone (their methods
    are rewritten); annotations are never touched.
    """

    # -- scopes and annotations ------------------------------------------

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.body = [
            self.visit(stmt) if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else stmt
            for stmt in node.body
        ]
        return node

    def _visit_function(self, node: Any) -> ast.AST:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        args = node.args
        args.defaults = [self.visit(d) for d in args.defaults]
        args.kw_defaults = [self.visit(d) if d is not None else None for d in args.kw_defaults]
        node.body = self._visit_body(node.body)
        return node

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        args = node.args
        args.defaults = [self.visit(d) for d in args.defaults]
        args.kw_defaults = [self.visit(d) if d is not None else None for d in args.kw_defaults]
        node.body = self.visit(node.body)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def _visit_body(self, body: list) -> list:
        out: list = []
        for stmt in body:
            new = self.visit(stmt)
            if isinstance(new, list):
                out.extend(new)
            elif new is not None:
                out.append(new)
        return out

    # -- statements ------------------------------------------------------

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        if len(node.targets) == 1 and _plain_subscript(node.targets[0]):
            target = node.targets[0]
            call = _call(
                "@ms_setitem",
                [self.visit(node.value), self.visit(target.value), self.visit(target.slice)],
                like=node,
            )
            return ast.copy_location(ast.Expr(value=call), node)
        return self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        if not _plain_subscript(node.target):
            return self.generic_visit(node)
        # d[k] op= v  ->  setitem(iop(getitem(@a := d, @b := k), v), @a, @b):
        # d, k, the read, v, the in-place op, the write: Python's own order.
        target = node.target
        a = ast.Name(id="@ms_a", ctx=ast.Store())
        b = ast.Name(id="@ms_b", ctx=ast.Store())
        read = _call(
            "@ms_getitem",
            [
                ast.copy_location(ast.NamedExpr(target=a, value=self.visit(target.value)), target.value),
                ast.copy_location(ast.NamedExpr(target=b, value=self.visit(target.slice)), target.slice),
            ],
            like=target,
        )
        value = _call(_INPLACE[type(node.op)], [read, self.visit(node.value)], like=node)
        call = _call("@ms_setitem", [value, _name("@ms_a"), _name("@ms_b")], like=node)
        return ast.copy_location(ast.Expr(value=call), node)

    def visit_Delete(self, node: ast.Delete) -> Any:
        if not any(_plain_subscript(t) for t in node.targets):
            return self.generic_visit(node)
        # `del a, d[k]` deletes left to right; one statement per target keeps that.
        out = []
        for target in node.targets:
            if _plain_subscript(target):
                call = _call("@ms_delitem", [self.visit(target.value), self.visit(target.slice)], like=target)
                out.append(ast.copy_location(ast.Expr(value=call), node))
            else:
                out.append(ast.copy_location(ast.Delete(targets=[self.visit(target)]), node))
        return out

    def _visit_loop(self, node: Any) -> ast.AST:
        node = self.generic_visit(node)
        if not isinstance(node.iter, _LITERALS):
            node.iter = _call("@ms_iter", [node.iter], like=node.iter)
        return node

    visit_For = _visit_loop

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        node = self.generic_visit(node)
        if not node.is_async and not isinstance(node.iter, _LITERALS):
            node.iter = _call("@ms_iter", [node.iter], like=node.iter)
        return node

    def visit_With(self, node: ast.With) -> ast.AST:
        node = self.generic_visit(node)
        for item in node.items:
            if not isinstance(item.context_expr, ast.Call):
                item.context_expr = _call("@ms_with", [item.context_expr], like=item.context_expr)
        return node

    # -- expressions -----------------------------------------------------

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and _plain_subscript(node):
            return _call("@ms_getitem", [self.visit(node.value), self.visit(node.slice)], like=node)
        return self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        node = self.generic_visit(node)
        if len(node.ops) != 1:
            return node
        op, left, right = node.ops[0], node.left, node.comparators[0]
        if isinstance(op, (ast.In, ast.NotIn)) and not isinstance(right, _LITERALS):
            call = _call("@ms_contains", [left, right], like=node)
            if isinstance(op, ast.NotIn):
                return ast.copy_location(ast.UnaryOp(op=ast.Not(), operand=call), node)
            return call
        if isinstance(op, (ast.Eq, ast.NotEq)) and not isinstance(left, ast.Constant) and not isinstance(
            right, ast.Constant
        ):
            return _call("@ms_eq" if isinstance(op, ast.Eq) else "@ms_ne", [left, right], like=node)
        return node

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        return _call("@ms_new", [self.generic_visit(node)], like=node)

    def visit_DictComp(self, node: ast.DictComp) -> ast.AST:
        return _call("@ms_new", [self.generic_visit(node)], like=node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        node = self.generic_visit(node)
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "get"
            and not node.keywords
            and 1 <= len(node.args) <= 2
            and not any(isinstance(a, ast.Starred) for a in node.args)
        ):
            return _call("@ms_get", [func.value] + node.args, like=node)
        if isinstance(func, ast.Attribute) and func.attr in _METHODS:
            args = [func.value, ast.copy_location(ast.Constant(func.attr), func)] + node.args
            return _call("@ms_call", args, node.keywords, like=node)
        whole = (isinstance(func, ast.Name) and func.id in _WHOLE_FUNCS) or (
            isinstance(func, ast.Attribute)
            and func.attr == "dumps"
            and isinstance(func.value, ast.Name)
            and func.value.id == "json"
        )
        if whole and (
            (node.args and not isinstance(node.args[0], ast.Starred))
            or (isinstance(func, ast.Name) and func.id == "dict")
        ):
            if len(node.args) == 1 and not node.keywords:
                return _call("@ms_wcall1", [func] + node.args, like=node)
            return _call("@ms_wcall", [func] + node.args, node.keywords, like=node)
        return node


def rewrite(tree: ast.Module) -> ast.Module:
    """Instrument ``tree`` in place and return it."""
    tree = _Rewriter().visit(tree)
    _fix_locations(tree, 1, 0, 1, 0)
    return tree


def _fix_locations(node: ast.AST, lineno: int, col: int, end_lineno: int, end_col: int) -> None:
    """Like ast.fix_missing_locations, but a node with a start and no end ends
    where it starts. (pytest's assertion rewriting adds imports with a line
    and no end; taking the parent module's end, line 1, made the range
    invalid and compile() refused the module.)"""
    if "lineno" in node._attributes:
        if getattr(node, "lineno", None) is None:
            node.lineno, node.col_offset = lineno, col
            if getattr(node, "end_lineno", None) is None:
                node.end_lineno, node.end_col_offset = end_lineno, end_col
        elif getattr(node, "end_lineno", None) is None:
            node.end_lineno, node.end_col_offset = node.lineno, node.col_offset
        lineno, col = node.lineno, node.col_offset
        end_lineno, end_col = node.end_lineno, node.end_col_offset
    for child in ast.iter_child_nodes(node):
        _fix_locations(child, lineno, col, end_lineno, end_col)


def compile_instrumented(source: bytes | str, filename: str) -> Any:
    """Parse, instrument and compile a module's source (SyntaxError as plain Python gives it)."""
    tree = compile(source, filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    if OPT_OUT in (source if isinstance(source, bytes) else source.encode("utf-8", "replace")):
        return compile(tree, filename, "exec", dont_inherit=True)
    return compile(rewrite(tree), filename, "exec", dont_inherit=True)


def _never_dirs() -> tuple:
    """Directories never instrumented: the standard library and mapsafe itself."""
    paths = sysconfig.get_paths()
    dirs = {paths.get("stdlib"), paths.get("platstdlib"), os.path.dirname(os.path.dirname(__file__))}
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs if d)


class RaceImportHook(importlib.abc.MetaPathFinder):
    """Finds modules in scope and loads them instrumented.

    The layered rules, first match wins: the standard library and mapsafe
    are never instrumented; a module named by ``include`` (a package name,
    or a path glob) is; a module under one of ``roots`` is, unless it lives
    in a site-packages or dist-packages directory; nothing else is.
    """

    def __init__(self, roots: Iterable[str], include: Iterable[str] = ()) -> None:
        self.roots = tuple(os.path.join(os.path.realpath(r), "") for r in roots)
        self.names = tuple(p for p in include if not any(c in p for c in "/*?[") and not p.endswith(".py"))
        self.globs = tuple(p for p in include if p not in self.names)
        self.never = _never_dirs()
        self._stdlib = frozenset(sys.stdlib_module_names) | {"mapsafe", "_pytest", "pytest", "pluggy"}
        # Threads currently inside find_spec (ident -> True), so asking
        # PathFinder does not re-enter us; per thread, as imports run in parallel.
        self._busy: dict = {}

    def wanted(self, name: str, origin: str) -> bool:
        real = os.path.realpath(origin)
        if real.startswith(self.never):
            return False
        if any(name == n or name.startswith(n + ".") for n in self.names):
            return True
        if any(fnmatch.fnmatch(origin, g) or fnmatch.fnmatch(real, g) for g in self.globs):
            return True
        if real.startswith(self.roots):
            parts = real.split(os.sep)
            return "site-packages" not in parts and "dist-packages" not in parts
        return False

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        ident = _thread.get_ident()
        if name.partition(".")[0] in self._stdlib or ident in self._busy:
            return None  # the cheap bail-out: most imports end here
        self._busy[ident] = True
        try:
            spec = importlib.machinery.PathFinder.find_spec(name, path)
        finally:
            del self._busy[ident]
        if (
            spec is None
            or not isinstance(spec.loader, importlib.machinery.SourceFileLoader)
            or not spec.origin
            or not spec.origin.endswith(".py")
            or not self.wanted(name, spec.origin)
        ):
            return None
        spec.loader = _InstrumentingLoader(name, spec.origin)
        return spec

    def install(self) -> None:
        sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


class _InstrumentingLoader(importlib.machinery.SourceFileLoader):
    """A source loader that instruments, and neither reads nor writes .pyc files."""

    # Set by the pytest plugin: a callable(tree, source, path) applying
    # pytest's assertion rewriting to test modules first.
    pre_rewrite = None

    def get_code(self, fullname: str) -> Any:
        source = self.get_data(self.path)
        # compile(), not ast.parse(): a SyntaxError then has no frame of ours or of ast.py.
        tree = compile(source, self.path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        if OPT_OUT in source:
            return compile(tree, self.path, "exec", dont_inherit=True)
        if _InstrumentingLoader.pre_rewrite is not None:
            _InstrumentingLoader.pre_rewrite(tree, source, self.path)
        return compile(rewrite(tree), self.path, "exec", dont_inherit=True)

    def exec_module(self, module: Any) -> None:
        module.__dict__.update(HELPERS)
        super().exec_module(module)
