"""``venv-layers`` (issue 17): a value that is not one of the choices is a one-line usage error, before any work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.constants import USAGE


@pytest.mark.parametrize("command", ["analyze", "lock", "build"])
@pytest.mark.parametrize("value", ["per-dist", "Distribution"])  # the choices are case-sensitive, like every other
def test_M4_a_bad_venv_layers_value_is_exit_2_naming_it(
    project: Callable[[dict[str, str]], Path], run_cli: Callable[..., Run], command: str, value: str
) -> None:
    root = project({"main.py": "", "pyproject.toml": f'[tool.slimbuild]\nentrypoint = "main.py"\nvenv-layers = "{value}"\n'})
    run = run_cli(command, str(root))
    assert run.code == USAGE, run.err
    lines = [line for line in run.err.splitlines() if "venv-layers" in line]
    assert lines and f"venv-layers = '{value}' is not one of single, distribution" in lines[0], run.err
    assert "Traceback" not in run.err
