"""Real-engine fixtures: the session's engine, a context-tar helper, labelled builds pruned at the end.

Under ``CI=true`` a missing engine FAILS every docker test (it must never be silently skipped);
elsewhere the tests skip with the reason and the command that starts an engine.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import pytest

from slimbuild.errors import EngineUnavailable
from slimbuild.image.build_stream import BuildOutcome, ProgressEvent
from slimbuild.image.engine import DockerEngine, connect

BASE_IMAGE = os.environ.get("SLIMBUILD_BASE_IMAGE", "slimbuild-test/debian-python:bookworm")
SESSION = uuid.uuid4().hex[:12]
# Every image and container a docker test creates carries both labels; only this session's are pruned,
# so engineers running the docker tier at the same time do not delete each other's images.
TEST_LABELS: Mapping[str, str] = {"slimbuild.test": "1", "slimbuild.test.session": SESSION}
START_HINT = "start one with: bash scripts/docker-up.sh"


def _no_engine(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true but the docker tier cannot run: {reason}; {START_HINT}", pytrace=False)
    pytest.skip(f"no usable Docker engine: {reason}; {START_HINT}")


def _prune(client: Any) -> None:
    """Remove this session's containers and images (best effort)."""
    selector = {"label": f"slimbuild.test.session={SESSION}"}
    for container in client.containers(all=True, filters=selector):
        try:
            client.remove_container(container["Id"], force=True, v=True)
        except Exception:  # noqa: BLE001 - cleanup must not mask the test result
            pass
    for image in client.images(all=True, filters=selector):
        try:
            client.remove_image(image["Id"], force=True)
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    """The real engine (DOCKER_HOST or the default socket), with the base image present."""
    try:
        eng = connect()
    except EngineUnavailable as exc:
        _no_engine(exc.one_line())
    if not eng.client.images(name=BASE_IMAGE):
        _no_engine(f"base image {BASE_IMAGE} is missing")
    yield eng
    _prune(eng.client)
    eng.close()


def make_context(dockerfile: str, files: Mapping[str, bytes] | None = None) -> bytes:
    """An uncompressed build-context tar holding the Dockerfile and extra files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted({"Dockerfile": dockerfile.encode(), **(files or {})}.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


Build = Callable[..., BuildOutcome]


@pytest.fixture
def nonce() -> str:
    """A per-test marker that makes Dockerfiles (hence images and build cache keys) unique."""
    return uuid.uuid4().hex[:16]


@pytest.fixture
def build(engine: DockerEngine) -> Build:
    """Build ``FROM <base>`` plus the given Dockerfile body, labelled for pruning."""

    def _build(body: str, *, events: list[ProgressEvent] | None = None, **kwargs: Any) -> BuildOutcome:
        context = make_context(f"FROM {BASE_IMAGE}\n{body}")
        return engine.build(context, labels=TEST_LABELS, on_progress=events.append if events is not None else None, **kwargs)

    return _build


# ----------------------------------------------------------------------------- a real registry on 127.0.0.1

REGISTRY = shutil.which("docker-registry")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def registry_server(tmp: Path, *, htpasswd: tuple[str, str] | None = None) -> Iterator[str]:
    """host:port of Debian's docker-registry serving on 127.0.0.1 only, until the block ends.

    With ``htpasswd=(user, password)`` it requires that basic-auth login (bcrypt htpasswd file); the engine
    talks plain HTTP to it because 127.0.0.0/8 registries are insecure-by-default for dockerd.
    """
    if REGISTRY is None:
        _no_engine("docker-registry is not installed; run: bash scripts/docker-up.sh")
    tmp.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    auth = ""
    if htpasswd is not None:
        import bcrypt

        user, password = htpasswd
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
        (tmp / "htpasswd").write_text(f"{user}:{hashed}\n", encoding="utf-8")
        auth = f"auth:\n  htpasswd:\n    realm: slimbuild-test\n    path: {tmp / 'htpasswd'}\n"
    config = tmp / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}",
        encoding="utf-8",
    )
    log = (tmp / "registry.log").open("wb")
    proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=2):
                    break
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # up, and asking for the login
                    break
                raise
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the registry did not start: {(tmp / 'registry.log').read_text()[-2000:]}")
                time.sleep(0.2)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of an open registry on loopback, for one test module."""
    with registry_server(tmp_path_factory.mktemp("registry")) as address:
        yield address


def registry_digest(address: str, repo: str, tag: str) -> str:
    """The digest the registry on 127.0.0.1 serves for repo:tag (its Docker-Content-Digest header)."""
    req = urllib.request.Request(
        f"http://{address}/v2/{repo}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.headers["Docker-Content-Digest"])


def record_line(name: str, data: bytes) -> str:
    """A wheel RECORD row for a member: its name, urlsafe-base64 sha256 and size."""
    import base64
    import hashlib

    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_platform_wheel(out: Path, dist: str, files: Mapping[str, bytes]) -> Path:
    """A manylinux wheel ``<dist>-1.0`` in the new find-links dir ``out``: ``files`` plus METADATA, WHEEL,
    top_level.txt and a RECORD with every member's sha256 (as pip writes it)."""
    import zipfile

    info = f"{dist}-1.0.dist-info"
    members = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 1.0\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: py3-none-manylinux_2_17_x86_64\n",
        f"{info}/top_level.txt": f"{dist}\n".encode(),
    }

    record = "\n".join([*(record_line(n, d) for n, d in members.items()), f"{info}/RECORD,,"]) + "\n"
    out.mkdir()
    with zipfile.ZipFile(out / f"{dist}-1.0-py3-none-manylinux_2_17_x86_64.whl", "w") as zf:
        for name, data in [*members.items(), (f"{info}/RECORD", record.encode())]:
            zf.writestr(name, data)
    return out
