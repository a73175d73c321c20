"""Real-engine fixtures: the session's engine, a context-tar helper, labelled builds pruned at the end.

Under ``CI=true`` a missing engine FAILS every docker test (it must never be silently skipped);
elsewhere the tests skip with the reason and the command that starts an engine.
"""

from __future__ import annotations

import io
import os
import tarfile
import uuid
from collections.abc import Callable, Iterator, Mapping
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
