"""Software bills of materials of an image: CycloneDX 1.6 and SPDX 2.3 JSON, built from values (pure).

What goes in (``SbomInputs``): the Python distributions of the manifest (name, version, the sha256 of the wheel
installed, the licence its METADATA declares) and the Debian packages of the base image, read from the dpkg status
(``var/lib/dpkg/status``, and ``status.d/`` as distroless writes it) as syft reads them. The documents are built
with the maintained libraries, cyclonedx-python-lib and spdx-tools, imported here only when a document is made
(the pre-commit path never loads them).

Deterministic: the serial number (CycloneDX) and the document namespace (SPDX) are a uuid5 of the identity (the
image id, or for the copy inside the image the embedded manifest's sha256: an image cannot hold its own id), the
timestamp is the manifest's ``source_date_epoch``, components are sorted, and the bytes are canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from packaging.utils import canonicalize_name

from slimbuild import __version__
from slimbuild.errors import UsageError

FORMATS = ("cyclonedx", "spdx")
SBOM_PATH_IN_IMAGE = "/app/.slimbuild/sbom.cdx.json"  # beside the manifest (record/manifest.py)
DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d/"
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
PYTHON_ONLY_NOTE = (
    "from a manifest alone: Python distributions only; the base image's Debian packages are not listed "
    "(give the image or its docker save tar for them)"
)
_NAMESPACE = uuid.UUID("6f1d3c52-8a0e-5d44-9b1e-2c7f0a9e51d3")  # slimbuild's own uuid5 namespace for SBOMs
_DIST_INFO_METADATA = re.compile(r"(?:^|/)site-packages/([^/]+)\.dist-info/METADATA$")


@dataclass(frozen=True)
class PythonPackage:
    """One Python distribution of the image: ``sha256`` of the wheel installed, ``licenses`` as declared."""

    name: str
    version: str
    sha256: str | None = None
    licenses: tuple[str, ...] = ()

    @property
    def purl(self) -> str:
        """``pkg:pypi/<normalised name>@<version>``."""
        return f"pkg:pypi/{canonicalize_name(self.name)}@{self.version}"


@dataclass(frozen=True)
class DebPackage:
    """One installed Debian package of the base image, from its dpkg status stanza."""

    name: str
    version: str
    arch: str = ""
    source: str = ""


@dataclass(frozen=True)
class SbomInputs:
    """Everything a document says: what it describes, its identity and time, the packages, and notes on gaps."""

    subject: str
    identity: str
    epoch: int
    python: tuple[PythonPackage, ...]
    debs: tuple[DebPackage, ...] = ()
    distro: str = ""
    notes: tuple[str, ...] = ()
    tool_version: str = __version__

    @property
    def serial(self) -> uuid.UUID:
        """The uuid5 every run derives from the identity alone."""
        return uuid.uuid5(_NAMESPACE, self.identity)


def check_format(fmt: str) -> str:
    """``fmt`` if it is a known format, else UsageError (exit 2)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown SBOM format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    return fmt


# --------------------------------------------------------------------------- reading package records


def _stanzas(data: bytes) -> Iterable[dict[str, str]]:
    """The paragraphs of a deb822 file (dpkg's status) as field -> value (continuation lines joined)."""
    fields: dict[str, str] = {}
    key = ""
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, ""
        elif line[0] in " \t":
            if key:
                fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
    if fields:
        yield fields


def parse_dpkg_status(data: bytes) -> tuple[DebPackage, ...]:
    """The installed packages of a dpkg status file (a stanza without ``Status``, as in status.d/, counts)."""
    found = []
    for stanza in _stanzas(data):
        status = stanza.get("status", "install ok installed").split()
        if not stanza.get("package") or not stanza.get("version") or status[-1:] != ["installed"]:
            continue
        source = stanza.get("source", "").split(" ", 1)[0]
        found.append(DebPackage(stanza["package"], stanza["version"], stanza.get("architecture", ""), source))
    return tuple(found)


def deb_packages(contents: Mapping[str, bytes]) -> tuple[DebPackage, ...]:
    """The Debian packages of an image's files: ``var/lib/dpkg/status`` and every ``status.d/`` record, sorted."""
    found: dict[tuple[str, str], DebPackage] = {}
    for path, data in contents.items():
        if path == DPKG_STATUS or (path.startswith(DPKG_STATUS_D) and not path.endswith(".md5sums")):
            for pkg in parse_dpkg_status(data):
                found[(pkg.name, pkg.arch)] = pkg
    return tuple(sorted(found.values(), key=lambda p: (p.name, p.arch, p.version)))


