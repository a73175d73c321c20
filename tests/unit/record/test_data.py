"""Data inputs: the tree hash, the manifest records, the configured sha256 and check_inputs (G11, G12)."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimbuild.config import DataInput
from slimbuild.errors import ConfigError, IntegrityError, PolicyViolation, UsageError
from slimbuild.record.data import (
    TREE_HEADER,
    Mismatch,
    check_inputs,
    digest_path,
    input_records,
    parse_dvc,
    tree_hash,
)
from slimbuild.record.manifest import make_manifest, manifest_bytes, parse_manifest
from slimbuild.report import inspect_text
from tests import constants


def _reference_tree_hash(root: Path) -> str:
    """The README's algorithm written independently: every entry, sorted by its path's components."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                kind, content = "symlink", os.readlink(full).encode()
            elif full.is_dir():
                kind, content = "dir", b""
            else:
                kind, content = "file", full.read_bytes()
            entries.append((tuple(p.encode() for p in rel.split("/")), kind, rel, hashlib.sha256(content).hexdigest()))
    stream = TREE_HEADER + b"".join(
        f"{kind}\0{rel}\0{sha}\n".encode() for _key, kind, rel, sha in sorted(entries, key=lambda e: e[0])
    )
    return hashlib.sha256(stream).hexdigest()


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


SAMPLE = {"a/b.csv": b"1,2\n", "a-c/x.bin": b"\x00\x01", "z.txt": b"z", "a/deeper/y.txt": b"y" * 3000}


def test_G11_tree_hash_follows_the_documented_algorithm(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d", SAMPLE)
    (root / "empty").mkdir()
    (root / "a" / "link").symlink_to("../z.txt")
    assert tree_hash(root) == _reference_tree_hash(root)
    assert digest_path(root) == ("directory", tree_hash(root))
    assert digest_path(root / "z.txt") == ("file", hashlib.sha256(b"z").hexdigest())
    assert tree_hash(_tree(tmp_path / "empty", {})) == hashlib.sha256(TREE_HEADER).hexdigest()


def test_G11_tree_hash_ignores_creation_order_times_and_modes(tmp_path: Path) -> None:
    one = _tree(tmp_path / "one", SAMPLE)
    two = _tree(tmp_path / "two", dict(reversed(list(SAMPLE.items()))))
    for path in two.rglob("*"):
        os.utime(path, (1, 1))
        if path.is_file():
            path.chmod(0o600)
    assert tree_hash(one) == tree_hash(two)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: (r / "z.txt").write_bytes(b"Z"),  # content
        lambda r: (r / "z.txt").rename(r / "y.txt"),  # name
        lambda r: (r / "new").mkdir(),  # an empty directory
        lambda r: (r / "a-c" / "x.bin").unlink(),  # a file removed
        lambda r: ((r / "z.txt").unlink(), (r / "z.txt").mkdir()),  # a file became a directory
    ],
    ids=["content", "rename", "empty-dir", "removed", "kind"],
)
def test_G11_tree_hash_changes_with_any_entry(tmp_path: Path, change: object) -> None:
    root = _tree(tmp_path / "d", SAMPLE)
    before = tree_hash(root)
    change(root)  # type: ignore[operator]
    assert tree_hash(root) != before


def test_G11_symlinks_are_recorded_as_links_never_followed(tmp_path: Path) -> None:
    outside = _tree(tmp_path / "outside", {"secret.txt": b"one"})
    root = _tree(tmp_path / "d", {"x": b"x"})
    (root / "out").symlink_to(outside)
    (root / "f").symlink_to(outside / "secret.txt")
    before = tree_hash(root)
    (outside / "secret.txt").write_bytes(b"two")  # what the links point at changes: the tree does not
    (outside / "more.txt").write_bytes(b"more")
    assert tree_hash(root) == before
    (root / "f").unlink()
    (root / "f").symlink_to(outside / "more.txt")  # the link itself changes: the tree does
    assert tree_hash(root) != before
    assert digest_path(root / "out") == ("symlink", hashlib.sha256(os.fsencode(outside)).hexdigest())


