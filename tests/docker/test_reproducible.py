"""Identical inputs, identical image (issue 14; RELIABILITY G1, G2, G4, G7): the image id itself, not only the layers.

Each build here is a separate ``python -m slimbuild build`` process, as a user runs it. The project is a git
repository, so SOURCE_DATE_EPOCH comes from its last commit (G2), the same in every clone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slimbuild.image.engine import DockerEngine
from tests.docker.conftest import BASE_IMAGE
from tests.docker.test_build_examples import SHARED_CACHE

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]
COMMIT_TIME = "2024-03-01T12:00:00+00:00"
COMMIT_EPOCH = 1709294400

FILES = {
    "pyproject.toml": '[project]\nname = "sbrepro"\nversion = "0.1.0"\ndependencies = ["six"]\n\n'
    '[tool.slimbuild]\nentrypoint = "main.py"\n',
    "main.py": "import six\n\nimport helper\n\nprint('repro', helper.VALUE, six.PY3)\n",
    "helper.py": "VALUE = 41\n",
}


def _git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_DATE": COMMIT_TIME, "GIT_COMMITTER_DATE": COMMIT_TIME}
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd, env=env, check=True,
                   capture_output=True)


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A committed project (its SOURCE_DATE_EPOCH is the commit's time)."""
    root = tmp_path / "origin"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "one")
    return root


def _clone(origin: Path, dest: Path, mtime: int) -> Path:
    subprocess.run(["git", "clone", "-q", str(origin), str(dest)], check=True, capture_output=True)
    for path in dest.rglob("*"):
        if ".git" not in path.parts:
            os.utime(path, (mtime, mtime))
    return dest


def _build(root: Path, cache: Path, *, seed: str, tz: str, lang: str, umask: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    env.update({"SLIMBUILD_CACHE": str(cache), "PYTHONHASHSEED": seed, "TZ": tz, "LANG": lang, "LC_ALL": lang,
                "PYTHONPATH": str(REPO)})
    proc = subprocess.run(
        [sys.executable, "-m", "slimbuild", "build", str(root), "--base-image", BASE_IMAGE, "--json", *extra],
        env=env, capture_output=True, text=True, preexec_fn=lambda: os.umask(umask), timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (image,) = json.loads(proc.stdout)["images"]
    return dict(image)


@pytest.fixture
def cleanup(engine: DockerEngine) -> Iterator[list[str]]:
    """Tags and ids to remove at the end (only this test's: other sessions may build beside it)."""
    refs: list[str] = []
    yield refs
    for ref in refs:
        try:
            engine.client.remove_image(ref, force=True)
        except Exception:  # noqa: BLE001 - cleanup only
            pass


def _layers(engine: DockerEngine, ref: str) -> list[str]:
    return [str(x) for x in engine.inspect_image(ref)["RootFS"]["Layers"]]


def test_G1_G4_two_clean_builds_from_two_clones_give_the_same_image_id(
    engine: DockerEngine, origin: Path, tmp_path: Path, cleanup: list[str]
) -> None:
    """The second build starts from nothing of the first: its image is removed, its cache is another, and
    ``--no-cache`` makes every layer again (no engine cache, no recorded deps image)."""
    first = _build(_clone(origin, tmp_path / "a" / "one", 1_000_000), tmp_path / "cache-a",
                   seed="1", tz="UTC", lang="C.UTF-8", umask=0o022)
    first_layers = _layers(engine, first["image_id"])
    first_config = engine.inspect_image(first["image_id"])
    first_history = engine.history(first["image_id"])
    for tag in first["tags"]:  # the first image leaves the engine (its tags were its only references)
        engine.client.remove_image(tag, force=True)
    assert not engine.client.images(filters={"reference": first["tags"][0]})
    with pytest.raises(Exception):  # noqa: B017 - docker.errors.ImageNotFound
        engine.client.inspect_image(first["image_id"])
    second = _build(_clone(origin, tmp_path / "b" / "other-dir" / "two", 1_900_000_000), tmp_path / "cache-b",
                    seed="4242", tz="Asia/Tokyo", lang="de_DE.UTF-8", umask=0o077, extra=("--no-cache",))
    cleanup.extend(second["tags"])
    assert _layers(engine, second["image_id"]) == first_layers
    config = engine.inspect_image(second["image_id"])
    differ = {k: (first_config.get(k), config.get(k)) for k in set(config) | set(first_config)
              if k not in {"Id", "RepoTags", "GraphDriver", "Metadata"} and first_config.get(k) != config.get(k)}
    second_history = engine.history(second["image_id"])
    differ["history"] = [
        (a, b) for a, b in zip(first_history, second_history) if {**a, "Id": 0, "Tags": 0} != {**b, "Id": 0, "Tags": 0}
    ]
    assert second["image_id"] == first["image_id"], differ
    assert config["Created"] == first_config["Created"] == "2024-03-01T12:00:00Z"  # G2: the commit's time
    assert not config.get("Container") and not config.get("DockerVersion")
    doc = json.loads(Path(second["manifest"]).read_text(encoding="utf-8"))
    assert doc["image"]["id"] == second["image_id"]
    assert doc["source_date_epoch"] == COMMIT_EPOCH


def test_G4_a_one_byte_change_to_a_first_party_file_changes_only_the_app_layer(
    engine: DockerEngine, origin: Path, tmp_path: Path, cleanup: list[str]
) -> None:
    root = _clone(origin, tmp_path / "clone", 1_000_000)
    one = _build(root, SHARED_CACHE, seed="0", tz="UTC", lang="C.UTF-8", umask=0o022)
    cleanup.extend(one["tags"])
    (root / "helper.py").write_text("VALUE = 42\n", encoding="utf-8")  # one byte
    two = _build(root, SHARED_CACHE, seed="0", tz="UTC", lang="C.UTF-8", umask=0o022)
    cleanup.extend(two["tags"])
    first, second = _layers(engine, one["image_id"]), _layers(engine, two["image_id"])
    assert len(first) == len(second) == 3  # base, venv, app
    assert first[:2] == second[:2] and first[2] != second[2]
    assert one["image_id"] != two["image_id"]


def test_G4_saved_removed_and_loaded_again_the_image_keeps_its_id(
    engine: DockerEngine, origin: Path, tmp_path: Path, cleanup: list[str]
) -> None:
    built = _build(_clone(origin, tmp_path / "clone", 1_000_000), SHARED_CACHE, seed="0", tz="UTC", lang="C.UTF-8",
                   umask=0o022)
    cleanup.extend(built["tags"])
    image_id = built["image_id"]
    saved = tmp_path / "image.tar"
    with saved.open("wb") as fh:
        for chunk in engine.save(image_id):
            fh.write(chunk)
    for tag in built["tags"]:
        engine.client.remove_image(tag, force=True)
    assert not engine.client.images(name=built["tags"][0])
    with pytest.raises(Exception):  # noqa: B017 - the image is gone from the engine
        engine.client.inspect_image(image_id)
    assert engine.load(saved.read_bytes()) == image_id
    run = engine.run(image_id, ["/opt/venv/bin/python", "/app/main.py"], user="10001:10001", timeout=120)
    assert run.exit_code == 0 and "repro 41 True" in run.output, run.output
