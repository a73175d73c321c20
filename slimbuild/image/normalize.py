"""Normalise a built image's config so that identical inputs give the identical image id (pure).

The classic builder's layers are reproducible (the context and the staged venv carry clamped mtimes; see
templates/), but its config is not: ``created`` and every history entry carry wall-clock times, and
``container``, ``container_config`` (with the build container's hostname), ``config.Image`` (the
builder's last intermediate image) and ``docker_version`` name the build run and the engine. The image
id is the sha256 of the config bytes, so two builds of the same inputs get two ids.

This module rebuilds the config from what the engine reports (inspect and history) and from the
config of the bottom image of the chain (the pulled or imported base, read once from ``docker save`` and
cached by its id): the base's own history is kept as it is, every entry slimbuild's stages added takes
``SOURCE_DATE_EPOCH`` as its time, and the run- and engine-specific fields are dropped. The result is
canonical JSON (sorted keys, no spaces). :func:`load_tar` wraps it in a ``docker load`` tar that holds
only the config and the manifest: the engine already has every layer (it looks each one up by its chain
id before it would read a layer file), so loading takes no layer bytes and the layers stay byte for byte
what the build made.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, BinaryIO

from slimbuild.errors import BuildFailed

# Instructions of the classic builder that commit a filesystem layer; every other one is metadata only.
_LAYER_INSTRUCTIONS = frozenset({"COPY", "ADD", "RUN"})
_NOP = "#(nop)"
# Top-level config keys that describe the image; everything else (container, container_config,
# docker_version, and whatever a newer engine adds about the build run) is dropped.
_KEPT_TOP = ("architecture", "os", "variant", "os.version", "os.features", "author")


def rfc3339(epoch: int) -> str:
    """SOURCE_DATE_EPOCH as the config's time format (UTC, whole seconds)."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def makes_layer(created_by: str) -> bool:
    """Whether a classic-builder history entry committed a layer: RUN (no ``#(nop)``), COPY and ADD."""
    text = created_by.strip()
    if _NOP not in text:
        return True  # RUN: "/bin/sh -c <command>" (or the SHELL's argv), and never a nop
    words = text.split(_NOP, 1)[1].split()
    return bool(words) and words[0].upper() in _LAYER_INSTRUCTIONS


def _history_above(history: Sequence[Mapping[str, Any]], base_count: int, epoch: str) -> list[dict[str, Any]]:
    """The entries above the base's (history records are newest first), as config history entries."""
    oldest_first = list(reversed(history))
    added: list[dict[str, Any]] = []
    for item in oldest_first[base_count:]:
        created_by = str(item.get("CreatedBy") or "")
        entry: dict[str, Any] = {"created": epoch, "created_by": created_by}
        if item.get("Comment"):
            entry["comment"] = str(item["Comment"])
        if not makes_layer(created_by):
            entry["empty_layer"] = True
        added.append(entry)
    return added


def normalized_config(
    inspect: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    base_config: Mapping[str, Any],
    epoch: int,
) -> bytes:
    """The image's config as canonical JSON: the base's history as it is, slimbuild's entries at ``epoch``.

    ``inspect`` and ``history`` are the engine's documents for the built image; ``base_config`` is the
    config of the bottom image of its chain (its history must be a prefix of the built image's).
    """
    when = rfc3339(epoch)
    base_history = [dict(entry) for entry in base_config.get("history") or []]
    if len(history) < len(base_history):
        raise BuildFailed(
            f"cannot normalise the image config: its history ({len(history)} entries) is shorter than its base's "
            f"({len(base_history)})",
            "rebuild; if it persists, report it with the output of docker history",
        )
    entries = base_history + _history_above(history, len(base_history), when)
    diff_ids = [str(d) for d in (inspect.get("RootFS") or {}).get("Layers") or []]
    with_layers = sum(1 for entry in entries if not entry.get("empty_layer"))
    if with_layers != len(diff_ids):
        raise BuildFailed(
            f"cannot normalise the image config: {with_layers} history entries made layers, the image has {len(diff_ids)}",
            "a template instruction commits a layer slimbuild does not expect; use COPY and RUN only",
        )
    config: dict[str, Any] = {key: base_config[key] for key in _KEPT_TOP if base_config.get(key)}
    config["architecture"] = str(inspect.get("Architecture") or config.get("architecture", ""))
    config["os"] = str(inspect.get("Os") or config.get("os", ""))
    if inspect.get("Variant"):
        config["variant"] = str(inspect["Variant"])
    config["config"] = dict(inspect.get("Config") or {})
    if "Image" in config["config"]:
        config["config"]["Image"] = ""  # the id of the builder's last intermediate image: a fact of the build run
    config["created"] = when
    config["history"] = entries
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def config_digest(config: bytes) -> str:
    """The image id a config gets: ``sha256:<hex>`` of its bytes."""
    return "sha256:" + hashlib.sha256(config).hexdigest()


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o644, "", ""
    return info, io.BytesIO(data)


