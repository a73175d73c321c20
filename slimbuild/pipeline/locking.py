"""Locking: the required set of each entrypoint, pinned with hashes for the target, and its wheels fetched."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from slimbuild.analysis.declared_conflicts import conflicting, declared_at, describe
from slimbuild.analysis.reconcile import lock_inputs, verify_provides
from slimbuild.cache import replay
from slimbuild.config import Settings
from slimbuild.errors import AnalysisError, ResolutionError, UsageError
from slimbuild.models import Analysis, Declared, Finding, Location, Severity
from slimbuild.paths import atomic_write, cache_dir
from slimbuild.pipeline import outputs
from slimbuild.pipeline.analyzing import analyze

if TYPE_CHECKING:  # the lock machinery is imported only by the commands that lock
    from slimbuild.locking.audit import Vulnerability
    from slimbuild.locking.lockfile import Lock
    from slimbuild.locking.pins import Pin
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
    index_sources: tuple[str, ...] = ()  # the indexes and find-links pip used, credentials masked (G8)


def lock_path(settings: Settings, name: str) -> Path:
    """``slimbuild.lock``, or ``slimbuild.<name>.lock`` when the project has several entrypoints (or --lock-out's)."""
    return outputs.lock_file(settings, name)


def target_of(settings: Settings) -> Target:
    """The image's platform."""
    from slimbuild.locking.target import Target

    return Target(python_version=settings.target_python, machine=settings.machine)


def _refuse_unhashable(a: Analysis, declared: Sequence[Declared]) -> None:
    """VCS, URL and editable requirements cannot be hash-locked (C8): refuse them when they may be needed."""
    required = {r.name for r in a.required} | {r.name for r in a.missing}
    for d in declared:
        if d.marker == "url" and d.name.startswith("<local project "):
            raise ResolutionError(
                f"{d.source}: {d.name[len('<local project ') : -1]} is a local project other than this one: slimbuild "
                "reads only '-e .' (this project's own declarations) and cannot hash-lock another",
                hint="build a wheel of it (pip wheel --no-deps -w DIR PATH), point PIP_FIND_LINKS at DIR and declare it by name",
            )
        if d.marker == "url" and (d.name.startswith("<") or d.name in required):
            what = d.name.strip("<>")
            raise ResolutionError(
                f"{d.source}: {what} is a VCS, URL or editable requirement: slimbuild cannot hash-lock it",
                hint="build a wheel of it (pip wheel --no-deps -w DIR ...), point PIP_FIND_LINKS at DIR and declare it by name",
            )


def _refuse_conflicts(a: Analysis) -> None:
    """Declarations of one distribution that admit no version together (C22): exit 4 naming each ``file:line``."""
    found = conflicting(a.declared, a.constraints, (r.name for r in a.required))
    if found is None:
        return
    name, decls = found
    several = len({d.source for d in decls}) > 1
    raise ResolutionError(
        f"{'the declarations of ' + name + ' conflict' if several else name + ' admits no version'}: "
        f"{describe(decls)}; no version satisfies {'them all' if several else 'it'}",
        hint="make them agree (declare each distribution in one place)",
    )


def hash_pins(a: Analysis) -> tuple[Declared, ...]:
    """The declarations of required distributions that carry the user's ``--hash`` pins (C20)."""
    required = {r.name for r in a.required}
    return tuple(d for d in a.declared if d.hashes and d.name in required)


def _compile(a: Analysis, inputs: Sequence[str], target: Target, **kwargs: Any) -> Lock:
    """compile_lock with the entrypoint's index options and hash pins; a failure names the declarations involved."""
    from slimbuild.locking.lockfile import compile_lock

    try:
        return compile_lock(inputs, target, index_options=a.index_options, hash_pins=hash_pins(a), **kwargs)
    except ResolutionError as exc:
        resolving = exc.message.startswith(("pip-compile could not resolve", "no wheel of"))
        where = declared_at(exc.message, a.declared, a.constraints) if resolving else ""
        if not where or type(exc) is not ResolutionError:
            raise
        raise ResolutionError(f"{exc.message} [declared: {where}]", hint=exc.hint) from None


def _refuse_unmapped(a: Analysis) -> None:
    """An import off the image's path (SB023) or that maps to no distribution: never locked."""
    off_path = [f for f in a.findings if f.code == "SB023" and f.severity is Severity.ERROR]
    if off_path:  # the image would start and fail with ModuleNotFoundError: never built (A50)
        f = off_path[0]
        more = f" (and {len(off_path) - 1} more)" if len(off_path) > 1 else ""
        what, _, fix = f.message.partition("; to put ")
        raise AnalysisError(f"{f.location}: {what}{more}", hint=f"to put {fix}" if fix else "")
    blocking = [s for s in a.unresolved if not s.optional]
    if blocking:
        s = blocking[0]
        raise ResolutionError(
            f"{s.location}: cannot map import '{s.module}' to a distribution"
            + (f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""),
            hint=f'add it to [tool.slimbuild.mapping] (e.g. {s.module.split(".")[0]} = "<distribution>") and declare it',
        )


def _refuse_missing(a: Analysis, why: str = "") -> None:
    """Undeclared distributions that no declared one brings (SB001): never locked. ``why``: the graph was not read."""
    if a.missing:
        names = ", ".join(r.name for r in a.missing)
        raise ResolutionError(
            f"entrypoint {a.entrypoint_name}: undeclared distributions: {names}" + (f" ({why})" if why else ""),
            hint="declare them in requirements.txt or [project.dependencies] ('slimbuild check' shows where they are imported)",
        )


@dataclass(frozen=True)
class _FirstResolution:
    """The declared set resolved to read its ``# via`` graph, with the pins it was resolved under."""

    lock: Lock
    pins: tuple[Pin, ...]


# long: the graph known, the inputs and pins of the declared set, its resolution and what a failure of it means
def _through_declared(
    settings: Settings, a: Analysis, sources: PinSources | None, request: _Request, env: Mapping[str, str]
) -> tuple[Analysis, _FirstResolution | None]:
    """``a`` with each SB001 that a resolution of the declared set pins through a declared distribution as SB020,
    when neither the environment nor the lock shows that graph (a first lock); and that resolution, to reuse.

    Offline, or when the declared set does not resolve, the SB001s stay errors and the message says why."""
    from slimbuild.locking.pins import choose_pins
    from slimbuild.locking.through import brought, declared_inputs, graph_unknown
    from slimbuild.pipeline.analyzing import environment_index

    if request.locked or not a.missing:
        return a, None
    existing = _read_lock(lock_path(settings, a.entrypoint_name))
    index = environment_index(settings, env)
    known = {*(index.requires if index is not None else ()), *((d.name for d in existing.dists) if existing is not None else ())}
    inputs = declared_inputs(a, a.constraints)
    if not inputs or not graph_unknown(a, known):
        return a, None
    _refuse_conflicts(a)
    pins, _ = choose_pins(inputs, sources.for_declared(a.declared) if sources is not None else ())
    used = _effective(pins, request.ignored)
    try:
        first = _compile(
            a, inputs, target_of(settings), previous=existing.text if existing else None, upgrade=request.upgrade,
            upgrade_packages=request.upgrade_packages, env=env, allow_sdist=settings.allow_sdist, pins=used,
            pins_ignored=request.ignored,
        )
    except ResolutionError as exc:
        _refuse_missing(a, f"the declared distributions did not resolve, so nothing shows what they bring: {exc.message}")
        raise
    return brought(a, first), _FirstResolution(first, used)


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
    settings: Settings,
    a: Analysis,
    path: Path,
    inputs: Sequence[str],
    current: Lock,
    request: _Request,
    pins: Sequence[Pin],
    env: Mapping[str, str],
) -> tuple[Lock, tuple[Path, ...]]:
    """Lock ``inputs`` again (from ``current``'s pins) and fetch the wheels, once third-party evidence kept more."""
    from slimbuild.locking.lockfile import write_lock
    from slimbuild.locking.wheels import fetch_wheels

    if request.locked:
        raise ResolutionError(
            f"{path.name} is stale (its wheels import declared distributions it lacks); --locked refuses to re-lock",
            hint="run 'slimbuild lock' and commit the lock",
        )
    target = target_of(settings)
    new = _compile(
        a, inputs, target, previous=current.text, env=env, allow_sdist=settings.allow_sdist,
        pins=_effective(pins, request.ignored), pins_ignored=request.ignored,
    )
    write_lock(path, new)
    wheels = fetch_wheels(
        new, target, cache_dir(env), env=env, allow_sdist=settings.allow_sdist, index_options=a.index_options
    )
    return new, wheels


