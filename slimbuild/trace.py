"""Follow first-party imports from an entrypoint; classify every import.

Only what the entrypoint reaches counts. Files are parsed in worker processes
as soon as they are discovered, and parse results are cached by content hash
(see :mod:`slimbuild.parsecache`), so a warm run reads and hashes files only.
"""

from __future__ import annotations

import gc
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slimbuild import conditions, mapping
from slimbuild.errors import AnalysisError, ConfigError
from slimbuild.evidence import FileStamp, Listing, TraceEvidence, digest_bytes, file_stamp, scan_dir
from slimbuild.models import Finding, ImportGraph, ImportSite, Location, ParsedSource, RawImport, Severity
from slimbuild.stdlib import stdlib_modules

if TYPE_CHECKING:  # the parser's pool is imported only when a cold run needs one
    import concurrent.futures as cf

# Directories that are never first-party code: environments, build output, caches.
IGNORED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".venv", "venv", ".env", "env", "site-packages", "dist-packages", "build", "dist",
        "node_modules", "__pycache__", ".tox", ".nox", ".eggs", ".mypy_cache", ".pytest_cache", ".ruff_cache",
        ".ipynb_checkpoints", ".cache",
    }
)
_PARALLEL_MIN = 2  # cache misses parsed inline before worker processes start
_BATCH_MAX = 8  # files per round trip to a worker
_WORKER_KEEP_CHARS = 4 << 20  # source a worker keeps parsed trees for: about 35 bytes of tree a character, ~150 MB


@dataclass(frozen=True)
class Entrypoint:
    """A resolved entrypoint: the file that runs first and how it is run."""

    name: str
    spec: str
    kind: str  # "script" | "package" | "module" | "notebook"
    path: str  # relative POSIX path of the first file
    module: str  # dotted module name ("__main__" for scripts and notebooks)
    package: str | None  # package for relative imports
    function: str = ""


def _join(d: str, name: str) -> str:
    return d + name if d.endswith("/") else f"{d}/{name}"


