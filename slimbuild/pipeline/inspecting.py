"""Reading records: ``inspect`` an image, a saved tar, a manifest file or a registry's image; ``diff`` two, in any mix.

Where an image reference is read: ``docker://REF`` always from REF's registry (the engine is never asked); a plain
reference from the engine, and from its registry when the engine does not have it (or none is running) and its
first component names a registry host (a "." or ":" in it, or ``localhost``). A name without a registry host
(``python:3.12``, Docker Hub's) never leaves the machine unless written ``docker://python:3.12``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbuild.errors import EngineUnavailable, NoSuchImage, SlimbuildError, UsageError
from slimbuild.image.reference import check_image, parse_reference
from slimbuild.record import compare, image_tar, manifest

if TYPE_CHECKING:  # inspecting a file never loads the Docker SDK
    from slimbuild.image.engine import Engine

_FILE_SUFFIXES = (".json", ".tar", ".tar.gz", ".tgz")
REMOTE_PREFIX = "docker://"  # skopeo's transport name: this reference is read from its registry, never the engine


def form_of(target: str) -> str:
    """``manifest`` (a ``.json`` file), ``tar`` (another file), ``registry`` (``docker://REF``) or ``image`` (a reference).

    A name ending like a file (``.json``, ``.tar``, ...) that does not exist is UsageError, not an image reference.
    """
    if target.startswith(REMOTE_PREFIX):
        parse_reference(target[len(REMOTE_PREFIX) :], "image")  # exit 2 before the registry is asked
        return "registry"
    path = Path(target)
    if path.is_file():
        return "manifest" if path.suffix == ".json" else "tar"
    if target.endswith(_FILE_SUFFIXES) or path.is_dir():
        raise UsageError(f"{target}: no such file", "give a manifest file, a docker save tar or an image reference")
    check_image(target, "image")  # exit 2 before the engine is asked
    return "image"


def _image_manifest(engine: Engine, target: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest in an image's labels (sha256 checked, H1), ``image`` filled from the engine; and its inspect document."""
    info = engine.inspect_image(target)  # NoSuchImage: exit 2
    doc = manifest.manifest_from_image_config(info, source=target)
    if doc.get("image") is None:
        base = doc["base_image"]["digest_or_id"]
        try:
            base_info = engine.inspect_image(base)
        except SlimbuildError:
            base_info = None
        doc = manifest.with_image(doc, manifest.image_info_from_inspect(info, base_info))
    return doc, info


def _remote_side(target: str, platform: str | None) -> compare.Side:
    """The manifest in the config blob of TARGET's image in its registry (sha256 checked, H1), with ``image`` filled
    from the config and manifest; its layer sizes are the registry's compressed blob sizes."""
    from slimbuild.image import oci, registry  # the registry client loads only for a remote read

    ref_text = target.removeprefix(REMOTE_PREFIX)
    ref = parse_reference(ref_text, "image")
    remote = registry.read_image(ref, target, platform=platform)
    doc = manifest.manifest_from_image_config(remote.config, source=target)
    info = manifest.ImageInfo(
        id=remote.config_digest,
        layer_diff_ids=oci.diff_ids(remote.config),
        size_bytes=sum(remote.layer_sizes),
        layer_sizes=remote.layer_sizes,
        tags=(ref_text,) if ref.tag else (),
    )
    return compare.Side(target, "registry", manifest.with_image(doc, info), remote.layer_sizes, "registry")


def _in_registry(target: str) -> bool:
    """Whether a reference the engine cannot answer names a registry host to ask instead."""
    try:
        return parse_reference(target, "image").domain != ""
    except UsageError:  # an image id (sha256:<hex>) is the engine's alone
        return False


def inspect(target: str, connect: Callable[[], Engine], *, platform: str | None = None) -> dict[str, Any]:
    """The manifest of TARGET: a manifest file (``.json``), a ``docker save`` tar, an image the engine has, or one in a
    registry (``docker://REF``, or a REF with a registry host the engine does not have)."""
    form = form_of(target)
    if form == "manifest":
        return manifest.read_manifest_file(Path(target))
    if form == "tar":
        with Path(target).open("rb") as fh:
            return image_tar.read_manifest_from_image_tar(fh, source=target)
    if form == "registry":
        return dict(_remote_side(target, platform).manifest)
    try:
        return _image_manifest(connect(), target)[0]
    except (NoSuchImage, EngineUnavailable):
        if not _in_registry(target):
            raise
        return dict(_remote_side(target, platform).manifest)


def _scanned(scan: image_tar.ImageScan, target: str, form: str) -> compare.Side:
    doc = manifest.with_image(image_tar.manifest_from_scan(scan, source=target), image_tar.image_info_from_scan(scan))
    return compare.Side(target, form, doc, tuple(layer.size for layer in scan.layers), "tar")


def read_side(
    target: str, form: str, connect: Callable[[], Engine], *, saved: bool = False, platform: str | None = None
) -> compare.Side:
    """One side of a diff, read as ``inspect`` reads it; an image with its layer sizes from the engine's history,
    or (``saved``) from its ``docker save`` stream, so that they measure what a tar's do; a registry's image with the
    compressed sizes of its layer blobs (never fetched)."""
    if form == "registry":
        return _remote_side(target, platform)
    if form == "image":
        try:
            return _engine_side(target, connect, saved=saved)
        except (NoSuchImage, EngineUnavailable):
            if not _in_registry(target):
                raise
            return _remote_side(target, platform)
    if form == "manifest":
        return compare.Side(target, form, manifest.read_manifest_file(Path(target)))
    if form == "tar":
        with Path(target).open("rb") as fh:
            return _scanned(image_tar.scan_image_tar(fh), target, form)
    raise UsageError(f"{target}: cannot be read as {form}")  # pragma: no cover - form_of returns only these


def _engine_side(target: str, connect: Callable[[], Engine], *, saved: bool) -> compare.Side:
    form = "image"
    engine = connect()
    if saved:
        image_id = str(engine.inspect_image(target)["Id"])
        return _scanned(image_tar.scan_image_tar(engine.save(image_id)), target, form)
    doc, info = _image_manifest(engine, target)
    layers = [str(x) for x in (info.get("RootFS") or {}).get("Layers") or []]
    sizes = compare.layer_sizes_from_history(engine.history(str(info["Id"])), len(layers))
    return compare.Side(target, form, doc, sizes, "engine" if sizes is not None else "")


def diff(
    old: str, new: str, connect: Callable[[], Engine], *, include_volatile: bool = False, platform: str | None = None
) -> compare.Comparison:
    """What changed from OLD to NEW, each an image reference (the engine's or a registry's), a ``docker save`` tar
    or a manifest file.

    An image compared with a tar is read through ``docker save``, so both sides' layer sizes are tar bytes.
    """
    engines: list[Engine] = []

    def reach() -> Engine:  # one connection for both sides, made only when a side is an image
        if not engines:
            engines.append(connect())
        return engines[0]

    forms = (form_of(old), form_of(new))
    saved = "tar" in forms
    a = read_side(old, forms[0], reach, saved=saved, platform=platform)
    b = read_side(new, forms[1], reach, saved=saved, platform=platform)
    return compare.compare(a, b, include_volatile=include_volatile)
