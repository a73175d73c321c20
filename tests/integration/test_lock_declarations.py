"""Versions declared in Poetry's and conda's syntax reach the real lock (pip-compile, offline local index)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.locking.lockfile import parse_lock
from tests.conftest import Run
from tests.constants import OK

pytestmark = pytest.mark.network

CLI = Callable[..., Run]



@pytest.mark.parametrize(
    "files",
    [
        {"pyproject.toml": '[tool.poetry]\nname = "x"\nversion = "0.1.0"\n\n[tool.poetry.dependencies]\n'
                           'python = "^3.10"\nsix = "~1.16"\npython-dateutil = "^2.9"\n'},
        {"environment.yml": "dependencies:\n  - python=3.11\n  - six=1.16\n  - pip:\n      - python-dateutil>=2.9\n"},
        {"Pipfile": '[packages]\nsix = "<1.17"\npython-dateutil = "*"\n'},
    ],
    ids=["poetry-tilde", "conda-fuzzy", "pipfile"],
)
def test_declared_versions_from_other_tools_bound_the_lock(
    offline: Path, tmp_path: Path, run_cli: CLI, files: dict[str, str]
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "main.py").write_text("import six\nfrom dateutil import parser\n")
    for name, text in files.items():
        (root / name).write_text(text)
    run = run_cli("lock", str(root))
    assert run.code == OK, run.err
    pins = {d.name: d.version for d in parse_lock((root / "slimbuild.lock").read_text()).dists}
    assert pins["six"] == "1.16.0"  # 1.17.0 is in the index: the declared range kept it out
    assert pins["python-dateutil"] == "2.9.0.post0"


def test_a24_stage_constraints_beside_the_entrypoint_bound_the_lock(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    """A stage's requirements.txt `-c` file narrows its lock, as its declarations do (nearest the entrypoint)."""
    root = tmp_path / "proj"
    (root / "stages" / "train").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.slimbuild]\nentrypoint = "stages/train/run.py"\n')
    (root / "stages" / "train" / "run.py").write_text("import six\n")
    (root / "stages" / "train" / "requirements.txt").write_text("six\n-c pins.txt\n")
    (root / "stages" / "train" / "pins.txt").write_text("six<1.17\n")
    run = run_cli("lock", str(root))
    assert run.code == OK, run.err
    pins = {d.name: d.version for d in parse_lock((root / "slimbuild.lock").read_text()).dists}
    assert pins["six"] == "1.16.0"  # 1.17.0 is in the index: the stage's constraint kept it out
    check = run_cli("check", str(root))
    assert "SB012" not in check.out + check.err, check.out  # check computes the same inputs: the lock is fresh
