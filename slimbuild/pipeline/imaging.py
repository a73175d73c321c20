"""One entrypoint's image: built untagged from its context (the deps image first, reused per lock), its manifest
(and SBOM) embedded, then normalised (pipeline/normalizing.py); and the engine wrapper for ``--no-cache``.

building.py sequences the build around it (lock, wheels, plan, smoke run, tags, manifest); verifying.py rebuilds
with it from a record.
"""


from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from slimbuild.config import Settings
from slimbuild.errors import BuildFailed, NoSuchImage, SlimbuildError
from slimbuild.image import stage_inplace
from slimbuild.image.build_stream import BuildOutcome, ProgressEvent
from slimbuild.image.context import (
    ContextFile,
    source_sizes,
    validate_context_tar,
    write_context_tar,
)
from slimbuild.image.engine import Engine
from slimbuild.image.engine_commit import ARCHIVE_AT
from slimbuild.image.plan import (
    APP_PREFIX,
    DEPS_STAGE,
    deps_key,
)
from slimbuild.image.render import VENV_WORK, render_dockerfile, render_venv_script
from slimbuild.paths import atomic_write
from slimbuild.pipeline import outputs
from slimbuild.pipeline.locking import target_of
from slimbuild.pipeline.normalizing import normalize_image
from slimbuild.record import manifest, provenance

VENV_SCRIPT = "venv.sh"
INPLACE_MODULE = "stage_inplace.py"  # imported by slimbuild-stage.py --in-place, from beside it
VENV_TIMEOUT = 3600.0  # the venv step's container: a lock of big wheels on a slow engine
MANIFEST_IN_APP = manifest.MANIFEST_PATH_IN_IMAGE.removeprefix("/app/")  # copied with the app files



if TYPE_CHECKING:
    from slimbuild.pipeline.building import BuildInputs


def _sbom_file(engine: Engine, inputs: BuildInputs, pre: Mapping[str, Any], cache: Path) -> tuple[ContextFile, ...]:
    """build --sbom: the SBOM beside the embedded manifest, made from the lock's wheels and the runtime base before the
    build (the image stays reproducible); nothing without --sbom."""
    if not inputs.sbom:
        return ()
    from slimbuild.pipeline.sbomming import embedded_sbom

    base = inputs.plan.runtime_image or inputs.plan.base_image
    return (embedded_sbom(engine, pre, inputs.outcome.wheels, base, cache),)


def sbom_in_app() -> str:
    from slimbuild.pipeline.sbomming import SBOM_IN_APP

    return SBOM_IN_APP


def _deps_image(
    engine: Engine, inputs: BuildInputs, key: str, cache: Path, on_progress: Callable[[ProgressEvent], None] | None
) -> str:
    """The image of the builder and deps stages: the one recorded for this key if the engine still has it,
    else built now and recorded: from the venv image (``_venv_route``) or as target ``deps`` from the wheelhouse,
    lock and stage script only."""
    script = _venv_route(engine, inputs)
    if script is not None:  # another key: the venv step's script and its staging module make the image too
        key = hashlib.sha256(f"{key}\0venv\0{script}\0".encode() + Path(stage_inplace.__file__).read_bytes()).hexdigest()
    record = cache / "deps" / f"{key}.json"
    try:
        image_id = str(json.loads(record.read_text(encoding="utf-8"))["image_id"])
        if str(engine.inspect_image(image_id).get("Id")) == image_id:
            return image_id
    except (OSError, ValueError, KeyError, TypeError, BuildFailed, NoSuchImage):
        pass  # no record, or the engine no longer has that image (pruned, another engine): build it
    deps_files = [f for f in inputs.files if not f.arcname.startswith(APP_PREFIX)]
    if script is not None:
        image_id = _venv_deps(engine, inputs, deps_files, script, on_progress)
    else:
        outcome = _send(engine, deps_files, inputs.source_date_epoch, labels={}, on_progress=on_progress, target=DEPS_STAGE)
        image_id = outcome.image_id
    try:
        atomic_write(record, json.dumps({"image_id": image_id}, sort_keys=True).encode() + b"\n")
    except OSError:
        pass  # a cache that cannot be written costs the next build this step again, nothing else
    return image_id


