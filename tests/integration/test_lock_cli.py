"""`slimbuild lock` end to end: analysis -> pip-compile -> wheelhouse -> verification, offline index."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.locking.lockfile import parse_lock
from tests.conftest import Run
from tests.constants import FINDINGS, INTEGRITY, OK, RESOLUTION
from tests.integration.conftest import clean_env

pytestmark = pytest.mark.network

CLI = Callable[..., Run]



def _proj(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "main.py").write_text("from dateutil import parser\nimport yaml\n")
    (root / "scratch.py").write_text("import attr\n")  # never reached: attrs stays out of the lock
    (root / "requirements.txt").write_text("python-dateutil\nPyYAML\nattrs\n")
    return root


def test_lock_pins_only_what_the_entrypoint_needs(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = _proj(tmp_path)
    run = run_cli("lock", str(root), "--json")
    assert run.code == OK, run.err
    lock = parse_lock((root / "slimbuild.lock").read_text())
    assert [d.name for d in lock.dists] == ["python-dateutil", "pyyaml", "six"]
    assert all(d.hashes and d.version for d in lock.dists)
    doc = json.loads(run.out)
    (entry,) = doc["locks"]
    assert entry["resolved"] is True and entry["target"] == "linux/x86_64 cp311"
    assert any("manylinux" in w and "x86_64" in w for w in entry["wheels"])


def test_warm_lock_does_no_resolution(offline: Path, tmp_path: Path, run_cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _proj(tmp_path)
    assert run_cli("lock", str(root)).code == OK
    before = (root / "slimbuild.lock").read_bytes()

    def forbidden(*_a: object, **_k: object) -> None:
        raise AssertionError("pip-compile must not run when nothing changed")

    monkeypatch.setattr("slimbuild.locking.lockfile.compile_lock", forbidden)
    run = run_cli("lock", str(root), "--json")
    assert run.code == OK, run.err
    assert json.loads(run.out)["locks"][0]["resolved"] is False
    assert (root / "slimbuild.lock").read_bytes() == before


def test_check_reports_missing_then_stale_lock(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = _proj(tmp_path)
    first = run_cli("check", str(root))
    assert first.code == OK and "SB012 no lock" in first.err
    assert run_cli("lock", str(root)).code == OK
    assert "SB012" not in run_cli("check", str(root)).err
    (root / "main.py").write_text("from dateutil import parser\nimport yaml\nimport attr\n")  # attrs now needed
    stale = run_cli("check", str(root))
    assert stale.code == FINDINGS and "SB012 lock is stale" in stale.err


def test_A18_unmapped_import_is_exit_4_at_lock_time(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = _proj(tmp_path)
    (root / "main.py").write_text("import internal_lib\n")
    run = run_cli("lock", str(root))
    assert run.code == RESOLUTION
    assert "cannot map import 'internal_lib' to a distribution" in run.err and "mapping" in run.err
    assert not (root / "slimbuild.lock").exists()


def test_E15_conflict_keeps_previous_lock(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = _proj(tmp_path)
    assert run_cli("lock", str(root)).code == OK
    before = (root / "slimbuild.lock").read_bytes()
    (root / "requirements.txt").write_text("python-dateutil\nPyYAML>=99\nattrs\n")  # unsatisfiable
    run = run_cli("lock", str(root))
    assert run.code == RESOLUTION and "pyyaml" in run.err.lower()
    assert (root / "slimbuild.lock").read_bytes() == before


def test_C10_lock_for_aarch64_gets_aarch64_wheels(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = _proj(tmp_path)
    run = run_cli("lock", str(root), "--machine", "aarch64", "--json")
    assert run.code == OK, run.err
    (entry,) = json.loads(run.out)["locks"]
    assert entry["target"] == "linux/aarch64 cp311"
    yaml_wheels = [w for w in entry["wheels"] if w.lower().startswith("pyyaml")]
    assert yaml_wheels and all("aarch64" in w for w in yaml_wheels)


def test_wheel_metadata_feeds_later_analyses(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = _proj(tmp_path)
    assert run_cli("lock", str(root)).code == OK
    doc = json.loads(run_cli("analyze", str(root), "--json").out)
    vias = {r["name"]: r["via"] for r in doc["required"]}
    assert vias["pyyaml"] == ["environment (wheels)"] or vias["pyyaml"] == ["wheel metadata"]


def test_user_lock_without_hashes_is_refused(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = _proj(tmp_path)
    (root / "slimbuild.lock").write_text("python-dateutil==2.9.0.post0\npyyaml==6.0.1\n")
    run = run_cli("lock", str(root))
    assert run.code == RESOLUTION and "line 1" in run.err


def test_lock_runs_as_a_subprocess_with_the_users_pip_config_masked(offline: Path, tmp_path: Path) -> None:
    root = _proj(tmp_path)
    env = clean_env(
        PIP_FIND_LINKS=str(offline),
        PIP_RETRIES="0",
        PIP_TIMEOUT="3",
        PIP_INDEX_URL="http://user:s3cret@127.0.0.1:9/simple",
        PIP_EXTRA_INDEX_URL="http://user:s3cret@127.0.0.1:9/extra",
    )
    proc = subprocess.run([sys.executable, "-m", "slimbuild", "lock", str(root)], env=env, capture_output=True, text=True)
    assert proc.returncode == OK, proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout + (root / "slimbuild.lock").read_text()
    assert "dependency confusion" in proc.stderr


def test_C7_locked_version_and_hash_win_over_a_higher_public_version(
    offline: Path, tmp_path: Path, run_cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = tmp_path / "private"
    public = tmp_path / "public"
    private.mkdir()
    public.mkdir()
    for wheel in offline.glob("*.whl"):
        (public if wheel.name.startswith("six-1.17") else private).joinpath(wheel.name).write_bytes(wheel.read_bytes())
    monkeypatch.setenv("PIP_FIND_LINKS", str(private))
    root = _proj(tmp_path)
    assert run_cli("lock", str(root)).code == OK
    assert parse_lock((root / "slimbuild.lock").read_text()).by_name()["six"].version == "1.16.0"
    # the public index now offers six 1.17.0: the lock is not re-resolved and the wheelhouse fetches 1.16.0 by hash
    monkeypatch.setenv("PIP_FIND_LINKS", f"{private} {public}")
    monkeypatch.setenv("SLIMBUILD_CACHE", str(tmp_path / "fresh-cache"))
    run = run_cli("lock", str(root), "--json")
    assert run.code == OK, run.err
    (entry,) = json.loads(run.out)["locks"]
    assert entry["resolved"] is False
    assert any(w.startswith("six-1.16.0") for w in entry["wheels"]) and not any(w.startswith("six-1.17") for w in entry["wheels"])
    # an attacker's file with the locked name and version but other bytes is refused (exit 5), never used
    (private / "six-1.16.0-py2.py3-none-any.whl").unlink()
    (public / "six-1.16.0-py2.py3-none-any.whl").write_bytes((offline / "six-1.17.0-py2.py3-none-any.whl").read_bytes())
    monkeypatch.setenv("SLIMBUILD_CACHE", str(tmp_path / "fresh-cache-2"))
    bad = run_cli("lock", str(root))
    assert bad.code == INTEGRITY and "six" in bad.err


def test_constraints_files_narrow_required_versions(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = _proj(tmp_path)
    (root / "main.py").write_text("import six\n")
    (root / "requirements.txt").write_text("six\n")
    assert run_cli("lock", str(root)).code == OK
    assert parse_lock((root / "slimbuild.lock").read_text()).by_name()["six"].version == "1.17.0"
    (root / "requirements.txt").write_text("-c constraints.txt\nsix\n")
    (root / "constraints.txt").write_text("six<1.17\n")
    assert run_cli("lock", str(root)).code == OK  # the inputs changed: re-resolved within the constraint
    assert parse_lock((root / "slimbuild.lock").read_text()).by_name()["six"].version == "1.16.0"


def test_build_locked_refuses_a_missing_lock_before_needing_an_engine(
    offline: Path, tmp_path: Path, run_cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # no engine: --locked must fail on the lock first
    root = _proj(tmp_path)
    run = run_cli("build", str(root), "--locked")
    assert run.code == RESOLUTION and "--locked refuses to re-lock" in run.err
    assert not (root / "slimbuild.lock").exists()


@pytest.mark.parametrize(
    "line",
    [
        "python-dateutil @ https://example.invalid/python_dateutil-2.9.0-py2.py3-none-any.whl",
        "git+https://example.invalid/dateutil.git#egg=python-dateutil",
        "-e ./vendor/dateutil",
    ],
    ids=["direct-url", "vcs", "editable"],
)
def test_C8_vcs_url_editable_cannot_be_locked(offline: Path, tmp_path: Path, run_cli: CLI, line: str) -> None:
    root = _proj(tmp_path)
    (root / "requirements.txt").write_text(f"{line}\nPyYAML\n")
    run = run_cli("lock", str(root))
    assert run.code == RESOLUTION, run.err
    assert "cannot hash-lock" in run.err and "pip wheel" in run.err and "requirements.txt:1" in run.err
    assert not (root / "slimbuild.lock").exists()


def test_C11_pip_magic_targets_are_hints_never_locked(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    root = tmp_path / "nb"
    root.mkdir()
    cells = [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 1,
         "source": ["%pip install attrs\n", "!pip install idna\n", "import yaml\n"]},
    ]
    nb = {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
          "metadata": {"kernelspec": {"name": "python3", "language": "python"}, "language_info": {"name": "python"}}}
    (root / "analysis.ipynb").write_text(json.dumps(nb))
    (root / "requirements.txt").write_text("PyYAML\n")
    run = run_cli("lock", str(root), "--json")
    assert run.code == OK, run.err
    names = [d["name"] for d in json.loads(run.out)["locks"][0]["distributions"]]
    assert names == ["pyyaml"]
    assert "attrs" not in names and "idna" not in names


def test_A60_a_real_locks_via_lines_make_an_import_the_declarations_bring_a_warning(
    offline: Path, tmp_path: Path, run_cli: CLI
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "main.py").write_text("from dateutil import parser\nimport six\n")
    (root / "requirements.txt").write_text("python-dateutil\nsix\n")
    assert run_cli("lock", str(root)).code == OK  # pip-compile's lock: six "# via python-dateutil" (and -r)
    (root / "requirements.txt").write_text("python-dateutil\n")  # six is declared only through python-dateutil now
    after = run_cli("check", str(root))
    assert after.code == OK, after.err
    assert "main.py:2:1: SB020 'six' is imported directly, but 'six' is declared only through 'python-dateutil'" in after.err
    assert "SB001" not in after.err and "SB012" not in after.err  # the same required set: the lock still holds
    doc = json.loads(run_cli("analyze", str(root), "--json").out)
    assert {r["name"]: r["through"] for r in doc["required"]} == {"python-dateutil": [], "six": ["python-dateutil"]}
    relock = run_cli("lock", str(root))
    assert relock.code == OK, relock.err  # satisfied: lock no longer refuses it as undeclared
    assert [d.name for d in parse_lock((root / "slimbuild.lock").read_text()).dists] == ["python-dateutil", "six"]
