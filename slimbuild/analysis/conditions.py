"""Checks that decide whether a block runs in the image: ``sys.version_info``, ``sys.platform``, ``os.name``, ``__name__``.

An import under ``if sys.version_info < (3, 8):`` never runs on a Python 3.11 image, one under
``if sys.platform == "win32":`` never runs on Linux, and one under ``if __name__ == "__main__":`` runs
only in the file the image starts (not in a module it imports). The checks recognised are the ones type checkers
evaluate (mypy, pyright): comparisons of ``sys.version_info`` (whole, sliced ``[:n]``, indexed, ``.major``,
``.minor``) with literal tuples or ints, ``sys.platform`` and ``os.name`` compared with (or tested for
membership in) string literals, ``sys.platform.startswith(...)``, and ``not``/``and``/``or`` of those; and,
beyond what type checkers do, ``platform.system()`` compared with string literals.

Also the guards that make an import optional: ``except ImportError`` (or ``ModuleNotFoundError``, or a
catch-all), and ``contextlib.suppress`` of one of them; and the probes whose success a block depends on, as it
depends on a guarded import: an import flag (``HAS_X = True`` beside a guarded import), a function that returns a
true value only from a guarded ``try`` (``if is_running_trio():``), and the ``else`` of a ``try`` that probes a
name only a host defines (``try: get_ipython() except NameError: ... else: ...``).

Pure. The parser records a condition as a small tuple (picklable, so parse results can be cached
whatever the target); the trace evaluates it for the target, in three-valued logic: a check it cannot
decide (``sys.version_info >= (3, 11, 2)`` for a "3.11" target, a name it does not know) counts as
"may run", so only a block that surely does not run is left out.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

Cond = tuple[Any, ...]
# ("version", selector, op, value): selector "all" | ("slice", n) | ("index", i)
# ("platform", op, value) | ("os_name", op, value) | ("system", op, value): platform.system()
# ("platform_prefix", (prefix, ...))
# ("main", op): __name__ == / != "__main__"
# ("not", cond) | ("and", cond, ...) | ("or", cond, ...) | ("unknown",)
UNKNOWN: Cond = ("unknown",)

_OPS: dict[type[ast.cmpop], str] = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in",
}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}


LINUX = ("linux", "posix", "Linux")  # sys.platform, os.name and platform.system() of every image slimbuild builds


def marker_environment(python_version: str, machine: str) -> dict[str, str]:
    """PEP 508 marker environment of a Linux image of CPython ``python_version`` (patch level assumed .0)."""
    full = f"{python_version}.0"
    return {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": full,
        "python_version": python_version,
        "sys_platform": "linux",
    }


def version_of(target_python: str) -> tuple[int, int]:
    """``"3.11"`` as ``(3, 11)``."""
    major, minor = target_python.split(".")[:2]
    return int(major), int(minor)


def _is_sys_attr(node: ast.expr, attr: str) -> bool:
    return (
        isinstance(node, ast.Attribute) and node.attr == attr and isinstance(node.value, ast.Name) and node.value.id == "sys"
    )


def _is_os_name(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "name" and isinstance(node.value, ast.Name) and node.value.id == "os"


def _is_platform_system(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call) and not node.args and not node.keywords
        and isinstance(node.func, ast.Attribute) and node.func.attr == "system"
        and isinstance(node.func.value, ast.Name) and node.func.value.id == "platform"
    )


def _version_selector(node: ast.expr) -> Any:
    """What part of ``sys.version_info`` an expression reads, or None when it is not ``sys.version_info``."""
    if _is_sys_attr(node, "version_info"):
        return "all"
    if isinstance(node, ast.Attribute) and node.attr in {"major", "minor", "micro"} and _is_sys_attr(node.value, "version_info"):
        return ("index", ("major", "minor", "micro").index(node.attr))
    if isinstance(node, ast.Subscript) and _is_sys_attr(node.value, "version_info"):
        sl = node.slice
        if isinstance(sl, ast.Constant) and type(sl.value) is int:
            return ("index", sl.value)
        if (
            isinstance(sl, ast.Slice) and sl.lower is None and sl.step is None
            and isinstance(sl.upper, ast.Constant) and type(sl.upper.value) is int
        ):
            return ("slice", sl.upper.value)
        return ("unknown",)
    return None


def _literal(node: ast.expr) -> Any:
    """A literal int, str, or tuple/list/set of them; ``_NOT_LITERAL`` otherwise."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, str):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = tuple(_literal(e) for e in node.elts)
        return _NOT_LITERAL if _NOT_LITERAL in items else items
    return _NOT_LITERAL


