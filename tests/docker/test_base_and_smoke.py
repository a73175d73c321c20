"""The base's Python, the default smoke run and the dirty flag, on the real engine (cases E22-E24 in tests/CASES.md).

One small project (six, a local module, a data file), built from the shared wheel cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slimbuild.image.engine import DockerEngine
from tests.conftest import Run
from tests.constants import BUILD, OK, USAGE
from tests.docker.conftest import BASE_IMAGE
from tests.docker.test_build_examples import SHARED_CACHE

pytestmark = pytest.mark.docker
RUN_ID = uuid.uuid4().hex[:8]
EPOCH = 1_700_000_000

MAIN = (
    "import six\n\nimport helper\n\n\n"
    "def main():\n    print(helper.VALUE, six.PY3)\n    raise SystemExit(3)  # the smoke run never calls it\n\n\n"
    'if __name__ == "__main__":\n    main()\n'
)


def _project(root: Path, name: str, *, helper: str = "VALUE = 1\n", extra: str = "") -> Path:
    files = {
        "pyproject.toml": (
            f'[project]\nname = "{name}"\nversion = "0.1.0"\ndependencies = ["six"]\n\n'
            f'[tool.slimbuild]\nentrypoint = "main.py"\n{extra}'
        ),
        "main.py": MAIN,
        "helper.py": helper,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def _git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True, env=env).stdout


def _error_line(run: Run) -> str:
    assert not any(x.startswith("Traceback") for x in run.err.splitlines()), run.err  # slimbuild's own: never
    (line,) = [x for x in run.err.splitlines() if x.startswith("slimbuild: error:")]
    return line


def _built_for(engine: DockerEngine, name: str) -> list[str]:
    """Images (tagged or not) whose slimbuild labels name this project."""
    found = []
    for image in engine.client.images(all=True, filters={"label": "io.slimbuild.manifest-sha256"}):
        if f"{name} " in (image.get("Labels") or {}).get("org.opencontainers.image.title", ""):
            found.append(str(image["Id"]))
    return found


@pytest.fixture
def names(engine: DockerEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """A unique project name per case; every image built for one is removed afterwards."""
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    made: list[str] = []

    def _name(case: str) -> str:
        made.append(f"sbbase-{case.lower()}-{RUN_ID}")
        return made[-1]

    yield _name
    for name in made:
        for image in [*engine.client.images(name=f"slimbuild/{name}"), *map(lambda i: {"Id": i}, _built_for(engine, name))]:
            try:
                engine.client.remove_image(image["Id"], force=True)
            except Exception:  # noqa: BLE001 - cleanup only
                pass


def test_E22_a_target_python_the_base_lacks_is_exit_2_before_any_build(
    engine: DockerEngine, names: Callable[[str], str], run_cli: Callable[..., Run], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLIMBUILD_CACHE", str(tmp_path / "cache"))  # the base is asked afresh: the probe runs
    name = names("E22")
    root = _project(tmp_path / "p", name, extra='python = "3.12"\n')
    base_id = str(engine.client.inspect_image(BASE_IMAGE)["Id"])
    probe_containers: Callable[[], list[Any]] = lambda: [  # noqa: E731
        c for c in engine.client.containers(all=True, filters={"label": "slimbuild.run=1"}) if c.get("ImageID") == base_id
    ]
    before = {c["Id"] for c in probe_containers()}
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE)
    assert run.code == USAGE, run.err
    line = _error_line(run)
    assert "target Python 3.12" in line and "Python 3.11." in line and BASE_IMAGE in line
    assert "--base-image" in line and 'python = "3.11"' in line
    assert _built_for(engine, name) == [] and engine.client.images(name=f"slimbuild/{name}") == []
    assert not (tmp_path / "cache" / "wheels").exists()  # refused before the wheelhouse
    assert {c["Id"] for c in probe_containers()} <= before  # the probe's container is gone
    assert not (root / "slimbuild.manifest.json").exists()
    (record,) = (tmp_path / "cache" / "base-python").glob("*.json")
    assert json.loads(record.read_text())["python"].startswith("3.11.")  # asked once for this base


def test_F12_E24_a_first_party_module_that_fails_at_import_is_exit_7_and_never_tagged(
    engine: DockerEngine, names: Callable[[str], str], run_cli: Callable[..., Run], tmp_path: Path
) -> None:
    name = names("E24")
    root = _project(tmp_path / "p", name, helper="VALUE = 1\nraise RuntimeError('helper-import-canary')\n")
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--tag", f"slimbuild-test/{name}:user")
    assert run.code == BUILD, run.err
    line = _error_line(run)
    assert "smoke run failed" in line and "helper-import-canary" in line and "no tag was applied" in line
    assert engine.client.images(name=f"slimbuild/{name}") == [] and engine.client.images(name=f"slimbuild-test/{name}") == []
    assert _built_for(engine, name) == []  # the untagged image was removed too
    assert not (root / "slimbuild.manifest.json").exists()


def test_E23_E24_an_untracked_included_file_makes_the_build_dirty_and_main_never_runs(
    engine: DockerEngine, names: Callable[[str], str], run_cli: Callable[..., Run], tmp_path: Path
) -> None:
    name = names("E23")
    root = _project(tmp_path / "p", name, extra='include = ["data/extra.txt"]\n')
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "init")
    sha = _git(root, "rev-parse", "HEAD").strip()
    (root / "data").mkdir()
    (root / "data" / "extra.txt").write_text("not in the commit\n", encoding="utf-8")  # untracked, shipped
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--json")
    # exit 0: the smoke run loaded main.py without its __main__ block (main() exits 3) and imported helper
    assert run.code == OK, run.err
    (image,) = json.loads(run.out)["images"]
    doc = json.loads(Path(image["manifest"]).read_text(encoding="utf-8"))
    assert doc["git"] == {"commit": sha, "dirty": True}
    assert "data/extra.txt" in {f["path"] for f in doc["files"]}
    assert not any(":git-" in t for t in image["tags"])  # the commit lacks a file the image holds
    (smoke,) = doc["smoke"]
    assert smoke["ok"] and "import helper" in smoke["command"][2] and "__slimbuild_smoke__" in smoke["command"][2]
