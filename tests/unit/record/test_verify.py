"""verify's comparisons (record/verify.py): the record against the tree, data files, two layer tars (G6, G14-G16)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from slimbuild.record.verify import data_mismatches, extract_layers, file_changes, input_refusal, layer_differences

COMMIT = "c" * 40


@pytest.mark.parametrize(
    ("git", "now", "why"),
    [
        ({"commit": COMMIT, "dirty": False}, {"commit": COMMIT, "dirty": False}, ""),
        (None, {"commit": COMMIT, "dirty": False}, "names no git commit"),
        ({"commit": COMMIT, "dirty": True}, {"commit": COMMIT, "dirty": False}, "built from a dirty working tree"),
        ({"commit": COMMIT, "dirty": False}, None, "not a git repository"),
        ({"commit": COMMIT, "dirty": False}, {"commit": "d" * 40, "dirty": False}, "the working tree is at dddddddddddd"),
        ({"commit": COMMIT, "dirty": False}, {"commit": COMMIT, "dirty": True}, "has changes not in commit"),
    ],
)
def test_G14_the_working_tree_must_hold_the_recorded_inputs(git: dict | None, now: dict | None, why: str) -> None:  # type: ignore[type-arg]
    refusal = input_refusal({"git": git}, now)
    assert (why in refusal) if why else refusal == ""


def test_G16_data_files_are_checked_by_sha256_missing_and_changed_named(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ok.csv").write_bytes(b"a\n")
    (tmp_path / "data" / "changed.csv").write_bytes(b"b\n")
    records = [
        {"kind": "data", "path": "data/ok.csv", "sha256": hashlib.sha256(b"a\n").hexdigest()},
        {"kind": "data", "path": "data/changed.csv", "sha256": hashlib.sha256(b"x\n").hexdigest()},
        {"kind": "data", "path": "data/gone.csv", "sha256": "0" * 64},
        {"kind": "source", "path": "main.py", "sha256": "1" * 64},  # sources are verify's rebuild, not --data
    ]
    bad = data_mismatches(records, tmp_path)
    assert [(m.path, m.found) for m in bad] == [
        ("data/changed.csv", hashlib.sha256(b"b\n").hexdigest()),
        ("data/gone.csv", "missing"),
    ]


def test_G15_layer_differences_line_up_by_position() -> None:
    diffs = layer_differences(["a", "b", "c"], ["a", "x", "c", "d"])
    assert [(d.index, d.recorded, d.rebuilt) for d in diffs] == [(1, "b", "x"), (3, "", "d")]


def _layer(members: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_G15_file_changes_name_added_removed_and_changed_members(tmp_path: Path) -> None:
    a = tmp_path / "a.tar"
    b = tmp_path / "b.tar"
    a.write_bytes(_layer({"app/x.py": (b"1", 0o644), "app/gone.py": (b"", 0o644), "stamp": (b"1234", 0o644)}))
    b.write_bytes(_layer({"app/x.py": (b"1", 0o755), "app/new.py": (b"", 0o644), "stamp": (b"5678", 0o644)}))
    changes, more = file_changes(a, b)
    assert more == 0
    assert [(c.path, c.change) for c in changes] == [
        ("app/gone.py", "removed"), ("app/new.py", "added"), ("app/x.py", "changed"), ("stamp", "changed"),
    ]  # fmt: skip
    (mode_change,) = [c for c in changes if c.path == "app/x.py"]
    assert "mode 0644" in mode_change.recorded and "mode 0755" in mode_change.rebuilt
    (content,) = [c for c in changes if c.path == "stamp"]
    assert "size 4" in content.recorded and content.recorded != content.rebuilt  # same size, other sha256
    assert content.render().startswith("~ stamp: ")


def test_G15_layers_are_copied_out_of_a_save_stream_by_diff_id(tmp_path: Path) -> None:
    one, two = _layer({"a": (b"1", 0o644)}), _layer({"b": (b"2", 0o644)})
    outer = io.BytesIO()
    with tarfile.open(fileobj=outer, mode="w") as tar:
        for name, data in (("x/layer.tar", one), ("y/layer.tar", two), ("manifest.json", b"[]")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = outer.getvalue()
    wanted = "sha256:" + hashlib.sha256(two).hexdigest()
    found = extract_layers([raw[i : i + 700] for i in range(0, len(raw), 700)], {wanted}, tmp_path / "out")
    assert list(found) == [wanted] and found[wanted].read_bytes() == two
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{wanted.split(':')[1]}.tar"]  # nothing else kept
