"""The runtime trace read into an entrypoint's analysis; pure.

Only what the entrypoint's own run can reach counts: starting from the first-party files static analysis reached, a
module the trace saw imported from one of those files is reached, and so on through the files of the modules
reached (a plugin loaded by name, then what the plugin imports, then what that distribution imports). A scratch
script traced beside the entrypoint adds nothing to it.

Finding codes (stable; documented in README.md):

SB030 info     declared distribution kept because the traced run imported it (static analysis found no import)
SB031 info     dynamic import static analysis could not resolve, resolved by the trace
SB032 info     data file the traced run opened that the image does not include (add it to include)
SB033 warning  file outside the project the traced run opened: never copied into the image (info for a system file)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from slimbuild.analysis.runtime import SITE, TRACE_FILE, Module, Trace, escapes, package_dir
from slimbuild.models import Analysis, Finding, ImportGraph, ImportSite, Location, Requirement, Resolved, Severity

TRACE_VIA = f"imported at run time ({TRACE_FILE})"
_SOURCES = (".py", ".pyc", ".pyi", ".ipynb")
_OWN_FILES = frozenset({TRACE_FILE, "pyproject.toml", "slimbuild.toml", "slimbuild.lock", "slimbuild.manifest.json"})
_WHERE = Location(TRACE_FILE)
_SYSTEM = ("/usr/", "/etc/", "/lib/", "/lib64/", "/bin/", "/sbin/", "/var/lib/", "/var/cache/")  # the OS's files


@dataclass(frozen=True)
class RuntimeView:
    """What the trace adds to one entrypoint's graph (see :func:`view`)."""

    sites: tuple[ImportSite, ...] = ()  # third-party imports by reached first-party files that static analysis lacks
    files: tuple[str, ...] = ()  # first-party files only the run reached (a plugin loaded by name)
    resolved_dynamic: tuple[tuple[Location, tuple[str, ...]], ...] = ()  # dynamic imports left unresolved, and what ran
    imported: tuple[tuple[str, str], ...] = ()  # every third-party module reached, with its first importer (FILE:LINE)


def _is_first_party(file: str | None) -> bool:
    """A project-relative file (never one a hand-edited trace puts outside the project)."""
    return file is not None and file != "" and not file.startswith((SITE, "stdlib")) and not escapes(file)


def _reached(trace: Trace, start: Iterable[str]) -> list[Module]:
    """The modules the trace saw imported from ``start``'s files, transitively through the reached modules' files."""
    by_file: dict[str, list[Module]] = {}
    for m in trace.modules:
        for imp in m.imported_by:
            by_file.setdefault(imp if imp.endswith("/") else imp.rsplit(":", 1)[0], []).append(m)
    reached: dict[str, Module] = {}
    todo, done = list(start), set()
    while todo:
        file = todo.pop()
        if file in done:
            continue
        done.add(file)
        for m in by_file.get(file, ()):
            if m.name not in reached:
                reached[m.name] = m
                if m.file:
                    todo.append(m.file)
                    if package_dir(m.file):
                        todo.append(package_dir(m.file))  # what its package's own modules import
    return sorted(reached.values())


def data_files(trace: Trace) -> tuple[str, ...]:
    """The project's data files the traced runs opened (sorted, project-relative): never a source, bytecode or notebook,
    slimbuild's own files, an installed file, or a path a hand-edited trace puts outside the project."""
    return tuple(sorted({
        p for p in trace.opened
        if p and not p.startswith(SITE) and not p.endswith(_SOURCES) and p not in _OWN_FILES and not escapes(p)
    }))  # fmt: skip


def _line(imp: str) -> tuple[str, int]:
    file, _, line = imp.rpartition(":")
    return file, int(line) if line.isdigit() else 0


def view(graph: ImportGraph, trace: Trace) -> RuntimeView:
    """What the trace adds to ``graph``: the modules its run reached from the files static analysis reached."""
    reached = _reached(trace, graph.files)
    static_tops = {s.module.split(".")[0] for s in graph.third_party if not s.type_checking}
    known = set(graph.files)
    sites: set[ImportSite] = set()
    files: set[str] = set()
    imported: list[tuple[str, str]] = []
    for m in reached:
        if _is_first_party(m.file):
            if m.file and not m.file.endswith("/") and m.file not in known:
                files.add(m.file)
            continue
        if not (m.file or "").startswith(SITE):
            continue
        imported.append((m.name, m.imported_by[0] if m.imported_by else ""))
        if m.name.split(".")[0] in static_tops:
            continue
        for imp in m.imported_by:
            file, line = _line(imp)
            if _is_first_party(file) and (file in known or file in files):
                sites.add(ImportSite(m.name, Location(file, line)))
    by_line: dict[tuple[str, int], set[str]] = {}
    for m in reached:
        for imp in m.imported_by:
            by_line.setdefault(_line(imp), set()).add(m.name)
    dynamic = tuple(
        (loc, tuple(sorted(by_line[(loc.path, loc.line)])))
        for loc in graph.dynamic_unresolved
        if loc.cell is None and (loc.path, loc.line) in by_line
    )
    return RuntimeView(tuple(sorted(sites)), tuple(sorted(files)), dynamic, tuple(imported))