def test_G11_a_fifo_is_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d", {"x": b"x"})
    os.mkfifo(root / "pipe")
    with pytest.raises(UsageError, match="FIFO") as info:
        tree_hash(root)
    assert info.value.exit_code == constants.USAGE


def test_G11_hashing_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    with (root / "big.bin").open("wb") as fh:
        for _ in range(48):
            fh.write(os.urandom(1 << 20))
    deep = root
    for level in range(200):
        deep = deep / f"l{level}"
    deep.mkdir(parents=True)
    (deep / "leaf").write_bytes(b"leaf")
    tracemalloc.start()
    try:
        tree_hash(root)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * (1 << 20), f"peak {peak} bytes for a 48 MiB file"


_NAMES = st.text(alphabet="ab-._0Z", min_size=1, max_size=4).filter(lambda s: s not in {".", ".."})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.lists(_NAMES, min_size=1, max_size=3).map("/".join), st.binary(max_size=64), max_size=8))
def test_G11_tree_hash_matches_the_reference_on_random_trees(tmp_path_factory: pytest.TempPathFactory,
                                                              files: dict[str, bytes]) -> None:
    root = tmp_path_factory.mktemp("tree")
    for rel, data in sorted(files.items()):
        target = root / rel
        if any(p.is_file() for p in [*target.parents, target] if root in p.parents):
            continue  # a path below a file (or repeated): not a tree
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    assert tree_hash(root) == _reference_tree_hash(root)


# --------------------------------------------------------------------------- records


def _project(tmp_path: Path) -> Path:
    root = _tree(tmp_path / "proj", {"data/raw/a.csv": b"a\n", "data/raw/b.csv": b"b\n", "data/one.csv": b"1\n"})
    (root / "data.dvc").write_text("outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 3\n  path: data\n", encoding="utf-8")
    return root


def test_G11_records_keep_the_configuration_and_add_local_digests(tmp_path: Path) -> None:
    root = _project(tmp_path)
    one = hashlib.sha256(b"1\n").hexdigest()
    inputs = (
        DataInput("path", "data/raw/"),
        DataInput("path", "data/one.csv", one),
        DataInput("url", "s3://bucket/key.parquet", "f" * 64),
        DataInput("dataset", "pachyderm://repo@0123abc"),
        DataInput("dvc", "data.dvc"),
        DataInput("lakefs", "lakefs://repo/main/data/"),
    )
    records = input_records(inputs, root)
    assert [(r["kind"], r["ref"], r["sha256"]) for r in records] == [(i.kind, i.ref, i.sha256) for i in inputs]
    assert records[0]["type"] == "directory" and records[0]["digest"] == tree_hash(root / "data" / "raw")
    assert records[1]["type"] == "file" and records[1]["digest"] == one
    assert [r["digest"] for r in records[2:4]] == [None, None] and records[5]["digest"] is None
    assert records[4]["type"] == "file" and records[4]["digest"] == hashlib.sha256((root / "data.dvc").read_bytes()).hexdigest()
    assert records[4]["outs"] == [{"md5": "0123456789abcdef0123456789abcdef", "path": "data"}]
    doc = _manifest(records)
    assert parse_manifest(manifest_bytes(doc), "m.json")["inputs"] == records  # unchanged, in order
    text = inspect_text(doc)
    assert "data inputs (6):" in text and "pachyderm://repo@0123abc" in text and records[0]["digest"][:12] in text


def _manifest(records: list[dict[str, object]]) -> dict[str, object]:
    return make_manifest(
        target={"python": "3.11", "platform": "linux/amd64"},
        base_image={"reference": "python:3.11-slim@sha256:" + "1" * 64, "digest_or_id": "sha256:" + "1" * 64},
        distributions=[], files=[], template={"name": "slim", "dockerfile_sha256": "2" * 64},
        source_date_epoch=0, lock_sha256="3" * 64, inputs=records,
    )  # fmt: skip


