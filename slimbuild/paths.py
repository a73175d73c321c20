"""Where slimbuild keeps its caches, and atomic writes."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

# Directories that are never first-party code: environments, build output, caches.
IGNORED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".venv", "venv", ".env", "env", "site-packages", "dist-packages", "build", "dist",
        "node_modules", "__pycache__", ".tox", ".nox", ".eggs", ".mypy_cache", ".pytest_cache", ".ruff_cache",
        ".ipynb_checkpoints", ".cache",
    }
)

WHEEL_MODULES_FILE = "wheel-modules.json"  # in the cache: wheel file name -> the import names it provides


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$SLIMBUILD_CACHE``, else the platform's user cache dir + ``/slimbuild``; a file there is exit 2."""
    env = os.environ if env is None else env
    if env.get("SLIMBUILD_CACHE"):
        return _usable(Path(os.path.expanduser(env["SLIMBUILD_CACHE"])), "SLIMBUILD_CACHE")
    if sys.platform == "darwin":
        return _usable(Path.home() / "Library" / "Caches" / "slimbuild", "the user cache directory")
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return _usable(Path(base) / "slimbuild", "XDG_CACHE_HOME" if env.get("XDG_CACHE_HOME") else "~/.cache")


def _usable(path: Path, source: str) -> Path:
    """``path``, unless it (or the nearest part of it that exists) is not a directory: a cache cannot live there."""
    for part in (path, *path.parents):
        try:
            if part.is_dir():
                return path
            if part.exists():
                break
        except OSError:
            return path  # unreadable: the cache's own writes say so (a read-only cache is a slow cache)
    else:
        return path
    from slimbuild.errors import ConfigError

    where = "" if part == path else f" ({part} is not a directory)"
    raise ConfigError(
        f"cache directory {path} (from {source}) is not a directory{where}",
        hint="point SLIMBUILD_CACHE at a directory, or unset it",
    )


def atomic_write(path: Path, data: bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``: never half-written.

    ``durable=False`` skips the fsyncs, for caches: a cache file lost or truncated by a crash reads as a miss.
    """
    import tempfile  # not at the top: a replayed warm check writes nothing and should not pay for it

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if not durable:
        return
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the replace is still atomic
    finally:
        os.close(dir_fd)


def file_digest(path: Path, algo: str = "sha256") -> str:
    """The hex digest (``hashlib`` algorithm ALGO) of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algo)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
