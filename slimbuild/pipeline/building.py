"""Sequences the build: lock, wheels, plan, render, context, engine, smoke run, tags, manifest.

Kept apart from :mod:`slimbuild.pipeline` so that ``analyze``/``check``/``lock`` never
import the Docker SDK or Jinja2 (the pre-commit hook must start fast). The decisions are pure
functions of :mod:`slimbuild.image.plan` and :mod:`slimbuild.record.provenance`; this module does the I/O.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from slimbuild.analysis.notebook import notebook_script
from slimbuild.analysis.runtime_feed import data_files
from slimbuild.config import Settings
from slimbuild.errors import BuildFailed, NoSuchImage
from slimbuild.image import stage_prune, stage_venv
from slimbuild.image.build_stream import ProgressEvent
from slimbuild.image.context import (
    ContextFile,
    collect_project_files,
    large_file_warnings,
    sensitive_names,
    with_digests,
)
from slimbuild.image.engine import Engine
from slimbuild.image.layers import (
    MAX_LAYERS,
    LayerUnit,
    WheelInfo,
    group_layers,
    layer_budget,
    layer_steps,
    layered,
    layout_text,
    wheel_name,
)
from slimbuild.image.plan import (
    APP_PREFIX,
    BUILD_BACKEND,
    CONTEXT_BUILD_LOCK,
    CONTEXT_DEBS_DIR,
    CONTEXT_LAYERS,
    CONTEXT_LOCK,
    CONTEXT_STAGE_RULES,
    CONTEXT_STAGE_SCRIPT,
    CONTEXT_WHEELS_DIR,
    DEPS_STAGE,
    PIP_WHEEL,
    BuildPlan,
    Launch,
    app_file_list,
    backend_lock_line,
    context_content_tag,
    deps_key,
    first_party_smoke,
    has_main_guard,
    image_refs,
    make_plan,
    oci_labels,
    plan_launch,
    repository_name,
    sdist_names,
    smoke_commands,
    smoke_imports,
    user_template_dir,
)
from slimbuild.image.reference import check_image, check_tag
from slimbuild.image.render import render_dockerfile
from slimbuild.image.secrets import allow_spec, check_contents
from slimbuild.image.traced import KeepSpec, summary
from slimbuild.locking.lockfile import Lock, LockedDist
from slimbuild.locking.target import Target
from slimbuild.locking.wheels import fetch_wheels, verified_sha256
from slimbuild.models import Entrypoint
from slimbuild.paths import cache_dir
from slimbuild.pipeline import outputs, pruning, pushing
from slimbuild.pipeline.base_python import Base, pin_base, resolve_base
from slimbuild.pipeline.imaging import discard, no_cache, sbom_in_app, untagged_image
from slimbuild.pipeline.locking import LockOutcome, lock, target_of
from slimbuild.pipeline.system_libs import SystemPackages, check_system_libs
from slimbuild.record import data, manifest, provenance
from slimbuild.record.provenance import git_state, source_date_epoch

__all__ = [
    "APP_PREFIX", "DEPS_STAGE", "MANIFEST_IN_APP", "BuildInputs", "BuildResult", "build", "deps_key", "git_state",
    "pin_base", "prepare_build", "resolve_base", "sensitive_names", "source_date_epoch", "traced_data",
]  # fmt: skip

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
    template_dir: Path | None = None  # a user's template directory (None: the bundled templates)
    sbom: bool = False  # build --sbom: a CycloneDX document beside the embedded manifest (pipeline/sbomming.py)
    system_packages: tuple[Mapping[str, str], ...] = ()  # the .deb files installed (system-packages): name, version, sha256
    # prune = "traced": the keep spec in the context, and the traced commands the pruned image must pass
    keep: KeepSpec | None = None
    proof: tuple[tuple[str, ...], ...] = ()


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
    pushed: tuple[Mapping[str, str], ...] = ()  # build --push: {"reference": host/repo:tag, "digest"}, sorted


@dataclass(frozen=True)
class _RunValues:
    """What every entrypoint of one build shares: target, caches, pip's wheel, git, epoch and the pinned base."""

    target: Target
    cache: Path
    env: Mapping[str, str]
    pip_path: Path
    git: Mapping[str, object] | None
    epoch: int
    base_reference: str
    base_local_only: bool
    warnings: tuple[str, ...]
    project: str
    version: str
    base_layers: int | None = None  # the pinned base's own layers, as the engine reports them (None: no engine)


