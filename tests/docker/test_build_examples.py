"""The examples, built for real and checked inside their images (the main job, end to end)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from slimbuild.image.engine import DockerEngine
from tests.conftest import Run
from tests.constants import OK
from tests.docker.conftest import BASE_IMAGE

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]
# Shared across tests and runs: wheels are downloaded once, then served from the content-addressed cache.
SHARED_CACHE = Path(os.environ.get("SLIMBUILD_TEST_CACHE", "~/.cache/slimbuild-test-cache")).expanduser()

EXAMPLES = {
    # name: (what the analysis prints, distributions that must be absent, smoke check)
    "kitchen-sink": ("rows=60 r2=", ["matplotlib", "seaborn", "tensorflow", "jupyter"]),
    "notebook": ("weeks=", ["matplotlib", "jupyter", "notebook"]),
    "src-package": ("month  6:", ["matplotlib", "requests"]),
}


@pytest.fixture
def built(
    engine: DockerEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., Run]
) -> Iterator[Callable[[str], dict]]:  # type: ignore[type-arg]
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    made: list[str] = []

    def _build(name: str) -> dict:  # type: ignore[type-arg]
        root = tmp_path / name
        shutil.copytree(REPO / "examples" / name, root)
        run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--json")
        assert run.code == OK, run.err
        (image,) = json.loads(run.out)["images"]
        made.extend(image["tags"])
        return {"root": root, **image, "manifest_doc": json.loads(Path(image["manifest"]).read_text())}

    yield _build
    for tag in made:
        try:
            engine.client.remove_image(tag, force=True)
        except Exception:  # noqa: BLE001 - cleanup only
            pass


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_builds_runs_and_is_slim(name: str, built: Callable[[str], dict], engine: DockerEngine) -> None:  # type: ignore[type-arg]
    expected_output, absent = EXAMPLES[name]
    image = built(name)
    doc = image["manifest_doc"]
    argv = doc["entrypoint"]["argv"]
    run = engine.run(image["image_id"], argv, user="10001:10001", timeout=300)
    assert run.exit_code == 0, run.output
    assert expected_output in run.output
    probe = (
        "import importlib.util, os, sys; "
        f"present = [m for m in {absent!r} if importlib.util.find_spec(m)]; "
        "print('uid', os.getuid(), 'present', present); sys.exit(1 if present or os.getuid() == 0 else 0)"
    )
    check = engine.run(image["image_id"], ["/opt/venv/bin/python", "-c", probe], user="10001:10001", timeout=120)
    assert check.exit_code == 0, check.output
    config = engine.inspect_image(image["image_id"])["Config"]
    assert config["User"] == "10001:10001"
    assert {d["name"] for d in doc["distributions"]}.isdisjoint(set(absent))
    assert image["added_bytes"] > 0


def test_F7_distroless_template_builds_and_runs_with_a_healthcheck(
    engine: DockerEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., Run]
) -> None:
    # No distroless image can be pulled here: the same Debian base stands in for the shell-less runtime.
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    root = tmp_path / "churn"
    shutil.copytree(REPO / "examples" / "src-package", root)
    with (root / "pyproject.toml").open("a") as fh:
        fh.write('healthcheck = ["/usr/bin/python3", "-c", "pass"]\n')
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--template", "distroless", "--json")
    assert run.code == OK, run.err
    (image,) = json.loads(run.out)["images"]
    try:
        config = engine.inspect_image(image["image_id"])["Config"]
        assert config["Healthcheck"]["Test"] == ["CMD", "/usr/bin/python3", "-c", "pass"]
        assert config["User"] == "10001:10001"
        doc = json.loads(Path(image["manifest"]).read_text())
        assert doc["template"]["name"] == "distroless" and all(s["ok"] for s in doc["smoke"])
    finally:
        for tag in image["tags"]:
            engine.client.remove_image(tag, force=True)
