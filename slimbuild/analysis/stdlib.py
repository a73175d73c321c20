"""Standard-library module names for a *target* Python version (not the host's)."""

from __future__ import annotations

import functools
import sys

from slimbuild.errors import ConfigError

# Modules that stdlib-list misses or that always exist (the import system's own).
_ALWAYS = frozenset({"__future__", "__main__", "builtins", "sys", "_thread", "_io", "marshal", "_imp", "_warnings"})


@functools.lru_cache(maxsize=8)
def stdlib_modules(version: str) -> frozenset[str]:
    """Top-level standard-library module names of Python ``version`` ("3.X")."""
    from stdlib_list import stdlib_list

    try:
        names = stdlib_list(version)
    except ValueError:
        raise ConfigError(
            f"no standard-library list for Python {version}",
            hint="choose a target Python version from 3.8 to 3.14",
        ) from None
    tops = {n.split(".")[0] for n in names} | _ALWAYS
    if version == f"{sys.version_info.major}.{sys.version_info.minor}":
        tops |= set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    return frozenset(tops)
