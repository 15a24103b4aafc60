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

from .calls import mark_instrumented
from .helpers import HELPERS, NAMESPACE

__all__ = ["rewrite", "compile_instrumented", "RaceImportHook", "OPT_OUT"]

# A module containing this marker is never instrumented.
OPT_OUT = b"mapsafe: no-race"

# Methods routed through the `call` helper: map methods, and the methods of
# the synchronization objects that are modelled at the call site.
_METHODS = frozenset(
    (
        "get", "pop", "popitem", "setdefault", "update", "keys", "values", "items", "copy", "clear",
        "move_to_end", "most_common", "elements", "total", "subtract", "fromkeys",
        "add", "discard", "remove", "union", "intersection", "difference", "symmetric_difference",
        "issubset", "issuperset", "isdisjoint", "difference_update", "intersection_update",
        "symmetric_difference_update",
        "acquire", "release", "wait", "wait_for", "put", "put_nowait", "get_nowait",
    )
)
# Builtins called by name that never read a map given to them: their
# arguments are not routed through `@ms_arg`. (A user function shadowing one
# is instrumented code, which records its own accesses.)
_NO_READ_NAMES = frozenset(
    ("range", "int", "float", "bool", "complex", "isinstance", "issubclass", "id", "hash", "getattr", "setattr",
     "hasattr", "delattr", "callable", "type", "super", "chr", "ord", "abs", "round", "divmod", "pow", "bin",
     "hex", "oct", "open", "next", "object", "property", "staticmethod", "classmethod", "slice", "globals",
     "locals", "vars", "dir", "exec", "eval", "compile", "breakpoint", "input", "memoryview", "bytes")
)
# Builtins called by name that read what they are given and never look at
# their caller's frame: called from inside `@ms_wcall`, one helper per call.
_FRAMELESS_READERS = frozenset(
    ("len", "sorted", "list", "tuple", "set", "frozenset", "sum", "min", "max", "any", "all", "iter",
     "enumerate", "reversed", "zip", "map", "filter", "repr", "str", "dict", "format", "ascii")
)
# Method names that store an argument (in a list, a deque, a queue) without
# reading it: their arguments are not routed through `@ms_arg`.
_STORING_METHODS = frozenset(("append", "appendleft", "insert", "put_nowait"))
# Calls whose result is a new map: recorded as its creation site.
_MAKERS = frozenset(("dict", "defaultdict", "OrderedDict", "Counter", "set"))
# In-place operators on a name or attribute that may update a map in place
# (Counter +=, dict |=, set -=...): routed through `iop`.
_MAP_INPLACE = {ast.Add: "+=", ast.Sub: "-=", ast.BitOr: "|=", ast.BitAnd: "&=", ast.BitXor: "^="}
# Binary operators that read whole maps (dict |, set algebra, views).
_MAP_BINOPS = (ast.BitOr, ast.BitAnd, ast.Sub, ast.BitXor)
_INPLACE = {
    ast.Add: "@ms_iadd", ast.Sub: "@ms_isub", ast.Mult: "@ms_imul", ast.MatMult: "@ms_imatmul",
    ast.Div: "@ms_itruediv", ast.FloorDiv: "@ms_ifloordiv", ast.Mod: "@ms_imod", ast.Pow: "@ms_ipow",
    ast.LShift: "@ms_ilshift", ast.RShift: "@ms_irshift", ast.BitOr: "@ms_ior", ast.BitXor: "@ms_ixor",
    ast.BitAnd: "@ms_iand",
}
_OPSYM = {
    ast.Add: "+=", ast.Sub: "-=", ast.Mult: "*=", ast.MatMult: "@=", ast.Div: "/=", ast.FloorDiv: "//=",
    ast.Mod: "%=", ast.Pow: "**=", ast.LShift: "<<=", ast.RShift: ">>=", ast.BitOr: "|=", ast.BitXor: "^=",
    ast.BitAnd: "&=",
}
# Literal containers are never dicts-being-iterated; skip wrapping them.
_LITERALS = (ast.Constant, ast.Tuple, ast.List, ast.Set, ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.JoinedStr)
# Argument expressions that cannot evaluate to a map, or to a container of one.
_NOT_MAPS = (ast.Constant, ast.JoinedStr, ast.Lambda, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp,
             ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


def _name(ident: str) -> ast.Name:
    return ast.Name(id=ident, ctx=ast.Load())


def _call(helper: str, args: list, keywords: list | None = None, like: ast.AST | None = None) -> ast.Call:
    # "@ms_getitem" -> `<_@ms>.getitem`: one name is injected into a rewritten
    # module (helpers.HELPERS); it cannot be spelled by the program, and
    # starting with "_" it is not exported by `from m import *`.
    func = ast.Attribute(value=_name(NAMESPACE), attr=helper[len("@ms_"):], ctx=ast.Load()) \
        if helper.startswith("@ms_") else _name(helper)
    node = ast.Call(func=func, args=args, keywords=keywords or [])
    return ast.copy_location(node, like) if like is not None else node


def _plain_subscript(node: ast.AST) -> bool:
    return isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Slice)


