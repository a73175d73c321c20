"""``docker save`` tars read in one streaming pass: the image config, its layers and their files, the manifest inside.

``scan_image_tar`` accepts the legacy and the OCI layout, optionally gzipped, checks every blob's sha256 against
its name or diff id (a tar that was altered is an IntegrityError), and keeps only what the checks need (file
lists, the embedded manifest file). ``read_manifest_from_image_tar`` is what ``slimbuild inspect image.tar`` uses.
A member escaping the tar's root, or a device node or FIFO in the outer tar, is ``PolicyViolation`` (exit 10, as
``context.check_archive``).
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

from slimbuild.errors import IntegrityError, PolicyViolation, UsageError
from slimbuild.image.normalize import ChunkReader
from slimbuild.record.manifest import (
    CORRUPT_HINT,
    LABEL_MANIFEST,
    LABEL_MANIFEST_SHA,
    MANIFEST_PATH_IN_IMAGE,
    MAX_MANIFEST_BYTES,
    ImageInfo,
    check_sha,
    expected_sha,
    image_labels,
    load_json,
    manifest_from_image_config,
    manifest_sha256,
    parse_manifest,
    with_image,
)

# JSON members of a docker save tar (its manifest.json, image configs) kept in memory, in total.
_MAX_TAR_JSON_TOTAL = 64 * 1024 * 1024
# Files a caller asks to read (``wanted``: dpkg status, dist-info METADATA), per file and in total.
MAX_WANTED_FILE = 32 * 1024 * 1024
_MAX_WANTED_TOTAL = 256 * 1024 * 1024
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LayerFile:
    """One member of a layer tar: normalised path, size, permission bits (with setuid/setgid), owner, type."""

    path: str
    size: int
    mode: int
    uid: int
    gid: int = 0
    type: str = "file"
    linkname: str = ""


@dataclass(frozen=True)
class LayerScan:
    """One layer of a saved image: its member name, sha256 of its bytes, diff id and files in tar order."""

    name: str
    digest: str
    diff_id: str
    size: int
    files: tuple[LayerFile, ...]
    compressed: bool = False
    contents: tuple[tuple[str, bytes], ...] = ()  # the ``wanted`` regular files of this layer, with their bytes


@dataclass(frozen=True)
class ImageScan:
    """A ``docker save`` tar read once: the image config, its layers and the manifest file found in them."""

    image_id: str
    config: dict[str, Any]
    repo_tags: tuple[str, ...]
    layers: tuple[LayerScan, ...]
    manifest_file: bytes | None = None

    def final_files(self) -> dict[str, LayerFile]:
        """The image's file system after stacking the layers (whiteouts applied), by path."""
        result: dict[str, LayerFile] = {}
        for layer in self.layers:
            for f in layer.files:
                if posixpath.basename(f.path) == ".wh..wh..opq":
                    _drop_below(result, posixpath.dirname(f.path), keep_root=True)
            for f in layer.files:
                parent, base = posixpath.split(f.path)
                if base == ".wh..wh..opq":
                    continue
                if base.startswith(".wh."):
                    _drop_below(result, posixpath.join(parent, base[4:]), keep_root=False)
                    continue
                result[f.path] = f
        return dict(sorted(result.items()))

    def final_contents(self) -> dict[str, bytes]:
        """The ``wanted`` files the stacked image holds, by path: each from the topmost layer that wrote it."""
        present = self.final_files()
        found: dict[str, bytes] = {}
        for layer in self.layers:
            for path, data in layer.contents:
                found[path] = data
        return {path: data for path, data in sorted(found.items()) if path in present and present[path].type == "file"}


def _drop_below(files: dict[str, LayerFile], root: str, *, keep_root: bool) -> None:
    prefix = f"{root}/" if root else ""
    for path in [p for p in files if p.startswith(prefix) or (not keep_root and p == root)]:
        del files[path]