def _venv_route(engine: Engine, inputs: BuildInputs) -> str | None:
    """The rendered venv.sh when the deps image is made from a committed venv container: the template has one and
    the plan is the common case (wheels only: no sdists, no system-packages, one venv layer, no traced pruning, the
    runtime on the builder's base) on an engine other than podman; else None (the Dockerfile's builder stage)."""
    plan = inputs.plan
    if plan.sdists or plan.debs or plan.layers or plan.traced or plan.runtime_image not in ("", plan.base_image):
        return None
    if engine.info().podman:  # README "Podman": its compat API's commit and diff differ; the builder stage works there
        return None
    return render_venv_script(plan, inputs.template_dir)


def _venv_deps(
    engine: Engine, inputs: BuildInputs, deps_files: Sequence[ContextFile], script: str,
    on_progress: Callable[[ProgressEvent], None] | None,
) -> str:  # fmt: skip
    """The venv image committed from a container of the base, then target ``deps`` on it (metadata only)."""
    work = VENV_WORK.removeprefix(f"{ARCHIVE_AT}/")
    files = [replace(f, arcname=f"{work}/{f.arcname}") for f in deps_files if f.arcname != "Dockerfile"]
    files.append(ContextFile(f"{work}/{VENV_SCRIPT}", None, script.encode(), 0o644))
    files.append(ContextFile(f"{work}/{INPLACE_MODULE}", Path(stage_inplace.__file__), None, 0o644))
    if on_progress is not None:
        on_progress(ProgressEvent("log", "venv: installing the lock in a container of the base"))
    with tempfile.TemporaryDirectory(prefix="slimbuild-venv-") as tmp:
        os.chmod(tmp, 0o700)
        tar = Path(tmp) / "venv.tar"
        _write_context(tar, files, inputs.source_date_epoch)
        with tar.open("rb") as fh:
            argv = ["/bin/sh", f"{VENV_WORK}/{VENV_SCRIPT}"]
            venv_id = engine.commit_run(inputs.plan.base_image, fh, argv, timeout=VENV_TIMEOUT)
    try:
        dockerfile = render_dockerfile(replace(inputs.plan, venv_image=venv_id), inputs.template_dir)
        outcome = _send(
            engine, [ContextFile("Dockerfile", None, dockerfile.encode(), 0o644)], inputs.source_date_epoch, labels={},
            on_progress=on_progress, target=DEPS_STAGE,
        )  # fmt: skip
    except BaseException:
        discard(engine, venv_id)  # nothing refers to it yet
        raise
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


