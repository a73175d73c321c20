"""Registry documents read for ``inspect`` and ``diff`` of a remote image: manifests, indexes, digests, limits (pure).

A registry answers a reference with an image manifest (Docker schema 2 or OCI) or an index (a Docker manifest list
or an OCI index) naming one manifest per platform. Every document is checked the way the distribution spec
intends, before anything in it is believed:

* read bounded: a manifest at most ``MAX_MANIFEST_BYTES`` (the limit distribution's registry itself enforces),
  a config blob at most ``MAX_CONFIG_BYTES``; larger is ``IntegrityError`` (exit 5, H2), refused from the declared
  size before any byte is fetched where a descriptor gives one;
* content addressed: a manifest fetched by digest, and the config blob, must hash to the digest that named them,
  and the blob must have the size its descriptor declares (exit 5, H1);
* an index with several platforms is resolved to one: the ``--platform`` asked for, else the host's
  (``linux/amd64`` on x86_64), else an error listing them (exit 2); attestation entries (``unknown/unknown``) are
  not platforms.
"""

from __future__ import annotations

import hashlib
import json
import platform as _platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from slimbuild.errors import IntegrityError, UsageError

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 16 * 1024 * 1024

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_MANIFESTS = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEXES = (DOCKER_LIST, OCI_INDEX)
ACCEPT = ", ".join((*IMAGE_MANIFESTS, *INDEXES))
IMAGE_CONFIGS = ("application/vnd.docker.container.image.v1+json", "application/vnd.oci.image.config.v1+json")

_HASHES = {"sha256": 64, "sha384": 96, "sha512": 128}
_MACHINES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm/v7",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}
CORRUPT_HINT = "the registry served a damaged or altered document; do not trust this image, push it again"


@dataclass(frozen=True)
class Descriptor:
    """What a manifest says of one blob or child manifest: its media type, digest and size; a platform for index entries."""

    media_type: str
    digest: str
    size: int
    platform: str = ""


