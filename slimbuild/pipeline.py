"""The one module that sequences the stages and their I/O."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from slimbuild import __version__, manifest, parsecache
from slimbuild.check import lock_inputs, reconcile, verify_provides
from slimbuild.config import Settings
from slimbuild.context import ContextFile, collect_project_files, validate_context_tar, write_context_tar
from slimbuild.declared import read_declared
from slimbuild.engine import Engine, ProgressEvent
from slimbuild.errors import AnalysisError, BuildFailed, ConfigError, ResolutionError
from slimbuild.lock import Lock, LockedDist, Target, compile_lock, inputs_digest, parse_lock, write_lock
from slimbuild.models import Analysis, Finding, Location, Severity
from slimbuild.notebook import notebook_script
from slimbuild.paths import atomic_write, cache_dir
from slimbuild.plan import (
    DEFAULT_SOURCE_DATE_EPOCH,
    PIP_WHEEL,
    content_tag,
    make_plan,
    parse_source_date_epoch,
    plan_launch,
    repository_name,
    rfc3339,
    smoke_argv,
    smoke_imports,
)
from slimbuild.render import CONTEXT_LOCK, CONTEXT_WHEELS_DIR, BuildPlan, render_dockerfile, validate_dockerfile
from slimbuild.resolve import ModuleIndex, probe_environment, resolve_modules
from slimbuild.trace import IGNORED_DIRS, Entrypoint, resolve_entrypoint, trace_cached
from slimbuild.wheels import fetch_wheels, wheel_top_level

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


def select_entrypoints(settings: Settings, requested: str = "") -> list[tuple[str, str]]:
    """(name, spec) pairs to analyse: the requested one, the configured ones, or one discovered."""
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


def _environment_python(settings: Settings, env: Mapping[str, str]) -> str:
    if settings.python:
        return settings.python
    venv = env.get("VIRTUAL_ENV")
    if venv and Path(venv, "bin", "python").exists():
        return str(Path(venv, "bin", "python"))
    local = settings.root / ".venv" / "bin" / "python"
    if local.exists():
        return str(local)
    return ""


def environment_index(settings: Settings, env: Mapping[str, str]) -> ModuleIndex | None:
    """Module index of the project's environment, cached by interpreter and site-packages mtimes."""
    python = _environment_python(settings, env)
    if not python:
        return None
    exe = Path(python)
    if not exe.exists():
        raise ConfigError(f"--python {python}: no such interpreter", hint="pass the path of the project's python")
    prefix = exe.resolve().parent.parent if exe.parent.name == "bin" else exe.parent
    venv_prefix = exe.parent.parent
    stamps = sorted(
        f"{p}:{p.stat().st_mtime_ns}" for base in {prefix, venv_prefix} for p in base.glob("lib/python3*/site-packages")
    )
    key = hashlib.sha256(json.dumps([str(exe.absolute()), stamps]).encode()).hexdigest()[:20]
    cache = cache_dir(env) / "environments" / f"{key}.json"
    try:
        dists = json.loads(cache.read_text())
    except (OSError, ValueError):
        try:
            dists = probe_environment(str(exe))
        except (OSError, ValueError, Exception) as exc:  # noqa: BLE001 - any probe failure is a config problem
            raise ConfigError(f"cannot read installed distributions with {python}: {exc}", hint="check --python") from None
        try:
            atomic_write(cache, json.dumps(dists, sort_keys=True).encode())
        except OSError:
            pass
    return ModuleIndex.from_dists(str(exe), dists)


def _read_digest_factory(max_bytes: int) -> Callable[[Path], str]:
    def read_digest(p: Path) -> str:
        st = p.stat()
        # Notebooks may be 5x larger (outputs); files over their limit are refused by the parser
        # anyway, so they are keyed without reading them.
        limit = max_bytes * 5 if p.suffix == ".ipynb" else max_bytes
        if st.st_size > limit:
            return f"oversize:{st.st_size}:{st.st_mtime_ns}"
        return parsecache.digest_file(p)

    return read_digest


