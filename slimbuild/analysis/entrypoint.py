"""Entrypoints: which code runs first, found from the config, the CLI or the project's layout."""

from __future__ import annotations

import ast
import difflib
import keyword
import os
import shlex
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from slimbuild.analysis.discover import STREAMLIT_RUN, Candidate, candidate_names, config_line, discover, entry_name
from slimbuild.analysis.finder import ModuleFinder
from slimbuild.errors import AnalysisError, ConfigError
from slimbuild.models import Entrypoint, Finding, Severity
from slimbuild.paths import IGNORED_DIRS

if TYPE_CHECKING:
    from slimbuild.cache.replay import Recorder
    from slimbuild.config import Settings


def resolve_entrypoint(root: Path, name: str, spec: str, pythonpath: Sequence[str] = ()) -> Entrypoint:
    """Turn a config or CLI entrypoint spec into an :class:`Entrypoint`; a named function must exist (exit 3).

    ``pythonpath``: the project directories the image puts on ``sys.path`` (``[tool.slimbuild] pythonpath``).
    """
    try:
        entry = _resolve(root, name, spec, tuple(pythonpath))
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long for the file system
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"entrypoint {spec!r} is not a usable path: {reason}", hint="name a file inside the project") from None
    if entry.function and entry.kind != "notebook":
        check_function(root, entry)
    return entry


def search_roots(root: Path, pythonpath: Sequence[str] = ()) -> list[Path]:
    """Where ``python -m``/``python -c`` in the image finds modules: the working directory (the project), the
    configured ``pythonpath`` and ``src/``, in that order."""
    return [root, *(root / p for p in pythonpath), root / "src"]


def _is_dotted(name: str) -> bool:
    return bool(name) and all(p.isidentifier() and not keyword.iskeyword(p) for p in name.split("."))


def _resolve(root: Path, name: str, spec: str, pythonpath: tuple[str, ...] = ()) -> Entrypoint:
    if spec.split()[:2] == STREAMLIT_RUN.split():
        return _streamlit(root, name, spec)
    module_part, colon, function = spec.partition(":")
    if colon and not function.isidentifier():
        raise ConfigError(
            f"entrypoint {spec!r}: {function!r} is not a function name",
            hint="write module:function, e.g. tool.cli:main",
        )
    if function and _is_dotted(module_part):
        # module:function means what importlib makes of the module, before any path is looked at
        found = _module(root, name, spec, module_part, function, pythonpath)
        if found is not None:
            return found
    candidate = (root / module_part).resolve() if module_part else root
    try:
        rel = candidate.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise ConfigError(f"entrypoint {spec!r} is outside the project {root}", hint="name a file inside the project") from None
    if candidate.is_file():
        if candidate.suffix == ".ipynb":
            return Entrypoint(name, spec, "notebook", rel, "__main__", None, function)
        if candidate.suffix == ".py":
            return _script(root, name, spec, candidate, rel, function)
        raise ConfigError(f"entrypoint {spec!r} is not a .py file, a package or a notebook", hint="point it at Python code")
    if candidate.is_dir():
        return _package(root, name, spec, candidate, rel, function)
    # a dotted module, searched as `python -m` searches it
    if not function and _is_dotted(module_part):
        found = _module(root, name, spec, module_part, function, pythonpath)
        if found is not None:
            return found
    raise AnalysisError(
        f"entrypoint {spec!r} not found in {root}",
        hint="name a .py file, a package with __main__.py, a module:function, or a .ipynb notebook",
    )


def _module(
    root: Path, name: str, spec: str, dotted: str, function: str, pythonpath: tuple[str, ...]
) -> Entrypoint | None:
    """``dotted`` resolved as importlib resolves it (a package's ``__init__.py``, else a module's ``.py``; src layout
    too); None when the project has no such module."""
    finder = ModuleFinder(root.resolve(), search_roots(root, pythonpath))
    files = finder.files_for(dotted)
    if not finder.module_exists(dotted):
        return None
    rel = dotted.replace(".", "/")
    target = files[-1] if files else None
    if target is None or not target.as_posix().endswith((f"/{rel}.py", f"/{rel}/__init__.py")):
        if function:  # a namespace package: no file of its own
            raise AnalysisError(
                f"entrypoint {spec!r}: {rel}/ has no __init__.py to define {function!r} in",
                hint=f"name the module that defines it, e.g. {dotted}.cli:{function}",
            )
        return None
    is_package = target.name == "__init__.py"
    package = dotted if is_package else dotted.rpartition(".")[0] or None
    if is_package and (target.parent / "__main__.py").is_file() and not function:
        target = target.parent / "__main__.py"
        dotted = f"{dotted}.__main__"
    relp = target.relative_to(root.resolve()).as_posix()
    return Entrypoint(name, spec, "module", relp, dotted, package, function)