_NOT_LITERAL = object()


def _is_main_check(left: ast.expr, right: ast.expr) -> bool:
    return (
        isinstance(left, ast.Name) and left.id == "__name__"
        and isinstance(right, ast.Constant) and right.value == "__main__"
    )


def _compare(node: ast.Compare) -> Cond | None:
    if len(node.ops) != 1:
        return UNKNOWN if _mentions_target(node) else None
    op = _OPS.get(type(node.ops[0]))
    left, right = node.left, node.comparators[0]
    if op is None:
        return UNKNOWN if _mentions_target(node) else None
    if op in {"==", "!="} and (_is_main_check(left, right) or _is_main_check(right, left)):
        return ("main", op)
    if op not in {"in", "not in"} and _version_selector(left) is None and _literal(left) is not _NOT_LITERAL:
        left, right, op = right, left, _FLIP[op]  # (3, 8) <= sys.version_info
    value = _literal(right)
    selector = _version_selector(left)
    if selector is not None:
        if value is _NOT_LITERAL or op in {"in", "not in"} or selector == ("unknown",):
            return UNKNOWN
        return ("version", selector, op, value)
    for kind, test in (
        ("platform", lambda n: _is_sys_attr(n, "platform")), ("os_name", _is_os_name), ("system", _is_platform_system),
    ):
        if test(left):
            if op in {"in", "not in"}:
                if not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
                    return UNKNOWN
            elif op not in {"==", "!="} or not isinstance(value, str):
                return UNKNOWN
            return (kind, op, value)
    return UNKNOWN if _mentions_target(node) else None


def _mentions_target(node: ast.AST) -> bool:
    return any(
        _is_sys_attr(n, "version_info") or _is_sys_attr(n, "platform") or _is_os_name(n) or _is_platform_system(n)
        for n in ast.walk(node)
        if isinstance(n, ast.expr)
    )


def from_test(test: ast.expr) -> Cond | None:
    """The condition an ``if`` test puts on the target; None when the test checks nothing about it."""
    if isinstance(test, ast.Compare):
        return _compare(test)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = from_test(test.operand)
        return None if inner is None else ("not", inner)
    if isinstance(test, ast.BoolOp):
        parts = [from_test(v) for v in test.values]
        if all(p is None for p in parts):
            return None
        kind = "and" if isinstance(test.op, ast.And) else "or"
        return (kind, *(UNKNOWN if p is None else p for p in parts))
    if (
        isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) and test.func.attr == "startswith"
        and _is_sys_attr(test.func.value, "platform") and len(test.args) == 1 and not test.keywords
    ):
        value = _literal(test.args[0])
        prefixes = (value,) if isinstance(value, str) else value
        if isinstance(prefixes, tuple) and prefixes and all(isinstance(p, str) for p in prefixes):
            return ("platform_prefix", prefixes)
        return UNKNOWN
    return UNKNOWN if _mentions_target(test) else None


def _version(selector: Any, op: str, value: Any, version: tuple[int, int]) -> bool | None:
    if selector == "all" or (isinstance(selector, tuple) and selector[0] == "slice"):
        if not (isinstance(value, tuple) and all(type(v) is int for v in value)):
            return None
        if selector != "all":
            n = selector[1]
            if n < 0 or n > 2:
                return None
            return _COMPARE[op](version[:n], value)
        # sys.version_info is (major, minor, micro, ...): known to two places, longer than any 2-tuple
        for mine, theirs in zip(version, value):
            if mine != theirs:
                return _COMPARE[op](mine, theirs)
        if len(value) > 2:
            return None  # equal so far, and the micro version decides
        return _COMPARE[op](1, 0)  # a longer tuple with an equal prefix is greater
    if isinstance(selector, tuple) and selector[0] == "index":
        i = selector[1]
        if type(value) is not int or i not in (0, 1):
            return None
        return _COMPARE[op](version[i], value)
    return None