def analyze(settings: Settings, requested: str = "", env: Mapping[str, str] | None = None) -> tuple[Analysis, ...]:
    """Trace (or reuse an unchanged trace), resolve and reconcile every selected entrypoint."""
    env = os.environ if env is None else env
    root = settings.root
    entries: list[Entrypoint] = [resolve_entrypoint(root, n, s) for n, s in select_entrypoints(settings, requested)]
    declared, _constraints = read_declared(root, settings.requirements, settings.optional_groups)
    env_index = environment_index(settings, env)
    wheels_index = wheel_index(cache_dir(env), [d.name for d in declared])
    cache_path = parsecache.cache_file(cache_dir(env), root)
    loaded: list[parsecache.Cache] = []  # the parse cache, read only when some graph must be traced

    def parse_cache() -> parsecache.Cache:
        if not loaded:
            loaded.append(parsecache.load(cache_path))
        return loaded[0]

    read_digest = _read_digest_factory(settings.max_source_bytes)
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
        )
        resolved = resolve_modules(
            (s.module for s in graph.third_party),
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


def lock_path(settings: Settings, name: str) -> Path:
    """``slimbuild.lock``, or ``slimbuild.<name>.lock`` when the project has several entrypoints."""
    if len(settings.entrypoints) > 1:
        return settings.root / f"slimbuild.{name}.lock"
    return settings.root / "slimbuild.lock"


def target_of(settings: Settings) -> Target:
    """The image's platform."""
    return Target(python_version=settings.target_python, machine=settings.machine)


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
    env: Mapping[str, str] | None = None,
) -> tuple[LockOutcome, ...]:
    """Analyse, then lock each entrypoint's required set for the target and fetch its wheels."""
    env = os.environ if env is None else env
    analyses = analyze(settings, requested, env)
    target = target_of(settings)
    cache = cache_dir(env)
    outcomes = []
    for a in analyses:
        _refuse_unlockable(a)
        inputs = lock_inputs(a)
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
        outcomes.append(LockOutcome(a, path, current, not fresh, wheel_paths, findings, current.warnings))
    return tuple(outcomes)


def _wheel_modules(cache: Path, wheel_paths: Sequence[Path]) -> dict[str, tuple[str, ...]]:
    """Distribution -> import names its wheel provides, remembered per wheel file in the cache."""
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
            atomic_write(index_file, json.dumps(known, sort_keys=True, indent=1).encode())
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


def lock_findings(settings: Settings, analyses: Sequence[Analysis]) -> tuple[Finding, ...]:
    """SB012 when a lock is missing (warning) or stale (error); offline, reads headers only."""
    target = target_of(settings)
    out = []
    for a in analyses:
        path = lock_path(settings, a.entrypoint_name)
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
        elif existing.inputs_sha256 != inputs_digest(lock_inputs(a), target):
            out.append(
                Finding(
                    Location(path.name),
                    "SB012",
                    f"lock is stale for entrypoint {a.entrypoint_name} (required set, versions or target changed): "
                    "run 'slimbuild lock'",
                )
            )
    return tuple(out)


# ----------------------------------------------------------------------------- build

MANIFEST_IN_APP = manifest.MANIFEST_PATH_IN_IMAGE.removeprefix("/app/")  # copied with the app files


