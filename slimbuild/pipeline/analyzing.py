"""Analysis: trace each entrypoint, resolve its imports, reconcile them with the declarations (``analyze``, ``check``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from slimbuild.analysis import runtime_feed
from slimbuild.analysis.declared import read_declared
from slimbuild.analysis.declared_lines import FileOptions
from slimbuild.analysis.entrypoint import resolve_entrypoint, select_entrypoints
from slimbuild.analysis.grammar import find_grammar
from slimbuild.analysis.graph import trace_cached
from slimbuild.analysis.mapping import is_namespace_root
from slimbuild.analysis.reconcile import failing, reconcile, transitive
from slimbuild.analysis.resolve import ModuleIndex, probe_environment, resolve_modules, shadowed_namespaces, wheel_index
from slimbuild.analysis.runtime import Trace
from slimbuild.analysis.thirdparty import ChainReader, Reader, SiteReader, WheelReader, keep_evidenced, scan
from slimbuild.cache import parsecache, replay
from slimbuild.cache.evidence import read_digest_factory
from slimbuild.config import Settings
from slimbuild.errors import ConfigError, SlimbuildError
from slimbuild.models import Analysis, Declared, Entrypoint, Finding, ImportGraph, IndexOption, Resolved
from slimbuild.paths import WHEEL_MODULES_FILE, atomic_write, cache_dir


def environment_index(settings: Settings, env: Mapping[str, str]) -> ModuleIndex | None:
    """Module index of the project's environment, cached by interpreter and site-packages mtimes."""
    python = replay.environment_python(settings.python, settings.root, env)
    if not python:
        return None
    exe = Path(python)
    if not exe.exists():
        raise ConfigError(f"--python {python}: no such interpreter", hint="pass the path of the project's python")
    key = replay.environment_key(python)
    cache = cache_dir(env) / "environments" / f"{key}.dists.json"  # the probe's modules and requires
    try:
        dists = json.loads(cache.read_text())
        if not isinstance(dists, dict) or not isinstance(dists.get("modules"), dict):
            raise ValueError(cache)
    except (OSError, ValueError):
        try:
            dists = probe_environment(str(exe))
        except (OSError, ValueError, Exception) as exc:  # noqa: BLE001 - any probe failure is a config problem
            raise ConfigError(f"cannot read installed distributions with {python}: {exc}", hint="check --python") from None
        try:
            atomic_write(cache, json.dumps(dists, sort_keys=True).encode(), durable=False)
        except OSError:
            pass
    return ModuleIndex.from_dists(str(exe), dists["modules"], dists.get("requires") or {})


def _entrypoints(
    settings: Settings, requested: str, record: replay.Recorder | None, single: bool = False
) -> list[Entrypoint]:
    """The selected entrypoints, resolved, each with how it was found; the directories they were found in are evidence."""
    root = settings.root
    evidence = record.evidence if record is not None else None
    if evidence is not None:
        # listed before anything is read: a later change is a miss
        evidence.add_dirs((root, *(root / p for p in settings.pythonpath), root / "src"))
    entries = [
        replace(resolve_entrypoint(root, n, s, settings.pythonpath), notes=notes)
        for n, s, notes in select_entrypoints(settings, requested, record, single=single)
    ]
    if evidence is not None:
        # where each entrypoint was found (a package's __main__, a dotted module): its directories
        evidence.add_dirs({str(p) for e in entries for p in (root / e.path).parents if p == root or root in p.parents})
    return entries


def selected_entrypoints(settings: Settings, requested: str = "") -> list[Entrypoint]:
    """The entrypoints analyze would select (the trace command checks that its run reached one)."""
    return _entrypoints(settings, requested, None)


def _reconciled(
    settings: Settings,
    entry: Entrypoint,
    graph: ImportGraph,
    resolved: Mapping[str, Resolved],
    declarations: _Declarations,
) -> Analysis:
    """One entrypoint's analysis: its graph and resolutions against what the project declares (and the SB015s)."""
    analysis = reconcile(
        name=entry.name,
        graph=graph,
        resolved=resolved,
        declared=declarations.declared,
        keep=settings.keep,
        target_python=settings.target_python,
        project_name=str(settings.project.get("name", "")),
    )
    findings = sorted(
        {*analysis.findings, *declarations.findings, *entry.notes},
        key=lambda f: (f.location.path, f.location.cell or 0, f.location.line, f.location.col, f.code, f.message),
    )
    return replace(
        analysis,
        entry=entry,
        findings=tuple(findings),
        constraints=declarations.constraints,
        index_options=declarations.index_options,
    )