class _Hashing:
    """Reads from ``raw`` after replaying ``prefix``, hashing and counting every byte."""

    def __init__(self, raw: IO[bytes], prefix: bytes) -> None:
        self._raw = raw
        self._prefix = prefix
        self.sha = hashlib.sha256(prefix)
        self.count = len(prefix)

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            data = self._prefix if size < 0 else self._prefix[:size]
            self._prefix = self._prefix[len(data) :]
            return data
        data = self._raw.read(size)
        self.sha.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


_TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


def _safe_name(name: str, where: str) -> str:
    """The member name without ``./`` and trailing ``/``; PolicyViolation for ``..`` (and absolute outer names)."""
    if "\x00" in name or any(part == ".." for part in name.split("/")):
        raise PolicyViolation(f"{where}: member {name!r} escapes the archive root", "refuse this image tar")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    return "/".join(parts)


def _check_outer(member: tarfile.TarInfo) -> str:
    if member.name.startswith("/"):
        raise PolicyViolation(f"image tar: member {member.name!r} has an absolute path", "refuse this image tar")
    name = _safe_name(member.name, "image tar")
    if member.isdev() or member.isfifo():
        raise PolicyViolation(f"image tar: member {member.name!r} is a device or FIFO", "refuse this image tar")
    if member.issym() or member.islnk():
        base = posixpath.dirname(name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            raise PolicyViolation(
                f"image tar: member {member.name!r} links outside the archive: {member.linkname!r}", "refuse this image tar"
            )
    elif not (member.isfile() or member.isdir()):
        raise PolicyViolation(f"image tar: member {member.name!r} has an unsupported type", "refuse this image tar")
    return name


def _looks_like_tar(head: bytes) -> tuple[bool, bool]:
    """(is an archive, is compressed) from a member's first 512 bytes."""
    if head[:2] == b"\x1f\x8b":
        return True, True
    if len(head) == 512 and (head[257:262] == b"ustar" or head == bytes(512)):
        return True, False
    return False, False


Wanted = Callable[[str], bool]


class _Budget:
    """What is left of the bytes ``wanted`` files may take in memory."""

    def __init__(self) -> None:
        self.left = _MAX_WANTED_TOTAL

    def take(self, size: int, path: str) -> None:
        self.left -= size
        if self.left < 0:
            raise IntegrityError(f"image tar: too many package records to read (at {path})", "refuse this image tar")


def _scan_layer(
    reader: _Hashing, name: str, wanted: Wanted | None = None, budget: _Budget | None = None
) -> tuple[tuple[LayerFile, ...], bytes | None, tuple[tuple[str, bytes], ...]]:
    """The files of one layer tar (streamed), the slimbuild manifest file if the layer holds one, and the
    contents of the regular files ``wanted`` accepts (each at most ``MAX_WANTED_FILE`` bytes)."""
    want = MANIFEST_PATH_IN_IMAGE.lstrip("/")
    files: list[LayerFile] = []
    found: bytes | None = None
    kept: list[tuple[str, bytes]] = []
    try:
        with tarfile.open(fileobj=reader, mode="r|*") as layer:  # type: ignore[call-overload]
            for member in layer:
                path = _safe_name(member.name, f"image tar layer {name}")
                if not path:
                    continue
                kind = _TYPES.get(member.type, "other")
                files.append(LayerFile(path, member.size, member.mode, member.uid, member.gid, kind, member.linkname))
                if path == want and member.isfile() and member.size <= MAX_MANIFEST_BYTES:
                    fh = layer.extractfile(member)
                    found = fh.read() if fh is not None else None
                if wanted is not None and member.isfile() and member.size <= MAX_WANTED_FILE and wanted(path):
                    (budget or _Budget()).take(member.size, path)
                    fh = layer.extractfile(member)
                    kept.append((path, fh.read() if fh is not None else b""))
        reader.drain()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise IntegrityError(f"image tar: layer {name} is corrupt: {exc}", "save the image again") from None
    return tuple(files), found, tuple(kept)


@dataclass
class _Blob:
    digest: str
    size: int
    json: bytes | None = None
    files: tuple[LayerFile, ...] | None = None
    manifest_file: bytes | None = None
    compressed: bool = False
    contents: tuple[tuple[str, bytes], ...] = ()


def _read_outer(tar: tarfile.TarFile, wanted: Wanted | None = None) -> tuple[dict[str, _Blob], dict[str, str]]:
    budget = _Budget()
    blobs: dict[str, _Blob] = {}
    links: dict[str, str] = {}
    json_total = 0
    seen: set[str] = set()
    for member in tar:
        name = _check_outer(member)
        if name in seen:
            raise IntegrityError(f"image tar: member {name!r} appears twice", "refuse this image tar")
        seen.add(name)
        if member.issym():
            links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
            continue
        if member.islnk():
            links[name] = _safe_name(member.linkname, "image tar")
            continue
        if not member.isfile():
            continue
        fh = tar.extractfile(member)
        if fh is None:  # pragma: no cover - regular files always have content
            continue
        head = fh.read(512)
        reader = _Hashing(fh, head)
        is_tar, compressed = _looks_like_tar(head)
        blob = _Blob("", 0, compressed=compressed)
        if is_tar:
            blob.files, blob.manifest_file, blob.contents = _scan_layer(reader, name, wanted, budget)
        elif head.lstrip()[:1] in (b"{", b"[") and member.size <= MAX_MANIFEST_BYTES:
            json_total += member.size
            if json_total > _MAX_TAR_JSON_TOTAL:
                raise IntegrityError("image tar: too much JSON metadata", "refuse this image tar")
            blob.json = head + fh.read()
            reader = _Hashing(io.BytesIO(), blob.json)
        else:
            reader.drain()
        blob.digest = "sha256:" + reader.sha.hexdigest()
        blob.size = reader.count
        blobs[name] = blob
    return blobs, links


def _resolve(name: str, blobs: dict[str, _Blob], links: dict[str, str], what: str) -> _Blob:
    current = _safe_name(name, "image tar manifest.json")
    for _ in range(40):
        if current in blobs:
            return blobs[current]
        if current not in links:
            break
        current = links[current]
    raise IntegrityError(f"image tar: {what} {name!r} is missing", "save the image again")


def _named_digest(name: str) -> str | None:
    match = re.search(r"([0-9a-f]{64})(?:\.json)?$", name)
    return f"sha256:{match[1]}" if match else None


def _index_entry(blobs: dict[str, _Blob]) -> tuple[dict[str, Any], str, list[str]]:
    """The one image of the tar's manifest.json: its entry, config name and layer names."""
    index = blobs.get("manifest.json")
    if index is None or index.json is None:
        raise IntegrityError("image tar: no manifest.json (not a docker save tar?)", "save the image with docker save")
    entries = load_json(index.json, "image tar", "manifest.json")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise IntegrityError("image tar: manifest.json is not a list of images", "save the image again")
    if len(entries) != 1:
        raise UsageError(f"image tar holds {len(entries)} images", "save one image per tar")
    entry = entries[0]
    config_name, layer_names = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layer_names, list) or not all(isinstance(x, str) for x in layer_names):
        raise IntegrityError("image tar: manifest.json lacks Config or Layers", "save the image again")
    return entry, config_name, layer_names


