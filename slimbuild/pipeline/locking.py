"""Locking: the required set of each entrypoint, pinned with hashes for the target, and its wheels fetched."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slimbuild.analysis.declared import read_declared
from slimbuild.analysis.reconcile import lock_inputs, verify_provides
from slimbuild.cache import replay
from slimbuild.config import Settings
from slimbuild.errors import ResolutionError
from slimbuild.models import Analysis, Declared, Finding, Location, Severity
from slimbuild.paths import cache_dir
from slimbuild.pipeline.analyzing import analyze

if TYPE_CHECKING:  # the lock machinery is imported only by the commands that lock
    from slimbuild.locking.audit import Vulnerability
    from slimbuild.locking.lockfile import Lock
    from slimbuild.locking.target import Target


@dataclass(frozen=True)
class LockOutcome:
    """The lock of one entrypoint: where it is, what it pins, and what the wheels say."""

    analysis: Analysis
    path: Path
    lock: Lock
    resolved: bool
    wheels: tuple[Path, ...]
    findings: tuple[Finding, ...]
    warnings: tuple[str, ...]
    audit: tuple[Vulnerability, ...] | None = None  # None: not audited


def lock_path(settings: Settings, name: str) -> Path:
    """``slimbuild.lock``, or ``slimbuild.<name>.lock`` when the project has several entrypoints."""
    if len(settings.entrypoints) > 1:
        return settings.root / f"slimbuild.{name}.lock"
    return settings.root / "slimbuild.lock"


def target_of(settings: Settings) -> Target:
    """The image's platform."""
    from slimbuild.locking.target import Target

    return Target(python_version=settings.target_python, machine=settings.machine)


def _refuse_unhashable(a: Analysis, declared: Sequence[Declared]) -> None:
    """VCS, URL and editable requirements cannot be hash-locked (C8): refuse them when they may be needed."""
    required = {r.name for r in a.required} | {r.name for r in a.missing}
    for d in declared:
        if d.marker == "url" and (d.name.startswith("<") or d.name in required):
            what = d.name.strip("<>")
            raise ResolutionError(
                f"{d.source}: {what} is a VCS, URL or editable requirement: slimbuild cannot hash-lock it",
                hint="build a wheel of it (pip wheel --no-deps -w DIR ...), point PIP_FIND_LINKS at DIR and declare it by name",
            )


def _refuse_unlockable(a: Analysis) -> None:
    blocking = [s for s in a.unresolved if not s.optional]
    if blocking:
        s = blocking[0]
        raise ResolutionError(
            f"{s.location}: cannot map import '{s.module}' to a distribution"
            + (f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""),
            hint=f'add it to [tool.slimbuild.mapping] (e.g. {s.module.split(".")[0]} = "<distribution>") and declare it',
        )
    if a.missing:
        names = ", ".join(r.name for r in a.missing)
        raise ResolutionError(
            f"entrypoint {a.entrypoint_name}: undeclared distributions: {names}",
            hint="declare them in requirements.txt or [project.dependencies] ('slimbuild check' shows where they are imported)",
        )


def _declared_for(
    settings: Settings, a: Analysis, consulted: set[Path] | None = None
) -> tuple[tuple[Declared, ...], tuple[Declared, ...]]:
    """The declarations and ``-c`` constraints that apply to one entrypoint: read from its directory up (nearest wins)."""
    entry_dir = Path(a.entry.path).parent if a.entry is not None else None
    declared, constraints = read_declared(
        settings.root, settings.requirements, settings.optional_groups, consulted, settings.project,
        groups=settings.groups, entry_dir=entry_dir,
    )
    return tuple(declared), tuple(constraints)


def _read_lock(path: Path) -> Lock | None:
    from slimbuild.locking.lockfile import parse_lock

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResolutionError(f"{path.name}: cannot read the lock ({exc})", hint="restore it or delete it and re-lock") from None
    return parse_lock(text, path.name)


def _kept_by_wheels(settings: Settings, a: Analysis, wheel_paths: Sequence[Path], env: Mapping[str, str]) -> Analysis:
    """``a`` with the declared distributions the just-fetched wheels import kept (analysis read the previous lock's)."""
    from packaging.utils import canonicalize_name

    from slimbuild.analysis.resolve import wheel_index
    from slimbuild.pipeline.analyzing import environment_index, keep_third_party

    wheels: dict[str, Path] = {str(canonicalize_name(p.name.split("-")[0])): p for p in wheel_paths if p.name.endswith(".whl")}
    index = wheel_index(cache_dir(env), [d.name for d in a.declared])
    return keep_third_party(settings, a, wheels, environment_index(settings, env), index, cache_dir(env) / "thirdparty")


def _audit(path: Path, env: Mapping[str, str]) -> tuple[Vulnerability, ...]:
    """pip-audit's findings for a lock; raises when the gate fails."""
    from slimbuild.locking.audit import gate, run_audit

    vulns = run_audit(path, env)
    gate(vulns, path.name)
    return vulns


