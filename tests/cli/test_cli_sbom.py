"""``slimbuild sbom`` of a manifest file and of saved tars, in-process (issue 16; K12, K13).

A manifest alone gives the Python part only (said in the document and on stderr), with the licence and the installed
file's sha256 from the wheelhouse where the wheel is cached. Bad input is one line and the documented exit code.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from slimbuild.errors import UsageError
from slimbuild.pipeline import sbomming
from slimbuild.record.manifest import make_manifest, manifest_labels, with_image, write_manifest
from slimbuild.record.sbom import PYTHON_ONLY_NOTE
from tests.conftest import Run
from tests.constants import INTEGRITY, OK, USAGE
from tests.unit.record.test_manifest import _member, _save_tar, _tar

IMAGE_ID = "sha256:" + "a" * 64
OTHER = "sha256:" + "9" * 64  # another platform's file of the same release


def _wheel(license_text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("six.py", "PY3 = True\n")
        metadata = f"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: {license_text}\n\n"
        zf.writestr("six-1.16.0.dist-info/METADATA", metadata)
        zf.writestr("six-1.16.0.dist-info/RECORD", "")
    return buf.getvalue()


def _manifest(six_hashes: list[str], **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "target": {"python": "3.11", "platform": "linux/x86_64 cp311"},
        "base_image": {"reference": f"python:3.11-slim@{IMAGE_ID}", "digest_or_id": IMAGE_ID},
        "distributions": [
            {"name": "six", "version": "1.16.0", "hashes": six_hashes, "required_by": ["main"]},
            {"name": "attrs", "version": "23.2.0", "hashes": ["sha256:" + "3" * 64], "required_by": ["main"]},
        ],
        "files": [{"path": "main.py", "sha256": "2" * 64, "size": 10, "kind": "source"}],
        "template": {"name": "slim", "dockerfile_sha256": "e" * 64},
        "source_date_epoch": 1_700_000_000,
        "lock_sha256": "f" * 64,
        "entrypoint": {"name": "main", "path": "main.py", "argv": ["python", "/app/main.py"]},
    }
    fields.update(overrides)
    return make_manifest(**fields)


@pytest.fixture
def wheelhouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A cache dir holding six's wheel under its sha256, as fetch_wheels stores it; returns that sha256."""
    data = _wheel("MIT")
    digest = hashlib.sha256(data).hexdigest()
    folder = tmp_path / "cache" / "wheels" / "sha256" / digest
    folder.mkdir(parents=True)
    (folder / "six-1.16.0-py2.py3-none-any.whl").write_bytes(data)
    monkeypatch.setenv("SLIMBUILD_CACHE", str(tmp_path / "cache"))
    return digest


def _valid(text: str) -> dict[str, Any]:
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc: dict[str, Any] = json.loads(text)
    return doc


def test_K12_a_manifest_gives_the_python_part_with_licence_and_hash_from_the_wheelhouse(
    tmp_path: Path, wheelhouse: str, run_cli: Callable[..., Run]
) -> None:
    path = tmp_path / "manifest.json"
    write_manifest(path, with_image(_manifest([f"sha256:{wheelhouse}", OTHER]), {"id": IMAGE_ID, "layer_diff_ids": []}))
    run = run_cli("sbom", str(path))
    assert run.code == OK, run.err
    assert f"slimbuild: warning: {PYTHON_ONLY_NOTE}" in run.err
    doc = _valid(run.out)
    comps = {c["name"]: c for c in doc["components"]}
    assert sorted(comps) == ["attrs", "six"]  # no Debian packages from a manifest
    assert comps["six"]["licenses"] == [{"license": {"id": "MIT"}}]
    assert comps["six"]["hashes"] == [{"alg": "SHA-256", "content": wheelhouse}]  # the one pip installs, not OTHER
    assert comps["attrs"]["hashes"] == [{"alg": "SHA-256", "content": "3" * 64}] and "licenses" not in comps["attrs"]
    assert {"name": "slimbuild:note", "value": PYTHON_ONLY_NOTE} in doc["metadata"]["properties"]
    assert doc["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"
    assert doc["metadata"]["component"]["name"] == "main"
    assert run_cli("sbom", str(path)).out == run.out  # byte-identical
    out = tmp_path / "out" / "sbom.spdx.json"
    out.parent.mkdir()
    spdx = run_cli("sbom", str(path), "--format", "spdx", "-o", str(out))
    assert spdx.code == OK and spdx.out == "", spdx.err
    assert validate_full_spdx_document(parse_file(str(out))) == []
    assert json.loads(out.read_text())["comment"].startswith(PYTHON_ONLY_NOTE)
    assert sorted(p.name for p in out.parent.iterdir()) == ["sbom.spdx.json"]  # no temporary left


def test_K12_without_the_wheelhouse_several_hashes_give_none_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., Run]
) -> None:
    monkeypatch.setenv("SLIMBUILD_CACHE", str(tmp_path / "empty-cache"))
    path = tmp_path / "manifest.json"
    write_manifest(path, _manifest(["sha256:" + "1" * 64, OTHER]))  # no image: the identity is the manifest's sha256
    run = run_cli("sbom", str(path))
    assert run.code == OK, run.err
    comps = {c["name"]: c for c in _valid(run.out)["components"]}
    assert "hashes" not in comps["six"]
    assert "no sha256 given: six" in run.err