@dataclass(frozen=True)
class _Declarations:
    """What applies to one entrypoint: its declarations, its ``-c`` constraints and the SB015s of reading them."""

    declared: tuple[Declared, ...]
    constraints: tuple[Declared, ...]
    findings: tuple[Finding, ...]
    index_options: tuple[IndexOption, ...] = ()


def _declarations(settings: Settings, entries: Sequence[Entrypoint], consulted: set[Path]) -> dict[str, _Declarations]:
    """Each entrypoint's declarations (nearest its directory wins) and their findings; ``consulted`` gets the files read."""
    declared_by_entry: dict[str, _Declarations] = {}
    for entry in entries:
        found: list[Finding] = []
        options = FileOptions()
        decls, constraints = read_declared(
            settings.root, settings.requirements, settings.optional_groups, consulted, settings.project,
            groups=settings.groups, entry_dir=Path(entry.path).parent, findings=found, options=options,
        )
        declared_by_entry[entry.name] = _Declarations(decls, constraints, tuple(found), tuple(options.index))
    return declared_by_entry


def _locked_wheels(settings: Settings, name: str, cache: Path, record: replay.Recorder | None) -> dict[str, Path]:
    """The wheels of entrypoint ``name``'s lock already in the wheelhouse (none without a readable lock).

    The lock, each hash's folder (present: its listing; absent: its absence) and each wheel read are evidence.
    """
    from slimbuild.locking.lockfile import parse_lock
    from slimbuild.locking.wheels import stored_wheels
    from slimbuild.pipeline.locking import lock_path  # not at the top: pipeline.locking imports this module

    path = lock_path(settings, name)
    if record is not None:
        record.file(path)
    try:
        lock = parse_lock(path.read_text(encoding="utf-8"), path.name)
    except (OSError, UnicodeDecodeError, SlimbuildError):
        return {}  # no lock, or one `check` reports (SB012): no wheels to read
    wheels: dict[str, Path] = {}
    for dist in lock.dists:
        folders, found = stored_wheels(dist, cache)
        if record is not None:
            for folder in folders:
                if folder.is_dir():
                    record.evidence.add_dirs([folder])
                else:
                    record.file(folder)
        if found:
            wheels[dist.name] = found[0]
            if record is not None:
                record.file(found[0])
    return wheels


def _dependencies(
    settings: Settings, name: str, environment: ModuleIndex | None, record: replay.Recorder | None
) -> dict[str, tuple[str, ...]]:
    """What each distribution needs: the environment's Requires-Dist, and the ``# via`` graph of entrypoint
    ``name``'s lock (read as evidence; an unreadable lock adds nothing)."""
    from slimbuild.locking.lockfile import lock_requires
    from slimbuild.pipeline.locking import lock_path  # not at the top: pipeline.locking imports this module

    out: dict[str, tuple[str, ...]] = dict(environment.requires) if environment is not None else {}
    path = lock_path(settings, name)
    if record is not None:
        record.file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return out
    for dist, brings in lock_requires(text).items():
        out[dist] = (*out.get(dist, ()), *brings)
    return out


def _site_dirs(python: str) -> list[Path]:
    """The site-packages directories of an environment's interpreter (as replay.environment_key finds them)."""
    exe = Path(python)
    bases = {exe.resolve().parent.parent, exe.parent.parent}
    return sorted({p for base in bases for p in base.glob("lib/python3*/site-packages") if p.is_dir()})


_MEMO_FORMAT = 1


def _load_memo(memo_dir: Path, wheels: Iterable[Path]) -> dict[str, list[tuple[int, str]]]:
    """The imports already read from these wheels' modules (one file per wheelhouse folder; wheels never change)."""
    memo: dict[str, list[tuple[int, str]]] = {}
    for w in wheels:
        try:
            doc = json.loads((memo_dir / f"{w.parent.name}.json").read_text())
            if doc.get("format") == _MEMO_FORMAT:
                memo.update({k: [(int(line), str(n)) for line, n in v] for k, v in doc["imports"].items()})
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue  # a missing or damaged memo is read again from the wheel
    return memo


