"""G23: the deps image from a committed venv container (pipeline/imaging.py, image/engine_commit.py) on a real engine.

The bundled slim template takes that path for a wheels-only lock; a user template directory holding only the same
Dockerfile.j2 (no venv.sh.j2) takes the Dockerfile's builder stage. Both images of the same project and lock must hold
the same files, modes, owners, sizes, contents and mtimes under /opt/venv, the same passwd, group and /app, and /opt,
/etc and /tmp alike (but /etc's mtime in an export, which the export's own container sets), and the same layer diff
ids, so nothing is left out: the venv step works in /opt/slimbuild-venv (TMPDIR too) and
removes it, so the layers are the same layers, diff id for diff id.
A venv script that fails is a build failure with its output, no tag and no container left.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slimbuild.image.engine import DockerEngine
from slimbuild.image.render import bundled_template_dir
from tests.conftest import Run
from tests.constants import BUILD, OK
from tests.docker.conftest import BASE_IMAGE, SESSION
from tests.docker.test_build_examples import SHARED_CACHE
from tests.docker.test_image_properties import EPOCH, write_project

pytestmark = pytest.mark.docker
RUN_ID = uuid.uuid4().hex[:8]
VENV_SCRIPT = "/opt/slimbuild-venv/venv.sh"


@pytest.fixture(autouse=True)
def _shared_wheels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))


class _TarStream:
    """A file object over the engine's export chunks (tarfile's stream mode reads it once)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buf = chunks, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buf += chunk
        out, self._buf = (self._buf, b"") if size < 0 else (self._buf[:size], self._buf[size:])
        return out


def _listing(engine: DockerEngine, image: str) -> dict[str, tuple[Any, ...]]:
    """Each exported path under opt/, etc/passwd, etc/group, app/, tmp/ of a container of IMAGE: what it is."""
    client = engine.client
    container = client.create_container(image, labels={"slimbuild.test.session": SESSION})["Id"]
    found: dict[str, tuple[Any, ...]] = {}
    try:
        with tarfile.open(fileobj=_TarStream(iter(client.export(container))), mode="r|") as tar:  # type: ignore[call-overload]
            for m in tar:
                name = m.name.rstrip("/")
                wanted = name in {"opt", "etc", "tmp", "etc/passwd", "etc/group"} or name.startswith(("opt/", "tmp/", "app"))
                if not wanted:
                    continue
                digest = hashlib.sha256(tar.extractfile(m).read()).hexdigest() if m.isfile() else ""  # type: ignore[union-attr]
                found[name] = (m.type, m.mode, m.uid, m.gid, m.size, m.linkname, digest, int(m.mtime))
    finally:
        client.remove_container(container, force=True)
    return found


def _venv_containers(engine: DockerEngine) -> list[str]:
    return [str(c["Id"]) for c in engine.client.containers(all=True) if VENV_SCRIPT in str(c.get("Command") or "")]


def test_G23_the_venv_image_holds_the_files_the_builder_stage_gives_and_no_work_dir(
    engine: DockerEngine, run_cli: Callable[..., Run], tmp_path: Path
) -> None:
    name = f"sbvenv-{RUN_ID}"
    root = write_project(tmp_path / "p", name, tmp_path / "outside.txt")
    template = tmp_path / "builder-template"
    template.mkdir()
    shutil.copy(bundled_template_dir() / "slim" / "Dockerfile.j2", template / "Dockerfile.j2")  # no venv.sh.j2
    ids = {}
    for path, extra in (("venv", []), ("builder", ["--template", str(template)])):
        run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--no-cache", "-t", f"slimbuild/{name}:{path}", *extra)
        assert run.code == OK, run.err
        ids[path] = str(engine.inspect_image(f"slimbuild/{name}:{path}")["Id"])
    history = [str(h.get("CreatedBy")) for h in engine.history(ids["venv"])]
    assert VENV_SCRIPT in history  # the committed venv layer, made without a builder stage
    assert not any(VENV_SCRIPT in str(h.get("CreatedBy")) for h in engine.history(ids["builder"]))
    venv, builder = _listing(engine, ids["venv"]), _listing(engine, ids["builder"])
    assert not any(n == "tmp/slimbuild-venv" or n.startswith("tmp/slimbuild-venv/") for n in venv)
    assert not any(n.startswith("tmp/") for n in venv) and not any(n.startswith("tmp/") for n in builder)
    in_venv = {n for n in venv if n.startswith("opt/venv")}
    assert in_venv and in_venv == {n for n in builder if n.startswith("opt/venv")}
    for n in sorted(in_venv | {"etc/passwd", "etc/group", "app"}):
        assert venv[n] == builder[n], n  # type, mode, owner, size, link, content and mtime
    for n in ("opt", "tmp"):
        assert venv[n] == builder[n], n  # the same directory, mtime included
    # /etc's mtime in an export is the export container's (the engine writes its hostname, hosts, resolv.conf there)
    assert venv["etc"][:7] == builder["etc"][:7]
    assert not any(n.startswith("opt/slimbuild-venv") for n in venv)
    layers = [engine.inspect_image(ids[p])["RootFS"]["Layers"] for p in ("venv", "builder")]
    # byte for byte the same base and venv layers (the app layers differ: the embedded manifests name other templates)
    assert layers[0][:-1] == layers[1][:-1] and len(layers[0]) == len(layers[1])
    engine.untag(f"slimbuild/{name}:venv")
    engine.untag(f"slimbuild/{name}:builder")


def test_G23_a_failing_venv_script_is_a_build_failure_with_no_tag_and_no_container(
    engine: DockerEngine, run_cli: Callable[..., Run], tmp_path: Path
) -> None:
    name = f"sbvenvfail-{RUN_ID}"
    root = write_project(tmp_path / "p", name, tmp_path / "outside.txt")
    template = tmp_path / "failing-template"
    template.mkdir()
    shutil.copy(bundled_template_dir() / "slim" / "Dockerfile.j2", template / "Dockerfile.j2")
    (template / "venv.sh.j2").write_text("echo 'venv step broke here' >&2\nexit 3\n", encoding="utf-8")
    before = set(_venv_containers(engine))
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--no-cache", "--template", str(template))
    assert run.code == BUILD, run.err
    assert "Traceback" not in run.err
    (line,) = [x for x in run.err.splitlines() if x.startswith("slimbuild: error:")]
    assert "venv step" in line and "exited 3" in line and "venv step broke here" in line
    assert not engine.client.images(name=f"slimbuild/{name}")
    assert set(_venv_containers(engine)) <= before  # the venv container was removed
    assert not (root / "slimbuild.manifest.json").exists()
