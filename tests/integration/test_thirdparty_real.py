"""Third-party evidence with real wheels: pandas keeps openpyxl; `lock` locks what its fetched wheels import."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slimbuild.config import load_settings
from slimbuild.pipeline.analyzing import analyze
from slimbuild.pipeline.locking import lock
from slimbuild.report import analysis_dict
from tests.integration.conftest import clean_env
from tests.unit.analysis.test_thirdparty import make_wheel, stock

pytestmark = pytest.mark.network


@pytest.fixture(scope="session")
def pandas_wheels() -> list[Path]:
    """pandas and openpyxl wheels (no dependencies: only their sources are read), downloaded once."""
    dest = Path(os.environ.get("SLIMBUILD_TEST_WHEELS", "~/.cache/slimbuild-test-wheels")).expanduser() / "thirdparty"
    stamp = dest / ".complete-v1"
    if not stamp.exists():
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--dest", str(dest),
                "--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp",
                "--abi", "cp311", "pandas==2.2.3", "openpyxl==3.1.5",
            ],
            env=clean_env(),
            check=True,
            capture_output=True,
        )
        stamp.write_text("ok\n")
    return sorted(dest.glob("*.whl"))


def _project(root: Path, requirements: str, main: str) -> None:
    root.mkdir()
    (root / "main.py").write_text(main)
    (root / "requirements.txt").write_text(requirements)
    (root / "pyproject.toml").write_text('[tool.slimbuild.entrypoints]\nmain = "main.py"\n')


def test_pandas_read_excel_keeps_declared_openpyxl(pandas_wheels: list[Path], tmp_path: Path) -> None:
    root, cache = tmp_path / "proj", tmp_path / "cache"
    _project(root, "pandas\nopenpyxl\n", 'import pandas as pd\n\npd.read_excel("in.xlsx")\n')
    (root / "slimbuild.lock").write_text("\n".join(stock(cache, w) for w in pandas_wheels) + "\n")
    (a,) = analyze(load_settings(root, {}), env={"SLIMBUILD_CACHE": str(cache)})
    d = analysis_dict(a)
    required = {r["name"]: r for r in d["required"]}
    assert required["openpyxl"]["via"] == ["imported by pandas.io.excel._openpyxl"]
    assert [f for f in d["findings"] if f["code"] == "SB017" and "'openpyxl'" in f["message"]]
    assert not [f for f in d["findings"] if f["code"] in ("SB002", "SB010")]  # kept: no "add it to keep" hint


def test_lock_locks_what_its_fetched_wheels_import(tmp_path: Path) -> None:
    index = tmp_path / "index"
    make_wheel(index, "alib", {"alib/__init__.py": "def read():\n    import_optional_dependency('blib')\n"})
    make_wheel(index, "blib", {"blib/__init__.py": ""})
    root, cache = tmp_path / "proj", tmp_path / "cache"
    _project(root, "alib\nblib\n", "import alib\n")
    env = clean_env(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(index), SLIMBUILD_CACHE=str(cache))
    (outcome,) = lock(load_settings(root, {}, env), env=env)  # the analysis saw no wheels: alib, then blib
    assert [d.name for d in outcome.lock.dists] == ["alib", "blib"]
    assert {r.name for r in outcome.analysis.required} == {"alib", "blib"}
    assert {p.name.split("-")[0] for p in outcome.wheels} == {"alib", "blib"}
    (again,) = lock(load_settings(root, {}, env), env=env)
    assert not again.resolved  # stable: the second lock is fresh
    digest = hashlib.sha256((root / "slimbuild.lock").read_bytes()).hexdigest()
    assert digest == hashlib.sha256(again.lock.text.encode()).hexdigest()