def distro_of(contents: Mapping[str, bytes]) -> str:
    """``<ID>-<VERSION_ID>`` from os-release (``debian-12``), as syft's purl ``distro`` qualifier; "" if unknown."""
    for path in OS_RELEASE:
        if path in contents:
            values = {}
            for line in contents[path].decode("utf-8", "replace").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    values[key.strip()] = value.strip().strip("\"'")
            if values.get("ID"):
                return f"{values['ID']}-{values['VERSION_ID']}" if values.get("VERSION_ID") else values["ID"]
    return ""


def wanted_path(path: str) -> bool:
    """Whether an image file is one the SBOM reads: dpkg status, os-release, a distribution's METADATA."""
    return (
        path == DPKG_STATUS
        or path.startswith(DPKG_STATUS_D)
        or path in OS_RELEASE
        or _DIST_INFO_METADATA.search(path) is not None
    )


def installed_metadata(contents: Mapping[str, bytes]) -> dict[str, bytes]:
    """Each installed distribution's METADATA by ``<normalised name>==<version>`` (from its .dist-info name)."""
    found = {}
    for path, data in sorted(contents.items()):
        match = _DIST_INFO_METADATA.search(path)
        if match is None or "-" not in match[1]:
            continue
        name, version = match[1].rsplit("-", 1)
        found[f"{canonicalize_name(name)}=={version}"] = data
    return found


def licenses_from_metadata(data: bytes) -> tuple[str, ...]:
    """What a METADATA declares: ``License-Expression``, else a one-line ``License``, else the classifiers' names."""
    from packaging.metadata import parse_email

    raw, _ = parse_email(data)
    expression = str(raw.get("license_expression") or "").strip()
    if expression:
        return (expression,)
    text = str(raw.get("license") or "").strip()
    if text and "\n" not in text and len(text) <= 100 and text.upper() != "UNKNOWN":
        return (text,)
    classifiers = [c.split("::")[-1].strip() for c in raw.get("classifiers") or () if c.startswith("License ::")]
    return tuple(sorted({c for c in classifiers if c and c != "OSI Approved"}))


def python_packages(
    distributions: Sequence[Mapping[str, Any]],
    metadata: Mapping[str, bytes],
    installed_sha256: Mapping[str, str],
) -> tuple[PythonPackage, ...]:
    """The manifest's distributions with their licence (from ``metadata`` by ``name==version``) and installed
    wheel's sha256 (``installed_sha256`` by name; else the one hash the manifest records; else none)."""
    out = []
    for d in distributions:
        name, version = canonicalize_name(str(d["name"])), str(d["version"])
        hashes = [str(h).split(":", 1)[-1] for h in d.get("hashes", ()) if str(h).startswith("sha256:")]
        sha = installed_sha256.get(name) or (hashes[0] if len(hashes) == 1 else None)
        meta = metadata.get(f"{name}=={version}")
        out.append(PythonPackage(name, version, sha, licenses_from_metadata(meta) if meta is not None else ()))
    return tuple(sorted(out, key=lambda p: (p.name, p.version)))


# --------------------------------------------------------------------------- documents


def _deb_purl(pkg: DebPackage, distro: str) -> str:
    from packageurl import PackageURL

    qualifiers = {k: v for k, v in (("arch", pkg.arch), ("distro", distro), ("upstream", pkg.source)) if v}
    return str(PackageURL(type="deb", namespace="debian", name=pkg.name, version=pkg.version, qualifiers=qualifiers))


