"""Parse results cached by content hash, one file per project, written atomically."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

from slimbuild import __version__
from slimbuild.cache.evidence import code_stamp
from slimbuild.models import ImportGraph, ParsedSource
from slimbuild.paths import atomic_write

# 3: catch-all handlers and contextlib.suppress make imports optional; 4: import flags (HAS_X);
# 5: aliases of importlib and its import functions, a notebook's %run scripts (ParsedSource.run_scripts), SB008 cells
# 6: computed sys.path entries; 7: flag functions (if f():) and NameError probes make imports optional
_FORMAT = 7
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
        atomic_write(path, pickle.dumps(((_FORMAT, __version__), merged), protocol=pickle.HIGHEST_PROTOCOL), 0o600, durable=False)
    except OSError:
        pass


# ----------------------------------------------------------------------------- whole graphs

_GRAPH_FORMAT = 3  # 3: the image's sys.path (pythonpath, shadowed namespaces) and ImportGraph.namespaces
# The code that decides what a trace returns (a change there, in a development checkout, is a miss):
# the analysis package, its mapping data, the shared value types, and this package (directory listings,
# file stamps and digests come from cache/evidence.py).
_TRACE_CODE = ("analysis", "analysis/data", "", "cache")


def graph_key(
    project_root: Path, entry: object, target_python: str, allow_unparseable: bool, max_bytes: int, grammar: str = "",
    search: object = (),
) -> tuple[object, ...]:
    """What a cached graph is for: the project, the resolved entrypoint, the options that change a trace
    (``grammar``: the interpreter that parses for a target newer than this one, see analysis/grammar.py; ``search``:
    where the image's interpreter looks for modules, see analysis/graph.py)."""
    return (
        _GRAPH_FORMAT, __version__, str(project_root.resolve()), repr(entry), target_python, allow_unparseable, max_bytes,
        grammar, repr(search),
    )


def graph_file(cache_root: Path, key: tuple[object, ...]) -> Path:
    """The cache file of one (project, entrypoint, options) graph."""
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:24]
    return cache_root / "analysis" / f"graph-{digest}.pickle"


def load_graph(path: Path, key: tuple[object, ...]) -> tuple[ImportGraph, Any] | None:
    """(graph, evidence) saved for ``key``; None when absent, corrupt, foreign or made by other code."""
    try:
        with path.open("rb") as fh:
            header, graph, evidence = pickle.load(fh)
    except Exception:  # noqa: BLE001 - any unreadable cache (truncated, garbage, old classes) is a miss
        return None
    if header != (key, code_stamp(_TRACE_CODE)) or not isinstance(graph, ImportGraph):
        return None
    return graph, evidence


def save_graph(path: Path, key: tuple[object, ...], graph: ImportGraph, evidence: object) -> None:
    """Write a graph and its evidence atomically; failures are ignored (a read-only cache is a slow cache)."""
    try:
        data = pickle.dumps(((key, code_stamp(_TRACE_CODE)), graph, evidence), protocol=pickle.HIGHEST_PROTOCOL)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, data, 0o600, durable=False)
    except (OSError, pickle.PicklingError):
        pass
