"""Cases A43 and A44 at the command line: the target's grammar, and the default target from requires-python."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.analysis.grammar import HOST
from tests.conftest import Run
from tests.constants import ANALYSIS, OK, USAGE
from tests.unit.analysis.test_grammar import NEWER, PEP758, PY312

Project = Callable[[dict[str, "str | bytes"]], Path]
RunCli = Callable[..., Run]


def test_A43_cli_newer_target_without_its_interpreter_fails_once(
    project: Project, run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no python3.14 anywhere
    root = project({"main.py": "import helper\nimport other\n", "helper.py": PEP758, "other.py": PEP758})
    run = run_cli("analyze", str(root), "--entrypoint", "main.py", "--target-python", "3.14")
    assert run.code == ANALYSIS, run.err
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    # one of the two files, the first parsed (parse workers may finish either first), with its line
    assert ("helper.py:3:" in lines[0]) != ("other.py:3:" in lines[0]), lines[0]
    assert "Python 3.14" in lines[0] and f"Python {HOST}" in lines[0] and "--python" in lines[0]
    assert "Python 2" not in lines[0]


def test_A43_cli_equal_target_keeps_today_s_error(project: Project, run_cli: RunCli) -> None:
    root = project({"main.py": "import helper\n", "helper.py": PEP758})
    run = run_cli("analyze", str(root), "--entrypoint", "main.py", "--target-python", HOST)
    assert run.code == ANALYSIS and "Python 2 source?" in run.err


@pytest.mark.skipif(NEWER is None, reason="no Python newer than the host on this machine")
def test_A43_cli_newer_target_parsed_by_its_interpreter(project: Project, run_cli: RunCli) -> None:
    assert NEWER is not None
    path, version = NEWER
    root = project({"main.py": "import helper\n", "helper.py": PY312})
    run = run_cli("analyze", str(root), "--entrypoint", "main.py", "--target-python", version, "--python", path, "--json")
    assert run.code == OK, run.err
    (entry,) = json.loads(run.out)["entrypoints"]
    assert entry["target_python"] == version and entry["unparsed"] == []
    assert {"json", "os"} <= set(entry["stdlib"])


def test_A44_cli_default_target_from_requires_python(project: Project, run_cli: RunCli) -> None:
    root = project({"main.py": "import json\n", "pyproject.toml": '[project]\nname = "p"\nrequires-python = ">=3.13"\n'})
    run = run_cli("analyze", str(root), "--entrypoint", "main.py", "--json")
    assert run.code == OK, run.err
    assert json.loads(run.out)["entrypoints"][0]["target_python"] == "3.13"


def test_A44_cli_requires_python_admitting_no_version_is_exit_2(project: Project, run_cli: RunCli) -> None:
    root = project({"main.py": "import json\n", "pyproject.toml": '[project]\nname = "p"\nrequires-python = "<3"\n'})
    run = run_cli("analyze", str(root), "--entrypoint", "main.py")
    assert run.code == USAGE
    assert len(run.err.strip().splitlines()) == 1 and "requires-python" in run.err


def test_A43_cli_older_target_rejects_newer_syntax(project: Project, run_cli: RunCli) -> None:
    root = project({"main.py": "import helper\n", "helper.py": "match 1:\n    case _:\n        import os\n"})
    run = run_cli("analyze", str(root), "--entrypoint", "main.py", "--target-python", "3.9")
    assert run.code == ANALYSIS and "helper.py:" in run.err and "Python 3.9" in run.err
    assert run_cli("analyze", str(root), "--entrypoint", "main.py", "--target-python", "3.10").code == OK