def _streamlit(root: Path, name: str, spec: str) -> Entrypoint:
    """``streamlit run app.py [ARGS]``: the script, traced as a script, served by streamlit in the image."""
    try:
        words = shlex.split(spec)
    except ValueError as exc:
        raise ConfigError(f"entrypoint {spec!r}: {exc}", hint='e.g. entrypoint = "streamlit run app.py"') from None
    if len(words) < 3 or not words[2].endswith(".py"):
        raise ConfigError(f"entrypoint {spec!r} names no script to run", hint='e.g. entrypoint = "streamlit run app.py"')
    entry = _resolve(root, name, words[2])
    return replace(entry, spec=spec, runner="streamlit", args=tuple(words[3:]))


def _script(root: Path, name: str, spec: str, path: Path, rel: str, function: str) -> Entrypoint:
    """A .py file; a package's ``__main__.py`` runs as ``python -m pkg`` (its relative imports work)."""
    if path.name == "__main__.py" and not function and path.parent != root.resolve():
        mod, pkg = ModuleFinder(root.resolve(), [root, root / "src"]).module_name(str(path))
        if pkg and all(p.isidentifier() for p in pkg.split(".")):
            return Entrypoint(name, spec, "package", rel, mod, pkg)
    return Entrypoint(name, spec, "script", rel, "__main__", None, function)


def _package(root: Path, name: str, spec: str, directory: Path, rel: str, function: str) -> Entrypoint:
    """A package directory: its ``__main__.py``, or with ``pkg:func`` the function of its ``__init__.py``."""
    if function:
        init = directory / "__init__.py"
        if not init.is_file():
            raise AnalysisError(
                f"entrypoint {spec!r}: {rel}/ has no __init__.py to define {function!r} in",
                hint=f"name the module that defines it, e.g. {rel.replace('/', '.')}.cli:{function}",
            )
        mod, pkg = ModuleFinder(root.resolve(), [root, root / "src"]).module_name(str(init))
        return Entrypoint(name, spec, "module", f"{rel}/__init__.py", mod, pkg, function)
    main = directory / "__main__.py"
    if main.is_file():
        mod, pkg = ModuleFinder(root.resolve(), [root, root / "src"]).module_name(str(main))
        return Entrypoint(name, spec, "package", f"{rel}/__main__.py", mod, pkg or directory.name, function)
    raise AnalysisError(f"entrypoint {spec!r}: package has no __main__.py", hint="add one, or name a module:function")


def _top_level_names(body: list[ast.stmt]) -> tuple[set[str], bool]:
    """Names a module binds at its top level (through if/try/with blocks), and whether it has a star import."""
    names: set[str] = set()
    star = False
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                star = star or alias.name == "*"
                names.add(alias.asname or alias.name.split(".")[0])
        else:
            for block in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, block, None)
                if isinstance(inner, list) and not isinstance(node, (ast.While, ast.For)):
                    stmts = [s for h in inner for s in h.body] if block == "handlers" else inner
                    more, more_star = _top_level_names(stmts)
                    names |= more
                    star = star or more_star
    return names, star


def check_function(root: Path, entry: Entrypoint) -> None:
    """Exit 3 when ``module:function`` names a function its module does not define (checked with ast).

    A module that cannot be read or parsed is left to the trace, which reports it with its line.
    """
    path = root / entry.path
    try:
        if path.stat().st_size > _CHECK_MAX_BYTES:
            return
        tree = ast.parse(path.read_bytes(), filename=entry.path)
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return
    names, star = _top_level_names(tree.body)
    if entry.function in names or star or "__getattr__" in names:
        return
    functions = sorted(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    close = difflib.get_close_matches(entry.function, sorted(names), n=1)
    if close:
        hint = f"did you mean {entry.spec.rsplit(':', 1)[0]}:{close[0]}?"
    elif functions:
        hint = f"its top-level functions: {', '.join(functions[:8])}" + (", ..." if len(functions) > 8 else "")
    else:
        hint = f"define {entry.function}() at the module's top level, or name the module that does"
    raise AnalysisError(f"entrypoint {entry.spec!r}: {entry.path} defines no {entry.function!r} at its top level", hint=hint)


_CHECK_MAX_BYTES = 10 * 1024 * 1024


class DiskLayout:
    """The project as :func:`slimbuild.analysis.discover.discover` sees it; the files it reads are recorded."""

    def __init__(self, root: Path, record: Recorder | None) -> None:
        self.root = root
        self.record = record
        self._root_files: frozenset[str] | None = None

    def root_files(self) -> frozenset[str]:
        """Regular files at the root (its listing is evidence already: analyzing records it first)."""
        if self._root_files is None:
            try:
                with os.scandir(self.root) as it:
                    self._root_files = frozenset(e.name for e in it if e.is_file())
            except OSError:
                self._root_files = frozenset()
        return self._root_files

    def read(self, rel: str) -> str | None:
        """A root file's text, recorded; None when unreadable or over 1 MB (no entrypoint is found in it)."""
        path = self.root / rel
        if self.record is not None:
            self.record.file(path)
        try:
            if path.stat().st_size > 1024 * 1024:
                return None
            return path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return None

    def exists(self, rel: str) -> bool:
        """Whether the path exists (its directory's listing becomes evidence)."""
        path = self.root / rel
        if self.record is not None:
            self.record.evidence.add_dirs([path.parent])
        return path.exists()

    def notebooks(self) -> tuple[str, ...]:
        """The tree's notebooks; a run that walked the tree is not replayed (its listings are not all recorded)."""
        if self.record is not None:
            self.record.cacheable = False
        return tuple(_has_sources(self.root)[1])


def _has_sources(root: Path) -> tuple[bool, list[str]]:
    """Whether the tree has any .py file, and its notebooks (project-relative), skipping ignored directories."""
    notebooks: list[str] = []
    found_py = False
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS and not d.startswith("."))
        for f in sorted(filenames):
            if f.endswith(".py"):
                found_py = True
            elif f.endswith(".ipynb"):
                notebooks.append(Path(dirpath, f).relative_to(root).as_posix())
    return found_py, sorted(notebooks)