def _fetch_one(dist: LockedDist, run_target: Target, cache: Path, env: Mapping[str, str]) -> Path:
    """The cached (or downloaded) hash-checked file of one pinned tool distribution (pip, the build backend)."""
    (path,) = fetch_wheels(Lock(dists=(dist,), target=run_target, inputs_sha256=None, text=""), run_target, cache, env=env)
    return path


def _run_values(settings: Settings, base: Base, env: Mapping[str, str], engine: Engine | None = None) -> _RunValues:
    """Fetch pip's wheel, read git, take the epoch and count the base's layers: once per build, in this order."""
    target = target_of(settings)
    cache = cache_dir(env)
    pip_path = _fetch_one(PIP_WHEEL, target, cache, env)
    git = git_state(settings.root)
    epoch = source_date_epoch(env, git)
    project = str(settings.project.get("name") or settings.root.name)
    version = str(settings.project.get("version") or "")
    return _RunValues(
        target, cache, env, pip_path, git, epoch, base.reference, base.local_only, base.warnings, project, version,
        _base_layers(engine, base.reference),
    )  # fmt: skip


def _base_layers(engine: Engine | None, reference: str) -> int | None:
    """How many layers the pinned base has (its RootFS), from the engine; None when it cannot say."""
    if engine is None:
        return None
    try:
        layers = (engine.inspect_image(reference).get("RootFS") or {}).get("Layers")
    except NoSuchImage:  # a base the engine pulls at build time: the default budget holds
        return None
    return len(layers) if isinstance(layers, list) else None


def prepare_build(
    settings: Settings,
    requested: str = "",
    *,
    engine: Engine | None = None,
    connect: Callable[[], Engine] | None = None,
    locked: bool = False,
    base_image: str = "",
    env: Mapping[str, str] | None = None,
    upgrade: bool = False,
    sbom: bool = False,
) -> tuple[BuildInputs, ...]:
    """Lock (unless --locked), fetch wheels, plan and render: everything up to the engine.

    ``connect`` is called only after the lock holds (a stale lock under --locked fails before any engine is needed),
    and the base is pinned and its Python checked right then, before the first wheel is fetched.
    """
    env = os.environ if env is None else env
    if base_image or settings.base_image:  # the default, python:<X.Y>-slim, is valid
        check_image(base_image or settings.base_image, "--base-image" if base_image else "base-image")
    engines = [] if engine is None else [engine]
    bases: list[Base] = []

    def pin() -> None:
        if bases:
            return
        if not engines and connect is not None:
            engines.append(connect())
        bases.append(pin_base(settings, engines[0] if engines else None, base_image, env))

    outcomes = lock(settings, requested, locked=locked, env=env, upgrade=upgrade, before_wheels=pin)
    pin()  # a lock stage that fetched nothing
    # the libraries the wheels need, against the base and the system-packages: a missing one fails here (exit 7)
    system = check_system_libs(
        settings.system_packages, engines[0] if engines else None, bases[0].reference,
        [w for o in outcomes for w in o.wheels], settings.machine, cache_dir(env), env, refresh=upgrade,
    )  # fmt: skip
    run = _run_values(settings, bases[0], env, engines[0] if engines else None)
    return tuple(_prepare_one(settings, o, run, system, sbom) for o in outcomes)


