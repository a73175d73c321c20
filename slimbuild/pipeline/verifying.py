"""``slimbuild verify``: rebuild an image from its record and prove that the rebuild is the same image.

The record is the manifest (of an image, a saved tar or a manifest file). Its inputs are the working
tree at the recorded commit (refused when it is elsewhere or dirty, unless ``allow_dirty``), the lock
(it must be the recorded one), the base image by digest or id, the template and the settings at that
commit, and ``SOURCE_DATE_EPOCH``. The rebuild uses no engine cache and no recorded deps image, so
every layer is made again; it is normalised like any build and compared by image id. When the ids
differ, the differing layers are read from both images (``docker save``), compared member by member,
and given to diffoscope when it is installed; its output is saved beside the manifest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbuild.analysis.runtime import escapes
from slimbuild.config import load_settings
from slimbuild.errors import IntegrityError, SlimbuildError, UsageError
from slimbuild.paths import atomic_write, cache_dir
from slimbuild.pipeline import inspecting
from slimbuild.record import data, provenance
from slimbuild.record.verify import (
    LayerDifference,
    data_mismatches,
    extract_layers,
    file_changes,
    input_refusal,
    layer_differences,
)

if TYPE_CHECKING:
    from slimbuild.image.build_stream import ProgressEvent
    from slimbuild.image.engine import Engine

DIFFOSCOPE_TIMEOUT = 600.0
DIFFOSCOPE_OUT = "slimbuild.verify.diffoscope.txt"


@dataclass(frozen=True)
class Verification:
    """The outcome of a rebuild: both ids, the differing layers (with their first file differences), where the
    diffoscope output went ("" when it did not run) and the data checked (``verify --data``)."""

    target: str
    recorded_id: str
    rebuilt_id: str
    layers: tuple[LayerDifference, ...]
    diffoscope: str
    data_checked: int
    refusal_overridden: str = ""
    base_note: str = ""  # the recorded base's tag now names another digest (the rebuild uses the recorded one)

    @property
    def same(self) -> bool:
        return self.recorded_id == self.rebuilt_id


def _project_root(target: str, project: Path | None) -> Path:
    if project is not None:
        return project
    path = Path(target)
    return path.resolve().parent if path.is_file() and path.suffix == ".json" else Path.cwd()


def _check_data(record: Mapping[str, Any], data_dir: Path) -> int:
    """``--data DIR``: every recorded data file, and every local data input (``inputs``), must be in DIR with its
    sha256, else exit 5. The count of what was checked."""
    if not data_dir.is_dir():
        raise UsageError(f"--data {data_dir}: no such directory", "pass the directory that holds the project's data files")
    files = [f for f in record.get("files") or [] if isinstance(f, Mapping)]
    # the data the traced runs opened that the image does not hold (an included one is a data file above)
    files.extend({"kind": "data", "path": t["path"], "sha256": t["sha256"]} for t in _traced_outside_image(record))
    bad = [f"{m.path}: recorded {m.recorded[:12]}, found {m.found[:12]}" for m in data_mismatches(files, data_dir)]
    inputs = [i for i in record.get("inputs") or [] if isinstance(i, Mapping)]
    bad.extend(m.describe() for m in data.check_inputs(inputs, data_dir))
    if bad:
        more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
        raise IntegrityError(
            f"{len(bad)} recorded data file(s) or input(s) differ in {data_dir}: {'; '.join(bad[:5])}{more}",
            "the data is not what the image was built with: fetch the recorded version, or rebuild",
        )
    local = sum(1 for i in inputs if i.get("kind") == "path" and isinstance(i.get("digest"), str))
    return sum(1 for f in files if f.get("kind") == "data") + local


def _traced_outside_image(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The recorded ``traced_data`` files not in the image and present at build, their paths inside the project."""
    traced = [t for t in record.get("traced_data") or [] if isinstance(t, Mapping)]
    return [t for t in traced if not t.get("included") and not t.get("missing") and not escapes(str(t.get("path")))]


def base_moved(engine: Engine, reference: str) -> str:
    """Whether the tag of a base recorded as ``name:tag@sha256:...`` now names another digest ("" when not, or unknown)."""
    if "@sha256:" not in reference:
        return ""  # a local base is recorded by its id alone: no tag to compare
    name, digest = reference.split("@", 1)
    try:
        info = engine.inspect_image(name)
    except SlimbuildError:
        return ""
    digests = sorted(d.split("@", 1)[1] for d in info.get("RepoDigests") or [] if "@" in d)
    if not digests or digest in digests:
        return ""
    return f"the base {name} now names {digests[0][:19]}, the record {digest[:19]}: the rebuild uses the recorded digest"


def _requested(record: Mapping[str, Any], entrypoints: Mapping[str, str]) -> str:
    entry = record.get("entrypoint") or {}
    return str(entry.get("name") or "") if len(entrypoints) > 1 else ""


