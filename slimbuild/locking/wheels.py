"""Host-side wheelhouse: download the locked wheels for the target, hash-check, cache.

Cache layout is content-addressed: ``CACHE/wheels/<algo>/<hex>/<filename>``.
A file lands there only after its digest matched the lock, so a cache hit is
re-verified (cheap) and used without any network access.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import NoReturn

from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from slimbuild.errors import IntegrityError, ResolutionError
from slimbuild.locking.lockfile import Lock, LockedDist
from slimbuild.locking.pip import PipRun, index_unreachable, pip_index, run_pip_tool, unreachable
from slimbuild.locking.target import Target
from slimbuild.models import IndexOption
from slimbuild.paths import WHEEL_MODULES_FILE, atomic_write, cache_dir, file_digest

__all__ = ["default_cache_dir", "fetch_wheels", "verify_wheel", "wheel_top_level"]

_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """$SLIMBUILD_CACHE, else the user's cache dir + /slimbuild (see slimbuild.paths)."""
    return cache_dir()


def _file_digest(path: Path, algo: str) -> str:
    return f"{algo}:{file_digest(path, algo)}"


def _dist_label(path: Path) -> str:
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
        return f"{name}=={version}"
    except InvalidWheelFilename:
        pass
    try:
        sname, sversion = parse_sdist_filename(path.name)
        return f"{sname}=={sversion}"
    except InvalidSdistFilename:
        return path.name


_verified: dict[str, tuple[tuple[int, int, int, int], str]] = {}  # path -> (stat identity, sha256 hex)


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def verified_sha256(path: Path) -> str | None:
    """The sha256 that :func:`verify_wheel` computed for PATH in this process, if the file is unchanged since."""
    hit = _verified.get(str(path))
    try:
        return hit[1] if hit is not None and hit[0] == _identity(path) else None
    except OSError:
        return None


def verify_wheel(path: Path, expected: Collection[str]) -> None:
    """Check PATH's digest is one of EXPECTED (``algo:hex``); else delete it, IntegrityError."""
    path = Path(path)
    algos = sorted({h.partition(":")[0] for h in expected} | {"sha256"})
    identity = _identity(path)  # before the read: a later change shows in the stat
    actual = {algo: _file_digest(path, algo) for algo in algos}
    if any(value in expected for value in actual.values()):
        _verified[str(path)] = (identity, actual["sha256"].partition(":")[2])
        return
    path.unlink(missing_ok=True)  # a file that failed its hash must never be used
    shown = ", ".join(sorted(expected)) or "(none)"
    raise IntegrityError(
        f"hash mismatch for {_dist_label(path)} ({path.name}): expected {shown}, "
        f"got {actual.get('sha256', next(iter(actual.values())))}",
        hint="the index served different bytes than were locked: check the index or "
        "proxy; relock only if the release was legitimately re-uploaded",
    )


def _safe_members(zf: zipfile.ZipFile, path: Path) -> list[str]:
    names = zf.namelist()
    for name in names:
        posix = PurePosixPath(name.replace("\\", "/"))
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in posix.parts:
            raise IntegrityError(
                f"unsafe member {name!r} in {path.name} (absolute path or '..')",
                hint="the wheel is malicious or corrupt: remove it from the index/wheelhouse",
            )
    return names


def _open_wheel(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise IntegrityError(
            f"corrupt wheel {path.name}: {exc}",
            hint="delete it from the cache/wheelhouse and fetch it again",
        ) from exc


def wheel_top_level(path: Path) -> tuple[str, ...]:
    """Import names a wheel provides: top_level.txt, else derived from its file list."""
    path = Path(path)
    with _open_wheel(path) as zf:
        names = _safe_members(zf, path)
        top = next((n for n in names if re.fullmatch(r"[^/]+\.dist-info/top_level\.txt", n)), None)
        if top is not None:
            try:
                text = zf.read(top).decode("utf-8")
            except (zipfile.BadZipFile, UnicodeDecodeError, OSError) as exc:
                raise IntegrityError(
                    f"corrupt wheel {path.name}: unreadable {top}: {exc}",
                    hint="delete it and fetch it again",
                ) from exc
            found = {line.strip().replace("/", ".") for line in text.splitlines()}
            return tuple(sorted(n for n in found if n))
    found_names: set[str] = set()
    for name in names:
        parts = PurePosixPath(name).parts
        if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] == "__pycache__":
            continue
        if len(parts) > 1:
            if parts[0].isidentifier():
                found_names.add(parts[0])
            continue
        stem = parts[0].split(".", 1)[0]
        if parts[0].endswith((".py", ".so", ".pyd")) and stem.isidentifier():
            found_names.add(stem)
    return tuple(sorted(found_names))


