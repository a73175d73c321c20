"""A52 on a real engine: a notebook's `%run helper.py` is shipped and run inside the image as Jupyter runs it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.image.engine import DockerEngine
from tests.conftest import Run
from tests.constants import OK
from tests.docker.conftest import BASE_IMAGE

pytestmark = pytest.mark.docker
SHARED_CACHE = Path(os.environ.get("SLIMBUILD_TEST_CACHE", "~/.cache/slimbuild-test-cache")).expanduser()


def _cell(src: str) -> dict[str, object]:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src}


def test_A52_image_runs_the_notebooks_run_script(
    engine: DockerEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., Run]
) -> None:
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    root = tmp_path / "proj"
    (root / "nbs" / "lib").mkdir(parents=True)
    cells = [_cell("n = 3\n%run lib/prepare.py --rows {n}\n"), _cell("print('rows', ROWS, 'helper', HELPED, __name__)\n")]
    meta = {"language_info": {"name": "python"}, "kernelspec": {"name": "python3", "language": "python"}}
    (root / "nbs" / "report.ipynb").write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": meta, "cells": cells}))
    (root / "nbs" / "lib" / "prepare.py").write_text(
        "import sys\nimport textwrap_helper\nROWS = int(sys.argv[2])\nif __name__ == '__main__':\n"
        "    HELPED = textwrap_helper.shout('ok')\n"
    )
    (root / "nbs" / "lib" / "textwrap_helper.py").write_text("def shout(s):\n    return s.upper()\n")
    (root / "pyproject.toml").write_text('[project]\nname = "nbrun"\nversion = "0"\ndependencies = []\n')
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--entrypoint", "nbs/report.ipynb", "--json")
    assert run.code == OK, run.err
    (image,) = json.loads(run.out)["images"]
    try:
        doc = json.loads(Path(image["manifest"]).read_text())
        shipped = json.dumps(doc)
        assert "nbs/lib/prepare.py" in shipped and "nbs/lib/textwrap_helper.py" in shipped
        out = engine.run(image["image_id"], doc["entrypoint"]["argv"], user="10001:10001", timeout=300)
        assert out.exit_code == 0, out.output
        assert "rows 3 helper OK __main__" in out.output
    finally:
        for tag in image["tags"]:
            try:
                engine.client.remove_image(tag, force=True)
            except Exception:  # noqa: BLE001 - cleanup only
                pass
