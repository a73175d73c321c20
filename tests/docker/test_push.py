"""``build --push`` against real registries on 127.0.0.1 (K1-K5): Debian's docker-registry, open or behind
htpasswd, stopped, or behind a proxy that answers 500 first.

The same tiny project (no third-party distribution; one name, so its lock and deps image are the same every
time and the deps image is recorded in the shared cache) is built per test in its own directory: the engine's
layer cache makes every build after the first a few seconds. Each test pushes to repositories of its own.
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slimbuild.image.engine import DockerEngine
from slimbuild.pipeline import pushing
from tests.constants import OK, REGISTRY, USAGE
from tests.docker.conftest import BASE_IMAGE, registry_server
from tests.docker.registry_proxy import registry_proxy
from tests.docker.test_image_properties import build_env, cli

pytestmark = pytest.mark.docker

USER, PASSWORD = "pusher", "pushPasswordCanary-4e7a"
WRONG = "wrongPasswordCanary-d31c"
NAME = "sbpush"  # the project: slimbuild/sbpush:<content> locally, whichever test builds it


def write_project(root: Path, name: str, *, git: bool = False) -> Path:
    """A two-file project with no third-party distribution; with GIT, a clean repository (a git-<sha> tag)."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\ndependencies = []\n\n[tool.slimbuild]\nentrypoint = "main.py"\n',
        encoding="utf-8",
    )
    (root / "main.py").write_text("import helper\n\nprint(helper.double(21))\n", encoding="utf-8")
    (root / "helper.py").write_text("def double(x):\n    return 2 * x\n", encoding="utf-8")
    if git:
        (root / ".gitignore").write_text("slimbuild.lock\nslimbuild.manifest.json\n", encoding="utf-8")
        env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin", "HOME": str(root)}  # fmt: skip
        for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
            subprocess.run(["git", "-C", str(root), *argv], check=True, env=env)
    return root


