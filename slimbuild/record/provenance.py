"""Where an image comes from: the git state, SOURCE_DATE_EPOCH, and the manifest recorded for a build.

``git_state`` is the one edge here (it runs git); everything else builds values from values.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbuild import __version__
from slimbuild.image.context import ContextFile, context_digest
from slimbuild.image.plan import APP_PREFIX, DEFAULT_SOURCE_DATE_EPOCH, parse_source_date_epoch
from slimbuild.locking.lockfile import Lock
from slimbuild.locking.target import Target
from slimbuild.models import Analysis
from slimbuild.record import data, manifest
from slimbuild.redact import mask_url, without_credentials

if TYPE_CHECKING:
    from slimbuild.locking.audit import Vulnerability


def _git(root: Path, *args: str, strip: bool = True) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() if strip else proc.stdout


def git_state(root: Path) -> dict[str, object] | None:
    """Commit, dirty flag, commit time and a credential-free remote URL; None outside a repository."""
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return None
    status = _git(root, "status", "--porcelain", "--untracked-files=no") or ""
    remote = _git(root, "remote", "get-url", "origin") or ""
    remote = without_credentials(remote) if remote.startswith(("https://", "http://")) else ""
    return {
        "commit": commit,
        "dirty": bool(status),
        "time": int(_git(root, "log", "-1", "--format=%ct") or 0),
        "remote": remote,
    }


def not_at_commit(status_z: str) -> tuple[str, ...]:
    """The repository paths ``git status --porcelain=v1 -z`` names (untracked, ignored, changed; a directory ends
    with ``/``); a rename's or copy's source is left out (its new path is what the work tree holds)."""
    fields = status_z.split("\0")
    out: list[str] = []
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        out.append(entry[3:])
        if entry[0] in "RC" or entry[1] in "RC":
            i += 1  # the field after a rename or copy is where it came from
    return tuple(out)


def dirty_paths(paths: Iterable[str], prefix: str, listed: Iterable[str]) -> tuple[str, ...]:
    """The project-relative ``paths`` (below the repository path ``prefix``) that a listed path or directory covers."""
    covers = [p.rstrip("/") for p in listed if p.rstrip("/")]
    found = []
    for rel in paths:
        full = prefix + rel
        if any(full == c or full.startswith(c + "/") for c in covers):
            found.append(rel)
    return tuple(sorted(set(found)))


def with_context(git: Mapping[str, object] | None, root: Path, paths: Iterable[str]) -> Mapping[str, object] | None:
    """``git`` made dirty when a file that goes into the image is not at the commit: untracked, ignored but
    included, or changed (a change to any tracked file already makes it dirty). One ``git status`` call."""
    if git is None or git.get("dirty"):
        return git
    prefix = _git(root, "rev-parse", "--show-prefix")
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=normal", "--ignored=matching", strip=False)
    if prefix is None or status is None:
        return {**git, "dirty": True}  # git could not say: never claim the commit holds what the image holds
    return {**git, "dirty": bool(dirty_paths(paths, prefix, not_at_commit(status)))}


def source_date_epoch(env: Mapping[str, str], git: Mapping[str, object] | None) -> int:
    """From $SOURCE_DATE_EPOCH, else the last commit's time, else a fixed epoch."""
    if env.get("SOURCE_DATE_EPOCH", "") != "":
        return parse_source_date_epoch(env["SOURCE_DATE_EPOCH"], "environment")
    if git and git.get("time"):
        return int(str(git["time"]))
    return DEFAULT_SOURCE_DATE_EPOCH


def file_records(files: Iterable[ContextFile], sizes: Mapping[str, int]) -> list[dict[str, object]]:
    """One record per app file of the context: path below the app dir, sha256, size (``sizes`` for sources), kind."""
    out = []
    for f in files:
        if not f.arcname.startswith(APP_PREFIX):
            continue
        rel = f.arcname[len(APP_PREFIX) :]
        size = len(f.data) if f.data is not None else sizes.get(f.arcname, 0)
        kind = "notebook-script" if f.data is not None else ("source" if rel.endswith(".py") else "data")
        out.append({"path": rel, "sha256": context_digest(f), "size": size, "kind": kind})
    return out


def _app_paths(files: Iterable[ContextFile]) -> list[str]:
    """The project-relative paths of the context's app files (what the image holds of the project)."""
    return [f.arcname[len(APP_PREFIX) :] for f in files if f.arcname.startswith(APP_PREFIX)]


