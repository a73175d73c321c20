"""The SBOM documents built from canned inputs (issue 16; K10, K11): CycloneDX 1.6 and SPDX 2.3, each checked by its
own library's validator, the dpkg status read as syft reads it, the licences as METADATA declares them, deterministic."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hypothesis import given, settings
from hypothesis import strategies as st
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from slimbuild import options
from slimbuild.errors import UsageError
from slimbuild.record.image_tar import scan_image_tar
from slimbuild.record.manifest import make_manifest, manifest_bytes, parse_manifest_file
from slimbuild.record.sbom import (
    DPKG_STATUS,
    FORMATS,
    SBOM_PATH_IN_IMAGE,
    DebPackage,
    PythonPackage,
    SbomInputs,
    deb_packages,
    distro_of,
    installed_metadata,
    licenses_from_metadata,
    python_packages,
    render_sbom,
    wanted_path,
)
from tests.constants import USAGE
from tests.unit.record.test_manifest import _member, _save_tar, _tar

STATUS = b"""Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Source: glibc (2.36-9)
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries.

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libstdc++6
Status: install ok installed
Architecture: amd64
Version: 12.2.0-14

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
"""
OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
SHA = "ab" * 32
IMAGE_ID = "sha256:" + "c" * 64


def _metadata(**fields: str | list[str]) -> bytes:
    lines = ["Metadata-Version: 2.1", "Name: demo", "Version: 1.0"]
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{key.replace('_', '-')}: {item}")
    return ("\n".join(lines) + "\n\n").encode()


def _inputs(**overrides: Any) -> SbomInputs:
    fields: dict[str, Any] = {
        "subject": "train",
        "identity": IMAGE_ID,
        "epoch": 1_700_000_000,
        "python": (
            PythonPackage("numpy", "1.26.4", SHA, ("BSD License",)),
            PythonPackage("requests", "2.32.3", "cd" * 32, ("Apache-2.0",)),
            PythonPackage("six", "1.16.0", None, ()),
            PythonPackage("dual", "1.0", "ef" * 32, ("MIT", "Apache Software License")),
        ),
        "debs": deb_packages({DPKG_STATUS: STATUS}),
        "distro": "debian-12",
        "notes": ("a note",),
    }
    fields.update(overrides)
    return SbomInputs(**fields)


def _valid_cyclonedx(data: bytes) -> dict[str, Any]:
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode()) is None
    doc: dict[str, Any] = json.loads(data)
    return doc


def _valid_spdx(data: bytes, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "doc.spdx.json"
    path.write_bytes(data)
    assert validate_full_spdx_document(parse_file(str(path))) == []
    doc: dict[str, Any] = json.loads(data)
    return doc


def test_K10_dpkg_status_lists_the_installed_packages_as_syft_does() -> None:
    debs = deb_packages({DPKG_STATUS: STATUS})
    assert [d.name for d in debs] == ["libc6", "libstdc++6", "tzdata"]  # the deinstalled one is not in the image
    assert debs[0] == DebPackage("libc6", "2.36-9+deb12u4", "amd64", "glibc")
    distroless = {  # status.d/: one stanza per file, no Status field, md5sums beside them
        "var/lib/dpkg/status.d/base-files": b"Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n",
        "var/lib/dpkg/status.d/base-files.md5sums": b"d41d8cd98f00b204e9800998ecf8427e  etc/issue\n",
        "var/lib/dpkg/status.d/libssl3": b"Package: libssl3\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\nSource: openssl\n",
    }
    assert [(d.name, d.source) for d in deb_packages(distroless)] == [("base-files", ""), ("libssl3", "openssl")]
    assert distro_of({"usr/lib/os-release": OS_RELEASE}) == "debian-12" and distro_of({}) == ""
    assert all(wanted_path(p) for p in [DPKG_STATUS, *distroless, "etc/os-release"])
    assert wanted_path("opt/venv/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA")
    assert not wanted_path("opt/venv/lib/python3.11/site-packages/six-1.16.0.dist-info/RECORD")


def test_K10_licence_from_metadata_expression_then_license_then_classifiers() -> None:
    assert licenses_from_metadata(_metadata(License_Expression="MIT OR Apache-2.0", License="ignored")) == (
        "MIT OR Apache-2.0",
    )
    assert licenses_from_metadata(_metadata(License="MIT")) == ("MIT",)
    classifiers = ["License :: OSI Approved :: BSD License", "Programming Language :: Python"]
    assert licenses_from_metadata(_metadata(License="Copyright (c)\n  long text", Classifier=classifiers)) == ("BSD License",)
    assert licenses_from_metadata(_metadata(License="UNKNOWN")) == ()


def test_K10_python_packages_take_metadata_and_the_installed_wheels_hash() -> None:
    dists = [
        {"name": "Requests", "version": "2.32.3", "hashes": ["sha256:" + "1" * 64, "sha256:" + "2" * 64]},
        {"name": "six", "version": "1.16.0", "hashes": ["sha256:" + "3" * 64]},
        {"name": "numpy", "version": "1.26.4", "hashes": ["sha256:" + "4" * 64, "sha256:" + "5" * 64]},
    ]
    metadata = installed_metadata({
        "opt/venv/lib/python3.11/site-packages/requests-2.32.3.dist-info/METADATA": _metadata(License="Apache-2.0"),
        "opt/venv/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA": _metadata(License="MIT"),
    })  # fmt: skip
    got = python_packages(dists, metadata, {"requests": "2" * 64})
    assert [p.name for p in got] == ["numpy", "requests", "six"]  # sorted, names normalised
    numpy, requests, six = got
    assert requests.sha256 == "2" * 64 and requests.licenses == ("Apache-2.0",) and requests.purl == "pkg:pypi/requests@2.32.3"
    assert six.sha256 == "3" * 64  # one hash recorded: that one was installed
    assert numpy.sha256 is None and numpy.licenses == ()  # several and none known: no hash claimed


def test_K10_cyclonedx_lists_every_package_and_is_valid() -> None:
    doc = _valid_cyclonedx(render_sbom(_inputs()))
    assert doc["specVersion"] == "1.6"
    comps = {c["name"]: c for c in doc["components"]}
    assert set(comps) == {"numpy", "requests", "six", "dual", "libc6", "libstdc++6", "tzdata"}
    assert comps["requests"]["purl"] == "pkg:pypi/requests@2.32.3"
    assert comps["requests"]["hashes"] == [{"alg": "SHA-256", "content": "cd" * 32}]
    assert comps["requests"]["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    assert comps["numpy"]["licenses"] == [{"license": {"name": "BSD License"}}]
    assert "hashes" not in comps["six"] and "licenses" not in comps["six"]
    assert comps["libc6"]["purl"] == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc"
    assert doc["metadata"]["component"]["type"] == "container"
    assert doc["metadata"]["properties"] == [{"name": "slimbuild:note", "value": "a note"}]
    (root,) = [d for d in doc["dependencies"] if d["ref"] == IMAGE_ID]
    assert len(root["dependsOn"]) == 7


def test_K10_spdx_lists_every_package_and_is_valid(tmp_path: Path) -> None:
    doc = _valid_spdx(render_sbom(_inputs(), "spdx"), tmp_path)
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["comment"] == "a note"
    packages = {p["name"]: p for p in doc["packages"]}
    assert packages["requests"]["licenseDeclared"] == "Apache-2.0"
    assert packages["requests"]["checksums"] == [{"algorithm": "SHA256", "checksumValue": "cd" * 32}]
    assert packages["numpy"]["licenseDeclared"] == "NOASSERTION"  # not an SPDX expression: said in a comment
    assert packages["numpy"]["licenseComments"] == "declared: BSD License"
    refs = {p["name"]: p["externalRefs"][0]["referenceLocator"] for p in doc["packages"] if p.get("externalRefs")}
    assert refs["libstdc++6"] == "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=debian-12"
    contains = [r for r in doc["relationships"] if r["relationshipType"] == "CONTAINS"]
    assert len(contains) == 7 and len({p["SPDXID"] for p in doc["packages"]}) == 8


def test_K11_deterministic_serial_time_and_order(tmp_path: Path) -> None:
    one = _inputs()
    shuffled = _inputs(python=tuple(reversed(one.python)), debs=tuple(reversed(one.debs)))
    for fmt in FORMATS:
        assert render_sbom(one, fmt) == render_sbom(one, fmt) == render_sbom(shuffled, fmt)
    doc = json.loads(render_sbom(one))
    assert doc["serialNumber"] == f"urn:uuid:{one.serial}" and uuid.UUID(str(one.serial)).version == 5
    assert doc["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"
    assert json.loads(render_sbom(one, "spdx"))["documentNamespace"].endswith(str(one.serial))
    assert _inputs(identity="sha256:" + "d" * 64).serial != one.serial
    compact = render_sbom(one, compact=True)
    assert json.loads(compact) == doc and compact.count(b"\n") == 1 and len(compact) < len(render_sbom(one))


@settings(max_examples=25, deadline=None)
@given(st.permutations(["numpy", "six", "requests", "attrs", "zope-interface"]))
def test_K11_components_sorted_whatever_the_input_order(names: list[str]) -> None:
    dists = [{"name": n, "version": "1.0", "hashes": ["sha256:" + "0" * 64]} for n in names]
    inputs = _inputs(python=python_packages(dists, {}, {}), debs=())
    doc = json.loads(render_sbom(inputs))
    assert [c["name"] for c in doc["components"]] == sorted(names)


def test_K13_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        render_sbom(_inputs(), "swid")
    assert info.value.exit_code == USAGE and "cyclonedx, spdx" in info.value.one_line()
    assert options.SBOM_FORMATS == FORMATS  # the CLI's --format choices are the formats record/sbom.py makes


def test_K10_image_tar_keeps_the_wanted_files_of_the_final_image() -> None:
    base = _tar([
        _member(DPKG_STATUS, STATUS),
        _member("etc/os-release", OS_RELEASE),
        _member("opt/venv/lib/python3.11/site-packages/old-1.0.dist-info/METADATA", _metadata(License="MIT")),
        _member("usr/bin/python3", b"\x7fELF"),
    ])  # fmt: skip
    top = _tar([
        _member("opt/venv/lib/python3.11/site-packages/.wh.old-1.0.dist-info"),
        _member(DPKG_STATUS, STATUS.split(b"\n\n")[0] + b"\n"),
    ])  # fmt: skip
    scan = scan_image_tar(io.BytesIO(_save_tar([base, top], {})), wanted=wanted_path)
    contents = scan.final_contents()
    assert sorted(contents) == ["etc/os-release", DPKG_STATUS]  # the whited-out METADATA is gone; no python3 binary
    assert [d.name for d in deb_packages(contents)] == ["libc6"]  # the top layer's status wins
    assert scan_image_tar(io.BytesIO(_save_tar([base], {}))).final_contents() == {}  # nothing wanted, nothing kept
    assert tarfile.is_tarfile(io.BytesIO(base))


def test_K14_the_manifest_records_where_build_sbom_wrote_it() -> None:
    fields: dict[str, Any] = {
        "target": {"python": "3.11", "platform": "linux/x86_64 cp311"},
        "base_image": {"reference": "python:3.11-slim@" + IMAGE_ID, "digest_or_id": IMAGE_ID},
        "distributions": [], "files": [], "template": {"name": "slim", "dockerfile_sha256": "e" * 64},
        "source_date_epoch": 1, "lock_sha256": "f" * 64,
    }  # fmt: skip
    assert "sbom" not in make_manifest(**fields)  # optional: manifests without it read as before
    doc = make_manifest(**fields, sbom=SBOM_PATH_IN_IMAGE)
    assert parse_manifest_file(manifest_bytes(doc), "m.json")["sbom"] == SBOM_PATH_IN_IMAGE