def load_tar(config: bytes, diff_ids: Sequence[str]) -> bytes:
    """A ``docker load`` tar of the config and its manifest only; the layers must already be in the engine.

    The manifest names one layer path per diff id (``<hex>/layer.tar``, absent from the tar): the engine
    reads a layer file only for a chain id it does not have.
    """
    hex_id = config_digest(config).split(":", 1)[1]
    layers = [f"{str(d).split(':', 1)[-1]}/layer.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": f"{hex_id}.json", "RepoTags": None, "Layers": layers}], separators=(",", ":"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in ((f"{hex_id}.json", config), ("manifest.json", manifest.encode("utf-8"))):
            tar.addfile(*_member(name, data))
    return buf.getvalue()


def full_load_tar(saved: Iterable[bytes], config: bytes, out: BinaryIO) -> None:
    """Write to OUT a ``docker load`` tar of a saved image (``Engine.save``) with its config replaced by CONFIG.

    For engines that refuse the config-only tar of ``load_tar`` (podman's compat API loads only complete
    archives): the layers travel again, unchanged, in the saved order; the old config, tags and manifest do not.
    """
    hex_id = config_digest(config).split(":", 1)[1]
    layers: list[str] = []
    reader = ChunkReader(saved)
    with tarfile.open(fileobj=reader, mode="r|") as src, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            name = member.name.lstrip("./")
            if name == "manifest.json":
                handle = src.extractfile(member)
                doc = json.loads(handle.read() if handle is not None else b"[]")
                layers = [str(layer) for layer in (doc[0].get("Layers") or [])] if doc and isinstance(doc[0], dict) else []
                continue
            if name == "repositories" or (name.endswith(".json") and "/" not in name):
                continue  # the old config and tags
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        if not layers:
            raise BuildFailed("cannot normalise the image: its docker save stream has no manifest layers", "check the engine")
        manifest = json.dumps([{"Config": f"{hex_id}.json", "RepoTags": None, "Layers": layers}], separators=(",", ":"))
        for name, data in ((f"{hex_id}.json", config), ("manifest.json", manifest.encode("utf-8"))):
            dst.addfile(*_member(name, data))


def config_from_save(chunks: Iterable[bytes]) -> dict[str, Any]:
    """The config document of the one image in a ``docker save`` stream (layers are read past, not kept)."""
    blobs: dict[str, bytes] = {}
    with tarfile.open(fileobj=ChunkReader(chunks), mode="r|") as tar:
        for member in tar:
            name = member.name.lstrip("./")
            if member.isfile() and (name == "manifest.json" or (name.endswith(".json") and "/" not in name)):
                handle = tar.extractfile(member)
                if handle is not None and member.size <= 16 * 1024 * 1024:
                    blobs[name] = handle.read()
    try:
        manifest = json.loads(blobs["manifest.json"])
        config = json.loads(blobs[str(manifest[0]["Config"]).lstrip("./")])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise BuildFailed(f"cannot read the base image's config from docker save: {exc}", "check the engine") from None
    if not isinstance(config, dict):
        raise BuildFailed("cannot read the base image's config from docker save: not a JSON object", "check the engine")
    return config


class ChunkReader(io.RawIOBase):
    """A readable raw stream over an iterable of byte chunks (``Engine.save``), read in order by tarfile."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._view = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._view:
            try:
                self._view = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        target = memoryview(buffer).cast("B")
        n = min(len(target), len(self._view))
        target[:n] = self._view[:n]
        self._view = self._view[n:]
        return n
