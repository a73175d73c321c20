"""Bundled table of import names whose PyPI distribution is named differently."""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from importlib.resources import files
from types import MappingProxyType
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = ["is_namespace_root", "known_distribution", "namespace_roots", "table"]


@functools.lru_cache(maxsize=1)
def _load() -> tuple[Mapping[str, str], frozenset[str]]:
    """Parse the bundled TOML once and return (modules, namespace roots)."""
    resource = files("slimbuild.analysis") / "data" / "import_map.toml"
    raw: dict[str, Any] = tomllib.loads(resource.read_text(encoding="utf-8"))
    modules = raw.get("modules", {})
    if not isinstance(modules, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in modules.items()
    ):
        raise ValueError("import_map.toml: [modules] must map strings to strings")
    roots = raw.get("namespaces", {}).get("roots", [])
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise ValueError(
            "import_map.toml: [namespaces].roots must be a list of strings"
        )
    return MappingProxyType(dict(modules)), frozenset(roots)


def table() -> Mapping[str, str]:
    """Read-only view of the import-name -> distribution table."""
    return _load()[0]


def namespace_roots() -> frozenset[str]:
    """Namespace package roots that must not resolve to a distribution by themselves."""
    return _load()[1]


def is_namespace_root(module: str) -> bool:
    """True if `module` is a shared namespace root such as ``google``."""
    return module in _load()[1]


def known_distribution(module: str) -> str | None:
    """Distribution for a dotted import name (longest table prefix), or None."""
    if not module or module.startswith("."):
        return None
    modules, roots = _load()
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        dist = modules.get(prefix)
        if dist is not None:
            return dist
        if prefix in roots:
            # Unknown member of a shared namespace: the ancestors cannot decide it.
            return None
    return None
