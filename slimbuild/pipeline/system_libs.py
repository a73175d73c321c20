"""The system libraries the locked wheels need, checked against the base before any build; ``system-packages``.

After the wheelhouse is fetched, every wheel's shared objects are read for their ``DT_NEEDED`` entries (cached
per wheel sha256 under ``CACHE/wheel-libs/``). What no wheel vendors is looked up in the base image's library
set, read once per base digest (or local image id) from ``docker save`` and cached under ``CACHE/base-files/``
(no container is run). The ``.deb`` files ``system-packages`` asks for are resolved against the base's release
and dpkg status, fetched on the host and checked by hash (locking/debs.py); the libraries they ship count as
present. A library still missing fails the build here, exit 7, naming the library, the distribution, a Debian
package that provides it and an alternative distribution where one exists.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from slimbuild.errors import BuildFailed, ConfigError, SlimbuildError
from slimbuild.image.base_files import DEFAULT_LIB_DIRS, BaseFiles, base_files_from_save
from slimbuild.locking.debian import (
    ARCHITECTURES,
    DebPackage,
    check_names,
    deb_files,
    installed_names,
    parse_packages,
    release_of,
    resolve_packages,
)
from slimbuild.locking.debs import fetch_deb, fetch_index
from slimbuild.locking.syslibs import MissingLibrary, WheelLibs, missing_libraries, scan_wheel
from slimbuild.locking.wheels import verified_sha256
from slimbuild.paths import atomic_write, file_digest

if TYPE_CHECKING:
    from slimbuild.image.engine import Engine

__all__ = ["SystemPackages", "check_system_libs", "missing_message"]


@dataclass(frozen=True)
class SystemPackages:
    """The resolved ``system-packages``: each package with its checked ``.deb`` in the cache."""

    debs: tuple[tuple[DebPackage, Path], ...] = ()

    def records(self) -> tuple[dict[str, str], ...]:
        return tuple(p.record() for p, _ in self.debs)


def _write_json(path: Path, value: object) -> None:
    try:
        atomic_write(path, json.dumps(value, sort_keys=True).encode() + b"\n", durable=False)
    except (OSError, SlimbuildError):
        pass  # a cache that cannot be written costs the next build this work again, nothing else


def _read_json(path: Path) -> Mapping[str, object] | None:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _wheel_libs(path: Path, cache: Path) -> WheelLibs | None:
    """One wheel's DT_NEEDED scan, cached by its sha256; None for an sdist (built in the builder, not scanned)."""
    try:
        name = str(parse_wheel_filename(path.name)[0])
    except InvalidWheelFilename:
        return None
    digest = verified_sha256(path) or file_digest(path)
    record = cache / "wheel-libs" / f"{digest}.json"
    cached = _read_json(record)
    if cached is not None:
        try:
            return WheelLibs.from_json(cached)
        except (KeyError, ValueError, TypeError):
            pass  # a damaged record: scan again
    scanned = scan_wheel(path, name)
    _write_json(record, scanned.to_json())
    return scanned


def _base_key(reference: str) -> str:
    key = reference.rsplit("@", 1)[-1]
    return key.split(":", 1)[-1] if key.startswith("sha256:") else hashlib.sha256(reference.encode()).hexdigest()


def base_files(engine: Engine | None, reference: str, cache: Path) -> BaseFiles | None:
    """The base's libraries, os-release and dpkg status: cached per base digest, else read with ``docker save``."""
    record = cache / "base-files" / f"{_base_key(reference)}.json"
    cached = _read_json(record)
    if cached is not None:
        try:
            return BaseFiles.from_json(cached)
        except (KeyError, ValueError, TypeError):
            pass
    if engine is None:
        return None
    image_id = str(engine.inspect_image(reference).get("Id") or reference)
    found = base_files_from_save(engine.save(image_id))
    _write_json(record, found.to_json())
    return found