def distributions(lock: Lock, analysis: Analysis) -> list[dict[str, object]]:
    """The locked distributions, each with the modules of the analysis that import it."""
    return [
        {
            "name": d.name,
            "version": d.version,
            "hashes": list(d.hashes),
            "required_by": sorted({s.module for r in analysis.required if r.name == d.name for s in r.imports}),
        }
        for d in lock.dists
    ]


def build_manifest(
    *,
    analysis: Analysis,
    lock: Lock,
    audit: Sequence[Vulnerability] | None,
    target: Target,
    base_reference: str,
    base_local_only: bool,
    files: Iterable[ContextFile],
    sizes: Mapping[str, int],
    template: str,
    dockerfile: str,
    argv: Sequence[str],
    source_date_epoch: int,
    git: Mapping[str, object] | None,
    excluded: Sequence[str],
    pythonpath: Sequence[str] = (),
    inputs: Sequence[Mapping[str, Any]] = (),
    sbom: str = "",
    system_packages: Sequence[Mapping[str, str]] = (),
    traced_data: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The manifest of a build before its image exists (embedded in the image, completed after tagging).

    ``inputs`` are the data records of record/data.py's ``input_records``; ``traced_data`` its ``traced_records``
    (None without a trace), each marked ``included`` here when an app file of ``files`` is that path.
    """
    files = tuple(files)  # read twice: the file records, and what the image holds of the traced data
    return manifest.make_manifest(
        slimbuild_version=__version__,
        target={"python": target.python_version, "platform": target.describe()},
        base_image={
            "reference": base_reference,
            "digest_or_id": base_reference.split("@", 1)[-1],
            "local_only": base_local_only,
        },
        distributions=distributions(lock, analysis),
        declared_left_out=sorted(d.name for d in analysis.unused),
        files=file_records(files, sizes),
        template={"name": template, "dockerfile_sha256": hashlib.sha256(dockerfile.encode()).hexdigest()},
        source_date_epoch=source_date_epoch,
        git=({"commit": git["commit"], "dirty": git["dirty"]} if git else None),
        lock_sha256=hashlib.sha256(lock.text.encode()).hexdigest(),
        # Where the distributions came from is recorded on the host only (with_index_sources): the image must not
        # depend on the user's pip configuration (the same inputs make the same image, whatever the index).
        index_sources=[],
        excluded_sensitive=list(excluded),
        entrypoint={"name": analysis.entrypoint_name, "path": analysis.entrypoint, "argv": list(argv)},
        unparsed=list(analysis.unparsed),
        unresolved_dynamic=[str(loc) for loc in analysis.dynamic_unresolved],
        pins=[{"name": p.name, "version": p.version, "source": p.source} for p in lock.pins],
        pythonpath=pythonpath,
        sbom=sbom,
        inputs=inputs,
        system_packages=system_packages,
        traced_data=None if traced_data is None else data.with_included(traced_data, _app_paths(files)),
        audit=None
        if audit is None
        else [{"name": v.name, "version": v.version, "id": v.id, "fix_versions": list(v.fix_versions)} for v in audit],
    )


def with_index_sources(final: Mapping[str, Any], sources: Sequence[str]) -> dict[str, Any]:
    """The manifest written beside the project, with the indexes and find-links the lock uses (G8), credentials masked.

    The image's own copy (and its labels) leave them out, so that an index or mirror changes no image."""
    result = {**final, "index_sources": list(dict.fromkeys(mask_url(u) for u in sources))}
    manifest.validate_manifest(result, "updated manifest")
    return result


def image_record(image_id: str, info: Mapping[str, Any], base_info: Mapping[str, Any], refs: Sequence[str]) -> dict[str, Any]:
    """The manifest's ``image``: id, layer diff ids, size, bytes over the base, and the sorted refs it was tagged with."""
    size = int(info.get("Size", 0))
    return {
        "id": image_id,
        "layer_diff_ids": [str(x) for x in (info.get("RootFS") or {}).get("Layers", [])],
        "size_bytes": size,
        "added_bytes": size - int(base_info.get("Size", 0)),
        "tags": sorted(refs),
    }


def manifest_path(root: Path, entrypoint: str, several: bool) -> Path:
    """``slimbuild.manifest.json``, or ``slimbuild.<entrypoint>.manifest.json`` when the project has several."""
    return root / ("slimbuild.manifest.json" if not several else f"slimbuild.{entrypoint}.manifest.json")
