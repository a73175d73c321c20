"""Reading records: ``inspect`` an image, a saved tar or a manifest file; ``diff`` two of them, in any mix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbuild.errors import SlimbuildError, UsageError
from slimbuild.image.reference import check_image
from slimbuild.record import compare, image_tar, manifest

if TYPE_CHECKING:  # inspecting a file never loads the Docker SDK
    from slimbuild.image.engine import Engine

_FILE_SUFFIXES = (".json", ".tar", ".tar.gz", ".tgz")


def form_of(target: str) -> str:
    """``manifest`` (a ``.json`` file), ``tar`` (another file) or ``image`` (a reference for the engine).

    A name ending like a file (``.json``, ``.tar``, ...) that does not exist is UsageError, not an image reference.
    """
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


def inspect(target: str, connect: Callable[[], Engine]) -> dict[str, Any]:
    """The manifest of TARGET: a manifest file (``.json``), a ``docker save`` tar, or an image the engine has."""
    form = form_of(target)
    if form == "manifest":
        return manifest.read_manifest_file(Path(target))
    if form == "tar":
        with Path(target).open("rb") as fh:
            return image_tar.read_manifest_from_image_tar(fh, source=target)
    return _image_manifest(connect(), target)[0]


def _scanned(scan: image_tar.ImageScan, target: str, form: str) -> compare.Side:
    doc = manifest.with_image(image_tar.manifest_from_scan(scan, source=target), image_tar.image_info_from_scan(scan))
    return compare.Side(target, form, doc, tuple(layer.size for layer in scan.layers), "tar")


def read_side(target: str, form: str, connect: Callable[[], Engine], *, saved: bool = False) -> compare.Side:
    """One side of a diff, read as ``inspect`` reads it; an image with its layer sizes from the engine's history,
    or (``saved``) from its ``docker save`` stream, so that they measure what a tar's do."""
    if form == "manifest":
        return compare.Side(target, form, manifest.read_manifest_file(Path(target)))
    if form == "tar":
        with Path(target).open("rb") as fh:
            return _scanned(image_tar.scan_image_tar(fh), target, form)
    engine = connect()
    if saved:
        image_id = str(engine.inspect_image(target)["Id"])
        return _scanned(image_tar.scan_image_tar(engine.save(image_id)), target, form)
    doc, info = _image_manifest(engine, target)
    layers = [str(x) for x in (info.get("RootFS") or {}).get("Layers") or []]
    sizes = compare.layer_sizes_from_history(engine.history(str(info["Id"])), len(layers))
    return compare.Side(target, form, doc, sizes, "engine" if sizes is not None else "")


def diff(old: str, new: str, connect: Callable[[], Engine], *, include_volatile: bool = False) -> compare.Comparison:
    """What changed from OLD to NEW, each an image reference, a ``docker save`` tar or a manifest file.

    An image compared with a tar is read through ``docker save``, so both sides' layer sizes are tar bytes.
    """
    engines: list[Engine] = []

    def reach() -> Engine:  # one connection for both sides, made only when a side is an image
        if not engines:
            engines.append(connect())
        return engines[0]

    forms = (form_of(old), form_of(new))
    saved = "tar" in forms
    a = read_side(old, forms[0], reach, saved=saved)
    b = read_side(new, forms[1], reach, saved=saved)
    return compare.compare(a, b, include_volatile=include_volatile)
