"""Data, the other half of the record: the manifest's ``inputs`` records, their digests, and checking them.

The configuration lists the data the analysis reads at run time (``[tool.slimbuild] inputs``, parsed by
config.py's ``parse_inputs``). Each entry becomes one manifest record, in the configuration's order::

    {"kind": "path" | "url" | "dataset" | "dvc" | "lakefs",
     "ref": <the path, URL or reference exactly as configured>,
     "sha256": <the sha256 the configuration gives, or null>,
     "type": "file" | "directory" | "symlink" | null,   # what a local path (or the .dvc file) is
     "digest": <hex digest build computed, or null>,      # local paths and .dvc files only
     "outs": [{"md5": ..., "path": ...}]}                 # the outputs a .dvc file names (DVC's own md5s)

URLs, datasets (``pachyderm://repo@commit``) and lakeFS references are recorded as written, never fetched.
For a local path, ``build`` computes the digest: a file's is the sha256 of its bytes (what ``sha256sum``
prints); a directory's is its tree hash; a symlink's (the path itself a link) is the sha256 of its target
string, the link never followed. A configured sha256 that differs is IntegrityError (exit 5), naming the
path and both digests.

The tree hash (``slimbuild-tree-v1``) of a directory D is the hex sha256 of this byte stream:

* the header ``slimbuild-tree-v1\\n``;
* then one line per entry below D (D itself has none), ``KIND NUL PATH NUL CONTENT_SHA256 \\n``, where
  KIND is ``file``, ``dir`` or ``symlink``; PATH is the entry's path relative to D, ``/``-separated, as the
  file system's bytes (no leading ``./``, no trailing ``/``); CONTENT_SHA256 is the lowercase hex sha256 of
  the file's bytes, of a symlink's target string (``readlink``), or of nothing (the empty string) for a
  directory;
* the entries in depth-first pre-order, each directory's entries sorted by the bytes of their names: a
  directory's line comes right before the lines of its contents. This is the order of the relative paths
  compared component by component (``a/b`` before ``a-c``, since ``a`` < ``a-c``).

Symlinks are recorded as links and never followed; modes, owners and times are not hashed. A FIFO,
socket or device below D is refused (exit 2). Memory stays bounded: one directory's listing per level
of depth and one 1 MiB read buffer, never the whole tree. To compute one by hand::

    python -c 'from slimbuild.record.data import tree_hash; print(tree_hash("data/raw"))'

The manifest's ``traced_data`` (when the project has a ``slimbuild.trace.json``) lists the project's data files the
traced runs opened: ``{"path", "sha256", "size", "included", "missing"}`` (:func:`traced_records`, then
:func:`with_included` per image); a file gone since is listed with ``missing`` true and null sha256 and size.

``check_inputs(records, data_dir)`` (what ``verify --data DIR`` calls) recomputes the digest of every
local-path record below ``data_dir`` and returns the mismatches; other kinds are not checked (no network).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from slimbuild.config import DataInput
from slimbuild.errors import ConfigError, IntegrityError, PolicyViolation, UsageError

TREE_HEADER = b"slimbuild-tree-v1\n"
_CHUNK = 1 << 20
_MAX_DVC_BYTES = 1024 * 1024
_EMPTY = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Mismatch:
    """A recorded local input whose data differs (``actual`` None: the path is missing)."""

    ref: str
    expected_type: str
    expected: str
    actual_type: str | None
    actual: str | None

    def describe(self) -> str:
        """One line: the path and both digests."""
        if self.actual is None:
            return f"{self.ref}: missing (recorded {self.expected_type} sha256 {self.expected})"
        return (
            f"{self.ref}: recorded {self.expected_type} sha256 {self.expected}, "
            f"found {self.actual_type} sha256 {self.actual}"
        )


# --------------------------------------------------------------------------- digests


def _unreadable(path: bytes | Path, exc: OSError) -> UsageError:
    return UsageError(f"{os.fsdecode(path)}: cannot read data input: {exc.strerror or exc}", "check the path and permissions")


def _file_sha256(path: bytes | Path) -> str:
    """sha256 of a regular file's bytes, opened without following a link (a file swapped for one fails)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _unreadable(path, exc) from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise UsageError(f"{os.fsdecode(path)}: data input is not a regular file", "give files and directories only")
        sha = hashlib.sha256()
        try:
            while chunk := fh.read(_CHUNK):
                sha.update(chunk)
        except OSError as exc:
            raise _unreadable(path, exc) from None
    return sha.hexdigest()


