"""Sequences the build: lock, wheels, plan, render, context, engine, smoke run, tags, manifest.

Kept apart from :mod:`slimbuild.pipeline` so that ``analyze``/``check``/``lock`` never
import the Docker SDK or Jinja2 (the pre-commit hook must start fast).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from slimbuild import __version__
from slimbuild.analysis.entrypoint import Entrypoint, resolve_entrypoint, select_entrypoints
from slimbuild.analysis.notebook import notebook_script
from slimbuild.config import Settings
from slimbuild.errors import BuildFailed, ConfigError, PolicyViolation
from slimbuild.image import stage_venv
from slimbuild.image.context import (
    ContextFile,
    collect_project_files,
    is_sensitive,
    large_file_warnings,
    validate_context_tar,
    write_context_tar,
)
from slimbuild.image.engine import BuildOutcome, Engine, ProgressEvent
from slimbuild.image.plan import (
    BUILD_BACKEND,
    DEFAULT_SOURCE_DATE_EPOCH,
    PIP_WHEEL,
    content_tag,
    make_plan,
    parse_source_date_epoch,
    plan_launch,
    repository_name,
    rfc3339,
    smoke_commands,
    smoke_imports,
)
from slimbuild.image.render import (
    CONTEXT_APP_DIR,
    CONTEXT_BUILD_LOCK,
    CONTEXT_LOCK,
    CONTEXT_STAGE_SCRIPT,
    CONTEXT_WHEELS_DIR,
    BuildPlan,
    render_dockerfile,
)
from slimbuild.locking.lockfile import Lock, LockedDist
from slimbuild.locking.wheels import fetch_wheels, verified_sha256
from slimbuild.paths import atomic_write, cache_dir
from slimbuild.pipeline.locking import LockOutcome, lock, target_of
from slimbuild.record import manifest

MANIFEST_IN_APP = manifest.MANIFEST_PATH_IN_IMAGE.removeprefix("/app/")  # copied with the app files
APP_PREFIX = f"{CONTEXT_APP_DIR}/"  # where the app files lie in the build context


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
    template_dir: Path | None = None  # a user's template directory (None: the bundled templates)


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
    if "@sha256:" in reference or reference.startswith("sha256:"):
        return reference, False, ()
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last or last.rsplit(":", 1)[1] == "latest":
        raise PolicyViolation(
            f"base image {reference!r} names no tag or 'latest': what it is changes under you (D4)",
            hint="pin a tag, e.g. python:3.11-slim, or a digest name:tag@sha256:<digest>",
        )
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
    engine: Engine | None = None,
    connect: Callable[[], Engine] | None = None,
    locked: bool = False,
    base_image: str = "",
    env: Mapping[str, str] | None = None,
) -> tuple[BuildInputs, ...]:
    """Lock (unless --locked), fetch wheels, plan and render: everything up to the engine.

    ``connect`` is called only after the lock holds (a stale lock under --locked fails before any engine is needed).
    """
    env = os.environ if env is None else env
    outcomes = lock(settings, requested, locked=locked, env=env)
    if engine is None and connect is not None:
        engine = connect()
    target = target_of(settings)
    cache = cache_dir(env)
    pip_lock = Lock(dists=(PIP_WHEEL,), target=target, inputs_sha256=None, text="")
    (pip_path,) = fetch_wheels(pip_lock, target, cache, env=env)
    git = git_state(settings.root)
    epoch = source_date_epoch(env, git)
    reference = base_image or settings.base_image or f"python:{settings.target_python}-slim"
    base_ref, local_only, warnings = resolve_base(engine, reference)
    project = str(settings.project.get("name") or settings.root.name)
    version = str(settings.project.get("version") or "")
    prepared = []
    for o in outcomes:
        a = o.analysis
        name, spec = next((n, s) for n, s in select_entrypoints(settings, requested) if n == a.entrypoint_name)
        entry = resolve_entrypoint(settings.root, name, spec)
        launch = plan_launch(entry.kind, entry.path, entry.module, entry.function, a.files)
        sources = [f for f in a.files if not f.endswith(".ipynb")]
        project_files, _ = collect_project_files(settings.root, [*sources, *settings.include], arc_prefix=APP_PREFIX)
        large = large_file_warnings(project_files, APP_PREFIX)
        excluded = sensitive_names(settings.root)
        extra: list[ContextFile] = []
        if entry.kind == "notebook":
            nb_bytes = (settings.root / entry.path).read_bytes()
            script = notebook_script(nb_bytes, entry.path).encode()
            extra.append(ContextFile(f"{APP_PREFIX}{launch.script}", None, script, 0o644))
        # The embedded manifest joins the context in _build_one; the Dockerfile must copy it too.
        app_files = sorted({MANIFEST_IN_APP, *(f.arcname[len(APP_PREFIX) :] for f in (*project_files, *extra))})
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
        sdists = sorted(canonicalize_name(p.name.rsplit("-", 1)[0]) for p in o.wheels if not p.name.endswith(".whl"))
        build_files: list[ContextFile] = []
        if sdists:
            backend_lock = Lock(dists=(BUILD_BACKEND,), target=target, inputs_sha256=None, text="")
            (backend,) = fetch_wheels(backend_lock, target, cache, env=env)
            build_files = [
                ContextFile(
                    CONTEXT_BUILD_LOCK,
                    None,
                    f"{BUILD_BACKEND.name}=={BUILD_BACKEND.version} --hash={BUILD_BACKEND.hashes[0]}\n".encode(),
                    0o644,
                ),
            ]
            wheel_files.append((backend.name, backend))
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
            healthcheck=settings.healthcheck,
            strip_sources=settings.strip_sources,
            keep_sources=settings.keep_sources,
            sdists=sdists,
        )
        template_dir = Path(settings.template) if ("/" in settings.template or settings.template.startswith(".")) else None
        if template_dir is not None and not template_dir.is_absolute():
            template_dir = settings.root / template_dir
        if template_dir is not None:
            plan = replace(plan, template="custom")
        dockerfile = render_dockerfile(plan, template_dir)  # validated there
        files = (
            *project_files,
            *extra,
            # fetch_wheels hashed each wheel in this run: the content tag reuses those digests
            *(ContextFile(f"{CONTEXT_WHEELS_DIR}/{w}", p, None, 0o644, verified_sha256(p)) for w, p in wheel_files),
            ContextFile(f"{CONTEXT_WHEELS_DIR}/{pip_path.name}", pip_path, None, 0o644, verified_sha256(pip_path)),
            ContextFile(CONTEXT_LOCK, None, lock_text, 0o644),
            ContextFile(CONTEXT_STAGE_SCRIPT, Path(stage_venv.__file__), None, 0o644),
            *build_files,
            ContextFile("Dockerfile", None, dockerfile.encode(), 0o644),
        )
        tag = content_tag(
            [lock_text, dockerfile.encode(), base_ref.encode()]
            + [
                f"{f.arcname}\0".encode() + (f.data if f.data is not None else _source_digest(f))
                for f in sorted(files, key=lambda f: f.arcname)
            ]
        )
        smoke = list(smoke_commands(a, settings.smoke))
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
                (*warnings, *o.warnings, *large),
                template_dir,
            )
        )
    return tuple(prepared)


_SKIP_WALK = frozenset({".venv", "venv", "node_modules", "__pycache__", ".tox", ".nox", ".mypy_cache", ".pytest_cache"})


def sensitive_names(root: Path, limit: int = 200) -> tuple[str, ...]:
    """Secret-like files and dirs in the project, by relative name only (B5: listed, never read, never shipped)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel = "" if rel_dir == "." else f"{rel_dir}/"
        keep = []
        for d in sorted(dirnames):
            if is_sensitive(f"{rel}{d}"):
                found.append(f"{rel}{d}/")
            elif d not in _SKIP_WALK:
                keep.append(d)
        dirnames[:] = keep
        found.extend(f"{rel}{f}" for f in sorted(filenames) if is_sensitive(f"{rel}{f}"))
        if len(found) >= limit:
            break
    return tuple(sorted(found)[:limit])


