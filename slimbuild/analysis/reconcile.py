"""Reconcile what an entrypoint needs with what the project declares; pure.

Finding codes (stable; documented in README.md):

SB001 error    import of a distribution the project does not declare (missing), or of a name several
               distributions provide, none declared (the candidates, most downloaded first)
SB002 warning  declared distribution the entrypoint does not need (unused)
SB003 error    import with no known distribution (unresolved)
SB004 warning  dynamic import with a non-literal name
SB005 warning  file parsed by the token-scan fallback only
SB006 info     package installed by a %pip / !pip magic in a notebook
SB008 error    notebook cell that cannot be parsed (the other cells count)
SB009 warning  relative import outside a package / beyond the top level
SB010 info     distribution needed at run time without an import (add it to keep)
SB011 warning  first-party module imported but not found
SB012 warning  lock is missing (error when stale: inputs changed since slimbuild lock)
SB013 warning  locked distribution provides none of the imports mapped to it
SB017 info     declared distribution kept because third-party code imports it (analysis/thirdparty.py)
SB019 warning  several declared distributions provide one import (they install the same files)
SB020 warning  import of a distribution declared only through another: a declared distribution depends on it
               (transitive dependency; it is in the image, pinned by the lock, but the project should declare it)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace
from typing import Protocol

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as Pep508
from packaging.utils import canonicalize_name

from slimbuild.analysis.conditions import marker_environment
from slimbuild.errors import ResolutionError
from slimbuild.models import Analysis, Declared, Finding, ImportGraph, ImportSite, Location, Requirement, Resolved, Severity


class _Pinned(Protocol):
    """A locked distribution, as :func:`verify_provides` reads it."""

    @property
    def name(self) -> str:
        """The distribution's canonical name."""


class _Lock(Protocol):
    """What :func:`verify_provides` reads of a ``locking.lockfile.Lock`` (the analysis sits below the locking phase)."""

    @property
    def dists(self) -> Sequence[_Pinned]:
        """The locked distributions."""


def reconcile(
    *,
    name: str,
    graph: ImportGraph,
    resolved: Mapping[str, Resolved],
    declared: Iterable[Declared],
    keep: Iterable[str],
    target_python: str,
    project_name: str = "",
) -> Analysis:
    """Required, missing, unused, optional and unresolved, with findings."""
    declared = tuple(declared)
    decl_by_name, elsewhere = _by_name(declared, project_name, target_python)
    keep_names = {canonicalize_name(k) for k in keep}
    sites_by_dist, via_by_dist, unresolved, type_checking = _sites_by_distribution(graph, resolved)
    required, optional = _requirements(sites_by_dist, via_by_dist, decl_by_name, keep_names)
    have = {r.name for r in required}

    findings: list[Finding] = list(graph.findings)
    missing = [r for r in required if not r.declared and r.name not in keep_names]
    findings.extend(_missing_findings(missing, elsewhere, target_python))
    findings.extend(_unresolved_findings(unresolved, resolved))
    findings.extend(_rival_findings(graph, resolved, decl_by_name))
    unused, unused_findings = _unused(decl_by_name, have | {r.name for r in optional}, graph, resolved)
    findings.extend(unused_findings)
    findings.extend(_runtime_findings(graph, have))
    return Analysis(
        entrypoint_name=name,
        entrypoint=graph.entrypoint,
        target_python=target_python,
        files=graph.files,
        required=tuple(required),
        missing=tuple(missing),
        unused=tuple(unused),
        optional=tuple(optional),
        unresolved=tuple(sorted(unresolved)),
        dynamic_unresolved=graph.dynamic_unresolved,
        type_checking=tuple(sorted(type_checking)),
        pip_hints=graph.pip_hints,
        findings=tuple(sorted(set(findings), key=_finding_key)),
        declared=declared,
        unparsed=graph.unparsed,
        stdlib=graph.stdlib,
        never_run=graph.never_run,
        modules=graph.modules,
    )


def _by_name(
    declared: Iterable[Declared], project_name: str, target_python: str
) -> tuple[dict[str, list[Declared]], dict[str, Declared]]:
    """Declarations by distribution that apply to ``target_python``, and the first of those declared only elsewhere.

    URL declarations and the project itself are neither.
    """
    own = canonicalize_name(project_name) if project_name else ""
    decl_by_name: dict[str, list[Declared]] = {}
    elsewhere: dict[str, Declared] = {}  # declared with a marker no image of this Python meets
    for d in declared:
        if d.marker == "url" or d.name == own:
            continue
        if applies_to(d, target_python):
            decl_by_name.setdefault(d.name, []).append(d)
        else:
            elsewhere.setdefault(d.name, d)
    for dist in decl_by_name:
        elsewhere.pop(dist, None)
    return decl_by_name, elsewhere


