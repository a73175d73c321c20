"""Requirement files as users write them, through the CLI and before pip runs: `-e .`, other local projects,
conflicting declarations (C20, C22). The real-pip side is tests/integration/test_requirements_options.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.constants import OK, RESOLUTION, USAGE

Project = Callable[[dict[str, str | bytes]], Path]
CLI = Callable[..., Run]
PYPROJECT = '[project]\nname = "proj"\nversion = "0.1"\ndependencies = ["six<1.17"]\n'


@pytest.fixture
def no_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip-compile must not run: what these tests check is decided before it."""
    from slimbuild.locking import lockfile

    def refuse(*_a: object, **_kw: object) -> None:
        raise AssertionError("pip-compile ran")

    monkeypatch.setattr(lockfile, "compile_lock", refuse)


def test_C20_editable_dot_is_this_project_in_analyze_and_check(project: Project, run_cli: CLI) -> None:
    root = project({"requirements.txt": "-e .\n", "pyproject.toml": PYPROJECT, "main.py": "import six\nimport proj\n",
                    "proj/__init__.py": ""})
    run = run_cli("analyze", str(root), "--json")
    assert run.code == OK, run.err
    (entry,) = json.loads(run.out)["entrypoints"]
    assert [r["name"] for r in entry["required"]] == ["six"] and "proj/__init__.py" in entry["files"]
    assert "editable" not in run.out and entry["missing"] == []
    check = run_cli("check", str(root))
    assert "SB002" not in check.out and "SB001" not in check.out, check.out
    from slimbuild.errors import ResolutionError
    from slimbuild.locking import lockfile

    def stub(requirements: list[str], *_a: object, **_kw: object) -> None:
        raise ResolutionError(f"stub pip-compile got {requirements}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lockfile, "compile_lock", stub)
        locked = run_cli("lock", str(root))
    assert "stub pip-compile got ('six<1.17',)" in locked.err  # `-e .` stopped nothing, and never reached pip


def test_C20_another_local_project_is_refused_naming_its_line(project: Project, run_cli: CLI, no_pip: None) -> None:
    root = project({"requirements.txt": "six\n-e ../shared-lib\n", "main.py": "import six\n"})
    run = run_cli("lock", str(root))
    assert run.code == RESOLUTION
    assert "requirements.txt:2: ../shared-lib" in run.err and "local project other than this one" in run.err
    assert "pip wheel" in run.err and not (root / "slimbuild.lock").exists()


def test_C20_editable_dot_without_a_project_is_a_usage_error(project: Project, run_cli: CLI) -> None:
    root = project({"requirements.txt": "-e .\n", "main.py": "print(1)\n"})
    run = run_cli("analyze", str(root))
    assert run.code == USAGE and "requirements.txt:1: '.' names this project" in run.err


def test_C22_conflicting_declaration_files_name_both_lines(project: Project, run_cli: CLI, no_pip: None) -> None:
    root = project({"requirements.txt": "# pins\nsix>=1.17\n", "pyproject.toml": PYPROJECT, "main.py": "import six\n"})
    run = run_cli("lock", str(root))
    assert run.code == RESOLUTION, run.err
    assert "the declarations of six conflict" in run.err
    assert "pyproject.toml:4 says six<1.17" in run.err and "requirements.txt:2 says six>=1.17" in run.err
    assert "no wheel" not in run.err and "--allow-sdist" not in run.err
    assert not (root / "slimbuild.lock").exists()
