"""`slimbuild verify` on a real engine (RELIABILITY G5, G6; CASES G14-G17): rebuild from the record, no cache, compare."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slimbuild.image.engine import DockerEngine
from tests.conftest import Run
from tests.constants import INTEGRITY, NOT_REPRODUCIBLE, OK, USAGE
from tests.docker.conftest import BASE_IMAGE
from tests.docker.test_build_examples import SHARED_CACHE
from tests.docker.test_reproducible import FILES, _git

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]


def _project(root: Path, extra: dict[str, str] | None = None, pyproject_extra: str = "") -> Path:
    files = {**FILES, **(extra or {})}
    files["pyproject.toml"] = files["pyproject.toml"] + pyproject_extra
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root / ".gitignore").write_text("slimbuild.manifest.json\nslimbuild.verify.diffoscope.txt\n", encoding="utf-8")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "one")
    return root


@pytest.fixture
def build(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., Run]
) -> Iterator[Callable[[Path], dict[str, Any]]]:
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    tags: list[str] = []

    def _build(root: Path) -> dict[str, Any]:
        run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--json")
        assert run.code == OK, run.err
        (image,) = json.loads(run.out)["images"]
        tags.extend(image["tags"])
        _git(root, "add", "-A")  # the lock written by the build is committed, as a user would
        _git(root, "commit", "-q", "--amend", "--no-edit")
        return dict(image)

    yield _build
    for tag in tags:
        try:
            engine.client.remove_image(tag, force=True)
        except Exception:  # noqa: BLE001 - cleanup only
            pass


def _rebuilt(run_cli: Callable[..., Run], root: Path) -> dict[str, Any]:
    """Build again after the lock commit, so the record names the commit that holds the lock."""
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--json")
    assert run.code == OK, run.err
    (image,) = json.loads(run.out)["images"]
    return dict(image)


def test_G6_verify_rebuilds_without_cache_and_proves_the_same_image(
    tmp_path: Path, build: Callable[[Path], dict[str, Any]], run_cli: Callable[..., Run], engine: DockerEngine
) -> None:
    root = _project(tmp_path / "proj")
    build(root)
    image = _rebuilt(run_cli, root)
    by_image = run_cli("verify", image["tags"][0], "--project", str(root))
    assert by_image.code == OK, by_image.out + by_image.err
    assert f"reproduced: {image['image_id']}" in by_image.out
    by_manifest = run_cli("verify", image["manifest"], "--json")
    assert by_manifest.code == OK, by_manifest.err
    doc = json.loads(by_manifest.out)
    assert doc["kind"] == "verify" and doc["same"] is True and doc["rebuilt_id"] == doc["recorded_id"] == image["image_id"]


def test_G14_verify_refuses_a_tree_that_is_dirty_or_at_another_commit(
    tmp_path: Path, build: Callable[[Path], dict[str, Any]], run_cli: Callable[..., Run]
) -> None:
    root = _project(tmp_path / "proj")
    build(root)
    image = _rebuilt(run_cli, root)
    (root / "helper.py").write_text("VALUE = 7\n", encoding="utf-8")
    dirty = run_cli("verify", image["manifest"])
    assert dirty.code == USAGE and "has changes not in commit" in dirty.err and "--allow-dirty" in dirty.err
    assert "Traceback" not in dirty.err
    _git(root, "commit", "-q", "-am", "two")
    moved = run_cli("verify", image["manifest"])
    assert moved.code == USAGE and "the working tree is at" in moved.err


def test_G5_G15_a_template_that_stamps_the_time_is_not_reproducible_and_verify_names_the_file(
    tmp_path: Path, build: Callable[[Path], dict[str, Any]], run_cli: Callable[..., Run], engine: DockerEngine
) -> None:
    text = (REPO / "templates" / "slim" / "Dockerfile.j2").read_text(encoding="utf-8")
    stamped = text.replace("FROM deps AS runtime\n", "FROM deps AS runtime\nRUN date +%s%N > /stamp.txt\n")
    assert stamped != text, "the slim template changed: update this test"
    root = _project(tmp_path / "proj", {"tpl/Dockerfile.j2": stamped}, pyproject_extra='template = "./tpl"\n')
    build(root)
    image = _rebuilt(run_cli, root)
    run = run_cli("verify", image["manifest"])
    assert run.code == NOT_REPRODUCIBLE, run.out + run.err
    assert f"not reproduced: recorded {image['image_id']}" in run.out
    assert "~ stamp.txt:" in run.out and "size 20" in run.out  # the file, its size and mode on both sides
    if shutil.which("diffoscope"):
        out = root / "slimbuild.verify.diffoscope.txt"
        assert f"diffoscope: {out}" in run.out and "stamp.txt" in out.read_text(encoding="utf-8")
    rebuilt = run.out.split(", rebuilt ", 1)[1].split()[0]
    with pytest.raises(Exception):  # noqa: B017 - the rebuild left no image behind (docker.errors.ImageNotFound)
        engine.client.inspect_image(rebuilt)
    tagged = engine.inspect_image(image["tags"][0])["Id"]
    assert tagged == image["image_id"]  # the recorded image and its tags are untouched


def test_G16_verify_data_checks_the_recorded_data_files(
    tmp_path: Path, build: Callable[[Path], dict[str, Any]], run_cli: Callable[..., Run]
) -> None:
    root = _project(tmp_path / "proj", {"data/table.csv": "a,b\n1,2\n"}, pyproject_extra='include = ["data/table.csv"]\n')
    build(root)
    image = _rebuilt(run_cli, root)
    elsewhere = tmp_path / "mirror"
    (elsewhere / "data").mkdir(parents=True)
    (elsewhere / "data" / "table.csv").write_text("a,b\n1,3\n", encoding="utf-8")
    bad = run_cli("verify", image["manifest"], "--data", str(elsewhere))
    assert bad.code == INTEGRITY and "data/table.csv: recorded" in bad.err, bad.err
    (elsewhere / "data" / "table.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    good = run_cli("verify", image["manifest"], "--data", str(elsewhere))
    assert good.code == OK and "data: 1 recorded file(s) match" in good.out, good.err