@dataclass(frozen=True)
class ImageManifest:
    """An image manifest: its config blob and its layers (never fetched: their sizes are what a diff compares)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    """A manifest list or OCI index: one manifest per platform."""

    media_type: str
    manifests: tuple[Descriptor, ...]


def read_bounded(chunks: Iterable[bytes], limit: int, what: str) -> bytes:
    """The bytes of CHUNKS, or IntegrityError as soon as they pass LIMIT (nothing more is read)."""
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > limit:
            raise IntegrityError(f"{what} is larger than {limit} bytes: refused", CORRUPT_HINT)
    return bytes(out)


def check_declared_size(size: int | None, limit: int, what: str) -> None:
    """IntegrityError when a declared size (Content-Length, a descriptor's ``size``) passes LIMIT, before any read."""
    if size is not None and size > limit:
        raise IntegrityError(f"{what} declares {size} bytes, more than the limit of {limit}: refused", CORRUPT_HINT)


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of DATA."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(data: bytes, digest: str, what: str) -> None:
    """IntegrityError (H1) unless DATA hashes to DIGEST (``sha256:<hex>``, sha384 or sha512)."""
    algorithm, _, expected = digest.partition(":")
    if algorithm not in _HASHES or len(expected) != _HASHES[algorithm]:
        raise IntegrityError(f"{what}: digest {digest!r} is not sha256/sha384/sha512:<hex>", CORRUPT_HINT)
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != expected:
        raise IntegrityError(f"{what}: content {algorithm}:{actual} does not match its digest {digest}", CORRUPT_HINT)


def _corrupt(what: str, why: str) -> IntegrityError:
    return IntegrityError(f"{what}: {why}", CORRUPT_HINT)


def _platform_of(value: Any) -> str:
    if not isinstance(value, Mapping):
        return ""
    parts = [str(value.get("os") or ""), str(value.get("architecture") or "")]
    if value.get("variant"):
        parts.append(str(value["variant"]))
    return "/".join(parts)


def _descriptor(value: Any, what: str) -> Descriptor:
    if not isinstance(value, Mapping):
        raise _corrupt(what, "a descriptor is not an object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool):
        raise _corrupt(what, "a descriptor lacks mediaType, digest or size")
    if size < 0:
        raise _corrupt(what, f"descriptor {digest} has a negative size")
    return Descriptor(media_type, digest, size, _platform_of(value.get("platform")))


def _descriptors(value: Any, what: str, key: str) -> tuple[Descriptor, ...]:
    if not isinstance(value, list):
        raise _corrupt(what, f"{key!r} is not a list")
    return tuple(_descriptor(item, what) for item in value)


def parse_document(data: bytes, content_type: str, what: str) -> ImageManifest | Index:
    """An image manifest or an index from a registry's bytes; IntegrityError when malformed, UsageError when not an image."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(what, f"the manifest is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _corrupt(what, "the manifest is not a JSON object")
    media_type = doc.get("mediaType") or content_type.split(";")[0].strip()
    if media_type in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise UsageError(f"{what}: a schema 1 manifest has no config blob to read", "push the image again with a current docker")
    if media_type in INDEXES or (not doc.get("mediaType") and "manifests" in doc and "config" not in doc):
        return Index(media_type or OCI_INDEX, _descriptors(doc.get("manifests"), what, "manifests"))
    if media_type in IMAGE_MANIFESTS or (not doc.get("mediaType") and "config" in doc):
        config = _descriptor(doc.get("config"), what)
        if config.media_type not in IMAGE_CONFIGS:
            raise UsageError(f"{what}: an artifact ({config.media_type}), not a container image", "give an image reference")
        return ImageManifest(media_type or OCI_MANIFEST, config, _descriptors(doc.get("layers", []), what, "layers"))
    raise UsageError(
        f"{what}: unknown manifest media type {str(media_type)[:100]!r}", f"an image manifest or index is one of: {ACCEPT}"
    )


def host_platform(machine: str | None = None) -> str:
    """``linux/<arch>`` of this machine in the registry's words (x86_64 is ``linux/amd64``)."""
    machine = machine if machine is not None else _platform.machine()
    return "linux/" + _MACHINES.get(machine.lower(), machine.lower())


def platform_matches(entry: str, wanted: str) -> bool:
    """``linux/arm64`` matches ``linux/arm64/v8``; an explicit variant must be equal."""
    return entry == wanted or (wanted.count("/") == 1 and entry.startswith(wanted + "/"))


def check_platform(value: str) -> str:
    """A ``--platform`` value: os/arch[/variant], lowercase; UsageError otherwise."""
    parts = value.split("/")
    if not 2 <= len(parts) <= 3 or not all(p and p.isascii() and p.replace("_", "").isalnum() for p in parts):
        raise UsageError(f"--platform {value!r} is not os/arch[/variant]", "e.g. --platform linux/amd64 or linux/arm64")
    return value.lower()


def select_platform(index: Index, wanted: str | None, host: str, what: str) -> Descriptor:
    """The one image manifest of INDEX to read: WANTED's (``--platform``), else the only one, else the HOST's."""
    images = [d for d in index.manifests if d.media_type in IMAGE_MANIFESTS and not d.platform.startswith("unknown/")]
    available = ", ".join(sorted({d.platform or "?" for d in images})) or "none"
    if wanted:
        found = [d for d in images if platform_matches(d.platform, wanted)]
        if not found:
            raise UsageError(f"{what}: no image for platform {wanted} (it has: {available})", "give one of those to --platform")
        return found[0]
    if len(images) == 1:
        return images[0]
    if not images:
        raise UsageError(f"{what}: the index names no image manifest", "give a reference to an image")
    found = [d for d in images if platform_matches(d.platform, host)]
    if not found:
        raise UsageError(
            f"{what}: several platforms ({available}), none of them this host's {host}", "choose one with --platform"
        )
    return found[0]


def config_of(data: bytes, what: str) -> dict[str, Any]:
    """The image config blob as a JSON object; IntegrityError when it is not one."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(what, f"the image config is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _corrupt(what, "the image config is not a JSON object")
    return doc


def diff_ids(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The layers' diff ids an image config lists (``rootfs.diff_ids``), the same values the engine calls RootFS.Layers."""
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, Mapping) else None
    return tuple(str(x) for x in ids) if isinstance(ids, list) else ()


def platform_of_config(config: Mapping[str, Any]) -> str:
    """``os/architecture[/variant]`` an image config declares."""
    return _platform_of(config)