@dataclass(frozen=True)
class BuildInputs:
    """Everything rendered into the Dockerfile and the context, before any engine is involved."""

    outcome: LockOutcome
    entry: Entrypoint
    plan: BuildPlan
    dockerfile: str
    files: tuple[ContextFile, ...]
    excluded: tuple[str, ...]
    base_reference: str
    base_local_only: bool
    source_date_epoch: int
    git: Mapping[str, object] | None
    content_tag: str
    smoke: tuple[tuple[str, ...], ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class BuildResult:
    """A built, smoke-tested and tagged image with its manifest."""

    image_id: str
    tags: tuple[str, ...]
    size_bytes: int
    added_bytes: int
    manifest_path: Path
    manifest: Mapping[str, Any]
    warnings: tuple[str, ...]


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state(root: Path) -> dict[str, object] | None:
    """Commit, dirty flag, commit time and a credential-free remote URL; None outside a repository."""
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return None
    status = _git(root, "status", "--porcelain", "--untracked-files=no") or ""
    remote = _git(root, "remote", "get-url", "origin") or ""
    if "@" in remote.split("://", 1)[-1].split("/", 1)[0]:
        scheme, _, rest = remote.partition("://")
        remote = f"{scheme}://{rest.split('@', 1)[1]}" if rest else ""
    return {
        "commit": commit,
        "dirty": bool(status),
        "time": int(_git(root, "log", "-1", "--format=%ct") or 0),
        "remote": remote if remote.startswith(("https://", "http://")) else "",
    }


def source_date_epoch(env: Mapping[str, str], git: Mapping[str, object] | None) -> int:
    """From $SOURCE_DATE_EPOCH, else the last commit's time, else a fixed epoch."""
    if env.get("SOURCE_DATE_EPOCH", "") != "":
        return parse_source_date_epoch(env["SOURCE_DATE_EPOCH"], "environment")
    if git and git.get("time"):
        return int(str(git["time"]))
    return DEFAULT_SOURCE_DATE_EPOCH


def resolve_base(engine: Engine | None, reference: str) -> tuple[str, bool, tuple[str, ...]]:
    """The base pinned by digest (or a local image's id, with a warning): (reference, local_only, warnings)."""
    if "@sha256:" in reference:
        return reference, False, ()
    if engine is None:
        raise ConfigError(
            f"base image {reference!r} is not pinned by digest and no engine is available to resolve it",
            hint="pass --base-image name:tag@sha256:<digest>, or start the Docker engine",
        )
    try:
        info = engine.inspect_image(reference)
    except BuildFailed:
        raise BuildFailed(
            f"base image {reference!r} is not available to the engine",
            hint=f"pull it first ('docker pull {reference}') or pass --base-image with a local image",
        ) from None
    name = reference.split("@")[0]
    repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    for digest_ref in sorted(info.get("RepoDigests") or []):
        if digest_ref.split("@")[0] == repo:
            tagged = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
            return f"{tagged}@{digest_ref.split('@')[1]}", False, ()
    image_id = str(info["Id"])
    return (
        image_id,
        True,
        (f"base image {reference} has no registry digest (local only): pinned by its image id {image_id[:19]}…",),
    )


def prepare_build(
    settings: Settings,
    requested: str = "",
    *,
    engine: Engine | None,
    locked: bool = False,
    base_image: str = "",
    env: Mapping[str, str] | None = None,
) -> tuple[BuildInputs, ...]:
    """Lock (unless --locked), fetch wheels, plan and render: everything up to the engine."""
    env = os.environ if env is None else env
    outcomes = lock(settings, requested, locked=locked, env=env)
    target = target_of(settings)
    cache = cache_dir(env)
    pip_lock = Lock(dists=(PIP_WHEEL,), target=target, inputs_sha256=None, text="")
    (pip_path,) = fetch_wheels(pip_lock, target, cache, env=env)
    git = git_state(settings.root)
    epoch = source_date_epoch(env, git)
    reference = base_image or settings.base_image or f"python:{settings.target_python}-slim"
    base_ref, local_only, warnings = resolve_base(engine, reference)
    project = str(_project_meta(settings.root).get("name") or settings.root.name)
    version = str(_project_meta(settings.root).get("version") or "")
    prepared = []
    for o in outcomes:
        a = o.analysis
        name, spec = next((n, s) for n, s in select_entrypoints(settings, requested) if n == a.entrypoint_name)
        entry = resolve_entrypoint(settings.root, name, spec)
        launch = plan_launch(entry.kind, entry.path, entry.module, entry.function, a.files)
        sources = [f for f in a.files if not f.endswith(".ipynb")]
        project_files, excluded = collect_project_files(settings.root, [*sources, *settings.include], arc_prefix="app/")
        extra: list[ContextFile] = []
        if entry.kind == "notebook":
            nb_bytes = (settings.root / entry.path).read_bytes()
            script = notebook_script(nb_bytes, entry.path).encode()
            extra.append(ContextFile(f"app/{launch.script}", None, script, 0o644))
        app_files = sorted({f.arcname[len("app/") :] for f in (*project_files, *extra)})
        lock_text = o.lock.text.encode()
        wheel_files = [(p.name, p) for p in o.wheels]
        labels = {
            "org.opencontainers.image.created": rfc3339(epoch),
            "org.opencontainers.image.title": f"{project} {name}",
            "io.slimbuild.lock-sha256": hashlib.sha256(lock_text).hexdigest(),
        }
        if version:
            labels["org.opencontainers.image.version"] = version
        if git:
            labels["org.opencontainers.image.revision"] = str(git["commit"])
            if git.get("remote"):
                labels["org.opencontainers.image.source"] = str(git["remote"])
        needed = {*(r.name for r in a.required), *smoke_imports(a)}
        plan = make_plan(
            base_image=base_ref,
            pip_wheel=pip_path.name,
            wheel_files=[w for w, _ in wheel_files],
            app_files=app_files,
            launch=launch,
            source_date_epoch=epoch,
            labels=labels,
            pyc=settings.pyc,
            template=settings.template,
            needed=needed,
        )
        template_dir = Path(settings.template) if ("/" in settings.template or settings.template.startswith(".")) else None
        if template_dir is not None and not template_dir.is_absolute():
            template_dir = settings.root / template_dir
        dockerfile = render_dockerfile(plan if template_dir is None else replace(plan, template="custom"), template_dir)
        validate_dockerfile(dockerfile)
        files = (
            *project_files,
            *extra,
            *(ContextFile(f"{CONTEXT_WHEELS_DIR}/{w}", p, None, 0o644) for w, p in wheel_files),
            ContextFile(f"{CONTEXT_WHEELS_DIR}/{pip_path.name}", pip_path, None, 0o644),
            ContextFile(CONTEXT_LOCK, None, lock_text, 0o644),
            ContextFile("Dockerfile", None, dockerfile.encode(), 0o644),
        )
        tag = content_tag(
            [lock_text, dockerfile.encode(), base_ref.encode()]
            + [
                f"{f.arcname}\0".encode() + (f.data if f.data is not None else _digest_path(f.source))
                for f in sorted(files, key=lambda f: f.arcname)
            ]
        )
        smoke = [smoke_argv(a)]
        if settings.smoke:
            smoke.append(tuple(settings.smoke))
        prepared.append(
            BuildInputs(
                o,
                entry,
                plan,
                dockerfile,
                tuple(sorted(files, key=lambda f: f.arcname)),
                excluded,
                base_ref,
                local_only,
                epoch,
                git,
                tag,
                tuple(smoke),
                (*warnings, *o.warnings),
            )
        )
    return tuple(prepared)


def _digest_path(path: Path | None) -> bytes:
    h = hashlib.sha256()
    assert path is not None
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def _installed_hash(dist: LockedDist, inputs: BuildInputs) -> list[str]:
    """The hash of the wheel that goes into the image (the cache stores it under its sha256)."""
    for w in inputs.outcome.wheels:
        if canonicalize_name(w.name.split("-")[0]) == dist.name and f"sha256:{w.parent.name}" in dist.hashes:
            return [f"sha256:{w.parent.name}"]
    return list(dist.hashes)


def _unpacked_size(dist: LockedDist, inputs: BuildInputs) -> int | None:
    """Uncompressed size of the distribution's wheel (before pruning): what it adds to the image, roughly."""
    import zipfile

    for w in inputs.outcome.wheels:
        if canonicalize_name(w.name.split("-")[0]) == dist.name and w.name.endswith(".whl"):
            with zipfile.ZipFile(w) as zf:
                return sum(i.file_size for i in zf.infolist())
    return None


def _file_records(inputs: BuildInputs) -> list[dict[str, object]]:
    out = []
    for f in inputs.files:
        if not f.arcname.startswith("app/"):
            continue
        data = f.data if f.data is not None else None
        digest = hashlib.sha256(data).hexdigest() if data is not None else _digest_path(f.source).hex()
        size = len(data) if data is not None else (f.source.stat().st_size if f.source else 0)
        rel = f.arcname[len("app/") :]
        kind = "notebook-script" if data is not None else ("source" if rel.endswith(".py") else "data")
        out.append({"path": rel, "sha256": digest, "size": size, "kind": kind})
    return out


def build(
    settings: Settings,
    requested: str = "",
    *,
    engine: Engine,
    tags: Sequence[str] = (),
    locked: bool = False,
    base_image: str = "",
    on_progress: Callable[[ProgressEvent], None] | None = None,
    keep_context: bool = False,
    env: Mapping[str, str] | None = None,
) -> tuple[BuildResult, ...]:
    """Lock, render, build untagged, smoke-run, then tag and write the manifest."""
    env = os.environ if env is None else env
    results = []
    for inputs in prepare_build(settings, requested, engine=engine, locked=locked, base_image=base_image, env=env):
        results.append(_build_one(settings, inputs, engine, tags, on_progress, keep_context, len(settings.entrypoints) > 1))
    return tuple(results)


def _build_one(
    settings: Settings,
    inputs: BuildInputs,
    engine: Engine,
    user_tags: Sequence[str],
    on_progress: Callable[[ProgressEvent], None] | None,
    keep_context: bool,
    several: bool,
) -> BuildResult:
    a = inputs.outcome.analysis
    pre = manifest.make_manifest(
        slimbuild_version=__version__,
        target={"python": settings.target_python, "platform": target_of(settings).describe()},
        base_image={
            "reference": inputs.base_reference,
            "digest_or_id": inputs.base_reference.split("@", 1)[-1],
            "local_only": inputs.base_local_only,
        },
        distributions=[
            {
                "name": d.name,
                "version": d.version,
                "hashes": list(d.hashes),
                "required_by": sorted({s.module for r in a.required if r.name == d.name for s in r.imports}),
            }
            for d in inputs.outcome.lock.dists
        ],
        declared_left_out=sorted(d.name for d in a.unused),
        files=_file_records(inputs),
        template={"name": settings.template, "dockerfile_sha256": hashlib.sha256(inputs.dockerfile.encode()).hexdigest()},
        source_date_epoch=inputs.source_date_epoch,
        git=({"commit": inputs.git["commit"], "dirty": inputs.git["dirty"]} if inputs.git else None),
        lock_sha256=hashlib.sha256(inputs.outcome.lock.text.encode()).hexdigest(),
        index_sources=list(inputs.outcome.lock.sources),
        excluded_sensitive=list(inputs.excluded),
        entrypoint={"name": a.entrypoint_name, "path": a.entrypoint, "argv": list(inputs.plan.entrypoint)},
        unparsed=list(a.unparsed),
        unresolved_dynamic=[str(loc) for loc in a.dynamic_unresolved],
    )
    embedded = manifest.manifest_bytes(pre)
    labels = manifest.manifest_labels(pre)
    with tempfile.TemporaryDirectory(prefix="slimbuild-context-") as tmp:
        os.chmod(tmp, 0o700)
        ctx_path = Path(tmp) / "context.tar"
        try:
            with ctx_path.open("wb") as fh:
                write_context_tar(
                    fh,
                    (*inputs.files, ContextFile(f"app/{MANIFEST_IN_APP}", None, embedded, 0o644)),
                    mtime=inputs.source_date_epoch,
                )
            with ctx_path.open("rb") as fh:
                validate_context_tar(fh)
        except OSError as exc:
            raise BuildFailed(f"cannot write the build context: {exc.strerror}", hint="free disk space in the temp dir") from None
        with ctx_path.open("rb") as fh:
            outcome = engine.build(fh, labels=labels, on_progress=on_progress)
        if keep_context:
            kept = settings.root / ".slimbuild-context.tar"
            shutil.copyfile(ctx_path, kept)
    image_id = outcome.image_id
    smoke_results = []
    for argv in inputs.smoke:
        run = engine.run(image_id, argv, user=f"{inputs.plan.uid}:{inputs.plan.uid}", timeout=600.0)
        smoke_results.append({"command": list(argv), "exit_code": run.exit_code, "ok": run.exit_code == 0})
        if run.exit_code != 0:
            engine.remove_image(image_id)
            tail = " | ".join(run.output.strip().splitlines()[-15:])
            raise BuildFailed(
                f"smoke run failed (exit {run.exit_code}): {' '.join(argv)}: {tail}",
                hint="no tag was applied; fix the analysis or its smoke command and rebuild",
            )
    info = engine.inspect_image(image_id)
    base_info = engine.inspect_image(inputs.base_reference)
    project = str(_project_meta(settings.root).get("name") or settings.root.name)
    repo = repository_name(project, a.entrypoint_name, several)
    refs = [f"{repo}:{inputs.content_tag}"]
    if inputs.git:
        refs.append(f"{repo}:git-{str(inputs.git['commit'])[:7]}")
    refs.extend(user_tags)
    engine.tag(image_id, refs)
    layers = [str(x) for x in (info.get("RootFS") or {}).get("Layers", [])]
    final = manifest.with_image(
        pre,
        {
            "id": image_id,
            "layer_diff_ids": layers,
            "size_bytes": int(info.get("Size", 0)),
            "added_bytes": int(info.get("Size", 0)) - int(base_info.get("Size", 0)),
            "tags": sorted(refs),
        },
        smoke=smoke_results,
    )
    path = settings.root / ("slimbuild.manifest.json" if not several else f"slimbuild.{a.entrypoint_name}.manifest.json")
    manifest.write_manifest(path, final)
    return BuildResult(
        image_id,
        tuple(refs),
        int(info.get("Size", 0)),
        int(info.get("Size", 0)) - int(base_info.get("Size", 0)),
        path,
        final,
        inputs.warnings,
    )
