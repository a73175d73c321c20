"""G20-G24: the deps image from a committed venv container (pipeline/imaging.py, image/engine_commit.py).

Which plans take that path and which keep the Dockerfile's builder stage; the build's sequence against the
FakeEngine; the Docker side of ``commit_run`` against a recording stand-in for docker-py's APIClient (the container
config it creates, what it refuses to commit, that the container always goes); the in-place staging. The real
engine proves the image in tests/docker/test_venv_commit.py.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from slimbuild.errors import BuildFailed, Interrupted
from slimbuild.image import engine_commit
from slimbuild.image.engine import DockerEngine, EngineInfo
from slimbuild.image.layers import LayerUnit
from slimbuild.image.render import render_dockerfile, render_venv_script
from slimbuild.image.stage_inplace import finish_in_place
from slimbuild.pipeline import imaging
from tests.unit.image.test_render import PLAN, _stage
from tests.unit.pipeline.test_build_orchestration import (  # noqa: F401 - fixtures used by name
    BASE,
    FakeEngine,
    _build,
    _members,
    _write_project,
    cache,
    fake_lock,
)

VENV_ID = "sha256:" + "7" * 64


class _Info:
    def __init__(self, podman: bool = False) -> None:
        self.podman = podman

    def info(self) -> EngineInfo:
        return EngineInfo("fake://", "1.41", "0", "linux", "x86_64", podman=self.podman)


def _route(plan: Any, template_dir: Path | None = None, podman: bool = False) -> str | None:
    return imaging._venv_route(_Info(podman), SimpleNamespace(plan=plan, template_dir=template_dir))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- G20: which plans take which path


@pytest.mark.parametrize(
    ("case", "changes"),
    [
        ("an opted-in sdist", {"sdists": ("mylib",)}),
        ("system-packages debs", {"debs": ("libgomp1_12.2.0-14_amd64.deb",)}),
        ("one layer per distribution", {"layers": (LayerUnit("0123456789abcdef", ("six",)),)}),
        ('prune = "traced"', {"traced": True}),
        ("a runtime base other than the builder's", {"runtime_image": "python:3.11-slim@sha256:" + "c" * 64}),
    ],
)
def test_G20_plans_beyond_the_common_case_keep_the_dockerfile_path(case: str, changes: dict[str, Any]) -> None:
    assert _route(PLAN) is not None  # the common case: the venv container
    assert _route(dataclasses.replace(PLAN, **changes)) is None, case


def test_G20_podman_and_templates_without_venv_sh_keep_the_dockerfile_path(tmp_path: Path) -> None:
    assert _route(PLAN, podman=True) is None  # README "Podman"
    assert _route(dataclasses.replace(PLAN, template="distroless")) is None  # no venv.sh.j2 bundled for it
    (tmp_path / "Dockerfile.j2").write_text(render_dockerfile(PLAN).replace("{", "{{ '{' }}"))
    assert _route(PLAN, tmp_path) is None  # a user template of its own: its Dockerfile makes the venv


def test_G20_the_venv_script_runs_the_stage_script_as_the_builder_run_does_and_in_place() -> None:
    script = render_venv_script(PLAN)
    assert script is not None
    run = next(i.value for i in _stage(render_dockerfile(PLAN), "builder") if i.keyword == "RUN")
    stage_args = run.split("slimbuild-stage.py", 1)[1].replace("/tmp/requirements.lock", "LOCK").replace("/wheels/", "W/")
    flat = " ".join(script.replace("\\\n", " ").split())
    mine = flat.split("slimbuild-stage.py", 1)[1].replace("/opt/slimbuild-venv/requirements.lock", "LOCK")
    mine = mine.replace("/opt/slimbuild-venv/wheels/", "W/").replace(" --in-place /opt/slimbuild-venv", "")
    assert " ".join(stage_args.replace("\\", " ").split()) == mine.strip()  # the same flags, pip command and lock
    assert "--in-place /opt/slimbuild-venv" in flat and '"$PY" -m venv --without-pip /opt/venv' in flat
    assert f"export SOURCE_DATE_EPOCH={PLAN.source_date_epoch}" in flat


def test_G20_a_dockerfile_on_the_venv_image_has_no_builder_and_no_copy_in_deps() -> None:
    text = render_dockerfile(dataclasses.replace(PLAN, venv_image=VENV_ID))
    assert "AS builder" not in text and f"FROM {VENV_ID} AS deps" in text
    deps = [i.keyword for i in _stage(text, "deps")]
    assert "COPY" not in deps and "RUN" not in deps
    assert {"LABEL", "ENV", "WORKDIR", "ENTRYPOINT", "CMD"} <= set(deps)
    with pytest.raises(Exception, match="venv image"):
        render_dockerfile(dataclasses.replace(PLAN, venv_image="latest"))


# ----------------------------------------------------------------------------- G21: the build's sequence


@pytest.mark.usefixtures("fake_lock")
def test_G21_build_commits_the_venv_then_builds_deps_on_it_and_reuses_the_record(tmp_path: Path) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine()
    (first,) = _build(root, engine)
    (commit,) = [c for c in engine.calls if c[0] == "commit_run"]
    assert commit[1] == BASE and commit[2] == ("/bin/sh", "/opt/slimbuild-venv/venv.sh")
    names = set(_members(engine.archives[0]))
    with tarfile.open(fileobj=io.BytesIO(engine.archives[0])) as tar:
        dirs = {m.name for m in tar if m.isdir()}
    assert "opt" not in dirs and all(n.startswith("slimbuild-venv/") for n in names)  # /opt itself is never replaced
    assert {"slimbuild-venv/venv.sh", "slimbuild-venv/slimbuild-stage.py", "slimbuild-venv/stage_prune.py",
            "slimbuild-venv/stage_inplace.py", "slimbuild-venv/requirements.lock"} <= names  # fmt: skip
    assert not any(n.startswith("slimbuild-venv/image/") for n in names)  # no app file in the venv step
    assert [t for t, _ in engine.contexts] == ["deps", ""]
    deps_dockerfile = _members(engine.contexts[0][1])["Dockerfile"].decode()
    venv_id = deps_dockerfile.split("\nFROM ", 1)[1].split()[0]
    assert venv_id in engine.images and f"FROM {venv_id} AS deps" in deps_dockerfile and "AS builder" not in deps_dockerfile
    engine.calls.clear()
    engine.contexts.clear()
    (second,) = _build(root, engine)  # the recorded deps image: no venv step, no deps build
    assert [c[0] for c in engine.calls if c[0] in {"commit_run", "build"}] == ["build"]
    assert second.image_id == first.image_id
    engine.calls.clear()
    _build(root, engine, nocache=True)  # --no-cache: the same path again, from the venv step
    assert [c[0] for c in engine.calls if c[0] in {"commit_run", "build"}] == ["commit_run", "build", "build"]


@pytest.mark.usefixtures("fake_lock")
def test_G21_a_failing_deps_build_on_the_venv_image_removes_it(tmp_path: Path) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine(fail_build=BuildFailed("image build failed: boom", ""), fail_build_at=0)
    with pytest.raises(BuildFailed):
        _build(root, engine)
    (commit_index,) = [i for i, c in enumerate(engine.calls) if c[0] == "commit_run"]
    removed = [c[1] for c in engine.calls[commit_index:] if c[0] == "remove_image"]
    assert removed and removed[0] not in engine.images  # the committed venv image, which nothing refers to
    assert engine.refs == {}


# ----------------------------------------------------------------------------- G22: commit_run on docker-py


class _Client:
    """docker.APIClient's calls commit_run makes, recorded; ``exit_code``, ``changes`` and ``wait_raises`` steer it."""

    def __init__(self, *, exit_code: int = 0, changes: list[dict[str, Any]] | None = None, wait_raises: Any = None) -> None:
        self.exit_code, self.wait_raises = exit_code, wait_raises
        self.changes = changes if changes is not None else [
            {"Path": "/opt", "Kind": 0}, {"Path": "/opt/venv", "Kind": 1}, {"Path": "/opt/venv/bin/python", "Kind": 1},
            {"Path": "/etc", "Kind": 0}, {"Path": "/etc/passwd", "Kind": 0}, {"Path": "/etc/group", "Kind": 0},
            {"Path": "/app", "Kind": 1},
        ]  # fmt: skip
        self.calls: list[tuple[str, Any]] = []

    def create_host_config(self, **kw: Any) -> dict[str, Any]:
        return dict(kw)

    def create_container(self, image: str, **kw: Any) -> dict[str, str]:
        self.calls.append(("create", {"image": image, **kw}))
        return {"Id": "c0ffee"}

    def put_archive(self, container: str, path: str, data: Any) -> bool:
        self.calls.append(("put_archive", path))
        return True

    def start(self, container: str) -> None:
        self.calls.append(("start", container))

    def wait(self, container: str, timeout: float) -> dict[str, int]:
        if self.wait_raises is not None:
            raise self.wait_raises
        return {"StatusCode": self.exit_code}

    def logs(self, container: str, **kw: Any) -> bytes:
        return b"line 1\nERROR: Could not find a version that satisfies the requirement\n"

    def diff(self, container: str) -> list[dict[str, Any]]:
        return self.changes

    def commit(self, container: str, **kw: Any) -> dict[str, str]:
        self.calls.append(("commit", kw))
        return {"Id": VENV_ID}

    def kill(self, container: str) -> None:
        self.calls.append(("kill", container))

    def remove_container(self, container: str, **kw: Any) -> None:
        self.calls.append(("remove", container))