def _digest_path(path: Path | None) -> bytes:
    h = hashlib.sha256()
    assert path is not None
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def _source_digest(f: ContextFile) -> bytes:
    """The sha256 of a context file's source: the digest verified earlier in this run when there is one."""
    return bytes.fromhex(f.sha256) if f.sha256 else _digest_path(f.source)


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
        if not f.arcname.startswith(APP_PREFIX):
            continue
        data = f.data if f.data is not None else None
        digest = hashlib.sha256(data).hexdigest() if data is not None else _source_digest(f).hex()
        size = len(data) if data is not None else (f.source.stat().st_size if f.source else 0)
        rel = f.arcname[len(APP_PREFIX) :]
        kind = "notebook-script" if data is not None else ("source" if rel.endswith(".py") else "data")
        out.append({"path": rel, "sha256": digest, "size": size, "kind": kind})
    return out


DEPS_STAGE = "deps"


def deps_key(dockerfile: str, files: Sequence[ContextFile]) -> str | None:
    """What the image of the Dockerfile's stages up to ``deps`` depends on: their instructions and the
    context files they can read (everything but the app files); None when there is no deps stage."""
    from slimbuild.image.render import parse_dockerfile

    h = hashlib.sha256(b"slimbuild deps image v1\0")
    found = False
    for ins in parse_dockerfile(dockerfile):
        if ins.keyword == "FROM":
            if found:
                break
            words = ins.value.split()
            found = len(words) == 3 and words[1].upper() == "AS" and words[2] == DEPS_STAGE
        h.update(f"{ins.keyword} {ins.value}\0".encode())
    if not found:
        return None
    for f in sorted(files, key=lambda f: f.arcname):
        if f.arcname.startswith(APP_PREFIX) or f.arcname == "Dockerfile":
            continue
        digest = hashlib.sha256(f.data).hexdigest() if f.data is not None else _source_digest(f).hex()
        h.update(f"{f.arcname}\0{f.mode:o}\0{digest}\0".encode())
    return h.hexdigest()