def with_view(graph: ImportGraph, rv: RuntimeView) -> ImportGraph:
    """``graph`` with the run's imports and files added, and its resolved dynamic imports no longer unresolved."""
    if not (rv.sites or rv.files or rv.resolved_dynamic):
        return graph
    resolved = {loc for loc, _ in rv.resolved_dynamic}
    findings = [f for f in graph.findings if not (f.code == "SB004" and f.location in resolved)]
    for loc, names in rv.resolved_dynamic:
        findings.append(Finding(
            loc, "SB031", f"dynamic import resolved by the traced run: {', '.join(names)} ({TRACE_FILE})", Severity.INFO,
        ))
    return replace(
        graph,
        files=tuple(sorted({*graph.files, *rv.files})),
        third_party=tuple(sorted({*graph.third_party, *rv.sites})),
        dynamic_unresolved=tuple(loc for loc in graph.dynamic_unresolved if loc not in resolved),
        findings=tuple(findings),
    )


def resolve_names(rv: RuntimeView) -> tuple[str, ...]:
    """The module names to resolve to distributions for :func:`apply` (top-level names, and dotted ones below them)."""
    return tuple(sorted({name.split(".")[0] for name, _ in rv.imported} | {name for name, _ in rv.imported}))


# long: four independent passes over one analysis (via, kept, data files, outside files), each a few lines
def apply(
    analysis: Analysis,
    rv: RuntimeView,
    trace: Trace,
    resolved: Mapping[str, Resolved],
    include: Sequence[str] = (),
) -> Analysis:
    """``analysis`` with the trace's reasons: the via of what the run imported, the declared distributions it kept
    (SB030, no longer unused), the data files to include (SB032) and the files outside the project (SB033)."""
    runtime_sites = set(rv.sites)
    required = [
        replace(r, via=tuple(sorted({*r.via, TRACE_VIA}))) if runtime_sites & set(r.imports) else r
        for r in analysis.required
    ]
    findings = list(analysis.findings)
    first_importer: dict[str, tuple[str, str]] = {}
    for name, importer in rv.imported:
        res = resolved.get(name) or resolved.get(name.split(".")[0])
        if res is not None and res.distribution is not None:
            first_importer.setdefault(res.distribution, (name, importer))
    kept = [d for d in analysis.unused if d.name in first_importer]
    for d in kept:
        module, importer = first_importer[d.name]
        spec = ",".join(sorted({x.specifier for x in analysis.declared if x.name == d.name and x.specifier}))
        required.append(Requirement(d.name, (), (TRACE_VIA,), True, spec))
        findings = [f for f in findings if not (f.code == "SB002" and f.location == d.source and f"'{d.name}'" in f.message)]
        findings.append(Finding(
            d.source, "SB030",
            f"'{d.name}' is kept in the image: no source line imports it, but the traced run imported '{module}'"
            f"{f' from {importer}' if importer else ''} ({TRACE_FILE})",
            Severity.INFO,
        ))
    have = set(analysis.files)
    for path in data_files(trace):
        if path in have:
            continue
        if any(path == inc.strip("/") or path.startswith(inc.strip("/") + "/") for inc in include if inc.strip("/") != "."):
            continue
        findings.append(Finding(
            _WHERE, "SB032",
            f"the traced run opened {path}, which the image does not include: add it to include in [tool.slimbuild] "
            "if the analysis reads it there",
            Severity.INFO,
        ))
    for path in trace.outside:
        if path.startswith(_SYSTEM):
            findings.append(Finding(
                _WHERE, "SB033", f"the traced run read the host's system file {path}: the image has its base's own, "
                "never the host's", Severity.INFO,
            ))
            continue
        findings.append(Finding(
            _WHERE, "SB033",
            f"the traced run opened {path}, outside the project: it is never copied into the image "
            "(mount it with docker run -v, or copy it into the project and include it)",
            Severity.WARNING,
        ))
    names = {d.name for d in kept}
    return replace(
        analysis,
        required=tuple(sorted(required, key=lambda r: r.name)),
        unused=tuple(d for d in analysis.unused if d.name not in names),
        findings=tuple(sorted(set(findings), key=lambda f: (f.location.path, f.location.cell or 0, f.location.line,
                                                           f.location.col, f.code, f.message))),
    )
