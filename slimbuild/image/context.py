"""Deterministic, secret-free Docker build context (catalogue group B).

``collect_project_files`` picks the project files an image needs. It never follows a
symlink out of the project (PolicyViolation, the link's content is never read), stops
on loops and dangling links, dereferences links that stay inside, never opens FIFOs,
sockets or devices, and leaves out sensitive files (``.env``, keys, ``.git/`` ...: the
rules of :mod:`slimbuild.image.secrets`): explicitly wanting one is a PolicyViolation,
and a link to one is named to ``on_skip``. ``write_context_tar`` streams a PAX tar
with sorted members, one mtime, owner 0:0 and fixed modes; ``validate_context_tar``
checks any tar against those rules.

``.dockerignore`` is matched with pathspec's gitignore engine after rewriting each
pattern the way Docker reads it (trimmed, ``!`` split off, ``filepath.Clean``-ed,
anchored at the root). Known divergences from Docker's matcher (moby/patternmatcher):

* a pattern that cleans to a path above the root (``../x``) is dropped here; Docker
  keeps it and it can never match;
* ``[!...]`` negated classes and ``\\`` escapes follow git's wildmatch, which differs
  from Go's ``filepath.Match`` in corner cases (e.g. ``\\`` before a normal character);
* an exception (``!pattern``) re-includes a file below an excluded directory, as in
  Docker's per-file matching; Docker's CLI additionally skips walking an excluded
  directory unless an exception could match inside it (moby#30018, docker/cli#2919),
  which only changes what is *walked*, not what matches.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import stat
import tarfile
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import pathspec

from slimbuild.errors import ConfigError, PolicyViolation
from slimbuild.image.secrets import is_sensitive, sensitive_names
from slimbuild.paths import file_digest

__all__ = [
    "ContextFile",
    "build_context_tar",
    "check_archive",
    "collect_project_files",
    "context_digest",
    "file_sha256",
    "find_case_clashes",
    "is_sensitive",
    "sensitive_names",
    "source_sizes",
    "validate_context_tar",
    "with_digests",
    "write_context_tar",
]

_MAX_LINK_HOPS = 40
_CHUNK = 1 << 20
_FILE_MODE = 0o644
_EXEC_MODE = 0o755
_DIR_MODE = 0o755

SkipCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class ContextFile:
    """One regular file of the context: its tar name and either a source path or its bytes."""

    arcname: str
    source: Path | None
    data: bytes | None
    mode: int
    # The source's sha256 (hex) when known: verified by the wheel cache, or taken once by with_digests.
    sha256: str | None = None


# ---------------------------------------------------------------- policy


def _docker_pattern(line: str) -> str | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    negate = text.startswith("!")
    if negate:
        text = text[1:].strip()
    text = posixpath.normpath(text).lstrip("/") if text else ""
    if text in {"", "."} or text == ".." or text.startswith("../"):
        return None
    return ("!" if negate else "") + "/" + text


def dockerignore_spec(lines: Iterable[str]) -> pathspec.GitIgnoreSpec:
    """A matcher for .dockerignore LINES with Docker's root-anchored reading of each pattern."""
    patterns = [p for p in (_docker_pattern(line) for line in lines) if p is not None]
    return pathspec.GitIgnoreSpec.from_lines(patterns)


def _check_wanted(item: str) -> str:
    if "\x00" in item or item.startswith("/") or "\\" in item:
        raise ConfigError(f"wanted path {item!r} is not a relative POSIX path", hint="use paths relative to the project root")
    norm = posixpath.normpath(item)
    if norm == ".." or norm.startswith("../"):
        raise PolicyViolation(
            f"wanted path {item!r} is outside the project", hint="only files below the project root can be copied"
        )
    return "" if norm == "." else norm


# ---------------------------------------------------------------- walking


@dataclass(frozen=True)
class _Resolved:
    real: str  # absolute real path inside the root
    st: os.stat_result


