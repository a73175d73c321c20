"""Case A62: 3.14-only code analysed with ``--target-python 3.14`` through a real Python 3.14 interpreter.

This machine (Debian bookworm) has no python3.14; ``scripts/python314.sh`` installs Debian sid's python3.14-minimal
with debootstrap once (cached under the test cache) and prints a wrapper that runs it. Without root or debootstrap
the test skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.constants import ANALYSIS, OK

REPO = Path(__file__).resolve().parents[2]
Project = Callable[[dict[str, str | bytes]], Path]
CLI = Callable[..., Run]
PEP758 = "try:\n    import tomllib\nexcept ValueError, TypeError:\n    pass\n"  # a SyntaxError before 3.14


@pytest.fixture(scope="module")
def python314() -> str:
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "python314.sh")], capture_output=True, text=True, timeout=1800, check=False
    )
    if proc.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"scripts/python314.sh failed: {proc.stderr.strip()}")
        pytest.skip(f"no Python 3.14 here: {proc.stderr.strip()}")
    return proc.stdout.strip().splitlines()[-1]


def test_A62_pep758_code_is_parsed_by_a_real_python_314(
    python314: str, project: Project, run_cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(
        {
            "main.py": "import helpers\n" + PEP758,
            "helpers.py": "import yaml\n" + PEP758.replace("tomllib", "json"),
            "requirements.txt": "pyyaml\n",
        }
    )
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no python3.14 on PATH: only --python serves the target
    host_only = run_cli("analyze", str(root), "--entrypoint", "main.py", "--target-python", "3.14")
    assert host_only.code == ANALYSIS and "main.py:4:8" in host_only.err and "no Python 3.14 interpreter" in host_only.err
    args = ("--entrypoint", "main.py", "--target-python", "3.14", "--python", python314)
    run = run_cli("analyze", str(root), *args, "--json")
    assert run.code == OK, run.err
    doc = json.loads(run.out)
    assert doc["files"] == ["helpers.py", "main.py"]
    assert [r["name"] for r in doc["required"]] == ["pyyaml"]
    assert {r["module"] for r in doc["entrypoints"][0]["never_run"]} == set()
    assert "SB005" not in run.out  # parsed by the grammar, not by the token-scan fallback
    check = run_cli("check", str(root), *args)
    assert check.code == OK, check.err