def _engine(client: _Client) -> DockerEngine:
    return DockerEngine(client, EngineInfo("unix://x", "1.41", "24", "linux", "x86_64"))


def test_G22_the_venv_container_has_no_labels_no_network_root_and_a_fixed_hostname_and_is_removed() -> None:
    client = _Client()
    assert (
        _engine(client).commit_run("sha256:" + "b" * 64, b"tar", ["/bin/sh", "/opt/slimbuild-venv/venv.sh"], timeout=5) == VENV_ID
    )
    create = dict(client.calls)["create"]
    assert "labels" not in create and create["user"] == "0" and create["hostname"] == engine_commit.HOSTNAME
    assert create["network_disabled"] is True and create["host_config"] == {"network_mode": "none"}
    assert [c[0] for c in client.calls] == ["create", "put_archive", "start", "commit", "remove"]
    assert ("put_archive", "/opt") in client.calls


@pytest.mark.parametrize(
    ("case", "client", "message"),
    [
        ("the script fails", _Client(exit_code=1), "exited 1: line 1 | ERROR: Could not find a version"),
        (
            "the work dir is left",
            _Client(changes=[{"Path": "/opt/slimbuild-venv", "Kind": 1}]),
            "left /opt/slimbuild-venv (added)",
        ),
        ("a path outside the venv", _Client(changes=[{"Path": "/root/.cache", "Kind": 1}]), "left /root/.cache (added)"),
        ("/tmp touched (the builder's layer has no /tmp)", _Client(changes=[{"Path": "/tmp", "Kind": 0}]), "left /tmp (changed)"),
        ("a file of the base deleted", _Client(changes=[{"Path": "/etc/motd", "Kind": 2}]), "left /etc/motd (deleted)"),
    ],
)
def test_G22_a_failed_or_unexpected_venv_step_is_a_build_failure_without_a_commit(
    case: str, client: _Client, message: str
) -> None:
    with pytest.raises(BuildFailed, match="image build failed") as info:
        _engine(client).commit_run("sha256:" + "b" * 64, b"tar", ["/bin/sh", "venv.sh"], timeout=5)
    assert message in str(info.value), case
    assert "commit" not in [c[0] for c in client.calls] and client.calls[-1] == ("remove", "c0ffee")
    assert info.value.exit_code == BuildFailed("", "").exit_code


