"""Follow first-party imports from an entrypoint; classify every import.

Only what the entrypoint reaches counts. Files are parsed in worker processes
as soon as they are discovered, and parse results are cached by content hash
(see :mod:`slimbuild.parsecache`), so a warm run reads and hashes files only.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

from slimbuild.analysis import conditions, mapping
from slimbuild.analysis.entrypoint import Entrypoint
from slimbuild.analysis.finder import ModuleFinder
from slimbuild.analysis.parsing import Parser
from slimbuild.analysis.stdlib import stdlib_modules
from slimbuild.cache.evidence import FileStamp, TraceEvidence, file_stamp
from slimbuild.errors import AnalysisError
from slimbuild.models import Finding, ImportGraph, ImportSite, Location, ParsedSource, RawImport, Severity


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
    from slimbuild.cache import parsecache

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
