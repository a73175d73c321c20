"""``Engine.commit_run`` for the Docker Engine API: a command run in a container of an image, committed as a new image.

How slimbuild makes the venv image without a builder stage (pipeline/imaging.py): the wheels, lock, stage scripts and
``venv.sh`` go into the container's /opt as one tar, the script builds /opt/venv in place and removes its work dir,
and the container is committed (never tagged). The container has no network, runs as root with a fixed hostname
and no labels (a container's labels and hostname are committed into the image config), and is always removed.

Before the commit, the container's changes are checked against what the venv step may leave (``ALLOWED``,
``WORK_DIR`` gone): anything else would land in the image unseen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, BinaryIO

import docker.errors
import urllib3.exceptions

from slimbuild.errors import BuildFailed
from slimbuild.image.build_stream import one_line
from slimbuild.image.engine_host import causes

WORK_DIR = "/opt/slimbuild-venv"  # what the archive holds, below ARCHIVE_AT; venv.sh removes it
ARCHIVE_AT = "/opt"  # not /tmp: a work dir there would put /tmp itself into the layer (the builder's COPY has none)
HOSTNAME = "slimbuild"
ALLOWED = frozenset({"/opt", "/opt/venv", "/etc", "/etc/passwd", "/etc/group", "/app"})
ALLOWED_BELOW = ("/opt/venv/",)
_KINDS = {0: "changed", 1: "added", 2: "deleted"}
LOG_LINES = 8


def unexpected_change(changes: Sequence[dict[str, Any]]) -> str:
    """The first change (``docker diff``'s entries) the venv step may not leave, as ``"<path> (<kind>)"``; ``""``."""
    for change in sorted(changes, key=lambda c: str(c.get("Path") or "")):
        path, kind = str(change.get("Path") or ""), int(change.get("Kind") or 0)
        in_work = path == WORK_DIR or path.startswith(WORK_DIR + "/")
        if in_work or kind == 2 or not (path in ALLOWED or path.startswith(ALLOWED_BELOW)):
            return f"{path} ({_KINDS.get(kind, str(kind))})"
    return ""


def short_id(image_id: str) -> str:
    """sha256:abcdef0123456789... -> abcdef012345."""
    return image_id.removeprefix("sha256:")[:12]


def remove_quietly(client: Any, container: str) -> None:
    """Remove a throwaway container and its volumes, best effort (the first failure is the one to report)."""
    try:
        client.remove_container(container, force=True, v=True)
    except (docker.errors.DockerException, OSError):
        pass


def _wait(client: Any, container: str, argv: Sequence[str], timeout: float) -> int:
    try:
        return int(dict(client.wait(container, timeout=timeout)).get("StatusCode", -1))
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if not any(isinstance(c, urllib3.exceptions.ReadTimeoutError) or "timed out" in str(c) for c in causes(exc)):
            raise
        client.kill(container)
        raise BuildFailed(
            f"image build failed: the venv step {' '.join(argv)!r} timed out after {timeout:g}s", "build again on a quieter host"
        ) from None


def _failed(client: Any, container: str, argv: Sequence[str], code: int) -> BuildFailed:
    text = bytes(client.logs(container, stdout=True, stderr=True)).decode("utf-8", "replace")
    tail = " | ".join(line.strip() for line in text.splitlines()[-LOG_LINES:] if line.strip())
    return BuildFailed(
        f"image build failed: the venv step {' '.join(argv)!r} exited {code}: {one_line(tail) or 'no output'}",
        "check the lock and the wheels; no image was tagged",
    )


# long: one container's whole life, create to remove, with the check between the run and the commit
def commit_run(client: Any, image: str, archive: BinaryIO | bytes, argv: Sequence[str], *, timeout: float) -> str:
    """Run argv in a container of IMAGE with ARCHIVE (a tar) put at ``ARCHIVE_AT``; commit it: the new image's id.

    A non-zero exit, a timeout or a change outside what the venv step may leave is ``BuildFailed``; the container
    is removed in every case (interrupts are the caller's: engine.py's ``DockerEngine.commit_run``).
    """
    if not argv:
        raise ValueError("argv must not be empty")
    container: str | None = None
    try:
        host_config = client.create_host_config(network_mode="none")
        created = client.create_container(
            image, entrypoint=[argv[0]], command=list(argv[1:]) or None, user="0", hostname=HOSTNAME,
            host_config=host_config, network_disabled=True,
        )  # fmt: skip
        container = str(created["Id"])
        if not client.put_archive(container, ARCHIVE_AT, archive):
            raise BuildFailed(f"the engine refused the venv step's files for image {short_id(image)}", "build again")
        client.start(container)
        code = _wait(client, container, argv, timeout)
        if code != 0:
            raise _failed(client, container, argv, code)
        unexpected = unexpected_change(list(client.diff(container) or []))
        if unexpected:
            raise BuildFailed(
                f"image build failed: the venv step left {unexpected} in the image", "this is a slimbuild or template bug"
            )
        return str(client.commit(container, message="slimbuild venv")["Id"])
    except docker.errors.APIError as exc:
        raise BuildFailed(
            f"image build failed: the venv step in image {short_id(image)}: {one_line(str(exc.explanation or exc))}",
            "check the base image and the engine",
        ) from None
    finally:
        if container is not None:
            remove_quietly(client, container)
