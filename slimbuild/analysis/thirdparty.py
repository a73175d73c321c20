"""Third-party code as evidence to keep a declared distribution, never to add one.

``pd.read_excel`` needs openpyxl although the project never imports it: pandas does, through
``import_optional_dependency("openpyxl")``. When the wheels (or the environment) of the distributions the
project imports are at hand, :func:`scan` reads their modules' source, the way the project's own files are
read (``ast`` only: nothing is imported or run), to find such imports of a *declared* distribution the
entrypoint does not import itself. :func:`keep_evidenced` keeps those in the image with an SB017 saying why,
instead of leaving them out with an SB002. A distribution nobody declared is never added this way: the
candidates are the declared-but-unused ones, so third-party code can only keep, not add.

The bound: from each module the project imports (depth 0), the modules it imports *within the same
distribution* are followed to depth :data:`MAX_DEPTH` (importing ``a.b.c`` also runs ``a`` and ``a.b``, one step
further), breadth first, and at most :data:`MAX_FILES` files are read in all. An import of another distribution
is evidence but is not followed. Imports under ``if TYPE_CHECKING:`` are not evidence. ``import`` and
``from ... import`` count where they run when the module is imported (module and class level, under
``try``/``except ImportError`` too: that is how optional dependencies are written), not in a function body:
scikit-learn's plotting helpers import matplotlib when called, which is no reason to ship matplotlib with every
scikit-learn user. Literal ``importlib.import_module("x")``, ``__import__("x")`` and pandas'
``import_optional_dependency("x")`` calls count anywhere: they are how a library names its optional dependency.

:func:`scan` and :func:`keep_evidenced` are pure; :class:`WheelReader` and :class:`SiteReader` read the
files (the pipeline builds them at its edge).
"""

from __future__ import annotations

import ast
import os
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from packaging.utils import canonicalize_name

from slimbuild.analysis.imports import DEFAULT_MAX_BYTES, decode_source
from slimbuild.analysis.reconcile import applies_to
from slimbuild.errors import SlimbuildError
from slimbuild.models import Analysis, Finding, Requirement, Severity

MAX_DEPTH = 3  # pandas -> pandas.io.api -> pandas.io.excel -> pandas.io.excel._openpyxl
MAX_FILES = 600  # files read per entrypoint, over all the distributions it imports

# calls whose first argument names a module that is imported (by the call or the helper it names)
_IMPORT_CALLS = frozenset({"import_module", "__import__", "import_optional_dependency"})


@dataclass(frozen=True)
class ModuleSource:
    """One third-party module's source, and where it was read."""

    distribution: str
    label: str  # e.g. "pandas-2.2.3-....whl:pandas/io/excel/_openpyxl.py"
    data: bytes
    is_package: bool
    key: str = ""  # names the content for good (a wheelhouse folder's digest and the member): memoisable


class Reader(Protocol):
    """Where third-party modules are read from (a wheelhouse, site-packages)."""

    def distribution(self, module: str) -> str | None:
        """The distribution whose files hold ``module`` (source or compiled), or None."""

    def read(self, module: str, *, data: bool = True) -> ModuleSource | None:
        """``module``'s source, or None when there is none to read (absent, compiled, too large).

        ``data=False``: everything but the bytes (``b""``), to look a memo up by ``key`` without reading.
        """


@dataclass(frozen=True)
class KeptBy:
    """Why a declared distribution stays: a third-party module imports it."""

    distribution: str
    importer: str  # the third-party module that imports it
    imported: str  # the name it imports
    label: str  # where the importer was read
    line: int
    start: str  # the project's import that reaches the importer