def _timestamp(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def _canonical(text: str, *, compact: bool) -> bytes:
    doc = json.loads(text)
    if compact:
        return (json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def _cdx_licenses(licenses: Sequence[str]) -> list[Any]:
    try:
        from cyclonedx.contrib.license.factories import LicenseFactory
    except ImportError:  # pragma: no cover - cyclonedx-python-lib before 11.x
        from cyclonedx.factory.license import LicenseFactory

    factory = LicenseFactory()
    if len(licenses) == 1:
        return [factory.make_from_string(licenses[0])]
    return [factory.make_with_name(text) for text in licenses]  # several: license objects, never an expression


def cyclonedx_document(inputs: SbomInputs, *, compact: bool = False) -> bytes:
    """The CycloneDX 1.6 JSON document of ``inputs`` (canonical bytes)."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    components = []
    for py in inputs.python:
        purl = PackageURL.from_string(py.purl)
        components.append(
            Component(
                name=py.name, version=py.version, type=ComponentType.LIBRARY, purl=purl, bom_ref=py.purl,
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=py.sha256)] if py.sha256 else [],
                licenses=_cdx_licenses(py.licenses) if py.licenses else [],
            )
        )  # fmt: skip
    for deb in inputs.debs:
        ref = _deb_purl(deb, inputs.distro)
        purl = PackageURL.from_string(ref)
        components.append(Component(name=deb.name, version=deb.version, type=ComponentType.LIBRARY, purl=purl, bom_ref=ref))
    root = Component(name=inputs.subject, type=ComponentType.CONTAINER, bom_ref=inputs.identity)
    tool = Component(name="slimbuild", version=inputs.tool_version, type=ComponentType.APPLICATION, bom_ref="slimbuild")
    metadata = BomMetaData(
        timestamp=_timestamp(inputs.epoch),
        component=root,
        properties=[Property(name="slimbuild:note", value=n) for n in inputs.notes],
    )
    metadata.tools.components.add(tool)
    bom = Bom(serial_number=inputs.serial, metadata=metadata, components=components)
    bom.register_dependency(root, components)
    return _canonical(JsonV1Dot6(bom).output_as_string(), compact=compact)


def _spdx_id(kind: str, name: str, version: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-") or "package"
    return f"SPDXRef-{kind}-{safe}-{hashlib.sha256(f'{name}@{version}'.encode()).hexdigest()[:8]}"


def _spdx_license(licenses: Sequence[str]) -> tuple[Any, str | None]:
    """(the declared licence, a comment): a valid SPDX expression as such, anything else NOASSERTION and said."""
    from license_expression import get_spdx_licensing  # type: ignore[import-untyped]
    from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion

    if not licenses:
        return SpdxNoAssertion(), None
    licensing = get_spdx_licensing()
    if len(licenses) == 1 and not licensing.validate(licenses[0]).errors:
        return licensing.parse(licenses[0]), None
    return SpdxNoAssertion(), "declared: " + "; ".join(licenses)


# long: one constructor call per SPDX element, each spelled out with its required fields
def spdx_document(inputs: SbomInputs, *, compact: bool = False) -> bytes:
    """The SPDX 2.3 JSON document of ``inputs`` (canonical bytes)."""
    import io

    from spdx_tools.spdx.model.actor import Actor, ActorType
    from spdx_tools.spdx.model.checksum import Checksum, ChecksumAlgorithm
    from spdx_tools.spdx.model.document import CreationInfo, Document
    from spdx_tools.spdx.model.package import ExternalPackageRef, ExternalPackageRefCategory, Package, PackagePurpose
    from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
    from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    creation = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=inputs.subject,
        document_namespace=f"https://slimbuild.invalid/spdxdocs/{inputs.serial}",
        creators=[Actor(ActorType.TOOL, f"slimbuild-{inputs.tool_version}")],
        created=_timestamp(inputs.epoch).replace(tzinfo=None),
        document_comment="; ".join(inputs.notes) or None,
    )
    root_id = "SPDXRef-image"
    packages = [
        Package(
            spdx_id=root_id, name=inputs.subject, download_location=SpdxNoAssertion(), files_analyzed=False,
            primary_package_purpose=PackagePurpose.CONTAINER, comment=f"image {inputs.identity}",
        )
    ]  # fmt: skip
    for py in inputs.python:
        declared, comment = _spdx_license(py.licenses)
        packages.append(
            Package(
                spdx_id=_spdx_id("pypi", py.name, py.version), name=py.name, version=py.version,
                download_location=SpdxNoAssertion(), files_analyzed=False,
                checksums=[Checksum(ChecksumAlgorithm.SHA256, py.sha256)] if py.sha256 else [],
                license_declared=declared, license_concluded=SpdxNoAssertion(), license_comment=comment,
                copyright_text=SpdxNoAssertion(),
                external_references=[ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", py.purl)],
            )
        )  # fmt: skip
    for deb in inputs.debs:
        packages.append(
            Package(
                spdx_id=_spdx_id("deb", deb.name, f"{deb.version}:{deb.arch}"), name=deb.name, version=deb.version,
                download_location=SpdxNoAssertion(), files_analyzed=False, license_declared=SpdxNoAssertion(),
                license_concluded=SpdxNoAssertion(), copyright_text=SpdxNoAssertion(),
                external_references=[
                    ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", _deb_purl(deb, inputs.distro))
                ],
            )
        )  # fmt: skip
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, root_id)]
    relationships += [Relationship(root_id, RelationshipType.CONTAINS, p.spdx_id) for p in packages[1:]]
    stream = io.StringIO()
    write_document_to_stream(Document(creation, packages=packages, relationships=relationships), stream, validate=False)
    return _canonical(stream.getvalue(), compact=compact)


def render_sbom(inputs: SbomInputs, fmt: str = "cyclonedx", *, compact: bool = False) -> bytes:
    """The document of ``inputs`` in ``fmt`` (``FORMATS``), packages sorted; an unknown format is UsageError (exit 2)."""
    inputs = replace(
        inputs,
        python=tuple(sorted(inputs.python, key=lambda p: (p.name, p.version))),
        debs=tuple(sorted(inputs.debs, key=lambda p: (p.name, p.arch, p.version))),
    )
    if check_format(fmt) == "spdx":
        return spdx_document(inputs, compact=compact)
    return cyclonedx_document(inputs, compact=compact)