@dataclass(frozen=True)
class PinSources:
    """Where the versions the user ran are read, in the order they are consulted (pins.py's docstring).

    ``sources`` are the project's (the environment, then other tools' lock files); an entrypoint's fully pinned
    requirements files come last (:meth:`for_declared`), since each entrypoint has its own declarations.
    """

    sources: tuple[Mapping[str, Pin], ...]
    environment: Mapping[str, Pin]  # the environment's own pins (SB014 compares the lock with them)

    def for_declared(self, declared: Sequence[Declared]) -> tuple[Mapping[str, Pin], ...]:
        """The sources for one entrypoint: the project's, then its fully pinned requirements files."""
        from slimbuild.locking.pins import pinned_requirements

        return (*self.sources, pinned_requirements(declared))


def _environment_label(python: str, root: Path) -> str:
    """``.venv``, the virtualenv's directory name, or ``--python PATH``: what the lock header names."""
    exe = Path(python)
    venv = exe.parent.parent
    if exe.parent.name == "bin" and (venv / "pyvenv.cfg").exists():
        try:
            return venv.absolute().relative_to(root.absolute()).as_posix()
        except ValueError:
            return f"virtualenv {venv.name}"
    return f"--python {python}"


def _environment_pins(settings: Settings, env: Mapping[str, str]) -> Mapping[str, Pin]:
    """The environment's installed versions as pins, cached by its state like the analysis's module index."""
    from slimbuild.locking.installed import probe_versions
    from slimbuild.locking.pins import environment_pins

    python = replay.environment_python(settings.python, settings.root, env)
    if not python or not Path(python).exists():
        return {}  # no environment (the analysis already refused a --python that does not exist)
    cache = cache_dir(env) / "environments" / f"{replay.environment_key(python)}.versions.json"
    try:
        versions = json.loads(cache.read_text())
        if not isinstance(versions, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError):
        versions = probe_versions(python)
        try:
            atomic_write(cache, json.dumps(versions, sort_keys=True).encode(), durable=False)
        except OSError:
            pass
    return environment_pins(versions, _environment_label(python, settings.root))


