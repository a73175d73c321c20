"""M11-M13: a remote engine over TCP with TLS, as the docker CLI reaches it: a second dockerd these tests start.

The daemon (tests/docker/remote_daemon.py) listens on 127.0.0.1 with trustme certificates, keeps its own data
and exec roots, and gets the test base by ``docker save`` from the first engine, which is otherwise untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest
import trustme

from slimbuild.image.engine import DockerEngine, connect
from tests.constants import ENGINE, OK
from tests.docker.conftest import BASE_IMAGE, _no_engine, registry_digest
from tests.docker.remote_daemon import DOCKERD, RemoteDaemon, free_port, new_root, write_client_certs
from tests.docker.test_image_properties import build_env, cli

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def remote(engine: DockerEngine) -> Iterator[RemoteDaemon]:
    """The second dockerd, up for the module, with the test base loaded; stopped and removed at the end."""
    if DOCKERD is None or os.geteuid() != 0:
        _no_engine("a second dockerd needs root and dockerd on PATH")
    root = new_root()
    daemon = RemoteDaemon(root, storage_driver=str(engine.client.info()["Driver"]))
    try:
        second = daemon.start()
        for message in second.client.load_image(engine.client.get_image(BASE_IMAGE)):
            assert "error" not in message, message
        second.close()
        yield daemon
    finally:
        daemon.stop()
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)


def _project(root: Path, nonce: str, *, runtime_step: str = "") -> Path:
    """A one-dependency project; the nonce makes its image unique (builds are reproducible across engines).

    ``runtime_step``: a Dockerfile line added to the slim template's runtime stage (a template of the project's own).
    """
    root.mkdir(parents=True)
    extra = ""
    if runtime_step:
        text = (REPO / "templates" / "slim" / "Dockerfile.j2").read_text(encoding="utf-8")
        changed = text.replace("FROM deps AS runtime\n", f"FROM deps AS runtime\n{runtime_step}\n")
        assert changed != text, "the slim template changed: update this test"
        (root / "tpl").mkdir()
        (root / "tpl" / "Dockerfile.j2").write_text(changed, encoding="utf-8")
        extra = 'template = "./tpl"\n'
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "m-{nonce}"\nversion = "0.1.0"\ndependencies = ["six"]\n\n'
        f'[tool.slimbuild]\nentrypoint = "main.py"\n{extra}',
        encoding="utf-8",
    )
    (root / "main.py").write_text(f"import six\n\nprint('remote {nonce}', six.PY3)\n", encoding="utf-8")
    return root




def test_M11_build_smoke_run_and_push_through_a_tls_remote_engine(
    remote: RemoteDaemon, engine: DockerEngine, registry: str, tmp_path: Path
) -> None:
    nonce = uuid.uuid4().hex[:10]
    repo = f"slimbuild-test/m11-{nonce}"
    root = _project(tmp_path / "proj", nonce)
    code, out, err = cli(
        "build", str(root), "--base-image", BASE_IMAGE, "-t", f"{registry}/{repo}:v1", "--json", env={**build_env(), **remote.env}
    )
    assert code == OK, err
    (image,) = json.loads(out)["images"]
    doc = json.loads(Path(image["manifest"]).read_text(encoding="utf-8"))
    assert doc["smoke"] and all(run["ok"] and run["exit_code"] == 0 for run in doc["smoke"])  # run on the remote engine
    second = connect(remote.env)
    try:
        built = second.inspect_image(image["image_id"])
        assert f"{registry}/{repo}:v1" in built["RepoTags"]
        with pytest.raises(docker.errors.ImageNotFound):  # built on the remote engine, not on the first one
            engine.client.inspect_image(image["image_id"])
        pushed = [
            str(event["aux"]["Digest"])
            for event in second.client.push(f"{registry}/{repo}", tag="v1", stream=True, decode=True)
            if "error" not in event and (event.get("aux") or {}).get("Digest")
        ]
        assert pushed == [registry_digest(registry, repo, "v1")]
    finally:
        second.close()


def test_M11_the_current_docker_context_reaches_the_remote_engine(
    remote: RemoteDaemon, engine: DockerEngine, tmp_path: Path
) -> None:
    """A context made by the docker CLI itself: the CLI and slimbuild reach the same engine through it."""
    config = tmp_path / "docker-config"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")} | {"DOCKER_CONFIG": str(config)}
    certs = remote.certs
    spec = f"host={remote.url},ca={certs / 'ca.pem'},cert={certs / 'cert.pem'},key={certs / 'key.pem'}"
    for argv in (["context", "create", "m11", "--docker", spec], ["context", "use", "m11"]):
        subprocess.run(["docker", *argv], env=env, check=True, capture_output=True, timeout=30)
    cli_root = subprocess.run(  # the engines share /etc/docker/key.json, hence their ID: tell them by data root
        ["docker", "info", "--format", "{{.DockerRootDir}}"], env=env, check=True, capture_output=True, text=True, timeout=30
    ).stdout.strip()
    via_context = connect(env)
    try:
        assert via_context.info().url == remote.url
        assert via_context.client.info()["DockerRootDir"] == cli_root == str(remote.root / "data")
    finally:
        via_context.close()
    assert connect({**env, "DOCKER_CONTEXT": "default"}).info().url == engine.info().url


def _bad_settings(remote: RemoteDaemon, case: str) -> dict[str, str]:
    if case == "wrong-ca":
        other = trustme.CA()
        certs = write_client_certs(remote.root / "wrong-ca", other, remote.ca.issue_cert("slimbuild-test-client"))
        return {**remote.env, "DOCKER_CERT_PATH": str(certs)}
    if case == "hostname-mismatch":
        return {**remote.env, "DOCKER_HOST": f"tcp://localhost:{remote.port}"}
    if case == "expired-client-cert":
        return {**remote.env, "DOCKER_CERT_PATH": str(remote.expired_client_certs())}
    if case == "no-client-cert":
        bare = remote.root / "bare"
        bare.mkdir(exist_ok=True)
        (bare / "ca.pem").write_bytes((remote.certs / "ca.pem").read_bytes())
        return {**remote.env, "DOCKER_CERT_PATH": str(bare)}
    return {**remote.env, "DOCKER_HOST": f"tcp://127.0.0.1:{free_port()}"}  # unreachable


@pytest.mark.parametrize("case", ["wrong-ca", "hostname-mismatch", "expired-client-cert", "no-client-cert", "unreachable"])
def test_M12_bad_tls_or_unreachable_remote_engine_is_exit_6_naming_the_host(remote: RemoteDaemon, case: str) -> None:
    env = _bad_settings(remote, case)
    started = time.monotonic()
    code, out, err = cli("inspect", "slimbuild-test/m12-absent:none", env=env)
    assert code == ENGINE, err
    assert env["DOCKER_HOST"] in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    pems = [Path(env["DOCKER_CERT_PATH"]) / name for name in ("ca.pem", "cert.pem", "key.pem")]
    bodies = [line for pem in pems if pem.exists() for line in pem.read_text().splitlines() if "-----" not in line]
    assert "BEGIN" not in err + out and not any(line in err + out for line in bodies)
    if case != "unreachable":
        assert "TLS connection to the Docker daemon" in err and "ca.pem" in err, err
    if case == "hostname-mismatch":
        assert "localhost" in err
    assert time.monotonic() - started < 30


def test_M13_remote_engine_killed_mid_build_is_exit_6_and_leaves_no_tag(remote: RemoteDaemon, tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex[:10]
    root = _project(tmp_path / "proj", nonce, runtime_step="RUN sleep 60")
    tag = f"slimbuild-test/m13-{nonce}:v1"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIMBUILD_", "DOCKER_"))} | build_env() | remote.env
    argv = [sys.executable, "-m", "slimbuild", "build", str(root), "--base-image", BASE_IMAGE, "-t", tag]
    second = connect(remote.env)
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        running: list[str] = []
        while not running and proc.poll() is None and time.monotonic() < deadline:
            # the RUN sleep's container (a smoke run's carries slimbuild.run): the build is under way
            running = [str(c["Id"]) for c in second.client.containers() if "slimbuild.run" not in (c.get("Labels") or {})]
            time.sleep(0.1)
        assert running, "the build never started a container on the remote engine"
        remote.kill(running)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        second.close()
    assert proc.returncode == ENGINE, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"slimbuild: error: image build result unknown: connection to the engine at {remote.url} lost"), err
    assert "no tag was created" in line and "Traceback" not in err
    assert not (root / "slimbuild.manifest.json").exists()
    restarted = remote.start()
    try:
        assert not restarted.client.images(name=tag.split(":")[0])
    finally:
        restarted.close()