# long: one entrypoint's context, file by file (app, wheels, debs, layers, lock, stage script, Dockerfile), in one place
def _prepare_one(settings: Settings, o: LockOutcome, run: _RunValues, system: SystemPackages, sbom: bool = False) -> BuildInputs:
    """One entrypoint's plan, Dockerfile, context files and content tag."""
    a = o.analysis
    entry, name = a.entry, a.entrypoint_name
    if entry is None:
        raise TypeError("the analysis does not carry its resolved entrypoint")  # analyze() always sets it
    launch = plan_launch(
        entry.kind, entry.path, entry.module, entry.function, a.files, entry.runner, entry.args, settings.pythonpath
    )
    sources = [f for f in a.files if not f.endswith(".ipynb")]
    allow = allow_spec(settings.allow_secrets)
    skipped: list[str] = []
    project_files, _ = collect_project_files(
        settings.root, [*sources, *settings.include], arc_prefix=APP_PREFIX, allow=allow,
        on_skip=lambda name, reason: skipped.append(f"{name}: {reason}"),
    )  # fmt: skip
    large = large_file_warnings(project_files, APP_PREFIX)
    excluded = sensitive_names(settings.root, allow=allow)
    app = (*project_files, *_notebook_files(settings.root, entry, launch))
    check_contents(((f.arcname.removeprefix(APP_PREFIX), f.source, f.data) for f in app), allow)  # B19: exit 10
    git = provenance.with_context(run.git, settings.root, _shipped_paths(settings.root, project_files, a.files))
    lock_text = o.lock.text.encode()
    wheel_files = [(p.name, p) for p in o.wheels]
    sdists = sdist_names(o.wheels)
    build_files: list[ContextFile] = []
    if sdists:
        backend = _fetch_one(BUILD_BACKEND, run.target, run.cache, run.env)
        build_files = [ContextFile(CONTEXT_BUILD_LOCK, None, backend_lock_line(), 0o644)]
        wheel_files.append((backend.name, backend))
    # The embedded manifest joins the context in _build_one; the Dockerfile must copy it too.
    labels = oci_labels(epoch=run.epoch, title=f"{run.project} {name}", lock_text=lock_text, version=run.version, git=git)
    app_files = app_file_list(app, MANIFEST_IN_APP)
    if sbom:
        app_files = sorted({*app_files, sbom_in_app()})
    debs = [(f"{CONTEXT_DEBS_DIR}/{path.name}", path, pkg.sha256) for pkg, path in system.debs]
    units = venv_layers(settings, o.wheels)
    keep, proof, keep_files = pruning.keep_files(settings, o.wheels, run.cache) if settings.prune == "traced" else (None, (), ())
    build_files.extend(keep_files)

    def render(units: Sequence[LayerUnit]) -> tuple[BuildPlan, Path | None, str]:
        return _render(
            settings, o, app_files, [w for w, _ in wheel_files], launch, labels, sdists, run,
            [path.name for _, path in system.debs], units,
        )  # fmt: skip

    plan, template_dir, dockerfile = render(units)
    fit = _venv_budget(dockerfile, len(units), run)
    if fit is not None and len(units) > fit:  # the base's own layers leave less room: group more, render again
        units = venv_layers(settings, o.wheels, fit)
        plan, template_dir, dockerfile = render(units)
    if units:
        build_files.append(ContextFile(CONTEXT_LAYERS, None, layout_text(units), 0o644))
    files = (
        *app,
        # fetch_wheels hashed each wheel in this run: the digests are reused (with_digests reads only the others)
        *(ContextFile(f"{CONTEXT_WHEELS_DIR}/{w}", p, None, 0o644, verified_sha256(p)) for w, p in wheel_files),
        ContextFile(f"{CONTEXT_WHEELS_DIR}/{run.pip_path.name}", run.pip_path, None, 0o644, verified_sha256(run.pip_path)),
        ContextFile(CONTEXT_LOCK, None, lock_text, 0o644),
        ContextFile(CONTEXT_STAGE_SCRIPT, Path(stage_venv.__file__), None, 0o644),
        ContextFile(CONTEXT_STAGE_RULES, Path(stage_prune.__file__), None, 0o644),
        *build_files,
        *(ContextFile(arcname, path, None, 0o644, sha) for arcname, path, sha in debs),
        ContextFile("Dockerfile", None, dockerfile.encode(), 0o644),
    )
    ordered = with_digests(sorted(files, key=lambda f: f.arcname))
    tag = context_content_tag(lock_text, dockerfile, run.base_reference, ordered)
    smoke = tuple(smoke_commands(a, settings.smoke, first_party_smoke(a, launch, _main_guarded(settings.root, entry))))
    warnings = (*run.warnings, *o.warnings, *large, *skipped)
    return BuildInputs(
        o, entry, plan, dockerfile, ordered, excluded, run.base_reference, run.base_local_only, run.epoch, git, tag,
        smoke, warnings, template_dir, sbom, system.records(), keep, proof,
    )  # fmt: skip