# long: the sequence of verify, each step's refusal in order (inputs, data, lock, then the rebuild)
def verify(
    target: str,
    *,
    connect: Callable[[], Engine],
    project: Path | None = None,
    allow_dirty: bool = False,
    data_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
) -> Verification:
    """Rebuild TARGET's image from its record; the caller maps ``same`` to exit 0 or 9."""
    from slimbuild.pipeline.building import prepare_build, traced_data
    from slimbuild.pipeline.imaging import no_cache, untagged_image

    env = os.environ if env is None else env
    record = inspecting.inspect(target, connect)
    recorded_id = str((record.get("image") or {}).get("id") or "")
    if not recorded_id:
        raise UsageError(f"{target}: the record names no image id", "verify a manifest written by slimbuild build")
    root = _project_root(target, project)
    refusal = input_refusal(record, provenance.git_state(root))
    if refusal and not allow_dirty:
        raise UsageError(
            f"cannot verify {target}: {refusal}", "check out the recorded commit with a clean tree, or pass --allow-dirty"
        )
    checked = _check_data(record, data_dir) if data_dir is not None else 0
    settings = load_settings(root)
    run_env = {**env, "SOURCE_DATE_EPOCH": str(record.get("source_date_epoch", ""))}
    base = str((record.get("base_image") or {}).get("reference") or "")
    engine = connect()
    (inputs,) = prepare_build(
        settings, _requested(record, settings.entrypoints), engine=engine, locked=True, base_image=base, env=run_env,
        sbom=bool(record.get("sbom")),  # an image built with --sbom is rebuilt with it
    )[:1]
    lock_sha = hashlib.sha256(inputs.outcome.lock.text.encode()).hexdigest()
    if lock_sha != record.get("lock_sha256"):
        raise UsageError(
            f"cannot verify {target}: the lock is not the recorded one (sha256 {lock_sha[:12]}, recorded "
            f"{str(record.get('lock_sha256'))[:12]})",
            "check out the recorded commit's lock file",
        )
    with tempfile.TemporaryDirectory(prefix="slimbuild-verify-") as tmp:
        _, rebuilt = untagged_image(
            settings, inputs, no_cache(engine), on_progress, cache=cache_dir(run_env), deps_cache=Path(tmp),
            data_inputs=data.input_records(settings.inputs, settings.root), prune=True,
            traced_data=traced_data(settings)[0],  # the data the traced runs opened, as at build (its sha256s)
        )
    outcome = Verification(target, recorded_id, rebuilt, (), "", checked, refusal, base_moved(engine, base))
    if outcome.same:
        return outcome
    try:
        return _account(outcome, record, engine, target, root)
    finally:
        _remove_quietly(engine, rebuilt)


def _remove_quietly(engine: Engine, image_id: str) -> None:
    """The rebuilt image, when it is not the recorded one (its layers go with it unless the record shares them)."""
    try:
        engine.remove_image(image_id)
    except (SlimbuildError, OSError):
        pass


def _recorded_layers(record: Mapping[str, Any]) -> list[str]:
    image = record.get("image") or {}
    return [str(x) for x in image.get("layer_diff_ids") or []]


def _save_stream(engine: Engine, target: str, image_id: str) -> Iterator[bytes] | None:
    """The recorded image's ``docker save`` stream: the tar given, or the engine's copy; None when neither has it."""
    path = Path(target)
    if path.is_file() and path.suffix != ".json":
        return _file_chunks(path)
    try:
        engine.inspect_image(image_id)
    except SlimbuildError:
        return None
    return engine.save(image_id)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        yield from iter(lambda: fh.read(1024 * 1024), b"")


def _account(outcome: Verification, record: Mapping[str, Any], engine: Engine, target: str, root: Path) -> Verification:
    """The differing layers, their first member differences, and diffoscope's account when it is installed."""
    rebuilt_layers = [str(x) for x in (engine.inspect_image(outcome.rebuilt_id).get("RootFS") or {}).get("Layers") or []]
    layers = layer_differences(_recorded_layers(record), rebuilt_layers)
    wanted_old = {d.recorded for d in layers if d.recorded}
    wanted_new = {d.rebuilt for d in layers if d.rebuilt}
    diffoscope = ""
    with tempfile.TemporaryDirectory(prefix="slimbuild-verify-layers-") as tmp:
        stream = _save_stream(engine, target, outcome.recorded_id)
        old = extract_layers(stream, wanted_old, Path(tmp) / "recorded") if stream is not None and wanted_old else {}
        new = extract_layers(engine.save(outcome.rebuilt_id), wanted_new, Path(tmp) / "rebuilt") if wanted_new else {}
        detailed = []
        for d in layers:
            if d.recorded in old and d.rebuilt in new:
                files, more = file_changes(old[d.recorded], new[d.rebuilt])
                d = replace(d, files=files, more=more)
            detailed.append(d)
        layers = tuple(detailed)
        pairs = [(old[d.recorded], new[d.rebuilt]) for d in layers if d.recorded in old and d.rebuilt in new]
        if pairs and shutil.which("diffoscope"):
            diffoscope = _diffoscope(pairs, root / DIFFOSCOPE_OUT)
    return replace(outcome, layers=layers, diffoscope=diffoscope)


def _diffoscope(pairs: list[tuple[Path, Path]], out: Path) -> str:
    """Run diffoscope on each pair of differing layer tars; its text output is saved at ``out`` (atomically)."""
    parts: list[str] = []
    for recorded, rebuilt in pairs:
        try:
            proc = subprocess.run(
                ["diffoscope", "--no-progress", "--text", "-", str(recorded), str(rebuilt)],
                capture_output=True, text=True, timeout=DIFFOSCOPE_TIMEOUT, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            parts.append(f"diffoscope did not finish: {exc}\n")
            continue
        parts.append(proc.stdout or proc.stderr)
    try:
        atomic_write(out, "\n".join(parts).encode("utf-8"))
    except (OSError, SlimbuildError):
        return ""
    return str(out)