def _sites_by_distribution(
    graph: ImportGraph, resolved: Mapping[str, Resolved]
) -> tuple[dict[str, list[ImportSite]], dict[str, set[str]], list[ImportSite], list[ImportSite]]:
    """Third-party import sites by distribution (with how each was resolved), unresolved, and for type checkers only."""
    sites_by_dist: dict[str, list[ImportSite]] = {}
    via_by_dist: dict[str, set[str]] = {}
    unresolved: list[ImportSite] = []
    type_checking: list[ImportSite] = []
    for site in graph.third_party:
        if site.type_checking:
            type_checking.append(site)
            continue
        res = resolved.get(site.module)
        if res is None or res.distribution is None:
            unresolved.append(site)
            continue
        sites_by_dist.setdefault(res.distribution, []).append(site)
        via_by_dist.setdefault(res.distribution, set()).add(res.via)
    return sites_by_dist, via_by_dist, unresolved, type_checking


def _spec(decl_by_name: Mapping[str, list[Declared]], dist: str) -> str:
    """The declared specifiers of ``dist``, joined."""
    return ",".join(sorted({d.specifier for d in decl_by_name.get(dist, []) if d.specifier}))


def _requirements(
    sites_by_dist: Mapping[str, list[ImportSite]],
    via_by_dist: Mapping[str, set[str]],
    decl_by_name: Mapping[str, list[Declared]],
    keep_names: AbstractSet[str],
) -> tuple[list[Requirement], list[Requirement]]:
    """Required distributions (with ``keep``, sorted by name) and optional ones (imported only under a guard)."""
    required: list[Requirement] = []
    optional: list[Requirement] = []
    for dist, sites in sorted(sites_by_dist.items()):
        is_declared = dist in decl_by_name
        optional_only = all(s.optional for s in sites)
        req = Requirement(
            dist, tuple(sorted(sites)), tuple(sorted(via_by_dist[dist])), is_declared, _spec(decl_by_name, dist),
            optional_only,
        )
        if optional_only and not is_declared and dist not in keep_names:
            optional.append(req)
        else:
            required.append(req)
    have = {r.name for r in required}
    for k in sorted(keep_names - have):
        required.append(Requirement(k, (), ("keep",), k in decl_by_name, _spec(decl_by_name, k)))
    required.sort(key=lambda r: r.name)
    return required, optional


def _missing_findings(
    missing: Iterable[Requirement], elsewhere: Mapping[str, Declared], target_python: str
) -> list[Finding]:
    """SB001 for each required distribution the project does not declare (or declares only under another marker)."""
    findings = []
    for r in missing:
        first = r.imports[0]
        other = elsewhere.get(r.name)
        if other is not None:
            message = (
                f"'{first.module.split('.')[0]}' needs distribution '{r.name}', which the project declares only where "
                f"'{other.marker}' holds ({other.source.path}), not on Python {target_python} on Linux; "
                "widen the marker or guard the import"
            )
        else:
            message = (
                f"'{first.module.split('.')[0]}' needs distribution '{r.name}', which the project does not declare "
                f"(resolved via {r.via[0]}); add it to requirements.txt or [project.dependencies]"
            )
        findings.append(Finding(first.location, "SB001", message))
    return findings


def _unresolved_findings(unresolved: Iterable[ImportSite], resolved: Mapping[str, Resolved]) -> list[Finding]:
    """SB003 for each import no distribution is known for; SB001 for one several provide, none declared."""
    findings = []
    for site in unresolved:
        top = site.module.split(".")[0]
        res = resolved.get(site.module)
        # an optional import (try/except ImportError) with no known distribution cannot break the image
        severity = Severity.WARNING if site.optional else Severity.ERROR
        if res is not None and res.candidates:
            findings.append(Finding(site.location, "SB001", _several_message(res), severity))
            continue
        findings.append(
            Finding(
                site.location,
                "SB003",
                f"cannot map import '{site.module}' to a distribution; add it to [tool.slimbuild.mapping] "
                f'(e.g. {top} = "<distribution>") or declare the distribution',
                severity,
            )
        )
    return findings


