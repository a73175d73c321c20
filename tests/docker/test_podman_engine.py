"""M14: podman's Docker-compatible API (``podman system service``) as slimbuild's engine: build, smoke run, tag.

The service is private to this module: its own storage root and run root, a unix socket in a temporary
directory, and a containers.conf of its own. The test base comes from the first engine by ``docker save``.

What podman 4.3 (Debian bookworm) does differently, and what slimbuild does about it (README "Podman"):

* ``POST /images/load`` refuses the config-only archive of the normalisation step ("payload does not match any
  of the supported image formats"): slimbuild sends the saved image again with the normalised config (same id);
* it answers a load with ``Loaded image: sha256:<id>``, not ``Loaded image ID:``;
* it names a loaded image ``localhost/<name>`` and a tag ``docker.io/<name>``;
* it writes RLIMIT_NOFILE/RLIMIT_NPROC into every container's spec (root: up to ``fs.nr_open``), which a host
  without CAP_SYS_RESOURCE refuses (runc: "error setting rlimit type 6: operation not permitted"): the
  containers.conf below pins them to values below this process's limits.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from slimbuild.errors import EngineUnavailable
from slimbuild.image.engine import DockerEngine, connect
from tests.constants import OK
from tests.docker.conftest import BASE_IMAGE, _no_engine
from tests.docker.test_image_properties import build_env, cli
from tests.docker.test_remote_engine import _project

pytestmark = pytest.mark.docker

PODMAN = shutil.which("podman")


@pytest.fixture(scope="module")
def podman(engine: DockerEngine) -> Iterator[str]:
    """DOCKER_HOST of a private ``podman system service`` holding the test base; stopped and removed at the end."""
    if PODMAN is None:
        _no_engine("podman is not installed; run: bash scripts/docker-up.sh")
    root = Path(tempfile.mkdtemp(prefix="sb-podman-", dir="/tmp"))
    # lowered, never raised (that would need CAP_SYS_RESOURCE): podman and conmon run below this process's limits
    nofile = min(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    nproc = min(8192, resource.getrlimit(resource.RLIMIT_NPROC)[1])
    conf = root / "containers.conf"
    conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n', encoding="utf-8")
    host = f"unix://{root / 'podman.sock'}"
    storage = ["--root", str(root / "storage"), "--runroot", str(root / "run"), "--storage-driver", "overlay"]
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    log = (root / "podman.log").open("wb")
    proc = subprocess.Popen(
        [PODMAN, *storage, "system", "service", "--time=0", host],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                second = connect({"DOCKER_HOST": host}, timeout=30)
                break
            except EngineUnavailable:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"podman system service did not start: {(root / 'podman.log').read_text()[-1500:]}")
                time.sleep(0.3)
        for message in second.client.load_image(engine.client.get_image(BASE_IMAGE)):
            assert "error" not in message, message
        second.close()
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
        subprocess.run([PODMAN, *storage, "system", "reset", "--force"], env=env, capture_output=True, check=False, timeout=120)
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)


def test_M14_build_smoke_run_and_tag_through_podman(podman: str, engine: DockerEngine, tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex[:10]
    root = _project(tmp_path / "proj", nonce)
    tag = f"slimbuild-test/m14-{nonce}:v1"
    code, out, err = cli(
        "build", str(root), "--base-image", BASE_IMAGE, "-t", tag, "--json", env={**build_env(), "DOCKER_HOST": podman}
    )
    assert code == OK, err
    (image,) = json.loads(out)["images"]
    doc = json.loads(Path(image["manifest"]).read_text(encoding="utf-8"))
    assert doc["smoke"] and all(run["ok"] and run["exit_code"] == 0 for run in doc["smoke"])
    pod = connect({"DOCKER_HOST": podman})
    try:
        info = pod.inspect_image(image["image_id"])
        assert info["Id"] == image["image_id"]  # the normalised config was loaded: its digest is the id
        assert f"docker.io/{tag}" in info["RepoTags"]  # podman's compat API spells a short name out in full
        assert str(info["Created"]).startswith("2023-11-14T22:13:20")  # SOURCE_DATE_EPOCH, not the build's clock
        ran = pod.run(image["image_id"], ["/opt/venv/bin/python", "/app/main.py"], user="10001", timeout=60)
        assert ran.exit_code == 0 and f"remote {nonce} True" in ran.output
    finally:
        pod.close()
    assert not engine.client.images(name=tag.split(":")[0])  # the first engine is untouched
