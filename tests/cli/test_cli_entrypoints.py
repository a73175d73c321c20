"""`check`/`analyze`/`lock` with no configuration on the layouts users have (A32-A37), in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli.test_cli_analysis_bad_inputs import code_cell, error_line, md_cell, notebook
from tests.conftest import Run
from tests.constants import ANALYSIS, FINDINGS, OK, USAGE

Project = Callable[[dict[str, "str | bytes"]], Path]
RunCli = Callable[..., Run]

STREAMLIT_REPO: dict[str, str | bytes] = {
    "Dockerfile": 'FROM python:3.11-slim\nWORKDIR /app\nCOPY . .\nRUN pip install -r requirements.txt\n'
                  'EXPOSE 8501\nENTRYPOINT ["streamlit", "run", "streamlit_app.py", "--server.port=8501"]\n',
    "streamlit_app.py": "import pandas as pd\nfrom helpers import load\n",
    "helpers.py": "import numpy\n",
    "scratch.py": "import tensorflow\n",
    "requirements.txt": "pandas\nnumpy\nmatplotlib\n",
}


def _sb016(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if " SB016 " in ln]


def test_A32_check_streamlit_repo_without_configuration(run_cli: RunCli, project: Project) -> None:
    root = project(STREAMLIT_REPO)
    run = run_cli("check", str(root))
    assert run.code == OK, run.err
    (line,) = _sb016(run.err)
    spec = "streamlit run streamlit_app.py --server.port=8501"
    assert line.startswith(f"Dockerfile:6: SB016 entrypoint '{spec}' found from the Dockerfile's ENTRYPOINT")
    assert f'[tool.slimbuild] entrypoint = "{spec}"' in line
    doc = json.loads(run_cli("analyze", str(root), "--json").out)
    assert doc["files"] == ["helpers.py", "streamlit_app.py"]  # scratch.py is not reached
    assert [u["name"] for u in doc["unused"]] == ["matplotlib"]


def test_A32_the_printed_config_line_pins_the_entrypoint(run_cli: RunCli, project: Project) -> None:
    root = project({"app.py": "import yaml\n", "main.py": "import toml\n", "requirements.txt": "pyyaml\ntoml\n"})
    run = run_cli("check", str(root))
    assert run.code == OK and len(_sb016(run.err)) == 2
    line = _sb016(run.err)[0].split("pick one with ", 1)[1]
    table, _, key = line.partition(" ")
    assert table == "[tool.slimbuild]"
    (root / "pyproject.toml").write_text(f"{table}\n{key}\n")
    run = run_cli("check", str(root))
    assert run.code == OK and _sb016(run.err) == []
    assert [e["entrypoint"] for e in json.loads(run_cli("analyze", str(root), "--json").out)["entrypoints"]] == ["app.py"]


def _course(n: int) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {"utils.py": "import numpy\n", "requirements.txt": "numpy\npandas\n"}
    for i in range(n):
        cells = [md_cell("# Lesson"), code_cell(f"import utils\nimport pandas\nx = {i}\n")]
        files[f"lessons/{i:02d}-lesson.ipynb"] = notebook(cells)
    files["lessons/99-empty.ipynb"] = json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []})
    files["lessons/98-sklearn.ipynb"] = notebook([code_cell("import sklearn\n")])
    files["lessons/50-in-r.ipynb"] = notebook([code_cell("library(dplyr)\n")], language="R")
    return files


def test_A37_check_many_notebooks_analyses_each(run_cli: RunCli, project: Project) -> None:
    root = project(_course(12))
    run = run_cli("check", str(root))
    assert run.code == FINDINGS, run.err  # one notebook imports sklearn, which is not declared
    assert len(_sb016(run.err)) == 15
    assert "lessons/50-in-r.ipynb: SB016 entrypoint candidate 'lessons/50-in-r.ipynb' skipped: its kernel language is 'r'" \
        in run.err
    assert "lessons/98-sklearn.ipynb[cell 1]:1:1: SB001 'sklearn'" in run.err
    doc: dict[str, Any] = json.loads(run_cli("analyze", str(root), "--json").out)
    assert len(doc["entrypoints"]) == 14 and doc["unused"] == []
    empty = next(e for e in doc["entrypoints"] if e["entrypoint"] == "lessons/99-empty.ipynb")
    assert empty["files"] == ["lessons/99-empty.ipynb"] and empty["required"] == []


def test_A37_lock_and_build_with_several_candidates_exit_2_listing_them(run_cli: RunCli, project: Project) -> None:
    root = project(_course(12))
    for command in ("lock", "build", "dockerfile"):
        line = error_line(run_cli(command, str(root)), USAGE, "14 entrypoint candidates and none configured",
                          "lessons/00-lesson.ipynb", "(+4 more)", '[tool.slimbuild] entrypoint = "lessons/00-lesson.ipynb"')
        assert "--entrypoint lessons/00-lesson.ipynb" in line
    assert not list(root.glob("slimbuild*.lock"))


def test_A33_pkg_func_and_A34_missing_function_from_the_cli(run_cli: RunCli, project: Project) -> None:
    root = project({"pkg/__init__.py": "from .core import run\n", "pkg/core.py": "import yaml\ndef run(): pass\n",
                    "requirements.txt": "pyyaml\n"})
    doc = json.loads(run_cli("analyze", str(root), "--json", "--entrypoint", "pkg:run").out)
    assert doc["files"] == ["pkg/__init__.py", "pkg/core.py"] and [r["name"] for r in doc["required"]] == ["pyyaml"]
    error_line(run_cli("check", str(root), "--entrypoint", "pkg:main"), ANALYSIS, "'pkg:main'", "pkg/__init__.py", "'main'")
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "1"\n[project.scripts]\np = "pkg.core:start"\n')
    error_line(run_cli("check", str(root)), ANALYSIS, "'pkg.core:start'", "pkg/core.py", "its top-level functions: run")


def test_A35_main_by_path_from_the_cli_has_no_sb009(run_cli: RunCli, project: Project) -> None:
    root = project({"src/pkg/__init__.py": "", "src/pkg/__main__.py": "from .app import go\n", "src/pkg/app.py": "import yaml\n",
                    "requirements.txt": "pyyaml\n"})
    run = run_cli("check", str(root), "--entrypoint", "src/pkg/__main__.py")
    assert run.code == OK and "SB009" not in run.err, run.err
    doc = json.loads(run_cli("analyze", str(root), "--json", "--entrypoint", "src/pkg/__main__.py").out)
    assert doc["entrypoints"][0]["name"] == "pkg"
    assert doc["files"] == ["src/pkg/__init__.py", "src/pkg/__main__.py", "src/pkg/app.py"]


def test_A36_notebook_with_raises_exception_cell_passes_check(run_cli: RunCli, project: Project) -> None:
    bad = {**code_cell("import not_installed_anywhere\nraise ValueError('on purpose')\n"),
           "metadata": {"tags": ["raises-exception"]}}
    root = project({"lesson.ipynb": notebook([code_cell("import yaml\n"), bad]), "requirements.txt": "pyyaml\n"})
    run = run_cli("check", str(root))
    assert run.code == OK, run.err