def _rival_findings(
    graph: ImportGraph, resolved: Mapping[str, Resolved], decl_by_name: Mapping[str, list[Declared]]
) -> list[Finding]:
    """SB019, once an import name, when the project declares more than one of the distributions providing it."""
    findings = []
    seen: set[tuple[str, ...]] = set()
    for site in sorted(graph.third_party):
        res = resolved.get(site.module)
        if res is None or res.distribution is None or not res.candidates:
            continue
        rivals = tuple(c for c in res.candidates if c in decl_by_name)
        if len(rivals) < 2 or rivals in seen:
            continue
        seen.add(rivals)
        findings.append(
            Finding(
                site.location, "SB019",
                f"'{site.module.split('.')[0]}' is provided by {len(rivals)} declared distributions ({', '.join(rivals)}), "
                f"which install the same files; the image uses '{res.distribution}': declare only one",
                Severity.WARNING,
            )
        )
    return findings


def _several_message(res: Resolved) -> str:
    """SB001's text for an import several distributions provide and the project declares none of."""
    return (
        f"'{res.module}' is provided by several distributions, none of which the project declares: "
        f"{', '.join(res.candidates)} (most downloaded first); declare the one you use "
        f"(or map it in [tool.slimbuild.mapping])"
    )


def _unused(
    decl_by_name: Mapping[str, list[Declared]], needed: set[str], graph: ImportGraph, resolved: Mapping[str, Resolved]
) -> tuple[list[Declared], list[Finding]]:
    """Declarations of distributions not ``needed`` (first of each), with an SB002 for each."""
    never_run: dict[str, ImportSite] = {}  # distribution -> first import of it the image never runs
    for site in graph.never_run:
        res = resolved.get(site.module)
        if res is not None and res.distribution is not None:
            never_run.setdefault(res.distribution, site)
    unused: list[Declared] = []
    findings: list[Finding] = []
    for dist, decls in sorted(decl_by_name.items()):
        if dist in needed:
            continue
        first_decl = sorted(decls, key=lambda d: d.source)[0]
        unused.append(first_decl)
        never = never_run.get(dist)
        if never is not None:
            message = (
                f"'{dist}' is imported only in code the image never runs ({never.location}); it stays out of the image"
            )
        else:
            message = (
                f"'{dist}' is declared but the entrypoint does not import it; it stays out of the image "
                "(add it to keep if it is needed at run time)"
            )
        findings.append(Finding(first_decl.source, "SB002", message, Severity.WARNING))
    return unused, findings


def _runtime_findings(graph: ImportGraph, have: set[str]) -> list[Finding]:
    """SB010, once a distribution, for what is needed at run time without an import and not required already."""
    findings = []
    hinted: set[str] = set()
    for loc, hint_dist, why in graph.runtime_hints:
        hint_name = canonicalize_name(hint_dist)
        if hint_name in have or hint_name in hinted:
            continue
        hinted.add(hint_name)
        findings.append(
            Finding(loc, "SB010", f"{why}: add '{hint_name}' to keep (and declare it) if this call runs", Severity.INFO)
        )
    return findings


def _dependency_edges(requires: Mapping[str, Iterable[str]], target_python: str) -> dict[str, frozenset[str]]:
    """Distribution -> the distributions it needs on the target (Requires-Dist lines whose marker holds with no extra)."""
    edges: dict[str, frozenset[str]] = {}
    for dist, lines in requires.items():
        names = set()
        for line in lines:
            try:
                req = Pep508(line)
            except InvalidRequirement:
                continue
            marker = str(req.marker) if req.marker is not None else ""
            if applies_to(Declared(req.name, "", Location("", 0, 0), marker), target_python):
                names.add(canonicalize_name(req.name))
        edges[canonicalize_name(dist)] = frozenset(names)
    return edges


def _reach(start: str, edges: Mapping[str, frozenset[str]]) -> set[str]:
    """Every distribution ``start`` brings, directly or through others."""
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        dist = todo.pop()
        if dist not in seen:
            seen.add(dist)
            todo.extend(edges.get(dist, ()))
    return seen