@dataclass(frozen=True)
class ScanResult:
    """What :func:`scan` found, and how much it read."""

    kept: tuple[KeptBy, ...]
    files_read: int
    truncated: bool  # the file cap stopped the scan


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(stmts: Sequence[ast.stmt]) -> Iterator[tuple[ast.stmt, bool]]:
    """Every statement, nested ones included, and whether it is deferred (in a function: it runs when called).

    The bodies of ``if TYPE_CHECKING:`` are left out (their ``else`` runs).
    """
    stack = [(s, False) for s in reversed(stmts)]
    while stack:
        node, deferred = stack.pop()
        yield node, deferred
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend((s, deferred) for s in reversed(node.orelse))
            continue
        inner = deferred or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        nested: list[ast.stmt] = []
        for field in ("body", "orelse", "finalbody"):
            value = getattr(node, field, None)
            if isinstance(value, list):
                nested.extend(v for v in value if isinstance(v, ast.stmt))
        for part in (*getattr(node, "handlers", ()), *getattr(node, "cases", ())):
            nested.extend(part.body)
        stack.extend((s, inner) for s in reversed(nested))


def _calls(stmts: Iterable[ast.stmt]) -> Iterator[ast.Call]:
    """The calls in ``stmts``' own expressions (nested statements come from :func:`_statements`)."""
    for stmt in stmts:
        for field, value in ast.iter_fields(stmt):
            if field in ("body", "orelse", "finalbody", "handlers", "cases"):
                continue
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, ast.AST):
                    yield from (n for n in ast.walk(item) if isinstance(n, ast.Call))


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str | None:
    """The absolute name of ``from <level dots><module> import``, in ``importer``; None beyond the top."""
    if level == 0:
        return module
    parts = importer.split(".") if is_package else importer.split(".")[:-1]
    if level - 1 >= len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _call_module(node: ast.Call) -> str | None:
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name not in _IMPORT_CALLS or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value and not arg.value.startswith("."):
        return arg.value
    return None


