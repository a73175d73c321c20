"""`check`/`analyze`/`lock` over the sys.path the image has (A49, A50), in-process, with a real environment."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.constants import ANALYSIS, FINDINGS, OK

Project = Callable[[dict[str, "str | bytes"]], Path]
RunCli = Callable[..., Run]

AIRFLOW = {
    "main.py": "from airflow import DAG\nimport yaml\n",
    "airflow/dags/etl.py": "import toml\n",  # the DAG folder Airflow users keep in their repository
}


def _install_fake(venv: Path, dist: str, version: str, package: str) -> None:
    """A real virtualenv with one distribution installed as a regular package (dist-info, RECORD, __init__.py)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python3*/site-packages")
    (site / package).mkdir()
    (site / package / "__init__.py").write_text("DAG = object\n")
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{package}/__init__.py,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "installed-only"])
def test_A49_airflow_namespace_folder_does_not_shadow_the_installed_package(
    run_cli: RunCli, project: Project, declared: bool
) -> None:
    root = project({**AIRFLOW, "requirements.txt": "pyyaml\n" + ("apache-airflow\n" if declared else "")})
    _install_fake(root / ".venv", "apache-airflow", "2.9.0", "airflow")
    doc = json.loads(run_cli("analyze", str(root), "--json").out)
    (entry,) = doc["entrypoints"]
    assert entry["files"] == ["main.py"]  # airflow/dags/ is not imported: the installed airflow package wins
    names = [r["name"] for r in entry["required"]] + [r["name"] for r in entry.get("missing", [])]
    assert "apache-airflow" in names
    assert "apache-airflow" not in [u["name"] for u in doc["unused"]]
    run = run_cli("check", str(root))
    if declared:
        assert run.code == OK, run.err
    else:
        assert run.code == FINDINGS and "main.py:1:1: SB001 'airflow' needs distribution 'apache-airflow'" in run.err
        shutil.rmtree(root / ".venv")  # nothing installs airflow: the folder is a namespace package of the project
        doc = json.loads(run_cli("analyze", str(root), "--json").out)
        assert [r["name"] for r in doc["entrypoints"][0]["required"]] == ["pyyaml"] and run_cli("check", str(root)).code == OK


TRAIN: dict[str, str | bytes] = {
    "scripts/train.py": "import src.features\n\nsrc.features.main()\n",
    "src/features.py": "import yaml\n\n\ndef main():\n    print(yaml.safe_dump({'ok': 1}))\n",
    "requirements.txt": "pyyaml\n",
    "pyproject.toml": '[tool.slimbuild]\nentrypoint = "scripts/train.py"\n',
}


def test_A50_check_and_lock_refuse_an_import_the_image_cannot_resolve(run_cli: RunCli, project: Project) -> None:
    root = project(dict(TRAIN))
    run = run_cli("check", str(root))
    assert run.code == FINDINGS
    assert "scripts/train.py:1:1: SB023 'src.features' is found only in the project root" in run.err
    for command in ("lock", "dockerfile", "build"):  # before pip or the engine is asked anything
        run = run_cli(command, str(root))
        assert run.code == ANALYSIS, run.err
        (line,) = [ln for ln in run.err.splitlines() if ln.startswith("slimbuild: error:")]
        assert "scripts/train.py:1:1: 'src.features'" in line and 'pythonpath = ["."]' in line
    assert not list(root.glob("*.lock"))


def test_A50_pythonpath_setting_makes_it_first_party(run_cli: RunCli, project: Project) -> None:
    root = project({**TRAIN, "pyproject.toml": '[tool.slimbuild]\nentrypoint = "scripts/train.py"\npythonpath = ["."]\n'})
    run = run_cli("check", str(root))
    assert " SB023 " not in run.err
    doc = json.loads(run_cli("analyze", str(root), "--json").out)
    assert doc["entrypoints"][0]["files"] == ["scripts/train.py", "src/features.py"]
    assert [r["name"] for r in doc["entrypoints"][0]["required"]] == ["pyyaml"]