def untagged_image(
    settings: Settings,
    inputs: BuildInputs,
    engine: Engine,
    on_progress: Callable[[ProgressEvent], None] | None,
    *,
    cache: Path,
    deps_cache: Path | None = None,
    data_inputs: Sequence[Mapping[str, Any]] = (),
    keep: Callable[[outputs.Staged], None] | None = None,
    prune: bool = False,
    traced_data: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[dict[str, Any], str]:
    """One entrypoint's image, built untagged with its manifest embedded, and normalised: (that manifest, its id).

    ``keep`` receives the staged ``--keep-context`` tar. ``deps_cache`` is where the deps image of a lock is recorded
    and looked up (default ``cache``; ``verify`` gives an empty one so that nothing is reused), and with ``prune``
    the image as the builder made it goes with the intermediates only it used. ``traced_data``: building.py's
    ``traced_data`` (None: no trace).
    """
    a = inputs.outcome.analysis
    app = [f for f in inputs.files if f.arcname.startswith(APP_PREFIX)]
    pre = provenance.build_manifest(
        analysis=a,
        lock=inputs.outcome.lock,
        audit=inputs.outcome.audit,
        target=target_of(settings),
        base_reference=inputs.base_reference,
        base_local_only=inputs.base_local_only,
        files=inputs.files,
        sizes=source_sizes(app),
        template=settings.template,
        dockerfile=inputs.dockerfile,
        argv=inputs.plan.entrypoint,
        source_date_epoch=inputs.source_date_epoch,
        git=inputs.git,
        excluded=inputs.excluded,
        inputs=data_inputs,
        system_packages=inputs.system_packages,
        traced_data=traced_data,
        # the image's sys.path beyond the entrypoint's directory, when the configuration sets it (A50)
        pythonpath=[d for k, v in inputs.plan.env if k == "PYTHONPATH" for d in v.split(":")] if settings.pythonpath else (),
        sbom=f"/app/{sbom_in_app()}" if inputs.sbom else "",
    )
    embedded = ContextFile(f"{APP_PREFIX}{MANIFEST_IN_APP}", None, manifest.manifest_bytes(pre), 0o644)
    files = (*inputs.files, embedded, *_sbom_file(engine, inputs, pre, cache))
    if keep is not None:
        keep(_keep_context(settings.root, files, inputs.source_date_epoch))
    built_id = _build_image(engine, inputs, files, manifest.manifest_labels(pre), deps_cache or cache, on_progress).image_id
    try:
        # the config at SOURCE_DATE_EPOCH (G1): identical inputs, identical image id; the layers stay as built
        image_id = normalize_image(engine, built_id, inputs.source_date_epoch, cache)
    except BaseException:
        discard(engine, built_id)
        raise
    if prune:
        _discard_chain(engine, built_id)
    elif image_id != built_id:
        discard(engine, built_id)
    return pre, image_id


def _keep_context(root: Path, files: Sequence[ContextFile], epoch: int) -> outputs.Staged:
    """--keep-context: the whole context (self-contained Dockerfile), staged as ``.slimbuild-context.tar``."""
    with tempfile.TemporaryDirectory(prefix="slimbuild-context-") as tmp:
        kept = Path(tmp) / "context.tar"
        _write_context(kept, files, epoch)
        with kept.open("rb") as src:
            return outputs.stage(root / ".slimbuild-context.tar", lambda fh: shutil.copyfileobj(src, fh))


def _build_image(
    engine: Engine,
    inputs: BuildInputs,
    files: Sequence[ContextFile],
    labels: Mapping[str, str],
    cache: Path,
    on_progress: Callable[[ProgressEvent], None] | None,
) -> BuildOutcome:
    """The untagged image: the app built on the deps image (reused or built first), or all in one build."""
    key = deps_key(inputs.dockerfile, inputs.files)
    derived = ""
    if key is not None:
        deps_id = _deps_image(engine, inputs, key, cache, on_progress)
        derived = render_dockerfile(replace(inputs.plan, deps_image=deps_id), inputs.template_dir)  # validated there
    if key is None or derived == inputs.dockerfile:
        # a user template without a deps stage, or one that ignores deps_image: one build from the whole context
        return _send(engine, files, inputs.source_date_epoch, labels=labels, on_progress=on_progress)
    app_only = [f for f in files if f.arcname.startswith(APP_PREFIX)]
    app_only.append(ContextFile("Dockerfile", None, derived.encode(), 0o644))
    return _send(engine, app_only, inputs.source_date_epoch, labels=labels, on_progress=on_progress)


def discard(engine: Engine, image_id: str) -> None:
    """Remove the untagged image of a failed build, best effort (the engine keeps it when a tag points at it)."""
    try:
        engine.remove_image(image_id)
    except (SlimbuildError, OSError):
        pass  # the first failure is the one to report


class _NoCache:
    """The engine with its build cache turned off: every layer is made again (``build --no-cache``, ``verify``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def build(self, context: Any, **kwargs: Any) -> BuildOutcome:
        return self._engine.build(context, **{**kwargs, "nocache": True})


def no_cache(engine: Engine) -> Engine:
    """``engine`` whose every build runs with ``nocache``."""
    return cast("Engine", _NoCache(engine))


def _discard_chain(engine: Engine, image_id: str) -> None:
    """Remove an untagged image and its build's untagged intermediates, best effort."""
    try:
        engine.remove_chain(image_id)
    except (SlimbuildError, OSError):
        pass
