"""What the declared distributions bring, for a first lock that nothing else shows it to (pure).

With no environment and no lock, nothing says that ``streamlit`` depends on ``pandas``, so ``import pandas`` is
SB001. ``lock`` then resolves the declared set first; its ``# via`` graph moves every SB001 distribution that it
pins through a declared one to SB020 (:func:`slimbuild.analysis.reconcile.transitive`), and that resolution is the
lock when it already satisfies the whole required set (one resolution, not two).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion

from slimbuild.analysis.reconcile import lock_inputs, transitive
from slimbuild.locking.lockfile import Lock, inputs_digest, lock_requires, parse_lock, render_lock_text
from slimbuild.locking.pins import Pin
from slimbuild.locking.target import Target
from slimbuild.models import Analysis, Declared


def graph_unknown(a: Analysis, known: AbstractSet[str]) -> bool:
    """Whether a resolution of the declared set could move one of ``a``'s SB001s: some distribution is missing and
    some declared, required one has dependencies nothing ``known`` shows (the environment's distributions and the
    existing lock's: the analysis already read their graph)."""
    missing = {r.name for r in a.missing}
    return bool(missing) and any(r.name not in known for r in a.required if r.name not in missing)


def declared_inputs(a: Analysis, constraints: Iterable[Declared] = ()) -> tuple[str, ...]:
    """The lock inputs of the required set without its missing (undeclared) distributions."""
    missing = {r.name for r in a.missing}
    return lock_inputs(replace(a, required=tuple(r for r in a.required if r.name not in missing)), constraints)


def brought(a: Analysis, lock: Lock) -> Analysis:
    """``a`` with each missing distribution that ``lock`` pins through a declared one as SB020 (its ``# via``)."""
    return transitive(a, lock_requires(lock.text))


def satisfies(lock: Lock, inputs: Sequence[str]) -> bool:
    """Whether ``lock`` pins every input line at a version its specifier admits (then it is their resolution)."""
    pinned = lock.by_name()
    for line in inputs:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            return False
        dist = pinned.get(canonicalize_name(req.name))
        try:
            if dist is None or not req.specifier.contains(dist.version, prereleases=True):
                return False
        except InvalidVersion:
            return False
    return True


def restamped(
    lock: Lock, inputs: Sequence[str], target: Target, pins: Sequence[Pin], pins_ignored: Sequence[str],
    hashes: Mapping[str, Sequence[str]] | None,
) -> Lock:
    """``lock`` with the header of ``inputs``' lock (its digest), so ``check`` finds it fresh."""
    digest = inputs_digest(inputs, target, pins, hashes)
    text = render_lock_text(lock.text, target, digest, pins, pins_ignored)
    return replace(parse_lock(text, source="pip-compile output"), warnings=lock.warnings, sources=lock.sources)
