"""The registry documents read for a remote ``inspect``/``diff`` (image/oci.py, pure): canned manifests and indexes.

H1: content addressability (a manifest or config whose bytes do not hash to the digest naming them, exit 5);
H2: malformed documents, unknown media types, size limits, an index with several platforms.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimbuild.errors import IntegrityError, UsageError
from slimbuild.image import oci
from slimbuild.image.registry import is_loopback, registry_message
from slimbuild.pipeline.inspecting import form_of
from tests.constants import INTEGRITY, USAGE

CONFIG = b'{"architecture":"amd64","os":"linux","config":{"Labels":{}},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}'


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _manifest(media_type: str = oci.DOCKER_MANIFEST, config_type: str = oci.IMAGE_CONFIGS[0]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": _digest(CONFIG), "size": len(CONFIG)},
        "layers": [
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": "sha256:" + "1" * 64, "size": 100},
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": "sha256:" + "2" * 64, "size": 7},
        ],
    }


def _entry(platform: dict[str, str], n: int, media_type: str = oci.OCI_MANIFEST) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": f"sha256:{n:064x}", "size": 500 + n, "platform": platform}


def _index(*platforms: dict[str, str]) -> oci.Index:
    doc = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [_entry(p, i) for i, p in enumerate(platforms)]}
    result = oci.parse_document(json.dumps(doc).encode(), "", "reg/app:1")
    assert isinstance(result, oci.Index)
    return result


AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64", "variant": "v8"}
ATTESTATION = {"os": "unknown", "architecture": "unknown"}


def test_H2_an_image_manifest_is_parsed_with_its_config_and_layer_sizes() -> None:
    for media_type in (oci.DOCKER_MANIFEST, oci.OCI_MANIFEST):
        doc = oci.parse_document(json.dumps(_manifest(media_type)).encode(), "", "reg/app:1")
        assert isinstance(doc, oci.ImageManifest)
        assert doc.config.digest == _digest(CONFIG) and doc.config.size == len(CONFIG)
        assert tuple(layer.size for layer in doc.layers) == (100, 7)


def test_H2_the_media_type_may_come_from_the_content_type_header() -> None:
    body = _manifest()
    del body["mediaType"]
    doc = oci.parse_document(json.dumps(body).encode(), f"{oci.OCI_MANIFEST}; charset=utf-8", "reg/app:1")
    assert isinstance(doc, oci.ImageManifest)


@pytest.mark.parametrize(
    "data",
    [b"{not json", b"\xff\xfe", b"[1, 2]", json.dumps({**_manifest(), "config": "x"}).encode(),
     json.dumps({**_manifest(), "layers": {"a": 1}}).encode(),
     json.dumps({**_manifest(), "config": {"mediaType": oci.IMAGE_CONFIGS[0], "digest": "sha256:x", "size": -1}}).encode()],
)  # fmt: skip
def test_H2_a_malformed_manifest_is_exit_5(data: bytes) -> None:
    with pytest.raises(IntegrityError) as info:
        oci.parse_document(data, "", "reg/app:1")
    assert info.value.exit_code == INTEGRITY and "reg/app:1" in info.value.message


def test_H2_unknown_media_types_schema1_and_artifacts_are_exit_2_naming_them() -> None:
    cases = [
        ({**_manifest(), "mediaType": "application/vnd.example.thing+json"}, "unknown manifest media type"),
        ({"schemaVersion": 1, "name": "app", "fsLayers": []}, "schema 1"),
        (_manifest(oci.OCI_MANIFEST, "application/vnd.cncf.helm.config.v1+json"), "not a container image"),
    ]
    for body, words in cases:
        with pytest.raises(UsageError) as info:
            oci.parse_document(json.dumps(body).encode(), "", "reg/app:1")
        assert info.value.exit_code == USAGE and words in info.value.message


def test_H2_reads_stop_at_the_limit_and_declared_sizes_are_refused_before_reading() -> None:
    pulled: list[int] = []

    def chunks() -> Any:
        for i in range(100):
            pulled.append(i)
            yield b"x" * 1000

    with pytest.raises(IntegrityError, match="larger than 4096 bytes"):
        oci.read_bounded(chunks(), 4096, "reg/app:1: the manifest")
    assert len(pulled) == 5  # nothing past the limit is read
    assert oci.read_bounded(iter([b"ab", b"c"]), 3, "x") == b"abc"
    with pytest.raises(IntegrityError, match="declares 1073741824 bytes"):
        oci.check_declared_size(1 << 30, oci.MAX_MANIFEST_BYTES, "reg/app:1: the manifest")
    oci.check_declared_size(None, 10, "no Content-Length")
    oci.check_declared_size(10, 10, "at the limit")


@given(st.binary(max_size=200), st.binary(min_size=1, max_size=20))
def test_H1_content_must_hash_to_the_digest_that_named_it(data: bytes, extra: bytes) -> None:
    oci.check_digest(data, _digest(data), "blob")
    oci.check_digest(data, "sha512:" + hashlib.sha512(data).hexdigest(), "blob")
    with pytest.raises(IntegrityError) as info:
        oci.check_digest(data + extra, _digest(data), "reg/app:1: the image config")
    assert info.value.exit_code == INTEGRITY and _digest(data) in info.value.message


def test_H1_a_digest_of_an_unknown_algorithm_or_length_is_refused() -> None:
    for digest in ("md5:" + "0" * 32, "sha256:abc", "nonsense"):
        with pytest.raises(IntegrityError):
            oci.check_digest(b"", digest, "blob")


def test_H2_an_index_resolves_to_the_asked_the_only_or_the_hosts_platform() -> None:
    both = _index(AMD64, ARM64, ATTESTATION)
    assert oci.select_platform(both, None, "linux/amd64", "r").platform == "linux/amd64"
    assert oci.select_platform(both, None, "linux/arm64", "r").platform == "linux/arm64/v8"  # variant implied
    assert oci.select_platform(both, "linux/arm64/v8", "linux/amd64", "r").platform == "linux/arm64/v8"
    only = _index(ARM64, ATTESTATION)  # attestation entries are not platforms
    assert oci.select_platform(only, None, "linux/amd64", "r").platform == "linux/arm64/v8"


def test_H2_an_index_without_a_match_is_exit_2_listing_its_platforms() -> None:
    both = _index(AMD64, ARM64)
    with pytest.raises(UsageError, match=r"several platforms \(linux/amd64, linux/arm64/v8\).*linux/s390x") as info:
        oci.select_platform(both, None, "linux/s390x", "reg/app:1")
    assert "--platform" in info.value.hint
    with pytest.raises(UsageError, match="no image for platform linux/arm/v7"):
        oci.select_platform(both, "linux/arm/v7", "linux/amd64", "reg/app:1")
    with pytest.raises(UsageError, match="names no image manifest"):
        oci.select_platform(_index(ATTESTATION), None, "linux/amd64", "reg/app:1")


def test_H2_platform_values_and_the_host_platform() -> None:
    assert oci.host_platform("x86_64") == "linux/amd64" and oci.host_platform("aarch64") == "linux/arm64"
    assert oci.check_platform("linux/ARM64/v8") == "linux/arm64/v8"
    for bad in ("linux", "linux/", "a/b/c/d", "linux/amd 64"):
        with pytest.raises(UsageError):
            oci.check_platform(bad)


def test_H3_the_config_and_its_diff_ids_and_platform() -> None:
    config = oci.config_of(CONFIG, "r")
    assert oci.diff_ids(config) == ("sha256:aa",) and oci.platform_of_config(config) == "linux/amd64"
    with pytest.raises(IntegrityError):
        oci.config_of(b"[]", "r")


def test_H4_the_registrys_message_is_one_redacted_line() -> None:
    body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required", "detail": None}]})
    assert registry_message(body.encode()) == "UNAUTHORIZED: authentication required"
    assert "s3cret" not in registry_message(b"see https://user:s3cret@example.com/\nnow")
    assert registry_message(b"") == "no message"


def test_H4_loopback_registries_only_are_spoken_to_over_http() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1:5000", "localhost:5000", "localhost", "[::1]:5000"))
    assert not any(is_loopback(h) for h in ("registry.example.com", "10.0.0.1:5000", "ghcr.io"))


def test_H2_docker_scheme_references_are_checked_before_the_registry_is_asked() -> None:
    assert form_of("docker://ghcr.io/team/app:1") == "registry"
    assert form_of("docker://python:3.12") == "registry"
    for bad in ("docker://", "docker://Team/App", "docker://sha256:" + "a" * 64):
        with pytest.raises(UsageError):
            form_of(bad)
