"""The one module that sequences the stages and their I/O."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from slimbuild import parsecache, replay
from slimbuild.check import lock_inputs, reconcile, verify_provides
from slimbuild.config import Settings
from slimbuild.declared import read_declared
from slimbuild.errors import AnalysisError, ConfigError, ResolutionError
from slimbuild.evidence import read_digest_factory
from slimbuild.models import Analysis, Declared, Finding, Location, Severity
from slimbuild.paths import atomic_write, cache_dir
from slimbuild.resolve import ModuleIndex, probe_environment, resolve_modules
from slimbuild.trace import IGNORED_DIRS, Entrypoint, resolve_entrypoint, trace_cached

if TYPE_CHECKING:  # the lock machinery is imported only by the commands that lock
    from slimbuild.audit import Vulnerability
    from slimbuild.lock import Lock, Target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_DISCOVER = ("__main__.py", "main.py", "app.py", "run.py")


def _project_meta(root: Path) -> dict[str, object]:
    p = root / "pyproject.toml"
    if not p.is_file():
        return {}
    try:
        project = tomllib.loads(p.read_text(encoding="utf-8")).get("project", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return {}
    return project if isinstance(project, dict) else {}


def _has_sources(root: Path) -> tuple[bool, list[str]]:
    notebooks: list[str] = []
    found_py = False
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS and not d.startswith("."))
        for f in sorted(filenames):
            if f.endswith(".py"):
                found_py = True
            elif f.endswith(".ipynb"):
                notebooks.append(Path(dirpath, f).relative_to(root).as_posix())
    return found_py, notebooks


def select_entrypoints(
    settings: Settings, requested: str = "", record: replay.Recorder | None = None
) -> list[tuple[str, str]]:
    """(name, spec) pairs to analyse: the requested one, the configured ones, or one discovered.

    A notebook discovered by walking the whole tree makes the run's output impossible to replay (``record``).
    """
    if requested:
        if requested in settings.entrypoints:
            return [(requested, settings.entrypoints[requested])]
        return [(Path(requested.split(":")[0]).stem or requested, requested)]
    if settings.entrypoints:
        return sorted(settings.entrypoints.items())
    root = settings.root
    scripts = _project_meta(root).get("scripts")
    if isinstance(scripts, dict) and len(scripts) == 1:
        ((name, spec),) = scripts.items()
        return [(str(name), str(spec))]
    for cand in _DISCOVER:
        if (root / cand).is_file():
            return [(Path(cand).stem, cand)]
    if record is not None:
        record.cacheable = False
    has_py, notebooks = _has_sources(root)
    if not has_py and not notebooks:
        raise AnalysisError(
            f"{root}: nothing to build: no Python files or notebooks", hint="run slimbuild in the project's directory"
        )
    if not has_py and len(notebooks) == 1:
        return [(Path(notebooks[0]).stem, notebooks[0])]
    raise ConfigError(
        "no entrypoint: slimbuild traces imports from the code that runs first",
        hint="pass --entrypoint FILE|PACKAGE|module:function|NOTEBOOK, or set entrypoint in [tool.slimbuild]",
    )


def environment_index(settings: Settings, env: Mapping[str, str]) -> ModuleIndex | None:
    """Module index of the project's environment, cached by interpreter and site-packages mtimes."""
    python = replay.environment_python(settings.python, settings.root, env)
    if not python:
        return None
    exe = Path(python)
    if not exe.exists():
        raise ConfigError(f"--python {python}: no such interpreter", hint="pass the path of the project's python")
    key = replay.environment_key(python)
    cache = cache_dir(env) / "environments" / f"{key}.json"
    try:
        dists = json.loads(cache.read_text())
    except (OSError, ValueError):
        try:
            dists = probe_environment(str(exe))
        except (OSError, ValueError, Exception) as exc:  # noqa: BLE001 - any probe failure is a config problem
            raise ConfigError(f"cannot read installed distributions with {python}: {exc}", hint="check --python") from None
        try:
            atomic_write(cache, json.dumps(dists, sort_keys=True).encode(), durable=False)
        except OSError:
            pass
    return ModuleIndex.from_dists(str(exe), dists)


