"""Faults injected into the real engine during ``slimbuild build`` (RELIABILITY groups E, B, D4).

Every case runs the CLI (in-process, or as a subprocess for SIGINT) and asserts the documented
exit code, a one-line error without a traceback, and that nothing was tagged or left behind.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimbuild.image.engine import DockerEngine
from tests.conftest import Run
from tests.constants import BUILD, ENGINE, INTERRUPTED, OK, POLICY, USAGE
from tests.docker.conftest import BASE_IMAGE
from tests.docker.test_build_examples import SHARED_CACHE
from tests.docker.test_image_properties import EPOCH, write_project

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]
RUN_ID = uuid.uuid4().hex[:8]


@pytest.fixture(autouse=True)
def _shared_wheels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., tuple[Path, str]]:
    """A fresh copy of the test project with a unique name (so its repository slimbuild/<name> is ours)."""

    def _make(case: str, pyproject_extra: str = "") -> tuple[Path, str]:
        name = f"sbfault-{case.lower()}-{RUN_ID}"
        root = write_project(tmp_path / case, name, tmp_path / f"{case}-outside.txt", pyproject_extra=pyproject_extra)
        return root, name

    return _make


def _error_line(run: Run) -> str:
    """The single error line (progress lines are allowed before it); never a traceback."""
    assert "Traceback" not in run.err, run.err
    errors = [line for line in run.err.splitlines() if line.startswith("slimbuild: error:")]
    assert len(errors) == 1, run.err
    return errors[0]


def _repo_images(engine: DockerEngine, name: str) -> list[Any]:
    return list(engine.client.images(name=f"slimbuild/{name}"))


def _images_built_for(engine: DockerEngine, name: str) -> list[str]:
    """Images (tagged or not) carrying slimbuild's build labels whose manifest names this project."""
    found = []
    for image in engine.client.images(all=True, filters={"label": "io.slimbuild.manifest-sha256"}):
        labels = image.get("Labels") or {}
        if f"{name} " in labels.get("org.opencontainers.image.title", "") or name in labels.get("io.slimbuild.manifest", ""):
            found.append(str(image["Id"]))
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- E1


def test_E1_dead_docker_host_exits_6_and_lock_stays_valid(
    make: Callable[..., tuple[Path, str]], run_cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = make("E1")
    locked = run_cli("lock", str(root))
    assert locked.code == OK, locked.err
    lock_file = root / "slimbuild.lock"
    before = hashlib.sha256(lock_file.read_bytes()).hexdigest()

    port = _free_port()
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE)
    assert run.code == ENGINE, run.err
    line = _error_line(run)
    assert f"Docker daemon not reachable at tcp://127.0.0.1:{port}" in line
    assert hashlib.sha256(lock_file.read_bytes()).hexdigest() == before
    assert not (root / "slimbuild.manifest.json").exists()

    # Without any engine, lock and analyze still work and the lock is unchanged (still valid).
    again = run_cli("lock", str(root))
    assert again.code == OK, again.err
    assert hashlib.sha256(lock_file.read_bytes()).hexdigest() == before
    assert run_cli("analyze", str(root)).code == OK


# ----------------------------------------------------------------------------- E4 / E7-style smoke failure


def test_E4_failing_smoke_command_exits_7_without_tag(
    engine: DockerEngine, make: Callable[..., tuple[Path, str]], run_cli: Callable[..., Run]
) -> None:
    smoke = 'smoke = ["python", "-c", "print(\'smoke-tail-marker\'); import sys; sys.exit(3)"]\n'
    root, name = make("E4", smoke)
    assert _repo_images(engine, name) == []
    try:
        run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--tag", f"slimbuild-test/{name}:user")
        assert run.code == BUILD, run.err
        line = _error_line(run)
        assert "smoke run failed (exit 3)" in line
        assert "smoke-tail-marker" in line  # the output tail
        assert "no tag was applied" in line
        assert _repo_images(engine, name) == []
        assert engine.client.images(name=f"slimbuild-test/{name}") == []
        assert _images_built_for(engine, name) == []  # the untagged image was removed too
        assert not (root / "slimbuild.manifest.json").exists()
    finally:
        for image in [*_repo_images(engine, name), *engine.client.images(name=f"slimbuild-test/{name}")]:
            engine.client.remove_image(image["Id"], force=True)


# ----------------------------------------------------------------------------- base image missing / D4


def test_E4_E21_missing_base_image_exits_2_with_hint(
    engine: DockerEngine, make: Callable[..., tuple[Path, str]], run_cli: Callable[..., Run]
) -> None:
    root, name = make("base")
    ref = f"slimbuild-test/no-such-base-{RUN_ID}:1"
    run = run_cli("build", str(root), "--base-image", ref)
    assert run.code == USAGE, run.err
    line = _error_line(run)
    assert f"no such image: base image {ref!r}" in line and f"docker pull {ref}" in line
    assert _repo_images(engine, name) == []
    assert not (root / "slimbuild.manifest.json").exists()