def _resolve_inside(root: str, rel: str) -> _Resolved:
    """Resolve ROOT/REL link by link, never leaving ROOT; raises on escape, loop or dangling link."""
    parts = [p for p in rel.split("/") if p]
    current = root
    hops = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if current == root:
                raise PolicyViolation(
                    f"symlink escapes project root: {rel} (via ..)", hint="copy the target into the project instead"
                )
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            if hops:  # reached through a link: the link's target is what is missing
                missing = os.path.relpath(candidate, root).replace(os.sep, "/")
                raise ConfigError(
                    f"{rel}: dangling symlink (its target {missing} does not exist)", hint="fix or remove the link"
                ) from None
            raise ConfigError(
                f"{rel}: no such file or directory in the project",
                hint="fix the path (include in [tool.slimbuild] is relative to the project root), or create it",
            ) from None
        except OSError as exc:
            raise ConfigError(f"{rel}: cannot resolve ({exc.strerror})", hint="fix the path or its permissions") from None
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > _MAX_LINK_HOPS:
                raise ConfigError(f"{rel}: symlink loop", hint="fix the links")
            target = os.readlink(candidate)
            if os.path.isabs(target):
                norm_target = os.path.normpath(target)
                if norm_target != root and not norm_target.startswith(root + os.sep):
                    raise PolicyViolation(
                        f"symlink escapes project root: {rel} -> {target}", hint="copy the target into the project instead"
                    )
                current = root
                parts = [p for p in os.path.relpath(norm_target, root).split(os.sep) if p and p != "."] + parts
            else:
                parts = [p for p in target.split("/") if p and p != "."] + parts
                # A relative target that climbs above ROOT is refused when the '..' is consumed.
                if _climbs_out(root, current, target):
                    raise PolicyViolation(
                        f"symlink escapes project root: {rel} -> {target}", hint="copy the target into the project instead"
                    )
            continue
        current = candidate
    return _Resolved(current, os.lstat(current))


def _climbs_out(root: str, current: str, target: str) -> bool:
    depth = len(os.path.relpath(current, root).split(os.sep)) if current != root else 0
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part and part != ".":
            depth += 1
    return False


def _file_entry(arcname: str, resolved: _Resolved) -> ContextFile:
    mode = _EXEC_MODE if resolved.st.st_mode & 0o111 else _FILE_MODE
    return ContextFile(arcname=arcname, source=Path(resolved.real), data=None, mode=mode)