def traced_data(settings: Settings) -> tuple[list[dict[str, Any]] | None, tuple[str, ...]]:
    """The manifest's ``traced_data`` before ``included`` (record/data.py: the project's data files the traced runs
    opened, each hashed) and the warnings for those gone since; (None, ()) when the project has no trace."""
    from slimbuild.pipeline.tracing import read_trace

    trace = read_trace(settings)
    if trace is None:
        return None, ()
    return data.traced_records(settings.root, data_files(trace))


def venv_layers(settings: Settings, wheels: Sequence[Path], max_layers: int = MAX_LAYERS) -> tuple[LayerUnit, ...]:
    """The venv's layers for the lock's distribution files (none: the venv is one layer), per ``venv-layers``."""
    if not layered(settings.venv_layers, len(settings.entrypoints)):
        return ()
    return group_layers([
        WheelInfo(wheel_name(p.name), verified_sha256(p) or hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_size)
        for p in wheels
    ], max_layers)  # fmt: skip


def _venv_budget(dockerfile: str, venv_steps: int, run: _RunValues) -> int | None:
    """How many venv layers the engine's limit leaves on this base (None: not known, the default budget holds).

    Checked for the single-layer venv too: a base too deep for the template fails here (exit 2), not in the engine."""
    root, steps = layer_steps(dockerfile)
    if run.base_layers is None or root != run.base_reference:
        return None
    return layer_budget(run.base_layers, steps - (venv_steps or 1))  # the single venv COPY is its one layer


def _shipped_paths(root: Path, project_files: Sequence[ContextFile], files: Sequence[str]) -> list[str]:
    """The project-relative files whose content the image holds: every app file (and a symlink's target in the
    project), and each notebook a generated script comes from."""
    out = [f.arcname[len(APP_PREFIX) :] for f in project_files]
    real = root.resolve()
    for f in project_files:
        if f.source is not None and f.source.resolve().is_relative_to(real):
            out.append(f.source.resolve().relative_to(real).as_posix())
    return [*out, *(f for f in files if f.endswith(".ipynb"))]


def _main_guarded(root: Path, entry: Entrypoint) -> bool:
    """Whether the entrypoint's file has an ``if __name__ == "__main__":`` block (the smoke run may then load it)."""
    if entry.kind == "notebook" or not entry.path.endswith(".py"):
        return False
    try:
        return has_main_guard((root / entry.path).read_bytes())
    except OSError:
        return False  # the trace read it: a file gone since is not loaded, the build fails on it elsewhere


def _notebook_files(root: Path, entry: Entrypoint, launch: Launch) -> tuple[ContextFile, ...]:
    """A notebook entrypoint's generated script (the notebook itself never ships); nothing for other kinds."""
    if entry.kind != "notebook":
        return ()
    script = notebook_script((root / entry.path).read_bytes(), entry.path).encode()
    return (ContextFile(f"{APP_PREFIX}{launch.script}", None, script, 0o644),)


def _render(
    settings: Settings,
    o: LockOutcome,
    app_files: Sequence[str],
    wheel_names: Sequence[str],
    launch: Launch,
    labels: Mapping[str, str],
    sdists: Sequence[str],
    run: _RunValues,
    debs: Sequence[str] = (),
    units: Sequence[LayerUnit] = (),
) -> tuple[BuildPlan, Path | None, str]:
    """The plan, the user's template directory (None: the bundled templates) and the rendered Dockerfile."""
    plan = make_plan(
        base_image=run.base_reference,
        pip_wheel=run.pip_path.name,
        wheel_files=wheel_names,
        app_files=app_files,
        launch=launch,
        source_date_epoch=run.epoch,
        labels=labels,
        pyc=settings.pyc,
        template=settings.template,
        needed={*(r.name for r in o.analysis.required), *smoke_imports(o.analysis)},
        healthcheck=settings.healthcheck,
        strip_sources=settings.strip_sources,
        keep_sources=settings.keep_sources,
        keep_files=settings.keep_files,
        keep_locales=settings.keep_locales,
        sdists=sdists,
        debs=debs,
        layers=units,
        traced=settings.prune == "traced",
    )
    template_dir = user_template_dir(settings.template, settings.root)
    if template_dir is not None:
        plan = replace(plan, template="custom")
    return plan, template_dir, render_dockerfile(plan, template_dir)  # validated there


