"""Follow first-party imports from an entrypoint; classify every import.

Only what the entrypoint reaches counts. Files are parsed in worker processes
as soon as they are discovered, and parse results are cached by content hash
(see :mod:`slimbuild.cache.parsecache`), so a warm run reads and hashes files only.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slimbuild.analysis import conditions, mapping
from slimbuild.analysis.finder import ModuleFinder
from slimbuild.analysis.imports import DYNAMIC_SYS_PATH
from slimbuild.analysis.parsing import Parser
from slimbuild.analysis.stdlib import stdlib_modules
from slimbuild.cache.evidence import FileStamp, TraceEvidence, file_stamp
from slimbuild.errors import AnalysisError
from slimbuild.models import Entrypoint, Finding, ImportGraph, ImportSite, Location, ParsedSource, RawImport, Severity

if TYPE_CHECKING:
    from slimbuild.analysis.grammar import Grammar


def trace(
    root: Path,
    entry: Entrypoint,
    *,
    target_python: str,
    parser: Parser,
    read_digest: Callable[[Path], str],
    evidence: TraceEvidence | None = None,
    pythonpath: Sequence[str] = (),
    shadowed: Iterable[str] = (),
) -> ImportGraph:
    """Follow first-party imports from ``entry`` and classify every import it reaches.

    ``evidence``, when given, is filled with what the graph depends on (see :class:`TraceEvidence`).
    ``pythonpath``: project directories the image puts on ``sys.path``; ``shadowed``: top-level names an installed
    regular package provides, whose namespace directories in the project the interpreter never imports.
    """
    builder = _GraphBuilder(
        root.resolve(), entry, target_python, parser, read_digest, stamp=evidence is not None,
        search=_Search(tuple(pythonpath), frozenset(shadowed)),
    )
    starts = builder.start()
    builder.run()
    graph = builder.graph(starts)
    if evidence is not None:
        builder.fill(evidence)
    return graph


@dataclass(frozen=True)
class _Search:
    """Where the image's interpreter looks for modules beyond the entrypoint's own directory (see :func:`trace`)."""

    pythonpath: tuple[str, ...] = ()
    shadowed: frozenset[str] = frozenset()


class _GraphBuilder:
    """The state of one trace: the files enqueued, the import edges between them, and what was found.

    A trace lives for one call of :func:`trace`; only the :class:`ImportGraph` it builds is kept (and cached).
    """

    # slots: the per-import methods read these attributes in the trace's hot loop
    __slots__ = (
        "computed_path", "deferred", "dynamic", "edges", "entry", "finder", "findings", "main_file", "names",
        "never_run", "off_path", "parser", "pip_hints", "read_digest", "rel_of", "root", "root_prefix", "run_mains", "runtime",
        "seen", "stamp", "stamps", "std", "stdlib", "target", "third", "unparsed",
    )

    def __init__(
        self, root: Path, entry: Entrypoint, target_python: str, parser: Parser, read_digest: Callable[[Path], str],
        *, stamp: bool, search: _Search = _Search(),
    ) -> None:
        self.root = root  # resolved
        self.entry = entry
        self.parser = parser
        self.read_digest = read_digest
        self.stamp = stamp  # take each file's stat identity, for the evidence
        # sys.path in the image: `python -m`/`-c` start in the project (its WORKDIR), a script or notebook in its
        # own directory; then PYTHONPATH: the configured pythonpath, src/ (a search root only when it is a directory)
        configured = [root / p for p in search.pythonpath]
        fallback: list[Path] = []
        if entry.kind in {"script", "notebook"}:
            roots = [(root / entry.path).parent, *configured, root / "src"]
            fallback = [root]  # an IDE's or PYTHONPATH's, not the image's: what is found only there is SB023
        else:
            roots = [root, *configured, root / "src"]
        self.finder = ModuleFinder(root, roots, shadowed=search.shadowed, fallback=fallback)
        self.computed_path: set[Location] = set()  # sys.path.append/insert of a computed directory
        self.off_path: set[tuple[str, str, Location]] = set()  # (top-level name, module, site) found only off sys.path
        self.stdlib = stdlib_modules(target_python)
        self.target = conditions.version_of(target_python)
        # the file the image starts runs as __main__ (unless a function of it is called); files it imports do not
        self.main_file = entry.path if entry.kind == "notebook" or not entry.function else None
        self.run_mains: set[str] = set()  # scripts a notebook runs with %run: each runs as __main__ too
        root_s = str(root)
        self.root_prefix = root_s if root_s.endswith("/") else root_s + "/"

        self.names: dict[str, tuple[str, str | None]] = {}  # rel path -> (module, package)
        self.seen: set[str] = set()
        self.third: set[ImportSite] = set()
        self.std: set[str] = set()
        self.dynamic: set[Location] = set()
        self.pip_hints: set[tuple[Location, str]] = set()
        self.runtime: set[tuple[Location, str, str]] = set()
        self.findings: set[Finding] = set()
        self.unparsed: set[str] = set()
        self.never_run: set[ImportSite] = set()
        self.deferred: list[tuple[RawImport, str]] = []  # third-party candidates re-checked after sys.path changes
        self.rel_of: dict[str, str | None] = {}  # every enqueued path -> its project-relative path (None: outside)
        # path -> (file it imports, whether only under `except ImportError`) -> where it first does: a module reached
        # only through guarded imports is optional as a whole (if one of its imports fails, the guard catches it)
        self.edges: dict[str, dict[tuple[str, bool], tuple[int, int, int]]] = {}
        self.stamps: dict[str, FileStamp | None] = {}

    def enqueue(self, p: str, module: str | None = None, package: str | None = None) -> str | None:
        """Queue a file for parsing once; its project-relative path (None: outside the project)."""
        rel_of = self.rel_of
        if p in rel_of:
            return rel_of[p]  # the common case: a module imported from many files
        rel_of[p] = None
        finder = self.finder
        # Files the finder built from listings without symlinks are already real: skip realpath's lstat per part.
        real = p if finder.is_real(p) else str(Path(p).resolve())
        root_prefix = self.root_prefix
        if not real.startswith(root_prefix):
            return None
        rel = rel_of[p] = real[len(root_prefix):]
        if rel in self.seen:
            return rel
        self.seen.add(rel)
        if module is None:
            module, package = finder.module_name(real)
        self.names[rel] = (module, package)
        parser = self.parser
        try:
            if self.stamp:
                self.stamps[p] = file_stamp(p)  # before the read: a later change shows in the stat
            # an oversize file is keyed without reading it, and refused by the parser either way
            digest = self.read_digest(Path(p)) if parser.needs_digests else None
        except OSError as exc:
            raise AnalysisError(f"{rel}: cannot read ({exc.strerror})", hint="check the file's permissions") from None
        parser.submit(p, rel, digest)
        return rel

    def start(self) -> list[str]:
        """Enqueue the entrypoint's file (and, for ``python -m pkg.mod``, its parents' ``__init__``)."""
        entry = self.entry
        starts = [self.enqueue(str(self.root / entry.path), entry.module, entry.package)]
        if entry.package:
            # `python -m pkg.mod` runs the parent packages' __init__ first.
            for init in self.finder.file_paths(entry.package) or []:
                starts.append(self.enqueue(init))
        return [r for r in starts if r is not None]

    def run(self) -> None:
        """Classify every parse result as it arrives, until no file is queued; then stop the parser."""
        parser = self.parser
        collecting = gc.isenabled()
        gc.disable()  # the trace allocates much and frees little, and makes no cycles: the collector only costs time
        try:
            while True:
                self._drain()
                # sys.path additions and %%writefile modules may turn earlier third-party names first-party.
                is_first_party = self.finder.is_first_party
                deferred = self.deferred
                again = [(imp, p) for imp, p in deferred if imp.module and is_first_party(imp.module.split(".")[0])]
                if not again:
                    break
                self.deferred = [(imp, p) for imp, p in deferred if (imp, p) not in again]
                for imp, p in again:
                    self.classify(imp, p)
        finally:
            parser.close()
            if collecting:
                gc.enable()

    def _drain(self) -> None:
        """Take in parse results until the parser has none left (classifying queues more)."""
        # bound once: this loop runs for every file and every import of the trace
        root, finder, classify = self.root, self.finder, self.classify
        findings, dynamic, pip_hints, runtime = self.findings, self.dynamic, self.pip_hints, self.runtime
        for parsed in self.parser.results():
            path = parsed.path
            findings.update(parsed.findings)
            dynamic.update(parsed.dynamic_unresolved)
            pip_hints.update(parsed.pip_hints)
            runtime.update(parsed.runtime_hints)
            if parsed.fallback:
                self.unparsed.add(path)
            for w in parsed.written_modules:
                finder.virtual.add(Path(w).stem)
            for entry_dir in parsed.sys_path_entries:
                if entry_dir.startswith(DYNAMIC_SYS_PATH):
                    line = entry_dir[len(DYNAMIC_SYS_PATH):]
                    self.computed_path.add(Location(path, int(line) if line.isdigit() else 0))
                    continue
                for cand in (root / entry_dir, (root / path).parent / entry_dir):
                    finder.add_root(cand)
            for loc, target in parsed.run_scripts:
                self._run_script(loc, target, path)
            for imp in parsed.imports:
                classify(imp, path)

    def _run_script(self, loc: Location, target: str, path: str) -> None:
        """Follow a notebook's ``%run SCRIPT`` (relative to the notebook's directory, as Jupyter runs it), or say
        why not: the script runs as ``__main__`` with its directory first on ``sys.path``."""
        base = os.path.dirname(os.path.join(str(self.root), path))
        cand = os.path.normpath(os.path.join(base, os.path.expanduser(target)))
        where = f"'%run {target}'"
        if not os.path.realpath(cand).startswith(self.root_prefix):
            message = f"{where} runs a script outside the project: it is not traced and not in the image"
            self.findings.add(Finding(loc, "SB011", message, Severity.WARNING))
            return
        has_file = self.finder.has_file
        found = cand if has_file(cand) else cand + ".py" if not cand.endswith(".py") and has_file(cand + ".py") else None
        if found is None:
            message = f"{where}: no such script in the project, so nothing is traced for it (the run fails there too)"
            self.findings.add(Finding(loc, "SB011", message, Severity.WARNING))
            return
        self.finder.add_root(Path(found).parent)  # the script's directory is first on sys.path while it runs
        rel = self.enqueue(found)
        if rel is not None:
            self.run_mains.add(rel)
            at = (loc.cell or 0, loc.line, loc.col)
            known = self.edges.setdefault(path, {})
            known[(rel, False)] = min(known.get((rel, False), at), at)

    def follow(self, dotted: str, site: RawImport, path: str) -> bool:
        """Enqueue the files importing first-party ``dotted`` runs, with an edge from ``path`` to each."""
        finder = self.finder
        files = finder.file_paths(dotted)
        if files is None:
            return False
        for f in files:
            rel = self.enqueue(f)
            if rel is not None:
                where = (site.cell or 0, site.line, site.col)
                known = self.edges.setdefault(path, {})
                known[(rel, site.optional)] = min(known.get((rel, site.optional), where), where)
        if not finder.module_exists(dotted) and dotted.split(".")[0] not in finder.virtual:
            self.findings.add(
                Finding(Location(path, site.line, site.col, site.cell), "SB011",
                        f"first-party module '{dotted}' not found", Severity.WARNING)
            )
        return True

    def _follow_from(self, module: str, imp: RawImport, path: str) -> None:
        """Follow ``module`` and each name ``from module import`` takes that is a submodule of it."""
        self.follow(module, imp, path)
        module_exists = self.finder.module_exists
        for n in imp.names:
            if module_exists(f"{module}.{n}"):
                self.follow(f"{module}.{n}", imp, path)

    def classify(self, imp: RawImport, path: str) -> None:
        """Follow a first-party import, note a standard-library one, defer a third-party one (see :meth:`run`)."""
        if imp.conditions and conditions.never_runs(
            imp.conditions, self.target, is_main=path == self.main_file or path in self.run_mains
        ):
            self._never_runs(imp, path)
            return
        # A first-party module imported for type checkers only is not run: its file and imports stay out.
        if imp.level > 0:
            if not imp.type_checking:
                self._relative(imp, path)
            return
        if not imp.module:
            return
        top = imp.module.split(".")[0]
        finder = self.finder
        if finder.is_first_party(top):
            if imp.type_checking or (top in finder.virtual and finder.file_paths(top) is None):
                return
            if finder.off_path and top in finder.off_path:
                self.off_path.add((top, imp.module, Location(path, imp.line, imp.col, imp.cell)))
            self._follow_from(imp.module, imp, path)
            return
        if top in self.stdlib:
            self.std.add(top)
            return
        self.deferred.append((imp, path))

    def _never_runs(self, imp: RawImport, path: str) -> None:
        """An import under conditions the image never meets: listed when third-party, never followed."""
        # e.g. `if sys.version_info < (3, 8): import importlib_metadata` on a 3.11 target, or an import in the
        # `if __name__ == "__main__":` block of an imported module: never run. Listed when third-party; a
        # first-party module imported so is not followed.
        if imp.module and not imp.level:
            top = imp.module.split(".")[0]
            if top not in self.stdlib and not self.finder.is_first_party(top):
                loc = Location(path, imp.line, imp.col, imp.cell)
                self.never_run.add(ImportSite(imp.module, loc, imp.optional, imp.type_checking))

    def _relative(self, imp: RawImport, path: str) -> None:
        """Follow a relative import from the package of ``path`` (a warning when it leaves the package)."""
        package = self.names[path][1]
        if not package:
            loc = Location(path, imp.line, imp.col, imp.cell)
            self.findings.add(Finding(loc, "SB009", "relative import outside a package is ignored", Severity.WARNING))
            return
        parts = package.split(".")
        if imp.level - 1 >= len(parts):
            loc = Location(path, imp.line, imp.col, imp.cell)
            self.findings.add(
                Finding(loc, "SB009", "relative import beyond the top-level package is ignored", Severity.WARNING)
            )
            return
        base = ".".join(parts[: len(parts) - (imp.level - 1)])
        self._follow_from(f"{base}.{imp.module}" if imp.module else base, imp, path)

    def _third_party(self, imp: RawImport, path: str, optional: bool) -> None:
        """Record a third-party import (each submodule taken from a namespace root, e.g. ``from google import x``)."""
        assert imp.module is not None
        loc = Location(path, imp.line, imp.col, imp.cell)
        modules = [imp.module]
        if imp.names and mapping.is_namespace_root(imp.module):
            modules = [f"{imp.module}.{n}" for n in imp.names]
        for m in modules:
            self.third.add(ImportSite(m, loc, imp.optional or optional, imp.type_checking))

    def graph(self, starts: list[str]) -> ImportGraph:
        """The graph, once :meth:`run` is done: third-party imports (optional when reached only through guarded
        imports) and the findings about what could not be traced."""
        required_files = _reached_unguarded(starts, self.edges)
        for imp, p in self.deferred:
            self._third_party(imp, p, p not in required_files)
        findings = self.findings
        for loc in self.dynamic:
            findings.add(Finding(loc, "SB004", "dynamic import with a non-literal name cannot be traced", Severity.WARNING))
        findings.update(self._off_path_findings())
        for loc, pkg in self.pip_hints:
            message = f"'{pkg}' is installed by a pip/conda magic: declare it if the analysis needs it"
            findings.add(Finding(loc, "SB006", message, Severity.INFO))
        return ImportGraph(
            entrypoint=self.entry.path,
            files=tuple(sorted(self.seen)),
            third_party=tuple(sorted(self.third)),
            stdlib=tuple(sorted(self.std)),
            dynamic_unresolved=tuple(sorted(self.dynamic)),
            pip_hints=tuple(sorted(self.pip_hints)),
            runtime_hints=tuple(sorted(self.runtime)),
            findings=tuple(sorted(findings)),
            unparsed=tuple(sorted(self.unparsed)),
            never_run=tuple(sorted(self.never_run)),
            modules=_import_order(starts, self.edges, self.names),
            namespaces=tuple(sorted(self.finder.namespaces)),
        )

    def _off_path_findings(self) -> list[Finding]:
        """SB023: a first-party import the image's sys.path does not reach (an IDE's or PYTHONPATH's does)."""
        out = []
        script_dir = Path(self.entry.path).parent.as_posix()
        for top, module, loc in sorted(self.off_path):
            where = self.finder.off_path.get(top)
            if where is None:  # the code put the directory on sys.path itself
                continue
            rel = Path(where).relative_to(self.root).as_posix() if where != str(self.root) else "."
            shown = "the project root" if rel == "." else f"{rel}/"
            fix = f"to put {shown} on the image's sys.path, set [tool.slimbuild] pythonpath = [\"{rel}\"]"
            message = f"'{module}' is found only in {shown}, which is not on sys.path when the image runs {self.entry.path}"
            if self.computed_path:  # the code may put the directory there itself: say so, do not refuse the build
                message += f" (sys.path[0] is {script_dir}/) unless the computed entry at {min(self.computed_path)} adds it"
                out.append(Finding(loc, "SB023", f"{message}; {fix}", Severity.WARNING))
            else:
                message += f" (sys.path[0] is {script_dir}/): it would fail with ModuleNotFoundError"
                out.append(Finding(loc, "SB023", f"{message}; {fix}", Severity.ERROR))
        return out

    def fill(self, evidence: TraceEvidence) -> None:
        """Add what the graph depends on to ``evidence``: the files read, their stamps, listings, root checks."""
        evidence.files.update(self.parser.digests)
        evidence.stamps.update(self.stamps)
        evidence.dirs.update(self.finder.listings())
        evidence.roots.update(self.finder.root_checks)


