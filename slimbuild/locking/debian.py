"""Debian packages for ``system-packages``: the base's release and packages, the archive's index, the resolution (pure).

``resolve_packages`` takes the requested names, the Packages index of the base's release and the base's dpkg
status, and returns every package to install: the requested ones and, transitively, each dependency
(``Pre-Depends``, ``Depends``) that the base does not already satisfy, by name or by a ``Provides``. Version
constraints are not compared: the base and the index are the same Debian release. ``deb_files`` lists the paths
a ``.deb`` installs (its ``data.tar``), so that the libraries it ships count as satisfied.
"""

from __future__ import annotations

import io
import lzma
import re
import tarfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from slimbuild.errors import ConfigError, IntegrityError, ResolutionError

PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
MAX_PACKAGES = 200  # a request that pulls in more than this is not a few runtime libraries

__all__ = [
    "DebPackage", "check_names", "deb_files", "installed_names", "os_release", "parse_packages", "release_of",
    "resolve_packages",
]  # fmt: skip


@dataclass(frozen=True)
class DebPackage:
    """One binary package of the index: what to fetch (``filename`` below the archive root) and how to check it."""

    name: str
    version: str
    architecture: str
    filename: str
    sha256: str
    size: int
    depends: tuple[tuple[str, ...], ...] = ()  # each group: alternatives, any one satisfies it
    provides: tuple[str, ...] = ()

    def record(self) -> dict[str, str]:
        """The manifest's record of an installed package."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


def check_names(names: Sequence[str]) -> tuple[str, ...]:
    """The requested package names, validated (exit 2 for one that is no Debian package name), sorted, unique."""
    for name in names:
        if not PACKAGE_NAME.fullmatch(name):
            raise ConfigError(
                f"system-packages entry {name!r} is not a Debian package name",
                hint='e.g. system-packages = ["libgomp1"] (a binary package name, no version or suite)',
            )
    return tuple(sorted(set(names)))


def os_release(text: str) -> dict[str, str]:
    """The key=value pairs of an os-release file, quotes removed."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            out[key] = value.strip().strip("\"'")
    return out


def release_of(text: str, reference: str) -> str:
    """The Debian codename of a base from its os-release text; exit 2 for a base that is not Debian."""
    info = os_release(text)
    codename = info.get("VERSION_CODENAME", "")
    if info.get("ID") != "debian" or not re.fullmatch(r"[a-z]+", codename):
        what = info.get("PRETTY_NAME") or "no /etc/os-release"
        raise ConfigError(
            f"system-packages needs a Debian base image, and {reference} is {what}",
            hint="use a Debian-based base (e.g. python:3.11-slim-bookworm), or install the packages in your own base image",
        )
    return codename


def _paragraphs(text: str) -> Iterable[dict[str, str]]:
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                continue  # a continuation line (Description): no field we read spans lines
            key, sep, value = line.partition(":")
            if sep:
                fields[key] = value.strip()
        if fields:
            yield fields


def _relations(value: str) -> tuple[tuple[str, ...], ...]:
    """``a (>= 1) | b, c:any`` -> (("a", "b"), ("c",)): names only, architecture qualifiers dropped."""
    groups = []
    for group in value.split(","):
        names = tuple(re.split(r"[\s(:\[<]", alt.strip(), maxsplit=1)[0] for alt in group.split("|"))
        if any(names):
            groups.append(tuple(n for n in names if n))
    return tuple(groups)


def parse_packages(text: str) -> dict[str, DebPackage]:
    """The Packages index as name -> package (the first stanza of a name wins, as apt takes the newest)."""
    out: dict[str, DebPackage] = {}
    for p in _paragraphs(text):
        name = p.get("Package", "")
        if not name or name in out or "Filename" not in p or "SHA256" not in p:
            continue
        depends = _relations(", ".join(v for v in (p.get("Pre-Depends", ""), p.get("Depends", "")) if v))
        provides = tuple(g[0] for g in _relations(p.get("Provides", "")))
        out[name] = DebPackage(
            name, p.get("Version", ""), p.get("Architecture", ""), p["Filename"], p["SHA256"].lower(),
            int(p.get("Size", "0") or 0), depends, provides,
        )  # fmt: skip
    return out


