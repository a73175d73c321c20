"""`slimbuild dockerfile` (and so `build`, which prepares the same context) refuses secrets in the context (B19-B21).

No network and no engine: the lock stage is replaced by an empty lock of the real analysis, pip's wheel by a stub,
and the base image is pinned by digest. Everything from the analysis to the context check runs for real.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimbuild.config import Settings, load_settings
from slimbuild.locking.lockfile import Lock
from slimbuild.locking.target import Target
from slimbuild.pipeline import building
from slimbuild.pipeline.locking import LockOutcome, target_of
from tests.conftest import Run
from tests.constants import OK, POLICY

Project = Callable[[dict[str, str | bytes]], Path]
CLI = Callable[..., Run]
BASE = "python:3.11-slim@sha256:" + "c" * 64
AWS = "AKIA" + "IOSFODNN7" + "EXAMPLE"  # put together here: this file holds no token whole


@pytest.fixture(autouse=True)
def _offline_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock stage as an empty lock of the real analysis; pip's wheel as a stub file."""
    from slimbuild.pipeline.analyzing import analyze

    pip = tmp_path / "pip-25.3-py3-none-any.whl"
    pip.write_bytes(b"PK\x05\x06" + b"\x00" * 18)

    def lock(settings: Settings, requested: str = "", **_kw: Any) -> tuple[LockOutcome, ...]:
        empty = Lock((), target_of(settings), "0" * 64, "")
        path = settings.root / "slimbuild.lock"
        return tuple(LockOutcome(a, path, empty, False, (), (), ()) for a in analyze(settings, requested))

    def fetch_wheels(_lock: Lock, _target: Target, _cache: Path, **_kw: Any) -> tuple[Path, ...]:
        return (pip,)

    monkeypatch.setattr(building, "lock", lock)
    monkeypatch.setattr(building, "fetch_wheels", fetch_wheels)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")


def _files(extra_config: str = "") -> dict[str, str | bytes]:
    return {
        "pyproject.toml": (
            '[project]\nname = "p"\nversion = "0.1"\ndependencies = []\n\n'
            f'[tool.slimbuild]\nentrypoint = "main.py"\nbase-image = "{BASE}"\ninclude = ["conf"]\n{extra_config}'
        ),
        "main.py": "import helper\n\nprint(helper.VALUE)\n",
        "helper.py": "VALUE = 1\n",
        "conf/app.toml": "x = 1\n",
    }


def _app_files(root: Path) -> list[str]:
    """The project files the context of a build of ROOT carries (what `dockerfile` prepared, read directly)."""
    (prepared,) = building.prepare_build(load_settings(root))
    prefix = building.APP_PREFIX
    return sorted(f.arcname.removeprefix(prefix) for f in prepared.files if f.arcname.startswith(prefix))


def test_B19_a_token_in_a_first_party_module_is_exit_10_naming_the_file_and_the_rule(project: Project, run_cli: CLI) -> None:
    root = project({**_files(), "helper.py": f'VALUE = 1\nKEY = "{AWS}"\n'})
    run = run_cli("dockerfile", str(root))
    assert run.code == POLICY and run.out == ""
    (line,) = [ln for ln in run.err.splitlines() if ln.startswith("slimbuild: error:")]
    assert line.startswith("slimbuild: error: helper.py:2: AWS Access Key (detect-secrets AWSKeyDetector)")
    assert 'allow-secrets = ["helper.py"]' in line and AWS not in run.err


def test_B19_a_service_account_json_in_an_included_directory_is_exit_10(project: Project, run_cli: CLI) -> None:
    key = '{"type": "service_account", "project_id": "p", "private_key": "-----BEGIN ' + 'PRIVATE KEY-----\\nMII\\n"}\n'
    root = project({**_files(), "conf/gcp-sa.json": key})
    run = run_cli("dockerfile", str(root))
    assert run.code == POLICY
    assert "conf/gcp-sa.json:1: cloud service-account JSON" in run.err


def test_B20_allow_secrets_lets_the_named_file_through(project: Project, run_cli: CLI) -> None:
    root = project({**_files('allow-secrets = ["helper.py"]\n'), "helper.py": f'VALUE = 1\nKEY = "{AWS}"\n'})
    run = run_cli("dockerfile", str(root))
    assert run.code == OK, run.err
    assert _app_files(root) == ["conf/app.toml", "helper.py", "main.py"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_B21_a_link_to_env_in_an_included_directory_is_a_warning_naming_it_and_its_target(
    project: Project, run_cli: CLI
) -> None:
    root = project({**_files(), ".env": "TOKEN=never-shipped\n"})
    (root / "conf" / "settings.txt").symlink_to("../.env")
    run = run_cli("dockerfile", str(root))
    assert run.code == OK, run.err
    assert "slimbuild: warning: conf/settings.txt: symlink to the sensitive file .env: left out, not followed" in run.err
    assert _app_files(root) == ["conf/app.toml", "helper.py", "main.py"]  # the link is not followed into the image
