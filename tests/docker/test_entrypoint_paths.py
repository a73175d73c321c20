"""The image's sys.path on a real engine (A50): a script in a subdirectory importing a module from the project root."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.image.engine import DockerEngine
from tests.conftest import Run
from tests.constants import ANALYSIS, OK
from tests.docker.conftest import BASE_IMAGE
from tests.docker.test_build_examples import SHARED_CACHE

pytestmark = pytest.mark.docker


def _project(root: Path, name: str, extra: str) -> Path:
    files = {
        "pyproject.toml": (
            f'[project]\nname = "{name}"\nversion = "0.1.0"\ndependencies = ["six"]\n\n'
            f'[tool.slimbuild]\nentrypoint = "scripts/train.py"\nsmoke = ["python", "/app/scripts/train.py"]\n{extra}'
        ),
        "scripts/train.py": "import src.features\n\nprint('features:', src.features.build())\n",
        "src/features.py": "import six\n\n\ndef build():\n    return six.ensure_str('ok-' + str(six.PY3))\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_A50_script_importing_src_from_the_root_builds_and_runs_with_pythonpath(
    engine: DockerEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., Run]
) -> None:
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    name = f"sbpaths-{uuid.uuid4().hex[:8]}"
    root = _project(tmp_path / "p", name, "")
    refused = run_cli("build", str(root), "--base-image", BASE_IMAGE)  # the image would fail: never built
    assert refused.code == ANALYSIS and 'pythonpath = ["."]' in refused.err, refused.err
    assert engine.client.images(name=f"slimbuild/{name}") == []

    _project(root, name, 'pythonpath = ["."]\n')
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--json")
    assert run.code == OK, run.err
    (image,) = json.loads(run.out)["images"]
    try:
        doc = json.loads(Path(image["manifest"]).read_text())
        assert doc["pythonpath"] == ["/app", "/app/src"]
        assert [s["ok"] for s in doc["smoke"]] == [True] * len(doc["smoke"]) and doc["smoke"]
        env = engine.inspect_image(image["image_id"])["Config"]["Env"]
        assert "PYTHONPATH=/app:/app/src" in env
        ran = engine.run(image["image_id"], doc["entrypoint"]["argv"], user="10001:10001", timeout=120)
        assert ran.exit_code == 0 and "features: ok-True" in ran.output, ran.output
    finally:
        for tag in image["tags"]:
            try:
                engine.client.remove_image(tag, force=True)
            except Exception:  # noqa: BLE001 - cleanup only
                pass