def installed_names(status: str) -> frozenset[str]:
    """The names a dpkg status file says are installed, with the virtual packages they provide."""
    names: set[str] = set()
    for p in _paragraphs(status):
        if p.get("Status", "").split()[-1:] != ["installed"]:
            continue
        names.add(p.get("Package", ""))
        names.update(g[0] for g in _relations(p.get("Provides", "")))
    names.discard("")
    return frozenset(names)


def _providers(index: Mapping[str, DebPackage]) -> dict[str, list[str]]:
    virtual: dict[str, list[str]] = {}
    for pkg in index.values():
        for name in pkg.provides:
            virtual.setdefault(name, []).append(pkg.name)
    return {k: sorted(v) for k, v in virtual.items()}


def resolve_packages(
    requested: Sequence[str], index: Mapping[str, DebPackage], installed: frozenset[str], release: str
) -> tuple[DebPackage, ...]:
    """The requested packages and every dependency the base lacks, sorted by name (exit 4 for an unknown one)."""
    unknown = sorted(n for n in requested if n not in index)
    if unknown:
        raise ResolutionError(
            f"system-packages: no package {', '.join(unknown)} in Debian {release} (main)",
            hint="check the name at https://packages.debian.org/" + release + " (a binary package, e.g. libgomp1)",
        )
    virtual = _providers(index)
    chosen: dict[str, DebPackage] = {}
    todo = [index[n] for n in requested]
    while todo:
        pkg = todo.pop()
        if pkg.name in chosen:
            continue
        chosen[pkg.name] = pkg
        if len(chosen) > MAX_PACKAGES:
            raise ResolutionError(
                f"system-packages: {', '.join(requested)} pull in more than {MAX_PACKAGES} packages",
                hint="request fewer packages, or build your own base image with them installed",
            )
        for group in pkg.depends:
            if any(n in installed or n in chosen for n in group):
                continue
            pick = next((index[n] for n in group if n in index), None)
            if pick is None:
                pick = next((index[v] for n in group for v in virtual.get(n, ()) if v in index), None)
            if pick is None:
                raise ResolutionError(
                    f"system-packages: {pkg.name} depends on {' | '.join(group)}, which Debian {release} (main) does not have",
                    hint="install it in your own base image instead",
                )
            todo.append(pick)
    return tuple(sorted(chosen.values(), key=lambda p: p.name))


def _ar_members(data: bytes) -> Iterable[tuple[str, bytes]]:
    if not data.startswith(b"!<arch>\n"):
        raise IntegrityError("not a Debian package (no ar header)", "delete it from the cache and build again")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip() or 0)
        yield name, data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)


def deb_files(data: bytes) -> tuple[str, ...]:
    """The paths (no leading ``./``) that a ``.deb`` installs, from its ``data.tar.{xz,gz}``."""
    for name, body in _ar_members(data):
        if not name.startswith("data.tar"):
            continue
        try:
            if name.endswith(".xz"):
                body = lzma.decompress(body)
            elif name.endswith(".gz"):
                body = zlib.decompress(body, 47)
            elif name != "data.tar":
                raise IntegrityError(f"unsupported Debian package member {name}", "request a package built with xz or gzip")
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as tar:
                return tuple(sorted(m.name.lstrip("./") for m in tar.getmembers() if m.name.strip("./")))
        except (lzma.LZMAError, zlib.error, tarfile.TarError) as exc:
            raise IntegrityError(f"corrupt Debian package data: {exc}", "delete it from the cache and build again") from None
    raise IntegrityError("a Debian package without data.tar", "delete it from the cache and build again")