def _valid_name(rel: str) -> bool:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# long: one walk whose closures (ignored, add, walk) share the matcher, the seen set and the results;
# split into functions they would pass those five values around on every call.
def collect_project_files(
    root: Path,
    wanted: Sequence[str],
    *,
    dockerignore: bool = True,
    arc_prefix: str = "",
    on_skip: SkipCallback | None = None,
    allow: pathspec.GitIgnoreSpec | None = None,
) -> tuple[tuple[ContextFile, ...], tuple[str, ...]]:
    """The files WANTED (relative paths; directories are walked) and the sorted names of sensitive files left out.

    Arcnames are ``arc_prefix`` + the path in the project. Broken links, loops, special files and
    links to a sensitive file met while walking a directory are skipped and passed to
    ``on_skip(name, reason)``; the same problems on an explicitly wanted path raise. ALLOW
    (``allow-secrets``) lifts the secret-name rules for the paths it matches.
    """
    real_root = os.path.realpath(root)
    if not os.path.isdir(real_root):
        raise ConfigError(f"{root}: not a directory", hint="pass the project's directory")
    spec: pathspec.GitIgnoreSpec | None = None
    ignore_file = os.path.join(real_root, ".dockerignore")
    if dockerignore and os.path.isfile(ignore_file):
        with open(ignore_file, encoding="utf-8", errors="replace") as handle:
            spec = dockerignore_spec(handle.read().splitlines())
    skip = on_skip or (lambda _name, _reason: None)
    files: dict[str, ContextFile] = {}
    excluded: set[str] = set()

    def ignored(rel: str, is_dir: bool) -> bool:
        return spec is not None and spec.match_file(rel + "/" if is_dir else rel)

    def add(rel: str, entry: ContextFile) -> None:
        files.setdefault(rel, entry)

    # Negations can re-include files below an ignored directory, so only prune without them.
    prune_ignored_dirs = spec is None or not any(getattr(p, "include", None) is False for p in spec.patterns)
    walked: set[tuple[int, int]] = set()

    def walk(rel_dir: str, real_dir: str) -> None:
        try:
            with os.scandir(real_dir) as it:
                entries = sorted(it, key=lambda e: e.name.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            skip(rel_dir or ".", f"cannot list directory ({exc.strerror})")
            return
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if not _valid_name(rel):
                skip(rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), "file name is not UTF-8")
                continue
            if rel == ".dockerignore":
                continue
            try:
                resolved = _resolve_inside(real_root, rel)
            except ConfigError as exc:
                skip(rel, exc.message)
                continue
            is_dir = stat.S_ISDIR(resolved.st.st_mode)
            target_rel = os.path.relpath(resolved.real, real_root).replace(os.sep, "/")
            if is_sensitive(rel, is_dir=is_dir, allow=allow):
                excluded.add(rel + "/" if is_dir else rel)
                continue
            if is_sensitive(target_rel, is_dir=is_dir, allow=allow):  # B21: never followed, and said
                excluded.add(rel + "/" if is_dir else rel)
                skip(rel, f"symlink to the sensitive {'directory' if is_dir else 'file'} {target_rel}: left out, not followed")
                continue
            if is_dir:
                if prune_ignored_dirs and ignored(rel, True):
                    continue
                key = (resolved.st.st_dev, resolved.st.st_ino)
                if key in walked:
                    skip(rel, "directory already included (symlink loop or second link)")
                    continue
                walked.add(key)
                walk(rel, resolved.real)
            elif ignored(rel, False):
                continue
            elif stat.S_ISREG(resolved.st.st_mode):
                add(rel, _file_entry(arc_prefix + rel, resolved))
            else:
                skip(rel, "not a regular file (FIFO, socket or device)")

    for item in wanted:
        rel = _check_wanted(item)
        if not rel:
            root_st = os.stat(real_root)
            if (root_st.st_dev, root_st.st_ino) not in walked:
                walked.add((root_st.st_dev, root_st.st_ino))
                walk("", real_root)
            continue
        resolved = _resolve_inside(real_root, rel)  # lstat and readlink only: nothing is read before the checks
        mode = resolved.st.st_mode
        target_rel = os.path.relpath(resolved.real, real_root).replace(os.sep, "/")
        if is_sensitive(rel, is_dir=stat.S_ISDIR(mode), allow=allow):
            raise PolicyViolation(
                f"sensitive file {rel!r} is needed by the analysis",
                hint="move the secret out of the image and read it at run time; a false positive: allow-secrets",
            )
        if is_sensitive(target_rel, is_dir=stat.S_ISDIR(mode), allow=allow):
            raise PolicyViolation(f"{rel!r} links to the sensitive file {target_rel!r}", hint="move the secret out of the image")
        if stat.S_ISDIR(mode):
            if (resolved.st.st_dev, resolved.st.st_ino) not in walked:
                walked.add((resolved.st.st_dev, resolved.st.st_ino))
                walk(rel, resolved.real)
        elif stat.S_ISREG(mode):
            if ignored(rel, False):
                raise ConfigError(
                    f"{rel} is needed but excluded by .dockerignore", hint="remove the pattern or the dependency on the file"
                )
            add(rel, _file_entry(arc_prefix + rel, resolved))
        else:
            raise ConfigError(f"{rel}: not a regular file (FIFO, socket or device)", hint="only regular files can be copied")
    ordered = tuple(files[k] for k in sorted(files, key=lambda s: s.encode()))
    return ordered, tuple(sorted(excluded, key=lambda s: s.encode()))


def find_case_clashes(files: Iterable[ContextFile]) -> tuple[tuple[str, ...], ...]:
    """Groups of arcnames equal after case folding and NFC (they collide on macOS/Windows checkouts)."""
    groups: dict[str, list[str]] = {}
    for f in files:
        groups.setdefault(unicodedata.normalize("NFC", f.arcname).casefold(), []).append(f.arcname)
    return tuple(tuple(sorted(g, key=str.encode)) for _, g in sorted(groups.items()) if len(g) > 1)


