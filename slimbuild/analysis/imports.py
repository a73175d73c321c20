"""Imports of one Python source: decoding, parsing, and a tokenize fallback.

Pure: bytes or text in, :class:`ParsedSource` out. Every failure is an
:class:`AnalysisError` with ``file:line:col`` and what to do; nothing else
escapes (no ``RecursionError``, no ``UnicodeDecodeError``).
"""

from __future__ import annotations

import ast
import bisect
import builtins
import codecs
import io
import re
import sys
import tokenize
from collections import deque
from collections.abc import Iterator

from slimbuild.analysis import aliases, conditions
from slimbuild.analysis.token_scan import scan_tokens as scan_tokens  # the fallback parse.py and tests call here
from slimbuild.errors import AnalysisError
from slimbuild.models import Finding, Location, ParsedSource, RawImport

DEFAULT_MAX_BYTES = 10 * 1024 * 1024

_DYNAMIC_FUNCS = frozenset({"import_module", "__import__"})
_PY2_HINTS = (
    re.compile(r"^\s*print\s+[^\s(=]", re.M),
    re.compile(r"^\s*except\s+[\w.]+\s*,\s*\w+\s*:", re.M),
    re.compile(r"^\s*exec\s+['\"]", re.M),
    re.compile(r"\bur['\"]"),
)

# Calls whose backing distribution is needed at run time without being imported
# (pandas picks an engine by name). attribute -> (distribution, why)
RUNTIME_HINTS: dict[str, tuple[str, str]] = {
    "read_parquet": ("pyarrow", "pandas reads Parquet through pyarrow"),
    "to_parquet": ("pyarrow", "pandas writes Parquet through pyarrow"),
    "read_feather": ("pyarrow", "pandas reads Feather through pyarrow"),
    "to_feather": ("pyarrow", "pandas writes Feather through pyarrow"),
    "read_orc": ("pyarrow", "pandas reads ORC through pyarrow"),
    "read_excel": ("openpyxl", "pandas reads .xlsx through openpyxl"),
    "to_excel": ("openpyxl", "pandas writes .xlsx through openpyxl"),
    "read_hdf": ("tables", "pandas reads HDF5 through PyTables"),
    "to_hdf": ("tables", "pandas writes HDF5 through PyTables"),
    "HDFStore": ("tables", "pandas HDFStore needs PyTables"),
    "read_xml": ("lxml", "pandas reads XML through lxml"),
    "read_html": ("lxml", "pandas parses HTML through lxml"),
    "to_markdown": ("tabulate", "pandas renders Markdown through tabulate"),
    "read_sql": ("sqlalchemy", "pandas reads SQL through SQLAlchemy"),
    "to_sql": ("sqlalchemy", "pandas writes SQL through SQLAlchemy"),
}


NOTEBOOK_SIZE_FACTOR = 5  # notebooks carry outputs (plots): their limit is this many times max-source-bytes


def check_size(size: int, path: str, max_bytes: int, what: str = "Python source") -> None:
    """Refuse a file over the size limit, naming its real size (callers read at most ``max_bytes + 1``)."""
    if size > max_bytes:
        raise AnalysisError(
            f"{path}: file is {size:,} bytes, over the {max_bytes:,}-byte limit for {what}",
            hint="raise max-source-bytes in [tool.slimbuild] if this file is really needed",
        )


# Words without which a statement can hold no import (static or dynamic: import_module, __import__),
# sys.path edit (the name ``sys``), engine keyword or runtime hint: statements spanning no line that
# names one are not walked.
_LINE_TRIGGERS = ("import", "sys", "engine", *sorted(RUNTIME_HINTS))

