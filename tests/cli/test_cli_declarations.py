"""``slimbuild check`` on projects that declare their dependencies outside requirements.txt and ``[project]``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.constants import FINDINGS, OK, USAGE

Project = Callable[[dict[str, str | bytes]], Path]
CLI = Callable[..., Run]

MAIN = "import numpy\nimport pandas\nimport yaml\n"


@pytest.mark.parametrize(
    "files",
    [
        {"environment.yml": "name: x\ndependencies:\n  - python=3.11\n  - pip\n  - numpy=1.26\n  - pandas\n"
                            "  - pip:\n      - PyYAML>=6\n"},
        {"Pipfile": '[packages]\nnumpy = "*"\npandas = ">=2"\npyyaml = "*"\n\n[dev-packages]\npytest = "*"\n'},
        {"pyproject.toml": '[tool.poetry]\nname = "x"\nversion = "0.1.0"\n\n[tool.poetry.dependencies]\n'
                           'python = "^3.10"\nnumpy = "^1.26"\npandas = { version = "^2.1" }\nPyYAML = "*"\n'},
        {"setup.py": "from setuptools import setup\nsetup(name='x', install_requires=['numpy', 'pandas', 'PyYAML'])\n"},
    ],
    ids=["environment.yml", "Pipfile", "poetry", "setup.py"],
)
def test_check_passes_when_declared_only_in_another_tools_file(project: Project, run_cli: CLI, files: dict[str, str]) -> None:
    root = project({"main.py": MAIN, **files})
    run = run_cli("check", str(root))
    assert run.code == OK, run.err
    assert "0 error(s)" in run.err


def test_poetry_group_is_not_runtime_and_analyze_says_where_it_was_declared(project: Project, run_cli: CLI) -> None:
    pyproject = (
        '[tool.poetry]\nname = "x"\nversion = "0.1.0"\n\n[tool.poetry.dependencies]\npython = "^3.10"\n'
        'numpy = "^1.26"\n\n[tool.poetry.group.dev.dependencies]\npandas = "^2"\nPyYAML = "*"\n'
    )
    root = project({"main.py": MAIN, "pyproject.toml": pyproject})
    run = run_cli("check", str(root))
    assert run.code == FINDINGS
    assert "SB001 'pandas' needs distribution 'pandas'" in run.err
    (root / "pyproject.toml").write_text(pyproject + '\n[tool.slimbuild]\ngroups = ["dev"]\n')
    assert run_cli("check", str(root)).code == OK
    doc = json.loads(run_cli("analyze", str(root), "--json").out)
    (entry,) = doc["entrypoints"]
    assert {r["name"]: r["specifier"] for r in entry["required"]}["numpy"] in {"<2,>=1.26", ">=1.26,<2"}


def test_stage_requirements_beside_the_entrypoint(project: Project, run_cli: CLI) -> None:
    root = project({
        "requirements.txt": "numpy\n",
        "stages/train/run.py": MAIN,
        "stages/train/requirements.txt": "pandas==2.1.4\nPyYAML\n",
    })
    run = run_cli("check", str(root), "--entrypoint", "stages/train/run.py")
    assert run.code == OK, run.err
    doc = json.loads(run_cli("analyze", str(root), "--entrypoint", "stages/train/run.py", "--json").out)
    assert {r["name"]: r["specifier"] for r in doc["entrypoints"][0]["required"]}["pandas"] == "==2.1.4"


def test_SB015_conda_package_without_pypi_counterpart_is_reported_not_dropped(project: Project, run_cli: CLI) -> None:
    env = "dependencies:\n  - numpy\n  - pandas\n  - pyyaml\n  - cudatoolkit=11.8\n"
    run = run_cli("check", str(project({"main.py": MAIN, "environment.yml": env})))
    assert run.code == OK, run.err
    assert "environment.yml:5: SB015 conda package 'cudatoolkit' has no PyPI counterpart" in run.err


@pytest.mark.parametrize(
    ("files", "where"),
    [
        ({"environment.yml": "dependencies:\n  - numpy\n  - [oops\n"}, "environment.yml:4:"),
        ({"Pipfile": "[packages]\nnumpy = \n"}, "Pipfile:2:"),
        ({"pyproject.toml": '[tool.poetry.dependencies]\nnumpy = 1\n'}, "pyproject.toml:2:"),
        ({"requirements.txt": "-r other.txt\n", "other.txt": "-r requirements.txt\n"}, "other.txt:1:"),
    ],
    ids=["A28-yaml", "A25-pipfile", "A26-poetry", "A24-loop"],
)
def test_A24_A28_bad_declarations_exit_2_with_file_and_line(
    project: Project, run_cli: CLI, files: dict[str, str], where: str
) -> None:
    run = run_cli("check", str(project({"main.py": MAIN, **files})))
    assert run.code == USAGE, run.err
    assert where in run.err
    assert "Traceback" not in run.err


def test_poetry_and_conda_specifiers_reach_the_lock_inputs(project: Project) -> None:
    from slimbuild.analysis.reconcile import lock_inputs
    from slimbuild.config import load_settings
    from slimbuild.pipeline.analyzing import analyze

    pyproject = (
        '[tool.poetry]\nname = "x"\nversion = "0.1.0"\n\n[tool.poetry.dependencies]\npython = "^3.10"\n'
        'numpy = "^1.26"\nscipy = [\n  { version = "<1.12", python = "<3.11" },\n  { version = "^1.12", python = ">=3.11" },\n]\n'
    )
    root = project({
        "main.py": MAIN + "import scipy\n",
        "pyproject.toml": pyproject,
        "environment.yml": "dependencies:\n  - pandas=2.1\n  - pip:\n      - PyYAML>=6,<7\n",
    })
    env = dict(os.environ)
    (analysis,) = analyze(load_settings(root, {"target_python": "3.11"}, env=env), env=env)
    assert lock_inputs(analysis) == ("numpy<2,>=1.26", "pandas==2.1.*", "pyyaml<7,>=6", "scipy<2,>=1.12")
    (older,) = analyze(load_settings(root, {"target_python": "3.10"}, env=env), env=env)
    assert "scipy<1.12" in lock_inputs(older)
