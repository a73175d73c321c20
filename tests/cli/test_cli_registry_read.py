"""``inspect``/``diff`` of a registry reference against faults a real registry will not serve (H2, H4): a 1 GiB
manifest, an index of several platforms, a registry that is down; a canned v2 API on 127.0.0.1 (standard library).

A real registry (tests/docker/test_registry_read.py) cannot be made to send these: it refuses such pushes.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from slimbuild.image import oci
from tests.conftest import Run
from tests.constants import INTEGRITY, REGISTRY, USAGE


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CONFIG = json.dumps({"architecture": "arm64", "os": "linux", "config": {"Labels": {}}, "rootfs": {"diff_ids": []}}).encode()
ARM_MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
     "config": {"mediaType": oci.IMAGE_CONFIGS[1], "digest": _digest(CONFIG), "size": len(CONFIG)}, "layers": []}
).encode()  # fmt: skip
INDEX = json.dumps(
    {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [
        {"mediaType": oci.OCI_MANIFEST, "digest": _digest(ARM_MANIFEST), "size": len(ARM_MANIFEST),
         "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": oci.OCI_MANIFEST, "digest": "sha256:" + "5" * 64, "size": 10,
         "platform": {"os": "linux", "architecture": "s390x"}},
    ]}
).encode()  # fmt: skip


class _Canned(http.server.BaseHTTPRequestHandler):
    routes: Mapping[str, tuple[bytes, Mapping[str, str]]] = {}
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body, headers = self.routes.get(self.path, (b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}', {}))
        self.send_response(200 if self.path in self.routes else 404)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body[: 1 << 20])

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    routes = {
        "/v2/team/huge/manifests/1": (b"{" + b" " * 1024, {"Content-Length": str(1 << 30), "Content-Type": oci.OCI_MANIFEST}),
        "/v2/team/multi/manifests/1": (INDEX, {"Content-Type": oci.OCI_INDEX}),
        f"/v2/team/multi/manifests/{_digest(ARM_MANIFEST)}": (ARM_MANIFEST, {"Content-Type": oci.OCI_MANIFEST}),
        f"/v2/team/multi/blobs/{_digest(CONFIG)}": (CONFIG, {}),
    }
    handler = type("Handler", (_Canned,), {"routes": routes, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_H2_a_manifest_declaring_1_GiB_is_refused_before_it_is_read(
    canned: tuple[str, list[str]], run_cli: Callable[..., Run]
) -> None:
    address, _ = canned
    run = run_cli("inspect", f"docker://{address}/team/huge:1")
    assert run.code == INTEGRITY and "declares 1073741824 bytes" in run.err, run.err


def test_H2_an_index_of_several_platforms_needs_one_that_fits(canned: tuple[str, list[str]], run_cli: Callable[..., Run]) -> None:
    address, seen = canned
    ref = f"docker://{address}/team/multi:1"
    run = run_cli("inspect", ref)  # neither platform is this host's (the tests run on amd64 or arm64 ...)
    if oci.host_platform() != "linux/arm64":
        assert run.code == USAGE and "several platforms (linux/arm64, linux/s390x)" in run.err and "--platform" in run.err
    run = run_cli("inspect", ref, "--platform", "linux/arm64")  # found, its manifest and config read: no label
    assert run.code == USAGE and "no slimbuild manifest" in run.err, run.err
    assert seen[-2:] == [f"/v2/team/multi/manifests/{_digest(ARM_MANIFEST)}", f"/v2/team/multi/blobs/{_digest(CONFIG)}"]
    run = run_cli("inspect", ref, "--platform", "windows/amd64")
    assert run.code == USAGE and "no image for platform windows/amd64" in run.err
    run = run_cli("inspect", ref, "--platform", "linux")
    assert run.code == USAGE and "is not os/arch" in run.err
    run = run_cli("inspect", f"docker://{address}/team/missing:1")
    assert run.code == USAGE and "not in the registry (MANIFEST_UNKNOWN: manifest unknown)" in run.err


def test_H4_a_registry_that_is_down_is_exit_8(run_cli: Callable[..., Run]) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = run_cli("diff", f"docker://127.0.0.1:{port}/team/app:1", f"docker://127.0.0.1:{port}/team/app:2", "--json")
    assert run.code == REGISTRY and "cannot be reached" in run.err
    assert json.loads(run.out)["error"]["exit_code"] == REGISTRY