def wheel_metadata(path: Path) -> bytes | None:
    """The bytes of a wheel's ``.dist-info/METADATA`` (None for an sdist, or a wheel without one)."""
    path = Path(path)
    if not path.name.endswith(".whl"):
        return None
    with _open_wheel(path) as zf:
        meta = next((n for n in _safe_members(zf, path) if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)), None)
        if meta is None:
            return None
        try:
            return zf.read(meta)
        except (zipfile.BadZipFile, OSError) as exc:
            raise IntegrityError(
                f"corrupt wheel {path.name}: unreadable {meta}: {exc}", hint="delete it and fetch it again"
            ) from exc


# --------------------------------------------------------------------------- fetching


def _cache_path(cache_dir: Path, digest: str) -> Path:
    algo, _, hexdigest = digest.partition(":")
    return cache_dir / "wheels" / algo / hexdigest


def stored_wheels(dist: LockedDist, cache_dir: Path) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """The content-addressed folders a file of ``dist`` may be stored in (one per locked hash), and the wheels there.

    Read-only and unverified (``fetch_wheels`` verified them when it stored them): for reading their sources.
    """
    folders = tuple(_cache_path(cache_dir, d) for d in sorted(dist.hashes))
    found: list[Path] = []
    for folder in folders:
        try:
            found.extend(p for p in folder.iterdir() if p.name.endswith(".whl") and not p.name.startswith("."))
        except OSError:
            continue
    return folders, tuple(sorted(found, key=lambda p: (p.name, str(p))))


def _tag_rank(filename: str, ranks: Mapping[Tag, int]) -> int | None:
    try:
        _, _, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    found = [ranks[t] for t in tags if t in ranks]
    return min(found) if found else None


def _is_sdist_of(filename: str, dist: LockedDist) -> bool:
    try:
        name, _ = parse_sdist_filename(filename)
    except InvalidSdistFilename:
        return False
    return canonicalize_name(name) == dist.name


def _cached(
    dist: LockedDist, cache_dir: Path, ranks: Mapping[Tag, int], sdist_ok: bool, verify: bool = True
) -> Path | None:
    best: tuple[int, str, Path] | None = None
    for digest in dist.hashes:
        folder = _cache_path(cache_dir, digest)
        if not folder.is_dir():
            continue
        for candidate in folder.iterdir():
            if candidate.name.startswith("."):
                continue
            rank = _tag_rank(candidate.name, ranks)
            if rank is None and sdist_ok and _is_sdist_of(candidate.name, dist):
                rank = len(ranks)  # any wheel beats the sdist
            if rank is not None and (best is None or (rank, candidate.name) < best[:2]):
                best = (rank, candidate.name, candidate)
    if best is None:
        return None
    if verify:
        verify_wheel(best[2], dist.hashes)  # the cache may have been tampered with
    return best[2]


def installed_file(dist: LockedDist, cache_dir: Path, target: Target) -> Path | None:
    """The wheelhouse file pip installs for ``dist`` on ``target`` (the best-ranked cached one), or None if none is
    cached. Unverified: its folder is its sha256 (``fetch_wheels`` verified it when it stored it)."""
    ranks = {tag: i for i, tag in enumerate(target.supported_tags())}
    return _cached(dist, cache_dir, ranks, sdist_ok=True, verify=False)


def _store(path: Path, cache_dir: Path, digest: str) -> Path:
    folder = _cache_path(cache_dir, digest)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / path.name
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".incoming-")
    os.close(fd)
    try:
        shutil.copyfile(path, tmp)
        os.replace(tmp, final)  # atomic: a reader never sees half a wheel
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final


def _requirements_file(dists: Sequence[LockedDist]) -> str:
    # Hashes make pip prefer the locked file among several for the release.
    return "".join(f"{d.name}=={d.version} " + " ".join(f"--hash={h}" for h in d.hashes) + "\n" for d in dists)


