"""What `slimbuild verify` compares (pure but for reading files it is given): the record's inputs against the
working tree, recorded data against a directory, and two layer tars member by member.

Layer tars are the uncompressed ``layer.tar`` members of ``docker save`` (their sha256 is the diff id);
:func:`extract_layers` copies the wanted ones out of a save stream into files, in bounded memory.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimbuild.image.normalize import ChunkReader

_CHUNK = 1024 * 1024
MAX_CHANGES = 20  # file differences listed per layer


@dataclass(frozen=True)
class FileChange:
    """One member that differs between two layers: how, and what each side holds ("" when absent)."""

    path: str
    change: str  # added | removed | changed
    recorded: str
    rebuilt: str

    def render(self) -> str:
        if self.change == "added":
            return f"+ {self.path} ({self.rebuilt})"
        if self.change == "removed":
            return f"- {self.path} ({self.recorded})"
        return f"~ {self.path}: {self.recorded} -> {self.rebuilt}"


@dataclass(frozen=True)
class LayerDifference:
    """A layer whose diff id differs: its position, both diff ids, and the first member differences (if read)."""

    index: int
    recorded: str
    rebuilt: str
    files: tuple[FileChange, ...] = ()
    more: int = 0  # differences beyond those listed


@dataclass(frozen=True)
class DataMismatch:
    """A recorded data file that is missing from, or differs in, the directory given to ``verify --data``."""

    path: str
    recorded: str
    found: str  # sha256, or "missing"


def input_refusal(record: Mapping[str, Any], git_now: Mapping[str, object] | None) -> str:
    """Why the working tree cannot reproduce the record ("" when it can): not a repository, another commit, dirty."""
    git = record.get("git")
    if not isinstance(git, Mapping):
        return "the record names no git commit, so its inputs cannot be checked out"
    if git.get("dirty"):
        return f"the image was built from a dirty working tree at {str(git.get('commit'))[:12]}: no commit holds its inputs"
    if git_now is None:
        return f"the project is not a git repository; the record was built at commit {str(git.get('commit'))[:12]}"
    if git_now.get("commit") != git.get("commit"):
        return f"the working tree is at {str(git_now.get('commit'))[:12]}, the record at {str(git.get('commit'))[:12]}"
    if git_now.get("dirty"):
        return f"the working tree has changes not in commit {str(git.get('commit'))[:12]}"
    return ""


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_mismatches(files: Iterable[Mapping[str, Any]], data_dir: Path) -> tuple[DataMismatch, ...]:
    """Recorded data files (kind ``data``) against ``data_dir``: those missing there or with another sha256."""
    out = []
    for record in sorted((f for f in files if f.get("kind") == "data"), key=lambda f: str(f.get("path"))):
        rel = str(record.get("path", ""))
        path = data_dir / rel
        if not path.is_file():
            out.append(DataMismatch(rel, str(record.get("sha256", "")), "missing"))
            continue
        found = _sha256_file(path)
        if found != record.get("sha256"):
            out.append(DataMismatch(rel, str(record.get("sha256", "")), found))
    return tuple(out)


def layer_differences(recorded: Sequence[str], rebuilt: Sequence[str]) -> tuple[LayerDifference, ...]:
    """The positions whose diff ids differ (a missing layer on one side counts as ``""``)."""
    width = max(len(recorded), len(rebuilt))
    pad = [*recorded, *[""] * (width - len(recorded))], [*rebuilt, *[""] * (width - len(rebuilt))]
    return tuple(LayerDifference(i, a, b) for i, (a, b) in enumerate(zip(*pad)) if a != b)


def extract_layers(chunks: Iterable[bytes], wanted: set[str], dest: Path) -> dict[str, Path]:
    """Copy the layer tars of a ``docker save`` stream whose sha256 is in ``wanted`` to ``dest/<hex>.tar``."""
    found: dict[str, Path] = {}
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=ChunkReader(chunks), mode="r|") as tar:
        for member in tar:
            if not member.isfile() or not (member.name.endswith("layer.tar") or "/sha256/" in member.name):
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            part = dest / f"part-{len(found)}.tar"
            digest = hashlib.sha256()
            with part.open("wb") as out:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            diff_id = "sha256:" + digest.hexdigest()
            if diff_id in wanted and diff_id not in found:
                found[diff_id] = part.rename(dest / f"{digest.hexdigest()}.tar")
            else:
                part.unlink()
    return found


def _describe(member: tarfile.TarInfo, sha: str) -> str:
    kind = "dir" if member.isdir() else "symlink" if member.issym() else "hardlink" if member.islnk() else "file"
    text = f"{kind} mode {member.mode:04o} uid {member.uid}:{member.gid} mtime {member.mtime}"
    if member.isfile():
        text += f" size {member.size} sha256 {sha[:12]}"
    if member.issym() or member.islnk():
        text += f" -> {member.linkname}"
    return text


def _members(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            sha = ""
            if member.isfile():
                handle = tar.extractfile(member)
                digest = hashlib.sha256()
                while handle is not None and (chunk := handle.read(_CHUNK)):
                    digest.update(chunk)
                sha = digest.hexdigest()
            out[member.name.lstrip("./").rstrip("/")] = _describe(member, sha)
    return out


def file_changes(recorded: Path, rebuilt: Path) -> tuple[tuple[FileChange, ...], int]:
    """Member differences between two layer tars (type, mode, owner, mtime, size, content), sorted by path:
    the first ``MAX_CHANGES`` and how many more there are."""
    a, b = _members(recorded), _members(rebuilt)
    changes = []
    for path in sorted(set(a) | set(b)):
        if path not in b:
            changes.append(FileChange(path, "removed", a[path], ""))
        elif path not in a:
            changes.append(FileChange(path, "added", "", b[path]))
        elif a[path] != b[path]:
            changes.append(FileChange(path, "changed", a[path], b[path]))
    return tuple(changes[:MAX_CHANGES]), max(0, len(changes) - MAX_CHANGES)
