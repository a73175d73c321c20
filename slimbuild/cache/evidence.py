"""What a cached result depends on, and whether it still holds; standard library only.

A warm run imports this module, not the pipeline: it must stay cheap to import.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

# A directory's files, its subdirectories, and where its symlinks point: what the finder knows of it.
Listing = tuple[frozenset[str], frozenset[str], tuple[tuple[str, str], ...]]
FileStamp = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns
RACY_NS = 2_000_000_000  # a file changed this recently may change again within its timestamp's granularity
_PACKAGE = Path(__file__).resolve().parent.parent  # slimbuild/


def code_stamp(dirs: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    """Size and mtime of slimbuild's own files in DIRS (relative to the package; "" is its top): a development
    checkout that changes any of them makes what was cached with the old stamp a miss."""
    out = []
    for rel in dirs:
        d = _PACKAGE / rel
        try:
            with os.scandir(d) as it:
                for entry in it:
                    if entry.is_file():
                        st = entry.stat()
                        out.append((f"{rel}/{entry.name}" if rel else entry.name, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((rel, -1, -1))
    return tuple(sorted(out))


def scan_dir(d: str) -> Listing:
    """One ``scandir`` of ``d`` (empty when it cannot be read)."""
    files: set[str] = set()
    dirs: set[str] = set()
    links: list[tuple[str, str]] = []
    try:
        with os.scandir(d) as it:
            for e in it:
                try:
                    if e.is_symlink():
                        links.append((e.name, os.path.realpath(e.path)))
                    if e.is_dir():
                        dirs.add(e.name)
                    elif e.is_file():
                        files.add(e.name)
                except OSError:
                    continue
    except OSError:
        pass
    return frozenset(files), frozenset(dirs), tuple(sorted(links))


def file_stamp(path: str) -> FileStamp | None:
    """A file's stat identity, taken *before* it is hashed; None when too recent to vouch for its content."""
    st = os.stat(path)
    if max(st.st_mtime_ns, st.st_ctime_ns) >= time.time_ns() - RACY_NS:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def digest_bytes(data: bytes) -> str:
    """Content hash of a file's bytes (blake2b: fast, and only a cache key)."""
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def digest_file(path: Path) -> str:
    """:func:`digest_bytes` of a file."""
    with path.open("rb") as fh:
        return digest_bytes(fh.read())


def read_digest_factory(max_bytes: int) -> Callable[[Path], str]:
    """The digest a trace keys a file by: its content, or its size and mtime when it is over the limit."""

    def read_digest(p: Path) -> str:
        st = p.stat()
        # Notebooks may be 5x larger (outputs); files over their limit are refused by the parser
        # anyway, so they are keyed without reading them.
        limit = max_bytes * 5 if p.suffix == ".ipynb" else max_bytes
        if st.st_size > limit:
            return f"oversize:{st.st_size}:{st.st_mtime_ns}"
        return digest_file(p)

    return read_digest


@dataclass
class TraceEvidence:
    """What a result depends on: files' digests, directory listings, search-root checks, absent paths.

    A later run that finds all of it unchanged gets the same result without computing it again.
    """

    files: dict[str, str] = field(default_factory=dict)  # absolute path -> content digest
    stamps: dict[str, FileStamp | None] = field(default_factory=dict)  # absolute path -> stat before hashing
    dirs: dict[str, Listing] = field(default_factory=dict)  # absolute dir -> listing
    roots: dict[str, tuple[str, bool]] = field(default_factory=dict)  # candidate root -> (resolved, is a dir)
    absent: set[str] = field(default_factory=set)  # paths that did not exist (a file appearing there matters)

    def still_valid(self, read_digest: Callable[[Path], str]) -> bool:
        """True when every listing, root and file is as it was (cheapest checks first).

        A file whose stat identity (device, inode, size, mtime and ctime, which no tool can set back)
        is unchanged since it was hashed is not read again, as git trusts its index; any other file
        is re-hashed and compared by content.
        """
        for d, listing in self.dirs.items():
            if scan_dir(d) != listing:
                return False
        for cand, seen in self.roots.items():
            p = Path(cand)
            if (str(p.resolve()), p.is_dir()) != seen:
                return False
        for a in self.absent:
            if os.path.lexists(a):
                return False
        for f, digest in self.files.items():
            try:
                st = os.stat(f)
                stamp = self.stamps.get(f)
                if stamp is not None and stamp == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns):
                    continue
                if read_digest(Path(f)) != digest:
                    return False
            except OSError:
                return False
        return True

    def update(self, other: TraceEvidence) -> None:
        """Add what ``other`` depends on."""
        self.files.update(other.files)
        self.stamps.update(other.stamps)
        self.dirs.update(other.dirs)
        self.roots.update(other.roots)
        self.absent.update(other.absent)

    def add_file(self, path: Path | str, read_digest: Callable[[Path], str]) -> None:
        """Record a file as it is now (stat first, then content), or its absence."""
        p = os.path.abspath(path)
        try:
            stamp = file_stamp(p)
            self.files[p] = read_digest(Path(p))
        except OSError:
            self.files.pop(p, None)
            self.absent.add(p)
            return
        self.stamps[p] = stamp
        self.absent.discard(p)

    def add_dirs(self, dirs: Iterable[Path | str]) -> None:
        """Record the listings of directories as they are now."""
        for d in dirs:
            p = os.path.abspath(d)
            self.dirs[p] = scan_dir(p)

    def newest_change_ns(self) -> int:
        """The latest mtime/ctime among the recorded files (0 when none can be read)."""
        newest = 0
        for f in self.files:
            try:
                st = os.stat(f)
            except OSError:
                continue
            newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
        return newest
