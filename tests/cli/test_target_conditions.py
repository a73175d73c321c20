"""Imports the image never runs stay out of it: under a check its Python fails (sys.version_info, sys.platform,
os.name), or in the ``if __name__ == "__main__":`` block of a module it imports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Run
from tests.constants import FINDINGS, OK

Project = Callable[[dict[str, "str | bytes"]], Path]
RunCli = Callable[..., Run]

MAIN = """\
import sys
if sys.version_info >= (3, 8):
    from importlib import metadata
else:
    import importlib_metadata as metadata
if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib
if sys.platform == "win32":
    import colorama
    import winhelpers
import yaml
"""
FILES: dict[str, str | bytes] = {
    "main.py": MAIN,
    "winhelpers.py": "import pywin32_ctypes\n",  # first-party, imported on Windows only
    "requirements.txt": "pyyaml\ntomli; python_version < '3.11'\n",
}


def _analysis(run: Run) -> dict[str, Any]:
    assert run.code == OK, (run.code, run.err)
    doc = json.loads(run.out)
    assert len(doc["entrypoints"]) == 1
    a: dict[str, Any] = doc["entrypoints"][0]
    return a


def test_imports_a_311_linux_target_never_runs_are_left_out_and_listed(run_cli: RunCli, project: Project) -> None:
    root = project(FILES)
    a = _analysis(run_cli("analyze", str(root), "--json", "--target-python", "3.11"))
    assert [r["name"] for r in a["required"]] == ["pyyaml"]
    assert a["files"] == ["main.py"]  # winhelpers.py is imported on Windows only: not followed
    assert sorted((s["module"], s["line"]) for s in a["never_run"]) == [
        ("colorama", 11), ("importlib_metadata", 5), ("tomli", 9),
    ]  # third-party only: a first-party module so imported is simply not followed
    assert a["missing"] == [] and a["unresolved"] == []
    assert "tomllib" in a["stdlib"]
    # tomli is declared for older Pythons only (its marker): not unused on a target it is not for
    assert a["unused"] == []
    run = run_cli("check", str(root), "--target-python", "3.11")
    assert run.code == OK and "SB002" not in run.err, run.err


def test_the_same_project_on_an_older_target_needs_the_backports(run_cli: RunCli, project: Project) -> None:
    root = project(FILES)
    a = _analysis(run_cli("analyze", str(root), "--json", "--target-python", "3.7"))
    assert [r["name"] for r in a["required"]] == ["importlib-metadata", "pyyaml", "tomli"]
    assert [r["name"] for r in a["missing"]] == ["importlib-metadata"]
    # importlib is stdlib on 3.7 too (only its metadata module is new): stdlib imports are not listed
    assert sorted(s["module"] for s in a["never_run"]) == ["colorama", "tomllib"]
    run = run_cli("check", str(root), "--target-python", "3.7")
    assert run.code == FINDINGS
    assert "main.py:5:5: SB001 'importlib_metadata' needs distribution 'importlib-metadata'" in run.err


def test_text_report_names_what_the_target_never_runs(run_cli: RunCli, project: Project) -> None:
    root = project(FILES)
    run = run_cli("analyze", str(root), "--target-python", "3.11")
    assert run.code == OK, run.err
    line = next(ln for ln in run.out.splitlines() if "never runs" in ln)
    assert line.strip() == (
        "imports the image never runs (Python 3.11 on Linux), left out (3): colorama, importlib_metadata, tomli"
    )


DEMO = """\
def plot(frame):
    return frame

if __name__ == "__main__":
    import matplotlib.pyplot as plt
    import tools_demo
    plt.plot([1, 2])
"""


def test_the_main_block_of_an_imported_module_never_runs(run_cli: RunCli, project: Project) -> None:
    root = project({
        "main.py": "import helpers\nif __name__ == '__main__':\n    import yaml\n",
        "helpers.py": DEMO,
        "tools_demo.py": "import seaborn\n",
        "requirements.txt": "pyyaml\n",
    })
    a = _analysis(run_cli("analyze", str(root), "--json"))
    assert [r["name"] for r in a["required"]] == ["pyyaml"]  # the entry file's own __main__ block runs
    assert a["files"] == ["helpers.py", "main.py"]  # tools_demo.py: imported only by helpers' demo block
    assert [(s["module"], s["path"], s["line"]) for s in a["never_run"]] == [("matplotlib.pyplot", "helpers.py", 5)]
    assert run_cli("check", str(root)).code == OK


def test_the_main_block_of_an_entry_called_as_module_function_never_runs(run_cli: RunCli, project: Project) -> None:
    # the image runs `from main import run; run()`: main.py is imported, so its __main__ block does not run
    root = project({
        "main.py": "def run():\n    return 0\n\nif __name__ == '__main__':\n    import yaml\n",
        "pyproject.toml": '[project]\nname = "x"\nversion = "0"\ndependencies = []\n',
    })
    a = _analysis(run_cli("analyze", str(root), "--json", "--entrypoint", "main.py:run"))
    assert a["required"] == [] and [s["module"] for s in a["never_run"]] == ["yaml"]
    b = _analysis(run_cli("analyze", str(root), "--json", "--entrypoint", "main.py"))
    assert [r["name"] for r in b["missing"]] == ["pyyaml"]


def test_an_undecidable_check_keeps_the_import(run_cli: RunCli, project: Project) -> None:
    root = project({
        "main.py": "import sys\nif sys.version_info >= (3, 11, 4) or FORCE:\n    import yaml\n",
        "requirements.txt": "pyyaml\n",
    })
    a = _analysis(run_cli("analyze", str(root), "--json", "--target-python", "3.11"))
    assert [r["name"] for r in a["required"]] == ["pyyaml"] and a["never_run"] == []


def test_a_backport_declared_without_a_marker_is_unused_and_the_warning_says_why(run_cli: RunCli, project: Project) -> None:
    root = project({**FILES, "requirements.txt": "pyyaml\ntomli\n"})
    run = run_cli("check", str(root), "--target-python", "3.11")
    assert run.code == OK
    assert (
        "requirements.txt:2: SB002 'tomli' is imported only in code the image never runs (main.py:9:5); "
        "it stays out of the image"
    ) in run.err


def test_an_import_run_on_the_target_of_a_distribution_declared_for_other_targets_is_missing(
    run_cli: RunCli, project: Project
) -> None:
    root = project({"main.py": "import tomli\n", "requirements.txt": "tomli; python_version < '3.11'\n"})
    run = run_cli("check", str(root), "--target-python", "3.12")
    assert run.code == FINDINGS
    assert (
        "main.py:1:1: SB001 'tomli' needs distribution 'tomli', which the project declares only where "
        "'python_version < \"3.11\"' holds (requirements.txt), not on Python 3.12 on Linux; widen the marker or guard the import"
    ) in run.err
    ok = run_cli("check", str(root), "--target-python", "3.10")
    assert ok.code == OK, ok.err
