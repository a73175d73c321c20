"""``inspect`` and ``diff`` of an image in a registry (K7-K9): the manifest label read from the config blob through
the registry API, never a layer, with Docker's credentials.

A small slimbuild-built image is pushed (docker SDK, stream read to the end) to Debian's docker-registry on
127.0.0.1, and its local copy removed so that the engine cannot answer; the registry's access log shows what was
fetched. The authenticated registry gets a scratch image carrying the same slimbuild labels (a push of a few bytes).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slimbuild.image.engine import DockerEngine
from slimbuild.record.manifest import LABEL_MANIFEST, LABEL_MANIFEST_SHA, VOLATILE_FIELDS, write_manifest
from tests.constants import FINDINGS, INTEGRITY, OK, REGISTRY, USAGE
from tests.docker.conftest import BASE_IMAGE, TEST_LABELS, make_context, registry_server
from tests.docker.test_image_properties import build_env, cli

pytestmark = pytest.mark.docker

USER, PASSWORD = "k9-user", "k9-Pa55-never-printed"
PROJECT = {
    "pyproject.toml": (
        '[project]\nname = "sbk7"\nversion = "0.1.0"\ndependencies = ["six"]\n\n[tool.slimbuild]\nentrypoint = "main.py"\n'
    ),
    "main.py": "import six\n\nprint('k7', six.PY3)\n",
}


@dataclass
class Published:
    address: str
    log: Path
    ref: str
    digest: str
    image_id: str
    manifest_file: Path
    local: dict[str, Any]
    labels: dict[str, str]


def _push(engine: DockerEngine, ref: str, auth: Mapping[str, str] | None = None) -> str:
    """Push REF, reading the stream to the end (a failure comes inside it); the registry's manifest digest."""
    repo, tag = ref.rsplit(":", 1)
    digests = []
    for event in engine.client.push(repo, tag=tag, stream=True, decode=True, auth_config=auth):
        assert "error" not in event, event
        if (event.get("aux") or {}).get("Digest"):
            digests.append(str(event["aux"]["Digest"]))
    assert len(digests) == 1, digests
    return digests[0]


