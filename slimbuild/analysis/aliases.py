"""Other names a module gives ``importlib``, ``importlib.import_module`` and ``__import__``.

``import importlib as il``, ``from importlib import import_module as im``, ``load = importlib.import_module``,
``imp = __import__``, and chains of them (``f = im``): a call through such a name is a dynamic import like
``importlib.import_module(...)`` itself. Flow-insensitive over the whole module (a function may call an alias
bound below it); pure: a tree in, names out.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# Text that can bind an alias: `importlib as X`, `import_module as X`, `__import__ as X`, or an assignment
# whose value ends in one of those names (not a call of it). Files without it skip the alias walk.
_MAY_ALIAS = re.compile(
    r"\b(?:importlib|import_module|__import__)\s+as\s"
    r"|[=,(]\s*(?:[\w.]+\.)?(?:importlib|import_module|__import__)(?=\s*(?:[,;)\]}#]|$))",
    re.M,
)
_FUNCTIONS = frozenset({"import_module", "__import__"})


@dataclass(frozen=True)
class Aliases:
    """``modules``: names bound to the ``importlib`` module; ``functions``: names bound to one of its import functions."""

    modules: frozenset[str] = frozenset()
    functions: frozenset[str] = frozenset()


NONE = Aliases()


def may_alias(text: str) -> bool:
    """Whether the text can bind an alias at all (a cheap test before the tree is walked)."""
    return _MAY_ALIAS.search(text) is not None


def find_aliases(tree: ast.AST) -> Aliases:
    """Every alias the module binds, through imports and (chains of) assignments."""
    modules: set[str] = set()
    functions: set[str] = set()
    pairs: list[tuple[str, ast.expr]] = []  # (name, value) of every simple binding
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.asname for a in node.names if a.name == "importlib" and a.asname)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in {"importlib", "builtins"}:
            functions.update(a.asname for a in node.names if a.name in _FUNCTIONS and a.asname)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                pairs.extend(_bindings(target, node.value))
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            pairs.extend(_bindings(node.target, node.value))
    changed = True
    while changed:  # chains: each round binds the names whose value is a name bound in an earlier round
        changed = False
        for name, value in pairs:
            kind = _kind(value, modules, functions)
            bucket = modules if kind == "module" else functions if kind == "function" else None
            if bucket is not None and name not in bucket:
                bucket.add(name)
                changed = True
    return Aliases(frozenset(modules - {"importlib"}), frozenset(functions - _FUNCTIONS))


def _bindings(target: ast.expr, value: ast.expr) -> list[tuple[str, ast.expr]]:
    """(name, value) pairs an assignment binds: ``a = v`` and, element-wise, ``a, b = v, w``."""
    if isinstance(target, ast.Name):
        return [(target.id, value)]
    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)):
        if len(target.elts) == len(value.elts):
            return [p for t, v in zip(target.elts, value.elts) for p in _bindings(t, v)]
    return []


def _kind(value: ast.expr, modules: set[str], functions: set[str]) -> str:
    """"module" when ``value`` is the importlib module, "function" when one of its import functions, else ""."""
    if isinstance(value, ast.Name):
        if value.id == "importlib" or value.id in modules:
            return "module"
        if value.id in _FUNCTIONS or value.id in functions:
            return "function"
        return ""
    if isinstance(value, ast.Attribute):
        if value.attr == "__import__":
            return "function"  # builtins.__import__
        if value.attr == "import_module" and _kind(value.value, modules, functions) == "module":
            return "function"
    return ""


def with_lines(text: str, lines: list[int], words: frozenset[str]) -> list[int]:
    """``lines`` (sorted line numbers) and those of the lines naming any of ``words`` as whole words, sorted."""
    found = set(lines)
    rx = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(words))) + r")\b")
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # the tokenizer's line ends
    line, pos = 1, 0
    for m in rx.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        found.add(line)
    return sorted(found)