class ModuleFinder:
    """Finds first-party modules in an ordered list of search roots.

    Paths are plain strings inside (resolved roots joined with listed names): the finder answers
    thousands of questions per trace, and ``pathlib`` objects would dominate its cost.
    """

    def __init__(self, root: Path, roots: Iterable[Path], virtual: Iterable[str] = ()) -> None:
        self.root = root
        self.roots: list[str] = []  # resolved search roots, in order
        self.virtual: set[str] = set(virtual)
        self._memo: dict[str, list[str] | None] = {}
        self._tops: dict[str, str | None] = {}
        self._dirs: dict[str, Listing] = {}
        self._linked: dict[str, frozenset[str]] = {}  # dir -> names in it that are symlinks
        self._exists: dict[str, bool] = {}
        self._by_depth: list[str] | None = None
        self.root_checks: dict[str, tuple[str, bool]] = {}  # every candidate root asked about: (resolved, is a dir)
        for r in roots:
            self.add_root(r)

    def add_root(self, r: Path) -> bool:
        """Add a search root (e.g. from ``sys.path.append``); True when new."""
        cand = str(r)
        r = r.resolve()
        is_dir = r.is_dir()
        resolved = str(r)
        self.root_checks[cand] = (resolved, is_dir)
        if resolved in self.roots or not is_dir:
            return False
        try:
            rel = r.relative_to(self.root)
        except ValueError:
            return False  # outside the project: not first-party
        if any(part in IGNORED_DIRS for part in rel.parts):
            return False  # a virtualenv, site-packages or build output is never first-party
        self.roots.append(resolved)
        self._by_depth = None
        self._memo.clear()
        self._tops.clear()
        self._exists.clear()  # listings stay valid: they do not depend on the roots
        return True

    def _listing(self, d: str) -> Listing:
        """Files and subdirectories of ``d``, read once: imports ask about the same dirs thousands of times."""
        hit = self._dirs.get(d)
        if hit is None:
            hit = self._dirs[d] = scan_dir(d)
        return hit

    def listings(self) -> dict[str, Listing]:
        """Every directory listing consulted so far (the evidence a cached graph depends on)."""
        return dict(self._dirs)

    def is_real(self, path: str) -> bool:
        """True when ``path`` (a file this finder returned) is its own real path: no part below its root is a symlink.

        Every directory on the way was listed, and listings name their symlinks; False means "ask realpath".
        """
        for r in self.roots:
            prefix = r if r.endswith("/") else r + "/"
            if path.startswith(prefix):
                d = r
                for name in path[len(prefix):].split("/"):
                    if d not in self._dirs:
                        return False
                    linked = self._linked.get(d)
                    if linked is None:
                        linked = self._linked[d] = frozenset(n for n, _ in self._dirs[d][2])
                    if name in linked or name in ("", ".", ".."):
                        return False
                    d = _join(d, name)
                return True
        return False

    def _has_python(self, d: str, depth: int = 2) -> bool:
        files, dirs, _ = self._listing(d)
        if any(os.path.splitext(f)[1] in {".py", ".pyi"} for f in files):
            return True
        if depth > 1:
            for name in sorted(dirs):
                if name not in IGNORED_DIRS and name.isidentifier() and self._has_python(_join(d, name), depth - 1):
                    return True
        return False

    def _is_file(self, d: str, name: str) -> bool:
        return name in self._listing(d)[0]

    def _is_dir(self, d: str, name: str) -> bool:
        return name in self._listing(d)[1]

    def _locate_top(self, top: str) -> str | None:
        try:
            return self._tops[top]
        except KeyError:
            found = self._tops[top] = self._find_top(top)
            return found

    def _find_top(self, top: str) -> str | None:
        if not top.isidentifier() or top in IGNORED_DIRS:
            return None
        # Regular modules and packages win over namespace portions (PEP 420).
        for r in self.roots:
            if self._is_file(r, f"{top}.py"):
                return _join(r, f"{top}.py")
            if self._is_dir(r, top) and self._is_file(_join(r, top), "__init__.py"):
                return _join(r, top)
        for r in self.roots:
            d = _join(r, top)
            if self._is_dir(r, top) and self._has_python(d):
                return d
        return None

    def is_first_party(self, top: str) -> bool:
        """True when the top-level name is a module of the project."""
        return top in self.virtual or self._locate_top(top) is not None

    def files_for(self, dotted: str) -> list[Path] | None:
        """Files executed by importing ``dotted`` (parents' ``__init__`` first); None if not first-party."""
        files = self.file_paths(dotted)
        return None if files is None else [Path(f) for f in files]

    def file_paths(self, dotted: str) -> list[str] | None:
        """:meth:`files_for`, as strings."""
        try:
            return self._memo[dotted]
        except KeyError:
            pass
        parts = dotted.split(".")
        top = self._locate_top(parts[0])
        result: list[str] | None
        if top is None:
            result = None
        else:
            files: list[str] = []
            current = top
            is_module = current.endswith(".py")
            for i, part in enumerate(parts):
                if i > 0:
                    if is_module:
                        break  # attribute of a module, not a submodule
                    if self._is_file(current, f"{part}.py"):
                        current, is_module = _join(current, f"{part}.py"), True
                    elif part.isidentifier() and self._is_dir(current, part):
                        current = _join(current, part)
                    else:
                        break
                if is_module:
                    files.append(current)
                elif self._is_file(current, "__init__.py"):
                    files.append(_join(current, "__init__.py"))
            result = files
        self._memo[dotted] = result
        return result

    def module_exists(self, dotted: str) -> bool:
        """True when ``dotted`` names an existing first-party module or package."""
        try:
            return self._exists[dotted]
        except KeyError:
            found = self._exists[dotted] = self._module_exists(dotted)
            return found

    def _module_exists(self, dotted: str) -> bool:
        parts = dotted.split(".")
        top = self._locate_top(parts[0])
        if top is None:
            return False
        current = top
        is_module = current.endswith(".py")
        for part in parts[1:]:
            if is_module:
                return False
            if self._is_file(current, f"{part}.py"):
                current, is_module = _join(current, f"{part}.py"), True
            elif self._is_dir(current, part):
                current = _join(current, part)
            else:
                return False
        return True

    def module_name(self, path: Path | str) -> tuple[str, str | None]:
        """Dotted name and package of a first-party file, from the deepest root it lies under (src/ beats the root)."""
        if self._by_depth is None:
            self._by_depth = sorted(self.roots, key=lambda root: len(Path(root).parts), reverse=True)
        p = str(path)
        for r in self._by_depth:
            prefix = r if r.endswith("/") else r + "/"
            if not p.startswith(prefix) or p == prefix:
                continue
            parts = p[len(prefix):].split("/")
            if "" in parts or "." in parts:  # not a normalised path: let pathlib decide
                return self._module_name_path(Path(p))
            last = parts[-1]
            dot = last.rfind(".")
            if 0 < dot < len(last) - 1:
                parts[-1] = last[:dot]  # Path.with_suffix("")
            if parts[-1] == "__init__":
                parts = parts[:-1]
                return ".".join(parts), ".".join(parts)
            return ".".join(parts), ".".join(parts[:-1]) or None
        return self._module_name_path(Path(p))

    def _module_name_path(self, path: Path) -> tuple[str, str | None]:
        for r in sorted(self.roots, key=lambda root: len(Path(root).parts), reverse=True):
            try:
                rel = path.relative_to(r)
            except ValueError:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
                return ".".join(parts), ".".join(parts)
            return ".".join(parts), ".".join(parts[:-1]) or None
        return path.stem, None


