"""What a base image offers a wheel at run time, read from its ``docker save`` stream in one pass (pure).

The library set is every file or symlink name in the directories the dynamic loader searches: ``lib/``,
``usr/lib/``, ``lib64/``, ``usr/lib64/``, their multiarch subdirectories, ``usr/local/lib/`` and each directory
an ``etc/ld.so.conf.d/*.conf`` names. Also kept: ``etc/os-release`` (which Debian release the base is) and
``var/lib/dpkg/status`` (which packages it has), so ``system-packages`` installs only what the base lacks.
Layers are stacked in the manifest's order, whiteouts applied; nothing is written anywhere.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from slimbuild.errors import BuildFailed
from slimbuild.image.normalize import ChunkReader

MULTIARCH = ("x86_64-linux-gnu", "aarch64-linux-gnu", "arm-linux-gnueabihf", "i386-linux-gnu")
DEFAULT_LIB_DIRS = (
    "lib", "lib64", "usr/lib", "usr/lib64", "usr/local/lib",
    *(f"{root}/{arch}" for arch in MULTIARCH for root in ("lib", "usr/lib", "usr/local/lib")),
)  # fmt: skip
KEPT_FILES = ("etc/os-release", "usr/lib/os-release", "var/lib/dpkg/status")
_CONF_DIR = "etc/ld.so.conf.d/"
_MAX_KEPT = 64 * 1024 * 1024  # a dpkg status file is a few MB; anything far larger is not one

__all__ = ["DEFAULT_LIB_DIRS", "BaseFiles", "base_files_from_save"]


@dataclass(frozen=True)
class BaseFiles:
    """The base's library names, its os-release text and its dpkg status text (``""`` when absent)."""

    libraries: tuple[str, ...]
    os_release: str
    dpkg_status: str

    def to_json(self) -> dict[str, object]:
        return {"libraries": list(self.libraries), "os_release": self.os_release, "dpkg_status": self.dpkg_status}

    @classmethod
    def from_json(cls, value: Mapping[str, object]) -> BaseFiles:
        libs = value["libraries"]
        if not isinstance(libs, list):
            raise ValueError("not a base file record")
        return cls(tuple(str(x) for x in libs), str(value["os_release"]), str(value["dpkg_status"]))


@dataclass
class _Layer:
    paths: dict[str, str]  # path -> "file" | "link" | "dir" | "whiteout" | "opaque"
    kept: dict[str, bytes]


def _norm(name: str) -> str:
    return posixpath.normpath(name.lstrip("./")).lstrip("/") if name.strip("./") else ""


def _read_layer(fileobj: object) -> _Layer:
    layer = _Layer({}, {})
    wanted = {*KEPT_FILES}
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:  # type: ignore[call-overload]
        for member in tar:
            path = _norm(member.name)
            if not path:
                continue
            base = posixpath.basename(path)
            if base == ".wh..wh..opq":
                layer.paths[posixpath.dirname(path)] = "opaque"
                continue
            if base.startswith(".wh."):
                layer.paths[posixpath.join(posixpath.dirname(path), base[4:])] = "whiteout"
                continue
            layer.paths[path] = "dir" if member.isdir() else ("link" if member.issym() or member.islnk() else "file")
            keep = path in wanted or (path.startswith(_CONF_DIR) and path.endswith(".conf"))
            if keep and member.isfile() and member.size <= _MAX_KEPT:
                fh = tar.extractfile(member)
                if fh is not None:
                    layer.kept[path] = fh.read()
    return layer


def _stack(layers: Iterable[_Layer]) -> tuple[dict[str, str], dict[str, bytes]]:
    paths: dict[str, str] = {}
    kept: dict[str, bytes] = {}
    for layer in layers:
        for path, kind in layer.paths.items():
            if kind in ("whiteout", "opaque"):
                prefix = f"{path}/"
                for old in [p for p in paths if p.startswith(prefix) or (kind == "whiteout" and p == path)]:
                    del paths[old]
                    kept.pop(old, None)
        for path, kind in layer.paths.items():
            if kind not in ("whiteout", "opaque"):
                paths[path] = kind
        kept.update(layer.kept)
    return paths, kept


def _conf_dirs(kept: Mapping[str, bytes]) -> set[str]:
    dirs = set()
    for path, data in kept.items():
        if not path.startswith(_CONF_DIR):
            continue
        for line in data.decode("utf-8", "replace").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("/"):
                dirs.add(posixpath.normpath(line).lstrip("/"))
    return dirs


def base_files_from_save(chunks: Iterable[bytes]) -> BaseFiles:
    """The library names, os-release and dpkg status of the one image in a ``docker save`` stream."""
    layers: dict[str, _Layer] = {}
    manifest: list[dict[str, object]] = []
    try:
        with tarfile.open(fileobj=ChunkReader(chunks), mode="r|") as outer:
            for member in outer:
                name = member.name.lstrip("./")
                fh = outer.extractfile(member) if member.isfile() else None
                if fh is None:
                    continue
                if name == "manifest.json":
                    manifest = json.loads(fh.read())
                elif name.endswith("layer.tar") or name.startswith("blobs/sha256/"):
                    try:
                        layers[name] = _read_layer(fh)
                    except tarfile.ReadError:
                        continue  # an OCI blob that is a config or index, not a layer
        order = [str(layer).lstrip("./") for layer in manifest[0]["Layers"]]  # type: ignore[attr-defined]
        stacked, kept = _stack(layers[name] for name in order)
    except (tarfile.TarError, KeyError, IndexError, TypeError, ValueError, EOFError) as exc:
        raise BuildFailed(f"cannot read the base image's files from docker save: {exc}", "check the engine") from None
    lib_dirs = {*DEFAULT_LIB_DIRS, *_conf_dirs(kept)}
    libraries = sorted(
        {
            posixpath.basename(p)
            for p, kind in stacked.items()
            if kind != "dir" and ".so" in posixpath.basename(p) and posixpath.dirname(p) in lib_dirs
        }
    )
    os_release = kept.get("etc/os-release") or kept.get("usr/lib/os-release") or b""
    return BaseFiles(
        tuple(libraries),
        os_release.decode("utf-8", "replace"),
        kept.get("var/lib/dpkg/status", b"").decode("utf-8", "replace"),
    )
