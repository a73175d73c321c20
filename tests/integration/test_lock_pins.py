"""The image gets the versions the user ran: pins from .venv and other tools' locks, real pip-compile (offline index)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.locking.lockfile import parse_lock
from tests.conftest import Run
from tests.constants import FINDINGS, OK, RESOLUTION

pytestmark = pytest.mark.network

CLI = Callable[..., Run]


def _venv_with(root: Path, index: Path, *reqs: str) -> Path:
    """A real virtualenv in ROOT/.venv with REQS installed from the offline index (the host's pip installs into it)."""
    venv = root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    _install(python, index, *reqs)
    return python


def _install(python: Path, index: Path, *reqs: str) -> None:
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index", "--find-links", str(index)]
    subprocess.run([*pip, *reqs], check=True, capture_output=True)


def _proj(tmp_path: Path, requirement: str = "six") -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "main.py").write_text("import six\n")
    (root / "requirements.txt").write_text(f"{requirement}\n")
    return root


def _six(root: Path) -> str:
    return parse_lock((root / "slimbuild.lock").read_text()).by_name()["six"].version


def test_C17_lock_pins_the_version_of_the_venv_and_upgrade_does_not(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = _proj(tmp_path)
    _venv_with(root, offline, "six==1.16.0")  # the index also has 1.17.0
    run = run_cli("lock", str(root))
    assert run.code == OK, run.err
    text = (root / "slimbuild.lock").read_text()
    assert _six(root) == "1.16.0"
    assert "# pinned from .venv (importlib.metadata): six==1.16.0" in text.splitlines()
    assert run_cli("check", str(root)).code == OK  # fresh, and the environment agrees

    run = run_cli("lock", str(root), "--upgrade")
    assert run.code == OK, run.err
    assert _six(root) == "1.17.0"
    assert "# slimbuild-pins-ignored: *" in (root / "slimbuild.lock").read_text().splitlines()
    check = run_cli("check", str(root))
    assert "SB012" not in check.err  # --upgrade's lock is not stale for ignoring the pins
    assert "SB014 six: .venv has 1.16.0, slimbuild.lock pins 1.17.0" in check.err


def test_C17_a_change_of_the_venv_makes_the_lock_stale(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = _proj(tmp_path)
    python = _venv_with(root, offline, "six==1.16.0")
    assert run_cli("lock", str(root)).code == OK
    _install(python, offline, "six==1.17.0")
    check = run_cli("check", str(root))
    assert check.code == FINDINGS and "SB012 lock is stale" in check.err
    assert "SB014 six: .venv has 1.17.0, slimbuild.lock pins 1.16.0" in check.err
    assert run_cli("lock", str(root)).code == OK and _six(root) == "1.17.0"


def test_C18_poetry_lock_pin_is_used_and_recorded(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = _proj(tmp_path)
    (root / "poetry.lock").write_text('[[package]]\nname = "six"\nversion = "1.16.0"\nfiles = []\n')
    run = run_cli("lock", str(root), "--json")
    assert run.code == OK, run.err
    assert _six(root) == "1.16.0"
    assert "# pinned from poetry.lock: six==1.16.0" in (root / "slimbuild.lock").read_text()
    assert json.loads(run.out)["locks"][0]["pins"] == [{"name": "six", "version": "1.16.0", "source": "poetry.lock"}]


def test_C18_another_tools_lock_that_disagrees_is_reported_not_used(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = _proj(tmp_path, "six>=1.17")
    (root / "poetry.lock").write_text('[[package]]\nname = "six"\nversion = "1.16.0"\nfiles = []\n')
    run = run_cli("lock", str(root))
    assert run.code == OK, run.err
    assert _six(root) == "1.17.0"  # the declaration wins
    assert "poetry.lock:2: SB018 poetry.lock pins six==1.16.0" in run.err and "six>=1.17" in run.err
    assert "pinned from" not in (root / "slimbuild.lock").read_text()


def test_C19_a_pin_pip_compile_cannot_satisfy_is_exit_4_naming_it(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = _proj(tmp_path)
    (root / "uv.lock").write_text(
        'version = 1\n[[package]]\nname = "six"\nversion = "1.15.0"\nsource = { registry = "https://pypi.org/simple" }\n'
    )  # 1.15.0 is not on the index
    run = run_cli("lock", str(root))
    assert run.code == RESOLUTION
    assert "six==1.15.0 pinned from uv.lock (declared six)" in run.err and "--upgrade" in run.err
    assert not (root / "slimbuild.lock").exists()
    run = run_cli("lock", str(root), "--upgrade", "--json")
    assert run.code == OK, run.err
    assert json.loads(run.out)["locks"][0]["resolved"] is True and _six(root) == "1.17.0"
