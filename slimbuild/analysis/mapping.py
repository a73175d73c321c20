"""Bundled knowledge of import names: the table of names whose distribution is named differently, and PyPI's most
downloaded distributions (whose same-name imports resolve to them).

Both load lazily, once, on first use: ``import_map.toml`` (a few hundred entries) when an import reaches the table,
``popular.txt`` (one canonical name a line, in rank order) only when an import reaches the popularity step or
candidates must be ranked.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Mapping
from importlib.resources import files
from types import MappingProxyType
from typing import Any

from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = [
    "by_rank",
    "is_namespace_root",
    "known_distribution",
    "namespace_roots",
    "popular_distribution",
    "popularity_rank",
    "providers",
    "sources",
    "table",
]


def _providers_of(key: str, value: object) -> tuple[str, ...]:
    """A [modules] value (a name, or a non-empty list of distinct names) as a tuple."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value) and len(set(value)) == len(value):
        return tuple(value)
    raise ValueError(f"import_map.toml: [modules] {key!r} must be a distribution name or a list of distinct names")


@functools.lru_cache(maxsize=1)
def _load() -> tuple[Mapping[str, tuple[str, ...]], frozenset[str], Mapping[str, str], frozenset[str]]:
    """Parse the bundled TOML once: (modules, namespace roots, sources, roots that never resolve by popularity)."""
    resource = files("slimbuild.analysis") / "data" / "import_map.toml"
    raw: dict[str, Any] = tomllib.loads(resource.read_text(encoding="utf-8"))
    modules = raw.get("modules", {})
    if not isinstance(modules, dict):
        raise ValueError("import_map.toml: [modules] must be a table")
    parsed = {k: _providers_of(k, v) for k, v in modules.items()}
    roots = raw.get("namespaces", {}).get("roots", [])
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise ValueError("import_map.toml: [namespaces].roots must be a list of strings")
    src = raw.get("sources", {})
    if not isinstance(src, dict) or not all(isinstance(v, str) for v in src.values()):
        raise ValueError("import_map.toml: [sources] must map import names to strings")
    # A top-level name the table knows only through dotted entries (mysql.connector, snowflake.connector) is shared
    # by other distributions: the PyPI project of the bare name is not what such an import means.
    shared = frozenset(k.split(".")[0] for k in parsed if "." in k and k.split(".")[0] not in parsed)
    return MappingProxyType(parsed), frozenset(roots), MappingProxyType(dict(src)), shared | frozenset(roots)


@functools.lru_cache(maxsize=1)
def _popular() -> str:
    """``popular.txt`` as one string, each name between newlines, read on first use.

    Lines are in rank order, so a name's offset orders it by rank: ranking a few candidates needs no table.
    """
    text = (files("slimbuild.analysis") / "data" / "popular.txt").read_text(encoding="utf-8")
    return "\n" + "\n".join(line for line in text.splitlines() if line and not line.startswith("#")) + "\n"


@functools.lru_cache(maxsize=1)
def _popular_names() -> frozenset[str]:
    """The popular names as a set, for membership (built once, on the first import that reaches the list)."""
    return frozenset(_popular().split())


def _offset(name: str) -> int:
    """Where the canonical ``name`` stands in the popular list (smaller = more downloaded), or -1."""
    return _popular().find(f"\n{name}\n") if name in _popular_names() else -1


def table() -> Mapping[str, tuple[str, ...]]:
    """Read-only view of the import-name -> providing distributions table."""
    return _load()[0]


def sources() -> Mapping[str, str]:
    """How table entries were checked (``wheel <filename>``); entries not listed were written by hand."""
    return _load()[2]


def namespace_roots() -> frozenset[str]:
    """Namespace package roots that must not resolve to a distribution by themselves."""
    return _load()[1]


def is_namespace_root(module: str) -> bool:
    """True if `module` is a shared namespace root such as ``google``."""
    return module in _load()[1]


def providers(module: str) -> tuple[str, ...]:
    """Every distribution the table knows to provide a dotted import name (longest table prefix), or ()."""
    if not module or module.startswith("."):
        return ()
    modules, roots, _, _ = _load()
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        found = modules.get(prefix)
        if found is not None:
            return found
        if prefix in roots:
            # Unknown member of a shared namespace: the ancestors cannot decide it.
            return ()
    return ()


def known_distribution(module: str) -> str | None:
    """The one distribution the table knows for ``module``, or None (unknown, or several providers)."""
    found = providers(module)
    return found[0] if len(found) == 1 else None


def popularity_rank(dist: str) -> int | None:
    """Rank of a distribution among PyPI's most downloaded (1 = most), or None when it is not among them."""
    at = _offset(canonicalize_name(dist))
    return None if at < 0 else _popular().count("\n", 0, at) + 1


def by_rank(dists: Iterable[str]) -> tuple[str, ...]:
    """Canonical names, most downloaded first; names outside the list follow, by name."""
    names = {canonicalize_name(d) for d in dists}
    size = len(_popular())
    return tuple(sorted(names, key=lambda n: (at if (at := _offset(n)) >= 0 else size, n)))


def popular_distribution(module: str) -> str | None:
    """The popular distribution of the same (canonical) name as ``module``'s top level, or None.

    Never for a namespace root (``google``, ``azure``) or a top level the table knows only through dotted entries.
    """
    top = module.split(".")[0]
    if not top or not top.isidentifier() or top in _load()[3]:
        return None
    name = canonicalize_name(top)
    return name if name in _popular_names() else None