def _comparable(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest without its volatile fields (sizes are measured differently by an engine and a registry)."""
    image = {k: v for k, v in (doc.get("image") or {}).items() if f"image.{k}" not in VOLATILE_FIELDS or k == "id"}
    return {**doc, "image": image}


def _inspect_json(*args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    code, out, err = cli("inspect", *args, "--json", env={**build_env(), **(env or {})})
    assert code == OK, err
    doc: dict[str, Any] = json.loads(out)
    assert doc["kind"] == "inspect"
    return dict(doc["manifest"])


@pytest.fixture(scope="module")
def published(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """The project built, inspected locally, pushed to an open registry, and its local copy removed."""
    tmp = tmp_path_factory.mktemp("k7")
    root = tmp / "proj"
    for rel, text in PROJECT.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    with registry_server(tmp / "registry") as address:
        ref = f"{address}/slimbuild-test/k7:v1"
        code, out, err = cli("build", str(root), "--base-image", BASE_IMAGE, "--tag", ref, "--json", env=build_env())
        assert code == OK, err
        (image,) = json.loads(out)["images"]
        try:
            local = _inspect_json(ref)
            config_labels = engine.inspect_image(image["image_id"])["Config"]["Labels"]
            labels = {k: v for k, v in config_labels.items() if k in {LABEL_MANIFEST, LABEL_MANIFEST_SHA}}
            digest = _push(engine, ref)
        finally:
            for tag in image["tags"]:
                with contextlib.suppress(Exception):  # force-removing one tag may have removed the image with the rest
                    engine.client.remove_image(tag, force=True)
        assert not engine.client.images(name=ref.rsplit(":", 1)[0])  # the engine cannot answer for it
        yield Published(address, tmp / "registry" / "registry.log", ref, digest, image["image_id"], Path(image["manifest"]),
                        local, labels)  # fmt: skip


def _our_requests(log: Path) -> list[tuple[str, str]]:
    """(method, path) of each request slimbuild made (the engine's pushes carry docker's user agent)."""
    found = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = re.search(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" \d+ \d+ "[^"]*" "([^"]*)"', line)
        if match and not match.group(3).startswith("docker/"):
            found.append((match.group(1), match.group(2)))
    return found


def _scratch(engine: DockerEngine, ref: str, labels: Mapping[str, str]) -> None:
    """A two-byte image tagged REF, carrying LABELS (and the test labels, for pruning)."""
    context = io.BytesIO(make_context("FROM scratch\nCOPY k /k\n", {"k": b"k\n"}))
    stream = engine.client.build(fileobj=context, custom_context=True, tag=ref, labels={**TEST_LABELS, **labels}, decode=True)
    for event in stream:
        assert "error" not in event, event


def test_K7_inspect_of_a_registry_reference_reads_the_config_blob_only(published: Published, engine: DockerEngine) -> None:
    p = published
    before = len(_our_requests(p.log))
    remote = _inspect_json(p.ref)  # a host in the name, and the engine has no such image: the registry
    assert _comparable(remote) == _comparable(p.local)
    assert remote["image"]["id"] == p.image_id  # the config blob's digest is the image id
    assert remote["image"]["layer_diff_ids"] == p.local["image"]["layer_diff_ids"]
    assert _inspect_json(f"docker://{p.ref}") == remote
    by_digest = _inspect_json(f"{p.ref.rsplit(':', 1)[0]}@{p.digest}")
    assert _comparable(by_digest) == _comparable(remote)
    code, text, err = cli("inspect", f"docker://{p.ref}", env=build_env())
    assert code == OK and "six" in text, err

    made = _our_requests(p.log)[before:]
    blobs = [path for method, path in made if "/blobs/" in path]
    assert blobs and all(path.endswith("/blobs/" + p.image_id) for path in blobs), made  # the config, never a layer
    assert all(method == "GET" for method, _ in made) and len(made) == 2 * 4, made  # 4 reads: a manifest and a config each

    plain = f"{p.address}/slimbuild-test/plain:v1"  # H3 from a registry: an image slimbuild did not build
    _scratch(engine, plain, {})
    _push(engine, plain)
    engine.client.remove_image(plain, force=True)
    code, _, err = cli("inspect", plain, env=build_env())
    assert code == USAGE and "no slimbuild manifest" in err, (code, err)


def test_K8_diff_of_a_registry_image_against_a_manifest_file(published: Published, tmp_path: Path) -> None:
    p = published
    code, out, err = cli("diff", str(p.manifest_file), p.ref, "--json", env=build_env())
    doc = json.loads(out)
    assert doc["kind"] == "diff" and (doc["old"]["form"], doc["new"]["form"]) == ("manifest", "registry"), err
    assert doc["distributions"] == doc["files"] == doc["inputs"] == {"added": [], "changed": [], "removed": []}
    assert doc["base_image"] is None and doc["sizes"]["source"] == "manifests"
    # the file beside the project records the indexes pip used (when pip is configured with some); the image's copy
    # never does (provenance.py), and diff counts that as a difference between an image and a file
    others = [c["path"] for c in doc["other"]]
    assert others in ([], ["index_sources"]) and code == (FINDINGS if others else OK), out

    same = tmp_path / "as-built.json"  # the manifest the local image carried, as a file
    write_manifest(same, p.local)
    code, out, err = cli("diff", str(same), p.ref, env=build_env())
    assert code == OK, (out, err)
    code, out, err = cli("diff", f"docker://{p.ref}", p.ref, "--json", env=build_env())
    assert code == OK and json.loads(out)["sizes"]["measure"] == "registry", err  # both sides' compressed blob sizes
    code, out, err = cli("diff", str(same), p.ref, "--platform", "linux/s390x", env=build_env())
    assert code == USAGE and "not linux/s390x" in err, err


def _docker_config(directory: Path, address: str, password: str | None) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    auths = {} if password is None else {address: {"auth": base64.b64encode(f"{USER}:{password}".encode()).decode()}}
    (directory / "config.json").write_text(json.dumps({"auths": auths}), encoding="utf-8")
    return {"DOCKER_CONFIG": str(directory)}


def test_K9_an_authenticating_registry_with_and_without_credentials(
    published: Published, engine: DockerEngine, tmp_path: Path
) -> None:
    with registry_server(tmp_path / "auth", htpasswd=(USER, PASSWORD)) as address:
        ref = f"{address}/slimbuild-test/k9:v1"
        _scratch(engine, ref, published.labels)
        _push(engine, ref, {"username": USER, "password": PASSWORD})
        engine.client.remove_image(ref, force=True)

        for name, password, words in (("none", None, "docker login"), ("wrong", "not-the-password", "were refused")):
            env = {**build_env(), **_docker_config(tmp_path / name, address, password)}
            code, out, err = cli("inspect", ref, "--json", env=env)
            assert code == REGISTRY, (code, err)
            assert "401" in err and "authentication required" in err and words in err, err
            for secret in (PASSWORD, "not-the-password", base64.b64encode(f"{USER}:".encode()).decode()[:8]):
                assert secret not in out + err
            assert json.loads(out)["error"]["exit_code"] == REGISTRY

        doc = _inspect_json(ref, env=_docker_config(tmp_path / "right", address, PASSWORD))
        assert {**doc, "image": None} == {**published.local, "image": None}


def test_H1_a_config_blob_altered_in_the_registrys_storage_is_exit_5(published: Published, engine: DockerEngine) -> None:
    p = published
    ref = f"{p.address}/slimbuild-test/h1:v1"
    _scratch(engine, ref, p.labels)
    _push(engine, ref)
    config = str(engine.inspect_image(ref)["Id"])
    engine.client.remove_image(ref, force=True)
    (data,) = (p.log.parent / "data").rglob(f"blobs/sha256/{config[7:9]}/{config[7:]}/data")
    original = data.read_bytes()
    data.write_bytes(original.replace(b'"slimbuild.test":"1"', b'"slimbuild.test":"2"'))  # same size, other content
    assert data.read_bytes() != original
    code, _, err = cli("inspect", ref, env=build_env())
    assert code == INTEGRITY and f"does not match its digest {config}" in err and "do not trust" in err, (code, err)
    data.write_bytes(original + b" ")  # one byte more than its descriptor says
    code, _, err = cli("inspect", ref, env=build_env())
    assert code == INTEGRITY and "larger than" in err, (code, err)