def analyze(
    settings: Settings, requested: str = "", env: Mapping[str, str] | None = None, record: replay.Recorder | None = None
) -> tuple[Analysis, ...]:
    """Trace (or reuse an unchanged trace), resolve and reconcile every selected entrypoint.

    ``record``, when given, is told every file and directory the result depends on (see :mod:`slimbuild.replay`).
    """
    env = os.environ if env is None else env
    root = settings.root
    evidence = record.evidence if record is not None else None
    if evidence is not None:
        evidence.add_dirs((root, root / "src"))  # listed before anything is read: a later change is a miss
    entries: list[Entrypoint] = [resolve_entrypoint(root, n, s) for n, s in select_entrypoints(settings, requested, record)]
    if evidence is not None:
        # where each entrypoint was found (a package's __main__, a dotted module): its directories
        evidence.add_dirs({str(p) for e in entries for p in (root / e.path).parents if p == root or root in p.parents})
    consulted: set[Path] = set()
    declared, _constraints = read_declared(root, settings.requirements, settings.optional_groups, consulted)
    env_index = environment_index(settings, env)
    wheels_index = wheel_index(cache_dir(env), [d.name for d in declared])
    cache_path = parsecache.cache_file(cache_dir(env), root)
    loaded: list[parsecache.Cache] = []  # the parse cache, read only when some graph must be traced

    def parse_cache() -> parsecache.Cache:
        if not loaded:
            loaded.append(parsecache.load(cache_path))
        return loaded[0]

    read_digest = read_digest_factory(settings.max_source_bytes)
    results = []
    used: parsecache.Cache = {}
    for entry in entries:
        graph = trace_cached(
            root,
            entry,
            target_python=settings.target_python,
            allow_unparseable=settings.allow_unparseable,
            max_bytes=settings.max_source_bytes,
            cache_root=cache_dir(env),
            read_digest=read_digest,
            parse_cache=parse_cache,
            used=used,
            evidence_sink=evidence,
        )
        resolved = resolve_modules(
            (s.module for s in (*graph.third_party, *graph.never_run)),
            user_mapping=settings.mapping,
            environment=env_index,
            wheels=wheels_index,
            declared=(d.name for d in declared),
        )
        results.append(
            reconcile(
                name=entry.name,
                graph=graph,
                resolved=resolved,
                declared=declared,
                keep=settings.keep,
                target_python=settings.target_python,
                project_name=str(_project_meta(root).get("name", "")),
            )
        )
    if loaded:
        parsecache.save(cache_path, loaded[0], used)
    if record is not None:
        for f in sorted({*consulted, root / "pyproject.toml", root / "slimbuild.toml", cache_dir(env) / "wheel-modules.json"}):
            record.file(f)
    return tuple(results)


# ----------------------------------------------------------------------------- lock


@dataclass(frozen=True)
class LockOutcome:
    """The lock of one entrypoint: where it is, what it pins, and what the wheels say."""

    analysis: Analysis
    path: Path
    lock: Lock
    resolved: bool
    wheels: tuple[Path, ...]
    findings: tuple[Finding, ...]
    warnings: tuple[str, ...]
    audit: tuple[Vulnerability, ...] | None = None  # None: not audited


def lock_path(settings: Settings, name: str) -> Path:
    """``slimbuild.lock``, or ``slimbuild.<name>.lock`` when the project has several entrypoints."""
    if len(settings.entrypoints) > 1:
        return settings.root / f"slimbuild.{name}.lock"
    return settings.root / "slimbuild.lock"


def target_of(settings: Settings) -> Target:
    """The image's platform."""
    from slimbuild.lock import Target

    return Target(python_version=settings.target_python, machine=settings.machine)


def _refuse_unhashable(a: Analysis, declared: Sequence[Declared]) -> None:
    """VCS, URL and editable requirements cannot be hash-locked (C8): refuse them when they may be needed."""
    required = {r.name for r in a.required} | {r.name for r in a.missing}
    for d in declared:
        if d.marker == "url" and (d.name.startswith("<") or d.name in required):
            what = d.name.strip("<>")
            raise ResolutionError(
                f"{d.source}: {what} is a VCS, URL or editable requirement: slimbuild cannot hash-lock it",
                hint="build a wheel of it (pip wheel --no-deps -w DIR ...), point PIP_FIND_LINKS at DIR and declare it by name",
            )


def _refuse_unlockable(a: Analysis) -> None:
    blocking = [s for s in a.unresolved if not s.optional]
    if blocking:
        s = blocking[0]
        raise ResolutionError(
            f"{s.location}: cannot map import '{s.module}' to a distribution"
            + (f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""),
            hint=f'add it to [tool.slimbuild.mapping] (e.g. {s.module.split(".")[0]} = "<distribution>") and declare it',
        )
    if a.missing:
        names = ", ".join(r.name for r in a.missing)
        raise ResolutionError(
            f"entrypoint {a.entrypoint_name}: undeclared distributions: {names}",
            hint="declare them in requirements.txt or [project.dependencies] ('slimbuild check' shows where they are imported)",
        )


def _read_lock(path: Path) -> Lock | None:
    from slimbuild.lock import parse_lock

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResolutionError(f"{path.name}: cannot read the lock ({exc})", hint="restore it or delete it and re-lock") from None
    return parse_lock(text, path.name)