def _group_triggers(words: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    groups: dict[str, list[str]] = {}
    for word in words:
        prefix = next((p for p in ("read_", "to_") if word.startswith(p)), word)
        groups.setdefault(prefix, []).append(word)
    return tuple((prefix, tuple(ws)) for prefix, ws in groups.items())


_TRIGGER_GROUPS = _group_triggers(_LINE_TRIGGERS)


def scan_triggers(text: str) -> tuple[list[int] | None, bool]:
    """(sorted numbers of the lines naming a trigger word, whether any expression can matter), from one scan
    of the text per trigger word.

    Expressions matter only for dynamic imports (import_module, __import__), sys.path edits (sys) and
    runtime hints (engine=, the pandas readers and writers). Non-ASCII text gets (None, True): it is walked
    in full, since Python folds identifiers with NFKC, so a name can be spelled in other characters.
    """
    if not text.isascii():
        return None, True
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")  # the tokenizer's line ends
    positions: list[int] = []
    exprs = False
    for prefix, words in _TRIGGER_GROUPS:
        if prefix not in text:
            continue  # one scan rules out the whole group (most texts name no pandas reader or writer)
        for word in words:
            i = text.find(word)
            if i >= 0 and word != "import":
                exprs = True  # sys, engine or a runtime hint
            while i >= 0:
                positions.append(i)
                if not exprs and (text.startswith("import_module", i) or (i >= 2 and text.startswith("__", i - 2))):
                    exprs = True  # importlib.import_module or __import__
                i = text.find(word, i + len(word))
    positions.sort()
    lines: list[int] = []
    line, pos = 1, 0
    for at in positions:
        line += text.count("\n", pos, at)
        pos = at
        if not lines or lines[-1] != line:
            lines.append(line)
    return lines, exprs


def decode_source(data: bytes, path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Decode source bytes per PEP 263; refuse binaries, bad codecs and bad bytes."""
    check_size(len(data), path, max_bytes)
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise AnalysisError(
            f"{path}: not Python source (NUL byte at offset {offset})",
            hint="remove the file from the import path or rename it if it is a compiled or binary file",
        )
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        detail = str(exc.msg if hasattr(exc, "msg") else exc)
        if detail.startswith("invalid or missing encoding declaration"):
            # no cookie and the first lines are not UTF-8: report the bad byte, not the cookie
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as ude:
                raise _undecodable(data, ude, path, "utf-8") from None
        raise AnalysisError(
            f"{path}:{exc.lineno or 1}: {detail}",
            hint="fix the '# coding:' cookie to name a codec Python knows (e.g. utf-8)",
        ) from None
    try:
        codecs.lookup(encoding)
    except LookupError:  # pragma: no cover - detect_encoding already checks
        raise AnalysisError(f"{path}: unknown encoding {encoding!r}", hint="fix the coding cookie") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _undecodable(data, exc, path, encoding) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def _undecodable(data: bytes, exc: UnicodeDecodeError, path: str, encoding: str) -> AnalysisError:
    line = data.count(b"\n", 0, exc.start) + 1
    return AnalysisError(
        f"{path}:{line}: cannot decode byte 0x{data[exc.start]:02x} at offset {exc.start} as {encoding}",
        hint="save the file as UTF-8, or declare its encoding with a '# coding:' line (PEP 263)",
    )


class SourceSyntaxError(AnalysisError):
    """This interpreter's parser rejected the source (a newer target's grammar may accept it)."""


def _syntax_error(
    exc: SyntaxError, path: str, text: str, cell: int | None, feature_version: tuple[int, int] | None = None
) -> AnalysisError:
    loc = Location(path, exc.lineno or 0, exc.offset or 0, cell)
    msg = exc.msg if hasattr(exc, "msg") else str(exc)
    if feature_version is not None and _parses(text, path):
        target = f"{feature_version[0]}.{feature_version[1]}"
        return SourceSyntaxError(
            f"{loc}: syntax error for the target, Python {target}: {msg}",
            hint=f"the code needs a newer Python: raise --target-python (python in [tool.slimbuild]; requires-python), "
            f"or rewrite it for Python {target}",
        )
    hint = "fix the syntax, or pass --allow-unparseable to fall back to a token scan of this file"
    if any(rx.search(text) for rx in _PY2_HINTS) or "Missing parentheses in call to 'print'" in msg:
        hint = "Python 2 source? port it to Python 3, or keep it out of the entrypoint's imports"
    return SourceSyntaxError(f"{loc}: syntax error: {msg}", hint=hint)


class _Keeper:
    """Parsed trees kept alive on purpose, up to a budget of source characters (none by default).

    A parse worker ends with ``os._exit``, which frees nothing: a tree it keeps costs memory until
    then, but not the freeing of its nodes, about 15% of what the parse cost.
    """

    budget = 0
    trees: list[ast.Module] = []


def keep_trees(source_chars: int) -> None:
    """Keep the trees of up to ``source_chars`` of source instead of freeing them (parse workers only)."""
    _Keeper.budget = source_chars


def _parses(text: str, path: str) -> bool:
    """Whether this interpreter's full grammar accepts the text."""
    try:
        ast.parse(text, filename=path)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def parse_source(
    text: str,
    path: str,
    *,
    cell: int | None = None,
    allow_unparseable: bool = False,
    feature_version: tuple[int, int] | None = None,
) -> ParsedSource:
    """Imports of one decoded source; raises AnalysisError unless the fallback is allowed.

    ``feature_version``: a target older than this interpreter, whose grammar the text must fit (``ast.parse``'s).
    """
    try:
        tree = ast.parse(text, filename=path, feature_version=feature_version)
    except SyntaxError as exc:
        error = _syntax_error(exc, path, text, cell, feature_version)
        if not allow_unparseable:
            raise error from None
        return scan_tokens(text, path, cell=cell, reason=error.message)
    except (RecursionError, MemoryError):
        raise AnalysisError(
            f"{path}: too deeply nested for Python's parser",
            hint="simplify the file or keep it out of the entrypoint's imports",
        ) from None
    except ValueError as exc:  # e.g. NUL bytes in text
        raise AnalysisError(f"{path}: not Python source ({exc})", hint="check the file's type") from None
    try:
        lines, exprs = scan_triggers(text)
        found = aliases.find_aliases(tree) if aliases.may_alias(text) else aliases.NONE
        if found.functions:  # a call through `im = import_module` names no trigger word: its lines count too
            exprs = True
            lines = None if lines is None else aliases.with_lines(text, lines, found.functions)
        visitor = _Visitor(path, cell, scan_exprs=exprs, lines=lines, aliases=found)
        parsed = visitor.run(tree)
    except RecursionError:
        raise AnalysisError(
            f"{path}: too deeply nested to analyse", hint="simplify the file or keep it out of the entrypoint's imports"
        ) from None
    if _Keeper.budget >= len(text):
        _Keeper.budget -= len(text)
        _Keeper.trees.append(tree)
    return parsed


def parse_bytes(
    data: bytes, path: str, *, allow_unparseable: bool = False, max_bytes: int = DEFAULT_MAX_BYTES
) -> ParsedSource:
    """Decode and parse one ``.py`` file's bytes."""
    return parse_source(decode_source(data, path, max_bytes), path, allow_unparseable=allow_unparseable)


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    if isinstance(test, ast.Attribute):
        return test.attr == "TYPE_CHECKING"
    return False


def _first_line(node: ast.stmt) -> int:
    """A statement's first line: its decorators come before a def's or class's own line."""
    start = node.lineno
    for deco in getattr(node, "decorator_list", ()):
        start = min(start, deco.lineno)
    return start


def _literal_str(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


class _Visitor:
    """Walks a module once, tracking guarded blocks (try/except ImportError, contextlib.suppress) and TYPE_CHECKING."""

    def __init__(
        self, path: str, cell: int | None, scan_exprs: bool = True, lines: list[int] | None = None,
        aliases: aliases.Aliases = aliases.NONE,
    ) -> None:
        self.path = path
        self.aliases = aliases  # other names of importlib and its import functions (analysis/aliases.py)
        self.cell = cell
        self.scan_exprs = scan_exprs
        self.lines = lines  # see scan_triggers(); None walks every statement
        self.imports: list[RawImport] = []
        self.dynamic: list[Location] = []
        self.sys_path: list[str] = []
        self.hints: list[tuple[Location, str, str]] = []
        self.findings: list[Finding] = []
        self.conditions: tuple[conditions.Cond, ...] = ()  # the sys.version_info/sys.platform checks around the walk
        self.flags: frozenset[str] = frozenset()  # names set True only when a guarded import succeeded (HAS_X)
        self.tree: ast.Module | None = None
        self._flag_functions: dict[str, bool] = {}  # module-level function name -> conditions.flag_function
        self._bindings: frozenset[str] | None = None  # conditions.module_bindings, when a NameError probe asks

    def run(self, tree: ast.Module) -> ParsedSource:
        """Walk the module's body once; what it says about imports."""
        self.tree = tree
        self._body(tree.body, optional=False, type_checking=False)
        return ParsedSource(
            path=self.path,
            imports=tuple(self.imports),
            dynamic_unresolved=tuple(self.dynamic),
            sys_path_entries=tuple(dict.fromkeys(self.sys_path)),
            findings=tuple(self.findings),
            runtime_hints=tuple(self.hints),
        )

    def _loc(self, node: ast.AST) -> Location:
        return Location(self.path, getattr(node, "lineno", 0), getattr(node, "col_offset", 0) + 1, self.cell)

    def _body(self, stmts: list[ast.stmt], *, optional: bool, type_checking: bool) -> None:
        lines = self.lines
        if lines is None:
            for stmt in stmts:
                self._visit(stmt, optional=optional, type_checking=type_checking)
            return
        # A body's statements come in line order and never overlap (statements joined by ';' share a
        # line, and `i` only moves to a statement's first line): walk them beside the sorted trigger
        # lines, visit those that span one, and stop after the last trigger line.
        n = len(lines)
        if n == 0:
            return  # the text names no trigger word at all
        i = 0
        for stmt in stmts:
            end = stmt.end_lineno or stmt.lineno
            if lines[i] > end:
                continue  # the next trigger line lies beyond this statement
            start = _first_line(stmt)
            if lines[i] < start:
                i = bisect.bisect_left(lines, start, i)
                if i == n:
                    return  # no trigger line in the rest of the body
                if lines[i] > end:
                    continue
            if type(stmt) is ast.Expr and type(stmt.value) is ast.Constant:
                continue  # a docstring (or any constant) names a trigger word in its text only
            self._visit(stmt, optional=optional, type_checking=type_checking)

    def _stmt(self, node: ast.stmt, *, optional: bool, type_checking: bool) -> None:
        lines = self.lines
        if lines is not None:
            i = bisect.bisect_left(lines, _first_line(node))
            if i == len(lines) or lines[i] > (node.end_lineno or node.lineno):
                return  # no trigger word anywhere in the statement: nothing in it can matter
        self._visit(node, optional=optional, type_checking=type_checking)

    def _visit(self, node: ast.stmt, *, optional: bool, type_checking: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                self.imports.append(
                    RawImport(
                        node.lineno, node.col_offset + 1, alias.name, (), 0, optional, type_checking, False, self.cell,
                        self.conditions,
                    )
                )
            return
        if isinstance(node, ast.ImportFrom):
            names = tuple(a.name for a in node.names if a.name != "*")
            self.imports.append(
                RawImport(
                    node.lineno, node.col_offset + 1, node.module, names, node.level, optional, type_checking, False,
                    self.cell, self.conditions,
                )
            )
            return
        if isinstance(node, ast.If) and self._if(node, optional, type_checking):
            return
        if isinstance(node, (ast.With, ast.AsyncWith)) and conditions.suppresses_import_error(node):
            for item in node.items:
                self._exprs(item, optional, type_checking)
            self._body(node.body, optional=True, type_checking=type_checking)
            return
        if isinstance(node, ast.Try) or (sys.version_info >= (3, 11) and isinstance(node, ast.TryStar)):
            guarded = any(conditions.catches_import_error(h) for h in node.handlers)  # type: ignore[attr-defined]
            if guarded:
                self.flags |= conditions.import_flags(node.body)  # type: ignore[attr-defined]
            self._body(node.body, optional=optional or guarded, type_checking=type_checking)  # type: ignore[attr-defined]
            for h in node.handlers:  # type: ignore[attr-defined]
                self._body(h.body, optional=optional or guarded, type_checking=type_checking)
            probe = isinstance(node, ast.Try) and self._probes_host(node)
            self._body(node.orelse, optional=optional or probe, type_checking=type_checking)  # type: ignore[attr-defined]
            self._body(node.finalbody, optional=optional, type_checking=type_checking)  # type: ignore[attr-defined]
            return
        # Generic statement: scan expressions, then nested statement lists.
        for field_name, value in ast.iter_fields(node):
            if isinstance(value, list):
                if value and isinstance(value[0], ast.stmt):
                    self._body(value, optional=optional, type_checking=type_checking)
                else:
                    for item in value:
                        if isinstance(item, ast.AST):
                            self._walk_any(item, optional, type_checking)
            elif isinstance(value, ast.AST):
                self._walk_any(value, optional, type_checking)
            del field_name

    def _if(self, node: ast.If, optional: bool, type_checking: bool) -> bool:
        """Walk an ``if`` that is a TYPE_CHECKING, import-flag or version/platform check; False for any other."""
        if _is_type_checking(node.test):
            self._exprs(node.test, optional, type_checking)
            self._body(node.body, optional=optional, type_checking=True)
            self._body(node.orelse, optional=optional, type_checking=type_checking)
            return True
        if (branch := conditions.flag_branch(node.test, self.flags)) is not None:
            self._exprs(node.test, optional, type_checking)
            self._body(node.body, optional=optional or branch == "body", type_checking=type_checking)
            self._body(node.orelse, optional=optional or branch == "orelse", type_checking=type_checking)
            return True
        if (branch := conditions.called_flag(node.test, self._is_flag_function)) is not None:
            self._exprs(node.test, optional, type_checking)
            self._body(node.body, optional=optional or branch == "body", type_checking=type_checking)
            self._body(node.orelse, optional=optional or branch == "orelse", type_checking=type_checking)
            return True
        cond = conditions.from_test(node.test)
        if cond is not None:  # a check of the running Python: the trace decides for its target
            self._exprs(node.test, optional, type_checking)
            outer = self.conditions
            self.conditions = (*outer, cond)
            self._body(node.body, optional=optional, type_checking=type_checking)
            self.conditions = (*outer, ("not", cond))
            self._body(node.orelse, optional=optional, type_checking=type_checking)
            self.conditions = outer
            return True
        return False

    def _is_flag_function(self, name: str) -> bool:
        """Whether the module defines ``name`` at its top level as an import flag function (conditions.flag_function)."""
        if name not in self._flag_functions:
            defs = [
                s for s in (self.tree.body if self.tree is not None else ())
                if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == name
            ]
            self._flag_functions[name] = len(defs) == 1 and conditions.flag_function(defs[0])
        return self._flag_functions[name]

    def _probes_host(self, node: ast.Try) -> bool:
        """``try: get_ipython() except NameError: ... else: ...`` where the module never defines the name and it is
        not a builtin: only a host (IPython) defines it, so the ``else`` runs only there, as optional as a guard."""
        probed = conditions.probed_names(node)
        if not probed:
            return False
        if self._bindings is None:
            self._bindings = conditions.module_bindings(self.tree) if self.tree is not None else frozenset()
        return any(not hasattr(builtins, n) and n not in self._bindings for n in probed)

    def _walk_any(self, node: ast.AST, optional: bool, type_checking: bool) -> None:
        if isinstance(node, ast.stmt):
            self._stmt(node, optional=optional, type_checking=type_checking)
        elif isinstance(node, ast.match_case):
            if node.guard is not None:
                self._exprs(node.guard, optional, type_checking)
            self._body(node.body, optional=optional, type_checking=type_checking)
        elif isinstance(node, ast.ExceptHandler):
            self._body(node.body, optional=optional, type_checking=type_checking)
        else:
            self._exprs(node, optional, type_checking)

    def _exprs(self, root: ast.AST, optional: bool, type_checking: bool) -> None:
        if not self.scan_exprs:
            return  # the text names nothing an expression could matter for: skip the walk
        for node in ast.walk(root) if self.lines is None else self._walk_relevant(root):
            if isinstance(node, ast.Call):
                self._call(node, optional, type_checking)
            elif isinstance(node, ast.Attribute) and node.attr in RUNTIME_HINTS:
                dist, why = RUNTIME_HINTS[node.attr]
                self.hints.append((self._loc(node), dist, why))
            elif isinstance(node, ast.keyword) and node.arg == "engine":
                value = _literal_str(node.value)
                if value in {"pyarrow", "fastparquet", "openpyxl", "xlsxwriter", "odf", "pyxlsb", "calamine"}:
                    assert value is not None
                    self.hints.append((self._loc(node.value), value, f'engine="{value}" loads {value} at run time'))

    def _walk_relevant(self, root: ast.AST) -> Iterator[ast.AST]:
        """``ast.walk`` (same order) without the subtrees that span no trigger line.

        Every node the walk acts on spells a trigger word inside its own span (a call's name,
        ``sys``, an attribute, ``engine=``), so a subtree whose lines name none holds nothing.
        Inside f-strings (whose inner positions older Pythons get wrong) nothing is skipped.
        """
        lines = self.lines
        assert lines is not None
        n = len(lines)
        todo: deque[tuple[ast.AST, bool]] = deque([(root, True)])
        pop, push = todo.popleft, todo.append
        while todo:
            node, prune = pop()
            if prune:
                start = getattr(node, "lineno", None)
                if start is not None:
                    i = bisect.bisect_left(lines, start)
                    if i == n or lines[i] > (getattr(node, "end_lineno", None) or start):
                        continue
                if isinstance(node, ast.JoinedStr):
                    prune = False
            for name in node._fields:
                value = getattr(node, name, None)
                if isinstance(value, ast.AST):
                    push((value, prune))
                elif isinstance(value, list):
                    for item in value:
                        if isinstance(item, ast.AST):
                            push((item, prune))
            yield node

    def _call(self, node: ast.Call, optional: bool, type_checking: bool) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in _DYNAMIC_FUNCS or (isinstance(func, ast.Name) and name in self.aliases.functions):
            if isinstance(func, ast.Attribute) and name == "import_module":
                base = func.value
                known = ("importlib", *self.aliases.modules)
                if not (isinstance(base, ast.Name) and base.id in known):
                    # e.g. self.import_module(...) on some other object: not importlib's
                    if not (isinstance(base, ast.Attribute) and base.attr == "importlib"):
                        return
            arg = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
            literal = _literal_str(arg)
            if literal is None:
                if arg is not None:
                    self.dynamic.append(self._loc(node))
                return
            level = len(literal) - len(literal.lstrip("."))
            module = literal[level:] or None
            self.imports.append(
                RawImport(
                    node.lineno, node.col_offset + 1, module, (), level, optional, type_checking, True, self.cell,
                    self.conditions,
                )
            )
            return
        if name in {"append", "insert"} and isinstance(func, ast.Attribute):
            target = func.value
            if (
                isinstance(target, ast.Attribute) and target.attr == "path"
                and isinstance(target.value, ast.Name) and target.value.id == "sys"
            ):
                arg = node.args[-1] if node.args else None
                literal = _literal_str(arg)
                # a computed entry (os.path.dirname(__file__), ...): where it points is unknown (SB023 says so)
                self.sys_path.append(literal if literal is not None else f"{DYNAMIC_SYS_PATH}{node.lineno}")


DYNAMIC_SYS_PATH = "<computed>:"  # a sys_path_entries item for a computed entry, with its line (never a root)

_IMPORT_START = re.compile(r"^(\s*)(import|from)\b")