def served_digest(address: str, repo: str, tag: str, auth: tuple[str, str] | None = None) -> str:
    """The Docker-Content-Digest the registry answers for repo:tag."""
    req = urllib.request.Request(
        f"http://{address}/v2/{repo}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.headers["Docker-Content-Digest"])


def docker_config(folder: Path, address: str, password: str) -> dict[str, str]:
    """A DOCKER_CONFIG directory whose config.json logs in to ADDRESS (as docker login writes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {address: {"auth": auth}}}), encoding="utf-8")
    return {"DOCKER_CONFIG": str(folder)}


def build_push(root: Path, tag: str, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return cli(
        "build", str(root), "--base-image", BASE_IMAGE, "--push", "-t", tag, *extra, env={**build_env(), **(env or {})}
    )


@pytest.fixture
def cleanup(engine: DockerEngine) -> Iterator[list[str]]:
    """Refs to untag after the test (the images go with their last tag)."""
    refs: list[str] = []
    yield refs
    for ref in refs:
        try:
            engine.client.remove_image(ref, noprune=True)  # the build cache stays for the next test
        except Exception:  # noqa: BLE001 - cleanup must not mask the result
            pass


def _local_tags(engine: DockerEngine, repo: str) -> list[str]:
    return sorted(t for image in engine.client.images(name=repo) for t in image.get("RepoTags") or [])


def test_K1_an_open_registry_push_records_and_prints_every_ref_s_registry_digest(
    engine: DockerEngine, registry: str, tmp_path: Path, cleanup: list[str]
) -> None:
    name = f"k1-{uuid.uuid4().hex[:8]}"
    root = write_project(tmp_path / "proj", NAME, git=True)
    repo = f"team/{name}"
    code, out, err = build_push(root, f"{registry}/{repo}:1.0", "--json")
    (image,) = json.loads(out)["images"]
    cleanup.extend(image["tags"])
    assert code == OK, err
    doc = json.loads(Path(image["manifest"]).read_text(encoding="utf-8"))
    tags = sorted(t.rsplit(":", 1)[1] for t in image["tags"] if t.startswith(f"{registry}/"))
    assert len(tags) == 3 and "1.0" in tags and any(t.startswith("git-") for t in tags), image["tags"]  # 1.0, content, git
    want = sorted(({"reference": f"{registry}/{repo}:{t}", "digest": served_digest(registry, repo, t)} for t in tags),
                  key=lambda p: p["reference"])  # fmt: skip
    assert doc["pushed"] == want == image["pushed"]
    assert len({p["digest"] for p in want}) == 1  # one image, one manifest digest
    repo_digests = engine.inspect_image(image["image_id"])["RepoDigests"]
    assert f"{registry}/{repo}@{want[0]['digest']}" in repo_digests
    assert f"pushed {want[0]['reference']}@{want[0]['digest']}" in err
    assert all(p["reference"].startswith(f"{registry}/{repo}:") for p in doc["pushed"])  # slimbuild/... is local

    code, text, err = cli("inspect", image["manifest"], env=build_env())
    assert code == OK, err
    assert f"pushed: {want[0]['reference']}@{want[0]['digest']}" in text


def test_K2_an_htpasswd_registry_refuses_no_or_wrong_login_and_takes_docker_config_s(
    engine: DockerEngine, tmp_path: Path, cleanup: list[str]
) -> None:
    name = f"k2-{uuid.uuid4().hex[:8]}"
    root = write_project(tmp_path / "proj", NAME)
    with registry_server(tmp_path / "reg", htpasswd=(USER, PASSWORD)) as address:
        ref = f"{address}/team/{name}:1.0"
        cleanup.append(ref)
        attempts = {
            "none": docker_config(tmp_path / "none", "other.example.com:5000", PASSWORD),
            "wrong": docker_config(tmp_path / "wrong", address, WRONG),
        }
        for what, env in attempts.items():
            code, out, err = build_push(root, ref, env=env)
            assert code == REGISTRY, (what, code, err)
            assert f"the registry refused the push of {ref}" in err and "docker login" in err, err
            assert "retry" not in err  # a refused login is not retried
            assert PASSWORD not in out + err and WRONG not in out + err
            assert not (root / "slimbuild.manifest.json").exists()  # nothing half-recorded
            assert _local_tags(engine, f"{address}/team/{name}") == []  # the run's tags undone
        code, out, err = build_push(root, ref, "--json", env=docker_config(tmp_path / "right", address, PASSWORD))
        assert code == OK, err
        (image,) = json.loads(out)["images"]
        cleanup.extend(image["tags"])
        served = served_digest(address, f"team/{name}", "1.0", (USER, PASSWORD))
        assert {"reference": ref, "digest": served} in image["pushed"]
        manifest_text = Path(image["manifest"]).read_text(encoding="utf-8")
        assert PASSWORD not in out + err + manifest_text and USER not in manifest_text


def test_K3_a_registry_that_is_down_is_exit_8_after_the_retries(
    engine: DockerEngine, tmp_path: Path, cleanup: list[str]
) -> None:
    name = f"k3-{uuid.uuid4().hex[:8]}"
    root = write_project(tmp_path / "proj", NAME)
    with registry_server(tmp_path / "reg") as address:
        pass  # started and stopped: nothing listens there now
    ref = f"{address}/team/{name}:1.0"
    cleanup.append(ref)
    before = _local_tags(engine, f"slimbuild/{NAME}")
    code, out, err = build_push(root, ref)
    assert code == REGISTRY, err
    retries = [line for line in err.splitlines() if line.startswith("slimbuild: warning: push of") and "retry" in line]
    assert len(retries) == pushing.RETRIES, err
    assert [f"retry {i} of {pushing.RETRIES}" in line for i, line in enumerate(retries, 1)] == [True] * pushing.RETRIES
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"slimbuild: error: push of {ref} failed:") and "connection refused" in last, last
    assert f"after {pushing.RETRIES} retries" in last
    assert out == "" and not (root / "slimbuild.manifest.json").exists()
    assert _local_tags(engine, f"{address}/team/{name}") == []
    assert _local_tags(engine, f"slimbuild/{NAME}") == before  # the content tag undone (or back where it was)


def test_K4_a_registry_answering_500_then_success_is_pushed_after_a_retry(
    engine: DockerEngine, tmp_path: Path, cleanup: list[str]
) -> None:
    name = f"k4-{uuid.uuid4().hex[:8]}"
    root = write_project(tmp_path / "proj", NAME)
    # the first blob upload fails (the engine retries it itself), then the first manifest upload (slimbuild retries)
    faults = {("POST", "/blobs/uploads/"): 1, ("PUT", "/manifests/"): 1}
    with registry_server(tmp_path / "reg") as upstream, registry_proxy(upstream, faults=faults) as (address, state):
        ref = f"{address}/team/{name}:1.0"
        code, out, err = build_push(root, ref, "--json")
        assert code == OK, err
        (image,) = json.loads(out)["images"]
        cleanup.extend(image["tags"])
        assert state.failed == 2 and all(n == 0 for n in state.faults.values())
        ours = [line for line in err.splitlines() if line.startswith("slimbuild: warning: push of") and "retry" in line]
        assert len(ours) == 1 and "500" in ours[0] and "retry 1 of" in ours[0], err
        assert any("the engine retries the upload of layer" in line for line in err.splitlines()), err
        digest = served_digest(upstream, f"team/{name}", "1.0")
        assert {"reference": ref, "digest": digest} in image["pushed"]


@pytest.mark.parametrize(
    ("tag", "why"),
    [
        ("127.0.0.1:5000/team/app@sha256:" + "a" * 64, "a push needs a tag"),
        ("", "--push needs a --tag"),
    ],
)
def test_K5_a_digest_without_a_tag_or_no_tag_at_all_is_exit_2_before_any_work(
    tmp_path: Path, tag: str, why: str
) -> None:
    root = write_project(tmp_path / "proj", NAME)
    args: list[Any] = ["build", str(root), "--base-image", BASE_IMAGE, "--push", *(["-t", tag] if tag else [])]
    code, _out, err = cli(*args, env={**build_env(), "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert code == USAGE, err
    assert why in err and err.count("\n") == 1, err  # one line, and no engine was needed
    assert sorted(p.name for p in root.iterdir()) == ["helper.py", "main.py", "pyproject.toml"]  # no lock, no manifest