def resolve_entrypoint(root: Path, name: str, spec: str) -> Entrypoint:
    """Turn a config or CLI entrypoint spec into an :class:`Entrypoint`."""
    module_part, _, function = spec.partition(":")
    candidate = (root / module_part).resolve() if module_part else root
    try:
        rel = candidate.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise ConfigError(f"entrypoint {spec!r} is outside the project {root}", hint="name a file inside the project") from None
    if candidate.is_file():
        if candidate.suffix == ".ipynb":
            return Entrypoint(name, spec, "notebook", rel, "__main__", None, function)
        if candidate.suffix == ".py":
            return Entrypoint(name, spec, "script", rel, "__main__", None, function)
        raise ConfigError(f"entrypoint {spec!r} is not a .py file, a package or a notebook", hint="point it at Python code")
    if candidate.is_dir():
        main = candidate / "__main__.py"
        if main.is_file():
            return Entrypoint(name, spec, "package", f"{rel}/__main__.py", f"{candidate.name}.__main__", candidate.name, function)
        raise AnalysisError(f"entrypoint {spec!r}: package has no __main__.py", hint="add one, or name a module:function")
    # dotted module, possibly module:function, searched in root and src/
    dotted = module_part
    if dotted and all(p.isidentifier() for p in dotted.split(".")):
        finder = ModuleFinder(root.resolve(), [root, root / "src"])
        files = finder.files_for(dotted)
        if files and finder.module_exists(dotted):
            target = files[-1]
            if target.name == "__init__.py" and (target.parent / "__main__.py").is_file() and not function:
                target = target.parent / "__main__.py"
            mod, pkg = finder.module_name(target)
            relp = target.relative_to(root.resolve()).as_posix()
            return Entrypoint(name, spec, "module", relp, mod, pkg, function)
    raise AnalysisError(
        f"entrypoint {spec!r} not found in {root}",
        hint="name a .py file, a package with __main__.py, a module:function, or a .ipynb notebook",
    )


Job = tuple[str, str]  # (absolute path, relative path)
# A parse result, or an error's (message, hint); with the content digest of the bytes parsed when asked for.
JobResult = tuple[ParsedSource | tuple[str, str], str]


def _parse_job(abs_path: str, rel: str, allow_unparseable: bool, max_bytes: int, digest: bool = False) -> JobResult:
    """Read and parse one file; errors come back as (message, hint). ``digest``: also hash what was read."""
    import gc

    from slimbuild.imports import NOTEBOOK_SIZE_FACTOR, check_size

    collecting = gc.isenabled()
    gc.disable()  # an AST is a tree: collecting while it is built (or freed) finds nothing and costs a quarter of the parse
    try:
        limit = max_bytes * NOTEBOOK_SIZE_FACTOR if rel.endswith(".ipynb") else max_bytes
        with open(abs_path, "rb") as fh:
            data = fh.read(limit + 1)  # bounded memory: never read more than the limit
            if len(data) > limit:
                check_size(os.fstat(fh.fileno()).st_size, rel, limit, "a notebook" if rel.endswith(".ipynb") else "Python source")
        # the digest evidence.digest_file gives: the whole file was read, being within the limit
        sha = digest_bytes(data) if digest else ""
        return parse_file_bytes(data, rel, allow_unparseable=allow_unparseable, max_bytes=max_bytes), sha
    except AnalysisError as exc:
        return (exc.message, exc.hint), ""
    except OSError as exc:
        return (f"{rel}: cannot read ({exc.strerror})", "check the file's permissions"), ""
    finally:
        if collecting:
            gc.enable()