def _relock(
    settings: Settings, path: Path, inputs: Sequence[str], current: Lock, *, locked: bool, env: Mapping[str, str]
) -> tuple[Lock, tuple[Path, ...]]:
    """Lock ``inputs`` again (from ``current``'s pins) and fetch the wheels, once third-party evidence kept more."""
    from slimbuild.locking.lockfile import compile_lock, write_lock
    from slimbuild.locking.wheels import fetch_wheels

    if locked:
        raise ResolutionError(
            f"{path.name} is stale (its wheels import declared distributions it lacks); --locked refuses to re-lock",
            hint="run 'slimbuild lock' and commit the lock",
        )
    target = target_of(settings)
    new = compile_lock(inputs, target, previous=current.text, env=env, allow_sdist=settings.allow_sdist)
    write_lock(path, new)
    return new, fetch_wheels(new, target, cache_dir(env), env=env, allow_sdist=settings.allow_sdist)


def lock(
    settings: Settings,
    requested: str = "",
    *,
    upgrade: bool = False,
    upgrade_packages: Sequence[str] = (),
    locked: bool = False,
    audit: bool = False,
    env: Mapping[str, str] | None = None,
) -> tuple[LockOutcome, ...]:
    """Analyse, then lock each entrypoint's required set for the target and fetch its wheels."""
    from slimbuild.locking.lockfile import compile_lock, inputs_digest, write_lock
    from slimbuild.locking.wheels import fetch_wheels, wheel_modules

    env = os.environ if env is None else env
    analyses = analyze(settings, requested, env, single=True)  # one lock per entrypoint: several found is exit 2
    target = target_of(settings)
    cache = cache_dir(env)
    outcomes = []
    for a in analyses:
        declared, constraints = _declared_for(settings, a)
        _refuse_unhashable(a, declared)
        _refuse_unlockable(a)
        inputs = lock_inputs(a, constraints)
        digest = inputs_digest(inputs, target)
        path = lock_path(settings, a.entrypoint_name)
        existing = _read_lock(path)
        fresh = existing is not None and existing.inputs_sha256 == digest and not upgrade and not upgrade_packages
        if fresh:
            assert existing is not None
            current = existing
        elif locked:
            why = "is missing" if existing is None else "is stale (the analysis or the declared versions changed)"
            raise ResolutionError(
                f"{path.name} {why}; --locked refuses to re-lock", hint="run 'slimbuild lock' and commit the lock"
            )
        else:
            current = compile_lock(
                inputs,
                target,
                previous=existing.text if existing else None,
                upgrade=upgrade,
                upgrade_packages=upgrade_packages,
                env=env,
                allow_sdist=settings.allow_sdist,
            )
            write_lock(path, current)
        wheel_paths = fetch_wheels(current, target, cache, env=env, allow_sdist=settings.allow_sdist, verify_cached=not fresh)
        kept = _kept_by_wheels(settings, a, wheel_paths, env)
        if kept.required != a.required:  # the fetched wheels import declared distributions (SB017): lock them too
            a, fresh = kept, False
            current, wheel_paths = _relock(settings, path, lock_inputs(a, constraints), current, locked=locked, env=env)
        provides = wheel_modules(cache, wheel_paths)
        findings = verify_provides(a, current, provides)
        vulns = _audit(path, env) if audit or settings.audit else None
        outcomes.append(LockOutcome(a, path, current, not fresh, wheel_paths, findings, current.warnings, vulns))
    return tuple(outcomes)


def lock_findings(
    settings: Settings, analyses: Sequence[Analysis], record: replay.Recorder | None = None
) -> tuple[Finding, ...]:
    """SB012 when a lock is missing (warning) or stale (error); offline, reads headers only."""
    from slimbuild.locking.lockfile import inputs_digest

    target = target_of(settings)
    consulted: set[Path] = set()
    out = []
    for a in analyses:
        _declared, constraints = _declared_for(settings, a, consulted)
        path = lock_path(settings, a.entrypoint_name)
        if record is not None:
            record.file(path)
        try:
            existing = _read_lock(path)
        except ResolutionError as exc:
            out.append(Finding(Location(path.name), "SB012", exc.message.split(": ", 1)[-1]))
            continue
        if existing is None:
            out.append(
                Finding(
                    Location(path.name),
                    "SB012",
                    f"no lock for entrypoint {a.entrypoint_name}: run 'slimbuild lock'",
                    Severity.WARNING,
                )
            )
        elif existing.inputs_sha256 != inputs_digest(lock_inputs(a, constraints), target):
            out.append(
                Finding(
                    Location(path.name),
                    "SB012",
                    f"lock is stale for entrypoint {a.entrypoint_name} (required set, versions or target changed): "
                    "run 'slimbuild lock'",
                )
            )
    if record is not None:
        for f in sorted(consulted):
            record.file(f)
    return tuple(out)
