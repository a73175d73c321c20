"""The shared libraries the locked wheels need from the system, and the ones the base image lacks.

Every shared object in a wheel (extension modules and the libraries auditwheel vendors into ``<dist>.libs/``)
names the libraries it needs in its ``DT_NEEDED`` entries (read with pyelftools). A library is satisfied when a
wheel of the lock ships it (vendored, or another wheel's ``.so`` in the same venv), when it is the base's own
Python or loader, when the base image has it in a library directory, or when a requested Debian package
(``system-packages``) ships it. The rest would fail the import at run time: ``missing_libraries`` names them,
each with the distribution that needs it, a Debian package that provides it and an alternative distribution
where one exists (``data/system_libs.toml``, made by ``scripts/system_libs_from_contents.py``).
"""

from __future__ import annotations

import io
import posixpath
import re
import sys
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import IO

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from slimbuild.errors import IntegrityError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

# libfoo.so, libfoo.so.1.2, and auditwheel's renamed copies such as libcrypto-a324fe28.so.1.1.1k
_SHARED = re.compile(r".*\.so(\.[0-9A-Za-z_]+)*$")
IN_MEMORY = 256 * 1024 * 1024  # a smaller member is read once; a larger one is streamed (the zip re-inflates on seek)
# Always there where the wheel runs: the base's interpreter library and the dynamic loader itself.
_IMPLICIT = re.compile(r"(libpython3[.0-9]*[a-z]*\.so.*|ld-linux.*\.so\.[0-9]+|linux-vdso\.so\.1|linux-gate\.so\.1)")
ELF_MAGIC = b"\x7fELF"

__all__ = [
    "MissingLibrary", "WheelLibs", "elf_needed", "library_data", "missing_libraries", "scan_wheel",
]  # fmt: skip


@dataclass(frozen=True)
class WheelLibs:
    """One wheel's shared objects: what they need (soname, member) and the sonames the wheel itself provides."""

    dist: str
    needed: tuple[tuple[str, str], ...]
    provided: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"dist": self.dist, "needed": [list(n) for n in self.needed], "provided": list(self.provided)}

    @classmethod
    def from_json(cls, value: Mapping[str, object]) -> WheelLibs:
        needed = value["needed"]
        provided = value["provided"]
        if not isinstance(needed, list) or not isinstance(provided, list):
            raise ValueError("not a wheel library record")
        return cls(str(value["dist"]), tuple((str(s), str(m)) for s, m in needed), tuple(str(p) for p in provided))


@dataclass(frozen=True)
class MissingLibrary:
    """A library some wheel needs that nothing satisfies: who needs it and what would provide it."""

    soname: str
    dists: tuple[str, ...]
    members: tuple[str, ...]
    package: str  # the Debian package that ships it ("" when none is known)
    alternatives: tuple[tuple[str, str], ...]  # (distribution, one that needs no system library)

    def describe(self, alternatives: bool = True) -> str:
        """``opencv-python needs libGL.so.1 (cv2/cv2.abi3.so), which the base image lacks: Debian package libgl1
        provides it; or use opencv-python-headless instead of opencv-python`` (the last part with ``alternatives``)."""
        who = ", ".join(self.dists)
        where = f" ({self.members[0]})" if self.members else ""
        if self.package:
            provided = f"Debian package {self.package} provides it"
        else:
            provided = "no Debian package known to slimbuild provides it"
        alts = "".join(f"; or use {alt} instead of {dist}" for dist, alt in self.alternatives) if alternatives else ""
        return f"{who} needs {self.soname}{where}, which the base image lacks: {provided}{alts}"


def elf_needed(stream: IO[bytes]) -> tuple[tuple[str, ...], str] | None:
    """``(DT_NEEDED entries, DT_SONAME)`` of a seekable ELF stream; None when it is not an ELF file."""
    head = stream.read(4)
    stream.seek(0)
    if head != ELF_MAGIC:
        return None
    try:
        elf = ELFFile(stream)
        needed: list[str] = []
        soname = ""
        for section in elf.iter_sections():
            if not isinstance(section, DynamicSection):
                continue
            for tag in section.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    needed.append(str(getattr(tag, "needed", "")))
                elif tag.entry.d_tag == "DT_SONAME":
                    soname = str(getattr(tag, "soname", ""))
    except (ELFError, ValueError, KeyError, OSError) as exc:
        raise IntegrityError(f"corrupt shared object: {exc}", "delete it from the cache and fetch it again") from None
    return tuple(needed), soname


def scan_wheel(path: Path, dist: str) -> WheelLibs:
    """The DT_NEEDED entries of every shared object in the wheel at ``path`` and the sonames it provides."""
    needed: set[tuple[str, str]] = set()
    provided: set[str] = set()
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.is_dir() or not _SHARED.fullmatch(info.filename):
                    continue
                provided.add(posixpath.basename(info.filename))
                with zf.open(info) as fh:  # seekable: pyelftools reads the headers and the dynamic section only
                    try:
                        found = elf_needed(io.BytesIO(fh.read()) if info.file_size <= IN_MEMORY else fh)
                    except IntegrityError as exc:
                        raise IntegrityError(f"{path.name}: {info.filename}: {exc.message}", exc.hint) from None
                if found is None:
                    continue
                libs, soname = found
                if soname:
                    provided.add(soname)
                needed.update((lib, info.filename) for lib in libs)
    except (zipfile.BadZipFile, OSError) as exc:
        raise IntegrityError(f"{path.name}: cannot read the wheel: {exc}", "delete it from the cache and lock again") from None
    return WheelLibs(dist, tuple(sorted(needed)), tuple(sorted(provided)))


@lru_cache(maxsize=1)
def library_data() -> tuple[Mapping[str, str], Mapping[str, str]]:
    """(soname -> Debian package, distribution -> alternative) from ``data/system_libs.toml``."""
    text = resources.files("slimbuild.locking").joinpath("data/system_libs.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return dict(data.get("packages", {})), dict(data.get("alternatives", {}))


def missing_libraries(
    wheels: Iterable[WheelLibs],
    available: Iterable[str],
    packages: Mapping[str, str] | None = None,
    alternatives: Mapping[str, str] | None = None,
) -> tuple[MissingLibrary, ...]:
    """The libraries some wheel needs that no wheel, the base (``available``) or the loader provides; sorted."""
    if packages is None or alternatives is None:
        data_packages, data_alternatives = library_data()
        packages = data_packages if packages is None else packages
        alternatives = data_alternatives if alternatives is None else alternatives
    wheels = list(wheels)
    satisfied = {*available, *(p for w in wheels for p in w.provided)}
    wanting: dict[str, dict[str, list[str]]] = {}
    for w in wheels:
        for soname, member in w.needed:
            if soname in satisfied or _IMPLICIT.fullmatch(soname):
                continue
            wanting.setdefault(soname, {}).setdefault(w.dist, []).append(member)
    out = []
    for soname, by_dist in sorted(wanting.items()):
        dists = tuple(sorted(by_dist))
        members = tuple(sorted(m for ms in by_dist.values() for m in ms))
        alts = tuple((d, alternatives[d]) for d in dists if d in alternatives)
        out.append(MissingLibrary(soname, dists, members, packages.get(soname, ""), alts))
    return tuple(out)
