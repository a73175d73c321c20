"""Reading records: ``inspect`` an image, a saved tar or a manifest file; ``diff`` two manifests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbuild.errors import SlimbuildError
from slimbuild.image.reference import check_image
from slimbuild.record import image_tar, manifest

if TYPE_CHECKING:  # inspecting a file never loads the Docker SDK
    from slimbuild.image.engine import Engine


def inspect(target: str, connect: Callable[[], Engine]) -> dict[str, Any]:
    """The manifest of TARGET: a manifest file (``.json``), a ``docker save`` tar, or an image the engine has."""
    path = Path(target)
    if path.is_file() and path.suffix == ".json":
        return manifest.read_manifest_file(path)
    if path.is_file():
        with path.open("rb") as fh:
            return image_tar.read_manifest_from_image_tar(fh, source=target)
    check_image(target, "image")  # exit 2 before the engine is asked
    engine = connect()
    info = engine.inspect_image(target)  # NoSuchImage: exit 2
    doc = manifest.manifest_from_image_config(info, source=target)
    if doc.get("image") is None:
        base = doc["base_image"]["digest_or_id"]
        try:
            base_info = engine.inspect_image(base)
        except SlimbuildError:
            base_info = None
        doc = manifest.with_image(doc, manifest.image_info_from_inspect(info, base_info))
    return doc


def diff(old: Path, new: Path, *, include_volatile: bool = False) -> tuple[manifest.Change, ...]:
    """What changed between two manifest files (volatile fields only with ``include_volatile``)."""
    return manifest.diff_manifests(
        manifest.read_manifest_file(old), manifest.read_manifest_file(new), include_volatile=include_volatile
    )