def _read_pin_file(path: Path) -> bytes | None:
    from slimbuild.locking.pins import MAX_PIN_FILE_BYTES

    try:
        with path.open("rb") as fh:
            return fh.read(MAX_PIN_FILE_BYTES + 1)  # the parser refuses more
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ResolutionError(
            f"{path.name}: cannot read ({exc.strerror or exc})", hint="fix its permissions, or delete it"
        ) from None


def pin_sources(settings: Settings, env: Mapping[str, str], record: replay.Recorder | None = None) -> PinSources:
    """The environment, then the other tools' lock files in the project's root."""
    from slimbuild.locking.pins import LOCK_FILES, parse_pin_file

    environment = _environment_pins(settings, env)
    sources: list[Mapping[str, Pin]] = [environment]
    for name, _parser in LOCK_FILES:
        path = settings.root / name
        if record is not None:
            record.file(path)
        data = _read_pin_file(path)
        if data is not None:
            sources.append(parse_pin_file(name, data))
    return PinSources(tuple(sources), environment)


def _effective(pins: Sequence[Pin], ignored: Sequence[str]) -> tuple[Pin, ...]:
    """The pins a lock was resolved under, given the ones its header says were ignored."""
    from slimbuild.locking.lockfile import ALL_PINS

    return () if ALL_PINS in ignored else tuple(p for p in pins if p.name not in set(ignored))


def environment_drift(path: Path, lock: Lock, environment: Mapping[str, Pin]) -> tuple[Finding, ...]:
    """SB014: a locked distribution installed in the environment at another version (both versions named)."""
    out = []
    for d in lock.dists:
        pin = environment.get(d.name)
        if pin is not None and pin.version != d.version:
            where = pin.source.split(" (")[0]
            out.append(
                Finding(
                    Location(path.name, d.line),
                    "SB014",
                    f"{d.name}: {where} has {pin.version}, {path.name} pins {d.version}: the image will not run "
                    f"what you ran (install {d.name}=={d.version} there, or re-lock: 'slimbuild lock')",
                    Severity.WARNING,
                )
            )
    return tuple(out)


