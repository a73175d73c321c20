"""``slimbuild sbom`` and ``build --sbom``: the I/O around record/sbom.py's pure documents.

``sbom`` reads an image through ``docker save`` (or a saved tar): its manifest (none: exit 2), the dpkg status and
os-release of its layers, and each installed distribution's METADATA; a manifest file alone gives the Python part
only, with the licences from the wheelhouse's wheels where they are cached (the document says so in a note). Which
of a release's hashed files was installed is the wheelhouse's best-ranked file for the recorded target, as pip chose.

``build --sbom`` makes the document before the build, from the lock's wheels and the runtime base's dpkg status
(read once per base image id with ``docker save``, kept in the cache dir as ``base-sbom/<hex>.json``), so that
identical inputs still give the identical image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from slimbuild.errors import SlimbuildError, UsageError
from slimbuild.image.context import ContextFile
from slimbuild.image.plan import APP_PREFIX
from slimbuild.locking.lockfile import LockedDist
from slimbuild.locking.target import parse_target
from slimbuild.locking.wheels import installed_file, verified_sha256, wheel_metadata
from slimbuild.paths import atomic_write, cache_dir, file_digest
from slimbuild.pipeline.inspecting import form_of
from slimbuild.record import image_tar, manifest
from slimbuild.record.sbom import (
    DPKG_STATUS,
    DPKG_STATUS_D,
    OS_RELEASE,
    PYTHON_ONLY_NOTE,
    SBOM_PATH_IN_IMAGE,
    DebPackage,
    SbomInputs,
    check_format,
    deb_packages,
    distro_of,
    installed_metadata,
    python_packages,
    render_sbom,
    wanted_path,
)

if TYPE_CHECKING:
    from slimbuild.image.engine import Engine

SBOM_IN_APP = SBOM_PATH_IN_IMAGE.removeprefix("/app/")  # copied with the app files, beside the manifest


def check_output(output: Path | None) -> None:
    """Exit 2 before any work when ``-o`` cannot be written: a directory, or a parent that is missing or read-only."""
    if output is None:
        return
    parent = output.parent if str(output.parent) else Path(".")
    if output.is_dir():
        raise UsageError(f"{output}: is a directory", "give -o a file name")
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{output}: cannot write there ({parent} is missing or not writable)", "give -o a writable path")


def write_output(output: Path, data: bytes) -> None:
    """Write the document atomically (never half-written); an OS refusal is exit 2."""
    try:
        atomic_write(output, data)
    except OSError as exc:
        raise UsageError(f"{output}: cannot write the SBOM: {exc.strerror or exc}", "give -o a writable path") from None


def _subject(doc: Mapping[str, Any]) -> str:
    entry = doc.get("entrypoint") or {}
    return str(entry.get("name") or "image")


def _wheelhouse(doc: Mapping[str, Any], env: Mapping[str, str]) -> tuple[dict[str, bytes], dict[str, str]]:
    """From the wheelhouse: each distribution's METADATA (``name==version``) and installed file's sha256 (by name)."""
    try:
        cache = cache_dir(env)
        target = parse_target(str(doc["target"]["platform"]), "manifest target")
    except (SlimbuildError, KeyError, TypeError):
        return {}, {}
    metadata: dict[str, bytes] = {}
    shas: dict[str, str] = {}
    for d in doc.get("distributions", ()):
        dist = LockedDist(canonicalize_name(str(d["name"])), str(d["version"]), tuple(d.get("hashes", ())), 0)
        found = installed_file(dist, cache, target)
        if found is None:
            continue
        if found.parent.parent.name == "sha256":
            shas[dist.name] = found.parent.name
        try:
            meta = wheel_metadata(found)
        except SlimbuildError:
            meta = None  # a corrupt cached wheel gives no licence here; the build refetches it
        if meta is not None:
            metadata[f"{dist.name}=={dist.version}"] = meta
    return metadata, shas


def _unknown_hash_note(packages: Sequence[Any]) -> tuple[str, ...]:
    missing = sorted(p.name for p in packages if p.sha256 is None)
    if not missing:
        return ()
    return (f"installed wheel not known (not in the wheelhouse), no sha256 given: {', '.join(missing)}",)


def _from_scan(scan: image_tar.ImageScan, doc: Mapping[str, Any], env: Mapping[str, str]) -> SbomInputs:
    contents = scan.final_contents()
    house_meta, shas = _wheelhouse(doc, env)
    metadata = {**house_meta, **installed_metadata(contents)}  # the image's own METADATA first
    python = python_packages(doc["distributions"], metadata, shas)
    return SbomInputs(
        subject=_subject(doc),
        identity=scan.image_id,
        epoch=int(doc["source_date_epoch"]),
        python=python,
        debs=deb_packages(contents),
        distro=distro_of(contents),
        notes=_unknown_hash_note(python),
    )


def _from_manifest(doc: Mapping[str, Any], env: Mapping[str, str]) -> SbomInputs:
    metadata, shas = _wheelhouse(doc, env)
    python = python_packages(doc["distributions"], metadata, shas)
    image = doc.get("image") or {}
    identity = str(image.get("id") or f"manifest-sha256:{manifest.manifest_sha256(doc)}")
    return SbomInputs(
        subject=_subject(doc),
        identity=identity,
        epoch=int(doc["source_date_epoch"]),
        python=python,
        notes=(PYTHON_ONLY_NOTE, *_unknown_hash_note(python)),
    )


def sbom(
    target: str, connect: Callable[[], Engine], *, fmt: str = "cyclonedx", env: Mapping[str, str] | None = None
) -> tuple[bytes, tuple[str, ...]]:
    """The SBOM of TARGET (an image, a ``docker save`` tar or a manifest file) in ``fmt``, and warnings to show."""
    env = os.environ if env is None else env
    check_format(fmt)
    form = form_of(target)
    if form == "manifest":
        inputs = _from_manifest(manifest.read_manifest_file(Path(target)), env)
    elif form == "tar":
        with Path(target).open("rb") as fh:
            scan = image_tar.scan_image_tar(fh, wanted=wanted_path)
        inputs = _from_scan(scan, image_tar.manifest_from_scan(scan, source=target), env)
    else:
        engine = connect()
        info = engine.inspect_image(target)  # NoSuchImage: exit 2
        if manifest.LABEL_MANIFEST_SHA not in manifest.image_labels(info):
            manifest.manifest_from_image_config(info, source=target)  # no manifest: exit 2, before the save
        scan = image_tar.scan_image_tar(engine.save(str(info["Id"])), wanted=wanted_path)
        inputs = _from_scan(scan, image_tar.manifest_from_scan(scan, source=target), env)
    return render_sbom(inputs, fmt), inputs.notes


# --------------------------------------------------------------------------- build --sbom


def _base_wanted(path: str) -> bool:
    return path == DPKG_STATUS or path.startswith(DPKG_STATUS_D) or path in OS_RELEASE


def base_packages(engine: Engine, reference: str, cache: Path) -> tuple[tuple[DebPackage, ...], str]:
    """The Debian packages and distro of an image, from the cache (``base-sbom/<hex>.json``) or ``docker save``."""
    image_id = str(engine.inspect_image(reference)["Id"])
    path = cache / "base-sbom" / f"{image_id.split(':', 1)[-1]}.json"
    try:
        cached = json.loads(path.read_bytes())
        return tuple(DebPackage(*p) for p in cached["debs"]), str(cached["distro"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    contents = image_tar.scan_image_tar(engine.save(image_id), wanted=_base_wanted).final_contents()
    debs, distro = deb_packages(contents), distro_of(contents)
    record = {"debs": [[p.name, p.version, p.arch, p.source] for p in debs], "distro": distro}
    try:
        atomic_write(path, json.dumps(record, sort_keys=True).encode("utf-8"), durable=False)
    except (OSError, SlimbuildError):
        pass  # a cache that cannot be written costs time on the next build, never the build
    return debs, distro


def _dist_name(path: Path) -> str:
    try:
        return str(parse_wheel_filename(path.name)[0])
    except InvalidWheelFilename:
        pass
    try:
        return str(parse_sdist_filename(path.name)[0])
    except InvalidSdistFilename:
        return canonicalize_name(path.name.split("-", 1)[0])


def embedded_sbom(engine: Engine, pre: Mapping[str, Any], wheels: Sequence[Path], base: str, cache: Path) -> ContextFile:
    """The compact CycloneDX document that ``build --sbom`` puts beside the manifest in the image.

    Its identity is the embedded manifest's sha256 (the image cannot hold its own id); the wheels are the lock's
    files for this build (their sha256 and METADATA), the Debian packages the runtime base's.
    """
    debs, distro = base_packages(engine, base, cache)
    metadata: dict[str, bytes] = {}
    shas: dict[str, str] = {}
    versions = {canonicalize_name(str(d["name"])): str(d["version"]) for d in pre["distributions"]}
    for wheel in wheels:
        name = canonicalize_name(_dist_name(wheel))
        shas[name] = (verified_sha256(wheel) or file_digest(wheel)).split(":", 1)[-1]
        meta = wheel_metadata(wheel)
        if meta is not None and name in versions:
            metadata[f"{name}=={versions[name]}"] = meta
    python = python_packages(pre["distributions"], metadata, shas)
    inputs = SbomInputs(
        subject=_subject(pre),
        identity=f"manifest-sha256:{manifest.manifest_sha256(pre)}",
        epoch=int(pre["source_date_epoch"]),
        python=python,
        debs=debs,
        distro=distro,
        notes=_unknown_hash_note(python),
    )
    return ContextFile(f"{APP_PREFIX}{SBOM_IN_APP}", None, render_sbom(inputs, "cyclonedx", compact=True), 0o644)