def transitive(a: Analysis, requires: Mapping[str, Iterable[str]]) -> Analysis:
    """``a`` with each missing distribution that a declared, required one depends on marked as coming through it.

    ``import markupsafe`` in a project that declares only Jinja2 is satisfied: Jinja2 requires MarkupSafe, so
    the lock pins it and the image has it. It stays required, leaves ``missing``, and its SB001 becomes an
    SB020 warning (like deptry's DEP003): a release of Jinja2 may drop the dependency, so declare it.
    ``requires``: distribution -> Requires-Dist lines (the environment's metadata) or names (the lock's ``# via``).
    A declared distribution the image leaves out (unused) brings nothing.
    """
    if not a.missing or not requires:
        return a
    edges = _dependency_edges(requires, a.target_python)
    roots = sorted(r.name for r in a.required if r.declared)
    brought = {root: _reach(root, edges) for root in roots}
    through = {
        r.name: tuple(root for root in roots if r.name in brought[root] and root != r.name) for r in a.missing
    }
    moved = {name for name, via in through.items() if via}
    if not moved:
        return a
    required = tuple(replace(r, through=through[r.name]) if r.name in moved else r for r in a.required)
    findings = [f for f in a.findings if not _is_missing_finding(f, a.missing, moved)]
    for r in required:
        if r.name in moved:
            top = r.imports[0].module.split(".")[0]
            findings.append(
                Finding(
                    r.imports[0].location, "SB020",
                    f"'{top}' is imported directly, but '{r.name}' is declared only through "
                    f"{', '.join(repr(t) for t in r.through)} (a dependency of it); it is in the image, but a "
                    f"release of {r.through[0]} may drop it: declare it",
                    Severity.WARNING,
                )
            )
    return replace(
        a, required=required, missing=tuple(r for r in a.missing if r.name not in moved),
        findings=tuple(sorted(set(findings), key=_finding_key)),
    )


def _is_missing_finding(f: Finding, missing: Iterable[Requirement], moved: AbstractSet[str]) -> bool:
    """Whether ``f`` is the SB001 :func:`_missing_findings` made for one of the ``moved`` distributions."""
    return f.code == "SB001" and any(
        r.name in moved and r.imports and f.location == r.imports[0].location and f"distribution '{r.name}'" in f.message
        for r in missing
    )


def applies_to(d: Declared, target_python: str) -> bool:
    """False when the declaration's environment marker excludes every Linux image of ``target_python``.

    ``tomli; python_version < "3.11"`` is not for a 3.11 image, and ``pywin32; sys_platform == "win32"``
    is for no image: neither is unused there. A marker on the machine holds when it holds on one of
    the machines images are built for; a marker that cannot be evaluated applies.
    """
    if not d.marker:
        return True
    try:
        marker = Marker(d.marker)
        return any(
            marker.evaluate({**marker_environment(target_python, machine), "extra": ""}) for machine in ("x86_64", "aarch64")
        )
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return True


def _finding_key(f: Finding) -> tuple[str, int, int, int, str, str]:
    return (f.location.path, f.location.cell or 0, f.location.line, f.location.col, f.code, f.message)


def failing(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Findings that make ``check`` exit 1."""
    return tuple(f for f in findings if f.severity is Severity.ERROR)


def lock_inputs(a: Analysis, constraints: Iterable[Declared] = ()) -> tuple[str, ...]:
    """The requirement lines a lock is resolved from: required names with declared specifiers.

    Constraints (``-c`` files) narrow the versions of required distributions; constraints on
    distributions nothing requires do not enter the lock.
    """
    extra: dict[str, set[str]] = {}
    for c in constraints:
        if c.specifier:
            extra.setdefault(c.name, set()).add(c.specifier)
    lines = []
    for r in a.required:
        specs = sorted({*(s for s in r.specifier.split(",") if s), *extra.get(r.name, ())})
        lines.append(f"{r.name}{','.join(specs)}")
    return tuple(sorted(lines))


def verify_provides(a: Analysis, lock: _Lock, provides: Mapping[str, Sequence[str]]) -> tuple[Finding, ...]:
    """Check the analysis against what the locked wheels really contain.

    An import that no locked wheel provides is a ResolutionError naming it and the
    candidates; a directly required distribution that provides no needed import
    (and is not in ``keep``) is a warning.
    """
    by_top: dict[str, set[str]] = {}
    for dist, mods in provides.items():
        for m in mods:
            by_top.setdefault(m.split(".")[0], set()).add(dist)
    if not provides:
        return ()
    findings: list[Finding] = []
    locked = {d.name for d in lock.dists}
    for r in a.required:
        tops = {s.module.split(".")[0] for s in r.imports}
        for top in sorted(tops):
            if top not in by_top:
                raise ResolutionError(
                    f"no locked wheel provides import '{top}' (the analysis mapped it to '{r.name}')",
                    hint=f"fix the mapping in [tool.slimbuild.mapping]; locked: {', '.join(sorted(locked))}",
                )
        if r.imports and r.name in provides and not tops & set(provides[r.name]) and r.name in locked:
            findings.append(
                Finding(
                    r.imports[0].location, "SB013",
                    f"locked '{r.name}' provides none of the imports mapped to it ({', '.join(sorted(tops))})",
                    Severity.WARNING,
                )
            )
    return tuple(findings)