def holds(
    cond: Cond, version: tuple[int, int], platform: tuple[str, str, str] = LINUX, is_main: bool | None = None
) -> bool | None:
    """Whether ``cond`` is true on Python ``version`` with (sys.platform, os.name, platform.system()) ``platform``,
    in a file that runs as ``__main__`` (``is_main``; None: not known); None when it cannot be told."""
    kind = cond[0]
    if kind == "main":
        return None if is_main is None else is_main == (cond[1] == "==")
    if kind == "version":
        return _version(cond[1], cond[2], cond[3], version)
    if kind in {"platform", "os_name", "system"}:
        actual = platform[("platform", "os_name", "system").index(kind)]
        op, value = str(cond[1]), cond[2]
        if not isinstance(value, (str, tuple)):
            return None
        if op == "==":
            return bool(actual == value)
        if op == "!=":
            return bool(actual != value)
        if op == "in":
            return actual in value
        if op == "not in":
            return actual not in value
        return None
    if kind == "platform_prefix":
        return platform[0].startswith(tuple(cond[1]))
    if kind == "not":
        inner = holds(cond[1], version, platform, is_main)
        return None if inner is None else not inner
    if kind in {"and", "or"}:
        results = [holds(c, version, platform, is_main) for c in cond[1:]]
        if kind == "and":
            return False if False in results else (None if None in results else True)
        return True if True in results else (None if None in results else False)
    return None


def never_runs(
    conds: tuple[Cond, ...], version: tuple[int, int], platform: tuple[str, str, str] = LINUX, is_main: bool | None = None
) -> bool:
    """True when one of the enclosing conditions is surely false there."""
    return any(holds(c, version, platform, is_main) is False for c in conds)


# ----------------------------------------------------------------------------- guards

# Exceptions whose handler (or contextlib.suppress) makes an import in its block optional: ImportError itself,
# its subclass, and the catch-alls that include it (a bare ``except:`` too).
_OPTIONAL_EXCEPTIONS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def _names_import_error(node: ast.expr) -> bool:
    """Whether an exception expression (a name, ``builtins.X``, or a tuple of them) includes ImportError."""
    names = node.elts if isinstance(node, ast.Tuple) else [node]
    for n in names:
        ident = n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else ""
        if ident in _OPTIONAL_EXCEPTIONS:
            return True
    return False


def catches_import_error(handler: ast.ExceptHandler) -> bool:
    """``except ImportError``, ``except Exception``, a bare ``except:``, or a tuple holding one of them."""
    return handler.type is None or _names_import_error(handler.type)


def suppresses_import_error(node: ast.With | ast.AsyncWith) -> bool:
    """``with contextlib.suppress(ImportError, ...)`` (or ``suppress(...)`` imported from contextlib), any item."""
    for item in node.items:
        call = item.context_expr
        if not isinstance(call, ast.Call) or call.keywords:
            continue
        func = call.func
        if isinstance(func, ast.Name):
            is_suppress = func.id == "suppress"
        elif isinstance(func, ast.Attribute):
            is_suppress = func.attr == "suppress" and isinstance(func.value, ast.Name) and func.value.id == "contextlib"
        else:
            is_suppress = False
        if is_suppress and any(_names_import_error(arg) for arg in call.args if not isinstance(arg, ast.Starred)):
            return True
    return False


def import_flags(body: list[ast.stmt]) -> frozenset[str]:
    """Names a guarded ``try`` body sets to ``True`` beside its imports: ``HAS_X = True`` after ``import x``.

    Such a flag is true only when the imports before it succeeded, so an ``if HAS_X:`` block depends on them:
    its imports are as optional as the guarded ones (requests' ``has_simplejson``).
    """
    if not any(isinstance(s, (ast.Import, ast.ImportFrom)) for s in body):
        return frozenset()
    out: set[str] = set()
    for stmt in body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) and stmt.value.value is True:
            out.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
    return frozenset(out)