@dataclass(frozen=True)
class _Request:
    """What the user asked of ``lock``: re-resolve (all, or some names), or refuse to re-lock."""

    upgrade: bool
    upgrade_packages: tuple[str, ...]
    locked: bool

    @property
    def ignored(self) -> tuple[str, ...]:
        """The pins this run leaves out (recorded in the lock's header)."""
        from slimbuild.locking.lockfile import ALL_PINS

        return (ALL_PINS,) if self.upgrade else tuple(sorted({canonicalize_name(n) for n in self.upgrade_packages}))


# long: the freshness test, --lock-out's seed, --locked, and the first resolution reused or a new one
def _current_lock(
    settings: Settings, a: Analysis, inputs: Sequence[str], pins: Sequence[Pin], request: _Request, env: Mapping[str, str],
    first: _FirstResolution | None = None,
) -> tuple[Lock, bool]:
    """The entrypoint's lock, re-locked unless it is fresh (and refused under --locked); whether it is fresh.

    ``first``: the declared set's resolution, the lock when it pins every input under the same pins."""
    from slimbuild.locking.hashpins import user_hashes
    from slimbuild.locking.lockfile import inputs_digest, write_lock
    from slimbuild.locking.through import restamped, satisfies

    target = target_of(settings)
    path = lock_path(settings, a.entrypoint_name)
    existing = _read_lock(path)
    seeded = existing is None and bool(settings.lock_out)  # --lock-out starts from the project's lock
    if seeded:
        existing = _read_lock(lock_path(replace(settings, lock_out=""), a.entrypoint_name))
    if (
        existing is not None
        and existing.inputs_sha256
        == inputs_digest(inputs, target, _effective(pins, existing.pins_ignored), user_hashes(hash_pins(a)))
        and not request.upgrade
        and not request.upgrade_packages
    ):
        if seeded:
            write_lock(path, existing)  # the fresh project lock, where --lock-out asked for it
        return existing, True
    if request.locked:
        why = "is missing" if existing is None else "is stale (the analysis, the declared versions or the pins changed)"
        raise ResolutionError(f"{path.name} {why}; --locked refuses to re-lock", hint="run 'slimbuild lock' and commit the lock")
    _refuse_conflicts(a)
    used = _effective(pins, request.ignored)
    if first is not None and set(first.pins) == set(used) and satisfies(first.lock, inputs):
        current = restamped(first.lock, inputs, target, used, request.ignored, user_hashes(hash_pins(a)))
        write_lock(path, current)
        return current, False
    current = _compile(
        a,
        inputs,
        target,
        previous=existing.text if existing else None,
        upgrade=request.upgrade,
        upgrade_packages=request.upgrade_packages,
        env=env,
        allow_sdist=settings.allow_sdist,
        pins=_effective(pins, request.ignored),
        pins_ignored=request.ignored,
    )
    write_lock(path, current)
    return current, False


