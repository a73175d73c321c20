"""Declarations that cannot hold together: ``numpy>=2`` in requirements.txt and ``numpy<2`` in pyproject.toml (C22).

Pure. Before pip-compile runs, :func:`conflicting` finds a distribution whose declared specifiers (and ``-c``
constraints) admit no version; the versions probed are the ones the specifiers name and the points just past
them, so ``>=2`` with ``<2`` is caught while ``>2,<3`` is not (every real index has a version in between there).
After pip-compile fails, :func:`declared_at` names the declarations of the distributions its output mentions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from slimbuild.models import Declared

__all__ = ["conflicting", "declared_at", "describe"]


def _probes(specs: SpecifierSet) -> list[Version]:
    """Versions that decide whether intervals of these specifiers meet: each one named, just past it, 0 and a huge one."""
    out = [Version("0"), Version("999999")]
    for spec in specs:
        raw = spec.version.removesuffix(".*")
        try:
            v = Version(raw)
        except InvalidVersion:
            continue
        out += [v, Version(f"{v.base_version}.0.0.0.0.1"), Version(f"{v.base_version}.post999999")]
    return out


def describe(decls: Iterable[Declared]) -> str:
    """``file:line says name>=2`` for each declaration, joined."""
    return ", ".join(f"{d.source} says {d.name}{d.specifier}" for d in decls)


def conflicting(
    declared: Iterable[Declared], constraints: Iterable[Declared], names: Iterable[str]
) -> tuple[str, tuple[Declared, ...]] | None:
    """The first distribution of ``names`` whose declarations and constraints together admit no version, with them.

    Declarations with an ``===`` (arbitrary) clause or a specifier that does not parse are not judged.
    """
    wanted = set(names)
    by_name: dict[str, list[Declared]] = {}
    for d in (*declared, *constraints):
        if d.name in wanted and d.specifier and d.marker != "url":
            by_name.setdefault(d.name, []).append(d)
    for name in sorted(by_name):
        decls = by_name[name]
        try:
            combined = SpecifierSet(",".join(d.specifier for d in decls))
        except InvalidSpecifier:
            continue
        if any(s.operator == "===" for s in combined):
            continue
        if not any(combined.contains(v, prereleases=True) for v in _probes(combined)):
            return name, tuple(dict.fromkeys(decls))
    return None


def declared_at(output: str, declared: Sequence[Declared], constraints: Sequence[Declared] = ()) -> str:
    """Where the distributions a pip-compile failure names are declared with a version (``file:line says ...``)."""
    words = {w.lower().replace("_", "-").replace(".", "-") for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", output)}
    decls = [d for d in (*declared, *constraints) if d.specifier and d.marker != "url" and d.name in words]
    return describe(sorted(set(decls), key=lambda d: (d.name, d.source)))