def imported_names(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted name) of what ``module``'s source imports, in source order; [] when it cannot be parsed.

    Statements at import time (module and class level, ``try``/``except ImportError`` included) and the
    optional-dependency calls anywhere; not a plain ``import`` in a function, which runs only when called.
    ``from a import b`` yields ``a`` and ``a.b`` (``b`` may be a submodule; the reader tells).
    """
    try:
        found = list(_statements(ast.parse(source).body))
        # the calls are looked for only where one of their names occurs: walking every expression is the slow part
        calls = list(_calls(n for n, _ in found)) if any(c in source for c in _IMPORT_CALLS) else []
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    out: list[tuple[int, str]] = []
    for node, deferred in found:
        if deferred:
            continue  # a plain import in a function runs only if it is called (sklearn's plotting helpers)
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, module, is_package)
            if base:
                out.append((node.lineno, base))
                out.extend((node.lineno, f"{base}.{a.name}") for a in node.names if a.name != "*")
    for call in calls:
        called = _call_module(call)
        if called:
            out.append((call.lineno, called))
    return sorted(out, key=lambda t: t[0])


def _imports_of(src: ModuleSource, module: str, max_bytes: int) -> list[tuple[int, str]]:
    try:
        return imported_names(decode_source(src.data, src.label, max_bytes), module, src.is_package)
    except SlimbuildError:
        return []  # undecodable: evidence of nothing


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def _start_module(reader: Reader, module: str) -> str | None:
    """``module``, or its longest prefix the reader has (``from a.b import f`` is recorded as ``a.b``)."""
    for name in [module, *_parents(module)]:
        if reader.distribution(name) is not None:
            return name
    return None


# long: one breadth-first walk with its queue, bounds and evidence in one place reads best
def scan(
    starts: Iterable[str],
    candidates: Iterable[str],
    owner: Callable[[str], str | None],
    reader: Reader,
    *,
    max_depth: int = MAX_DEPTH,
    max_files: int = MAX_FILES,
    max_bytes: int = DEFAULT_MAX_BYTES,
    memo: MutableMapping[str, list[tuple[int, str]]] | None = None,
) -> ScanResult:
    """The first import of each candidate distribution found in third-party code the ``starts`` reach.

    ``owner`` maps an imported name to its distribution (the resolution chain); ``candidates`` are the declared
    distributions the entrypoint does not import itself. Deterministic: starts are taken sorted, and each file's
    imports in source order. ``memo`` holds the imports of sources with a ``key`` (wheels never change): it is
    read and filled.
    """
    wanted = {canonicalize_name(c) for c in candidates}
    kept: dict[str, KeptBy] = {}
    queue: deque[tuple[str, int, str]] = deque()
    seen: set[str] = set()
    for start in sorted(set(starts)):
        found = _start_module(reader, start)
        if found is not None and found not in seen:
            seen.add(found)
            queue.append((found, 0, start))
    files = 0
    while queue and wanted - kept.keys():
        module, depth, start = queue.popleft()
        if files >= max_files:
            return ScanResult(tuple(kept[d] for d in sorted(kept)), files, True)
        src = reader.read(module, data=memo is None)
        if src is None:
            continue
        files += 1
        names = memo.get(src.key) if memo is not None and src.key else None
        if names is None:
            full = reader.read(module) if memo is not None else src
            names = _imports_of(full, module, max_bytes) if full is not None else []
            if memo is not None and src.key:
                memo[src.key] = names
        follow = [] if depth >= max_depth else [(0, p) for p in _parents(module)]
        for line, name in names:
            same = reader.distribution(name) == src.distribution
            dist = None if same else owner(name)
            if dist in wanted and dist not in kept and dist != src.distribution:
                kept[dist] = KeptBy(dist, module, name, src.label, line, start)
            elif depth < max_depth:
                follow.append((line, name))
        for _, name in follow:
            if name not in seen and reader.distribution(name) == src.distribution:
                seen.add(name)
                queue.append((name, depth + 1, start))
    return ScanResult(tuple(kept[d] for d in sorted(kept)), files, False)


def _finding_key(f: Finding) -> tuple[str, int, int, int, str, str]:
    return (f.location.path, f.location.cell or 0, f.location.line, f.location.col, f.code, f.message)


def reason(k: KeptBy) -> str:
    """The ``via`` of a distribution kept by third-party evidence (shown in the analysis JSON and text)."""
    return f"imported by {k.importer}"


def keep_evidenced(a: Analysis, kept: Sequence[KeptBy]) -> Analysis:
    """``a`` with each declared-but-unused distribution in ``kept`` required instead, SB002 replaced by SB017."""
    by_dist = {k.distribution: k for k in kept}
    moved = [d for d in a.unused if d.name in by_dist]
    if not moved:
        return a
    names = {d.name for d in moved}
    required = list(a.required)
    findings = [
        f for f in a.findings
        if not (f.code == "SB002" and any(f.location == d.source and f.message.startswith(f"'{d.name}' ") for d in moved))
        and not (f.code == "SB010" and any(f"add '{n}' to keep" in f.message for n in names))  # it is kept now
    ]
    for d in moved:
        k = by_dist[d.name]
        spec = ",".join(sorted({x.specifier for x in a.declared if x.name == d.name and x.specifier
                                and applies_to(x, a.target_python)}))
        required.append(Requirement(d.name, (), (reason(k),), True, spec))
        findings.append(
            Finding(
                d.source, "SB017",
                f"'{d.name}' is kept in the image: the entrypoint does not import it, but {k.importer} does "
                f"({k.label}:{k.line}, reached from '{k.start}')",
                Severity.INFO,
            )
        )
    return replace(
        a,
        required=tuple(sorted(required, key=lambda r: r.name)),
        unused=tuple(d for d in a.unused if d.name not in names),
        findings=tuple(sorted(set(findings), key=_finding_key)),
    )


# --------------------------------------------------------------------------- readers (I/O)


def _module_of(member: str) -> tuple[str, bool, bool] | None:
    """(dotted module, is a package, has source) of a wheel or site-packages path; None for other files."""
    parts = member.split("/")
    if not parts or parts[0].endswith((".dist-info", ".data")) or "__pycache__" in parts:
        return None
    last = parts[-1]
    if last.endswith(".py"):
        stem, source = last[:-3], True
    elif last.endswith((".so", ".pyd")):
        stem, source = last.split(".", 1)[0], False
    else:
        return None
    chain = parts[:-1] if stem == "__init__" else [*parts[:-1], stem]
    if not chain or not all(p.isidentifier() for p in chain):
        return None
    return ".".join(chain), stem == "__init__", source


class WheelReader:
    """Modules of wheel files, read from the zips (nothing is extracted)."""

    def __init__(self, wheels: Mapping[str, Path], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._zips: list[zipfile.ZipFile] = []
        self._modules: dict[str, tuple[str, zipfile.ZipFile, str, bool, bool]] = {}
        for dist, path in sorted(wheels.items()):
            try:
                zf = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError):
                continue  # a corrupt wheel is evidence of nothing; `slimbuild lock` verifies it
            self._zips.append(zf)
            for member in sorted(zf.namelist()):
                mod = _module_of(member)
                if mod is not None and (mod[0] not in self._modules or mod[2]):
                    self._modules[mod[0]] = (canonicalize_name(dist), zf, member, mod[1], mod[2])

    def close(self) -> None:
        """Close the wheel files."""
        for zf in self._zips:
            zf.close()

    def distribution(self, module: str) -> str | None:
        """The distribution whose wheel holds ``module``."""
        hit = self._modules.get(module)
        return hit[0] if hit else None

    def read(self, module: str, *, data: bool = True) -> ModuleSource | None:
        """``module``'s source from its wheel."""
        hit = self._modules.get(module)
        if hit is None or not hit[4]:
            return None
        dist, zf, member, is_package, _ = hit
        try:
            if zf.getinfo(member).file_size > self._max_bytes:
                return None
            content = zf.read(member) if data else b""
        except (zipfile.BadZipFile, OSError, KeyError, ValueError):
            return None
        wheel = Path(zf.filename or "")
        return ModuleSource(dist, f"{wheel.name}:{member}", content, is_package, f"{wheel.parent.name}/{wheel.name}:{member}")