def _resolved(
    names: Sequence[str], base: BaseFiles, reference: str, arch: str, cache: Path, env: Mapping[str, str], refresh: bool
) -> tuple[DebPackage, ...]:
    """The packages to install (requested and missing dependencies), cached per index, base and request."""
    release = release_of(base.os_release, reference)
    installed = installed_names(base.dpkg_status)
    text, index_sha = fetch_index(release, arch, cache, env, refresh=refresh)
    key = hashlib.sha256(json.dumps([index_sha, sorted(installed), list(names), arch]).encode()).hexdigest()
    record = cache / "debian" / "resolved" / f"{key}.json"
    cached = _read_json(record)
    if cached is not None and isinstance(cached.get("packages"), list):
        try:
            return tuple(
                DebPackage(p["name"], p["version"], p["architecture"], p["filename"], p["sha256"], int(p["size"]))
                for p in cached["packages"]  # type: ignore[attr-defined]
            )
        except (KeyError, TypeError, ValueError):
            pass
    chosen = resolve_packages(names, parse_packages(text), installed, release)
    fields = ("name", "version", "architecture", "filename", "sha256", "size")
    _write_json(record, {"packages": [{f: getattr(p, f) for f in fields} for p in chosen]})
    return chosen


def _deb_libraries(paths: Iterable[Path]) -> set[str]:
    libs = set()
    for path in paths:
        for member in deb_files(path.read_bytes()):
            if posixpath.dirname(member) in DEFAULT_LIB_DIRS:
                libs.add(posixpath.basename(member))
    return libs


def missing_message(missing: Sequence[MissingLibrary], reference: str) -> BuildFailed:
    """Exit 7 naming each missing library, who needs it, a package that provides it and an alternative."""
    packages = sorted({m.package for m in missing if m.package})
    hints = []
    if packages:
        hints.append(f"add system-packages = {json.dumps(packages)} to [tool.slimbuild]")
    if any(not m.package for m in missing):
        hints.append("use a base image (--base-image) that has the libraries no Debian package provides")
    alternatives = sorted({pair for m in missing for pair in m.alternatives})
    hints.extend(f"use {alt} instead of {dist}" for dist, alt in alternatives)
    return BuildFailed(
        f"shared libraries missing from the base image {reference}: " + "; ".join(m.describe(False) for m in missing),
        hint=", or ".join(hints) + "; nothing was built",
    )


def check_system_libs(
    system_packages: Sequence[str],
    engine: Engine | None,
    reference: str,
    wheels: Iterable[Path],
    machine: str,
    cache: Path,
    env: Mapping[str, str],
    *,
    refresh: bool = False,
) -> SystemPackages:
    """Resolve and fetch ``system_packages``, then refuse (exit 7) a wheel library that nothing provides."""
    names = check_names(system_packages)
    scans = [s for s in (_wheel_libs(p, cache) for p in sorted(set(wheels))) if s is not None]
    if not names and not any(s.needed for s in scans):
        return SystemPackages()
    base = base_files(engine, reference, cache)
    if base is None:
        if names:
            raise ConfigError(
                f"system-packages needs the package list of the base image {reference}, and no engine is available",
                hint="start the Docker engine (the base is read once, then cached)",
            )
        return SystemPackages()  # `slimbuild dockerfile` offline: the build checks it
    debs: tuple[tuple[DebPackage, Path], ...] = ()
    if names:
        arch = ARCHITECTURES.get(machine)
        if arch is None:
            raise ConfigError(f"system-packages: no Debian architecture for machine {machine!r}", hint="use x86_64 or aarch64")
        chosen = _resolved(names, base, reference, arch, cache, env, refresh)
        debs = tuple((p, fetch_deb(p, cache, env)) for p in chosen)
    missing = missing_libraries(scans, {*base.libraries, *_deb_libraries(path for _, path in debs)})
    if missing:
        raise missing_message(missing, reference)
    return SystemPackages(debs)
