"""``diff`` of two records, sorted into distributions, base, files, data inputs, sizes and the rest (G13, H7)."""

from __future__ import annotations

from typing import Any

from slimbuild.record.compare import BaseChange, DistChange, FileChange, Side, compare, layer_sizes_from_history
from slimbuild.record.manifest import make_manifest, with_image
from slimbuild.report import diff_dict, diff_json, diff_text

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def _dist(name: str, version: str, digit: str) -> dict[str, Any]:
    return {"name": name, "version": version, "hashes": ["sha256:" + digit * 64], "required_by": [name]}


def _file(path: str, digit: str, kind: str = "source") -> dict[str, Any]:
    return {"path": path, "sha256": digit * 64, "size": 10, "kind": kind}


def _manifest(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "target": {"python": "3.11", "platform": "linux/amd64"},
        "base_image": {"reference": f"python:3.11-slim@{DIGEST_A}", "digest_or_id": DIGEST_A},
        "distributions": [_dist("numpy", "2.1.0", "1"), _dist("six", "1.16.0", "2")],
        "files": [_file("main.py", "3"), _file("data/iris.csv", "4", "data")],
        "template": {"name": "slim", "dockerfile_sha256": "e" * 64},
        "source_date_epoch": 1_700_000_000,
        "lock_sha256": "f" * 64,
        "slimbuild_version": "0.1.0",
    }
    fields.update(overrides)
    return make_manifest(**fields)


def _side(doc: dict[str, Any], form: str = "manifest", sizes: tuple[int, ...] | None = None, measure: str = "") -> Side:
    return Side(f"{form}-source", form, doc, sizes, measure)


def test_G13_identical_records_are_the_same() -> None:
    c = compare(_side(_manifest()), _side(_manifest()))
    assert not c.differs and c.other == () and c.distributions == () and c.files == () and c.base is None
    assert diff_dict(c)["same"] is True


def test_G13_distributions_added_removed_and_changed() -> None:
    new = _manifest(distributions=[_dist("numpy", "2.2.0", "5"), _dist("requests", "2.32.3", "6"),
                                   {**_dist("six", "1.16.0", "7")}])  # fmt: skip
    c = compare(_side(_manifest()), _side(new))
    assert c.differs
    assert c.distributions == (
        DistChange("numpy", "2.1.0", "2.2.0"),
        DistChange("requests", None, "2.32.3"),
        DistChange("six", "1.16.0", "1.16.0", hashes_changed=True),
    )
    body = diff_dict(c)["distributions"]
    assert body["added"] == [{"name": "requests", "version": "2.32.3"}] and body["removed"] == []
    assert [d["name"] for d in body["changed"]] == ["numpy", "six"]
    text = diff_text(c)
    assert "~ numpy 2.1.0 -> 2.2.0" in text and "+ requests 2.32.3" in text and "other hashes" in text
    assert not [o for o in c.other if o.path.startswith("distributions[numpy].version")]  # not reported twice


def test_G13_first_party_and_data_files_by_sha256() -> None:
    new = _manifest(files=[_file("main.py", "9"), _file("helper.py", "8"), _file("data/iris.csv", "4", "data")])
    old = _manifest(files=[_file("main.py", "3"), _file("data/iris.csv", "4", "data"), _file("old.py", "1")])
    c = compare(_side(old), _side(new))
    assert c.files == (
        FileChange("helper.py", "source", None, "8" * 64),
        FileChange("main.py", "source", "3" * 64, "9" * 64),
        FileChange("old.py", "source", "1" * 64, None),
    )
    assert c.other == ()
    files = diff_dict(c)["files"]
    assert [f["path"] for f in files["added"]] == ["helper.py"] and [f["path"] for f in files["removed"]] == ["old.py"]
    assert "~ main.py (source) sha256 333333333333 -> 999999999999" in diff_text(c)


def test_H7_a_base_image_changed_under_the_same_tag_shows_both_digests() -> None:
    moved = _manifest(base_image={"reference": f"python:3.11-slim@{DIGEST_B}", "digest_or_id": DIGEST_B})
    c = compare(_side(_manifest()), _side(moved))
    assert c.base == BaseChange(f"python:3.11-slim@{DIGEST_A}", DIGEST_A, f"python:3.11-slim@{DIGEST_B}", DIGEST_B)
    assert c.base.same_tag and c.differs and c.other == ()
    text = diff_text(c)
    assert "base image changed: python:3.11-slim (same tag, new digest)" in text
    assert f"{DIGEST_A} -> {DIGEST_B}" in text
    assert diff_dict(c)["base_image"]["same_tag"] is True
    other_tag = _manifest(base_image={"reference": f"python:3.12-slim@{DIGEST_B}", "digest_or_id": DIGEST_B})
    c = compare(_side(_manifest()), _side(other_tag))
    assert c.base is not None and not c.base.same_tag
    local = _manifest(base_image={"reference": DIGEST_B, "digest_or_id": DIGEST_B, "local_only": True})
    c = compare(_side(_manifest(base_image={"reference": DIGEST_A, "digest_or_id": DIGEST_A, "local_only": True})),
                _side(local))  # fmt: skip
    assert c.base is not None and not c.base.same_tag and f"{DIGEST_A} -> {DIGEST_B}" in diff_text(c)


