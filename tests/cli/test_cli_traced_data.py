"""``inspect`` and ``diff`` of manifests that list the data files the traced runs opened, and of older ones (L48)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slimbuild.record.manifest import make_manifest, with_image, write_manifest
from tests.conftest import Run
from tests.constants import FINDINGS, OK

DIGEST = "sha256:" + "a" * 64


def _record(path: str, digit: str | None, included: bool = False, size: int = 7) -> dict[str, Any]:
    missing = digit is None
    return {"included": included, "missing": missing, "path": path, "sha256": None if missing else digit * 64,
            "size": None if missing else size}  # fmt: skip


def _write(path: Path, traced: list[dict[str, Any]] | None, *, version_1: bool = False) -> str:
    doc = make_manifest(
        target={"python": "3.11", "platform": "linux/amd64"},
        base_image={"reference": f"python:3.11-slim@{DIGEST}", "digest_or_id": DIGEST},
        distributions=[],
        files=[{"path": "main.py", "sha256": "2" * 64, "size": 10, "kind": "source"},
               {"path": "data/in.csv", "sha256": "1" * 64, "size": 7, "kind": "data"}],
        template={"name": "slim", "dockerfile_sha256": "e" * 64},
        source_date_epoch=1_700_000_000,
        lock_sha256="f" * 64,
        traced_data=traced,
    )  # fmt: skip
    doc = with_image(doc, {"id": DIGEST, "layer_diff_ids": [DIGEST], "size_bytes": 1000})
    if version_1:
        doc = {k: v for k, v in doc.items() if k != "inputs"} | {"schema_version": 1}
    write_manifest(path, doc)
    return str(path)


def test_L48_diff_reports_a_traced_data_file_whose_sha256_changed_added_removed_or_gone(
    tmp_path: Path, run_cli: Callable[..., Run]
) -> None:
    base = [_record("data/in.csv", "1", included=True), _record("data/raw.csv", "5"), _record("data/old.csv", "6")]
    old = _write(tmp_path / "old.json", base)
    same = _write(tmp_path / "same.json", base)
    new = _write(tmp_path / "new.json", [_record("data/in.csv", "1", included=True), _record("data/raw.csv", "9"),
                                          _record("data/new.csv", "7"), _record("data/old.csv", None)])  # fmt: skip
    run = run_cli("diff", old, same)
    assert run.code == OK and ": same" in run.out.splitlines()[0], run.out
    run = run_cli("diff", old, new)
    assert run.code == FINDINGS, run.err
    assert "data files the traced runs opened (3):" in run.out, run.out
    assert f"  ~ data/raw.csv sha256 {'5' * 12} -> {'9' * 12}" in run.out
    assert f"  + data/new.csv sha256 - -> {'7' * 12}" in run.out
    assert f"  ~ data/old.csv sha256 {'6' * 12} -> missing" in run.out
    assert "data/in.csv" not in run.out and "other changes" not in run.out, run.out  # reported once, in its section
    traced = json.loads(run_cli("diff", old, new, "--json").out)["traced_data"]
    assert [t["path"] for t in traced["changed"]] == ["data/old.csv", "data/raw.csv"]
    assert traced["changed"][1]["old"]["sha256"] == "5" * 64 and traced["changed"][1]["new"]["sha256"] == "9" * 64
    assert traced["changed"][0]["new"]["missing"] is True
    assert [t["path"] for t in traced["added"]] == ["data/new.csv"] and traced["removed"] == []


def test_L48_inspect_lists_the_traced_data_briefly_and_older_manifests_still_inspect_and_diff(
    tmp_path: Path, run_cli: Callable[..., Run]
) -> None:
    many = [_record("data/in.csv", "1", included=True), _record("data/gone.csv", None),
            *(_record(f"data/part-{i:02}.csv", "3", size=1000) for i in range(12))]  # fmt: skip
    path = _write(tmp_path / "m.json", many)
    run = run_cli("inspect", path)
    assert run.code == OK, run.err
    lines = run.out.splitlines()
    head = lines.index("data files the traced runs opened (14, 12.0 kB, 1 in the image):")
    assert "data/gone.csv" in lines[head + 1] and "missing" in lines[head + 1], lines[head + 1]
    assert "data/in.csv" in lines[head + 2] and "in the image" in lines[head + 2] and "1" * 12 in lines[head + 2]
    assert "data/part-00.csv" in lines[head + 3] and lines[head + 3].endswith("not in the image"), lines[head + 3]
    assert lines[head + 11] == "  ... and 4 more (inspect --json lists them all)", lines[head:head + 12]
    older = [_write(tmp_path / "v2.json", None), _write(tmp_path / "v1.json", None, version_1=True)]
    for old in older:
        run = run_cli("inspect", old)
        assert run.code == OK and "traced runs" not in run.out, run.err
    run = run_cli("diff", older[1], older[0])  # version 1 against version 2, neither traced: only the version differs
    assert run.code == FINDINGS and "schema_version: 1 -> 2" in run.out and "traced runs" not in run.out, run.out
    for old in older:  # a manifest made before traced_data (or without a trace) against one with it: all added
        run = run_cli("diff", old, path)
        assert run.code == FINDINGS and "data files the traced runs opened (14):" in run.out, run.out
        assert "  + data/gone.csv sha256 - -> missing" in run.out, run.out