_HASH_FAIL_RE = re.compile(
    r"^\s*(?P<req>\S+)==(?P<ver>\S+) from \S+.*?\n\s*Expected (?P<algo>\w+) (?P<exp>[0-9a-f]+)"
    r".*?\n\s*Got\s+(?P<got>[0-9a-f]+)",
    re.MULTILINE | re.DOTALL,
)


def _download(
    dists: Sequence[LockedDist],
    target: Target,
    work: Path,
    env: Mapping[str, str] | None,
    *,
    sdist: bool,
) -> None:
    reqs = work / ("sdists.txt" if sdist else "wheels.txt")
    reqs.write_text(_requirements_file(dists), encoding="utf-8")
    args = ["download", "--no-deps", "--dest", str(work / "dl"), "-r", reqs.name]
    if sdist:
        # Sdists are platform independent; --platform would require --only-binary.
        for dist in dists:
            args += ["--no-binary", dist.name]
    else:
        args += ["--only-binary", ":all:"]
        for tag in target.platform_tags():
            args += ["--platform", tag]
        args += [
            "--python-version",
            target.python_version,
            "--implementation",
            "cp",
            "--abi",
            target.abi,
        ]
    run = run_pip_tool("pip", args, target=None, env=env, cwd=work)
    if run.returncode != 0:
        _raise_download_failure(run, {d.name: d for d in dists}, target, sdist)


def _raise_download_failure(run: PipRun, by_name: Mapping[str, LockedDist], target: Target, sdist: bool) -> NoReturn:
    """The error a failed ``pip download`` stands for: hash mismatch, corrupt wheel, index down, no file, other."""
    mismatch = _HASH_FAIL_RE.search(run.output)
    if mismatch or "DO NOT MATCH THE HASHES" in run.output:
        name = canonicalize_name(mismatch["req"]) if mismatch else "?"
        label = f"{name}=={mismatch['ver']}" if mismatch else "a locked distribution"
        expected = ", ".join(by_name[name].hashes) if name in by_name else "(locked hashes)"
        got = f"{mismatch['algo']}:{mismatch['got']}" if mismatch else "(see pip output)"
        raise IntegrityError(
            f"hash mismatch for {label}: expected {expected}, got {got}",
            hint="the index served different bytes than were locked: check the index or "
            "proxy; relock only if the release was legitimately re-uploaded",
        )
    corrupt = re.search(r"Wheel '([^']+)' located at (\S+) is invalid", run.output)
    if corrupt:
        raise IntegrityError(
            f"corrupt wheel for {canonicalize_name(corrupt[1])}: {PurePosixPath(corrupt[2]).name} is not a valid wheel",
            hint="remove it from the index/wheelhouse and publish a good build",
        )
    down = unreachable(run.fetch_failures)
    if down:
        raise index_unreachable(down)
    missing = re.search(r"No matching distribution found for (\S+)", run.output)
    if missing:
        name = canonicalize_name(re.split(r"[=<>!~ ]", missing[1], maxsplit=1)[0])
        found = by_name.get(name)
        label = f"{found.name}=={found.version}" if found else missing[1]
        if sdist:
            raise ResolutionError(
                f"no sdist of {label} on the configured index",
                hint="check the index, or relock",
            )
        raise ResolutionError(
            f"no wheel of {label} for {target.describe()}; sdists execute code at build "
            "time (build deps are not hash-checked, pip#13984)",
            hint=f'use a version with a wheel for the target, or opt in with allow-sdist = ["{name}"] in [tool.slimbuild] '
            "(still hash-checked)",
        )
    tail = " | ".join(line.strip() for line in run.output.splitlines() if line.strip())[-1500:]
    raise ResolutionError(
        f"pip download failed for {', '.join(sorted(by_name))}: {tail}",
        hint="rerun with --debug for pip's full output",
    )