def test_D4_unpinned_latest_base_the_engine_lacks_is_a_clear_error(
    engine: DockerEngine, make: Callable[..., tuple[Path, str]], run_cli: Callable[..., Run]
) -> None:
    root, name = make("D4")
    ref = "python:latest" if not engine.client.images(name="python:latest") else f"slimbuild-test/unpinned-{RUN_ID}:latest"
    run = run_cli("build", str(root), "--base-image", ref)
    # RELIABILITY D4 asks for exit 10 for `latest`; an unavailable ref may fail first with exit 2 (E21).
    assert run.code in (USAGE, POLICY), run.err
    line = _error_line(run)
    assert ref in line
    assert "docker pull" in line or "@sha256:" in line  # says what to do
    assert _repo_images(engine, name) == []


# ----------------------------------------------------------------------------- B1 / B6


def test_B1_needed_symlink_escaping_the_project_exits_10(
    engine: DockerEngine, make: Callable[..., tuple[Path, str]], run_cli: Callable[..., Run], tmp_path: Path
) -> None:
    root, name = make("B1", "")
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    (root / "pyproject.toml").write_text(
        text.replace('include = ["data/greeting.txt"]', 'include = ["data/greeting.txt", "data/secret.csv"]'),
        encoding="utf-8",
    )
    outside = tmp_path / "B1-secret.csv"
    outside.write_text("outside-b1-canary\n", encoding="utf-8")
    (root / "data" / "secret.csv").symlink_to(outside)
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--keep-context")
    assert run.code == POLICY, run.err
    line = _error_line(run)
    assert "symlink escapes project root" in line and "data/secret.csv" in line
    assert "outside-b1-canary" not in run.err + run.out
    assert not (root / ".slimbuild-context.tar").exists()
    assert _repo_images(engine, name) == []


def test_B6_needed_secret_file_exits_10(
    engine: DockerEngine, make: Callable[..., tuple[Path, str]], run_cli: Callable[..., Run]
) -> None:
    root, name = make("B6", "")
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    (root / "pyproject.toml").write_text(
        text.replace('include = ["data/greeting.txt"]', 'include = ["data/greeting.txt", ".env"]'), encoding="utf-8"
    )
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE)
    assert run.code == POLICY, run.err
    line = _error_line(run)
    assert ".env" in line
    assert "envSecretCanary" not in run.err + run.out
    assert _repo_images(engine, name) == []


# ----------------------------------------------------------------------------- E10


def _slow_template(root: Path, marker: str) -> None:
    """A user template = the bundled slim one plus a long RUN in the runtime stage (uncached: it names MARKER)."""
    text = (REPO / "templates" / "slim" / "Dockerfile.j2").read_text(encoding="utf-8")
    anchor = "FROM deps AS runtime\n"
    assert text.count(anchor) == 1, "the slim template changed: update this test's anchor"
    slow = f"RUN echo {marker}; sleep 300\n"
    (root / "tpl" / "custom").mkdir(parents=True)
    (root / "tpl" / "custom" / "Dockerfile.j2").write_text(text.replace(anchor, anchor + slow), encoding="utf-8")


def _marker_containers(engine: DockerEngine, marker: str) -> list[dict[str, Any]]:
    return [c for c in engine.client.containers(all=True) if marker in str(c.get("Command", ""))]


def test_E10_sigint_during_build_exits_130_and_leaves_nothing(
    engine: DockerEngine, make: Callable[..., tuple[Path, str]], tmp_path: Path
) -> None:
    marker = f"slimbuild-sigint-{uuid.uuid4().hex[:12]}"
    root, name = make("E10", 'template = "./tpl"\n')
    _slow_template(root, marker)
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLIMBUILD_") or k == "SLIMBUILD_CACHE"},
        "TMPDIR": str(tmpdir),
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "slimbuild", "build", str(root), "--base-image", BASE_IMAGE],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 180
        for line in proc.stderr:  # progress lines: "slimbuild: Step N/M : ..."
            lines.append(line)
            if "Step" in line and marker in line:
                break
            assert time.monotonic() < deadline, "".join(lines)
        else:
            pytest.fail("build ended before the slow step:\n" + "".join(lines))
        deadline = time.monotonic() + 60
        while not [c for c in _marker_containers(engine, marker) if c.get("State") == "running"]:
            assert time.monotonic() < deadline, "the slow RUN never started"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(lines) + rest
    assert proc.returncode == INTERRUPTED, err + out
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("slimbuild: error:")] != []
    assert _repo_images(engine, name) == []
    assert _images_built_for(engine, name) == []
    assert list(tmpdir.iterdir()) == []  # the slimbuild-context-* dir (and everything else) is gone
    assert not (root / "slimbuild.manifest.json").exists()
    # The engine cancels the build once the connection drops; forcerm removes its container.
    deadline = time.monotonic() + 60
    while _marker_containers(engine, marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _marker_containers(engine, marker) == []