class SiteReader:
    """Modules of an environment's site-packages directories; ``owner`` names the distribution of a module."""

    def __init__(self, site_dirs: Sequence[Path], owner: Callable[[str], str | None], max_bytes: int = DEFAULT_MAX_BYTES):
        self._dirs = tuple(site_dirs)
        self._owner = owner
        self._max_bytes = max_bytes

    def _file(self, module: str) -> tuple[Path, bool] | None:
        rel = module.replace(".", "/")
        for d in self._dirs:
            for path, is_package in ((d / rel / "__init__.py", True), (d / f"{rel}.py", False)):
                if path.is_file():
                    return path, is_package
        return None

    def distribution(self, module: str) -> str | None:
        """The distribution the environment says provides ``module``, when its source is there."""
        return self._owner(module) if self._file(module) is not None else None

    def read(self, module: str, *, data: bool = True) -> ModuleSource | None:
        """``module``'s source from site-packages (no ``key``: a file there may change)."""
        found = self._file(module)
        dist = self._owner(module)
        if found is None or dist is None:
            return None
        path, is_package = found
        try:
            if os.path.getsize(path) > self._max_bytes:
                return None
            content = path.read_bytes() if data else b""
        except OSError:
            return None
        return ModuleSource(dist, str(path), content, is_package)


class ChainReader:
    """The first reader that has a module: the lock's wheels (what the image gets), then the environment."""

    def __init__(self, readers: Sequence[Reader]) -> None:
        self._readers = tuple(readers)

    def _first(self, module: str) -> Reader | None:
        return next((r for r in self._readers if r.distribution(module) is not None), None)

    def distribution(self, module: str) -> str | None:
        """See :meth:`Reader.distribution`."""
        r = self._first(module)
        return r.distribution(module) if r is not None else None

    def read(self, module: str, *, data: bool = True) -> ModuleSource | None:
        """See :meth:`Reader.read`."""
        r = self._first(module)
        return r.read(module, data=data) if r is not None else None