def select_entrypoints(
    settings: Settings, requested: str = "", record: Recorder | None = None, *, single: bool = False
) -> list[tuple[str, str, tuple[Finding, ...]]]:
    """(name, spec, how it was found: SB016 notes) to analyse: the requested one, the configured ones, or those discovered.

    ``single``: the command makes one artifact per entrypoint (lock, build), so several discovered candidates
    are a usage error listing them. Walking the tree for notebooks makes the run's output impossible to replay.
    """
    if requested:
        if requested in settings.entrypoints:
            return [(requested, settings.entrypoints[requested], ())]
        scripts = settings.project.get("scripts")
        if isinstance(scripts, dict) and isinstance(scripts.get(requested), str) and scripts[requested]:
            return [(requested, scripts[requested], ())]  # a [project.scripts] name: its module:function, never a path
        return [(entry_name(requested), requested, ())]
    if settings.entrypoints:
        return [(n, s, ()) for n, s in sorted(settings.entrypoints.items())]
    root = settings.root
    found = discover(DiskLayout(root, record), settings.project)
    candidates = tuple(c for c in found if not c.skip)
    skipped = tuple(
        Finding(c.source, "SB016", f"entrypoint candidate {c.spec!r} skipped: {c.skip}", Severity.INFO) for c in found if c.skip
    )
    if found and not candidates:  # exit 3, as a project with no Python at all (A11, A21)
        raise AnalysisError(
            f"{root}: nothing to build: the project's notebooks are not Python: {_listing(found, skip=True)}",
            hint="slimbuild builds Python analyses only; pass --entrypoint to name Python code",
        )
    if not candidates:
        if record is not None:
            record.cacheable = False
        has_py, _ = _has_sources(root)
        if not has_py:
            raise AnalysisError(
                f"{root}: nothing to build: no Python files or notebooks", hint="run slimbuild in the project's directory"
            )
        raise ConfigError(
            "no entrypoint: slimbuild traces imports from the code that runs first, and found none of the usual"
            " layouts ([project.scripts], Dockerfile CMD, Procfile, app.py/main.py, a root script with"
            " `if __name__ == \"__main__\":`, notebooks)",
            hint="pass --entrypoint FILE|PACKAGE|module:function|NOTEBOOK, or set entrypoint in [tool.slimbuild]",
        )
    if single and len(candidates) > 1:
        raise ConfigError(
            f"{len(candidates)} entrypoint candidates and none configured: {_listing(candidates)}",
            hint=f"pick one: {config_line(candidates[0].spec)}, or --entrypoint {candidates[0].spec}",
        )
    names = candidate_names(candidates)
    return [
        (n, c.spec, (_note(c, candidates), *(skipped if i == 0 else ())))
        for i, (n, c) in enumerate(zip(names, candidates, strict=True))
    ]


def _listing(candidates: tuple[Candidate, ...], limit: int = 10, *, skip: bool = False) -> str:
    def one(c: Candidate) -> str:
        if skip:
            return f"{c.spec} ({c.skip})"
        return c.spec if str(c.source) == c.spec else f"{c.spec} ({c.source})"

    shown = ", ".join(one(c) for c in candidates[:limit])
    return shown + (f" (+{len(candidates) - limit} more)" if len(candidates) > limit else "")


def _note(c: Candidate, candidates: tuple[Candidate, ...]) -> Finding:
    """The SB016 finding that says how an entrypoint was found, and the line that pins it."""
    if len(candidates) == 1:
        message = f"entrypoint {c.spec!r} found from {c.how}; pin it with {config_line(c.spec)}"
    else:
        message = (
            f"entrypoint candidate {c.spec!r} found from {c.how}, one of {len(candidates)}, each analysed;"
            f" pick one with {config_line(c.spec)}"
        )
    return Finding(c.source, "SB016", message, Severity.INFO)
