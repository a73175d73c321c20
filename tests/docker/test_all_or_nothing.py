"""All or nothing on the real engine (E18-E21): no tag after a failed write, no work after a bad reference.

The read-only project is a read-only bind mount of the project's copy onto itself (``mount --bind``, then
``mount -o remount,bind,ro``): it refuses writes with EROFS even to root, which ignores chmod's write bits.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimbuild.errors import UsageError
from slimbuild.image.engine import DockerEngine
from slimbuild.image.reference import check_tag
from tests.conftest import Run
from tests.constants import OK, USAGE
from tests.docker.conftest import BASE_IMAGE, Build
from tests.docker.test_build_examples import SHARED_CACHE
from tests.docker.test_build_faults import _error_line, _images_built_for, _repo_images
from tests.docker.test_image_properties import EPOCH, write_project

pytestmark = pytest.mark.docker
RUN_ID = uuid.uuid4().hex[:8]


@pytest.fixture(autouse=True)
def _shared_wheels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))


@pytest.fixture
def project(tmp_path: Path, engine: DockerEngine) -> Iterator[tuple[Path, str]]:
    """A fresh copy of the docker tier's test project, named for this run; its images are removed after."""
    name = f"sbaon-{RUN_ID}-{uuid.uuid4().hex[:4]}"
    root = write_project(tmp_path / "proj", name, tmp_path / "outside.txt")
    yield root, name
    for image in _repo_images(engine, name):
        engine.client.remove_image(image["Id"], force=True)


def _mount_read_only(root: Path) -> None:
    steps = (["mount", "--bind", str(root), str(root)], ["mount", "-o", "remount,bind,ro", str(root)])
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", str(root)], capture_output=True, check=False)
            reason = f"cannot make a read-only bind mount ({' '.join(argv)}: {done.stderr.strip()})"
            if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
                pytest.fail(reason)
            pytest.skip(reason)


@pytest.fixture
def read_only(project: tuple[Path, str]) -> Iterator[tuple[Path, str]]:
    root, name = project
    _mount_read_only(root)
    try:
        with pytest.raises(OSError, match="Read-only file system"):
            (root / "probe").write_text("x")  # really unwritable, root included
        yield root, name
    finally:
        subprocess.run(["umount", str(root)], check=True)


def test_E18_a_read_only_project_is_exit_2_before_any_build_and_lock_out_manifest_out_build_it(
    engine: DockerEngine, read_only: tuple[Path, str], run_cli: Callable[..., Run], tmp_path: Path
) -> None:
    root, name = read_only
    before = sorted(p.name for p in root.iterdir())
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE)
    assert run.code == USAGE, run.err
    line = _error_line(run)
    assert "cannot write the lock slimbuild.lock" in line and "Read-only file system" in line
    assert "--lock-out" in line and "the cache dir" in line
    assert _repo_images(engine, name) == [] and _images_built_for(engine, name) == []  # no build work at all

    out = tmp_path / "out"
    ok = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--lock-out", f"{out}/", "--manifest-out", f"{out}/")
    assert ok.code == OK, ok.err
    assert (out / "slimbuild.lock").is_file() and (out / "slimbuild.manifest.json").is_file()
    assert sorted(p.name for p in root.iterdir()) == before
    assert len(_repo_images(engine, name)) == 1


def test_E19_a_manifest_write_that_fails_after_tagging_leaves_no_tag_and_restores_a_moved_one(
    engine: DockerEngine, project: tuple[Path, str], run_cli: Callable[..., Run]
) -> None:
    root, name = project
    (root / "slimbuild.manifest.json").mkdir()  # os.replace onto a non-empty directory fails (EISDIR/ENOTEMPTY)
    (root / "slimbuild.manifest.json" / "keep").write_text("x", encoding="utf-8")
    moved = f"slimbuild-test/aon-moved-{RUN_ID}:1"
    base_id = engine.inspect_image(BASE_IMAGE)["Id"]
    engine.client.tag(base_id, moved)
    try:
        run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--tag", moved)
        assert run.code == USAGE, run.err
        line = _error_line(run)
        assert "cannot write slimbuild.manifest.json" in line and "no tag of this run was kept" in line
        assert _repo_images(engine, name) == []  # the content tag was removed again
        assert engine.inspect_image(moved)["Id"] == base_id  # the moved ref is back on its image
        assert _images_built_for(engine, name) == []  # and the untagged image is gone
        assert not [p.name for p in root.iterdir() if p.name.endswith(".tmp")]
    finally:
        engine.client.remove_image(moved, noprune=True)


def test_E20_a_bad_tag_is_exit_2_before_any_lock_or_build(
    engine: DockerEngine, project: tuple[Path, str], run_cli: Callable[..., Run]
) -> None:
    root, name = project
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--tag", "Team/App:1")
    assert run.code == USAGE, run.err
    line = _error_line(run)
    assert "--tag 'Team/App:1' is not a valid image reference: the repository name must be lowercase" in line
    assert not (root / "slimbuild.lock").exists()  # before the lock
    assert _repo_images(engine, name) == [] and _images_built_for(engine, name) == []  # no image created


def test_E21_inspect_of_a_missing_image_is_exit_2(run_cli: Callable[..., Run]) -> None:
    ref = f"slimbuild-test/no-such-{RUN_ID}:1"
    run = run_cli("inspect", ref)
    assert run.code == USAGE, run.err
    assert _error_line(run).startswith(f"slimbuild: error: no such image: {ref}")


# the engine is the oracle: it tags with exactly the references slimbuild accepts
_CHARS = "abAB09._-:/@"
_near_valid = st.tuples(
    st.sampled_from(["", "localhost:5000/", "Reg.example.com/", "reg-1.io:1/"]),
    st.text("ab0._-", min_size=1, max_size=8),
    st.sampled_from(["", ":", ":v1", ":-x", ":.x", ":_x", ":" + "t" * 129, ":" + "t" * 128]),
).map("".join)
_refs = st.one_of(st.text(_CHARS, min_size=1, max_size=24), _near_valid)


@pytest.fixture
def oracle_image(engine: DockerEngine, build: Build) -> str:
    """A labelled image (pruned with the session) with a tag of its own, so removing a test's tag never deletes it."""
    image_id = build("LABEL slimbuild.test.oracle=1\n").image_id
    engine.client.tag(image_id, f"slimbuild-test/oracle-{RUN_ID}:keep")
    return image_id


def _engine_tags(engine: DockerEngine, image_id: str, ref: str) -> bool:
    import docker.errors

    try:
        engine.client.tag(image_id, ref)
    except docker.errors.APIError as exc:
        assert exc.status_code in (400, 409, 500), exc  # refused as invalid
        return False
    engine.client.remove_image(ref if ":" in ref.rsplit("/", 1)[-1] else f"{ref}:latest", noprune=True)
    return True


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_refs)
def test_E20_the_engine_accepts_a_tag_exactly_when_slimbuild_does(engine: DockerEngine, oracle_image: str, ref: str) -> None:
    try:
        check_tag(ref)
        ours = True
    except UsageError:
        ours = False
    assert _engine_tags(engine, oracle_image, ref) == ours, ref