def flag_branch(test: ast.expr, flags: frozenset[str]) -> str | None:
    """Which branch of ``if test:`` runs only when an import flag is true: ``"body"`` (``if HAS_X``,
    ``if HAS_X and ...``), ``"orelse"`` (``if not HAS_X``), or None (the test is no such check)."""
    if not flags:
        return None
    if isinstance(test, ast.Name) and test.id in flags:
        return "body"
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        if any(isinstance(v, ast.Name) and v.id in flags for v in test.values):
            return "body"
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and isinstance(test.operand, ast.Name):
        return "orelse" if test.operand.id in flags else None
    return None


def _guarded_import_try(node: ast.stmt) -> bool:
    """A ``try`` whose body imports something and whose handlers catch ImportError (``try: import x``)."""
    return (
        isinstance(node, ast.Try) and any(catches_import_error(h) for h in node.handlers)
        and any(isinstance(s, (ast.Import, ast.ImportFrom)) for s in node.body)
    )


def _may_be_true(value: ast.expr | None) -> bool:
    return not (value is None or (isinstance(value, ast.Constant) and not value.value))


def flag_function(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether ``fn`` returns a true value only from the body of a ``try`` that imports and catches ImportError.

    Such a function is an import flag called instead of read: ``def is_running_trio(): try: import sniffio;
    return sniffio.current_async_library() == "trio" except ImportError: pass; return False``. It is true
    only when that import succeeded, so an ``if is_running_trio():`` block is as optional as the import.
    """
    returns: list[bool] = []  # for each return that may give a true value: whether a guarded try holds it

    def walk(stmts: list[ast.stmt], guarded: bool) -> None:
        for stmt in stmts:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue  # its returns are its own
            if isinstance(stmt, ast.Return):
                if _may_be_true(stmt.value):
                    returns.append(guarded)
                continue
            if isinstance(stmt, ast.Try):
                walk(stmt.body, guarded or _guarded_import_try(stmt))
                for h in stmt.handlers:
                    walk(h.body, guarded)
                walk(stmt.orelse, guarded)
                walk(stmt.finalbody, guarded)
                continue
            for field_name in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, field_name, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    walk(inner, guarded)
            for case in getattr(stmt, "cases", ()):
                walk(case.body, guarded)

    walk(fn.body, False)
    return bool(returns) and all(returns)


def called_flag(test: ast.expr, is_flag: Callable[[str], bool]) -> str | None:
    """Which branch of ``if test:`` runs only when a flag function (:func:`flag_function`) returned true:
    ``"body"`` for ``if f():`` (or ``if f() and ...``), ``"orelse"`` for ``if not f():``, else None."""

    def called(node: ast.expr) -> bool:
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and is_flag(node.func.id)

    if called(test):
        return "body"
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) and any(called(v) for v in test.values):
        return "body"
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and called(test.operand):
        return "orelse"
    return None


def _names_name_error(node: ast.expr | None) -> bool:
    names = node.elts if isinstance(node, ast.Tuple) else [node] if node is not None else []
    return bool(names) and all(
        (n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else "") == "NameError" for n in names
    )


def probed_names(node: ast.Try) -> frozenset[str]:
    """The names a ``try: get_ipython() except NameError: ... else: ...`` probes: the names its body reads, when
    every handler catches NameError alone (a host may define them: IPython's ``get_ipython``); else nothing."""
    if not node.handlers or not all(_names_name_error(h.type) for h in node.handlers):
        return frozenset()
    return frozenset(
        n.id for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    )


def module_bindings(tree: ast.Module) -> frozenset[str]:
    """Every name a module binds anywhere (assignments, defs, classes, imports, ``global``): what it may define itself."""
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            out.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name).split(".")[0] for a in n.names)
        elif isinstance(n, ast.arg):
            out.add(n.arg)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            out.add(n.name)
    return frozenset(out)