def _config(config_name: str, blobs: dict[str, _Blob], links: dict[str, str]) -> tuple[_Blob, dict[str, Any]]:
    """The image config blob and its JSON, its digest checked against its name."""
    config_blob = _resolve(config_name, blobs, links, "image config")
    if config_blob.json is None:
        raise IntegrityError(f"image tar: image config {config_name!r} is not JSON", "save the image again")
    named = _named_digest(config_name)
    if named is not None and named != config_blob.digest:
        raise IntegrityError(f"image tar: image config {config_name!r} has sha256 {config_blob.digest}", "save the image again")
    config = load_json(config_blob.json, "image tar", "image config")
    if not isinstance(config, dict):
        raise IntegrityError("image tar: image config is not an object", "save the image again")
    return config_blob, config


def scan_image_tar(stream: Iterable[bytes] | BinaryIO, *, wanted: Wanted | None = None) -> ImageScan:
    """Read a ``docker save`` tar (legacy or OCI layout, optionally gzipped) in one streaming pass.

    ``wanted`` names the layer files (normalised paths) whose bytes to keep: ``ImageScan.final_contents``.
    """
    fileobj: IO[bytes]
    if isinstance(stream, (bytes, bytearray)):
        fileobj = io.BytesIO(stream)
    elif hasattr(stream, "read"):
        fileobj = stream  # type: ignore[assignment]
    else:
        fileobj = io.BufferedReader(ChunkReader(stream), _CHUNK)
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
            blobs, links = _read_outer(tar, wanted)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise IntegrityError(f"image tar is corrupt: {exc}", "save the image again (docker save IMAGE -o image.tar)") from None
    entry, config_name, layer_names = _index_entry(blobs)
    config_blob, config = _config(config_name, blobs, links)
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layer_names):
        raise IntegrityError("image tar: image config rootfs.diff_ids does not match the layers", "save the image again")
    layers = []
    found: bytes | None = None
    for layer_name, diff_id in zip(layer_names, diff_ids):
        blob = _resolve(layer_name, blobs, links, "layer")
        if blob.files is None:
            raise IntegrityError(f"image tar: layer {layer_name!r} is not a tar", "save the image again")
        named = _named_digest(layer_name) if layer_name.startswith("blobs/") else None
        expected = diff_id if not blob.compressed else named
        if (expected is not None and blob.digest != expected) or (named is not None and blob.digest != named):
            raise IntegrityError(
                f"image tar: layer {layer_name!r} has sha256 {blob.digest}, expected {expected or named}",
                "the image tar was altered; save the image again",
            )
        layers.append(
            LayerScan(layer_name, blob.digest, str(diff_id), blob.size, blob.files, blob.compressed, blob.contents)
        )
        if blob.manifest_file is not None:
            found = blob.manifest_file
    tags = entry.get("RepoTags") or []
    return ImageScan(
        image_id=config_blob.digest,
        config=config,
        repo_tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        layers=tuple(layers),
        manifest_file=found,
    )