def _import_order(
    starts: list[str], edges: dict[str, dict[tuple[str, bool], tuple[int, int, int]]], names: dict[str, tuple[str, str | None]]
) -> tuple[tuple[str, str], ...]:
    """Each first-party file reached and its module name, in the order a run first imports them: depth first from
    the starts, each file's imports in statement order (deterministic: worker timing plays no part)."""
    order: list[str] = []
    seen: set[str] = set()
    stack = list(reversed(starts))
    while stack:
        f = stack.pop()
        if f in seen:
            continue
        seen.add(f)
        order.append(f)
        targets = sorted(edges.get(f, {}).items(), key=lambda item: item[1])
        stack.extend(t for (t, _optional), _where in reversed(targets) if t not in seen)
    order.extend(sorted(set(names) - seen))
    return tuple((f, names[f][0]) for f in order if f in names)


def _reached_unguarded(starts: list[str], edges: dict[str, dict[tuple[str, bool], tuple[int, int, int]]]) -> set[str]:
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
    grammar: Grammar | None = None,
    pythonpath: Sequence[str] = (),
    shadowed: Iterable[str] = (),
) -> ImportGraph:
    """:func:`trace`, or the graph saved by an earlier trace when nothing it depends on has changed.

    A hit re-lists the directories and re-hashes the files the earlier trace consulted, and parses
    nothing. On a miss ``parse_cache()`` supplies the per-file parse cache, and the parse results used
    are added to ``used``. What the graph depends on is added to ``evidence_sink`` when given.
    ``grammar``: a target newer than this interpreter, and the interpreter that parses for it (analysis/grammar.py).
    ``pythonpath``, ``shadowed``: as for :func:`trace`.
    """
    from slimbuild.cache import parsecache

    shadowed = tuple(sorted(set(shadowed)))
    key = parsecache.graph_key(
        root, entry, target_python, allow_unparseable, max_bytes, grammar.salt if grammar else "", (tuple(pythonpath), shadowed)
    )
    graph_path = parsecache.graph_file(cache_root, key)
    hit = parsecache.load_graph(graph_path, key)
    if hit is not None and isinstance(hit[1], TraceEvidence) and hit[1].still_valid(read_digest):
        if evidence_sink is not None:
            evidence_sink.update(hit[1])
        return hit[0]
    older = conditions.version_of(target_python)
    parser = Parser(
        parse_cache(), allow_unparseable=allow_unparseable, max_bytes=max_bytes, grammar=grammar,
        feature_version=older if older < sys.version_info[:2] else None,  # the grammar of a target older than this Python
    )
    evidence = TraceEvidence()
    graph = trace(
        root, entry, target_python=target_python, parser=parser, read_digest=read_digest, evidence=evidence,
        pythonpath=pythonpath, shadowed=shadowed,
    )
    used.update(parser.used)
    parsecache.save_graph(graph_path, key, graph, evidence)
    if evidence_sink is not None:
        evidence_sink.update(evidence)
    return graph
