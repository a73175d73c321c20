"""The manifest's ``traced_data``: which data files the traced runs opened, their sha256 and size, whether the image
includes each, a file gone since (L46); its schema, and manifests without it (L47)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from slimbuild.analysis.runtime import Trace
from slimbuild.analysis.runtime_feed import data_files
from slimbuild.errors import IntegrityError, UsageError
from slimbuild.record.data import traced_records, with_included
from slimbuild.record.manifest import make_manifest, manifest_bytes, validate_manifest
from slimbuild.record.schema import parse_manifest


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_L46_the_data_files_are_the_opened_project_files_but_sources_slimbuild_files_and_installed_ones() -> None:
    trace = Trace(opened=(
        "data/in.csv", "main.py", "pkg/__pycache__/m.cpython-311.pyc", "nb.ipynb", "slimbuild.trace.json",
        "pyproject.toml", "slimbuild.lock", "site-packages/certifi/cacert.pem", "../secret.txt", "/etc/hosts",
        "conf/settings.yaml", "data/in.csv",
    ), outside=("/home/u/elsewhere.csv",))  # fmt: skip
    assert data_files(trace) == ("conf/settings.yaml", "data/in.csv")


def test_L46_records_hash_each_file_streamed_sort_them_and_list_a_gone_one_as_missing_with_a_warning(
    tmp_path: Path,
) -> None:
    root = tmp_path / "p"
    (root / "data").mkdir(parents=True)
    big = os.urandom(3 * (1 << 20) + 17)  # more than one read buffer
    (root / "data" / "big.bin").write_bytes(big)
    (root / "data" / "in.csv").write_bytes(b"a,b\n1,2\n")
    (root / "data" / "empty.txt").write_bytes(b"")
    (root / "data" / "latest.csv").symlink_to("in.csv")  # a link inside the project: its file is hashed
    records, warnings = traced_records(root, ["data/in.csv", "data/gone.csv", "data/big.bin", "data/latest.csv",
                                              "data/empty.txt"])  # fmt: skip
    assert records == [
        {"missing": False, "path": "data/big.bin", "sha256": _sha(big), "size": len(big)},
        {"missing": False, "path": "data/empty.txt", "sha256": _sha(b""), "size": 0},
        {"missing": True, "path": "data/gone.csv", "sha256": None, "size": None},
        {"missing": False, "path": "data/in.csv", "sha256": _sha(b"a,b\n1,2\n"), "size": 8},
        {"missing": False, "path": "data/latest.csv", "sha256": _sha(b"a,b\n1,2\n"), "size": 8},
    ]
    assert len(warnings) == 1 and "data/gone.csv" in warnings[0] and "no longer exist" in warnings[0], warnings
    assert "slimbuild trace --replace" in warnings[0]


def test_L46_a_link_to_a_file_outside_the_project_and_a_fifo_are_never_read_nor_listed(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (tmp_path / "outside.csv").write_text("host data\n", encoding="utf-8")
    (root / "escape.csv").symlink_to(tmp_path / "outside.csv")
    os.mkfifo(root / "pipe")  # opening it for reading would block: it is never opened
    (root / "loop").symlink_to("loop")
    (root / "kept.txt").write_text("x", encoding="utf-8")
    records, warnings = traced_records(root, ["escape.csv", "pipe", "loop", "kept.txt"])
    assert [r["path"] for r in records] == ["kept.txt"]
    text = " | ".join(warnings)
    assert "escape.csv" in text and "outside the project" in text, text
    assert "pipe" in text and "loop" in text and "regular files" in text, text


def test_L46_an_unreadable_file_is_exit_2_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "locked.csv").write_text("x", encoding="utf-8")
    real_open = os.open

    def refuse(path: Any, *args: Any, **kw: Any) -> int:
        if str(path).endswith("locked.csv"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kw)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(UsageError) as err:
        traced_records(root, ["locked.csv"])
    assert "locked.csv" in str(err.value) and "Permission denied" in str(err.value)


def test_L46_included_says_whether_the_image_holds_the_file() -> None:
    records = [{"missing": False, "path": "data/in.csv", "sha256": "1" * 64, "size": 1},
               {"missing": True, "path": "data/gone.csv", "sha256": None, "size": None},
               {"missing": False, "path": "data/raw.csv", "sha256": "2" * 64, "size": 2}]  # fmt: skip
    marked = with_included(records, ["main.py", "data/in.csv", "data"])
    assert [(r["path"], r["included"]) for r in marked] == [
        ("data/in.csv", True), ("data/gone.csv", False), ("data/raw.csv", False),
    ]
    assert records[0] == {"missing": False, "path": "data/in.csv", "sha256": "1" * 64, "size": 1}  # not mutated


def _fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "target": {"python": "3.11", "platform": "linux/amd64"},
        "base_image": {"reference": "python:3.11-slim", "digest_or_id": "python:3.11-slim"},
        "distributions": [],
        "files": [],
        "template": {"name": "slim", "dockerfile_sha256": "e" * 64},
        "source_date_epoch": 1_700_000_000,
        "lock_sha256": "f" * 64,
    }
    return {**fields, **overrides}


TRACED = [
    {"included": False, "missing": True, "path": "data/gone.csv", "sha256": None, "size": None},
    {"included": True, "missing": False, "path": "data/a.csv", "sha256": "3" * 64, "size": 5},
]


def test_L47_traced_data_is_sorted_and_round_trips_and_is_absent_without_a_trace() -> None:
    doc = make_manifest(**_fields(traced_data=TRACED))
    assert [r["path"] for r in doc["traced_data"]] == ["data/a.csv", "data/gone.csv"]
    assert parse_manifest(manifest_bytes(doc), "m") == doc
    assert "traced_data" not in make_manifest(**_fields())  # no trace: no field, the bytes as before
    assert make_manifest(**_fields(traced_data=[]))["traced_data"] == []  # a trace that opened no data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha256": "XYZ"}, "traced_data[0].sha256 must be 64 lowercase hex digits"),
        ({"size": "5"}, "traced_data[0].size must be an integer or null"),
        ({"included": "yes"}, "traced_data[0].included must be true or false"),
        ({"extra": 1}, "unknown key 'traced_data[0].extra'"),
        ({"missing": None}, "traced_data[0].missing must be true or false"),
    ],
)
def test_L47_a_malformed_traced_data_record_is_exit_5_naming_the_key(change: dict[str, Any], message: str) -> None:
    doc = make_manifest(**_fields(traced_data=TRACED))
    doc["traced_data"][0] = {**doc["traced_data"][0], **change}
    with pytest.raises(IntegrityError) as err:
        validate_manifest(doc, "m.json")
    assert message in str(err.value)
    key = next(iter(change))
    doc["traced_data"][0] = {k: v for k, v in TRACED[1].items() if k != key}  # the key left out instead
    if key != "extra":
        with pytest.raises(IntegrityError, match=f"missing key 'traced_data\\[0\\].{key}'"):
            validate_manifest(doc, "m.json")


def test_L47_older_manifests_without_it_still_validate_and_a_version_1_one_cannot_carry_it() -> None:
    doc = make_manifest(**_fields())
    validate_manifest(doc, "v2 without traced_data")
    old = {k: v for k, v in doc.items() if k != "inputs"} | {"schema_version": 1}
    validate_manifest(old, "v1")
    with pytest.raises(IntegrityError, match="unknown key 'traced_data'"):
        validate_manifest({**old, "traced_data": []}, "v1")
