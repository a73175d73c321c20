"""check and lock with pins from the environment and other tools' locks, offline (C13-C19; SB014, SB018)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from slimbuild.locking.lockfile import ALL_PINS, inputs_digest, render_lock_text
from slimbuild.locking.target import Target
from tests.conftest import Run
from tests.constants import FINDINGS, OK, RESOLUTION, USAGE

Project = Callable[[dict[str, str | bytes]], Path]
CLI = Callable[..., Run]
H = "sha256:" + "a" * 64


def _fake_venv(root: Path, **installed: str) -> None:
    """A real virtualenv (no pip) whose site-packages holds bare .dist-info of INSTALLED (name=version)."""
    venv = root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    (site,) = venv.glob("lib/python3*/site-packages")
    for name, version in installed.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "top_level.txt").write_text(f"{name}\n")


def test_C13_check_reports_a_poetry_lock_that_disagrees_with_the_declarations(project: Project, run_cli: CLI) -> None:
    root = project(
        {
            "main.py": "import numpy\n",
            "pyproject.toml": '[project]\nname = "p"\nversion = "0"\ndependencies = ["numpy>=2"]\n',
            "poetry.lock": '[[package]]\nname = "numpy"\nversion = "1.26.4"\nfiles = []\n',
        }
    )
    run = run_cli("check", str(root))
    assert run.code == OK, run.err  # a warning: the pin is not used, the declaration wins
    assert "poetry.lock:2: SB018 poetry.lock pins numpy==1.26.4, which the declarations exclude (numpy>=2)" in run.err


def test_C14_check_fails_on_a_malformed_other_tools_lock(project: Project, run_cli: CLI) -> None:
    root = project({"main.py": "import six\n", "requirements.txt": "six\n", "uv.lock": "[[package]\nname = 'six'\n"})
    run = run_cli("check", str(root))
    assert run.code == RESOLUTION
    assert "uv.lock:1: invalid TOML" in run.err and "regenerate" in run.err


def test_C15_undecodable_pipfile_lock_is_exit_4(project: Project, run_cli: CLI) -> None:
    root = project({"main.py": "import six\n", "requirements.txt": "six\n", "Pipfile.lock": b'{"default": {"\xff": {}}}'})
    run = run_cli("check", str(root))
    assert run.code == RESOLUTION and "Pipfile.lock:1: not UTF-8" in run.err


def test_C17_check_warns_SB014_when_the_environment_and_the_lock_disagree(project: Project, run_cli: CLI) -> None:
    root = project({"main.py": "import six\n", "requirements.txt": "six\n"})
    _fake_venv(root, six="1.15.0")
    # a lock made with --upgrade (pins ignored), so it is fresh although the environment has another version
    digest = inputs_digest(["six"], Target("3.11"))
    text = render_lock_text(f"six==1.16.0 \\\n    --hash={H}\n", Target("3.11"), digest, (), (ALL_PINS,))
    (root / "slimbuild.lock").write_text(text)
    run = run_cli("check", str(root))
    assert run.code == OK, run.err
    assert "SB012" not in run.err
    assert "slimbuild.lock:6: SB014 six: .venv has 1.15.0, slimbuild.lock pins 1.16.0" in run.err


def test_C17_check_says_a_lock_without_the_environments_pins_is_stale(project: Project, run_cli: CLI) -> None:
    root = project({"main.py": "import six\n", "requirements.txt": "six\n"})
    _fake_venv(root, six="1.15.0")
    text = render_lock_text(f"six==1.16.0 \\\n    --hash={H}\n", Target("3.11"), inputs_digest(["six"], Target("3.11")))
    (root / "slimbuild.lock").write_text(text)
    run = run_cli("check", str(root))
    assert run.code == FINDINGS and "SB012 lock is stale" in run.err and "pins" in run.err


def test_C19_locked_and_upgrade_together_are_a_usage_error(project: Project, run_cli: CLI) -> None:
    root = project({"main.py": "import six\n", "requirements.txt": "six\n"})
    for command in ("build", "dockerfile"):  # lock has --upgrade but no --locked
        run = run_cli(command, str(root), "--upgrade", "--locked")
        assert run.code == USAGE, run.err
        assert "--locked refuses to re-lock and --upgrade asks to" in run.err


def test_C18_a_warm_check_sees_a_changed_lock_file_of_another_tool(project: Project, run_cli: CLI) -> None:
    root = project(
        {
            "main.py": "import numpy\n",
            "pyproject.toml": '[project]\nname = "p"\nversion = "0"\ndependencies = ["numpy>=2"]\n',
        }
    )
    assert "SB018" not in run_cli("check", str(root)).err
    (root / "uv.lock").write_text(
        'version = 1\n[[package]]\nname = "numpy"\nversion = "1.26.4"\nsource = { registry = "https://pypi.org/simple" }\n'
    )
    assert "uv.lock:3: SB018 uv.lock pins numpy==1.26.4" in run_cli("check", str(root)).err
    (root / "uv.lock").unlink()
    assert "SB018" not in run_cli("check", str(root)).err
