"""Issue 13's silently accepted inputs and exit-70s, through the CLI: A51-A56, J5-J7 (tests/CASES.md).

Every error case asserts the general rules: the documented exit code, one line on stderr naming the cause
(``slimbuild: error: ...``), and no traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimbuild.cli import main
from tests.conftest import Run
from tests.constants import ANALYSIS, FINDINGS, INTERNAL, OK, USAGE

Project = Callable[[dict[str, "str | bytes"]], Path]
RunCli = Callable[..., Run]


def _error_line(run: Run, code: int, *needles: str) -> str:
    assert run.code == code, (run.code, run.out, run.err)
    assert "Traceback" not in run.err + run.out
    lines = [ln for ln in run.err.splitlines() if ln.strip()]
    assert len(lines) == 1, run.err
    assert lines[0].startswith("slimbuild: error: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _analysis(run: Run) -> dict[str, Any]:
    assert run.code == OK, (run.code, run.out, run.err)
    doc = json.loads(run.out)
    assert len(doc["entrypoints"]) == 1
    return dict(doc["entrypoints"][0])


def _cell(src: object) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src}


def _nb(cells: object, **extra: Any) -> str:
    doc = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"language_info": {"name": "python"}}, "cells": cells}
    doc.update(extra)
    return json.dumps(doc)


def _findings(a: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [f for f in a["findings"] if f["code"] == code]


# ---------------------------------------------------------------- A51 aliased dynamic imports


def test_A51_aliased_dynamic_imports_are_required(run_cli: RunCli, project: Project) -> None:
    root = project({
        "main.py": 'import importlib as il\nfrom importlib import import_module as im\nil.import_module("toml")\nim("attr")\n',
        "requirements.txt": "toml\nattrs\n",
    })
    a = _analysis(run_cli("analyze", str(root), "--json", "--entrypoint", "main.py"))
    assert sorted(r["name"] for r in a["required"]) == ["attrs", "toml"]
    assert a["unused"] == []


# ---------------------------------------------------------------- A52 %run in a notebook


def test_A52_run_script_is_traced_and_shipped(run_cli: RunCli, project: Project) -> None:
    root = project({
        "nbs/nb.ipynb": _nb([_cell("%run lib/helper.py --fast\n"), _cell("print(DATA)\n")]),
        "nbs/lib/helper.py": "import yaml\nimport util\nDATA = 1\nif __name__ == '__main__':\n    import toml\n",
        "nbs/lib/util.py": "import attr\n",
        "requirements.txt": "pyyaml\ntoml\nattrs\n",
    })
    a = _analysis(run_cli("analyze", str(root), "--json", "--entrypoint", "nbs/nb.ipynb"))
    assert sorted(r["name"] for r in a["required"]) == ["attrs", "pyyaml", "toml"]
    assert {"nbs/lib/helper.py", "nbs/lib/util.py"} <= set(a["files"])
    assert a["unused"] == []


def test_A52_run_that_cannot_be_followed_names_the_cell(run_cli: RunCli, project: Project) -> None:
    root = project({
        "nb.ipynb": _nb([
            _cell("import os\n"), _cell("%run missing.py\n"), _cell("%run $script\n"), _cell("%run ../outside.py\n"),
        ]),
    })
    a = _analysis(run_cli("analyze", str(root), "--json", "--entrypoint", "nb.ipynb"))
    got = sorted((f["cell"], f["code"]) for f in a["findings"] if f["code"] in {"SB004", "SB011"})
    assert got == [(2, "SB011"), (3, "SB004"), (4, "SB011")]
    text = run_cli("analyze", str(root), "--entrypoint", "nb.ipynb")
    assert "nb.ipynb[cell 2]:1:1: SB011 '%run missing.py'" in text.err
    assert "nb.ipynb[cell 4]:1:1: SB011 '%run ../outside.py' runs a script outside the project" in text.err


# ---------------------------------------------------------------- A53 malformed notebook cells


def test_A53_cell_source_of_non_strings_is_sb008(run_cli: RunCli, project: Project) -> None:
    cells = [_cell("import yaml\n"), _cell(["import toml\n", 3]), _cell({"a": 1}), 7]
    root = project({"nb.ipynb": _nb(cells), "requirements.txt": "pyyaml\ntoml\n"})
    a = _analysis(run_cli("analyze", str(root), "--json", "--entrypoint", "nb.ipynb"))
    assert [r["name"] for r in a["required"]] == ["pyyaml"]
    assert [(f["cell"], f["severity"]) for f in _findings(a, "SB008")] == [(2, "error"), (3, "error"), (4, "error")]
    check = run_cli("check", str(root), "--entrypoint", "nb.ipynb")
    assert check.code == FINDINGS and "nb.ipynb[cell 2]: SB008 cell skipped: 'source' is a list holding non-strings" in check.err
    only = project({"only.ipynb": _nb([_cell([1, 2])])})  # the one code cell is broken: still reported
    assert _findings(_analysis(run_cli("analyze", str(only), "--json", "--entrypoint", "only.ipynb")), "SB008")


@pytest.mark.parametrize("cells", [{"0": {"cell_type": "code", "source": "import yaml"}}, "import yaml", 3])
def test_A53_cells_not_a_list_is_exit_3(run_cli: RunCli, project: Project, cells: object) -> None:
    root = project({"nb.ipynb": _nb(cells)})
    _error_line(run_cli("analyze", str(root), "--entrypoint", "nb.ipynb"), ANALYSIS, "nb.ipynb", "'cells' is", "not a list")


# ---------------------------------------------------------------- A54 nbformat 3


@pytest.mark.parametrize("worksheets", [1, "x", {"cells": []}, [1], [{"cells": {}}], None])
def test_A54_unreadable_worksheets_is_one_line_exit_3(run_cli: RunCli, project: Project, worksheets: object) -> None:
    doc = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"language": "python"}, "worksheets": worksheets}
    root = project({"nb.ipynb": json.dumps(doc)})
    line = _error_line(run_cli("analyze", str(root), "--entrypoint", "nb.ipynb"), ANALYSIS, "nb.ipynb", "nbformat 3")
    assert "jupyter nbconvert --to notebook --nbformat 4" in line


def test_A54_worksheets_without_nbformat_read_as_nbformat_3(run_cli: RunCli, project: Project) -> None:
    cells = [{"cell_type": "code", "language": "python", "input": "import yaml\n"}]
    root = project({"nb.ipynb": json.dumps({"metadata": {"language": "python"}, "worksheets": [{"cells": cells}]})})
    a = _analysis(run_cli("analyze", str(root), "--json", "--entrypoint", "nb.ipynb"))
    assert [r["name"] for r in a["required"]] == ["pyyaml"]


# ---------------------------------------------------------------- A55 a string where a list belongs

_PROJECT = '[project]\nname = "x"\nversion = "0"\n'


@pytest.mark.parametrize(
    ("toml", "needles"),
    [
        ('dependencies = "pyyaml"\n', ("pyproject.toml:4:", "[project] dependencies", "not a string", '["pyyaml"]')),
        ('dependencies = ["pyyaml", 3]\n', ("pyproject.toml:4:", "not a list holding non-strings")),
        ('dependencies = []\n[project.optional-dependencies]\nml = "torch"\n[tool.slimbuild]\noptional-groups = ["ml"]\n',
         ("pyproject.toml:6:", "[project.optional-dependencies] ml", "not a string")),
        ('dependencies = []\n[tool.slimbuild]\nsmoke = "python -c \'print(1)\'"\n',
         ("pyproject.toml:6:", "'smoke'", "not a string", '["python", "-c", "print(1)"]')),
        ('dependencies = []\n[tool.slimbuild]\nentrypoint = "main.py"\nkeep = "pyarrow"\n', ("pyproject.toml:7:", "'keep'")),
    ],
)
def test_A55_string_for_a_list_is_exit_2_at_its_line(
    run_cli: RunCli, project: Project, toml: str, needles: tuple[str, ...]
) -> None:
    root = project({"main.py": "import yaml\n", "pyproject.toml": _PROJECT + toml})
    _error_line(run_cli("analyze", str(root), "--entrypoint", "main.py"), USAGE, *needles)


def test_A55_environment_string_is_still_one_item(
    run_cli: RunCli, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project({
        "main.py": "import yaml\n", "pyproject.toml": _PROJECT + 'dependencies = ["pyyaml", "six"]\n',
    })
    monkeypatch.setenv("SLIMBUILD_KEEP", "six")  # an environment variable holds one string: one item
    a = _analysis(run_cli("analyze", str(root), "--json", "--entrypoint", "main.py"))
    assert sorted(r["name"] for r in a["required"]) == ["pyyaml", "six"]
    monkeypatch.delenv("SLIMBUILD_KEEP")
    (root / "pyproject.toml").write_text(_PROJECT + 'dependencies = "pyyaml"\n')
    _error_line(run_cli("check", str(root), "--entrypoint", "main.py"), USAGE, "pyproject.toml:4:")


# ---------------------------------------------------------------- J5 exit 70 where a one-line error belongs


@pytest.mark.parametrize("command", ["analyze", "check", "lock", "dockerfile"])
def test_J5_cache_at_a_file_is_exit_2_naming_it(
    run_cli: RunCli, project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: str
) -> None:
    root = project({"main.py": "import os\n"})
    cache = tmp_path / "cachefile"
    cache.write_text("not a directory")
    for value in (cache, cache / "below"):
        monkeypatch.setenv("SLIMBUILD_CACHE", str(value))
        _error_line(run_cli(command, str(root), "--entrypoint", "main.py"), USAGE, str(value), "SLIMBUILD_CACHE")


def test_J5_pyproject_not_utf8_is_exit_2_naming_line_and_offset(run_cli: RunCli, project: Project) -> None:
    data = b'[project]\nname = "x"\n# caf\xe9\n'
    root = project({"main.py": "import os\n", "pyproject.toml": data})
    line = _error_line(run_cli("check", str(root)), USAGE, "pyproject.toml:3:", "not UTF-8", f"offset {data.index(0xE9)}")
    assert "invalid TOML" not in line


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_J5_pyproject_of_any_bytes_never_exit_70(project: Project, data: bytes) -> None:
    """Any bytes: never exit 70; bytes that are not UTF-8 are named by their offset, not called invalid TOML."""
    head = b'[project]\nname = "x"\n'
    root = project({"main.py": "import os\n", "pyproject.toml": head + data})
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["check", str(root), "--entrypoint", "main.py"])
    assert code != INTERNAL and "Traceback" not in err.getvalue(), err.getvalue()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        assert code == USAGE and f"not UTF-8: cannot decode byte 0x{data[exc.start]:02x} at offset {len(head) + exc.start}" in (
            err.getvalue()
        )


# ---------------------------------------------------------------- J6 click usage errors, one line

USAGE_CASES = [
    ("analyze", ["analyze", "--bogus"]),
    ("check", ["check", "--entrypoint"]),
    ("check", ["check", "a", "b"]),
    ("lock", ["lock", "--machine", "arm"]),
    ("lock", ["lock", "--upgrade-package"]),
    ("dockerfile", ["dockerfile", "--pyc", "x", "y"]),
    ("build", ["build", "-t"]),
    ("build", ["build", "--nope"]),
    ("inspect", ["inspect"]),
    ("diff", ["diff", "only-one"]),
    ("", ["nosuch"]),
    ("", ["--bogus"]),
]


@pytest.mark.parametrize(("command", "args"), USAGE_CASES)
def test_J6_usage_errors_are_one_line_exit_2(run_cli: RunCli, command: str, args: list[str]) -> None:
    run = run_cli(*args)
    line = _error_line(run, USAGE)
    assert f"see 'slimbuild {command} --help'".replace("slimbuild  ", "slimbuild ") in line
    assert "Usage:" not in run.err and run.out == ""


# ---------------------------------------------------------------- J7 usage errors in --json mode


@pytest.mark.parametrize(
    "args", [["analyze", "--json", "--bogus"], ["check", "--json", "--entrypoint"], ["inspect", "--json"],
             ["lock", "--json", "--machine", "arm"]]
)
def test_J7_usage_error_with_json_is_an_error_object(run_cli: RunCli, args: list[str]) -> None:
    run = run_cli(*args)
    _error_line(run, USAGE, f"see 'slimbuild {args[0]} --help'")
    doc = json.loads(run.out)
    assert doc["kind"] == "error"
    assert doc["error"]["kind"] == "usage" and doc["error"]["exit_code"] == USAGE
    assert doc["error"]["hint"] == f"see 'slimbuild {args[0]} --help'"
