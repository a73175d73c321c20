"""``slimbuild sbom`` and ``build --sbom`` on a real engine (issue 16; K13, K14).

One small project (six) is built twice with ``--sbom``, each a separate ``python -m slimbuild build`` process as a
user runs it: the second must give the same image id (the SBOM inside is made before the build, from the lock and
the base's dpkg status). ``sbom`` runs in-process on the image, its saved tar and its manifest; every document is
checked by its own library's validator. Only the tags these builds made are removed afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from slimbuild.image.engine import DockerEngine
from slimbuild.record.image_tar import scan_image_tar
from slimbuild.record.sbom import SBOM_PATH_IN_IMAGE, SbomInputs
from tests.conftest import Run
from tests.constants import OK, USAGE
from tests.docker.conftest import BASE_IMAGE
from tests.docker.test_build_examples import SHARED_CACHE

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]

FILES = {
    "pyproject.toml": '[project]\nname = "sbsbom"\nversion = "0.1.0"\ndependencies = ["six"]\n\n'
    '[tool.slimbuild]\nentrypoint = "main.py"\n',
    "main.py": "import six\n\nprint('sbom', six.PY3)\n",
}


def _build(root: Path) -> dict[str, Any]:
    env = {**os.environ, "SLIMBUILD_CACHE": str(SHARED_CACHE), "SOURCE_DATE_EPOCH": "1700000000", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "slimbuild", "build", str(root), "--base-image", BASE_IMAGE, "--sbom", "--json"],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == OK, proc.stderr[-3000:]
    (image,) = json.loads(proc.stdout)["images"]
    return dict(image)


@pytest.fixture(scope="module")
def built(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The project built twice with --sbom, and the image saved as a tar; the tags removed at the end."""
    root = tmp_path_factory.mktemp("sbom") / "proj"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    made: list[dict[str, Any]] = []
    try:
        made.append(_build(root))
        made.append(_build(root))
        saved = root.parent / "image.tar"
        with saved.open("wb") as fh:
            for chunk in engine.save(made[0]["image_id"]):
                fh.write(chunk)
        yield {**made[0], "again": made[1]["image_id"], "tar": str(saved), "root": root}
    finally:
        for tag in {t for image in made for t in image["tags"]}:
            try:
                engine.client.remove_image(tag, force=True)
            except Exception:  # noqa: BLE001 - cleanup only
                pass


def _cyclonedx(text: str) -> dict[str, Any]:
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc: dict[str, Any] = json.loads(text)
    return doc


def _spdx_valid(path: Path) -> dict[str, Any]:
    assert validate_full_spdx_document(parse_file(str(path))) == []
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def test_K14_sbom_of_the_image_and_of_its_saved_tar(built: dict[str, Any], run_cli: Callable[..., Run], tmp_path: Path) -> None:
    manifest = json.loads(Path(built["manifest"]).read_text(encoding="utf-8"))
    tag = built["tags"][0]
    image = run_cli("sbom", tag)
    tar = run_cli("sbom", built["tar"])
    assert image.code == OK and tar.code == OK, image.err + tar.err
    assert image.out == tar.out == run_cli("sbom", tag).out  # the same image, the same bytes, every run
    doc = _cyclonedx(image.out)
    assert doc["serialNumber"].endswith(str(SbomInputs("", built["image_id"], 0, ()).serial))
    assert doc["metadata"]["timestamp"].startswith("2023-11-14T22:13:20")  # SOURCE_DATE_EPOCH=1700000000
    by_purl = {c["purl"]: c for c in doc["components"]}
    (six,) = [c for c in doc["components"] if c["name"] == "six"]
    (recorded,) = [d for d in manifest["distributions"] if d["name"] == "six"]
    assert six["purl"] == f"pkg:pypi/six@{recorded['version']}"
    assert f"sha256:{six['hashes'][0]['content']}" in recorded["hashes"]
    assert six["licenses"] == [{"license": {"id": "MIT"}}]  # six's METADATA: License: MIT
    debs = [p for p in by_purl if p.startswith("pkg:deb/debian/")]
    assert any(p.startswith("pkg:deb/debian/libc6@") and "distro=debian-12" in p for p in debs), debs[:5]
    assert len(debs) > 20  # the bookworm base's installed packages
    out = tmp_path / "image.spdx.json"
    run = run_cli("sbom", built["tar"], "--format", "spdx", "-o", str(out))
    assert run.code == OK and run.out == "", run.err
    spdx = _spdx_valid(out)
    names = {p["name"] for p in spdx["packages"]}
    assert {"six", "libc6"} <= names


def test_K14_build_sbom_puts_it_in_the_image_and_the_image_stays_reproducible(built: dict[str, Any]) -> None:
    assert built["again"] == built["image_id"]  # identical inputs, identical image id, SBOM included
    scan = scan_image_tar(Path(built["tar"]).read_bytes(), wanted=lambda p: p == SBOM_PATH_IN_IMAGE.lstrip("/"))
    embedded = scan.final_contents()[SBOM_PATH_IN_IMAGE.lstrip("/")]
    doc = _cyclonedx(embedded.decode("utf-8"))
    assert b"\n" not in embedded.rstrip(b"\n")  # compact: one line
    manifest = json.loads(Path(built["manifest"]).read_text(encoding="utf-8"))
    assert manifest["sbom"] == SBOM_PATH_IN_IMAGE  # recorded, so that verify rebuilds it with --sbom
    pypi = {c["name"]: c for c in doc["components"] if c["purl"].startswith("pkg:pypi/")}
    assert sorted(pypi) == sorted(d["name"] for d in manifest["distributions"])
    assert all(c.get("hashes") for c in pypi.values())  # the lock's wheels: the sha256 of each one installed
    assert any(c["purl"].startswith("pkg:deb/debian/libc6@") for c in doc["components"])
    assert list(pypi) == sorted(pypi)  # sorted, as every run writes them
    assert uuid.UUID(doc["serialNumber"].removeprefix("urn:uuid:")).version == 5


def test_K14_every_distribution_keeps_its_metadata_and_record(built: dict[str, Any]) -> None:
    manifest = json.loads(Path(built["manifest"]).read_text(encoding="utf-8"))
    files = scan_image_tar(Path(built["tar"]).read_bytes()).final_files()
    dist_infos = {p.split("/")[-2] for p in files if "/site-packages/" in p and p.endswith(".dist-info/METADATA")}
    for dist in manifest["distributions"]:
        folder = next((d for d in dist_infos if d.lower().replace("_", "-").startswith(f"{dist['name']}-")), None)
        assert folder is not None, (dist["name"], sorted(dist_infos))
        prefix = next(p for p in files if p.endswith(f"/{folder}/METADATA")).rsplit("/", 1)[0]
        assert files[f"{prefix}/METADATA"].type == "file" and files[f"{prefix}/RECORD"].type == "file"


def test_K13_sbom_of_an_image_without_a_manifest_is_exit_2(engine: DockerEngine, run_cli: Callable[..., Run]) -> None:
    run = run_cli("sbom", BASE_IMAGE)
    assert run.code == USAGE and "no slimbuild manifest" in run.err and run.out == ""
