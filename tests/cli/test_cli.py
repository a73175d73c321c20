"""CLI behaviour: entrypoint forms, config, JSON schema, errors, exit codes (J1-J4)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.constants import ANALYSIS, FINDINGS, OK, USAGE

Project = Callable[[dict[str, str | bytes]], Path]
CLI = Callable[..., Run]


def _json(run: Run) -> dict:  # type: ignore[type-arg]
    return json.loads(run.out)


def test_J3_json_schema_keys_are_pinned(project: Project, run_cli: CLI) -> None:
    root = project({"main.py": "import pandas\n", "requirements.txt": "pandas\n"})
    doc = _json(run_cli("analyze", str(root), "--json"))
    assert doc["version"] == 1 and doc["kind"] == "analysis"
    assert sorted(doc) == ["entrypoints", "files", "kind", "missing", "optional", "required", "unresolved", "unused", "version"]
    (entry,) = doc["entrypoints"]
    assert sorted(entry) == [
        "entrypoint",
        "files",
        "findings",
        "missing",
        "name",
        "never_run",
        "optional",
        "pip_hints",
        "required",
        "stdlib",
        "target_python",
        "type_checking",
        "unparsed",
        "unresolved",
        "unresolved_dynamic",
        "unused",
    ]
    assert doc["required"] == [
        {
            "declared": True,
            "imports": [{"line": 1, "module": "pandas", "path": "main.py"}],
            "name": "pandas",
            "optional": False,
            "specifier": "",
            "through": [],
            "via": ["bundled table"],
        }
    ]


def test_J3_errors_are_json_too(project: Project, run_cli: CLI) -> None:
    root = project({"main.py": "import (\n"})
    run = run_cli("analyze", str(root), "--json")
    assert run.code == ANALYSIS
    err = _json(run)
    assert err["kind"] == "error" and err["error"]["exit_code"] == ANALYSIS
    assert "main.py:1" in err["error"]["message"]


def test_J4_traceback_only_with_debug(project: Project, run_cli: CLI) -> None:
    root = project({"main.py": "import (\n"})
    plain = run_cli("analyze", str(root))
    assert "Traceback" not in plain.err and plain.err.count("\n") == 1
    debug = run_cli("--debug", "analyze", str(root))
    assert debug.code == ANALYSIS and "Traceback" in debug.err


def test_J1_ci_env_gives_plain_output_and_exit_codes(project: Project, run_cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("NO_COLOR", "1")
    root = project({"main.py": "import sklearn\n", "requirements.txt": "numpy\n"})
    run = run_cli("check", str(root))
    assert run.code == FINDINGS
    assert "\x1b[" not in run.err
    assert "main.py:1:1: SB001 'sklearn' needs distribution 'scikit-learn'" in run.err
    assert "requirements.txt:1: SB002 'numpy' is declared" in run.err


def test_check_passes_when_everything_is_declared(project: Project, run_cli: CLI) -> None:
    root = project({"main.py": "import sklearn, yaml\n", "requirements.txt": "scikit-learn\nPyYAML\n"})
    run = run_cli("check", str(root))
    assert run.code == OK, run.err
    assert "0 error(s)" in run.err


def test_J2_check_reads_the_project_not_a_file_list(project: Project, run_cli: CLI) -> None:
    # pre-commit may pass filenames; the hook is configured with pass_filenames: false and check takes a directory
    root = project({"main.py": "import helpers\n", "helpers.py": "import requests\n", "requirements.txt": "requests\n"})
    assert run_cli("check", str(root)).code == OK
    hooks = (Path(__file__).resolve().parents[2] / ".pre-commit-hooks.yaml").read_text()
    assert "id: slimbuild-check" in hooks and "pass_filenames: false" in hooks and "entry: slimbuild check" in hooks


@pytest.mark.parametrize(
    ("files", "spec", "expected_files"),
    [
        (
            {"app/__init__.py": "", "app/__main__.py": "from app import core\n", "app/core.py": "import numpy\n"},
            "app",
            ["app/__init__.py", "app/__main__.py", "app/core.py"],
        ),
        (
            {"src/tool/__init__.py": "", "src/tool/cli.py": "import numpy\ndef main(): pass\n"},
            "tool.cli:main",
            ["src/tool/__init__.py", "src/tool/cli.py"],
        ),
        ({"jobs/run.py": "import numpy\n"}, "jobs/run.py", ["jobs/run.py"]),
    ],
    ids=["package", "module-function", "script"],
)
def test_entrypoint_forms(project: Project, run_cli: CLI, files: dict[str, str], spec: str, expected_files: list[str]) -> None:
    root = project({**files, "requirements.txt": "numpy\n"})
    doc = _json(run_cli("analyze", str(root), "--entrypoint", spec, "--json"))
    assert doc["files"] == expected_files
    assert [r["name"] for r in doc["required"]] == ["numpy"]


def test_entrypoint_from_project_scripts(project: Project, run_cli: CLI) -> None:
    root = project(
        {
            "pyproject.toml": '[project]\nname="t"\nversion="1"\ndependencies=["numpy"]\n[project.scripts]\nt = "t.cli:main"\n',
            "src/t/__init__.py": "",
            "src/t/cli.py": "import numpy\ndef main(): pass\n",
        }
    )
    doc = _json(run_cli("analyze", str(root), "--json"))
    assert doc["entrypoints"][0]["entrypoint"] == "src/t/cli.py"


def test_several_entrypoints_by_name(project: Project, run_cli: CLI) -> None:
    root = project(
        {
            "slimbuild.toml": '[entrypoints]\na = "a.py"\nb = "b.py"\n',
            "a.py": "import numpy\n",
            "b.py": "import yaml\n",
            "requirements.txt": "numpy\npyyaml\n",
        }
    )
    both = _json(run_cli("analyze", str(root), "--json"))
    assert [e["name"] for e in both["entrypoints"]] == ["a", "b"]
    assert [u["name"] for u in both["entrypoints"][0]["unused"]] == ["pyyaml"]
    assert both["unused"] == []  # every declared distribution is needed by some entrypoint
    only_b = _json(run_cli("analyze", str(root), "--entrypoint", "b", "--json"))
    assert [r["name"] for r in only_b["required"]] == ["pyyaml"]


def test_missing_entrypoint_is_a_clear_error(project: Project, run_cli: CLI) -> None:
    root = project({"a.py": "", "b.py": ""})
    run = run_cli("analyze", str(root))
    assert run.code == USAGE and "no entrypoint" in run.err and "--entrypoint" in run.err
    run = run_cli("analyze", str(root), "--entrypoint", "nope.py")
    assert run.code == ANALYSIS and "nope.py" in run.err


def test_unknown_config_key_suggests_the_right_one(project: Project, run_cli: CLI) -> None:
    root = project({"main.py": "", "pyproject.toml": '[tool.slimbuild]\nentrypiont = "main.py"\n'})
    run = run_cli("analyze", str(root))
    assert run.code == USAGE
    assert "unknown key 'entrypiont'" in run.err and "did you mean 'entrypoint'" in run.err


def test_env_overrides_config_and_cli_overrides_env(project: Project, run_cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project({"main.py": "import tomllib\n", "pyproject.toml": '[tool.slimbuild]\npython = "3.10"\n'})
    assert _json(run_cli("analyze", str(root), "--json"))["unresolved"][0]["module"] == "tomllib"
    monkeypatch.setenv("SLIMBUILD_PYTHON", "3.11")
    assert _json(run_cli("analyze", str(root), "--json"))["unresolved"] == []
    assert _json(run_cli("analyze", str(root), "--json", "--target-python", "3.10"))["unresolved"][0]["module"] == "tomllib"


def test_bad_target_python_is_a_usage_error(project: Project, run_cli: CLI) -> None:
    root = project({"main.py": ""})
    run = run_cli("analyze", str(root), "--target-python", "banana")
    assert run.code == USAGE and "3.X" in run.err


def test_version_and_help(run_cli: CLI) -> None:
    assert run_cli("--version").code == OK
    assert run_cli("--help").code == OK
    assert run_cli("nonsense").code == USAGE


def test_environment_metadata_resolves_via_the_project_interpreter(project: Project, run_cli: CLI) -> None:
    # click is installed in the interpreter running the tests: its metadata answers, recorded as such
    root = project({"main.py": "import click\n", "requirements.txt": "click\n"})
    doc = _json(run_cli("analyze", str(root), "--python", sys.executable, "--json"))
    (req,) = doc["required"]
    assert req["name"] == "click" and req["via"][0].startswith("environment (")


def test_user_mapping_wins(project: Project, run_cli: CLI) -> None:
    root = project(
        {
            "main.py": "import internal_lib\nimport sklearn\n",
            "pyproject.toml": '[project]\nname="x"\nversion="1"\ndependencies=["acme-internal", "scikit-learn"]\n'
            '[tool.slimbuild.mapping]\ninternal_lib = "acme-internal"\n',
        }
    )
    doc = _json(run_cli("analyze", str(root), "--json"))
    assert [(r["name"], r["via"]) for r in doc["required"]] == [
        ("acme-internal", ["mapping"]),
        ("scikit-learn", ["bundled table"]),
    ]
