"""Parse results cached by content hash, one file per project, written atomically."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

from slimbuild import __version__
from slimbuild.models import ParsedSource
from slimbuild.paths import atomic_write

_FORMAT = 1
_MAX_ENTRIES = 50_000
Cache = dict[tuple[str, str], ParsedSource]


def cache_file(cache_root: Path, project_root: Path) -> Path:
    """The cache file for one project root."""
    key = hashlib.sha256(str(project_root.resolve()).encode()).hexdigest()[:20]
    return cache_root / "analysis" / f"{key}.pickle"


def load(path: Path) -> Cache:
    """Entries from a cache file; an unreadable or foreign file is an empty cache."""
    try:
        with path.open("rb") as fh:
            header, entries = pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError):
        return {}
    if header != (_FORMAT, __version__) or not isinstance(entries, dict):
        return {}
    return entries


def save(path: Path, old: Cache, used: Cache) -> None:
    """Write the used entries (plus older ones, up to a bound); failures are ignored (read-only cache)."""
    if not used or all(k in old for k in used):
        return
    merged = dict(old)
    merged.update(used)
    if len(merged) > _MAX_ENTRIES:
        merged = dict(used)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, pickle.dumps(((_FORMAT, __version__), merged), protocol=pickle.HIGHEST_PROTOCOL), 0o600)
    except OSError:
        pass


def digest_file(path: Path) -> str:
    """Content hash of a file (blake2b: fast, and only a cache key)."""
    with path.open("rb") as fh:
        return hashlib.blake2b(fh.read(), digest_size=20).hexdigest()
