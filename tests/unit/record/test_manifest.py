"""Manifests: schema, canonical bytes, label verification, diff, inspect rendering, docker save tars (G, H, B14)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slimbuild.errors import IntegrityError, PolicyViolation
from slimbuild.locking.target import Target
from slimbuild.models import Location
from slimbuild.record.image_tar import read_manifest_from_image_tar, scan_image_tar
from slimbuild.record.manifest import (
    LABEL_MANIFEST,
    LABEL_MANIFEST_SHA,
    MANIFEST_PATH_IN_IMAGE,
    MAX_LABEL_BYTES,
    MAX_MANIFEST_BYTES,
    SCHEMA_VERSION,
    VOLATILE_FIELDS,
    Change,
    ImageInfo,
    NoManifest,
    diff_manifests,
    image_info_from_inspect,
    make_manifest,
    manifest_bytes,
    manifest_from_image_config,
    manifest_labels,
    manifest_sha256,
    parse_manifest,
    read_manifest_file,
    with_image,
    with_smoke,
    write_manifest,
)
from slimbuild.report import inspect_json, inspect_text
from tests import constants

H = "a" * 64
DIGEST = "sha256:" + "b" * 64


def _dist(name: str, version: str, digit: str, required_by: list[str], size: int | None) -> dict[str, Any]:
    return {"name": name, "version": version, "hashes": ["sha256:" + digit * 64], "required_by": required_by, "size_bytes": size}


def _sample(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "target": Target("3.11", "x86_64"),
        "base_image": {"reference": "python:3.11-slim", "digest_or_id": "python@" + DIGEST},
        "distributions": [
            _dist("pandas", "2.2.3", "2", ["pandas"], 60_000_000),
            _dist("numpy", "2.1.0", "1", ["numpy.linalg", "numpy"], 35_000_000),
            {"name": "tzdata", "version": "2024.2", "hashes": ["sha256:" + "3" * 64]},
        ],
        "files": [
            {"path": "train.py", "sha256": H, "size": 120, "kind": "source"},
            {"path": "analysis/__init__.py", "sha256": "c" * 64, "size": 0, "kind": "source"},
            {"path": "data/iris.csv", "sha256": "d" * 64, "size": 4_500, "kind": "data"},
        ],
        "template": {"name": "slim", "dockerfile_sha256": "e" * 64},
        "source_date_epoch": 1_700_000_000,
        "lock_sha256": "f" * 64,
        "entrypoint": {"name": "train", "path": "train.py", "argv": ("python", "/app/train.py")},
        "declared_left_out": ["matplotlib", "jupyter"],
        "excluded_sensitive": [".env", ".git"],
        "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": True},
        "index_sources": ["https://user:s3cret@pypi.example/simple", "https://pypi.org/simple"],
        "unparsed": ["legacy/old.py"],
        "unresolved_dynamic": [Location("train.py", 30, 5), "train.py:9"],
        "slimbuild_version": "0.1.0",
    }
    fields.update(overrides)
    return make_manifest(**fields)


IMAGE = ImageInfo(
    "sha256:" + "9" * 64, ("sha256:" + "7" * 64, "sha256:" + "8" * 64), 150_000_000, (100, 200), 90_000_000, ("demo:abc",)
)
SMOKE = [{"command": ["python", "-c", "import numpy"], "exit_code": 0}]


# --------------------------------------------------------------------------- making, bytes, files


def test_make_manifest_sorted_and_masked() -> None:
    m = _sample()
    assert list(m) == sorted(m)
    assert [d["name"] for d in m["distributions"]] == ["numpy", "pandas", "tzdata"]
    assert [f["path"] for f in m["files"]] == ["analysis/__init__.py", "data/iris.csv", "train.py"]
    assert m["declared_left_out"] == ["jupyter", "matplotlib"]
    assert m["index_sources"] == ["https://***@pypi.example/simple", "https://pypi.org/simple"]
    assert "s3cret" not in manifest_bytes(m).decode()
    assert m["unresolved_dynamic"] == ["train.py:9", "train.py:30:5"]
    assert m["target"] == {"platform": "linux/x86_64 cp311", "python": "3.11"}
    assert m["image"] is None and m["smoke"] == []
    assert m["distributions"][0]["required_by"] == ["numpy", "numpy.linalg"]
    assert m["distributions"][2]["size_bytes"] is None
    assert m["base_image"]["local_only"] is False
    assert m["entrypoint"]["argv"] == ["python", "/app/train.py"]
    assert m["schema_version"] == SCHEMA_VERSION


def test_make_manifest_refuses_bad_input() -> None:
    with pytest.raises(IntegrityError, match=re.escape("files[0].kind")):
        _sample(files=[{"path": "x.bin", "sha256": H, "size": 1, "kind": "binary"}])
    with pytest.raises(IntegrityError, match=re.escape("missing key 'base_image.digest_or_id'")):
        _sample(base_image={"reference": "python:3.11-slim"})


def test_round_trip_file(tmp_path: Path) -> None:
    m = with_image(_sample(), IMAGE, smoke=SMOKE)
    assert m == with_smoke(with_image(_sample(), IMAGE), SMOKE)
    path = tmp_path / "out" / "manifest.json"
    write_manifest(path, m)
    assert read_manifest_file(path) == m
    assert path.read_bytes() == manifest_bytes({**m, "sha256": manifest_sha256(m)})  # the file carries its own sha256
    assert path.read_bytes().endswith(b"}\n")
    assert m["smoke"] == [{"command": ["python", "-c", "import numpy"], "exit_code": 0, "ok": True}]
    assert parse_manifest(manifest_bytes(m), "x") == m
    assert manifest_sha256(m) == hashlib.sha256(manifest_bytes(m)).hexdigest()
    assert not [p for p in path.parent.iterdir() if p.name != "manifest.json"]  # no temporary left behind


def test_write_refuses_malformed_and_keeps_old(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    write_manifest(path, _sample())
    before = path.read_bytes()
    with pytest.raises(IntegrityError):
        write_manifest(path, {**_sample(), "lock_sha256": 5})
    assert path.read_bytes() == before


_SCRIPT = """
import sys
from slimbuild.locking.target import Target
from slimbuild.record.manifest import make_manifest, manifest_bytes
from slimbuild.models import Location
m = make_manifest(
    target=Target("3.12", "aarch64"),
    base_image={"reference": "python:3.12-slim", "digest_or_id": "sha256:" + "b" * 64, "local_only": True},
    distributions=[{"name": n, "version": "1.0", "hashes": list({"sha256:" + c * 64 for c in "123"}),
                    "required_by": list({n, n + ".x", "zz"}), "size_bytes": 5}
                   for n in {"b-dist", "a-dist", "c-dist", "ünïcode"}],
    files=[{"path": p, "sha256": "a" * 64, "size": 1, "kind": "source"} for p in {"z.py", "a.py", "m/ü.py"}],
    template={"name": "slim", "dockerfile_sha256": "e" * 64}, source_date_epoch=1, lock_sha256="f" * 64,
    declared_left_out={"x", "y", "w"}, excluded_sensitive={".env", "id_rsa", ".netrc"}, unparsed={"q.py", "p.py"},
    unresolved_dynamic={Location("a.py", 2), Location("a.py", 1, 1, 3), "b.py:10", "b.py:9"},
)
sys.stdout.buffer.write(manifest_bytes(m))
"""


def test_G1_canonical_bytes_identical_across_hash_seeds() -> None:
    root = Path(__file__).resolve().parents[3]
    outputs = set()
    for seed in ("0", "1", "12345", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, check=True, cwd=root)
        outputs.add(proc.stdout)
    assert len(outputs) == 1
    data = outputs.pop()
    assert "ünïcode".encode() in data  # ensure_ascii=False
    assert data.endswith(b"\n") and not data.endswith(b"\n\n")


# --------------------------------------------------------------------------- G8 schema keys pinned

_PINNED_TOP = {
    "audit", "base_image", "declared_left_out", "distributions", "entrypoint", "excluded_sensitive", "files", "git", "image",
    "index_sources", "inputs", "lock_sha256",
    "schema_version", "slimbuild_version", "smoke", "source_date_epoch", "target", "template", "unparsed",
    "unresolved_dynamic",
}  # fmt: skip


def test_G8_schema_keys_pinned() -> None:
    m = with_image(_sample(), IMAGE, smoke=[{"command": ["python", "train.py"], "exit_code": 1}])
    assert set(m) == _PINNED_TOP
    assert set(m["base_image"]) == {"reference", "digest_or_id", "local_only"}
    assert set(m["target"]) == {"python", "platform"}
    assert set(m["distributions"][0]) == {"name", "version", "hashes", "required_by", "size_bytes"}
    assert set(m["files"][0]) == {"path", "sha256", "size", "kind"}
    assert set(m["template"]) == {"name", "dockerfile_sha256"}
    assert set(m["git"]) == {"commit", "dirty"}
    assert set(m["image"]) == {"id", "layer_diff_ids", "size_bytes", "layer_sizes", "added_bytes", "tags"}
    assert set(m["smoke"][0]) == {"command", "exit_code", "ok"}
    assert m["smoke"][0]["ok"] is False
    assert set(m["entrypoint"]) == {"name", "path", "argv"}
    assert all(isinstance(x, str) for x in m["unresolved_dynamic"] + m["excluded_sensitive"] + m["declared_left_out"])
    assert SCHEMA_VERSION == 2
    assert MANIFEST_PATH_IN_IMAGE == "/app/.slimbuild/manifest.json"
    assert (LABEL_MANIFEST, LABEL_MANIFEST_SHA) == ("io.slimbuild.manifest", "io.slimbuild.manifest-sha256")
    assert VOLATILE_FIELDS == ("image.added_bytes", "image.id", "image.layer_sizes", "image.size_bytes", "image.tags", "pushed")


# --------------------------------------------------------------------------- H2 malformed


def _mutated(path: tuple[Any, ...], value: Any) -> bytes:
    m = json.loads(manifest_bytes(_sample()))
    node = m
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(m).encode()


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[]", "must be an object"),
        (b"{}", "schema_version"),
        (b'{"schema_version": "1"}', "schema_version"),
        (b'{"schema_version": true}', "schema_version"),
        (b'{"schema_version": 1, "schema_version": 1}', "duplicate key"),
        (b'{"schema_version": NaN}', "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (_mutated(("files", 0, "size"), "12"), "files[0].size must be an integer"),
        (_mutated(("files", 0, "kind"), "binary"), "files[0].kind must be one of"),
        (_mutated(("files", 0, "sha256"), "XYZ"), "files[0].sha256 must be 64 lowercase hex"),
        (_mutated(("base_image", "local_only"), 0), "base_image.local_only must be true or false"),
        (_mutated(("distributions",), {}), "distributions must be a list"),
        (_mutated(("distributions", 1, "size_bytes"), 1.5), "distributions[1].size_bytes must be an integer or null"),
        (_mutated(("source_date_epoch",), True), "source_date_epoch must be an integer"),
        (_mutated(("extra",), 1), "unknown key 'extra'"),
        (_mutated(("template", "surprise"), 1), "unknown key 'template.surprise'"),
        (_mutated(("git",), {"commit": "x"}), "missing key 'git.dirty'"),
        (_mutated(("smoke",), [{"command": "python", "exit_code": 0, "ok": True}]), "smoke[0].command must be a list"),
        (_mutated(("image",), {"id": "x", "layer_diff_ids": [1], "layer_sizes": []}), "missing key 'image.added_bytes'"),
    ],
    ids=lambda v: v if isinstance(v, str) else "data",
)
def test_H2_malformed_manifest(data: bytes, needle: str) -> None:
    with pytest.raises(IntegrityError) as info:
        parse_manifest(data, "img:1")
    assert info.value.exit_code == constants.INTEGRITY
    assert needle in info.value.message
    assert info.value.message.startswith("img:1: ")
    assert "\n" not in info.value.one_line()


@pytest.mark.parametrize(("version", "hint"), [(3, "upgrade slimbuild"), (0, "rebuild")])
def test_H2_unknown_schema_version(version: int, hint: str) -> None:
    with pytest.raises(IntegrityError) as info:
        parse_manifest(_mutated(("schema_version",), version), "m.json")
    assert f"unknown slimbuild manifest schema version {version}" in info.value.message
    assert hint in info.value.hint


def test_H2_oversize_refused_without_parsing(tmp_path: Path) -> None:
    big = b" " * MAX_MANIFEST_BYTES + manifest_bytes(_sample())
    with pytest.raises(IntegrityError, match="larger than 16 MiB"):
        parse_manifest(big, "m.json")
    path = tmp_path / "m.json"
    path.write_bytes(big)
    with pytest.raises(IntegrityError, match="larger than 16 MiB"):
        read_manifest_file(path)


def test_H3_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NoManifest) as info:
        read_manifest_file(tmp_path / "nope.json")
    assert info.value.exit_code == constants.USAGE
    assert info.value.kind == "no-manifest"


# --------------------------------------------------------------------------- labels: H1, H3


def _inspect(labels: dict[str, str] | None) -> dict[str, Any]:
    return {
        "Id": "sha256:" + "9" * 64,
        "RepoTags": ["demo:latest"],
        "Config": {"Labels": labels},
        "RootFS": {"Type": "layers", "Layers": ["sha256:" + "7" * 64]},
        "Size": 1234,
    }


def test_labels_round_trip_and_image_info() -> None:
    m = _sample()
    doc = _inspect(manifest_labels(m))
    assert manifest_from_image_config(doc) == m
    assert json.loads(doc["Config"]["Labels"][LABEL_MANIFEST]) == m
    assert "\n" not in doc["Config"]["Labels"][LABEL_MANIFEST]
    info = image_info_from_inspect(doc, {"Size": 1000})
    assert info == ImageInfo("sha256:" + "9" * 64, ("sha256:" + "7" * 64,), 1234, (), 234, ("demo:latest",))
    assert with_image(m, info)["image"]["added_bytes"] == 234


def test_H1_tampered_label_rejected() -> None:
    m = _sample()
    labels = manifest_labels(m)
    tampered = json.loads(labels[LABEL_MANIFEST])
    tampered["distributions"][0]["version"] = "6.6.6"
    labels[LABEL_MANIFEST] = json.dumps(tampered)
    with pytest.raises(IntegrityError) as info:
        manifest_from_image_config(_inspect(labels))
    assert info.value.exit_code == constants.INTEGRITY
    assert "demo:latest" in info.value.message and "does not match" in info.value.message


@pytest.mark.parametrize("sha", ["", "sha256:" + "0" * 64, "Z" * 64])
def test_H1_bad_sha_label(sha: str) -> None:
    labels = {**manifest_labels(_sample()), LABEL_MANIFEST_SHA: sha}
    with pytest.raises(IntegrityError):
        manifest_from_image_config(_inspect(labels))


def test_H1_label_without_sha_rejected() -> None:
    labels = manifest_labels(_sample())
    del labels[LABEL_MANIFEST_SHA]
    with pytest.raises(IntegrityError, match=re.escape("no io.slimbuild.manifest-sha256")):
        manifest_from_image_config(_inspect(labels))


def test_H2_malformed_label() -> None:
    labels = {LABEL_MANIFEST: "{oops", LABEL_MANIFEST_SHA: "0" * 64}
    with pytest.raises(IntegrityError, match="not valid JSON"):
        manifest_from_image_config(_inspect(labels))


@pytest.mark.parametrize("labels", [None, {}, {"org.opencontainers.image.source": "x"}])
def test_H3_no_manifest_label(labels: dict[str, str] | None) -> None:
    with pytest.raises(NoManifest) as info:
        manifest_from_image_config(_inspect(labels))
    assert info.value.exit_code == constants.USAGE
    assert info.value.message == "demo:latest: no slimbuild manifest (not built by slimbuild?)"
    with pytest.raises(NoManifest):
        manifest_from_image_config({}, source="python:3.11")


def test_big_manifest_leaves_label_out() -> None:
    files = [{"path": f"data/{i:06d}.csv", "sha256": "a" * 64, "size": i, "kind": "data"} for i in range(3000)]
    m = _sample(files=files)
    labels = manifest_labels(m)
    assert LABEL_MANIFEST not in labels and labels[LABEL_MANIFEST_SHA] == manifest_sha256(m)
    assert len(manifest_labels(_sample())[LABEL_MANIFEST]) < MAX_LABEL_BYTES
    with pytest.raises(NoManifest, match="too large for a label"):
        manifest_from_image_config(_inspect(labels))


# --------------------------------------------------------------------------- diff


def test_G1_diff_ignores_volatile_fields() -> None:
    a = with_image(_sample(), IMAGE)
    b = with_image(_sample(), ImageInfo("sha256:" + "6" * 64, IMAGE.layer_diff_ids, 999, (1, 2), 5, ("other:tag",)))
    assert diff_manifests(a, b) == ()
    volatile = diff_manifests(a, b, include_volatile=True)
    assert [c.path for c in volatile] == [
        "image.added_bytes", "image.id", "image.layer_sizes[0]", "image.layer_sizes[1]", "image.size_bytes", "image.tags",
    ]  # fmt: skip


def test_diff_reports_meaningful_changes_sorted() -> None:
    a = with_image(_sample(), IMAGE)
    dists = [
        _dist("numpy", "2.1.1", "1", ["numpy", "numpy.linalg"], 35_000_000),
        _dist("pandas", "2.2.3", "2", ["pandas"], 60_000_000),
        _dist("pyarrow", "18.0.0", "4", [], 1),
    ]
    layers = (IMAGE.layer_diff_ids[0], "sha256:" + "5" * 64)
    b = with_image(_sample(distributions=dists, git=None), {"id": IMAGE.id, "layer_diff_ids": layers})
    changes = diff_manifests(a, b)
    assert [c.path for c in changes] == [
        "distributions[numpy].version",
        "distributions[pyarrow]",
        "distributions[tzdata]",
        "git",
        "image.layer_diff_ids[1]",
    ]
    assert changes[0] == Change("distributions[numpy].version", "2.1.0", "2.1.1")
    assert changes[1].old is None and changes[1].new["name"] == "pyarrow"
    assert changes[0].render() == 'distributions[numpy].version: "2.1.0" -> "2.1.1"'
    assert diff_manifests(b, a) == tuple(Change(c.path, c.new, c.old) for c in changes)
    assert diff_manifests(_sample(), with_image(_sample(), IMAGE))[0].path == "image"


# --------------------------------------------------------------------------- rendering


def test_inspect_text_contains_key_facts() -> None:
    m = with_image(_sample(), IMAGE, smoke=[{"command": ["python", "train.py"], "exit_code": 0}])
    text = inspect_text(m)
    for fact in (
        "python:3.11-slim", DIGEST, "Python 3.11 on linux/x86_64 cp311", IMAGE.id, "150.0 MB", "2 layers",
        "90.0 MB over the base", "demo:abc", "train: train.py  (python /app/train.py)", "kept out (2): .env, .git",
        "pandas", "2.2.3", "60.0 MB", "numpy", "35.0 MB", "numpy.linalg", "tzdata",
        "analysis/__init__.py", "data/iris.csv", "train.py", "slim", "e" * 64, "1700000000 (2023-11-14T22:13:20Z)",
        "0123456789abcdef0123456789abcdef01234567 (uncommitted changes)", "f" * 64, "https://***@pypi.example/simple",
        "declared but left out of the image (2): jupyter, matplotlib", "legacy/old.py", "train.py:9",
        "python train.py -> exit 0 (ok)",
    ):  # fmt: skip
        assert fact in text, fact
    assert text.index("pandas") < text.index("numpy") < text.index("tzdata")  # by size, unknown last
    assert "left out" not in inspect_text(m, declared_left_out=False)
    assert "s3cret" not in text
    assert "not recorded" in inspect_text(_sample())


def test_inspect_json_envelope() -> None:
    m = _sample()
    doc = json.loads(inspect_json(m))
    assert doc == {"version": 1, "kind": "inspect", "manifest": m}
    assert inspect_json(m) == inspect_json(json.loads(json.dumps(m)))


# --------------------------------------------------------------------------- docker save tars (F, H5, B14)


def _member(name: str, data: bytes = b"", **attrs: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = attrs.pop("mode", 0o644)
    for key, value in attrs.items():
        setattr(info, key, value)
    if info.type != tarfile.REGTYPE:
        info.size = 0
    return info, data


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _save_tar(
    layers: list[bytes],
    labels: dict[str, str] | None,
    *,
    oci: bool = False,
    extra: list[tuple[tarfile.TarInfo, bytes]] | None = None,
    diff_ids: list[str] | None = None,
) -> bytes:
    """A docker save tar in the legacy layout (``<id>/layer.tar``) or the OCI one (``blobs/sha256/``)."""
    config = json.dumps({
        "architecture": "amd64",
        "config": {"Labels": labels, "User": "10001"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids or [f"sha256:{_sha(layer)}" for layer in layers]},
    }).encode()  # fmt: skip
    members = []
    names = []
    for i, layer in enumerate(layers):
        name = f"blobs/sha256/{_sha(layer)}" if oci else f"{i:064x}/layer.tar"
        names.append(name)
        members.append(_member(name, layer))
        if not oci:
            members.append(_member(f"{i:064x}/VERSION", b"1.0"))
            members.append(_member(f"{i:064x}/json", b'{"id": "x"}'))
    config_name = f"blobs/sha256/{_sha(config)}" if oci else f"{_sha(config)}.json"
    members.append(_member(config_name, config))
    members.extend(extra or [])
    index = json.dumps([{"Config": config_name, "RepoTags": ["demo:latest"], "Layers": names}]).encode()
    members.append(_member("manifest.json", index))
    if oci:
        members.append(_member("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'))
    return _tar(members)


def _base_layer() -> bytes:
    return _tar([
        _member("bin/", type=tarfile.DIRTYPE, mode=0o755),
        _member("bin/su", b"\x7fELF", mode=0o4755),
        _member("dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
        _member("usr/lib/python3.11/site-packages/pip/__init__.py", b"pip"),
        _member("usr/lib/python3.11/site-packages/keep/x.py", b"x"),
        _member("etc/old.conf", b"old"),
    ])  # fmt: skip


def _app_layer(manifest_file: bytes | None = None) -> bytes:
    members = [
        _member("./usr/lib/python3.11/site-packages/.wh.pip"),
        _member("usr/lib/python3.11/site-packages/.wh..wh..opq"),
        _member("usr/lib/python3.11/site-packages/numpy/__init__.py", b"np"),
        _member("etc/.wh.old.conf"),
        _member("app/train.py", b"print(1)\n", uid=0, gid=0),
        _member("app/__pycache__/train.cpython-311.pyc", b"pyc"),
    ]
    if manifest_file is not None:
        members.append(_member(MANIFEST_PATH_IN_IMAGE.lstrip("/"), manifest_file))
    return _tar(members)


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("oci", [False, True])
def test_scan_docker_save_tar(oci: bool) -> None:
    m = _sample()
    data = _save_tar([_base_layer(), _app_layer(manifest_bytes(m))], manifest_labels(m), oci=oci)
    for stream in (io.BytesIO(data), _chunks(data, 1000), iter([data]), io.BytesIO(gzip.compress(data, mtime=0))):
        scan = scan_image_tar(stream)
        assert scan.repo_tags == ("demo:latest",)
        assert len(scan.layers) == 2
        assert scan.config["config"]["User"] == "10001"
        assert scan.manifest_file == manifest_bytes(m)
        assert scan.layers[0].diff_id == scan.layers[0].digest == "sha256:" + _sha(_base_layer())
        base = {f.path: f for f in scan.layers[0].files}
        assert base["bin/su"].mode & 0o4000  # F6: setuid visible
        assert base["dev/null"].type == "char"  # device nodes inside a layer are recorded, not refused
        final = scan.final_files()
        assert "usr/lib/python3.11/site-packages/pip/__init__.py" not in final  # F4: whiteout applied
        assert "usr/lib/python3.11/site-packages/keep/x.py" not in final  # opaque dir
        assert "usr/lib/python3.11/site-packages/numpy/__init__.py" in final
        assert "etc/old.conf" not in final
        assert "app/train.py" in final and final["app/train.py"].uid == 0
        assert [p for p in final if "__pycache__" in p] == ["app/__pycache__/train.cpython-311.pyc"]  # G3 detectable
        assert not any(name.startswith(".wh.") for name in map(os.path.basename, final))


def test_read_manifest_from_image_tar_fills_image() -> None:
    m = _sample()
    data = _save_tar([_base_layer(), _app_layer(manifest_bytes(m))], manifest_labels(m))
    got = read_manifest_from_image_tar(_chunks(data, 4096))
    assert got["image"]["layer_diff_ids"] == ["sha256:" + _sha(_base_layer()), "sha256:" + _sha(_app_layer(manifest_bytes(m)))]
    assert got["image"]["id"].startswith("sha256:")
    assert {k: v for k, v in got.items() if k != "image"} == {k: v for k, v in m.items() if k != "image"}


def test_H3_image_tar_without_manifest() -> None:
    data = _save_tar([_base_layer()], {"maintainer": "someone"})
    with pytest.raises(NoManifest) as info:
        read_manifest_from_image_tar(io.BytesIO(data), source="python.tar")
    assert info.value.exit_code == constants.USAGE
    assert "python.tar: no slimbuild manifest" in info.value.message


def test_big_manifest_read_from_file_in_layer() -> None:
    m = _sample()
    labels = {LABEL_MANIFEST_SHA: manifest_sha256(m)}  # as when the label would be too large
    data = _save_tar([_app_layer(manifest_bytes(m))], labels)
    assert read_manifest_from_image_tar(io.BytesIO(data))["lock_sha256"] == m["lock_sha256"]
    forged = _sample(lock_sha256="0" * 64)
    with pytest.raises(IntegrityError, match="does not match"):
        read_manifest_from_image_tar(io.BytesIO(_save_tar([_app_layer(manifest_bytes(forged))], labels)))


def test_H1_manifest_file_differs_from_label() -> None:
    m = _sample()
    other = manifest_bytes(_sample(template={"name": "distroless", "dockerfile_sha256": "e" * 64}))
    data = _save_tar([_app_layer(other)], manifest_labels(m))
    with pytest.raises(IntegrityError, match="does not match"):
        read_manifest_from_image_tar(io.BytesIO(data))


@pytest.mark.parametrize("oci", [False, True])
def test_H1_layer_not_matching_diff_id(oci: bool) -> None:
    data = _save_tar([_base_layer()], None, oci=oci, diff_ids=["sha256:" + "0" * 64])
    with pytest.raises(IntegrityError, match="expected sha256:0000") as info:
        scan_image_tar(io.BytesIO(data))
    assert info.value.exit_code == constants.INTEGRITY


def test_H1_config_not_matching_its_name() -> None:
    config = b'{"rootfs": {"diff_ids": []}}'
    index = json.dumps([{"Config": "blobs/sha256/" + "0" * 64, "Layers": []}]).encode()
    data = _tar([_member("blobs/sha256/" + "0" * 64, config), _member("manifest.json", index)])
    with pytest.raises(IntegrityError, match="has sha256"):
        scan_image_tar(io.BytesIO(data))


def test_legacy_layer_symlink_inside_is_followed() -> None:
    layer = _base_layer()
    data = _save_tar([layer, layer], None)
    # docker (legacy layout) saves a layer it already wrote as a relative symlink to the first copy
    members = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for info in tar.getmembers():
            if info.name == f"{1:064x}/layer.tar":
                link = tarfile.TarInfo(info.name)
                link.type = tarfile.SYMTYPE
                link.linkname = f"../{0:064x}/layer.tar"
                members.append((link, b""))
            else:
                fh = tar.extractfile(info)
                members.append((info, fh.read() if fh else b""))
    scan = scan_image_tar(io.BytesIO(_tar(members)))
    assert scan.layers[0].files == scan.layers[1].files


@pytest.mark.parametrize(
    ("member", "needle"),
    [
        (_member("../../etc/x", b"pwned"), "escapes the archive root"),
        (_member("blobs/../../etc/x", b"pwned"), "escapes the archive root"),
        (_member("/etc/x", b"pwned"), "absolute path"),
        (_member("evil", type=tarfile.SYMTYPE, linkname="../../etc/passwd"), "links outside"),
        (_member("evil", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "links outside"),
        (_member("a/evil", type=tarfile.SYMTYPE, linkname="../../x"), "links outside"),
        (_member("evil", type=tarfile.LNKTYPE, linkname="../etc/passwd"), "links outside"),
        (_member("null", type=tarfile.CHRTYPE, devmajor=1, devminor=3), "device or FIFO"),
        (_member("sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0), "device or FIFO"),
        (_member("pipe", type=tarfile.FIFOTYPE), "device or FIFO"),
    ],
)
def test_H5_B14_outer_tar_traversal_rejected(member: tuple[tarfile.TarInfo, bytes], needle: str) -> None:
    m = _sample()
    data = _save_tar([_app_layer()], manifest_labels(m), extra=[member])
    with pytest.raises(PolicyViolation) as info:
        read_manifest_from_image_tar(io.BytesIO(data))
    assert info.value.exit_code == constants.POLICY
    assert needle in info.value.message


def test_H5_layer_member_traversal_rejected() -> None:
    layer = _tar([_member("../../etc/cron.d/x", b"* * * * * root sh")])
    with pytest.raises(PolicyViolation, match="escapes the archive root"):
        scan_image_tar(io.BytesIO(_save_tar([layer], None)))


def test_H5_duplicate_outer_member_rejected() -> None:
    data = _save_tar([_app_layer()], None, extra=[_member("manifest.json", b"[]")])
    with pytest.raises(IntegrityError, match="appears twice"):
        scan_image_tar(io.BytesIO(data))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a tar at all" * 100,
        _tar([_member("hello.txt", b"hi")]),
        _tar([_member("manifest.json", b'{"not": "a list"}')]),
        _tar([_member("manifest.json", b"[{}]")]),
        _tar([_member("manifest.json", b'[{"Config": "c.json", "Layers": ["l.tar"]}]')]),
    ],
)
def test_H2_not_a_docker_save_tar(data: bytes) -> None:
    with pytest.raises(IntegrityError) as info:
        scan_image_tar(io.BytesIO(data))
    assert info.value.exit_code == constants.INTEGRITY


def test_H2_truncated_image_tar() -> None:
    data = _save_tar([_base_layer(), _app_layer()], None)
    with pytest.raises(IntegrityError):
        scan_image_tar(io.BytesIO(data[: len(data) // 2]))


def test_C17_manifest_records_where_each_pin_came_from() -> None:
    pins = [
        {"name": "six", "version": "1.16.0", "source": ".venv (importlib.metadata)"},
        {"name": "numpy", "version": "1.26.4", "source": "poetry.lock"},
    ]
    m = _sample(pins=pins)
    assert [p["name"] for p in m["pins"]] == ["numpy", "six"]
    assert parse_manifest(manifest_bytes(m), "m.json")["pins"] == m["pins"]
    assert "pins" not in _sample()  # optional: nothing pinned, nothing recorded (older manifests read the same)
    with pytest.raises(IntegrityError, match=r"pins\[0\]\.version must be a string"):
        parse_manifest(manifest_bytes({**m, "pins": [{"name": "x", "version": 1, "source": "uv.lock"}]}), "m.json")