def _parse_batch(jobs: list[Job], allow_unparseable: bool, max_bytes: int, digest: bool) -> list[JobResult]:
    """Worker: parse several files (one round trip for a batch)."""
    return [_parse_job(abs_path, rel, allow_unparseable, max_bytes, digest) for abs_path, rel in jobs]


def _worker_init(keep_chars: int) -> None:
    import gc

    from slimbuild.imports import keep_trees

    gc.disable()  # a short-lived parser makes no reference cycles worth collecting; ASTs are trees
    keep_trees(keep_chars)


def parse_file_bytes(data: bytes, rel: str, *, allow_unparseable: bool, max_bytes: int) -> ParsedSource:
    """Parse a ``.py`` or ``.ipynb`` file's bytes, applying the unparseable policy."""
    from slimbuild.imports import NOTEBOOK_SIZE_FACTOR, decode_source, parse_source, scan_tokens

    if rel.endswith(".ipynb"):
        from slimbuild.notebook import parse_notebook

        return parse_notebook(data, rel, allow_unparseable=allow_unparseable, max_bytes=max_bytes * NOTEBOOK_SIZE_FACTOR)
    try:
        text = decode_source(data, rel, max_bytes)
    except AnalysisError as exc:
        if not allow_unparseable or len(data) > max_bytes:
            raise
        return scan_tokens(data.decode("latin-1"), rel, reason=exc.message)
    return parse_source(text, rel, allow_unparseable=allow_unparseable)