# ---------------------------------------------------------------- digests


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file."""
    return file_digest(path)


def with_digests(files: Iterable[ContextFile]) -> tuple[ContextFile, ...]:
    """FILES with every source's sha256 filled in (read once here; the tag, deps key and manifest reuse it)."""
    out = []
    for f in files:
        if f.data is None and f.sha256 is None:
            if f.source is None:
                raise ConfigError(f"context file {f.arcname!r} has neither data nor a source", hint="this is a slimbuild bug")
            f = replace(f, sha256=file_sha256(f.source))
        out.append(f)
    return tuple(out)


def context_digest(f: ContextFile) -> str:
    """The hex sha256 of a context file's bytes: of its data, else its source's digest taken by with_digests."""
    if f.data is not None:
        return hashlib.sha256(f.data).hexdigest()
    if f.sha256 is None:
        raise ValueError(f"context file {f.arcname!r}: digest not taken (with_digests)")
    return f.sha256


def source_sizes(files: Iterable[ContextFile]) -> dict[str, int]:
    """The size of each file given by its source, by arcname."""
    return {f.arcname: f.source.stat().st_size for f in files if f.data is None and f.source is not None}


# ---------------------------------------------------------------- tar


def _check_arcname(name: str) -> None:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in {"", ".", ".."} for p in parts):
        raise PolicyViolation(f"context member {name!r} is not a normalised relative path", hint="this is a slimbuild bug")


