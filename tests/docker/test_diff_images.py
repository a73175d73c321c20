"""``slimbuild diff`` on real images (G13): two builds of one small project, differing by one distribution and one
first-party file, compared image with image, tar with manifest and tar with image; the data inputs recorded (G12).

Each build is a separate ``python -m slimbuild build`` process, as a user runs it; ``diff`` runs in-process.
Only the tags these builds made are removed afterwards (the engine is shared: other images are left alone).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slimbuild.image.engine import DockerEngine
from slimbuild.record.data import tree_hash
from tests.conftest import Run
from tests.constants import FINDINGS, OK
from tests.docker.conftest import BASE_IMAGE
from tests.docker.test_build_examples import SHARED_CACHE

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]

PYPROJECT = (
    '[project]\nname = "sbdiff"\nversion = "0.1.0"\ndependencies = [{deps}]\n\n'
    '[tool.slimbuild]\nentrypoint = "main.py"\ninputs = [{{path = "data/raw"}}, {{url = "s3://bucket/raw.parquet"}}]\n'
)
ONE = {
    "pyproject.toml": PYPROJECT.format(deps='"six"'),
    "main.py": "import six\n\nimport helper\n\nprint('diff', helper.VALUE, six.PY3)\n",
    "helper.py": "VALUE = 41\n",
    "data/raw/a.csv": "a,b\n1,2\n",
}
TWO = {  # one more distribution (cloudpickle), one first-party file changed (main.py)
    **ONE,
    "pyproject.toml": PYPROJECT.format(deps='"six", "cloudpickle"'),
    "main.py": "import cloudpickle\nimport six\n\nimport helper\n\nprint('diff', helper.VALUE, six.PY3, cloudpickle.dumps(1))\n",
}


def _project(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def _build(root: Path) -> dict[str, Any]:
    env = {**os.environ, "SLIMBUILD_CACHE": str(SHARED_CACHE), "SOURCE_DATE_EPOCH": "1700000000", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "slimbuild", "build", str(root), "--base-image", BASE_IMAGE, "--json"],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == OK, proc.stderr[-3000:]
    (image,) = json.loads(proc.stdout)["images"]
    return {**image, "root": root}


@pytest.fixture(scope="module")
def builds(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], ...]]:
    """The two builds (and image two saved as a tar); their tags removed at the end."""
    base = tmp_path_factory.mktemp("diff")
    made: list[dict[str, Any]] = []
    try:
        made.append(_build(_project(base / "one", ONE)))
        made.append(_build(_project(base / "two", TWO)))
        saved = base / "two.tar"
        with saved.open("wb") as fh:
            for chunk in engine.save(made[1]["image_id"]):
                fh.write(chunk)
        yield made[0], made[1], {"tar": str(saved)}
    finally:
        for tag in {t for image in made for t in image["tags"]}:
            try:
                engine.client.remove_image(tag, force=True)
            except Exception:  # noqa: BLE001 - cleanup only
                pass


def _json(run: Run) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(run.out)
    assert doc["kind"] == "diff" and doc["version"] == 1
    return doc


def test_G13_image_vs_image(builds: tuple[dict[str, Any], ...], run_cli: Callable[..., Run]) -> None:
    one, two, _saved = builds
    a, b = one["tags"][0], two["tags"][0]
    run = run_cli("diff", a, b)
    assert run.code == FINDINGS, run.err
    assert "+ cloudpickle " in run.out and "~ main.py (source)" in run.out and "helper.py" not in run.out
    assert "sizes (from the images, engine)" in run.out and "base image changed" not in run.out
    doc = _json(run_cli("diff", a, b, "--json"))
    assert doc["old"] == {"source": a, "form": "image"} and doc["same"] is False
    assert [d["name"] for d in doc["distributions"]["added"]] == ["cloudpickle"]
    assert doc["distributions"]["removed"] == doc["distributions"]["changed"] == []
    assert [f["path"] for f in doc["files"]["changed"]] == ["main.py"]
    assert doc["files"]["added"] == doc["files"]["removed"] == [] and doc["base_image"] is None
    sizes = doc["sizes"]
    assert sizes["source"] == "images" and sizes["measure"] == "engine" and len(sizes["layers"]) == 3  # base, venv, app
    base_layer, venv_layer, _app = sizes["layers"]
    assert base_layer["difference"] == 0 and venv_layer["difference"] > 0  # cloudpickle is in the venv layer
    assert sizes["total"]["difference"] == sum(layer["difference"] for layer in sizes["layers"])
    same = run_cli("diff", a, one["image_id"])  # the same image by tag and by id
    assert same.code == OK and ": same" in same.out.splitlines()[0], same.out


def test_G13_tar_vs_manifest_and_tar_vs_image(builds: tuple[dict[str, Any], ...], run_cli: Callable[..., Run]) -> None:
    one, two, saved = builds
    run = run_cli("diff", one["manifest"], saved["tar"], "--json")
    assert run.code == FINDINGS, run.err
    doc = _json(run)
    assert doc["old"]["form"] == "manifest" and doc["new"]["form"] == "tar"
    assert [d["name"] for d in doc["distributions"]["added"]] == ["cloudpickle"]
    assert [f["path"] for f in doc["files"]["changed"]] == ["main.py"]
    assert doc["sizes"]["source"] == "manifests"
    # the tar and the manifest of the same build: nothing differs outside the volatile fields
    assert run_cli("diff", saved["tar"], two["manifest"]).code == OK
    # a tar with an image: the image is read through docker save, so both sides' layers are tar bytes
    doc = _json(run_cli("diff", one["tags"][0], saved["tar"], "--json"))
    assert doc["old"]["form"] == "image" and doc["sizes"]["source"] == "images" and doc["sizes"]["measure"] == "tar"
    assert doc["sizes"]["layers"][0]["difference"] == 0 and [d["name"] for d in doc["distributions"]["added"]] == ["cloudpickle"]
    assert run_cli("diff", two["tags"][0], saved["tar"]).code == OK


def test_G12_the_data_inputs_are_in_the_image_and_its_manifest(
    builds: tuple[dict[str, Any], ...], run_cli: Callable[..., Run]
) -> None:
    one, _two, _saved = builds
    inspected = _json_inspect(run_cli("inspect", one["tags"][0], "--json"))
    raw, url = inspected["inputs"]
    assert (raw["kind"], raw["ref"], raw["type"]) == ("path", "data/raw", "directory")
    assert raw["digest"] == tree_hash(Path(one["root"]) / "data" / "raw")
    assert (url["kind"], url["ref"], url["digest"]) == ("url", "s3://bucket/raw.parquet", None)
    recorded = json.loads(Path(one["manifest"]).read_text(encoding="utf-8"))
    assert recorded["inputs"] == inspected["inputs"] and recorded["schema_version"] == 2


def _json_inspect(run: Run) -> dict[str, Any]:
    assert run.code == OK, run.err
    doc: dict[str, Any] = json.loads(run.out)["manifest"]
    return doc
