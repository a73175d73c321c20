"""L14, L15: a wheel whose shared object needs a library the test base lacks (libgomp.so.1) fails before any
build, naming the library, the distribution and the Debian package; with ``system-packages`` the .deb is fetched
on the host, extracted offline in the builder, the smoke run loads it, and the manifest records it.

The wheel is built here (gcc, ``-fopenmp``) under a name nobody publishes, so no public wheel can stand in.
Its module loads the shared object with ctypes: no Python headers are needed, and the import fails without
the library exactly as an extension module's would.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.image.engine import DockerEngine
from tests.conftest import Run
from tests.constants import BUILD, OK
from tests.docker.conftest import BASE_IMAGE, write_platform_wheel
from tests.docker.test_build_examples import SHARED_CACHE

pytestmark = pytest.mark.docker

DIST = "sbtest_gompdemo_zq"
INIT = """import ctypes, os
_lib = ctypes.CDLL(os.path.join(os.path.dirname(__file__), "_native.so"))
THREADS = _lib.sbtest_threads()
"""


@pytest.fixture(scope="module")
def links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A find-links dir with one manylinux wheel whose _native.so has DT_NEEDED libgomp.so.1."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the test wheel", pytrace=False)
    tmp = tmp_path_factory.mktemp("gomp")
    (tmp / "native.c").write_text("#include <omp.h>\nint sbtest_threads(void) { return omp_get_max_threads(); }\n")
    subprocess.run([gcc, "-shared", "-fPIC", "-fopenmp", "-o", tmp / "_native.so", tmp / "native.c"], check=True)
    files = {f"{DIST}/__init__.py": INIT.encode(), f"{DIST}/_native.so": (tmp / "_native.so").read_bytes()}
    return write_platform_wheel(tmp / "links", DIST, files)


def _project(tmp_path: Path, name: str, extra: str = "") -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "main.py").write_text(f"import {DIST}\nprint('threads', {DIST}.THREADS > 0)\n")
    (root / "requirements.txt").write_text(f"{DIST.replace('_', '-')}\n")
    (root / "pyproject.toml").write_text(
        f'[tool.slimbuild]\nentrypoint = "main.py"\nsmoke = ["python", "/app/main.py"]\n{extra}'
    )
    return root


@pytest.fixture
def env(links: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))


def test_L14_missing_library_fails_before_any_build_naming_it(
    env: None, engine: DockerEngine, tmp_path: Path, run_cli: Callable[..., Run]
) -> None:
    run = run_cli("build", str(_project(tmp_path, "missing")), "--base-image", BASE_IMAGE)
    assert run.code == BUILD, run.err
    for word in ("libgomp.so.1", "sbtest-gompdemo-zq", "Debian package libgomp1", 'system-packages = ["libgomp1"]'):
        assert word in run.err, run.err
    assert "Traceback" not in run.err and "Step " not in run.err  # refused before the engine built anything
    assert "nothing was built" in run.err and not engine.client.images(name="slimbuild/missing")


def test_L15_system_packages_installs_the_deb_offline_and_records_it(
    env: None, engine: DockerEngine, tmp_path: Path, run_cli: Callable[..., Run]
) -> None:
    root = _project(tmp_path, "fixed", 'system-packages = ["libgomp1"]\n')
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--json")
    assert run.code == OK, run.err
    (image,) = json.loads(run.out)["images"]
    try:
        out = engine.run(image["image_id"], ["/opt/venv/bin/python", "/app/main.py"], user="10001:10001", timeout=120)
        assert out.exit_code == 0 and "threads True" in out.output, out.output
        manifest = json.loads(Path(image["manifest"]).read_text())
        (pkg,) = manifest["system_packages"]  # the base has libgomp1's dependencies (libc6, gcc-12-base)
        assert pkg["name"] == "libgomp1" and pkg["version"]
        (deb,) = (SHARED_CACHE / "debs" / pkg["sha256"]).glob("libgomp1_*.deb")
        assert hashlib.sha256(deb.read_bytes()).hexdigest() == pkg["sha256"]
        assert manifest["smoke"] and all(s["ok"] for s in manifest["smoke"])
        listing = engine.run(
            image["image_id"],
            ["/bin/sh", "-c", "ls -l --time-style=+%s /usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0; ls -ld /lib"],
            user="10001:10001", timeout=60,
        )  # fmt: skip
        assert listing.exit_code == 0 and f" {manifest['source_date_epoch']} " in listing.output, listing.output
        assert "/lib -> usr/lib" in listing.output  # the base's merged /usr link survives the COPY
    finally:
        for tag in image["tags"]:
            engine.client.remove_image(tag, force=True)