def lock(
    settings: Settings,
    requested: str = "",
    *,
    upgrade: bool = False,
    upgrade_packages: Sequence[str] = (),
    locked: bool = False,
    audit: bool = False,
    env: Mapping[str, str] | None = None,
    before_wheels: Callable[[], None] | None = None,
) -> tuple[LockOutcome, ...]:
    """Analyse, then lock each entrypoint's required set for the target (pinned to the versions the user ran,
    unless --upgrade) and fetch its wheels. ``before_wheels`` runs before each fetch (``build`` pins and checks
    the base there: once the lock holds, before the wheelhouse)."""
    from slimbuild.locking.pins import choose_pins
    from slimbuild.locking.pip import extra_index_findings, pip_index
    from slimbuild.locking.wheels import fetch_wheels, wheel_modules

    if locked and (upgrade or upgrade_packages):
        raise UsageError("--locked refuses to re-lock and --upgrade asks to", hint="pass one of them")
    env = os.environ if env is None else env
    outputs.check_writable(settings, cache=cache_dir(env), lock=not locked, manifest=False)  # before any work
    request = _Request(upgrade, tuple(upgrade_packages), locked)
    analyses = analyze(settings, requested, env, single=True)  # one lock per entrypoint: several found is exit 2
    target = target_of(settings)
    cache = cache_dir(env)
    sources = None if upgrade else pin_sources(settings, env)
    outcomes = []
    for a in analyses:
        declared, constraints = a.declared, a.constraints
        _refuse_unhashable(a, declared)
        _refuse_unmapped(a)
        a, first = _through_declared(settings, a, sources, request, env)  # SB001s a declared one brings: SB020
        _refuse_missing(a)
        inputs = lock_inputs(a, constraints)
        pins, pin_findings = choose_pins(inputs, sources.for_declared(declared) if sources is not None else ())
        current, fresh = _current_lock(settings, a, inputs, pins, request, env, first)
        path = lock_path(settings, a.entrypoint_name)
        if before_wheels is not None:
            before_wheels()
        wheel_paths = fetch_wheels(
            current, target, cache, env=env, allow_sdist=settings.allow_sdist, verify_cached=not fresh,
            index_options=a.index_options,
        )
        kept = _kept_by_wheels(settings, a, wheel_paths, env)
        if kept.required != a.required:  # the fetched wheels import declared distributions (SB017): lock them too
            a, fresh = kept, False
            inputs = lock_inputs(a, constraints)
            pins, more = choose_pins(inputs, sources.for_declared(declared) if sources is not None else ())
            pin_findings = tuple(dict.fromkeys((*pin_findings, *more)))
            current, wheel_paths = _relock(settings, a, path, inputs, current, request, pins, env)
        provides = wheel_modules(cache, wheel_paths)
        brought = tuple(f for f in a.findings if f.code == "SB020") if first is not None else ()  # shown once, here
        findings = pin_findings + extra_index_findings(a.index_options) + verify_provides(a, current, provides) + brought
        vulns = _audit(path, env) if audit or settings.audit else None
        used = current.sources or pip_index(env, a.index_options).sources
        outcomes.append(LockOutcome(a, path, current, not fresh, wheel_paths, findings, current.warnings, vulns, used))
    return tuple(outcomes)


def _lock_state(a: Analysis, path: Path, existing: Lock | None, digest: str) -> Finding | None:
    """SB012 for a missing (warning) or stale (error) lock."""
    if existing is None:
        return Finding(
            Location(path.name), "SB012", f"no lock for entrypoint {a.entrypoint_name}: run 'slimbuild lock'", Severity.WARNING
        )
    if existing.inputs_sha256 != digest:
        return Finding(
            Location(path.name),
            "SB012",
            f"lock is stale for entrypoint {a.entrypoint_name} (required set, versions, pins or target changed): "
            "run 'slimbuild lock'",
        )
    return None


def lock_findings(
    settings: Settings,
    analyses: Sequence[Analysis],
    record: replay.Recorder | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[Finding, ...]:
    """SB012 when a lock is missing (warning) or stale (error), SB014 when the environment runs other versions
    than the lock, SB018 when a pin source disagrees with the declarations; offline, reads headers only.

    The declarations and constraints are the analyses' own (read once, by :func:`analyze`, which records them).
    """
    from slimbuild.locking.hashpins import user_hashes
    from slimbuild.locking.lockfile import inputs_digest
    from slimbuild.locking.pins import choose_pins
    from slimbuild.locking.pip import extra_index_findings

    env = os.environ if env is None else env
    target = target_of(settings)
    sources = pin_sources(settings, env, record)
    out: list[Finding] = []
    for a in analyses:
        path = lock_path(settings, a.entrypoint_name)
        if record is not None:
            record.file(path)
        inputs = lock_inputs(a, a.constraints)
        pins, pin_findings = choose_pins(inputs, sources.for_declared(a.declared))
        out.extend(pin_findings)
        out.extend(extra_index_findings(a.index_options))
        try:
            existing = _read_lock(path)
        except ResolutionError as exc:
            out.append(Finding(Location(path.name), "SB012", exc.message.split(": ", 1)[-1]))
            continue
        ignored = existing.pins_ignored if existing is not None else ()
        digest = inputs_digest(inputs, target, _effective(pins, ignored), user_hashes(hash_pins(a)))
        state = _lock_state(a, path, existing, digest)
        if state is not None:
            out.append(state)
        if existing is not None:
            out.extend(environment_drift(path, existing, sources.environment))
    return tuple(dict.fromkeys(out))
