"""Where a run writes, checked before any work; its files staged, then its tags, then the files committed.

All or nothing (RELIABILITY rule 3): ``build`` stages every output it writes after the build (the manifests, the
kept context) as temporary files beside their destinations, tags, and only then renames them into place. With
``--push`` the refs are pushed once every tag is applied and before any file is committed, so the manifest
beside the project records every digest or is not updated at all. A failure
or an interrupt at any point after tagging started undoes this run's tags (a moved ref goes back to its previous
image, a new ref is removed) and removes the staged files, so no tag and no file claims an image that failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from slimbuild.config import Settings
from slimbuild.errors import ConfigError, NoSuchImage, SlimbuildError, UsageError

if TYPE_CHECKING:  # lock_file is on check's path, which never loads the Docker SDK
    from slimbuild.image.engine import Engine


def _chosen(given: str, default: Path, several: bool, option: str) -> Path:
    """DEFAULT, or --OPTION's file; a directory (existing, or written with a trailing '/') takes the usual name."""
    if not given:
        return default
    out = Path(os.path.expanduser(given))  # an unknown ~user stays as written (pathlib would raise)
    if out.is_dir() or given.endswith(("/", os.sep)):
        return out / default.name
    if several:
        raise UsageError(
            f"{option} {out} names one file but the project has several entrypoints",
            hint=f"give {option} a directory (ending in '/'), or build one entrypoint with -e NAME",
        )
    return out


def lock_file(settings: Settings, name: str) -> Path:
    """``slimbuild.lock`` (``slimbuild.<name>.lock`` with several entrypoints) in the project, or --lock-out's."""
    several = len(settings.entrypoints) > 1
    default = settings.root / (f"slimbuild.{name}.lock" if several else "slimbuild.lock")
    return _chosen(settings.lock_out, default, several, "--lock-out")


def manifest_file(settings: Settings, name: str, several: bool) -> Path:
    """``slimbuild.manifest.json`` (``slimbuild.<name>.manifest.json``) in the project, or --manifest-out's."""
    default = settings.root / ("slimbuild.manifest.json" if not several else f"slimbuild.{name}.manifest.json")
    return _chosen(settings.manifest_out, default, several, "--manifest-out")


def _unwritable(folder: Path) -> str:
    """Why no file can be created in FOLDER (or the nearest existing folder above it); '' when one can."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory"
    try:
        fd, tmp = tempfile.mkstemp(prefix=".slimbuild-probe-", dir=probe)
    except OSError as exc:
        return f"{probe}: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(tmp)
    return ""


def check_writable(
    settings: Settings, *, cache: Path, lock: bool, manifest: bool, keep_context: bool = False, build: bool = False
) -> None:
    """Exit 2 before any work when a file this run writes cannot be created, naming where to write instead."""
    several = len(settings.entrypoints) > 1
    name = next(iter(settings.entrypoints), "main")
    instead = cache / "out"
    lock_hint = f"--lock-out {instead}/" + (" (or --locked, when the project's lock is fresh)" if build else "")
    wanted = [
        *([("the lock", lock_file(settings, name), lock_hint)] if lock else []),
        *([("the manifest", manifest_file(settings, name, several), f"--manifest-out {instead}/")] if manifest else []),
        *([("--keep-context's tar", settings.root / ".slimbuild-context.tar", "no --keep-context")] if keep_context else []),
    ]
    if why := _unwritable(cache):
        raise ConfigError(f"cannot write the cache dir {cache} ({why})", hint="set SLIMBUILD_CACHE to a writable directory")
    for what, path, option in wanted:
        if why := _unwritable(path.parent):
            raise ConfigError(
                f"cannot write {what} {path.name} in {path.parent} ({why})",
                hint=f"write it elsewhere: {option} (the cache dir {cache} is writable)",
            )


@dataclass(frozen=True)
class Staged:
    """A file written in full beside its destination, not yet renamed into place."""

    path: Path
    tmp: Path

    def commit(self) -> None:
        """Rename it into place (atomic: the destination is the old file or the new one, never a mix)."""
        try:
            os.replace(self.tmp, self.path)
        except OSError as exc:
            raise _cannot_write(self.path, exc) from None

    def discard(self) -> None:
        """Remove the temporary file."""
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


def _cannot_write(path: Path, exc: OSError) -> ConfigError:
    return ConfigError(
        f"cannot write {path.name} in {path.parent} ({exc.strerror or exc})",
        hint="no tag of this run was kept; write it elsewhere (--manifest-out, --lock-out) or free the disk",
    )


def stage(path: Path, write: Callable[[BinaryIO], object], mode: int = 0o644) -> Staged:
    """Write a file through WRITE into a temporary file beside PATH (fsynced); ``commit()`` puts it in place."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from None
        raise
    return Staged(path, Path(tmp))


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until a rollback is done (they are delivered right after it)."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, OSError, ValueError):  # no pthread_sigmask on this platform
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _image_of(engine: Engine, ref: str) -> str | None:
    """The id of the image REF names now, None when there is none."""
    try:
        return str(engine.inspect_image(ref)["Id"])
    except NoSuchImage:
        return None


def _undo(engine: Engine, applied: Sequence[Mapping[str, str | None]]) -> None:
    """Put every ref of this run back: a moved ref onto its previous image, a new ref removed (best effort)."""
    with _signals_held():
        for previous in reversed(applied):
            for ref, image_id in previous.items():
                try:
                    if image_id is None:
                        engine.untag(ref)
                    else:
                        engine.tag(image_id, [ref])
                except (SlimbuildError, OSError):
                    pass  # the first failure is the one to report


def publish(
    engine: Engine,
    images: Sequence[tuple[str, Sequence[str]]],
    files: Sequence[Staged],
    *,
    before_commit: Callable[[Sequence[Staged]], Sequence[Staged]] | None = None,
) -> None:
    """Tag each (image id, refs), then commit the staged FILES; on any failure or interrupt, undo it all.

    Each ``engine.tag`` call is all or nothing by itself; the refs of calls that succeeded are undone here.
    ``before_commit`` runs once every tag is applied (``build --push`` pushes there) and returns the files to
    commit: FILES, or some of them restaged (it discards what it staged when it fails; a file it replaced is
    discarded here). A failure in it undoes the tags like any other, and no file is committed.
    """
    applied: list[Mapping[str, str | None]] = []
    committing: Sequence[Staged] = files
    try:
        for image_id, refs in images:
            previous = {ref: _image_of(engine, ref) for ref in refs}
            engine.tag(image_id, refs)  # undoes its own refs when it fails
            applied.append(previous)
        if before_commit is not None:
            committing = before_commit(files)
            for f in files:
                if f not in committing:
                    f.discard()
        for f in committing:
            f.commit()
    except BaseException:
        _undo(engine, applied)
        for f in (*files, *committing):
            f.discard()
        raise
