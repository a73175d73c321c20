"""The base image: pinned by digest (or a local image's id), and its Python version read once per base digest,
cached, and checked against the target before any build.

A lock made for ``python = "3.12"`` installs cp312 wheels into a venv the base's interpreter makes: on a 3.11
base that image is wrong however it builds. ``python:*-slim`` images name their version in ``PYTHON_VERSION``
(image config, no container); any other base is asked once, in a short-lived container with no network, which
the engine removes whatever happens. The answer is cached by the base's digest (or local image id), so each
base is asked at most once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slimbuild.config import Settings
from slimbuild.errors import ConfigError, NoSuchImage, PolicyViolation
from slimbuild.paths import atomic_write, cache_dir

if TYPE_CHECKING:
    from slimbuild.image.engine import Engine

# Run in the base with its own ENTRYPOINT replaced; `python3` is what the builder stage runs (render.py's python_cmd).
PROBE = ("python3", "-c", "import sys; print('slimbuild-python %d.%d.%d' % sys.version_info[:3])")
PROBE_USER = "65534:65534"  # nobody: the probe needs no privilege
PROBE_TIMEOUT = 60.0
CACHE_SUBDIR = "base-python"
_VERSION = re.compile(r"(?P<major>\d+)\.(?P<minor>\d+)(?:\.\d+)?(?:[a-z]+\d*)?")
_PROBED = re.compile(r"slimbuild-python (\d+\.\d+\.\d+)")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

__all__ = [
    "CACHE_SUBDIR", "PROBE", "Base", "base_python", "check_target", "major_minor", "pin_base", "resolve_base", "version_from_env",
]  # fmt: skip


def major_minor(version: str) -> str:
    """``"3.11"`` of ``"3.11.9"`` (or of ``"3.11"``); ``""`` when it is not a Python version."""
    m = _VERSION.fullmatch(version.strip())
    return f"{m['major']}.{m['minor']}" if m else ""


def version_from_env(env: Iterable[str] | None) -> str:
    """The ``PYTHON_VERSION`` the image config sets (python:*-slim does), or ``""`` when it sets none that parses."""
    for item in env or ():
        key, _, value = str(item).partition("=")
        if key == "PYTHON_VERSION" and major_minor(value):
            return value.strip()
    return ""


def check_target(target_python: str, base_version: str, reference: str) -> None:
    """Refuse a target whose major.minor differs from the base's (exit 2), naming both and both ways to fix it."""
    base_mm = major_minor(base_version)
    if base_mm == target_python:
        return
    raise ConfigError(
        f"target Python {target_python} does not match Python {base_version} of the base image {reference}: "
        f"the lock's cp{target_python.replace('.', '')} wheels would not run there",
        hint=f'pass --base-image with a Python {target_python} image (e.g. python:{target_python}-slim), '
        f'or set python = "{base_mm}" in [tool.slimbuild] (or --target-python {base_mm})',
    )


def _cache_file(cache: Path, reference: str) -> Path | None:
    """Where the version of the base pinned as ``reference`` (…@sha256:… or sha256:…) is kept; None when unpinned."""
    key = reference.rsplit("@", 1)[-1]
    return cache / CACHE_SUBDIR / f"{key.replace(':', '-')}.json" if _DIGEST.fullmatch(key) else None


def _cached(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("python", "")
    except (OSError, ValueError, AttributeError):
        return ""  # no record, or a damaged one: ask again
    return value if isinstance(value, str) and major_minor(value) else ""


def _probe(engine: Engine, reference: str) -> str:
    """Ask the base's ``python3`` for its version (the engine removes the container, also on failure)."""
    run = engine.run(reference, PROBE, user=PROBE_USER, timeout=PROBE_TIMEOUT)
    found = _PROBED.search(run.output)
    if run.exit_code != 0 or found is None:
        tail = " | ".join(run.output.strip().splitlines()[-3:]) or "no output"
        raise ConfigError(
            f"cannot read the Python version of the base image {reference}: python3 -c ... exited {run.exit_code} ({tail})",
            hint="pass --base-image with an image that has python3 on its PATH (e.g. python:3.11-slim)",
        )
    return found[1]


def base_python(engine: Engine | None, reference: str, cache: Path) -> str:
    """The base's Python version (``"3.11.9"``): cached by digest, else the image config, else one probe run.

    ``""`` when there is no engine and no cached answer (``slimbuild dockerfile`` on a digest-pinned base, offline).
    """
    path = _cache_file(cache, reference)
    version = _cached(path)
    if version or engine is None:
        return version
    info = engine.inspect_image(reference)
    version = version_from_env((info.get("Config") or {}).get("Env")) or _probe(engine, reference)
    if path is not None:
        try:
            atomic_write(path, json.dumps({"python": version, "reference": reference}, sort_keys=True).encode() + b"\n")
        except OSError:
            pass  # an unwritable cache costs the next build this question again, nothing else
    return version


def resolve_base(engine: Engine | None, reference: str) -> tuple[str, bool, tuple[str, ...]]:
    """The base pinned by digest (or a local image's id, with a warning): (reference, local_only, warnings)."""
    if "@sha256:" in reference:
        return reference, False, ()
    if reference.startswith("sha256:"):
        return reference, True, ()  # an image id names no registry: the image is local only (as recorded for it)
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last or last.rsplit(":", 1)[1] == "latest":
        raise PolicyViolation(
            f"base image {reference!r} names no tag or 'latest': what it is changes under you (D4)",
            hint="pin a tag, e.g. python:3.11-slim, or a digest name:tag@sha256:<digest>",
        )
    if engine is None:
        raise ConfigError(
            f"base image {reference!r} is not pinned by digest and no engine is available to resolve it",
            hint="pass --base-image name:tag@sha256:<digest>, or start the Docker engine",
        )
    try:
        info = engine.inspect_image(reference)
    except NoSuchImage:
        raise NoSuchImage(
            f"no such image: base image {reference!r} is not available to the engine",
            hint=f"pull it first ('docker pull {reference}') or pass --base-image with a local image",
        ) from None
    name = reference.split("@")[0]
    repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    for digest_ref in sorted(info.get("RepoDigests") or []):
        if digest_ref.split("@")[0] == repo:
            tagged = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
            return f"{tagged}@{digest_ref.split('@')[1]}", False, ()
    image_id = str(info["Id"])
    return (
        image_id,
        True,
        (f"base image {reference} has no registry digest (local only): pinned by its image id {image_id[:19]}…",),
    )


@dataclass(frozen=True)
class Base:
    """The base pinned by digest (or a local image's id) and its Python version (``""``: not known, no engine)."""

    reference: str
    local_only: bool
    python: str
    warnings: tuple[str, ...]


def pin_base(settings: Settings, engine: Engine | None, base_image: str, env: Mapping[str, str]) -> Base:
    """Pin the base and refuse it (exit 2) when its Python is not the target's: before any wheel is fetched."""
    reference = base_image or settings.base_image or f"python:{settings.target_python}-slim"
    pinned, local_only, warnings = resolve_base(engine, reference)
    python = base_python(engine, pinned, cache_dir(env))
    if python:
        check_target(settings.target_python, python, reference)
    return Base(pinned, local_only, python, warnings)