def lock(
    settings: Settings,
    requested: str = "",
    *,
    upgrade: bool = False,
    upgrade_packages: Sequence[str] = (),
    locked: bool = False,
    audit: bool = False,
    env: Mapping[str, str] | None = None,
) -> tuple[LockOutcome, ...]:
    """Analyse, then lock each entrypoint's required set for the target and fetch its wheels."""
    from slimbuild.lock import compile_lock, inputs_digest, write_lock
    from slimbuild.wheels import fetch_wheels

    env = os.environ if env is None else env
    analyses = analyze(settings, requested, env)
    declared, constraints = read_declared(settings.root, settings.requirements, settings.optional_groups)
    target = target_of(settings)
    cache = cache_dir(env)
    outcomes = []
    for a in analyses:
        _refuse_unhashable(a, declared)
        _refuse_unlockable(a)
        inputs = lock_inputs(a, constraints)
        digest = inputs_digest(inputs, target)
        path = lock_path(settings, a.entrypoint_name)
        existing = _read_lock(path)
        fresh = existing is not None and existing.inputs_sha256 == digest and not upgrade and not upgrade_packages
        if fresh:
            assert existing is not None
            current = existing
        elif locked:
            why = "is missing" if existing is None else "is stale (the analysis or the declared versions changed)"
            raise ResolutionError(
                f"{path.name} {why}; --locked refuses to re-lock", hint="run 'slimbuild lock' and commit the lock"
            )
        else:
            current = compile_lock(
                inputs,
                target,
                previous=existing.text if existing else None,
                upgrade=upgrade,
                upgrade_packages=upgrade_packages,
                env=env,
                allow_sdist=settings.allow_sdist,
            )
            write_lock(path, current)
        wheel_paths = fetch_wheels(current, target, cache, env=env, allow_sdist=settings.allow_sdist, verify_cached=not fresh)
        provides = _wheel_modules(cache, wheel_paths)
        findings = verify_provides(a, current, provides)
        vulns = None
        if audit or settings.audit:
            from slimbuild.audit import gate, run_audit

            vulns = run_audit(path, env)
            gate(vulns, path.name)
        outcomes.append(LockOutcome(a, path, current, not fresh, wheel_paths, findings, current.warnings, vulns))
    return tuple(outcomes)


def _wheel_modules(cache: Path, wheel_paths: Sequence[Path]) -> dict[str, tuple[str, ...]]:
    """Distribution -> import names its wheel provides, remembered per wheel file in the cache."""
    from slimbuild.wheels import wheel_top_level

    index_file = cache / "wheel-modules.json"
    try:
        known: dict[str, list[str]] = json.loads(index_file.read_text())
    except (OSError, ValueError):
        known = {}
    provides: dict[str, tuple[str, ...]] = {}
    changed = False
    for w in wheel_paths:
        if not w.name.endswith(".whl"):
            continue
        if w.name not in known:
            known[w.name] = sorted(wheel_top_level(w))
            changed = True
        provides[canonicalize_name(w.name.split("-")[0])] = tuple(known[w.name])
    if changed:
        try:
            atomic_write(index_file, json.dumps(known, sort_keys=True, indent=1).encode(), durable=False)
        except OSError:
            pass  # a read-only cache only costs speed
    return provides


def wheel_index(cache: Path, declared: Sequence[str]) -> ModuleIndex | None:
    """Top-level names of fetched wheels of the declared distributions (resolution step 3)."""
    try:
        known = json.loads((cache / "wheel-modules.json").read_text())
    except (OSError, ValueError):
        return None
    wanted = {canonicalize_name(d) for d in declared}
    dists: dict[str, set[str]] = {}
    for filename, mods in known.items():
        name = canonicalize_name(filename.split("-")[0])
        if name in wanted:
            dists.setdefault(name, set()).update(mods)
    return ModuleIndex.from_dists("wheels", dists) if dists else None


def lock_findings(
    settings: Settings, analyses: Sequence[Analysis], record: replay.Recorder | None = None
) -> tuple[Finding, ...]:
    """SB012 when a lock is missing (warning) or stale (error); offline, reads headers only."""
    from slimbuild.lock import inputs_digest

    target = target_of(settings)
    consulted: set[Path] = set()
    _declared, constraints = read_declared(settings.root, settings.requirements, settings.optional_groups, consulted)
    out = []
    for a in analyses:
        path = lock_path(settings, a.entrypoint_name)
        if record is not None:
            record.file(path)
        try:
            existing = _read_lock(path)
        except ResolutionError as exc:
            out.append(Finding(Location(path.name), "SB012", exc.message.split(": ", 1)[-1]))
            continue
        if existing is None:
            out.append(
                Finding(
                    Location(path.name),
                    "SB012",
                    f"no lock for entrypoint {a.entrypoint_name}: run 'slimbuild lock'",
                    Severity.WARNING,
                )
            )
        elif existing.inputs_sha256 != inputs_digest(lock_inputs(a, constraints), target):
            out.append(
                Finding(
                    Location(path.name),
                    "SB012",
                    f"lock is stale for entrypoint {a.entrypoint_name} (required set, versions or target changed): "
                    "run 'slimbuild lock'",
                )
            )
    if record is not None:
        for f in sorted(consulted):
            record.file(f)
    return tuple(out)
