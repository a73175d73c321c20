"""L24, L25: ``prune = "traced"`` and ``build --trace-in-image`` on a real engine.

One small wheel, built here with gcc under a name nobody publishes: a package whose ``__init__`` loads an extension
(``_native.so``, through ctypes) that needs a library the wheel vendors (``<dist>.libs/libsbhelper.so``, by its
RUNPATH) and opens one data file; beside them a module no run imports, a subpackage no run imports, a data file
and a vendored library nothing uses, and a licence. The project's command is traced on the host for real
(``slimbuild trace`` in a venv with the wheel), then the image is built, pruned to that trace and proven.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.image.engine import DockerEngine
from tests.conftest import Run
from tests.constants import BUILD, OK
from tests.docker.conftest import BASE_IMAGE, write_platform_wheel
from tests.docker.test_build_examples import SHARED_CACHE

pytestmark = pytest.mark.docker

DIST = "sbtest_prunedemo_zq"
SITE = "/opt/venv/lib/python3.11/site-packages"
INIT = """import ctypes, os
_here = os.path.dirname(__file__)
VALUE = ctypes.CDLL(os.path.join(_here, "_native.so")).sbtest_value()
def read():
    with open(os.path.join(_here, "data", "used.txt")) as fh:
        return fh.read().strip()
"""
LISTING = (f"import os\nfor d, _, fs in os.walk({SITE!r}):\n"
           f"    for f in fs: print(os.path.relpath(os.path.join(d, f), {SITE!r}))\n")


def _gcc(*args: object) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the test wheel", pytrace=False)
    subprocess.run([gcc, "-shared", "-fPIC", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("prunedemo")
    (tmp / "helper.c").write_text("int sbhelper(void) { return 41; }\n")
    (tmp / "unused.c").write_text("int sbunused(void) { return 0; }\n")
    (tmp / "native.c").write_text("int sbhelper(void);\nint sbtest_value(void) { return sbhelper() + 1; }\n")
    _gcc("-Wl,-soname,libsbhelper.so", "-o", tmp / "libsbhelper.so", tmp / "helper.c")
    _gcc("-o", tmp / "libunused.so", tmp / "unused.c")
    _gcc("-o", tmp / "_native.so", tmp / "native.c", f"-L{tmp}", "-lsbhelper", f"-Wl,-rpath,$ORIGIN/../{DIST}.libs")
    info = f"{DIST}-1.0.dist-info"
    files = {
        f"{DIST}/__init__.py": INIT.encode(),
        f"{DIST}/sibling.py": b"X = 1\n",
        f"{DIST}/_native.so": (tmp / "_native.so").read_bytes(),
        f"{DIST}/data/used.txt": b"used\n",
        f"{DIST}/data/unused.txt": b"x" * 100_000,
        f"{DIST}/extra/__init__.py": b"Y = 2\n",
        f"{DIST}.libs/libsbhelper.so": (tmp / "libsbhelper.so").read_bytes(),
        f"{DIST}.libs/libunused.so": (tmp / "libunused.so").read_bytes(),
        f"{info}/LICENSE": b"MIT\n",
    }
    return write_platform_wheel(tmp / "links", DIST, files)


@pytest.fixture
def traced(links: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., Run]) -> Path:
    """The project, its command traced on the host in a venv with the wheel (slimbuild trace, for real)."""
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([venv / "bin" / "pip", "install", "-q", "--no-index", "--find-links", links, DIST], check=True)
    root = tmp_path / "prunedemo"
    root.mkdir()
    (root / "main.py").write_text(f"import {DIST}\nprint('value', {DIST}.VALUE, {DIST}.read())\n")
    (root / "requirements.txt").write_text(f"{DIST.replace('_', '-')}\n")
    (root / "pyproject.toml").write_text(
        '[tool.slimbuild]\nentrypoint = "main.py"\nsmoke = ["python", "/app/main.py"]\nprune = "traced"\n'
    )
    run = run_cli("trace", str(root), "--", str(venv / "bin" / "python"), "main.py")
    assert run.code == OK, run.err
    return root


def test_L24_prune_traced_keeps_what_the_run_needs_proves_it_and_traces_in_the_image(
    traced: Path, engine: DockerEngine, run_cli: Callable[..., Run]
) -> None:
    trace = json.loads((traced / "slimbuild.trace.json").read_text())
    assert trace["version"] == 2 and f"{DIST}/data/used.txt" in trace["installed"]  # L16: installed files, relative
    assert not any(p.startswith("/") or "site-packages" in p for p in trace["installed"])
    run = run_cli("build", str(traced), "--base-image", BASE_IMAGE, "--trace-in-image", "--json")
    assert run.code == OK, run.err
    (image,) = json.loads(run.out)["images"]
    try:
        listing = engine.run(image["image_id"], ["/opt/venv/bin/python", "-c", LISTING], user="10001:10001", timeout=60)
        files = set(listing.output.split())
        kept = {f"{DIST}/__init__.pyc", f"{DIST}/sibling.pyc", f"{DIST}/_native.so", f"{DIST}/data/used.txt",
                f"{DIST}.libs/libsbhelper.so", f"{DIST}-1.0.dist-info/LICENSE", f"{DIST}-1.0.dist-info/METADATA",
                f"{DIST}-1.0.dist-info/RECORD"}
        assert kept <= files, listing.output
        for gone in (f"{DIST}/data/unused.txt", f"{DIST}/extra/__init__.pyc", f"{DIST}.libs/libunused.so"):
            assert gone not in files, listing.output
        record = engine.run(image["image_id"], ["/bin/cat", f"{SITE}/{DIST}-1.0.dist-info/RECORD"], user="10001:10001",
                            timeout=60).output
        assert f"{DIST}/__init__.pyc,," in record and "unused" not in record and "extra/" not in record, record
        root_listing = engine.run(image["image_id"], ["/bin/ls", "-a", "/"], user="10001:10001", timeout=60).output
        assert "slimbuild-trace" not in root_listing  # nothing of the traced run reached the image
        manifest = json.loads(Path(image["manifest"]).read_text())
        (proven,) = manifest["pruned"]["proven"]
        assert proven["ok"] and proven["command"] == ["/opt/venv/bin/python", "main.py"]
        tii = manifest["trace_in_image"]
        assert {f"{DIST}/data/used.txt", f"{DIST}/__init__.pyc", f"{DIST}.libs/libsbhelper.so"} <= set(tii["opened"])
        assert f"{DIST}/sibling.pyc" not in tii["opened"]  # kept by the package rule, never opened
        assert tii["installed_bytes"] == tii["opened_bytes"] + tii["never_opened_bytes"] and tii["never_opened_files"] > 0
    finally:
        for tag in image["tags"]:
            engine.client.remove_image(tag, force=True)


def test_L25_a_trace_that_misses_a_file_the_run_opens_fails_the_proof_naming_it_with_no_tag(
    traced: Path, engine: DockerEngine, run_cli: Callable[..., Run]
) -> None:
    path = traced / "slimbuild.trace.json"
    doc = json.loads(path.read_text())
    doc["installed"] = [p for p in doc["installed"] if not p.endswith("used.txt")]
    path.write_text(json.dumps(doc))
    run = run_cli("build", str(traced), "--base-image", BASE_IMAGE)
    assert run.code == BUILD, run.err
    assert f"first missing file: {SITE}/{DIST}/data/used.txt" in run.err and "no tag was applied" in run.err, run.err
    assert not engine.client.images(name="slimbuild/prunedemo") and not (traced / "slimbuild.manifest.json").exists()
