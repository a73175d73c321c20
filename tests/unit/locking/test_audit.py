"""C12: the optional pip-audit gate (pip-audit itself is faked: its service is not reachable here)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from slimbuild.errors import ConfigError, PolicyViolation
from slimbuild.locking.audit import Vulnerability, gate, parse_audit, run_audit
from tests.constants import POLICY

REPORT = {
    "dependencies": [
        {"name": "six", "version": "1.16.0", "vulns": []},
        {"name": "pyyaml", "version": "5.3", "vulns": [{"id": "PYSEC-2020-176", "fix_versions": ["5.4"]}]},
    ]
}


def test_C12_parse_audit_report() -> None:
    assert parse_audit(REPORT) == (Vulnerability("pyyaml", "5.3", "PYSEC-2020-176", ("5.4",)),)


def test_C12_gate_fails_with_policy_exit_code_and_names_the_fix() -> None:
    with pytest.raises(PolicyViolation) as info:
        gate(parse_audit(REPORT), "slimbuild.lock")
    assert info.value.exit_code == POLICY
    assert "pyyaml==5.3 PYSEC-2020-176 (fixed in 5.4)" in info.value.message
    gate((), "slimbuild.lock")  # nothing known: passes


def _fake_pip_audit(tmp_path: Path, body: str) -> dict[str, str]:
    pkg = tmp_path / "fake" / "pip_audit"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(body)
    return {**os.environ, "PYTHONPATH": str(tmp_path / "fake")}


def test_C12_run_audit_through_a_subprocess(tmp_path: Path) -> None:
    lock = tmp_path / "slimbuild.lock"
    lock.write_text("six==1.16.0 --hash=sha256:" + "0" * 64 + "\n")
    env = _fake_pip_audit(tmp_path, f"import sys, json\nassert '--require-hashes' in sys.argv\nprint(json.dumps({REPORT!r}))\n")
    assert [v.name for v in run_audit(lock, env)] == ["pyyaml"]


def test_C12_missing_pip_audit_is_a_clear_error(tmp_path: Path) -> None:
    lock = tmp_path / "slimbuild.lock"
    lock.write_text("")
    env = {**os.environ, "PYTHONPATH": ""}
    if any((Path(p) / "pip_audit").is_dir() for p in sys.path if p):
        pytest.skip("pip-audit is installed here")
    with pytest.raises(ConfigError, match="pip-audit"):
        run_audit(lock, env)


def test_C12_report_shape_is_checked() -> None:
    assert parse_audit(json.loads('{"dependencies": []}')) == ()