class _Rewriter(ast.NodeTransformer):
    """Turns map-touching expressions into calls of the runtime helpers.

    Every helper takes its operands in Python's own evaluation order and
    performs the original operation, so semantics and exceptions are kept;
    new nodes copy the location of the node they replace, so tracebacks
    point at the user's lines. Annotations are never touched.

    User calls stay in the user's frame (``logging``, ``warnings``,
    ``super()``, ``eval`` and ``sys._getframe`` look at it): each argument
    that may be a map passes through ``@ms_arg(callee, arg)``, the callee
    named again without side effects (see ``_callee_ref``). Rewritten code
    binds no names of its own: ``locals()``, ``vars()`` and ``dir()`` show
    what they show under plain python.
    """

    # -- scopes and annotations ------------------------------------------

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.bases = [self.visit(b) for b in node.bases]
        node.keywords = [self.visit(k) for k in node.keywords]
        node.body = self._visit_body(node.body)
        _mark_finalizer(node)
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
            if _plain_subscript(node.target):  # `d[k]: int = v` stores like `d[k] = v`
                node.target = self._store_target(node.target)
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
            # Located at the target: an error there (an unhashable key) shows
            # the caret line plain python shows under `d[k]`.
            call = _call(
                "@ms_setitem",
                [self.visit(node.value), self.visit(target.value), self.visit(target.slice)],
                like=target,
            )
            return ast.copy_location(ast.Expr(value=call), node)
        return self.generic_visit(node)

    def _store_target(self, target: ast.Subscript) -> ast.Subscript:
        """``d[k]`` as a store or delete target, made through the ``@ms_store`` proxy."""
        value = _call("@ms_store", [self.visit(target.value)], like=target.value)
        return ast.copy_location(ast.Subscript(value=value, slice=self.visit(target.slice), ctx=target.ctx), target)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        op = _OPSYM[type(node.op)]
        target = node.target
        if _plain_subscript(target):
            # d[k] op= v  ->  @ms_aug(d, "op=")[k] op= v: Python itself evaluates
            # d, k, the read, v, the in-place op and the write, in its own order,
            # on a proxy whose item read and write are the helpers. No temporaries.
            proxy = _call("@ms_aug", [self.visit(target.value), ast.Constant(op)], like=target.value)
            node.target = ast.copy_location(
                ast.Subscript(value=proxy, slice=self.visit(target.slice), ctx=ast.Store()), target
            )
            node.value = self.visit(node.value)
            return node
        if type(node.op) in _MAP_INPLACE and not (
            isinstance(node.value, ast.Constant) and not isinstance(node.value.value, (str, bytes))
        ):
            if isinstance(target, ast.Name):
                # x op= v  ->  x = iop(x, v, "op="): Python's order, one evaluation of x.
                load = ast.copy_location(ast.Name(id=target.id, ctx=ast.Load()), target)
                value = _call("@ms_iop", [load, self.visit(node.value), ast.Constant(op)], like=node)
                return ast.copy_location(ast.Assign(targets=[target], value=value), node)
            if isinstance(target, ast.Attribute):
                # o.a op= v  ->  @ms_attrs(o, "op=").a op= v: a proxy that reads and
                # writes o.a, and records what an in-place op did to a map there.
                proxy = _call("@ms_attrs", [self.visit(target.value), ast.Constant(op)], like=target.value)
                node.target = ast.copy_location(ast.Attribute(value=proxy, attr=target.attr, ctx=ast.Store()), target)
                node.value = self.visit(node.value)
                return node
        return self.generic_visit(node)

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
        node.target = self.visit(node.target)
        node.iter = self.visit(node.iter)
        node.ifs = [self.visit(x) for x in node.ifs]
        if not node.is_async and not isinstance(node.iter, _LITERALS):
            node.iter = _call("@ms_iter", [node.iter], like=node.iter)
        return node

    def visit_With(self, node: ast.With) -> ast.AST:
        node = self.generic_visit(node)
        for item in node.items:
            if not isinstance(item.context_expr, ast.Call):
                item.context_expr = _call("@ms_with", [item.context_expr], like=item.context_expr)
        return node

    def visit_Match(self, node: Any) -> ast.AST:
        node = self.generic_visit(node)
        keys: list = []
        rest = False
        todo = [case.pattern for case in node.cases]
        while todo:
            pattern = todo.pop(0)
            if isinstance(pattern, ast.MatchMapping):
                keys.extend(k for k in pattern.keys if isinstance(k, ast.Constant))
                rest = rest or pattern.rest is not None
            elif isinstance(pattern, ast.MatchOr):
                todo.extend(pattern.patterns)
            elif isinstance(pattern, ast.MatchAs) and pattern.pattern is not None:
                todo.append(pattern.pattern)
        if keys or rest:
            node.subject = _call(
                "@ms_match",
                [node.subject, ast.Tuple(elts=[ast.Constant(k.value) for k in keys], ctx=ast.Load()),
                 ast.Constant(rest)],
                like=node.subject,
            )
        return node

    # -- expressions -----------------------------------------------------

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if _plain_subscript(node):
            if isinstance(node.ctx, ast.Load):
                return _call("@ms_getitem", [self.visit(node.value), self.visit(node.slice)], like=node)
            return self._store_target(node)  # a target inside a tuple, a for, a with...
        return self.generic_visit(node)

    def visit_Starred(self, node: ast.Starred) -> ast.AST:
        node = self.generic_visit(node)
        if isinstance(node.ctx, ast.Load) and not isinstance(node.value, _LITERALS):
            node.value = _call("@ms_keys", [node.value], like=node.value)
        return node

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        node = self.generic_visit(node)
        if not isinstance(node.value, _NOT_MAPS):
            node.value = _call("@ms_fmt", [node.value], like=node.value)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = self.generic_visit(node)
        if isinstance(node.op, ast.Mod) and isinstance(node.left, (ast.Constant, ast.JoinedStr)):
            if isinstance(node.left, ast.JoinedStr) or isinstance(node.left.value, (str, bytes)):
                if not isinstance(node.right, _NOT_MAPS):
                    node.right = _call("@ms_fmt", [node.right], like=node.right)
        elif isinstance(node.op, _MAP_BINOPS) and not isinstance(node.left, ast.Constant) and not isinstance(
            node.right, ast.Constant
        ):
            if not isinstance(node.left, _NOT_MAPS):
                node.left = _call("@ms_operand", [node.left], like=node.left)
            if not isinstance(node.right, _NOT_MAPS):
                node.right = _call("@ms_operand", [node.right], like=node.right)
        return node

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
        node = self.generic_visit(node)
        node.values = [
            _call("@ms_values", [v], like=v) if k is None and not isinstance(v, _LITERALS + (ast.Dict,)) else v
            for k, v in zip(node.keys, node.values)
        ]
        return _call("@ms_new", [node], like=node)

    def visit_DictComp(self, node: ast.DictComp) -> ast.AST:
        return _call("@ms_new", [self.generic_visit(node)], like=node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "get"
            and not node.keywords
            and 1 <= len(node.args) <= 2
            and not any(isinstance(a, ast.Starred) for a in node.args)
        ):
            node = self.generic_visit(node)
            return _call("@ms_get", [node.func.value] + node.args, like=node)
        if isinstance(func, ast.Attribute) and func.attr in _METHODS:
            node = self.generic_visit(node)
            args = [node.func.value, ast.copy_location(ast.Constant(func.attr), func)] + node.args
            return _call("@ms_call", args, node.keywords, like=node)
        maker = (isinstance(func, ast.Name) and func.id in _MAKERS) or (
            isinstance(func, ast.Attribute) and func.attr in _MAKERS
        )
        if (isinstance(func, ast.Name) and func.id in _NO_READ_NAMES) or (
            isinstance(func, ast.Attribute) and func.attr in _STORING_METHODS
        ):
            return self.generic_visit(node)
        if isinstance(func, ast.Name) and func.id in _FRAMELESS_READERS and node.args:
            node = self.generic_visit(node)
            for k in node.keywords:
                if k.arg is None and not isinstance(k.value, _LITERALS + (ast.Dict,)):
                    k.value = _call("@ms_values", [k.value], like=k.value)
            if len(node.args) == 1 and not node.keywords and not isinstance(node.args[0], ast.Starred):
                call = _call("@ms_wcall1", [node.func, node.args[0]], like=node)
            else:
                call = _call("@ms_wcall", [node.func] + node.args, node.keywords, like=node)
            return _call("@ms_new", [call], like=node) if maker else call
        callee = _callee_ref(func)
        node = self.generic_visit(node)
        for k in node.keywords:
            if k.arg is None and not isinstance(k.value, _LITERALS + (ast.Dict,)):
                k.value = _call("@ms_values", [k.value], like=k.value)
        if callee is not None:
            # f(a, k=v)  ->  f(@ms_arg(<f again>, a), k=@ms_arg(<f again>, v)): the call
            # stays in the user's frame; the callee is named again for the helper
            # by an expression with no side effects (see _callee_ref).
            helper, named = callee
            node.args = [
                a if isinstance(a, (ast.Starred,) + _NOT_MAPS) else _call(helper, [*named(), a], like=a)
                for a in node.args
            ]
            for k in node.keywords:
                if k.arg is not None and not isinstance(k.value, _NOT_MAPS):
                    k.value = _call(helper, [*named(), k.value], like=k.value)
        return _call("@ms_new", [node], like=node) if maker else node