def test_G11_version_1_manifests_still_read_and_version_2_needs_inputs(tmp_path: Path) -> None:
    doc = _manifest([])
    old = {k: v for k, v in doc.items() if k != "inputs"} | {"schema_version": 1}
    assert parse_manifest(manifest_bytes(old), "old.json") == old  # returned as it is: an old label's sha still holds
    with pytest.raises(IntegrityError, match="unknown key 'inputs'"):
        parse_manifest(manifest_bytes({**old, "inputs": []}), "m.json")
    with pytest.raises(IntegrityError, match="missing key 'inputs'"):
        parse_manifest(manifest_bytes({k: v for k, v in doc.items() if k != "inputs"}), "m.json")
    bad = {**doc, "inputs": [{"kind": "ftp", "ref": "x", "sha256": None, "type": None, "digest": None, "outs": []}]}
    with pytest.raises(IntegrityError, match=r"inputs\[0\].kind must be one of"):
        parse_manifest(manifest_bytes(bad), "m.json")


def test_G12_a_configured_sha256_that_does_not_match_fails_naming_both(tmp_path: Path) -> None:
    root = _project(tmp_path)
    wrong = "0" * 64
    with pytest.raises(IntegrityError) as info:
        input_records((DataInput("path", "data/raw/", wrong),), root)
    assert info.value.exit_code == constants.INTEGRITY
    line = info.value.one_line()
    assert "data/raw/" in line and wrong in line and tree_hash(root / "data" / "raw") in line


def test_G12_a_missing_local_input_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        input_records((DataInput("path", "nope/"),), _project(tmp_path))
    assert info.value.exit_code == constants.USAGE


def test_G12_check_inputs_reports_each_changed_or_missing_path(tmp_path: Path) -> None:
    root = _project(tmp_path)
    inputs = (DataInput("path", "data/raw/"), DataInput("path", "data/one.csv"), DataInput("url", "s3://b/k", "e" * 64),
              DataInput("dvc", "data.dvc"))  # fmt: skip
    records = input_records(inputs, root)
    copy = _tree(tmp_path / "copy", {"data/raw/a.csv": b"a\n", "data/raw/b.csv": b"b\n", "data/one.csv": b"1\n"})
    assert check_inputs(records, copy) == []  # the same data elsewhere; urls and .dvc references are not checked
    (copy / "data" / "raw" / "b.csv").write_bytes(b"B\n")
    (copy / "data" / "one.csv").unlink()
    got = check_inputs(records, copy)
    assert got == [
        Mismatch("data/raw/", "directory", records[0]["digest"], "directory", tree_hash(copy / "data" / "raw")),
        Mismatch("data/one.csv", "file", records[1]["digest"], None, None),
    ]
    assert records[0]["digest"] in got[0].describe() and "missing" in got[1].describe()


@pytest.mark.parametrize("ref", ["../outside", "/etc/passwd", "a/../../x"])
def test_G12_check_inputs_refuses_a_ref_that_escapes_the_data_dir(tmp_path: Path, ref: str) -> None:
    record = {"kind": "path", "ref": ref, "sha256": None, "type": "file", "digest": "0" * 64, "outs": []}
    with pytest.raises(PolicyViolation):
        check_inputs([record], tmp_path)


@pytest.mark.parametrize(
    "text", ["outs: 3", "[1, 2]", "outs:\n- path: x\n", "outs:\n- md5: abc\n", ": : :\n\t-", "outs: []"]
)
def test_G12_malformed_dvc_file(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_dvc(text.encode(), "data.dvc")
    assert info.value.exit_code == constants.USAGE and info.value.message.startswith("data.dvc: ")
