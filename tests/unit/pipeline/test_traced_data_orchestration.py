"""The data files the traced runs opened, in the build's manifests, against the in-memory engine (L49): hashed, marked
included or not, a file gone since listed as missing with a warning; in the image's own copy too; no trace, no field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from slimbuild.errors import IntegrityError
from slimbuild.record import manifest as manifest_mod
from tests.constants import OK
from tests.unit.pipeline import test_build_orchestration as orchestration
from tests.unit.pipeline.test_build_orchestration import APP, FakeEngine, _build, _cli, _members, _write_project

cache, fake_lock = orchestration.cache, orchestration.fake_lock  # its fixtures, found here by name

IN, RAW = b"x,y\n1,2\n", b"raw bytes, never shipped\n"


def _traced_project(root: Path) -> Path:
    _write_project(root, 'include = ["data/in.csv"]\n')
    (root / "data").mkdir()
    (root / "data" / "in.csv").write_bytes(IN)
    (root / "data" / "raw.csv").write_bytes(RAW)
    trace = {"schema": "slimbuild-trace", "version": 2, "project": "orch",
             "commands": [{"argv": ["python", "main.py"], "untraced": []}],
             "modules": {"tinypkg": {"file": "site-packages/tinypkg/__init__.py", "imported_by": ["main.py:1"]},
                         "helper": {"file": "helper.py", "imported_by": ["main.py:3"]}},
             "opened": ["data/gone.csv", "data/in.csv", "data/raw.csv", "helper.py", "pyproject.toml"],
             "installed": [], "outside": ["/srv/shared/lookup.csv"], "stdlib": [],
             "libraries": {"dlopen": [], "needed": {}}}  # fmt: skip
    (root / "slimbuild.trace.json").write_text(json.dumps(trace))
    return root


def test_L49_the_manifests_list_the_traced_data_with_sha256_size_included_and_a_missing_file(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _traced_project(tmp_path / "p")
    engine = FakeEngine()
    run = _cli("build", str(root), "--json", engine=engine, monkeypatch=monkeypatch)
    assert run.code == OK, run.err
    assert "data/gone.csv" in run.err and "no longer exist" in run.err, run.err  # a warning, not a failure
    expected = [
        {"included": False, "missing": True, "path": "data/gone.csv", "sha256": None, "size": None},
        {"included": True, "missing": False, "path": "data/in.csv", "sha256": hashlib.sha256(IN).hexdigest(), "size": len(IN)},
        {"included": False, "missing": False, "path": "data/raw.csv", "sha256": hashlib.sha256(RAW).hexdigest(),
         "size": len(RAW)},
    ]  # fmt: skip
    doc = manifest_mod.read_manifest_file(root / "slimbuild.manifest.json")
    assert doc["traced_data"] == expected
    assert "/srv/shared/lookup.csv" not in json.dumps(doc)  # outside the project: never hashed nor listed
    _deps, app = (_members(data) for _, data in engine.contexts)
    assert json.loads(app[f"{APP}.slimbuild/manifest.json"])["traced_data"] == expected  # the image's own copy
    assert f"{APP}data/in.csv" in app and f"{APP}data/raw.csv" not in app

    plain = _write_project(tmp_path / "q")
    (result,) = _build(plain, FakeEngine())
    assert "traced_data" not in result.manifest  # no trace: no field


def test_L50_verify_rebuilds_with_the_traced_data_as_recorded_and_data_checks_the_files_the_run_read(
    tmp_path: Path, fake_lock: list[int]
) -> None:
    from slimbuild.pipeline.verifying import verify

    root = _traced_project(tmp_path / "p")
    engine = FakeEngine()
    _build(root, engine)
    target = str(root / "slimbuild.manifest.json")
    outcome = verify(target, connect=lambda: engine, project=root, allow_dirty=True)
    assert outcome.same, outcome  # the rebuilt image embeds the same traced_data: the same image id
    (root / "data" / "raw.csv").write_bytes(RAW + b"edited\n")  # not in the image, but what the run read
    outcome = verify(target, connect=lambda: engine, project=root, allow_dirty=True)
    assert not outcome.same, outcome
    with pytest.raises(IntegrityError) as err:  # --data DIR: the data the run read is checked, before any rebuild
        verify(target, connect=lambda: engine, project=root, allow_dirty=True, data_dir=root)
    assert "1 recorded data file(s)" in str(err.value) and "data/raw.csv" in str(err.value), err.value
    (root / "data" / "raw.csv").write_bytes(RAW)
    outcome = verify(target, connect=lambda: engine, project=root, allow_dirty=True, data_dir=root)
    assert outcome.same and outcome.data_checked == 2, outcome  # data/in.csv (a file of the image) and data/raw.csv