def _link_sha256(path: bytes | Path) -> str:
    try:
        return hashlib.sha256(os.fsencode(os.readlink(os.fsencode(path)))).hexdigest()
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _kind(mode: int, path: bytes) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    raise UsageError(f"{os.fsdecode(path)}: a FIFO, socket or device cannot be hashed", "keep only files and directories")


def _listing(directory: bytes) -> list[tuple[bytes, str]]:
    """One directory's (name, kind) pairs, by name bytes, last first (popped from the end; no link followed)."""
    try:
        with os.scandir(directory) as it:
            entries = [(e.name, _kind(e.stat(follow_symlinks=False).st_mode, e.path)) for e in it]
    except OSError as exc:
        raise _unreadable(directory, exc) from None
    return sorted(entries, reverse=True)


def tree_entries(root: str | Path) -> Iterator[tuple[str, bytes, str]]:
    """(kind, relative path bytes, content sha256) of every entry below ``root``, in the tree hash's order."""
    base = os.fsencode(root)
    stack: list[tuple[bytes, list[tuple[bytes, str]]]] = [(b"", _listing(base))]
    while stack:
        prefix, pending = stack[-1]
        if not pending:
            stack.pop()
            continue
        name, kind = pending.pop()
        rel = prefix + name
        full = os.path.join(base, rel)
        if kind == "dir":
            yield "dir", rel, _EMPTY
            stack.append((rel + b"/", _listing(full)))
        elif kind == "symlink":
            yield "symlink", rel, _link_sha256(full)
        else:
            yield "file", rel, _file_sha256(full)


def tree_hash(path: str | Path) -> str:
    """The ``slimbuild-tree-v1`` hex digest of a directory (the module docstring gives the algorithm)."""
    sha = hashlib.sha256(TREE_HEADER)
    for kind, rel, content in tree_entries(path):
        sha.update(kind.encode() + b"\0" + rel + b"\0" + content.encode() + b"\n")
    return sha.hexdigest()


def digest_path(path: Path) -> tuple[str, str] | None:
    """(type, hex digest) of a local input: ``file`` (sha256), ``directory`` (tree hash), ``symlink``; None if missing."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unreadable(path, exc) from None
    kind = _kind(mode, os.fsencode(path))
    if kind == "symlink":
        return "symlink", _link_sha256(path)
    if kind == "dir":
        return "directory", tree_hash(path)
    return "file", _file_sha256(path)


# --------------------------------------------------------------------------- .dvc files


def parse_dvc(data: bytes, source: str) -> list[dict[str, str]]:
    """The ``outs`` of a .dvc file (each its ``path`` and ``md5``), in the file's order; ConfigError when malformed."""
    import yaml

    if len(data) > _MAX_DVC_BYTES:
        raise ConfigError(f"{source}: larger than 1 MiB, not a .dvc file", "name the .dvc file DVC wrote")
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{source}: not a .dvc file: {detail}", "fix it with dvc") from None
    outs = doc.get("outs") if isinstance(doc, dict) else None
    if not isinstance(outs, list) or not outs:
        raise ConfigError(f"{source}: a .dvc file must list its outs", "dvc add the data again")
    records = []
    for index, out in enumerate(outs):
        path = out.get("path") if isinstance(out, dict) else None
        md5 = out.get("md5") if isinstance(out, dict) else None
        if not isinstance(path, str) or not isinstance(md5, (str, int)) or isinstance(md5, bool):
            raise ConfigError(f"{source}: outs[{index}] must have a path and an md5", "dvc add the data again")
        records.append({"md5": str(md5), "path": path})
    return records


# --------------------------------------------------------------------------- records


def input_records(inputs: Sequence[DataInput], root: Path) -> list[dict[str, Any]]:
    """The manifest's ``inputs``: each entry as configured, local paths (and .dvc files) with their digests.

    A local path that does not exist is ConfigError (exit 2); a configured sha256 that differs from the
    computed digest is IntegrityError (exit 5), naming the path and both digests.
    """
    records = []
    for entry in inputs:
        record: dict[str, Any] = {"digest": None, "kind": entry.kind, "outs": [], "ref": entry.ref, "sha256": entry.sha256,
                                  "type": None}  # fmt: skip
        if entry.kind in ("path", "dvc"):
            found = digest_path(root / entry.ref)
            if found is None:
                raise ConfigError(
                    f"inputs: {entry.kind} {entry.ref!r} does not exist in {root}",
                    "add the data (or fix the path); data fetched at run time is listed as a url",
                )
            record["type"], record["digest"] = found
            if entry.kind == "dvc":
                record["outs"] = parse_dvc((root / entry.ref).read_bytes(), entry.ref)
        if entry.sha256 is not None and record["digest"] is not None and entry.sha256 != record["digest"]:
            raise IntegrityError(
                f"inputs: {entry.ref}: the configured sha256 is {entry.sha256}, the {record['type']}'s sha256 is "
                f"{record['digest']}",
                "the data changed since the sha256 was written: restore it, or update the sha256 in the configuration",
            )
        records.append(record)
    return records


