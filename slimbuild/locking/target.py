"""The image's interpreter and platform (``Target``): the wheel tags and marker environment a lock is made for; pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.tags import Tag, compatible_tags, cpython_tags

from slimbuild.analysis.conditions import marker_environment
from slimbuild.errors import ConfigError, ResolutionError

__all__ = ["MACHINES", "MAX_GLIBC_MINOR", "Target", "parse_target"]

MACHINES = ("x86_64", "aarch64")
# glibc of the Debian bookworm base (python:3.x-slim) is 2.36: newer manylinux
# wheels would not load there.
MAX_GLIBC_MINOR = 36
# Oldest glibc each architecture has manylinux wheels for (PEP 600 / packaging).
_MIN_GLIBC_MINOR = {"x86_64": 5, "aarch64": 17}
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
_DESCRIBE_RE = re.compile(r"^linux/(?P<machine>\S+) cp(?P<major>\d)(?P<minor>\d{1,2})$")


@dataclass(frozen=True)
class Target:
    """The image's interpreter and platform, which locks and wheels are chosen for."""

    python_version: str = "3.11"
    machine: str = "x86_64"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"3\.\d{1,2}", self.python_version):
            raise ConfigError(
                f"invalid target python version {self.python_version!r}",
                hint='use "X.Y", e.g. "3.11"',
            )
        if self.machine not in MACHINES:
            raise ConfigError(
                f"unsupported target machine {self.machine!r}",
                hint=f"use one of: {', '.join(MACHINES)}",
            )

    @property
    def version_info(self) -> tuple[int, int]:
        """(major, minor) of the target interpreter."""
        major, minor = self.python_version.split(".")
        return int(major), int(minor)

    @property
    def abi(self) -> str:
        """The CPython ABI tag, e.g. ``cp311``."""
        major, minor = self.version_info
        return f"cp{major}{minor}"

    def platform_tags(self) -> tuple[str, ...]:
        """manylinux platform tags the image accepts, newest glibc first."""
        tags: list[str] = []
        for minor in range(MAX_GLIBC_MINOR, _MIN_GLIBC_MINOR[self.machine] - 1, -1):
            tags.append(f"manylinux_2_{minor}_{self.machine}")
            legacy = _LEGACY_MANYLINUX.get(minor)
            if legacy is not None:
                tags.append(f"{legacy}_{self.machine}")
        return tuple(tags)

    def supported_tags(self) -> tuple[Tag, ...]:
        """Wheel tags installable in the image, most preferred first."""
        platforms = self.platform_tags()
        version = self.version_info
        return (
            *cpython_tags(version, abis=[self.abi], platforms=platforms),
            *compatible_tags(version, interpreter=self.abi, platforms=platforms),
        )

    def describe(self) -> str:
        """Short form such as ``linux/x86_64 cp311``."""
        return f"linux/{self.machine} {self.abi}"

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker environment of the image (patch level assumed .0)."""
        return marker_environment(self.python_version, self.machine)


def parse_target(text: str, source: str = "slimbuild.lock") -> Target:
    """Inverse of :meth:`Target.describe`."""
    match = _DESCRIBE_RE.match(text.strip())
    if match is None:
        raise ResolutionError(
            f"{source}: malformed target header {text.strip()!r}",
            hint='expected e.g. "linux/x86_64 cp311"; regenerate with slimbuild lock',
        )
    try:
        return Target(f"{match['major']}.{match['minor']}", match["machine"])
    except ConfigError as exc:
        raise ResolutionError(f"{source}: {exc.message}", hint=exc.hint) from exc
