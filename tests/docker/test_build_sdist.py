"""C5 opt-in: an sdist-only distribution, allowed by the config, is built offline in the builder stage.

The distribution has a name nobody publishes, so no public wheel can stand in for it.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.image.engine import DockerEngine
from tests.conftest import Run
from tests.constants import OK, RESOLUTION
from tests.docker.conftest import BASE_IMAGE
from tests.docker.test_build_examples import SHARED_CACHE

pytestmark = pytest.mark.docker


def _sdist(dest: Path) -> None:
    files = {
        "sbtest_tinylib_zq-1.0/pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta"\n[project]\nname = "sbtest-tinylib-zq"\nversion = "1.0"\n',
        "sbtest_tinylib_zq-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: sbtest-tinylib-zq\nVersion: 1.0\n",
        "sbtest_tinylib_zq-1.0/sbtest_tinylib_zq/__init__.py": "VALUE = 42\n",
    }
    with tarfile.open(dest / "sbtest_tinylib_zq-1.0.tar.gz", "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _project(tmp_path: Path, allow: bool) -> Path:
    root = tmp_path / ("allowed" if allow else "refused")
    root.mkdir()
    (root / "main.py").write_text("import sbtest_tinylib_zq as tinylib\nprint('tinylib', tinylib.VALUE)\n")
    (root / "requirements.txt").write_text("sbtest-tinylib-zq\n")
    extra = 'allow-sdist = ["sbtest-tinylib-zq"]\n' if allow else ""
    (root / "pyproject.toml").write_text(f'[tool.slimbuild]\nentrypoint = "main.py"\n{extra}smoke = ["python", "/app/main.py"]\n')
    return root


def test_C5_sdist_refused_by_default_and_built_offline_when_allowed(
    engine: DockerEngine, tmp_path: Path, run_cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    _sdist(links)
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))  # the index the machine's pip config names still applies
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    refused = run_cli("lock", str(_project(tmp_path, allow=False)))
    assert refused.code == RESOLUTION and "sbtest-tinylib-zq" in refused.err and "sdist" in refused.err
    root = _project(tmp_path, allow=True)
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--json")
    assert run.code == OK, run.err
    (image,) = json.loads(run.out)["images"]
    try:
        out = engine.run(image["image_id"], ["/opt/venv/bin/python", "/app/main.py"], user="10001:10001", timeout=120)
        assert out.exit_code == 0 and "tinylib 42" in out.output
        probe = "import importlib.util, sys; sys.exit(1 if importlib.util.find_spec('setuptools') else 0)"
        pruned = engine.run(image["image_id"], ["/opt/venv/bin/python", "-c", probe], user="10001:10001", timeout=120)
        assert pruned.exit_code == 0, "the build backend must not stay in the image"
    finally:
        for tag in image["tags"]:
            engine.client.remove_image(tag, force=True)