def _below(data_dir: Path, ref: str) -> Path:
    rel = PurePosixPath(ref.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or ref.startswith("~"):
        raise PolicyViolation(f"manifest input {ref!r} is not a relative path inside the data directory", "refuse this manifest")
    return data_dir / rel


def check_inputs(records: Sequence[Mapping[str, Any]], data_dir: Path) -> list[Mismatch]:
    """The recorded local-path inputs whose data below ``data_dir`` differs or is missing, in record order.

    Only ``kind == "path"`` records that carry a digest are checked (URLs, datasets, lakeFS and DVC
    references are not fetched). A ref escaping ``data_dir`` (absolute, ``..``) is PolicyViolation (exit 10).
    """
    mismatches = []
    for record in records:
        digest, kind = record.get("digest"), record.get("type")
        if record.get("kind") != "path" or not isinstance(digest, str) or not isinstance(kind, str):
            continue
        ref = str(record.get("ref"))
        found = digest_path(_below(data_dir, ref))
        if found is None:
            mismatches.append(Mismatch(ref, kind, digest, None, None))
        elif found != (kind, digest):
            mismatches.append(Mismatch(ref, kind, digest, found[0], found[1]))
    return mismatches


# --------------------------------------------------------------------------- the data traced runs opened


def _traced_file(real: Path, rel: str) -> tuple[str, int]:
    """(sha256, size) of one regular file, streamed; opened without blocking (a FIFO swapped in never hangs)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise IsADirectoryError(0, "no longer a regular file")
            sha, size = hashlib.sha256(), 0
            while chunk := fh.read(_CHUNK):
                sha.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise UsageError(
            f"{rel}: the traced run opened it, but it cannot be read to record its sha256: {exc.strerror or exc}",
            "fix its permissions, or trace again with 'slimbuild trace --replace -- COMMAND'",
        ) from None
    return sha.hexdigest(), size


def _listed(what: str, paths: Sequence[str]) -> str:
    more = f" (+{len(paths) - 5} more)" if len(paths) > 5 else ""
    return f"{len(paths)} file(s) the traced runs opened {what}: {', '.join(paths[:5])}{more}"


def traced_records(root: Path, paths: Sequence[str]) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """The data files the traced runs opened (project-relative ``paths``, runtime_feed.data_files), each with its
    sha256 and size, or ``missing`` when it no longer exists; and the warnings to show.

    A path whose file (through symlinks) lies outside the project, or is not a regular file, is never read nor
    listed (a warning says so); an unreadable one is UsageError (exit 2). Sorted by path; ``included`` is filled in
    per image by :func:`with_included`.
    """
    real_root = root.resolve()
    records: list[dict[str, Any]] = []
    missing, outside, special = [], [], []
    for rel in sorted(set(paths)):
        try:
            real = (root / rel).resolve()
        except (OSError, RuntimeError):  # a symlink loop
            special.append(rel)
            continue
        if not real.is_relative_to(real_root):
            outside.append(rel)
            continue
        try:
            mode = real.stat().st_mode
        except FileNotFoundError:
            missing.append(rel)
            records.append({"missing": True, "path": rel, "sha256": None, "size": None})
            continue
        except OSError:
            mode = stat.S_IFREG  # _traced_file names why it cannot be read
        if not stat.S_ISREG(mode):
            special.append(rel)
            continue
        sha, size = _traced_file(real, rel)
        records.append({"missing": False, "path": rel, "sha256": sha, "size": size})
    warnings = []
    if missing:
        warnings.append(_listed("no longer exist (recorded as missing)", missing)
                        + "; trace again with 'slimbuild trace --replace -- COMMAND' if the run no longer reads them")
    if outside:
        warnings.append(_listed("are links to files outside the project (never hashed nor copied)", outside))
    if special:
        warnings.append(_listed("are no longer regular files (not recorded)", special))
    return records, tuple(warnings)


def with_included(records: Sequence[Mapping[str, Any]], shipped: Iterable[str]) -> list[dict[str, Any]]:
    """``records`` of :func:`traced_records`, each with ``included``: whether the image holds it (``shipped``: the
    project-relative paths of the image's app files)."""
    held = set(shipped)
    return [{**r, "included": r["path"] in held} for r in records]
