"""inspect / diff on real images (H3, G1) and a full disk during the build (E12)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.image.engine import DockerEngine
from tests.conftest import Run
from tests.constants import BUILD, FINDINGS, OK, USAGE
from tests.docker.conftest import BASE_IMAGE
from tests.docker.test_build_examples import REPO, SHARED_CACHE

pytestmark = pytest.mark.docker


def _build(root: Path, run_cli: Callable[..., Run]) -> dict:  # type: ignore[type-arg]
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--json")
    assert run.code == OK, run.err
    (image,) = json.loads(run.out)["images"]
    return image  # type: ignore[no-any-return]


def test_H3_inspect_and_diff_round_trip(
    engine: DockerEngine, tmp_path: Path, run_cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    root = tmp_path / "ks"
    shutil.copytree(REPO / "examples" / "kitchen-sink", root)
    first = _build(root, run_cli)
    try:
        old_manifest = tmp_path / "old.json"
        shutil.copyfile(first["manifest"], old_manifest)
        text = run_cli("inspect", first["tags"][0])
        assert text.code == OK, text.err
        assert "scikit-learn" in text.out and "train.py" in text.out and "tensorflow" in text.out  # left out, listed
        doc = json.loads(run_cli("inspect", first["tags"][0], "--json").out)
        assert doc["kind"] == "inspect" and doc["manifest"]["image"]["id"] == first["image_id"]
        assert run_cli("inspect", str(old_manifest)).code == OK
        # H3: an image slimbuild did not build
        foreign = run_cli("inspect", BASE_IMAGE)
        assert foreign.code == USAGE and "no slimbuild manifest" in foreign.err and "Traceback" not in foreign.err
        # G1: same inputs rebuilt -> no difference outside the volatile fields
        again = _build(root, run_cli)
        assert run_cli("diff", str(old_manifest), again["manifest"]).code == OK
        # a one-line change to the analysis shows up as a file change
        with (root / "train.py").open("a") as fh:
            fh.write("# tweak\n")
        changed = _build(root, run_cli)
        diff = run_cli("diff", str(old_manifest), changed["manifest"])
        assert diff.code == FINDINGS and "train.py" in diff.out
    finally:
        for tag in {*first["tags"]}:
            try:
                engine.client.remove_image(tag, force=True)
            except Exception:  # noqa: BLE001 - cleanup only
                pass


def test_E12_full_disk_while_writing_the_context(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    try:
        root = tmp_path / "ks"
        shutil.copytree(REPO / "examples" / "kitchen-sink", root)
        env = {**os.environ, "SLIMBUILD_CACHE": str(SHARED_CACHE), "PYTHONPATH": str(REPO)}
        locked = subprocess.run([sys.executable, "-m", "slimbuild", "lock", str(root)], env=env, capture_output=True, text=True)
        assert locked.returncode == OK, locked.stderr
        env["TMPDIR"] = str(small)  # the lock is done: the disk fills while the context is written
        proc = subprocess.run(
            # --no-cache: a deps image recorded in the shared cache would leave only the small app context to write
            [sys.executable, "-m", "slimbuild", "build", str(root), "--base-image", BASE_IMAGE, "--no-cache"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == BUILD, proc.stderr
        assert "no space left" in proc.stderr.lower() or "space" in proc.stderr.lower()
        assert "Traceback" not in proc.stderr
        assert list(small.iterdir()) == []  # the partial context was removed
    finally:
        subprocess.run(["umount", str(small)], check=False)