def image_info_from_scan(scan: ImageScan) -> ImageInfo:
    """ImageInfo from a scanned image tar (layer sizes are the saved layer tars' sizes)."""
    sizes = tuple(layer.size for layer in scan.layers)
    return ImageInfo(scan.image_id, tuple(layer.diff_id for layer in scan.layers), sum(sizes), sizes)


def manifest_from_scan(scan: ImageScan, *, source: str = "image tar") -> dict[str, Any]:
    """The build-time manifest of a scanned image: from its label, else from its manifest file; sha256 checked."""
    labels = image_labels(scan.config)
    file_manifest = None
    if scan.manifest_file is not None:
        file_manifest = parse_manifest(scan.manifest_file, f"{source}:{MANIFEST_PATH_IN_IMAGE}")
    if LABEL_MANIFEST not in labels and file_manifest is not None:
        expected = expected_sha(labels, source)
        if expected is None:
            raise IntegrityError(f"{source}: {MANIFEST_PATH_IN_IMAGE} has no {LABEL_MANIFEST_SHA} label", CORRUPT_HINT)
        check_sha(hashlib.sha256(scan.manifest_file or b"").hexdigest(), expected, source)
        return file_manifest
    manifest = manifest_from_image_config(scan.config, source=source)
    if scan.manifest_file is not None:
        check_sha(hashlib.sha256(scan.manifest_file).hexdigest(), manifest_sha256(manifest), source)
    return manifest


def read_manifest_from_image_tar(stream: Iterable[bytes] | BinaryIO, *, source: str = "image tar") -> dict[str, Any]:
    """The manifest of a ``docker save`` tar, verified, with ``image`` filled from the tar."""
    scan = scan_image_tar(stream)
    return with_image(manifest_from_scan(scan, source=source), image_info_from_scan(scan))