def _deps_image(
    engine: Engine, inputs: BuildInputs, key: str, cache: Path, on_progress: Callable[[ProgressEvent], None] | None
) -> str:
    """The image of the builder and deps stages: the one recorded for this key if the engine still has it,
    else built now (target ``deps``, from the wheelhouse, lock and stage script only) and recorded."""
    record = cache / "deps" / f"{key}.json"
    try:
        image_id = str(json.loads(record.read_text(encoding="utf-8"))["image_id"])
        if str(engine.inspect_image(image_id).get("Id")) == image_id:
            return image_id
    except (OSError, ValueError, KeyError, TypeError, BuildFailed):
        pass  # no record, or the engine no longer has that image (pruned, another engine): build it
    deps_files = [f for f in inputs.files if not f.arcname.startswith(APP_PREFIX)]
    outcome = _send(engine, deps_files, inputs.source_date_epoch, labels={}, on_progress=on_progress, target=DEPS_STAGE)
    try:
        atomic_write(record, json.dumps({"image_id": outcome.image_id}, sort_keys=True).encode() + b"\n")
    except OSError:
        pass  # a cache that cannot be written costs the next build this step again, nothing else
    return outcome.image_id


def _write_context(path: Path, files: Sequence[ContextFile], epoch: int) -> None:
    try:
        with path.open("wb") as fh:
            write_context_tar(fh, files, mtime=epoch)
        with path.open("rb") as fh:
            validate_context_tar(fh)
    except OSError as exc:
        raise BuildFailed(f"cannot write the build context: {exc.strerror}", hint="free disk space in the temp dir") from None