def _image(doc: dict[str, Any], sizes: tuple[int, ...], total: int) -> dict[str, Any]:
    return with_image(doc, {"id": DIGEST_A, "layer_diff_ids": [DIGEST_A, DIGEST_B], "layer_sizes": sizes,
                            "size_bytes": total})  # fmt: skip


def test_G13_sizes_from_the_images_when_both_sides_are_images_else_from_the_manifests() -> None:
    a, b = _image(_manifest(), (100, 50), 150), _image(_manifest(), (100, 80, 5), 185)
    c = compare(_side(a, "image", (1000, 20), "tar"), _side(b, "tar", (1000, 70), "tar"))
    assert c.sizes.source == "images" and c.sizes.measure == "tar"
    assert [(s.old, s.new, s.difference) for s in c.sizes.layers] == [(1000, 1000, 0), (20, 70, 50)]
    assert (c.sizes.old_total, c.sizes.new_total, c.sizes.difference) == (1020, 1070, 50)
    assert not c.differs  # sizes are volatile: shown, a difference only with --all
    assert compare(c.old, c.new, include_volatile=True).differs
    c = compare(_side(a, "image", (1000, 20), "engine"), _side(b))  # one side is a manifest
    assert c.sizes.source == "manifests"
    assert [(s.old, s.new, s.difference) for s in c.sizes.layers] == [(100, 100, 0), (50, 80, 30), (None, 5, None)]
    assert c.sizes.difference == 35
    text = diff_text(c)
    assert "sizes (from the manifests" in text and "layer 2" in text and "+35 B" in text
    assert diff_dict(c)["sizes"]["total"] == {"old": 150, "new": 185, "difference": 35}


def test_G13_data_inputs_and_the_rest_are_reported() -> None:
    record = {"kind": "path", "ref": "data/raw/", "sha256": None, "type": "directory", "digest": "1" * 64, "outs": []}
    old = _manifest(inputs=[record])
    new = _manifest(inputs=[{**record, "digest": "2" * 64}, {**record, "kind": "url", "ref": "s3://b/k", "type": None,
                                                             "digest": None}], lock_sha256="0" * 64)  # fmt: skip
    c = compare(_side(old), _side(new))
    assert [(i.kind, i.ref, i.old is None, i.new is None) for i in c.inputs] == [
        ("path", "data/raw/", False, False), ("url", "s3://b/k", True, False)
    ]
    assert [o.path for o in c.other] == ["lock_sha256"]
    text = diff_text(c)
    assert "~ path data/raw/ 111111111111 -> 222222222222" in text and "lock_sha256" in text
    doc = __import__("json").loads(diff_json(c))
    assert doc["kind"] == "diff" and doc["version"] == 1 and len(doc["inputs"]["added"]) == 1


def test_G13_a_version_1_manifest_is_compared_as_one_without_inputs() -> None:
    new = _manifest()
    old = {k: v for k, v in new.items() if k != "inputs"} | {"schema_version": 1}
    c = compare(_side(old), _side(new))
    assert c.inputs == () and [o.path for o in c.other] == ["schema_version"]


def test_G13_layer_sizes_from_the_engine_history() -> None:
    history = [  # newest first, as the engine gives it
        {"CreatedBy": "/bin/sh -c #(nop)  CMD [\"python\"]", "Size": 0},
        {"CreatedBy": "/bin/sh -c #(nop) COPY dir:abc in /app", "Size": 30},
        {"CreatedBy": "/bin/sh -c #(nop)  ENV A=b", "Size": 0},
        {"CreatedBy": "/bin/sh -c pip install x", "Size": 200},
        {"CreatedBy": "", "Size": 1000},
    ]
    assert layer_sizes_from_history(history, 3) == (1000, 200, 30)
    buildkit = [{"CreatedBy": "ENV A=b", "Size": 0}, {"CreatedBy": "RUN x", "Size": 7}, {"CreatedBy": "", "Size": 9}]
    assert layer_sizes_from_history(buildkit, 2) == (9, 7)  # by size when the instructions do not line up
    assert layer_sizes_from_history(history, 5) is None


def test_G13_smoke_runs_count_only_between_two_manifest_files() -> None:
    built = with_image(_manifest(), {"id": DIGEST_A, "layer_diff_ids": [DIGEST_A]},
                       smoke=[{"command": ["python", "-c", "1"], "exit_code": 0}])  # fmt: skip
    embedded = with_image(_manifest(), {"id": DIGEST_A, "layer_diff_ids": [DIGEST_A]})  # the image's own: before smoke
    assert not compare(_side(embedded, "tar"), _side(built)).differs
    assert [o.path for o in compare(_side(embedded), _side(built)).other] == ["smoke"]