def _tarinfo(name: str, *, mtime: int, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


LARGE_FILE_BYTES = 100 * 1024 * 1024  # a project file this big in the image gets a warning (B11)


def large_file_warnings(files: Iterable[ContextFile], prefix: str, limit: int = LARGE_FILE_BYTES) -> tuple[str, ...]:
    """One warning per project file of ``limit`` bytes or more: it is copied into the image (and sent with
    every build's context), which is right only when the analysis needs it baked in."""
    found = []
    for f in sorted(files, key=lambda f: f.arcname):
        if f.source is None:
            continue
        try:
            size = os.stat(f.source).st_size
        except OSError:
            continue  # the archiver reports an unreadable file
        if size >= limit:
            found.append(
                f"{f.arcname.removeprefix(prefix)} is {size / 1e6:,.0f} MB and goes into the image: if the analysis can "
                "read it at run time, mount it (docker run -v) and take it out of include"
            )
    return tuple(found)


def write_context_tar(fileobj: BinaryIO, files: Iterable[ContextFile], *, mtime: int) -> None:
    """Stream FILES into FILEOBJ as a PAX tar: sorted, parent dirs included, mtime MTIME, 0:0, fixed modes."""
    by_name: dict[str, ContextFile] = {}
    for f in files:
        _check_arcname(f.arcname)
        if f.arcname in by_name:
            raise ConfigError(f"two context files named {f.arcname!r}", hint="this is a slimbuild bug")
        by_name[f.arcname] = f
    dirs = {posixpath.dirname(n) for n in by_name}
    for d in list(dirs):
        while d:
            dirs.add(d)
            d = posixpath.dirname(d)
    dirs.discard("")
    clash = dirs & by_name.keys()
    if clash:
        raise ConfigError(f"context path {sorted(clash)[0]!r} is both a file and a directory", hint="rename one of them")
    names = sorted(dirs | by_name.keys(), key=lambda s: s.encode())
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for name in names:
            entry = by_name.get(name)
            if entry is None:
                tar.addfile(_tarinfo(name, mtime=mtime, kind=tarfile.DIRTYPE, mode=_DIR_MODE))
                continue
            mode = _EXEC_MODE if entry.mode & 0o111 else _FILE_MODE
            if entry.data is not None:
                info = _tarinfo(name, mtime=mtime, kind=tarfile.REGTYPE, mode=mode, size=len(entry.data))
                tar.addfile(info, io.BytesIO(entry.data))
                continue
            if entry.source is None:
                raise ConfigError(f"context file {name!r} has neither data nor a source", hint="this is a slimbuild bug")
            _add_source(tar, name, entry.source, mode=mode, mtime=mtime)


def _add_source(tar: tarfile.TarFile, name: str, source: Path, *, mode: int, mtime: int) -> None:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(source, flags)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read ({exc.strerror})", hint="check the file still exists and is readable") from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):  # swapped for a FIFO/device since the scan: never read it
            raise ConfigError(f"{name}: no longer a regular file", hint="do not modify the project during a build")
        info = _tarinfo(name, mtime=mtime, kind=tarfile.REGTYPE, mode=mode, size=st.st_size)
        try:
            tar.addfile(info, handle)
        except OSError as exc:
            raise ConfigError(
                f"{name}: changed while being archived ({exc})", hint="do not modify the project during a build"
            ) from None


def build_context_tar(files: Iterable[ContextFile], *, mtime: int) -> bytes:
    """The context tar of FILES in memory (small contexts and tests; use write_context_tar to stream)."""
    buffer = io.BytesIO()
    write_context_tar(buffer, files, mtime=mtime)
    return buffer.getvalue()


def _check_member_name(kind: str, name: str) -> None:
    parts = name.replace("\\", "/").rstrip("/").split("/")
    if not name or name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise PolicyViolation(f"{kind} member {name!r} escapes the extraction directory", hint="refuse this archive")


def validate_context_tar(fileobj: BinaryIO) -> None:
    """Raise PolicyViolation unless every member is a relative regular file or dir, owned 0:0, mode 644/755."""
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
            for member in tar:
                _check_member_name("tar", member.name)
                name = member.name.rstrip("/")
                if name in seen:
                    raise PolicyViolation(f"tar member {member.name!r} appears twice", hint="refuse this archive")
                seen.add(name)
                if not (member.isreg() or member.isdir()):
                    raise PolicyViolation(
                        f"tar member {member.name!r} is a link or special file",
                        hint="the context holds only files and directories",
                    )
                if member.uid != 0 or member.gid != 0:
                    raise PolicyViolation(
                        f"tar member {member.name!r} is owned by {member.uid}:{member.gid}", hint="context members are 0:0"
                    )
                allowed = {_DIR_MODE} if member.isdir() else {_FILE_MODE, _EXEC_MODE}
                if member.mode not in allowed:
                    raise PolicyViolation(
                        f"tar member {member.name!r} has mode {member.mode:o}", hint="context modes are 644/755"
                    )
    except tarfile.TarError as exc:
        raise PolicyViolation(f"context tar is corrupt: {exc}", hint="refuse this archive") from None


def check_archive(fileobj: BinaryIO) -> None:
    """Raise PolicyViolation if a tar or zip (wheel) has a member that escapes, or a link or device (B14)."""
    head = fileobj.read(4)
    fileobj.seek(0)
    if head.startswith(b"PK"):
        with zipfile.ZipFile(fileobj) as archive:
            for info in archive.infolist():
                _check_member_name("zip", info.filename)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise PolicyViolation(f"zip member {info.filename!r} is a symlink", hint="refuse this archive")
        return
    try:
        with tarfile.open(fileobj=fileobj, mode="r:*") as tar:
            for member in tar.getmembers():
                _check_member_name("tar", member.name)
                if member.isdev() or member.isfifo():
                    raise PolicyViolation(f"tar member {member.name!r} is a device or FIFO", hint="refuse this archive")
                if member.issym() or member.islnk():
                    base = posixpath.dirname(member.name) if member.issym() else ""
                    target = posixpath.normpath(posixpath.join(base, member.linkname))
                    if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
                        raise PolicyViolation(
                            f"tar member {member.name!r} links outside: {member.linkname!r}", hint="refuse this archive"
                        )
    except tarfile.TarError as exc:
        raise PolicyViolation(f"archive is corrupt: {exc}", hint="refuse this archive") from None