def _send(
    engine: Engine,
    files: Sequence[ContextFile],
    epoch: int,
    *,
    labels: Mapping[str, str],
    on_progress: Callable[[ProgressEvent], None] | None,
    target: str = "",
) -> BuildOutcome:
    """Build from a deterministic context of FILES (written to a private temp dir, removed after)."""
    with tempfile.TemporaryDirectory(prefix="slimbuild-context-") as tmp:
        os.chmod(tmp, 0o700)
        ctx_path = Path(tmp) / "context.tar"
        _write_context(ctx_path, files, epoch)
        with ctx_path.open("rb") as fh:
            return engine.build(fh, labels=labels, on_progress=on_progress, target=target)


def build(
    settings: Settings,
    requested: str = "",
    *,
    engine: Engine | None = None,
    connect: Callable[[], Engine] | None = None,
    tags: Sequence[str] = (),
    locked: bool = False,
    base_image: str = "",
    on_progress: Callable[[ProgressEvent], None] | None = None,
    keep_context: bool = False,
    env: Mapping[str, str] | None = None,
) -> tuple[BuildResult, ...]:
    """Lock, render, build untagged, smoke-run, then tag and write the manifest.

    Pass the ``engine``, or ``connect`` to reach one once the lock holds (analysis and lock run once either way).
    """
    env = os.environ if env is None else env
    engines: list[Engine] = [] if engine is None else [engine]

    def reach() -> Engine:
        if not engines:
            if connect is None:
                raise TypeError("build() needs engine= or connect=")
            engines.append(connect())
        return engines[0]

    prepared = prepare_build(settings, requested, connect=reach, locked=locked, base_image=base_image, env=env)
    results = []
    several, cache = len(settings.entrypoints) > 1, cache_dir(env)
    for inputs in prepared:
        results.append(_build_one(settings, inputs, reach(), tags, on_progress, keep_context, several, cache))
    return tuple(results)


def _build_one(
    settings: Settings,
    inputs: BuildInputs,
    engine: Engine,
    user_tags: Sequence[str],
    on_progress: Callable[[ProgressEvent], None] | None,
    keep_context: bool,
    several: bool,
    cache: Path,
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
        # The user's pip configuration (index, proxy, credentials) is never recorded: it stays on the host.
        index_sources=[],
        excluded_sensitive=list(inputs.excluded),
        entrypoint={"name": a.entrypoint_name, "path": a.entrypoint, "argv": list(inputs.plan.entrypoint)},
        unparsed=list(a.unparsed),
        unresolved_dynamic=[str(loc) for loc in a.dynamic_unresolved],
        audit=None
        if inputs.outcome.audit is None
        else [
            {"name": v.name, "version": v.version, "id": v.id, "fix_versions": list(v.fix_versions)} for v in inputs.outcome.audit
        ],
    )
    embedded = manifest.manifest_bytes(pre)
    labels = manifest.manifest_labels(pre)
    files = (*inputs.files, ContextFile(f"{APP_PREFIX}{MANIFEST_IN_APP}", None, embedded, 0o644))
    if keep_context:
        with tempfile.TemporaryDirectory(prefix="slimbuild-context-") as tmp:
            kept = Path(tmp) / "context.tar"
            _write_context(kept, files, inputs.source_date_epoch)
            shutil.copyfile(kept, settings.root / ".slimbuild-context.tar")
    key = deps_key(inputs.dockerfile, inputs.files)
    derived = ""
    if key is not None:
        deps_id = _deps_image(engine, inputs, key, cache, on_progress)
        derived = render_dockerfile(replace(inputs.plan, deps_image=deps_id), inputs.template_dir)  # validated there
    if key is None or derived == inputs.dockerfile:
        # a user template without a deps stage, or one that ignores deps_image: one build from the whole context
        outcome = _send(engine, files, inputs.source_date_epoch, labels=labels, on_progress=on_progress)
    else:
        app_only = [f for f in files if f.arcname.startswith(APP_PREFIX)]
        app_only.append(ContextFile("Dockerfile", None, derived.encode(), 0o644))
        outcome = _send(engine, app_only, inputs.source_date_epoch, labels=labels, on_progress=on_progress)
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
    project = str(settings.project.get("name") or settings.root.name)
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