def _collect(dists: Sequence[LockedDist], target: Target, dl: Path, cache_dir: Path, sdist: bool) -> dict[str, Path]:
    ranks = {tag: i for i, tag in enumerate(target.supported_tags())}
    wanted = {d.name: d for d in dists}
    got: dict[str, Path] = {}
    for path in sorted(dl.iterdir()) if dl.is_dir() else ():
        try:
            if sdist:
                raw_name, raw_version = parse_sdist_filename(path.name)
            else:
                raw_name, raw_version, _, _ = parse_wheel_filename(path.name)
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
        dist = wanted.get(canonicalize_name(raw_name))
        if dist is None or str(raw_version) != dist.version:
            continue
        if not sdist and _tag_rank(path.name, ranks) is None:
            raise IntegrityError(
                f"pip chose {path.name} for {dist.name}=={dist.version}, which does not run on {target.describe()}",
                hint="report this: slimbuild's platform tags and pip's disagree",
            )
        verify_wheel(path, dist.hashes)  # C3: deletes the file and raises on mismatch
        if not sdist:
            _open_wheel(path).close()  # C4: a truncated download is not a wheel
        digest = next(h for h in dist.hashes if _file_digest(path, h.partition(":")[0]) == h)
        got[dist.name] = _store(path, cache_dir, digest)
    for name, dist in wanted.items():
        if name not in got:
            raise ResolutionError(
                f"pip downloaded no file for {dist.name}=={dist.version} ({target.describe()})",
                hint="check the index and the lock",
            )
    return got


def fetch_wheels(
    lock: Lock,
    target: Target,
    cache_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    allow_sdist: Collection[str] = (),
    verify_cached: bool = True,
    index_options: Sequence[IndexOption] = (),
) -> tuple[Path, ...]:
    """Cached, hash-verified wheel (or opted-in sdist) paths for every locked dist, sorted.

    ``index_options`` (the requirements files' ``--index-url``...) apply on top of ``env``'s pip configuration.

    ``verify_cached=False`` trusts the content-addressed cache (each file was hashed when it
    was stored under its own sha256): for the warm path of ``slimbuild lock`` only; a build
    verifies again.
    """
    cache_dir = Path(cache_dir)
    ranks = {tag: i for i, tag in enumerate(target.supported_tags())}
    sdist_names = {canonicalize_name(n) for n in allow_sdist}
    found: dict[str, Path] = {}
    missing: list[LockedDist] = []
    for dist in lock.dists:
        hit = _cached(dist, cache_dir, ranks, dist.name in sdist_names, verify_cached)
        if hit is None:
            missing.append(dist)
        else:
            found[dist.name] = hit
    if missing:
        if index_options:
            env = pip_index(env, index_options).env
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="slimbuild-fetch-", dir=cache_dir) as tmp:
            work = Path(tmp)
            as_wheels = [d for d in missing if d.name not in sdist_names]
            as_sdists = [d for d in missing if d.name in sdist_names]
            if as_wheels:
                # One pip run for all: pip stops at the first failure and names it.
                _download(as_wheels, target, work, env, sdist=False)
                found.update(_collect(as_wheels, target, work / "dl", cache_dir, sdist=False))
            if as_sdists:
                # Opted in: try a wheel first, one by one, and fall back to the sdist.
                for dist in as_sdists:
                    sub = work / f"w-{dist.name}"
                    sub.mkdir()
                    try:
                        _download([dist], target, sub, env, sdist=False)
                        found.update(_collect([dist], target, sub / "dl", cache_dir, False))
                    except ResolutionError:
                        _download([dist], target, sub, env, sdist=True)
                        found.update(_collect([dist], target, sub / "dl", cache_dir, True))
    return tuple(sorted(found.values(), key=lambda p: (p.name, str(p))))


def wheel_modules(cache: Path, wheel_paths: Sequence[Path]) -> dict[str, tuple[str, ...]]:
    """Distribution -> import names its wheel provides, remembered per wheel file in the cache."""
    index_file = cache / WHEEL_MODULES_FILE
    try:
        known: dict[str, list[str]] = json.loads(index_file.read_text())
    except (OSError, ValueError):
        known = {}
    provides: dict[str, tuple[str, ...]] = {}
    changed = False
    for w in wheel_paths:
        if not w.name.endswith(".whl"):
            continue
        if w.name not in known:
            known[w.name] = sorted(wheel_top_level(w))
            changed = True
        provides[canonicalize_name(w.name.split("-")[0])] = tuple(known[w.name])
    if changed:
        try:
            atomic_write(index_file, json.dumps(known, sort_keys=True, indent=1).encode(), durable=False)
        except OSError:
            pass  # a read-only cache only costs speed
    return provides