def _save_memo(memo_dir: Path, memo: Mapping[str, list[tuple[int, str]]], before: int) -> None:
    if len(memo) == before:
        return
    by_folder: dict[str, dict[str, list[tuple[int, str]]]] = {}
    for key, names in memo.items():
        by_folder.setdefault(key.split("/", 1)[0], {})[key] = names
    for folder, imports in by_folder.items():
        doc = {"format": _MEMO_FORMAT, "imports": imports}
        try:
            atomic_write(memo_dir / f"{folder}.json", json.dumps(doc, sort_keys=True).encode(), durable=False)
        except OSError:
            pass  # a read-only cache only costs speed


def keep_third_party(
    settings: Settings,
    analysis: Analysis,
    wheels: Mapping[str, Path],
    environment: ModuleIndex | None,
    wheel_modules: ModuleIndex | None,
    memo_dir: Path | None = None,
) -> Analysis:
    """``analysis`` with the declared-but-unused distributions that third-party code it imports imports kept (SB017)."""
    if not analysis.unused or not (wheels or environment is not None):
        return analysis
    declared = [d.name for d in analysis.declared]
    owners: dict[str, str | None] = {}

    def owner(module: str) -> str | None:
        top = module.split(".")[0]
        key = module if is_namespace_root(top) or any(m.startswith(f"{top}.") for m in settings.mapping) else top
        if key not in owners:
            owners[key] = resolve_modules(
                [key], user_mapping=settings.mapping, environment=environment, wheels=wheel_modules, declared=declared
            )[key].distribution
        return owners[key]

    readers: list[Reader] = []
    imported = {r.name for r in analysis.required}  # the scan stays in the distributions the entrypoint imports
    wheels = {d: w for d, w in wheels.items() if d in imported}
    wheel_reader = WheelReader(wheels, settings.max_source_bytes)
    readers.append(wheel_reader)
    if environment is not None:
        readers.append(SiteReader(_site_dirs(environment.source), environment.lookup, settings.max_source_bytes))
    starts = [s.module for r in analysis.required for s in r.imports if not s.type_checking]
    memo = _load_memo(memo_dir, wheels.values()) if memo_dir is not None else {}
    before = len(memo)
    try:
        result = scan(
            starts, [d.name for d in analysis.unused], owner, ChainReader(readers),
            max_bytes=settings.max_source_bytes, memo=memo,
        )
    finally:
        wheel_reader.close()
    if memo_dir is not None:
        _save_memo(memo_dir, memo, before)
    return keep_evidenced(analysis, result.kept)


def analyze(
    settings: Settings,
    requested: str = "",
    env: Mapping[str, str] | None = None,
    record: replay.Recorder | None = None,
    *,
    single: bool = False,
) -> tuple[Analysis, ...]:
    """Trace (or reuse an unchanged trace), resolve and reconcile every selected entrypoint.

    ``record``, when given, is told every file and directory the result depends on (see :mod:`slimbuild.replay`).
    ``single``: several entrypoints found without configuration are a usage error (``lock``, ``build``).
    """
    env = os.environ if env is None else env
    root = settings.root
    entries = _entrypoints(settings, requested, record, single)
    consulted: set[Path] = set()
    declared_by_entry = _declarations(settings, entries, consulted)
    env_index = environment_index(settings, env)
    wheels_index = wheel_index(cache_dir(env), sorted({d.name for ds in declared_by_entry.values() for d in ds.declared}))
    cache_path = parsecache.cache_file(cache_dir(env), root)
    loaded: list[parsecache.Cache] = []  # the parse cache, read only when some graph must be traced

    def parse_cache() -> parsecache.Cache:
        if not loaded:
            loaded.append(parsecache.load(cache_path))
        return loaded[0]

    # a target newer than this interpreter: the interpreter of its version that parses what this one cannot
    grammar = find_grammar(settings.target_python, replay.environment_python(settings.python, root, env))
    used: parsecache.Cache = {}
    trace = partial(
        trace_cached, root, target_python=settings.target_python, allow_unparseable=settings.allow_unparseable,
        max_bytes=settings.max_source_bytes, cache_root=cache_dir(env), parse_cache=parse_cache, used=used,
        read_digest=read_digest_factory(settings.max_source_bytes), grammar=grammar,
        evidence_sink=record.evidence if record is not None else None,
    )
    runtime = _runtime_trace(settings, record)
    results = []
    for entry in entries:
        declarations = declared_by_entry[entry.name]
        graph = _traced(settings, trace, entry, env_index, wheels_index, declarations)
        resolve = partial(resolve_modules, user_mapping=settings.mapping, environment=env_index, wheels=wheels_index,
                          declared=[d.name for d in declarations.declared])
        analysis = _resolved_analysis(settings, entry, graph, declarations, resolve, runtime)
        if analysis.unused:  # third-party code may import one of them: read it (wheels after a lock, the environment)
            wheels = _locked_wheels(settings, entry.name, cache_dir(env), record)
            analysis = keep_third_party(settings, analysis, wheels, env_index, wheels_index, cache_dir(env) / "thirdparty")
        if analysis.missing:  # a declared distribution may bring one of them (SB020): the lock's, the environment's graph
            analysis = transitive(analysis, _dependencies(settings, entry.name, env_index, record))
        results.append(analysis)
    if loaded:
        parsecache.save(cache_path, loaded[0], used)
    if record is not None:
        for f in sorted({*consulted, root / "pyproject.toml", root / "slimbuild.toml", cache_dir(env) / WHEEL_MODULES_FILE}):
            record.file(f)
    return tuple(results)