# long: every option of a build is one keyword here, and the all-or-nothing handling of the whole run is in one place
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
    upgrade: bool = False,
    nocache: bool = False,
    sbom: bool = False,
    push: bool = False,
    trace_in_image: bool = False,
) -> tuple[BuildResult, ...]:
    """Check the references and where the outputs go; lock, render, build untagged and smoke-run every entrypoint;
    stage every manifest; then tag them all (and with ``push``, push them: pipeline/pushing.py) and commit the
    files, all or nothing (pipeline/outputs.py).

    Pass the ``engine``, or ``connect`` to reach one once the lock holds (analysis and lock run once either way).
    """
    env = os.environ if env is None else env
    if push:
        pushing.check_push_tags(tags)
    for t in tags:
        check_tag(t)
    cache = cache_dir(env)
    outputs.check_writable(settings, cache=cache, lock=not locked, manifest=True, keep_context=keep_context, build=True)
    engines: list[Engine] = [] if engine is None else [no_cache(engine) if nocache else engine]
    # the data the analysis reads (inputs): hashed first, so a configured sha256 that no longer holds fails fast (exit 5)
    data_inputs = data.input_records(settings.inputs, settings.root)

    def reach() -> Engine:
        if not engines:
            if connect is None:
                raise TypeError("build() needs engine= or connect=")
            engines.append(no_cache(connect()) if nocache else connect())
        return engines[0]

    prepared = prepare_build(
        settings, requested, connect=reach, locked=locked, base_image=base_image, env=env, upgrade=upgrade, sbom=sbom
    )
    traced, traced_warnings = traced_data(settings)  # the data the traced runs opened, hashed once for every entrypoint
    prepared = tuple(replace(p, warnings=(*p.warnings, *traced_warnings)) for p in prepared)
    fresh = Path(tempfile.mkdtemp(prefix="slimbuild-nocache-")) if nocache else None  # no recorded deps image either
    built: list[tuple[BuildResult, tuple[outputs.Staged, ...]]] = []
    several = len(settings.entrypoints) > 1
    try:
        for inputs in prepared:
            built.append(
                _build_one(
                    settings, inputs, reach(), tags, on_progress, keep_context, several, cache, data_inputs, fresh, push,
                    trace_in_image, traced,
                )
            )
        return _publish(reach(), built, tags if push else None, env, on_progress)
    except BaseException:
        for result, files in built:  # publish undid the tags; no image of this run stays untagged
            discard(reach(), result.image_id)
            for f in files:
                f.discard()
        raise
    finally:
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)


def _publish(
    engine: Engine,
    built: Sequence[tuple[BuildResult, Sequence[outputs.Staged]]],
    push_tags: Sequence[str] | None,
    env: Mapping[str, str],
    on_progress: Callable[[ProgressEvent], None] | None,
) -> tuple[BuildResult, ...]:
    """Tag every image, push its refs (unless PUSH_TAGS is None) and commit the files: all or nothing."""
    staged = [f for _, files in built for f in files]
    published: list[pushing.Published] = []
    finish = None
    if push_tags is not None:
        images = [(r.tags, r.manifest, r.manifest_path) for r, _ in built]
        finish = pushing.before_commit(engine, images, push_tags, env=env, on_progress=on_progress, out=published)
    outputs.publish(engine, [(r.image_id, r.tags) for r, _ in built], staged, before_commit=finish)
    if push_tags is None:
        return tuple(r for r, _ in built)
    return tuple(replace(r, manifest=p.manifest, pushed=p.pushed) for (r, _), p in zip(built, published, strict=True))