def test_G22_an_interrupt_during_the_venv_step_removes_the_container() -> None:
    client = _Client(wait_raises=KeyboardInterrupt())
    with pytest.raises(Interrupted):
        _engine(client).commit_run("sha256:" + "b" * 64, b"tar", ["/bin/sh", "venv.sh"], timeout=5)
    assert client.calls[-1] == ("remove", "c0ffee") and "commit" not in [c[0] for c in client.calls]


# ----------------------------------------------------------------------------- G24: the in-place staging


def test_G24_in_place_staging_appends_the_user_creates_app_removes_the_work_dir_and_clamps(tmp_path: Path) -> None:
    venv, etc, work, app = tmp_path / "opt" / "venv", tmp_path / "etc", tmp_path / "opt" / "slimbuild-venv", tmp_path / "app"
    (venv / "lib").mkdir(parents=True)
    (venv / "lib" / "m.py").write_text("x = 1\n")
    os.symlink("/usr/bin/python3", venv / "python")
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\n")
    (work / "wheels").mkdir(parents=True)
    finish_in_place(str(venv), 10001, 1_000_000, str(work), etc=str(etc), app=str(app))
    assert (etc / "passwd").read_text().endswith("app:x:10001:10001:app:/app:/usr/sbin/nologin\n")
    assert (etc / "group").read_text() == "root:x:0:\napp:x:10001:\n"
    assert app.is_dir() and not work.exists()
    clamped = [venv, venv / "lib", venv / "lib" / "m.py", app, etc / "passwd", etc / "group", venv.parent, etc]
    assert {p.lstat().st_mtime for p in clamped} | {(venv / "python").lstat().st_mtime} == {1_000_000}