def _resolved_analysis(
    settings: Settings, entry: Entrypoint, graph: ImportGraph, declarations: _Declarations,
    resolve: Callable[[Iterable[str]], dict[str, Resolved]], runtime: Trace | None,
) -> Analysis:
    """The entrypoint's graph (with what traced runs reached from it) resolved and reconciled, then the trace's reasons
    (the declared distributions the run kept, the data files it opened)."""
    seen = runtime_feed.view(graph, runtime) if runtime is not None else None
    graph = runtime_feed.with_view(graph, seen) if seen is not None else graph
    resolved = resolve(s.module for s in (*graph.third_party, *graph.never_run))
    analysis = _reconciled(settings, entry, graph, resolved, declarations)
    if seen is None or runtime is None:
        return analysis
    at_run = {**resolve(runtime_feed.resolve_names(seen)), **resolved}
    return runtime_feed.apply(analysis, seen, runtime, at_run, settings.include)


def _runtime_trace(settings: Settings, record: replay.Recorder | None) -> Trace | None:
    """What traced runs imported and opened (``slimbuild trace``), when the project has a trace; it is evidence."""
    from slimbuild.pipeline.tracing import read_trace, trace_path

    if record is not None:
        record.file(trace_path(settings))
    return read_trace(settings)


def _traced(
    settings: Settings, trace: Callable[..., ImportGraph], entry: Entrypoint, environment: ModuleIndex | None,
    wheels: ModuleIndex | None, declarations: _Declarations,
) -> ImportGraph:
    """The entrypoint's graph over the image's sys.path; traced again while a project namespace directory turns out
    to be shadowed by a distribution's regular package (PEP 420), which makes its imports third-party."""
    shadowed: frozenset[str] = frozenset()
    graph = trace(entry, pythonpath=settings.pythonpath)
    for _ in range(8):  # each round only adds names; a project has few namespace directories
        more = shadowed | shadowed_namespaces(
            graph.namespaces, user_mapping=settings.mapping, environment=environment, wheels=wheels,
            declared=(d.name for d in declarations.declared), project=str(settings.project.get("name") or ""),
        )
        if more == shadowed:
            break
        shadowed = more
        graph = trace(entry, pythonpath=settings.pythonpath, shadowed=shadowed)
    return graph


def check(
    settings: Settings, requested: str = "", record: replay.Recorder | None = None
) -> tuple[tuple[Analysis, ...], tuple[Finding, ...], bool]:
    """Analyse, then add the lock's state: (analyses, sorted findings, whether any fails ``check``)."""
    from slimbuild.pipeline.locking import lock_findings

    analyses = analyze(settings, requested, record=record)
    lock_state = lock_findings(settings, analyses, record=record)
    findings = sorted(
        set(lock_state) | {f for a in analyses for f in a.findings},
        key=lambda f: (f.location.path, f.location.cell or 0, f.location.line, f.location.col, f.code, f.message),
    )
    return analyses, tuple(findings), bool(failing(findings))