def _build_one(
    settings: Settings,
    inputs: BuildInputs,
    engine: Engine,
    user_tags: Sequence[str],
    on_progress: Callable[[ProgressEvent], None] | None,
    keep_context: bool,
    several: bool,
    cache: Path,
    data_inputs: Sequence[Mapping[str, Any]] = (),
    deps_cache: Path | None = None,
    push: bool = False,
    trace_in_image: bool = False,
    traced: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[BuildResult, tuple[outputs.Staged, ...]]:
    """Build one entrypoint's image untagged and smoke-run it; stage its manifest (and kept context). Untagged.

    With ``push`` its refs also carry the run's tags in each --tag's repository (pipeline/pushing.py).
    """
    a = inputs.outcome.analysis
    staged: list[outputs.Staged] = []
    try:
        pre, image_id = untagged_image(
            settings, inputs, engine, on_progress, cache=cache, data_inputs=data_inputs, deps_cache=deps_cache,
            keep=staged.append if keep_context else None, traced_data=traced,
        )  # fmt: skip
    except BaseException:
        for f in staged:
            f.discard()
        raise
    try:
        # prune = "traced": every traced command first (the first failure names the file it lacks), then the smoke run
        proven = pruning.prove(engine, image_id, inputs.proof, inputs.plan.uid) if inputs.keep is not None else None
        smoke_results = _smoke(engine, inputs, image_id)
        extra = _runtime_records(engine, inputs, image_id, proven, trace_in_image)
        info = engine.inspect_image(image_id)
        base_info = engine.inspect_image(inputs.base_reference)
        project = str(settings.project.get("name") or settings.root.name)
        refs = image_refs(repository_name(project, a.entrypoint_name, several), inputs.content_tag, inputs.git, user_tags)
        if push:
            refs = list(dict.fromkeys([*refs, *pushing.refs_to_push(refs, user_tags)]))
        final = manifest.with_image(pre, provenance.image_record(image_id, info, base_info, refs), smoke=smoke_results)
        final = provenance.with_index_sources({**final, **extra}, inputs.outcome.index_sources)
        path = outputs.manifest_file(settings, a.entrypoint_name, several)
        manifest.validate_manifest(final, str(path))
        payload = manifest.manifest_bytes(final)
        staged.append(outputs.stage(path, lambda fh: fh.write(payload)))
    except BaseException:
        discard(engine, image_id)  # F12, E10: an image that was never tagged is not left behind
        for f in staged:
            f.discard()
        raise
    size = int(info.get("Size", 0))
    result = BuildResult(image_id, tuple(refs), size, size - int(base_info.get("Size", 0)), path, final, inputs.warnings)
    return result, tuple(staged)


def _runtime_records(
    engine: Engine, inputs: BuildInputs, image_id: str, proven: list[dict[str, object]] | None, trace_in_image: bool
) -> dict[str, Any]:
    """The manifest's ``pruned`` (prune = "traced": the keep spec's counts, the traced commands proven) and, with
    --trace-in-image, ``trace_in_image`` (the smoke commands traced in the image)."""
    extra: dict[str, Any] = {}
    if inputs.keep is not None and proven is not None:
        extra["pruned"] = {**summary(inputs.keep, ()), "proven": proven}
    if trace_in_image:
        extra["trace_in_image"] = pruning.trace_in_image(engine, image_id, inputs.smoke, inputs.plan.uid)
    return extra


def _smoke(engine: Engine, inputs: BuildInputs, image_id: str) -> list[dict[str, object]]:
    """Run every smoke command in the untagged image; the first failure raises (F12: never tagged)."""
    results: list[dict[str, object]] = []
    for argv in inputs.smoke:
        run = engine.run(image_id, argv, user=f"{inputs.plan.uid}:{inputs.plan.uid}", timeout=600.0)
        results.append({"command": list(argv), "exit_code": run.exit_code, "ok": run.exit_code == 0})
        if run.exit_code != 0:
            tail = " | ".join(run.output.strip().splitlines()[-15:])
            raise BuildFailed(
                f"smoke run failed (exit {run.exit_code}): {' '.join(argv)}: {tail}",
                hint="no tag was applied; fix the analysis or its smoke command and rebuild",
            )
    return results
