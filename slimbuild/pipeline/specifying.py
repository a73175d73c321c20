"""``slimbuild spec``: the stages' manifests read, their run specs made (record/runspec.py), printed or written.

Every manifest is read and every spec made before anything is written, so a refused stage (never pushed, not
built) leaves ``-o DIR`` as it was; the files are then staged beside their destinations and renamed into place.
The engine is asked only for a custom template's image user (the bundled templates' is known).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from slimbuild.config import Settings
from slimbuild.errors import ConfigError, SlimbuildError, UsageError
from slimbuild.pipeline import outputs
from slimbuild.record import runspec
from slimbuild.record.manifest import NoManifest, read_manifest_file
from slimbuild.stages import PipelineConfig

if TYPE_CHECKING:
    from slimbuild.image.engine import Engine


@dataclass(frozen=True)
class SpecOutcome:
    """What ``spec`` made: the format, the pipeline's name, its files, and where they were written (none: stdout)."""

    format: str
    pipeline: str
    files: tuple[runspec.SpecFile, ...]
    written: tuple[Path, ...] = ()


def _pipeline(settings: Settings) -> PipelineConfig:
    if settings.pipeline is None:
        where = settings.config_file or "pyproject.toml"
        raise ConfigError(
            f"{where}: no [tool.slimbuild.pipeline] table: spec writes one run spec per stage it names",
            hint='add one, e.g. [tool.slimbuild.pipeline.stages.train] with repo = "raw" (README.md, "Pipelines")',
        )
    return settings.pipeline


def _config_user(engine: Engine, manifest: dict[str, object], stage: str) -> str:
    image = manifest.get("image")
    image_id = image.get("id") if isinstance(image, dict) else None
    if not image_id:
        raise UsageError(f"stage {stage!r}: its manifest records no image id", hint="rebuild it with slimbuild build")
    return str((engine.inspect_image(str(image_id)).get("Config") or {}).get("User") or "")


def stage_images(
    settings: Settings, pipeline: PipelineConfig, repository: str, connect: Callable[[], Engine]
) -> list[runspec.StageImage]:
    """Each stage's pinned image, argv and user, from the manifest ``build`` wrote for its entrypoint."""
    several = len(settings.entrypoints) > 1
    engine: Engine | None = None
    images = []
    for stage in pipeline.stages:
        path = outputs.manifest_file(settings, stage.name, several)
        try:
            manifest = read_manifest_file(path)
        except NoManifest:
            raise UsageError(
                f"stage {stage.name!r}: not built ({path.name} is missing in {path.parent})",
                hint=runspec.push_hint(stage.name, "build and push it"),
            ) from None
        user = None
        template = (manifest.get("template") or {}).get("name")
        if template not in runspec.BUILTIN_TEMPLATES and manifest.get("pushed"):
            engine = engine or connect()
            user = _config_user(engine, manifest, stage.name)
        images.append(runspec.stage_image(stage, manifest, str(path), repository=repository, config_user=user))
    return images


def _writer(text: str) -> Callable[[BinaryIO], object]:
    return lambda fh: fh.write(text.encode("utf-8"))


def spec(
    settings: Settings, fmt: str, *, out_dir: Path | None, repository: str = "", connect: Callable[[], Engine]
) -> SpecOutcome:
    """Run specs of FORMAT for every stage of ``[tool.slimbuild.pipeline]``; written into OUT_DIR when given."""
    pipeline = _pipeline(settings)
    name = runspec.pipeline_name(pipeline.name, settings.project.get("name"), settings.root.name)
    files = runspec.spec_files(fmt, name, stage_images(settings, pipeline, repository, connect))
    if out_dir is None:
        return SpecOutcome(fmt, name, files)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o {out_dir}: not a directory", hint="give a directory (it is created), or omit -o for stdout")
    staged: list[outputs.Staged] = []
    try:
        for f in files:
            staged.append(outputs.stage(out_dir / f.name, _writer(f.text)))
        for s in staged:
            s.commit()
    except SlimbuildError as exc:
        for s in staged:
            s.discard()
        raise ConfigError(exc.message, hint="give -o a writable directory, or omit it for stdout") from None
    except BaseException:
        for s in staged:
            s.discard()
        raise
    return SpecOutcome(fmt, name, files, tuple(out_dir / f.name for f in files))