class Parser:
    """Parses files through a content-hash cache; on a big cold run, in a pool of worker processes.

    Cache misses are parsed here until there are a few; then a process pool (one worker a core)
    starts and is kept fed with small batches from a backlog, while this process only classifies
    what comes back and finds the next files. Measured on sympy: this process parsing too (and
    freeing its trees, which forked workers need not do) left the workers less of the machine.

    With an empty cache nothing can hit, so this process does not read files at all: ``submit``
    takes no digest, and the worker that reads a file to parse it hashes it too (``digests``).
    """

    def __init__(self, cache: dict[tuple[str, str], ParsedSource] | None, *, allow_unparseable: bool, max_bytes: int) -> None:
        self.cache = cache if cache is not None else {}
        self.used: dict[tuple[str, str], ParsedSource] = {}
        self.allow = allow_unparseable
        self.max_bytes = max_bytes
        self._pool: cf.ProcessPoolExecutor | None = None
        self._workers = 0
        self._pending: dict[cf.Future[list[JobResult]], list[Job]] = {}
        self._backlog: deque[Job] = deque()
        self._ready: list[ParsedSource] = []
        self.key_salt = f"{int(allow_unparseable)}:{max_bytes}"
        self._misses = 0
        self.digests: dict[str, str] = {}  # absolute path -> digest, for files submitted without one

    @property
    def needs_digests(self) -> bool:
        """Whether ``submit`` needs a file's digest (to look it up); with an empty cache the worker hashes."""
        return bool(self.cache)

    def submit(self, abs_path: Path | str, rel: str, digest: str | None) -> None:
        """Queue a file for parsing; cached results are ready at once."""
        if digest is not None:
            self.digests[str(abs_path)] = digest
            hit = self.cache.get((rel, f"{digest}:{self.key_salt}"))
            if hit is not None:
                self.used[(rel, f"{digest}:{self.key_salt}")] = hit
                self._ready.append(hit)
                return
        self._misses += 1
        if self._pool is None and self._misses >= _PARALLEL_MIN and (os.cpu_count() or 1) > 1:
            import concurrent.futures as cf
            import multiprocessing
            import sys

            ctx = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else None
            self._workers = min(os.cpu_count() or 2, 8)
            # A forked worker ends with os._exit and frees nothing: it keeps its trees (up to a budget) rather
            # than spend a sixth of each parse freeing them. A spawned one exits through sys.exit: it frees.
            keep = _WORKER_KEEP_CHARS if ctx is not None else 0
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self._workers, mp_context=ctx, initializer=_worker_init, initargs=(keep,)
            )
        if self._pool is None:
            self._accept(_parse_job(str(abs_path), rel, self.allow, self.max_bytes, digest is None), (str(abs_path), rel))
            return
        self._backlog.append((str(abs_path), rel))
        self._feed()

    def _feed(self) -> None:
        """Keep every worker busy with a batch in hand and one queued, leaving the rest of the backlog here."""
        assert self._pool is not None
        backlog = self._backlog
        while backlog and len(self._pending) < 2 * self._workers:
            size = max(1, min(_BATCH_MAX, len(backlog) // (3 * self._workers)))
            batch = [backlog.popleft() for _ in range(size)]
            fut = self._pool.submit(_parse_batch, batch, self.allow, self.max_bytes, not self.needs_digests)
            self._pending[fut] = batch

    def _accept(self, result: JobResult, job: Job) -> None:
        parsed, digest = result
        if isinstance(parsed, tuple):
            self.close()
            raise AnalysisError(parsed[0], parsed[1])
        if digest:
            self.digests[job[0]] = digest
        self.used[(job[1], f"{self.digests[job[0]]}:{self.key_salt}")] = parsed
        self._ready.append(parsed)

    def _collect(self, done: Iterable[cf.Future[list[JobResult]]]) -> None:
        for fut in sorted(done, key=lambda f: self._pending[f]):
            jobs = self._pending.pop(fut)
            for result, job in zip(fut.result(), jobs):
                self._accept(result, job)
        if self._pool is not None:
            self._feed()

    def results(self) -> Iterable[ParsedSource]:
        """Yield parsed files as they complete, until nothing is queued."""
        while self._ready or self._pending or self._backlog:
            while self._ready:
                yield self._ready.pop()
            done = [f for f in self._pending if f.done()]
            if done:
                self._collect(done)
            elif self._pending:
                import concurrent.futures as cf

                finished, _ = cf.wait(list(self._pending), return_when=cf.FIRST_COMPLETED)
                self._collect(finished)
            elif self._backlog:
                self._feed()  # a backlog with nothing in flight: hand it to the workers

    def close(self) -> None:
        """Stop worker processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._backlog.clear()


def trace(
    root: Path,
    entry: Entrypoint,
    *,
    target_python: str,
    parser: Parser,
    read_digest: Callable[[Path], str],
    evidence: TraceEvidence | None = None,
) -> ImportGraph:
    """Follow first-party imports from ``entry`` and classify every import it reaches.

    ``evidence``, when given, is filled with what the graph depends on (see :class:`TraceEvidence`).
    """
    root = root.resolve()
    entry_abs = root / entry.path
    roots = [root]
    if entry.kind in {"script", "notebook"}:
        roots.insert(0, entry_abs.parent)  # sys.path[0] is the script's directory
    roots.append(root / "src")  # a search root only when it is a directory (add_root checks)
    finder = ModuleFinder(root, roots)
    stdlib = stdlib_modules(target_python)
    target = conditions.version_of(target_python)
    # the file the image starts runs as __main__ (unless a function of it is called); files it imports do not
    main_file = entry.path if entry.kind == "notebook" or not entry.function else None

    names: dict[str, tuple[str, str | None]] = {}  # rel path -> (module, package)
    seen: set[str] = set()
    third: set[ImportSite] = set()
    std: set[str] = set()
    dynamic: set[Location] = set()
    pip_hints: set[tuple[Location, str]] = set()
    runtime: set[tuple[Location, str, str]] = set()
    findings: set[Finding] = set()
    unparsed: set[str] = set()
    never_run: set[ImportSite] = set()
    deferred: list[tuple[RawImport, str]] = []  # third-party candidates re-checked after sys.path changes

    rel_of: dict[str, str | None] = {}  # every enqueued path -> its project-relative path (None: outside)
    # path -> (file it imports, whether only under `except ImportError`): a module reached only through guarded
    # imports is optional as a whole (if one of its imports fails, the guard catches it)
    edges: dict[str, set[tuple[str, bool]]] = {}
    stamps: dict[str, FileStamp | None] = {}
    root_s = str(root)
    root_prefix = root_s if root_s.endswith("/") else root_s + "/"

    def enqueue(p: str, module: str | None = None, package: str | None = None) -> str | None:
        """Queue a file for parsing once; its project-relative path (None: outside the project)."""
        if p in rel_of:
            return rel_of[p]  # the common case: a module imported from many files
        rel_of[p] = None
        # Files the finder built from listings without symlinks are already real: skip realpath's lstat per part.
        real = p if finder.is_real(p) else str(Path(p).resolve())
        if not real.startswith(root_prefix):
            return None
        rel = rel_of[p] = real[len(root_prefix):]
        if rel in seen:
            return rel
        seen.add(rel)
        if module is None:
            module, package = finder.module_name(real)
        names[rel] = (module, package)
        try:
            if evidence is not None:
                stamps[p] = file_stamp(p)  # before the read: a later change shows in the stat
            # an oversize file is keyed without reading it, and refused by the parser either way
            digest = read_digest(Path(p)) if parser.needs_digests else None
        except OSError as exc:
            raise AnalysisError(f"{rel}: cannot read ({exc.strerror})", hint="check the file's permissions") from None
        parser.submit(p, rel, digest)
        return rel

    def follow(dotted: str, site: RawImport, path: str) -> bool:
        files = finder.file_paths(dotted)
        if files is None:
            return False
        for f in files:
            rel = enqueue(f)
            if rel is not None:
                edges.setdefault(path, set()).add((rel, site.optional))
        if not finder.module_exists(dotted) and dotted.split(".")[0] not in finder.virtual:
            findings.add(
                Finding(Location(path, site.line, site.col, site.cell), "SB011",
                        f"first-party module '{dotted}' not found", Severity.WARNING)
            )
        return True

    def classify(imp: RawImport, path: str) -> None:
        package = names[path][1]
        loc = Location(path, imp.line, imp.col, imp.cell)
        if imp.conditions and conditions.never_runs(imp.conditions, target, is_main=path == main_file):
            # e.g. `if sys.version_info < (3, 8): import importlib_metadata` on a 3.11 target, or an import in the
            # `if __name__ == "__main__":` block of an imported module: never run. Listed when third-party; a
            # first-party module imported so is not followed.
            if imp.module and not imp.level:
                top = imp.module.split(".")[0]
                if top not in stdlib and not finder.is_first_party(top):
                    never_run.add(ImportSite(imp.module, loc, imp.optional, imp.type_checking))
            return
        # A first-party module imported for type checkers only is not run: its file and imports stay out.
        if imp.level > 0:
            if imp.type_checking:
                return
            if not package:
                findings.add(Finding(loc, "SB009", "relative import outside a package is ignored", Severity.WARNING))
                return
            parts = package.split(".")
            if imp.level - 1 >= len(parts):
                findings.add(Finding(loc, "SB009", "relative import beyond the top-level package is ignored", Severity.WARNING))
                return
            base = ".".join(parts[: len(parts) - (imp.level - 1)])
            absolute = f"{base}.{imp.module}" if imp.module else base
            follow(absolute, imp, path)
            for n in imp.names:
                if finder.module_exists(f"{absolute}.{n}"):
                    follow(f"{absolute}.{n}", imp, path)
            return
        if not imp.module:
            return
        top = imp.module.split(".")[0]
        if finder.is_first_party(top):
            if imp.type_checking or (top in finder.virtual and finder.file_paths(top) is None):
                return
            follow(imp.module, imp, path)
            for n in imp.names:
                if finder.module_exists(f"{imp.module}.{n}"):
                    follow(f"{imp.module}.{n}", imp, path)
            return
        if top in stdlib:
            std.add(top)
            return
        deferred.append((imp, path))

    def third_party(imp: RawImport, path: str, optional: bool) -> None:
        assert imp.module is not None
        loc = Location(path, imp.line, imp.col, imp.cell)
        modules = [imp.module]
        if imp.names and mapping.is_namespace_root(imp.module):
            modules = [f"{imp.module}.{n}" for n in imp.names]
        for m in modules:
            third.add(ImportSite(m, loc, imp.optional or optional, imp.type_checking))

    starts = [enqueue(str(entry_abs), entry.module, entry.package)]
    if entry.package:
        # `python -m pkg.mod` runs the parent packages' __init__ first.
        for init in finder.file_paths(entry.package) or []:
            starts.append(enqueue(init))
    collecting = gc.isenabled()
    gc.disable()  # the trace allocates much and frees little, and makes no cycles: the collector only costs time
    try:
        while True:
            for parsed in parser.results():
                path = parsed.path
                findings.update(parsed.findings)
                dynamic.update(parsed.dynamic_unresolved)
                pip_hints.update(parsed.pip_hints)
                runtime.update(parsed.runtime_hints)
                if parsed.fallback:
                    unparsed.add(path)
                for w in parsed.written_modules:
                    finder.virtual.add(Path(w).stem)
                for entry_dir in parsed.sys_path_entries:
                    for cand in (root / entry_dir, (root / path).parent / entry_dir):
                        finder.add_root(cand)
                for imp in parsed.imports:
                    classify(imp, path)
            # sys.path additions and %%writefile modules may turn earlier third-party names first-party.
            again = [(imp, p) for imp, p in deferred if imp.module and finder.is_first_party(imp.module.split(".")[0])]
            if not again:
                break
            deferred = [(imp, p) for imp, p in deferred if (imp, p) not in again]
            for imp, p in again:
                classify(imp, p)
    finally:
        parser.close()
        if collecting:
            gc.enable()
    required_files = _reached_unguarded([r for r in starts if r is not None], edges)
    for imp, p in deferred:
        third_party(imp, p, p not in required_files)
    for loc in dynamic:
        findings.add(Finding(loc, "SB004", "dynamic import with a non-literal name cannot be traced", Severity.WARNING))
    for loc, pkg in pip_hints:
        message = f"'{pkg}' is installed by a pip/conda magic: declare it if the analysis needs it"
        findings.add(Finding(loc, "SB006", message, Severity.INFO))
    if evidence is not None:
        evidence.files.update(parser.digests)
        evidence.stamps.update(stamps)
        evidence.dirs.update(finder.listings())
        evidence.roots.update(finder.root_checks)
    return ImportGraph(
        entrypoint=entry.path,
        files=tuple(sorted(seen)),
        third_party=tuple(sorted(third)),
        stdlib=tuple(sorted(std)),
        dynamic_unresolved=tuple(sorted(dynamic)),
        pip_hints=tuple(sorted(pip_hints)),
        runtime_hints=tuple(sorted(runtime)),
        findings=tuple(sorted(findings)),
        unparsed=tuple(sorted(unparsed)),
        never_run=tuple(sorted(never_run)),
    )


def _reached_unguarded(starts: list[str], edges: dict[str, set[tuple[str, bool]]]) -> set[str]:
    """Files reached from ``starts`` through imports not guarded by ``except ImportError``."""
    reached = set(starts)
    todo = list(starts)
    while todo:
        for target, optional in edges.get(todo.pop(), ()):
            if not optional and target not in reached:
                reached.add(target)
                todo.append(target)
    return reached


def trace_cached(
    root: Path,
    entry: Entrypoint,
    *,
    target_python: str,
    allow_unparseable: bool,
    max_bytes: int,
    cache_root: Path,
    read_digest: Callable[[Path], str],
    parse_cache: Callable[[], dict[tuple[str, str], ParsedSource]],
    used: dict[tuple[str, str], ParsedSource],
    evidence_sink: TraceEvidence | None = None,
) -> ImportGraph:
    """:func:`trace`, or the graph saved by an earlier trace when nothing it depends on has changed.

    A hit re-lists the directories and re-hashes the files the earlier trace consulted, and parses
    nothing. On a miss ``parse_cache()`` supplies the per-file parse cache, and the parse results used
    are added to ``used``. What the graph depends on is added to ``evidence_sink`` when given.
    """
    from slimbuild import parsecache

    key = parsecache.graph_key(root, entry, target_python, allow_unparseable, max_bytes)
    graph_path = parsecache.graph_file(cache_root, key)
    hit = parsecache.load_graph(graph_path, key)
    if hit is not None and isinstance(hit[1], TraceEvidence) and hit[1].still_valid(read_digest):
        if evidence_sink is not None:
            evidence_sink.update(hit[1])
        return hit[0]
    parser = Parser(parse_cache(), allow_unparseable=allow_unparseable, max_bytes=max_bytes)
    evidence = TraceEvidence()
    graph = trace(root, entry, target_python=target_python, parser=parser, read_digest=read_digest, evidence=evidence)
    used.update(parser.used)
    parsecache.save_graph(graph_path, key, graph, evidence)
    if evidence_sink is not None:
        evidence_sink.update(evidence)
    return graph
