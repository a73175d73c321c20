"""F5 against a real registry: a base known by its registry digest is pinned by that digest.

Debian's ``docker-registry`` (installed by ``scripts/docker-up.sh``) serves on 127.0.0.1 only. The test
base is pushed to it, so the engine learns the base's registry digest (RepoDigests), exactly as after a
``docker pull``; the rendered FROM lines, the manifest and the image then have to agree with the digest
the registry itself serves for that tag.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from slimbuild.image.engine import DockerEngine
from tests.constants import OK
from tests.docker.conftest import BASE_IMAGE, registry_digest
from tests.docker.test_image_properties import build_env, cli, write_project

pytestmark = pytest.mark.docker



def test_F5_base_with_a_registry_digest_is_pinned_and_recorded(
    engine: DockerEngine, registry: str, tmp_path: Path
) -> None:
    repo = f"slimbuild-test/f5-base-{uuid.uuid4().hex[:8]}"
    ref = f"{registry}/{repo}:bookworm"
    engine.client.tag(BASE_IMAGE, f"{registry}/{repo}", "bookworm")
    pushed: list[str] = []
    try:
        for event in engine.client.push(f"{registry}/{repo}", tag="bookworm", stream=True, decode=True):
            assert "error" not in event, event
            digest = (event.get("aux") or {}).get("Digest")
            if digest:
                pushed.append(str(digest))
        served = registry_digest(registry, repo, "bookworm")
        assert pushed == [served]
        assert f"{registry}/{repo}@{served}" in engine.inspect_image(ref)["RepoDigests"]

        root = write_project(tmp_path / "proj", "sbf5", tmp_path / "outside-secret.txt")
        code, dockerfile, err = cli("dockerfile", str(root), "--base-image", ref, env=build_env())
        assert code == OK, err
        froms = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ") and " AS " in line]
        assert f"{ref}@{served}" in froms and set(froms) <= {f"{ref}@{served}", "deps"}, froms

        code, out, err = cli("build", str(root), "--base-image", ref, "--json", env=build_env())
        assert code == OK, err
        assert "local only" not in err and "no registry digest" not in err
        (image,) = json.loads(out)["images"]
        try:
            doc = json.loads(Path(image["manifest"]).read_text(encoding="utf-8"))
            assert doc["base_image"] == {"reference": f"{ref}@{served}", "digest_or_id": served, "local_only": False}
            base_layers = engine.inspect_image(BASE_IMAGE)["RootFS"]["Layers"]
            assert engine.inspect_image(image["image_id"])["RootFS"]["Layers"][: len(base_layers)] == base_layers
        finally:
            for tag in image["tags"]:
                engine.client.remove_image(tag, force=True)
    finally:
        for name in (ref, *(f"{registry}/{repo}@{d}" for d in pushed)):
            try:
                engine.client.remove_image(name)  # untags only: the base keeps its own tag
            except Exception:  # noqa: BLE001 - cleanup must not mask the result
                pass
        assert engine.client.images(name=BASE_IMAGE)
