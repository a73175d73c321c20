"""The ``.deb`` files of ``system-packages``, fetched on the host and checked by hash; the build itself stays offline.

The Debian archive (``$SLIMBUILD_DEBIAN_MIRROR``, default deb.debian.org) is asked for the base release's
``Release`` file and its ``main/binary-<arch>/Packages.xz``, checked against the SHA256 the Release file lists,
once, and cached under ``CACHE/debian/<release>/<arch>/`` (``--upgrade`` fetches them again). Each ``.deb`` is
checked against the SHA256 of the Packages index and cached by it (``CACHE/debs/<sha256>/<file>``), so a warm
build touches no network. A host that cannot reach the archive is exit 4 (the index is unreachable, as for pip);
a file whose hash differs is exit 5.
"""

from __future__ import annotations

import hashlib
import lzma
import posixpath
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from slimbuild.errors import IntegrityError, ResolutionError
from slimbuild.locking.debian import DebPackage
from slimbuild.paths import atomic_write, file_digest

DEFAULT_MIRROR = "https://deb.debian.org/debian"
TIMEOUT = 60.0
MAX_INDEX_BYTES = 256 * 1024 * 1024
MAX_DEB_BYTES = 512 * 1024 * 1024
_FILENAME = re.compile(r"pool/[A-Za-z0-9+._~/-]+\.deb")

__all__ = ["DEFAULT_MIRROR", "fetch_deb", "fetch_index", "mirror"]


def mirror(env: Mapping[str, str]) -> str:
    """The Debian archive's root URL (no trailing slash)."""
    return (env.get("SLIMBUILD_DEBIAN_MIRROR") or DEFAULT_MIRROR).rstrip("/")


def _get(url: str, limit: int) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            data: bytes = response.read(limit + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ResolutionError(
            f"system-packages: cannot fetch {url}: {reason}",
            hint="the host fetches the .deb files (the build stays offline): let it reach the Debian archive, "
            "or set SLIMBUILD_DEBIAN_MIRROR to a mirror it can reach (a file gone from the archive: --upgrade fetches "
            "the current index)",
        ) from None
    if len(data) > limit:
        raise IntegrityError(f"system-packages: {url} is larger than {limit} bytes", "check the mirror")
    return data


def _release_sha256(release: bytes, member: str, url: str) -> str:
    """The SHA256 a Release file lists for ``member`` (e.g. ``main/binary-amd64/Packages.xz``)."""
    in_sha256 = False
    for line in release.decode("utf-8", "replace").splitlines():
        if not line.startswith(" "):
            in_sha256 = line.strip() == "SHA256:"
            continue
        parts = line.split()
        if in_sha256 and len(parts) == 3 and parts[2] == member:
            return parts[0].lower()
    raise IntegrityError(f"system-packages: {url} lists no SHA256 for {member}", "check the mirror")


def fetch_index(release: str, arch: str, cache: Path, env: Mapping[str, str], *, refresh: bool = False) -> tuple[str, str]:
    """The Packages index of ``release``/main for ``arch``: (its text, the sha256 of Packages.xz). Cached."""
    where = cache / "debian" / release / arch
    cached = where / "Packages.xz"
    if cached.is_file() and not refresh:
        data = cached.read_bytes()
    else:
        base = f"{mirror(env)}/dists/{release}"
        member = f"main/binary-{arch}/Packages.xz"
        release_url = f"{base}/Release"
        expected = _release_sha256(_get(release_url, 4 * 1024 * 1024), member, release_url)
        data = _get(f"{base}/{member}", MAX_INDEX_BYTES)
        got = hashlib.sha256(data).hexdigest()
        if got != expected:
            raise IntegrityError(
                f"system-packages: {base}/{member} has sha256 {got}, the Release file lists {expected}",
                "fetch again (a mirror mid-update), or use another mirror",
            )
        atomic_write(cached, data, durable=False)
    try:
        text = lzma.decompress(data).decode("utf-8", "replace")
    except lzma.LZMAError as exc:
        raise IntegrityError(
            f"system-packages: the cached index {cached} is corrupt: {exc}", "delete it and build again"
        ) from None
    return text, hashlib.sha256(data).hexdigest()


def fetch_deb(pkg: DebPackage, cache: Path, env: Mapping[str, str]) -> Path:
    """The package's ``.deb``: from the cache when its sha256 still matches, else downloaded and checked."""
    if not _FILENAME.fullmatch(pkg.filename) or ".." in pkg.filename.split("/"):
        raise IntegrityError(
            f"system-packages: {pkg.name}: unexpected file name {pkg.filename!r} in the index", "check the mirror"
        )
    path = cache / "debs" / pkg.sha256 / posixpath.basename(pkg.filename)
    if path.is_file() and file_digest(path) == pkg.sha256:
        return path
    url = f"{mirror(env)}/{pkg.filename}"
    data = _get(url, MAX_DEB_BYTES)
    got = hashlib.sha256(data).hexdigest()
    if got != pkg.sha256:
        raise IntegrityError(
            f"system-packages: {url} has sha256 {got}, the Packages index lists {pkg.sha256}",
            "fetch again with --upgrade (the index may be older than the archive), or use another mirror",
        )
    atomic_write(path, data, durable=False)
    return path