def _callee_ref(func: ast.AST) -> Any:
    """(helper, maker of the arguments that name the callee ``func`` again)
    without running anything: a name is loaded again (``@ms_arg(f, a)``), and
    an attribute chain on a name is passed as the name and the chain
    (``@ms_argm(o, "b.m", a)``, which looks the chain up only for a map
    argument, and statically: no property or ``__getattr__`` runs). Other
    callees (``get()(x)``, ``handlers[k](x)``) are not named: None."""
    parts = []
    node = func
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Constant) and parts:  # ",".join(d), b"".join(d)
        value = node.value

        def root() -> ast.AST:
            return ast.Constant(value)
    elif isinstance(node, ast.Name):
        name = node.id

        def root() -> ast.AST:
            return ast.Name(id=name, ctx=ast.Load())
    else:
        return None
    if not parts:
        return "@ms_arg", lambda: [root()]
    chain = ".".join(reversed(parts))
    return "@ms_argm", lambda: [root(), ast.Constant(chain)]


def _mark_finalizer(cls: ast.ClassDef) -> None:
    """In a class with a ``__del__``: ``__init__`` records where each object is
    created, and ``__del__``'s body runs marked as a finalizer (see finalizers)."""
    methods = {
        stmt.name: stmt for stmt in cls.body
        if isinstance(stmt, ast.FunctionDef) and stmt.args.args and not stmt.decorator_list
    }
    fin = methods.get("__del__")
    if fin is None:
        return

    def split(body: list) -> tuple:
        doc = body[:1] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and \
            isinstance(body[0].value.value, str) else []
        return doc, body[len(doc):]

    self_name = fin.args.args[0].arg
    doc, rest = split(fin.body)
    guard = ast.With(
        items=[ast.withitem(context_expr=_call("@ms_finalizing", [_name(self_name)], like=fin), optional_vars=None)],
        body=rest or [ast.Pass()],
    )
    fin.body = doc + [ast.copy_location(guard, rest[0] if rest else fin)]
    init = methods.get("__init__")
    if init is not None:
        doc, rest = split(init.body)
        mark = ast.Expr(value=_call("@ms_created", [_name(init.args.args[0].arg)], like=init))
        init.body = doc + [ast.copy_location(mark, init)] + rest


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
    mark_instrumented(filename)
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
        mark_instrumented(self.path)
        return compile(rewrite(tree), self.path, "exec", dont_inherit=True)

    def exec_module(self, module: Any) -> None:
        module.__dict__.update(HELPERS)
        super().exec_module(module)
