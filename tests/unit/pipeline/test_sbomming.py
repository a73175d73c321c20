"""``build --sbom``'s document, made before the build from the lock's wheels and the base (issue 16; K14)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slimbuild.image.plan import APP_PREFIX
from slimbuild.pipeline.sbomming import SBOM_IN_APP, base_packages, embedded_sbom
from slimbuild.record.manifest import make_manifest, manifest_sha256
from slimbuild.record.sbom import SbomInputs
from tests.unit.record.test_manifest import _member, _save_tar, _tar

STATUS = b"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n"
BASE_ID = "sha256:" + "b" * 64


class _Engine:
    """Just what base_packages asks of an engine: the base's id, and its docker save tar (counted)."""

    def __init__(self) -> None:
        self.saves = 0
        layer = _tar([_member("var/lib/dpkg/status", STATUS), _member("etc/os-release", b"ID=debian\nVERSION_ID=12\n")])
        self.tar = _save_tar([layer], {})

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return {"Id": BASE_ID}

    def save(self, image_id: str) -> Iterator[bytes]:
        assert image_id == BASE_ID
        self.saves += 1
        yield self.tar


def _wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("six-1.16.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n\n")
    return path


def test_K14_the_base_is_saved_once_per_id_and_the_document_is_the_same_every_build(tmp_path: Path) -> None:
    engine = _Engine()
    cache = tmp_path / "cache"
    first = base_packages(engine, "base:tag", cache)  # type: ignore[arg-type]
    assert base_packages(engine, "base:tag", cache) == first and engine.saves == 1  # cached by the base's id
    assert [d.name for d in first[0]] == ["libc6"] and first[1] == "debian-12"
    assert (cache / "base-sbom" / f"{'b' * 64}.json").is_file()
    pre = make_manifest(
        target={"python": "3.11", "platform": "linux/x86_64 cp311"},
        base_image={"reference": f"base@{BASE_ID}", "digest_or_id": BASE_ID},
        distributions=[{"name": "six", "version": "1.16.0", "hashes": ["sha256:" + "1" * 64, "sha256:" + "2" * 64]}],
        files=[], template={"name": "slim", "dockerfile_sha256": "e" * 64}, source_date_epoch=1_700_000_000,
        lock_sha256="f" * 64, entrypoint={"name": "main", "path": "main.py", "argv": ["python"]},
    )  # fmt: skip
    wheel = _wheel(tmp_path / "six-1.16.0-py2.py3-none-any.whl")
    one = embedded_sbom(engine, pre, [wheel], "base:tag", cache)  # type: ignore[arg-type]
    two = embedded_sbom(engine, pre, [wheel], "base:tag", cache)  # type: ignore[arg-type]
    assert one == two and engine.saves == 1 and one.arcname == f"{APP_PREFIX}{SBOM_IN_APP}"
    assert one.data is not None and one.data.count(b"\n") == 1  # compact
    doc = json.loads(one.data)
    six = next(c for c in doc["components"] if c["name"] == "six")
    assert six["hashes"][0]["content"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert six["licenses"] == [{"license": {"id": "MIT"}}]
    assert doc["serialNumber"] == f"urn:uuid:{SbomInputs('', f'manifest-sha256:{manifest_sha256(pre)}', 0, ()).serial}"
