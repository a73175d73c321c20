"""Cases C26-C28: a first lock, with no environment and no lock, of a project that imports a dependency of a
declared distribution (``import six`` declaring only python-dateutil). The declared set is resolved with real
pip-compile and real wheels; what it pins through a declared distribution is SB020 and stays in the lock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimbuild.locking import lockfile
from slimbuild.locking.lockfile import lock_requires, parse_lock
from tests.conftest import Run
from tests.constants import OK, RESOLUTION

pytestmark = pytest.mark.network

CLI = Callable[..., Run]
Project = Callable[[dict[str, str | bytes]], Path]
APP = {"main.py": "from dateutil import parser\nimport six\n", "requirements.txt": "python-dateutil\n"}
BROUGHT = "main.py:2:1: SB020 'six' is imported directly, but 'six' is declared only through 'python-dateutil'"


def _compiles(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The pip-compile runs of the test, recorded (each one's requirements.in) while they really run."""
    runs: list[tuple[str, ...]] = []
    real = lockfile.run_pip_tool

    def counting(module: str, args: Any, **kwargs: Any) -> Any:
        if module == "piptools":
            runs.append(tuple((Path(kwargs["cwd"]) / "requirements.in").read_text().split()))
        return real(module, args, **kwargs)

    monkeypatch.setattr(lockfile, "run_pip_tool", counting)
    return runs


def test_C26_a_first_lock_keeps_an_import_a_declared_distribution_brings_and_check_passes_with_SB020(
    offline: Path, project: Project, run_cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(APP)
    assert not (root / ".venv").exists() and not (root / "slimbuild.lock").exists()
    runs = _compiles(monkeypatch)
    run = run_cli("lock", str(root))
    assert run.code == OK, run.err
    assert BROUGHT in run.err and "(resolved)" in run.out + run.err  # said when the lock is made
    assert runs == [("python-dateutil",)]  # the declared set resolved once: that resolution is the lock
    text = (root / "slimbuild.lock").read_text()
    lock = parse_lock(text)
    assert {d.name for d in lock.dists} == {"python-dateutil", "six"}
    assert all(d.hashes for d in lock.dists)
    assert lock_requires(text) == {"python-dateutil": ("six",)}
    check = run_cli("check", str(root))
    assert check.code == OK, check.err
    assert BROUGHT in check.err
    assert "SB001" not in check.err and "SB012" not in check.err  # the lock is fresh for the required set
    again = run_cli("lock", str(root))
    assert again.code == OK and "(resolved)" not in again.out + again.err  # fresh: nothing resolved again
    assert len(runs) == 1


def test_C27_a_constraint_on_the_brought_distribution_is_honoured_and_a_truly_undeclared_one_stays_an_error(
    offline: Path, project: Project, run_cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project({**APP, "requirements.txt": "python-dateutil\n-c constraints.txt\n", "constraints.txt": "six<1.17\n"})
    runs = _compiles(monkeypatch)
    run = run_cli("lock", str(root))
    assert run.code == OK, run.err
    assert runs == [("python-dateutil",), ("python-dateutil", "six<1.17")]  # the first pinned six 1.17.0: locked again
    assert parse_lock((root / "slimbuild.lock").read_text()).by_name()["six"].version == "1.16.0"
    assert run_cli("check", str(root)).code == OK

    other = root.parent / "other"
    other.mkdir()
    (other / "main.py").write_text("from dateutil import parser\nimport six\nimport yaml\n")
    (other / "requirements.txt").write_text("python-dateutil\n")
    refused = run_cli("lock", str(other))
    assert refused.code == RESOLUTION, refused.err
    assert "undeclared distributions: pyyaml" in refused.err and "six" not in refused.err.split("error:")[1]
    assert not (other / "slimbuild.lock").exists()


def test_C28_offline_a_first_lock_refuses_the_import_as_today_and_says_why(
    offline: Path, project: Project, run_cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.delenv("PIP_FIND_LINKS")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens: the index is unreachable
    root = project(APP)
    run = run_cli("lock", str(root))
    assert run.code == RESOLUTION, run.err
    assert "undeclared distributions: six" in run.err
    assert "nothing shows what they bring: package index unreachable: http://127.0.0.1:9/simple" in run.err
    assert "Traceback" not in run.err and not (root / "slimbuild.lock").exists()
