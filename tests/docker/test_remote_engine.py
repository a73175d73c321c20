"""M11-M13, M15-M16: a remote engine over TCP with TLS, and over ssh, as the docker CLI reaches it: a second dockerd
these tests start, and a private sshd (tests/docker/ssh_server.py) whose sessions' docker talks to it.

The daemon (tests/docker/remote_daemon.py) listens on 127.0.0.1 with trustme certificates, keeps its own data
and exec roots, and gets the test base by ``docker save`` from the first engine, which is otherwise untouched.
"""

from __future__ import annotations

import datetime
import gc
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
from tests.docker.ssh_server import SSH, SSHD, SSHServer
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


@pytest.fixture(scope="module")
def sshd(remote: RemoteDaemon) -> Iterator[SSHServer]:
    """A private sshd whose sessions reach the second dockerd (``SetEnv``), as a remote build host's own docker does."""
    if SSHD is None or SSH is None:
        _no_engine("the ssh:// tests need openssh-server and openssh-client (scripts/docker-up.sh installs them)")
    root = Path(new_root())
    server = SSHServer(root, remote.env)
    try:
        server.start()
        yield server
    finally:
        server.stop()
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
        "build", str(root), "--base-image", BASE_IMAGE, "--push", "-t", f"{registry}/{repo}:v1", "--json",
        env={**build_env(), **remote.env},
    )  # fmt: skip
    assert code == OK, err
    (image,) = json.loads(out)["images"]
    doc = json.loads(Path(image["manifest"]).read_text(encoding="utf-8"))
    assert doc["smoke"] and all(run["ok"] and run["exit_code"] == 0 for run in doc["smoke"])  # run on the remote engine
    served = registry_digest(registry, repo, "v1")
    assert {"digest": served, "reference": f"{registry}/{repo}:v1"} in doc["pushed"], doc["pushed"]
    second = connect(remote.env)
    try:
        built = second.inspect_image(image["image_id"])
        assert f"{registry}/{repo}:v1" in built["RepoTags"] and f"{registry}/{repo}@{served}" in built["RepoDigests"]
        with pytest.raises(docker.errors.ImageNotFound):  # built and pushed by the remote engine, not by the first one
            engine.client.inspect_image(image["image_id"])
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


def test_M15_build_smoke_run_and_tag_through_an_ssh_engine(
    sshd: SSHServer, remote: RemoteDaemon, engine: DockerEngine, tmp_path: Path
) -> None:
    nonce = uuid.uuid4().hex[:10]
    tag = f"slimbuild-test/m15-{nonce}:v1"
    root = _project(tmp_path / "proj", nonce)
    env = {**build_env(), **sshd.env()}
    accepted = sshd.log().count("Accepted publickey for root")
    code, out, err = cli("build", str(root), "--base-image", BASE_IMAGE, "-t", tag, "--json", env=env)
    assert code == OK, err
    (image,) = json.loads(out)["images"]
    doc = json.loads(Path(image["manifest"]).read_text(encoding="utf-8"))
    assert doc["smoke"] and all(run["ok"] and run["exit_code"] == 0 for run in doc["smoke"])
    assert sshd.log().count("Accepted publickey for root") > accepted  # through the test's sshd, with the test's key
    # the docker CLI, through the same ssh and DOCKER_HOST, sees the tag on the engine behind the ssh host
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")} | sshd.env()
    seen = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", tag], env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert seen.returncode == 0 and seen.stdout.strip() == image["image_id"], seen.stderr
    second = connect(remote.env)
    try:
        assert tag in second.inspect_image(image["image_id"])["RepoTags"]
    finally:
        second.close()
    with pytest.raises(docker.errors.ImageNotFound):  # not on the first engine
        engine.client.inspect_image(image["image_id"])
    gc.collect()  # the engines the command dropped: their ssh processes are ended with them (and at exit)
    ssh_left = _children_named("ssh")
    assert not ssh_left, f"ssh processes left running: {ssh_left}"


def _children_named(name: str) -> list[int]:
    """Our own child processes running NAME (the ssh connections must all be ended when the engine is closed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError):
            continue
        if comm == name and int(fields[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize("case", ["refused-key", "unknown-host-key", "unreachable"])
def test_M16_ssh_engine_unreachable_or_refusing_the_key_is_exit_6_naming_the_host(sshd: SSHServer, case: str) -> None:
    if case == "refused-key":
        env = sshd.env(config="ssh_config_other")
    elif case == "unknown-host-key":
        config = sshd.client_config("ssh_config_nohosts", sshd.root / "client_key")
        config.write_text(config.read_text().replace(str(sshd.root / "known_hosts"), "/dev/null"))
        env = sshd.env(config="ssh_config_nohosts")
    else:
        env = sshd.env(port=free_port())
    started = time.monotonic()
    code, _, err = cli("inspect", "slimbuild-test/m16-absent:none", env=env)
    assert code == ENGINE, err
    # the host and port; the URL's user is masked as every URL's userinfo is at the output edge (redact)
    host = env["DOCKER_HOST"].split("@", 1)[1]
    assert f"ssh://***@{host}" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    reason = {"refused-key": "Permission denied (publickey)", "unknown-host-key": "Host key verification failed",
              "unreachable": "Connection refused"}[case]  # fmt: skip
    assert reason in err and "ssh exited with status 255" in err, err
    assert "PRIVATE KEY" not in err and time.monotonic() - started < 30


def test_M17_expired_or_not_yet_valid_server_certificate_is_exit_6(remote: RemoteDaemon) -> None:
    """The daemon itself serves a certificate outside its dates (the CA and the host name are right)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    cases = [("has expired", now - 3 * day, now - day), ("is not yet valid", now + day, now + 3 * day)]
    for name, not_before, not_after in cases:
        with remote.serving_cert(not_before=not_before, not_after=not_after):
            code, out, err = cli("inspect", "slimbuild-test/m17-absent:none", env=remote.env)
            assert code == ENGINE, (name, err)
            assert remote.url in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            assert f"TLS connection to the Docker daemon at {remote.url} failed (certificate {name})" in err, err
            assert "valid now" in err and "BEGIN" not in err + out