def test_K13_unknown_format_unwritable_output_and_missing_manifest(tmp_path: Path, run_cli: Callable[..., Run]) -> None:
    path = tmp_path / "manifest.json"
    write_manifest(path, _manifest(["sha256:" + "1" * 64]))
    bad = run_cli("sbom", str(path), "--format", "swid")
    assert bad.code == USAGE and bad.out == "" and "'swid' is not one of 'cyclonedx', 'spdx'" in bad.err
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for target in (blocker / "sbom.json", tmp_path / "missing" / "sbom.json", tmp_path):
        run = run_cli("sbom", str(path), "-o", str(target))
        assert run.code == USAGE and run.out == "" and str(target) in run.err, run.err
        assert run.err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "manifest.json"]
    gone = run_cli("sbom", str(tmp_path / "nope.json"))
    assert gone.code == USAGE and "no such file" in gone.err


def test_K13_write_failure_is_exit_2_and_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path, data: bytes) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sbomming, "atomic_write", refuse)
    with pytest.raises(UsageError) as info:
        sbomming.write_output(tmp_path / "sbom.json", b"{}")
    assert info.value.exit_code == USAGE and "Permission denied" in info.value.message
    assert not (tmp_path / "sbom.json").exists()


def test_K13_tars_that_are_not_slimbuild_images(tmp_path: Path, run_cli: Callable[..., Run]) -> None:
    plain = tmp_path / "plain.tar"
    plain.write_bytes(_tar([_member("notes.txt", b"hello")]))
    run = run_cli("sbom", str(plain))
    assert run.code == INTEGRITY and "no manifest.json" in run.err and run.out == ""
    foreign = tmp_path / "python.tar"
    foreign.write_bytes(_save_tar([_tar([_member("var/lib/dpkg/status", b"Package: a\nVersion: 1\n")])], {"x": "y"}))
    run = run_cli("sbom", str(foreign))
    assert run.code == USAGE and "no slimbuild manifest" in run.err and run.out == ""


def test_K12_a_saved_tar_lists_its_debian_packages_and_installed_licences(tmp_path: Path, run_cli: Callable[..., Run]) -> None:
    doc = _manifest(["sha256:" + "1" * 64, OTHER])
    site = "opt/venv/lib/python3.11/site-packages"
    layer = _tar([
        _member("var/lib/dpkg/status", b"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36\n"),
        _member("etc/os-release", b"ID=debian\nVERSION_ID=12\n"),
        _member(f"{site}/six-1.16.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n\n"),
    ])  # fmt: skip
    saved = tmp_path / "image.tar"
    saved.write_bytes(_save_tar([layer], manifest_labels(doc)))
    run = run_cli("sbom", str(saved))
    assert run.code == OK, run.err
    comps = {c["name"]: c for c in _valid(run.out)["components"]}
    assert comps["libc6"]["purl"] == "pkg:deb/debian/libc6@2.36?arch=amd64&distro=debian-12"
    assert comps["six"]["licenses"] == [{"license": {"id": "MIT"}}]
    assert PYTHON_ONLY_NOTE not in run.err
