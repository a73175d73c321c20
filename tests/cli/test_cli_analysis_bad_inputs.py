"""RELIABILITY.md group A (analysis-stage bad inputs), through the CLI.

Each test is named after its case id. Every error case also asserts the general
rules: the documented exit code, one line on stderr naming the cause, and no
traceback.
"""

from __future__ import annotations

import importlib.util
import json
import marshal
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import slimbuild
from slimbuild.analysis import mapping
from tests.conftest import Run
from tests.constants import ANALYSIS, FINDINGS, OK, RESOLUTION, USAGE

REPO = Path(slimbuild.__file__).resolve().parents[1]
Project = Callable[[dict[str, "str | bytes"]], Path]
RunCli = Callable[..., Run]

# ---------------------------------------------------------------- helpers


def error_line(run: Run, code: int, *needles: str) -> str:
    """Assert a clean failure: the exit code, one stderr line naming the cause, no traceback."""
    assert run.code == code, (run.code, run.out, run.err)
    assert "Traceback" not in run.err and "Traceback" not in run.out
    lines = [ln for ln in run.err.splitlines() if ln.strip()]
    assert len(lines) == 1, run.err
    line = lines[0]
    assert line.startswith("slimbuild: error: "), line
    for n in needles:
        assert n in line, (n, line)
    return line


def ok_json(run: Run) -> dict[str, Any]:
    """Assert a successful ``--json`` run and return its document."""
    assert run.code == OK, (run.code, run.out, run.err)
    assert "Traceback" not in run.err
    doc = json.loads(run.out)
    assert doc["kind"] == "analysis"
    return doc


def entry(doc: dict[str, Any]) -> dict[str, Any]:
    """The one entrypoint's analysis of a document."""
    assert len(doc["entrypoints"]) == 1
    return doc["entrypoints"][0]


def names(reqs: list[dict[str, Any]]) -> list[str]:
    return [r["name"] for r in reqs]


def modules(sites: list[dict[str, Any]]) -> list[str]:
    return sorted(s["module"] for s in sites)


def codes(doc_entry: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [f for f in doc_entry["findings"] if f["code"] == code]


def code_cell(src: str | list[str]) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src}


def md_cell(src: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": src}


def notebook(cells: list[dict[str, Any]], *, language: str | None = "python", kernelspec: dict[str, str] | None = None) -> str:
    meta: dict[str, Any] = {}
    if language is not None:
        meta["language_info"] = {"name": language}
    if kernelspec is not None:
        meta["kernelspec"] = kernelspec
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": meta, "cells": cells}, indent=1)


# ---------------------------------------------------------------- A1 syntax errors


def test_A1_syntax_error_exit_3_with_file_line_col(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import os\nx = (\n"})
    error_line(run_cli("analyze", str(root)), ANALYSIS, "main.py:2:5", "syntax error")


def test_A1_syntax_error_in_imported_module_names_that_file(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import helper\n", "helper.py": "import os\n\ndef f(:\n    pass\n"})
    line = error_line(run_cli("check", str(root)), ANALYSIS, "helper.py:3:")
    assert re.search(r"helper\.py:3:\d+: syntax error", line), line


def test_A1_syntax_error_json_error_object(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import os\nx = (\n"})
    run = run_cli("analyze", str(root), "--json")
    error_line(run, ANALYSIS, "main.py:2:5")
    doc = json.loads(run.out)
    assert doc["kind"] == "error"
    assert doc["error"]["exit_code"] == ANALYSIS
    assert doc["error"]["message"].startswith("main.py:2:5")
    assert "--allow-unparseable" in doc["error"]["hint"]


def test_A1_allow_unparseable_warns_exit_0_lists_unparsed(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import helper\n", "helper.py": "import yaml\nx = (\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json", "--allow-unparseable")))
    assert a["unparsed"] == ["helper.py"]
    sb005 = codes(a, "SB005")
    assert [f["path"] for f in sb005] == ["helper.py"]
    assert sb005[0]["severity"] == "warning"
    # imports before the error are still found by the token scan
    assert names(a["required"]) == ["pyyaml"]


def test_A1_allow_unparseable_text_mode_prints_warning(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import os\nx = (\n"})
    run = run_cli("analyze", str(root), "--allow-unparseable")
    assert run.code == OK
    assert "Traceback" not in run.err
    assert "main.py: SB005 could not parse" in run.err
    assert "unparsed, token scan only (1): main.py" in run.out


def test_A1_allow_unparseable_from_config(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "x = (\n", "pyproject.toml": "[tool.slimbuild]\nallow-unparseable = true\n"})
    assert entry(ok_json(run_cli("analyze", str(root), "--json")))["unparsed"] == ["main.py"]


# ---------------------------------------------------------------- A2 Python 2


@pytest.mark.parametrize(
    "src",
    [
        "import os\nprint 'x'\n",
        "try:\n    import os\nexcept ImportError, e:\n    pass\n",
    ],
    ids=["print-statement", "except-comma"],
)
def test_A2_python2_source_exit_3_with_hint(run_cli: RunCli, project: Project, src: str) -> None:
    root = project({"main.py": src})
    line = error_line(run_cli("analyze", str(root)), ANALYSIS, "main.py:", "Python 2 source?")
    assert re.search(r"main\.py:\d+:\d+: syntax error", line), line


def test_A2_python2_allow_unparseable_lists_unparsed(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import yaml\nprint 'x'\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json", "--allow-unparseable")))
    assert a["unparsed"] == ["main.py"]
    assert names(a["required"]) == ["pyyaml"]
    [sb005] = codes(a, "SB005")
    assert sb005["severity"] == "warning" and "main.py:2:" in sb005["message"]


# ---------------------------------------------------------------- A3 unknown codec


def test_A3_unknown_codec_exit_3_naming_codec(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": b"# coding: bogus\nimport os\n"})
    error_line(run_cli("analyze", str(root)), ANALYSIS, "main.py:1", "bogus")


def test_A3_unknown_codec_on_line_2_in_imported_module(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import helper\n", "helper.py": b"#!/usr/bin/env python\n# -*- coding: bogus-42 -*-\n"})
    error_line(run_cli("check", str(root), "--json"), ANALYSIS, "helper.py", "bogus-42")


def test_A3_unknown_codec_allow_unparseable_no_crash(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": b"# coding: bogus\nimport yaml\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json", "--allow-unparseable")))
    assert a["unparsed"] == ["main.py"]
    assert names(a["required"]) == ["pyyaml"]


# ---------------------------------------------------------------- A4 undecodable bytes


def test_A4_invalid_utf8_exit_3_with_byte_offset(run_cli: RunCli, project: Project) -> None:
    data = b"import os\nimport sys\ns = '\xff'\n"
    root = project({"main.py": data})
    error_line(run_cli("analyze", str(root)), ANALYSIS, "main.py:3", "offset " + str(data.index(b"\xff")), "0xff")


def test_A4_invalid_utf8_on_first_line_exit_3_with_byte_offset(run_cli: RunCli, project: Project) -> None:
    data = b"s = '\xc3\x28'\nimport os\n"
    root = project({"main.py": data})
    error_line(run_cli("analyze", str(root)), ANALYSIS, "main.py:1", "offset 5", "0xc3")


def test_A4_undecodable_despite_cookie_exit_3_with_byte_offset(run_cli: RunCli, project: Project) -> None:
    data = b"# coding: ascii\nimport os\nname = 'caf\xe9'\n"
    root = project({"main.py": data})
    error_line(run_cli("analyze", str(root)), ANALYSIS, "main.py:3", "offset " + str(data.index(b"\xe9")), "ascii")


def test_A4_no_silent_encoding_guess_by_default(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": b"import yaml\nx = '\xe9'\n"})
    run = run_cli("analyze", str(root), "--json")
    error_line(run, ANALYSIS, "main.py")
    assert json.loads(run.out)["kind"] == "error"


# ---------------------------------------------------------------- A5 encodings that are fine


@pytest.mark.parametrize(
    "data",
    [
        b"# -*- coding: latin-1 -*-\nimport yaml\ns = '\xe9t\xe9'\n",
        b"\xef\xbb\xbfimport yaml\ns = '\xc3\xa9'\n",
        b"#!/usr/bin/env python3\n# vim: set fileencoding=cp1252 :\nimport yaml\ns = '\x80'\n",
        b"import os\r\nimport yaml\r\nif os.name:\r\n    from toml import (\r\n        loads,\r\n    )\r\n",
        b"\xef\xbb\xbf# coding: utf-8\r\nimport yaml\r\n",
    ],
    ids=["latin1-cookie", "utf8-bom", "cookie-after-shebang", "crlf", "bom-cookie-crlf"],
)
def test_A5_encodings_parsed(run_cli: RunCli, project: Project, data: bytes) -> None:
    root = project({"main.py": data, "requirements.txt": "pyyaml\ntoml\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert "pyyaml" in names(a["required"])
    assert a["unparsed"] == []
    assert a["findings"] == [] or all(f["severity"] != "error" for f in a["findings"])
    if b"toml" in data:
        assert names(a["required"]) == ["pyyaml", "toml"]


def test_A5_crlf_import_line_numbers(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": b"import os\r\n\r\nimport yaml\r\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["missing"][0]["imports"] == [{"line": 3, "module": "yaml", "path": "main.py"}]


# ---------------------------------------------------------------- A6 binary files


def test_A6_nul_byte_exit_3_not_python_source(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": b"import os\nx = 1\x00\n"})
    error_line(run_cli("analyze", str(root)), ANALYSIS, "main.py", "not Python source")


def _pyc_bytes() -> bytes:
    code = compile("import os\nprint(os.name)\n", "helper.py", "exec")
    return importlib.util.MAGIC_NUMBER + b"\x00" * 12 + marshal.dumps(code)


def test_A6_renamed_pyc_exit_3_not_python_source(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import helper\n", "helper.py": _pyc_bytes()})
    error_line(run_cli("analyze", str(root), "--json"), ANALYSIS, "helper.py", "not Python source")


def test_A6_renamed_pyc_as_entrypoint(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": _pyc_bytes()})
    error_line(run_cli("check", str(root)), ANALYSIS, "main.py", "not Python source")


# ---------------------------------------------------------------- A7 huge and deep inputs

LIMIT = 10 * 1024 * 1024


def test_A7_50mb_file_refused_quickly(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import big\n"})
    (root / "big.py").write_bytes(b"# " + b"x" * (50_000_000 - 3) + b"\n")
    t0 = time.monotonic()
    run = run_cli("analyze", str(root))
    assert time.monotonic() - t0 < 10
    error_line(run, ANALYSIS, "big.py", "50,000,000 bytes", f"{LIMIT:,}", "max-source-bytes")


def test_A7_single_10mb_line_refused(run_cli: RunCli, project: Project) -> None:
    root = project({})
    (root / "main.py").write_bytes(b"x = '" + b"a" * LIMIT + b"'\n")
    t0 = time.monotonic()
    run = run_cli("analyze", str(root), "--json")
    assert time.monotonic() - t0 < 10
    error_line(run, ANALYSIS, "main.py", f"{LIMIT + 7:,} bytes", f"{LIMIT:,}")


def test_A7_size_limit_configurable_in_pyproject(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import helper\n", "helper.py": "#" * 2000 + "\n",
                    "pyproject.toml": "[tool.slimbuild]\nmax-source-bytes = 1024\n"})
    error_line(run_cli("analyze", str(root)), ANALYSIS, "helper.py", "2,001 bytes", "1,024-byte limit")
    (root / "pyproject.toml").write_text("[tool.slimbuild]\nmax-source-bytes = 4096\n")
    assert entry(ok_json(run_cli("analyze", str(root), "--json")))["files"] == ["helper.py", "main.py"]


def test_A7_size_limit_configurable_in_environment(run_cli: RunCli, project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project({"main.py": "x = 1\n" * 100})
    monkeypatch.setenv("SLIMBUILD_MAX_SOURCE_BYTES", "100")
    error_line(run_cli("analyze", str(root)), ANALYSIS, "main.py", "600 bytes", "100-byte limit")


def test_A7_notebook_over_source_limit_with_large_outputs_is_read(run_cli: RunCli, project: Project) -> None:
    """Outputs (plots) make notebooks big: a notebook over max-source-bytes is not truncated into 'invalid JSON'."""
    big_output = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "A" * (LIMIT + 1024)}}
    cell = code_cell("import yaml\n")
    cell["outputs"] = [big_output]
    root = project({"nb.ipynb": notebook([cell])})
    t0 = time.monotonic()
    a = entry(ok_json(run_cli("analyze", str(root), "--json", "--entrypoint", "nb.ipynb")))
    assert time.monotonic() - t0 < 10
    assert names(a["required"]) == ["pyyaml"]


DEEP = {
    "parens-200k": "x = " + "(" * 200_000 + "\n",
    "brackets-1000": "x = " + "[" * 1000 + "]" * 1000 + "\n",
    "nested-ifs-1000": "".join("    " * i + "if x:\n" for i in range(1000)) + "    " * 1000 + "pass\n",
    "unary-100k": "x = " + "not " * 100_000 + "x\n",
    "attributes-100k": "x = a" + ".b" * 100_000 + "\n",
    "binop-200k": "x = 1" + "+1" * 200_000 + "\n",
    "calls-100k": "x = f" + "()" * 100_000 + "\n",
    "lambdas-50k": "f = " + "lambda: " * 50_000 + "1\n",
}


@pytest.mark.parametrize("src", list(DEEP.values()), ids=list(DEEP))
def test_A7_deep_nesting_exit_3_not_crash(run_cli: RunCli, project: Project, src: str) -> None:
    root = project({"main.py": "import os\nimport helper\n", "helper.py": src})
    t0 = time.monotonic()
    run = run_cli("analyze", str(root))
    assert time.monotonic() - t0 < 10
    error_line(run, ANALYSIS, "helper.py")
    assert "internal error" not in run.err


@pytest.mark.parametrize("key", ["parens-200k", "unary-100k", "calls-100k"])
def test_A7_deep_nesting_with_allow_unparseable_is_clean(run_cli: RunCli, project: Project, key: str) -> None:
    root = project({"main.py": "import yaml\n" + DEEP[key]})
    t0 = time.monotonic()
    run = run_cli("analyze", str(root), "--json", "--allow-unparseable")
    assert time.monotonic() - t0 < 10
    assert "Traceback" not in run.err
    if run.code == OK:
        assert entry(json.loads(run.out))["unparsed"] == ["main.py"]
    else:
        error_line(run, ANALYSIS, "main.py")


# ---------------------------------------------------------------- A8 broken notebook JSON


@pytest.mark.parametrize(
    "data",
    [
        b"this is not json\n",
        notebook([code_cell("import yaml\n")]).encode()[:40],
        b"",
        b"[1, 2, 3]\n",
        b'{"nbformat": 4, "cells": [\xff]}',
    ],
    ids=["not-json", "truncated", "empty", "json-list", "not-utf8"],
)
def test_A8_notebook_not_json_exit_3_naming_notebook(run_cli: RunCli, project: Project, data: bytes) -> None:
    root = project({"analysis.ipynb": data})
    run = run_cli("analyze", str(root), "--json", "--entrypoint", "analysis.ipynb")
    error_line(run, ANALYSIS, "analysis.ipynb")
    assert json.loads(run.out)["error"]["exit_code"] == ANALYSIS


def test_A8_truncated_notebook_message_says_truncated(run_cli: RunCli, project: Project) -> None:
    root = project({"nb.ipynb": notebook([code_cell("import yaml\n")])[:-30]})
    error_line(run_cli("analyze", str(root), "--entrypoint", "nb.ipynb"), ANALYSIS, "nb.ipynb:", "not valid JSON", "truncated")


# ---------------------------------------------------------------- A9 source as string or list

A9_LINES = ["import yaml\n", "from toml import loads\n", "%pip install extra-thing\n", "x = 1"]


def test_A9_source_string_and_list_parsed_the_same(run_cli: RunCli, tmp_path: Path) -> None:
    docs = []
    for form, src in (("list", A9_LINES), ("string", "".join(A9_LINES))):
        root = tmp_path / form
        root.mkdir()
        (root / "nb.ipynb").write_text(notebook([md_cell("# t"), code_cell(src)]))
        doc = ok_json(run_cli("analyze", str(root), "--json", "--entrypoint", "nb.ipynb"))
        docs.append(doc)
    assert docs[0] == docs[1]
    a = entry(docs[0])
    assert names(a["required"]) == ["pyyaml", "toml"]
    assert [h["package"] for h in a["pip_hints"]] == ["extra-thing"]
    assert {s["line"] for r in a["required"] for s in r["imports"]} == {1, 2}
    assert {s["cell"] for r in a["required"] for s in r["imports"]} == {2}


# ---------------------------------------------------------------- A10 nbformat 3


def _nb_v3(inputs: list[str | list[str]], language: str = "python") -> str:
    cells = [{"cell_type": "code", "language": language, "input": src, "outputs": [], "metadata": {}} for src in inputs]
    cells.insert(0, {"cell_type": "markdown", "source": "# v3", "metadata": {}})
    worksheets = [{"cells": cells, "metadata": {}}]
    return json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "old"}, "worksheets": worksheets})


def test_A10_nbformat3_worksheets_parsed(run_cli: RunCli, project: Project) -> None:
    root = project({"old.ipynb": _nb_v3([["import yaml\n", "x = 1\n"], "from toml import loads\n"])})
    a = entry(ok_json(run_cli("analyze", str(root), "--json", "--entrypoint", "old.ipynb")))
    assert names(a["required"]) == ["pyyaml", "toml"]
    cells = sorted(s["cell"] for r in a["required"] for s in r["imports"])
    assert cells == [2, 3]


@pytest.mark.parametrize("major", [2, 5, "4"])
def test_A10_unsupported_nbformat_exit_3_never_skipped(run_cli: RunCli, project: Project, major: object) -> None:
    meta = {"language_info": {"name": "python"}}
    root = project({"nb.ipynb": json.dumps({"nbformat": major, "metadata": meta, "worksheets": []})})
    error_line(run_cli("analyze", str(root), "--entrypoint", "nb.ipynb"), ANALYSIS, "nb.ipynb", f"unsupported nbformat {major!r}")


# ---------------------------------------------------------------- A11 non-Python kernels


@pytest.mark.parametrize(
    ("language", "kernelspec", "shown"),
    [
        ("R", None, "'r'"),
        (None, {"name": "julia-1.9", "language": "julia", "display_name": "Julia 1.9"}, "'julia'"),
        ("scala", {"name": "almond", "language": "scala"}, "'scala'"),
    ],
    ids=["r", "julia-kernelspec-only", "scala"],
)
def test_A11_non_python_kernel_entrypoint_exit_3(
    run_cli: RunCli, project: Project, language: str | None, kernelspec: dict[str, str] | None, shown: str
) -> None:
    # R code that a Python parser would read as imports must never be parsed as Python
    cells = [code_cell("import yaml\nlibrary(ggplot2)\n")]
    root = project({"nb.ipynb": notebook(cells, language=language, kernelspec=kernelspec)})
    run = run_cli("analyze", str(root), "--json", "--entrypoint", "nb.ipynb")
    error_line(run, ANALYSIS, "nb.ipynb", shown, "not Python")
    assert "pyyaml" not in run.out


def test_A11_missing_language_metadata_exit_3(run_cli: RunCli, project: Project) -> None:
    root = project({"nb.ipynb": notebook([code_cell("import yaml\n")], language=None)})
    run = run_cli("analyze", str(root), "--entrypoint", "nb.ipynb")
    error_line(run, ANALYSIS, "nb.ipynb", "kernel language", "language_info")


def test_A11_discovered_non_python_notebook_not_parsed(run_cli: RunCli, project: Project) -> None:
    root = project({"only.ipynb": notebook([code_cell("import yaml\n")], language="R")})
    run = run_cli("analyze", str(root))
    error_line(run, ANALYSIS, "only.ipynb", "not Python")
    assert "pyyaml" not in run.out


def test_A11_non_python_notebook_not_on_import_path_is_ignored(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import yaml\n", "r_stuff.ipynb": notebook([code_cell("library(x)\n")], language="R")})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["files"] == ["main.py"]


# ---------------------------------------------------------------- A12 IPython magics

A12_CELLS = [
    md_cell("# Setup"),
    code_cell("%pip install xpkg\n!pip install ypkg\n%conda install -y zpkg\nimport yaml\n"),
    code_cell("if True:\n    %time import numpy\n    %matplotlib inline\n    import scipy\n"),
    code_cell("%%bash\npip install bashpkg\nimport notpython\necho hi\n"),
    code_cell("%%writefile helpers.py\nimport requests\n\ndef fetch():\n    return requests\n"),
    code_cell('get_ipython().system("pip install qpkg")\nimport toml\n'),
    code_cell("%pip install apkg \\\n    bpkg\nimport attr\n"),
    code_cell("files = !ls\nobj = 1\nobj?\n??obj\nimport bs4\n"),
    code_cell("import helpers\nhelpers.fetch()\n"),
    code_cell("%%time\nimport pandas\n"),
    code_cell("%%capture out\nimport matplotlib\n"),
]
A12_PIP = ["apkg", "bashpkg", "bpkg", "qpkg", "xpkg", "ypkg", "zpkg"]


def test_A12_magics_neutralised_and_real_imports_kept(run_cli: RunCli, project: Project) -> None:
    root = project({"nb.ipynb": notebook(A12_CELLS)})
    a = entry(ok_json(run_cli("analyze", str(root), "--json", "--entrypoint", "nb.ipynb")))
    assert names(a["required"]) == [
        "attrs", "beautifulsoup4", "matplotlib", "numpy", "pandas", "pyyaml", "requests", "scipy", "toml",
    ]
    assert a["unresolved"] == []
    assert a["unparsed"] == []
    assert codes(a, "SB008") == []


def test_A12_pip_targets_are_hints_never_required(run_cli: RunCli, project: Project) -> None:
    root = project({"nb.ipynb": notebook(A12_CELLS)})
    a = entry(ok_json(run_cli("analyze", str(root), "--json", "--entrypoint", "nb.ipynb")))
    assert sorted({h["package"] for h in a["pip_hints"]}) == A12_PIP
    listed = set(names(a["required"])) | set(names(a["missing"])) | set(names(a["optional"])) | set(modules(a["unresolved"]))
    assert not listed & set(A12_PIP)
    hint_cells = {h["package"]: h["cell"] for h in a["pip_hints"]}
    assert hint_cells["xpkg"] == 2 and hint_cells["qpkg"] == 6 and hint_cells["bpkg"] == 7
    sb006 = codes(a, "SB006")
    assert {f["severity"] for f in sb006} == {"info"}


def test_A12_pip_hints_do_not_fail_check(run_cli: RunCli, project: Project) -> None:
    root = project({"nb.ipynb": notebook([code_cell("%pip install xpkg\n!pip install ypkg\nimport yaml\n")]),
                    "requirements.txt": "PyYAML\n"})
    run = run_cli("check", str(root), "--entrypoint", "nb.ipynb")
    assert run.code == OK, run.err
    assert "Traceback" not in run.err
    assert "nb.ipynb[cell 1]:1: SB006 'xpkg' is installed by a pip/conda magic" in run.err


def test_A12_bash_cell_skipped_entirely(run_cli: RunCli, project: Project) -> None:
    root = project({"nb.ipynb": notebook([code_cell("%%bash\nimport notpython\nfor f in *; do echo $f; done\n")])})
    a = entry(ok_json(run_cli("analyze", str(root), "--json", "--entrypoint", "nb.ipynb")))
    assert a["required"] == [] and a["unresolved"] == [] and a["findings"] == []


def test_A12_writefile_module_is_first_party(run_cli: RunCli, project: Project) -> None:
    cells = [code_cell("%%writefile helpers.py\nX = 1\n"), code_cell("import helpers\nfrom helpers import X\n")]
    root = project({"nb.ipynb": notebook(cells)})
    a = entry(ok_json(run_cli("analyze", str(root), "--json", "--entrypoint", "nb.ipynb")))
    assert a["required"] == [] and a["unresolved"] == []
    assert codes(a, "SB003") == [] and codes(a, "SB011") == []


# ---------------------------------------------------------------- A13 one bad cell


def test_A13_bad_cell_reported_good_cells_kept(run_cli: RunCli, project: Project) -> None:
    cells = [md_cell("# t"), code_cell("import yaml\n"), code_cell("x = (\n"), code_cell("import toml\n")]
    root = project({"nb.ipynb": notebook(cells), "requirements.txt": "pyyaml\ntoml\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json", "--entrypoint", "nb.ipynb")))
    assert names(a["required"]) == ["pyyaml", "toml"]
    bad = codes(a, "SB008")
    assert [(f["path"], f["cell"], f["severity"]) for f in bad] == [("nb.ipynb", 3, "error")]

    text = run_cli("analyze", str(root), "--entrypoint", "nb.ipynb")
    assert text.code == OK and "Traceback" not in text.err
    assert "nb.ipynb[cell 3]: SB008 cell skipped: syntax error" in text.err


def test_A13_bad_cell_fails_check_with_cell_location(run_cli: RunCli, project: Project) -> None:
    cells = [code_cell("import yaml\n"), md_cell("x"), code_cell("print 'py2'\n")]
    root = project({"nb.ipynb": notebook(cells), "requirements.txt": "pyyaml\n"})
    run = run_cli("check", str(root), "--entrypoint", "nb.ipynb")
    assert run.code == FINDINGS
    assert "Traceback" not in run.err
    assert "nb.ipynb[cell 3]: SB008" in run.err
    assert "SB001" not in run.err


# ---------------------------------------------------------------- A14 dynamic imports

A14_SRC = """\
import importlib
from importlib import import_module

m = importlib.import_module("yaml")
mods = [importlib.import_module("toml")]
table = {"k": importlib.import_module("attr")}
print(importlib.import_module("bs4"))
lazy = lambda: __import__("requests")
n = "x"
p = importlib.import_module(f"pkg.{n}")
q = import_module(n)
a = importlib.import_module(n); b = __import__(n)
"""


def test_A14_literal_dynamic_imports_in_any_expression_position(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": A14_SRC})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert names(a["required"]) == ["attrs", "beautifulsoup4", "pyyaml", "requests", "toml"]


def test_A14_non_literal_dynamic_imports_warn_with_location(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": A14_SRC})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["unresolved_dynamic"] == [
        {"line": 10, "path": "main.py"},
        {"line": 11, "path": "main.py"},
        {"line": 12, "path": "main.py"},
        {"line": 12, "path": "main.py"},
    ]
    expected = [(10, "warning"), (11, "warning"), (12, "warning"), (12, "warning")]
    assert [(f["line"], f["severity"]) for f in codes(a, "SB004")] == expected
    text = run_cli("analyze", str(root))
    assert text.code == OK and "Traceback" not in text.err
    for loc in ("main.py:10:5", "main.py:11:5", "main.py:12:5", "main.py:12:37"):
        assert f"{loc}: SB004 dynamic import" in text.err
    assert "dynamic imports not traced (4)" in text.out


def test_A14_dynamic_import_in_notebook_cell(run_cli: RunCli, project: Project) -> None:
    cell = code_cell("import importlib\nname = 'yaml'\nm = importlib.import_module(name)\n")
    root = project({"nb.ipynb": notebook([md_cell("x"), cell])})
    a = entry(ok_json(run_cli("analyze", str(root), "--json", "--entrypoint", "nb.ipynb")))
    assert a["unresolved_dynamic"] == [{"cell": 2, "line": 3, "path": "nb.ipynb"}]


# ---------------------------------------------------------------- A15 TYPE_CHECKING, optional, function-level

A15_SRC = """\
from __future__ import annotations
import typing
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas
if typing.TYPE_CHECKING:
    from numpy import ndarray

try:
    import yaml
except ImportError:
    yaml = None

try:
    import toml
except (KeyError, ModuleNotFoundError):
    toml = None

def load():
    import requests
    return requests

class Loader:
    def fetch(self):
        from bs4 import BeautifulSoup
        return BeautifulSoup

async def run():
    with open("x") as fh:
        import attr
    return attr
"""


def test_A15_type_checking_imports_recorded_not_required(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": A15_SRC})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert modules(a["type_checking"]) == ["numpy", "pandas"]
    required = names(a["required"])
    assert "pandas" not in required and "numpy" not in required
    assert "pandas" not in names(a["optional"]) and a["unresolved"] == []


def test_A15_try_except_import_error_tagged_optional(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": A15_SRC})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    optional = {r["name"]: r["optional"] for r in a["optional"]}
    assert optional == {"pyyaml": True, "toml": True}
    # optional undeclared imports do not fail check
    assert not any(f["code"] == "SB001" and f["line"] in {11, 16} for f in a["findings"])


def test_A15_declared_optional_import_is_required_and_tagged(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": A15_SRC, "requirements.txt": "pyyaml\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    yaml_req = next(r for r in a["required"] if r["name"] == "pyyaml")
    assert yaml_req["optional"] is True and yaml_req["declared"] is True


def test_A15_function_level_imports_included(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": A15_SRC})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert names(a["required"]) == ["attrs", "beautifulsoup4", "requests"]


def test_A15_first_party_module_imported_for_type_checking_only_is_not_run(run_cli: RunCli, project: Project) -> None:
    # hints.py and pkg/types.py are never imported at run time: neither they nor what they import may reach the image
    root = project({
        "main.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import hints\nimport pkg.core\n",
        "hints.py": "import torch\n",
        "pkg/__init__.py": "",
        "pkg/core.py": (
            "import typing\nif typing.TYPE_CHECKING:\n    from .types import Frame\n    from pkg import types\nimport yaml\n"
        ),
        "pkg/types.py": "import pandas\n",
        "requirements.txt": "pyyaml\n",
    })
    run = run_cli("check", str(root))
    assert run.code == OK, run.err
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["files"] == ["main.py", "pkg/__init__.py", "pkg/core.py"]
    assert names(a["required"]) == ["pyyaml"] and a["missing"] == []


def test_A15_first_party_module_reached_only_under_except_import_error_is_optional_as_a_whole(
    run_cli: RunCli, project: Project
) -> None:
    # httpx's shape: `try: from ._main import main` guards a module whose own imports are unguarded. If click is
    # missing, importing _cli fails with ImportError and the guard catches it: click is optional, not required.
    root = project({
        "main.py": "try:\n    from app._cli import run\nexcept ImportError:\n    run = None\nimport app.core\n",
        "app/__init__.py": "",
        "app/_cli.py": "import click\nfrom app import helpers\n",
        "app/helpers.py": "import rich\n",
        "app/core.py": "import yaml\nfrom app import shared\n",
        "app/shared.py": "import attr\n",
        "requirements.txt": "pyyaml\nattrs\n",
    })
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert names(a["required"]) == ["attrs", "pyyaml"]
    assert {r["name"]: r["optional"] for r in a["optional"]} == {"click": True, "rich": True}
    assert "app/_cli.py" in a["files"] and "app/helpers.py" in a["files"]  # still shipped: the import may succeed
    assert run_cli("check", str(root)).code == OK
    # reached unguarded from elsewhere too: required again
    (root / "app/core.py").write_text("import yaml\nfrom app import shared, helpers\n")
    b = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert names(b["missing"]) == ["rich"] and names(b["optional"]) == ["click"]


# ---------------------------------------------------------------- A16 relative, circular, sys.path


def test_A16_relative_import_beyond_top_level_warns(run_cli: RunCli, project: Project) -> None:
    root = project({"pkg/__init__.py": "", "pkg/__main__.py": "from ...outside import thing\nfrom . import core\n",
                    "pkg/core.py": "import os\n"})
    run = run_cli("analyze", str(root), "--entrypoint", "pkg")
    assert run.code == OK and "Traceback" not in run.err
    assert "pkg/__main__.py:1:1: SB009 relative import beyond the top-level package is ignored" in run.err
    a = entry(ok_json(run_cli("analyze", str(root), "--json", "--entrypoint", "pkg")))
    assert a["files"] == ["pkg/__init__.py", "pkg/__main__.py", "pkg/core.py"]
    assert [(f["path"], f["line"], f["severity"]) for f in codes(a, "SB009")] == [("pkg/__main__.py", 1, "warning")]


def test_A16_relative_import_in_script_at_root_warns(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "from ..x import y\nfrom . import z\nimport os\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert [f["line"] for f in codes(a, "SB009")] == [1, 2]
    assert a["stdlib"] == ["os"]


def test_A16_circular_local_imports_terminate(run_cli: RunCli, project: Project) -> None:
    root = project({
        "main.py": "import a\nimport main\n",
        "a.py": "import b\nimport yaml\n",
        "b.py": "import a\nfrom pkg import x\n",
        "pkg/__init__.py": "from . import x\nfrom .x import *\n",
        "pkg/x.py": "from pkg import x\nfrom . import x as again\nimport pkg\nimport toml\n",
    })
    t0 = time.monotonic()
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert time.monotonic() - t0 < 10
    assert a["files"] == ["a.py", "b.py", "main.py", "pkg/__init__.py", "pkg/x.py"]
    assert names(a["required"]) == ["pyyaml", "toml"]


@pytest.mark.parametrize("hack", ['sys.path.append("lib")', 'sys.path.insert(0, "lib")'])
def test_A16_sys_path_hack_makes_module_first_party(run_cli: RunCli, project: Project, hack: str) -> None:
    root = project({"main.py": f"import sys\n{hack}\nimport foo\n", "lib/foo.py": "import yaml\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["files"] == ["lib/foo.py", "main.py"]
    assert names(a["required"]) == ["pyyaml"]
    assert a["unresolved"] == []


def test_A16_sys_path_outside_project_is_not_first_party(run_cli: RunCli, project: Project, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "evil.py").write_text("import yaml\n")
    root = project({"main.py": 'import sys\nsys.path.append("../outside")\nimport evil\n'})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["files"] == ["main.py"]
    assert modules(a["unresolved"]) == ["evil"]


# ---------------------------------------------------------------- A17 namespace packages, shadowing


def test_A17_namespace_package_is_first_party(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import nsp.mod\nfrom nsp.sub import deep\n", "nsp/mod.py": "import yaml\n",
                    "nsp/sub/deep.py": "import toml\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["files"] == ["main.py", "nsp/mod.py", "nsp/sub/deep.py"]
    assert names(a["required"]) == ["pyyaml", "toml"]
    assert a["unresolved"] == []


def test_A17_local_modules_shadowing_pypi_names_are_first_party(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import utils\nimport requests\nfrom yaml import load\n", "utils.py": "X = 1\n",
                    "requests.py": "def get(url):\n    return url\n", "yaml/__init__.py": "def load():\n    pass\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["files"] == ["main.py", "requests.py", "utils.py", "yaml/__init__.py"]
    assert a["required"] == [] and a["missing"] == [] and a["unresolved"] == []
    run = run_cli("check", str(root))
    assert run.code == OK, run.err


def test_A17_sibling_module_does_not_capture_absolute_import(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import pkg.core\n", "pkg/__init__.py": "", "pkg/core.py": "import requests\n",
                    "pkg/requests.py": "raise SystemExit('not this one')\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert names(a["required"]) == ["requests"]
    assert "pkg/requests.py" not in a["files"]
    assert a["files"] == ["main.py", "pkg/__init__.py", "pkg/core.py"]


# ---------------------------------------------------------------- A18 unmapped imports


def test_A18_unmapped_import_check_fails_with_sb003(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import internal_lib\nimport os\n"})
    run = run_cli("check", str(root))
    assert run.code == FINDINGS
    assert "Traceback" not in run.err
    line = next(ln for ln in run.err.splitlines() if "SB003" in ln)
    assert line.startswith("main.py:1:1: SB003 cannot map import 'internal_lib' to a distribution")
    assert "[tool.slimbuild.mapping]" in line


def test_A18_unmapped_import_listed_in_analyze_never_resolved_to_same_name(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import internal_lib\nfrom internal_lib.sub import x\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert modules(a["unresolved"]) == ["internal_lib", "internal_lib.sub"]
    assert a["required"] == [] and a["missing"] == [] and a["optional"] == []
    assert "internal-lib" not in json.dumps(a)
    assert [f["severity"] for f in codes(a, "SB003")] == ["error", "error"]


def test_A18_lock_refuses_unmapped_import_exit_4(run_cli: RunCli, project: Project) -> None:
    """At lock time an unmapped import is a resolution failure (exit 4), before any index is contacted."""
    root = project({"main.py": "import internal_lib\nimport os\n"})
    run = run_cli("lock", str(root))
    error_line(run, RESOLUTION, "main.py:1:1", "cannot map import 'internal_lib' to a distribution", "[tool.slimbuild.mapping]")
    assert sorted(p.name for p in root.iterdir()) == ["main.py"]


def test_A18_mapping_resolves_internal_lib(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import internal_lib\n",
                    "pyproject.toml": '[project]\nname = "x"\ndependencies = ["acme-internal"]\n\n'
                                      '[tool.slimbuild.mapping]\ninternal_lib = "acme-internal"\n'})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert [(r["name"], r["via"], r["declared"]) for r in a["required"]] == [("acme-internal", ["mapping"], True)]
    assert run_cli("check", str(root)).code == OK


# ---------------------------------------------------------------- A19 import name != distribution

A19_SRC = (
    "import sklearn\nimport yaml\nimport cv2\nfrom PIL import Image\nimport google.cloud.storage\n"
    "from google.cloud import storage\n"
)


def test_A19_import_names_map_to_normalised_distributions(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": A19_SRC})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert names(a["required"]) == ["google-cloud-storage", "pyyaml", "scikit-learn"]
    # cv2 and PIL have several providers and none is declared: named, never picked
    assert modules(a["unresolved"]) == ["PIL", "cv2"]
    several = [f for f in a["findings"] if f["code"] == "SB001" and "several distributions" in f["message"]]
    assert len(several) == 2


def test_A19_declared_distribution_no_missing_unused_contradiction(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": A19_SRC,
                    "requirements.txt": "Scikit_Learn>=1.0\nPyYAML\nopencv-python\nPillow\ngoogle-cloud-storage\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["missing"] == [] and a["unused"] == []
    assert all(r["declared"] for r in a["required"])
    run = run_cli("check", str(root))
    assert run.code == OK, run.err
    assert "SB001" not in run.err and "SB002" not in run.err


# ---------------------------------------------------------------- A20 stdlib per target version


def test_A20_tomllib_judged_against_target_python(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import tomllib\n"})
    a311 = entry(ok_json(run_cli("analyze", str(root), "--json", "--target-python", "3.11")))
    assert a311["stdlib"] == ["tomllib"] and a311["unresolved"] == []
    a310 = entry(ok_json(run_cli("analyze", str(root), "--json", "--target-python", "3.10")))
    assert a310["target_python"] == "3.10"
    assert "tomllib" not in a310["stdlib"]
    assert modules(a310["unresolved"]) == ["tomllib"]


@pytest.mark.parametrize("mod", ["distutils", "imp"])
def test_A20_removed_modules_not_stdlib_on_312(run_cli: RunCli, project: Project, mod: str) -> None:
    root = project({"main.py": f"import {mod}\n"})
    a311 = entry(ok_json(run_cli("analyze", str(root), "--json", "--target-python", "3.11")))
    assert a311["stdlib"] == [mod]
    a312 = entry(ok_json(run_cli("analyze", str(root), "--json", "--target-python", "3.12")))
    assert mod not in a312["stdlib"]
    assert mod in modules(a312["unresolved"]) + [m for r in a312["required"] for m in modules(r["imports"])]


def test_A20_target_python_from_config(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import tomllib\n", "pyproject.toml": '[tool.slimbuild]\npython = "3.10"\n'})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["target_python"] == "3.10" and modules(a["unresolved"]) == ["tomllib"]


def test_A20_bad_target_python_is_usage_error(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import os\n"})
    error_line(run_cli("analyze", str(root), "--target-python", "2.7"), USAGE, "2.7")


# ---------------------------------------------------------------- A21 empty / notebook-only / ignored dirs


def test_A21_empty_project_nothing_to_build(run_cli: RunCli, project: Project) -> None:
    root = project({"README.md": "hello\n"})
    error_line(run_cli("analyze", str(root)), ANALYSIS, "nothing to build")


def test_A21_only_ignored_dirs_is_nothing_to_build(run_cli: RunCli, project: Project) -> None:
    root = project({".venv/lib/python3.11/site-packages/x.py": "import os\n", "build/lib/y.py": "import os\n",
                    "site-packages/z.py": "import os\n", "node_modules/w.py": "", "__pycache__/v.py": ""})
    error_line(run_cli("analyze", str(root), "--json"), ANALYSIS, "nothing to build")


def test_A21_single_notebook_project_needs_no_entrypoint(run_cli: RunCli, project: Project) -> None:
    root = project({"analysis.ipynb": notebook([code_cell("import yaml\n")]), ".venv/lib/x.py": "import os\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["entrypoint"] == "analysis.ipynb"
    assert names(a["required"]) == ["pyyaml"]


def test_A21_several_notebooks_each_analysed_lock_asks_to_pick_one(run_cli: RunCli, project: Project) -> None:
    root = project({"a.ipynb": notebook([code_cell("import yaml\n")]), "b.ipynb": notebook([code_cell("import toml\n")])})
    doc = ok_json(run_cli("analyze", str(root), "--json"))
    assert [e["entrypoint"] for e in doc["entrypoints"]] == ["a.ipynb", "b.ipynb"]
    assert all(any(f["code"] == "SB016" for f in e["findings"]) for e in doc["entrypoints"])
    error_line(run_cli("lock", str(root)), USAGE, "2 entrypoint candidates", "a.ipynb", "b.ipynb", 'entrypoint = "a.ipynb"')


def test_A21_ignored_dirs_never_traced_or_first_party(run_cli: RunCli, project: Project) -> None:
    root = project({
        "main.py": "import sys\nsys.path.append('.venv/lib/python3.11/site-packages')\nsys.path.append('site-packages')\n"
                   "sys.path.append('build/lib')\nimport fancy\nimport vendored\nimport built\nimport build\n",
        ".venv/lib/python3.11/site-packages/fancy/__init__.py": "import toml\n",
        "site-packages/vendored.py": "import toml\n",
        "build/__init__.py": "import toml\n",
        "build/lib/built.py": "import toml\n",
    })
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["files"] == ["main.py"]
    assert "toml" not in names(a["required"])
    third = set(modules(a["unresolved"])) | {m for r in a["required"] for m in modules(r["imports"])}
    assert {"fancy", "vendored", "built", "build"} <= third


# ---------------------------------------------------------------- A22 awkward file names


@pytest.mark.parametrize(
    "name",
    ["run me.py", "it's \"quoted\".py", "-dash.py", "new\nline.py", "tab\tand $dollar `tick`.py"],
    ids=["space", "quotes", "leading-dash", "newline", "shell-chars"],
)
def test_A22_awkward_entrypoint_names_analysed(run_cli: RunCli, project: Project, name: str) -> None:
    root = project({name: "import yaml\n", "requirements.txt": "pyyaml\n"})
    run = run_cli("analyze", str(root), "--json", f"--entrypoint={name}")
    a = entry(ok_json(run))
    assert a["files"] == [name]
    assert names(a["required"]) == ["pyyaml"]
    text = run_cli("check", str(root), f"--entrypoint={name}")
    assert text.code == OK and "Traceback" not in text.err


def test_A22_awkward_project_directory_name(run_cli: RunCli, tmp_path: Path) -> None:
    root = tmp_path / "-my proj 'x'"
    root.mkdir()
    (root / "main.py").write_text("import yaml\n")
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert names(a["required"]) == ["pyyaml"]


def test_A22_non_utf8_file_names_in_project(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import yaml\n"})
    broot = os.fsencode(root)
    (Path(os.fsdecode(broot + b"/caf\xe9.py"))).write_bytes(b"import toml\n")
    os.mkdir(broot + b"/d\xff")
    with open(broot + b"/d\xff/x.py", "wb") as fh:
        fh.write(b"import os\n")
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["files"] == ["main.py"]


def test_A22_non_utf8_file_name_as_entrypoint(run_cli: RunCli, project: Project) -> None:
    root = project({})
    raw = os.fsencode(root) + b"/caf\xe9.py"
    with open(raw, "wb") as fh:
        fh.write(b"import yaml\nx = (\n")
    name = os.fsdecode(b"caf\xe9.py")
    run = run_cli("analyze", str(root), "--json", "--entrypoint", name)
    # a syntax error in a file with an undecodable name: a clean error that still names the file
    line = error_line(run, ANALYSIS, ":2:5")
    assert "caf" in line
    json.loads(run.out)
    with open(raw, "wb") as fh:
        fh.write(b"import yaml\n")
    a = entry(ok_json(run_cli("analyze", str(root), "--json", "--entrypoint", name)))
    assert names(a["required"]) == ["pyyaml"]
    text = run_cli("analyze", str(root), "--entrypoint", name)
    assert text.code == OK and "Traceback" not in text.err


def test_A22_non_utf8_entrypoint_subprocess_text_output(project: Project, tmp_path: Path) -> None:
    root = project({})
    with open(os.fsencode(root) + b"/caf\xe9.py", "wb") as fh:
        fh.write(b"import yaml\nimport importlib\nimportlib.import_module(x)\n")
    env = {**_clean_env(), "SLIMBUILD_CACHE": str(tmp_path / "c"), "LC_ALL": "C.UTF-8"}
    for cmd in ("analyze", "check"):
        proc = subprocess.run(
            [sys.executable, "-m", "slimbuild", cmd, os.fsencode(root), b"--entrypoint", b"caf\xe9.py"],
            capture_output=True, env=env, cwd=tmp_path, timeout=120, check=False,
        )
        assert b"Traceback" not in proc.stderr
        assert proc.returncode in {OK, FINDINGS}, proc.stderr
        assert b"caf" in proc.stdout + proc.stderr


# ---------------------------------------------------------------- A23 determinism


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIMBUILD_", "PYTHONHASHSEED", "VIRTUAL_ENV", "PYTEST"))}
    env["PYTHONPATH"] = str(REPO)
    return env


def _determinism_project(project: Project) -> Path:
    files: dict[str, str | bytes] = {
        "main.py": "import importlib, sys\nimport helpers.m00\nfrom helpers import *\nimport internal_lib, other_internal\n"
                   "a = importlib.import_module(x); b = importlib.import_module(y); c = __import__(z)\n"
                   "from ..up import thing\nimport pandas as pd\npd.read_parquet('x')\n",
        "helpers/__init__.py": "".join(f"from . import m{i:02d}\n" for i in range(24)),
        "requirements.txt": "requests\nunused-thing\nzzz-unused\naaa-unused\n",
        "nb.ipynb": notebook([code_cell("%pip install b c a\nimport yaml\n"), code_cell("x = (\n")]),
    }
    third = ["yaml", "toml", "attr", "bs4", "requests", "sklearn", "PIL", "cv2", "numpy", "scipy", "unknown_a", "unknown_b"]
    for i in range(24):
        files[f"helpers/m{i:02d}.py"] = (
            f"import {third[i % len(third)]}\nimport {third[(i * 7) % len(third)]}\nimport os, json, re\n"
            f"from . import m{(i + 1) % 24:02d}\nimport importlib\nimportlib.import_module(n{i})\n"
            f"try:\n    import {third[(i * 5) % len(third)]}\nexcept ImportError:\n    pass\n"
        )
    return project(files)


@pytest.mark.slow
def test_A23_output_identical_across_runs_and_hash_seeds(project: Project, tmp_path: Path) -> None:
    root = _determinism_project(project)
    commands = [
        ["analyze", str(root), "--json"],
        ["analyze", str(root)],
        ["check", str(root)],
        ["check", str(root), "--json"],
        ["analyze", str(root), "--entrypoint", "nb.ipynb"],
    ]
    for args in commands:
        outputs = []
        for n, seed in enumerate(["1", "2", "12345"]):
            env = {**_clean_env(), "PYTHONHASHSEED": seed, "SLIMBUILD_CACHE": str(tmp_path / f"cache-{args[0]}-{len(args)}-{n}")}
            for _warm in range(2):  # cold cache, then warm cache
                proc = subprocess.run([sys.executable, "-m", "slimbuild", *args], capture_output=True, env=env, cwd=tmp_path,
                                      timeout=120, check=False)
                assert b"Traceback" not in proc.stderr
                outputs.append((proc.returncode, proc.stdout, proc.stderr))
        assert all(o == outputs[0] for o in outputs[1:]), args
        assert outputs[0][0] in {OK, FINDINGS}


def test_A23_in_process_runs_identical(run_cli: RunCli, project: Project) -> None:
    root = _determinism_project(project)
    first = run_cli("check", str(root), "--json")
    second = run_cli("check", str(root), "--json")
    assert first == second
    assert first.code == FINDINGS
    doc = json.loads(first.out)
    assert doc["required"] == sorted(doc["required"], key=lambda r: r["name"])


# ---------------------------------------------------------------- A38-A40 resolution from data


def test_A38_popular_same_name_resolves_but_never_over_own_code_or_a_namespace(run_cli: RunCli, project: Project) -> None:
    root = project({
        "main.py": "import utils\nimport timm\nimport pytorch_lightning as pl\nimport google\nimport acme_internal_xyz\n",
        "utils.py": "X = 1\n",  # 'utils' is also a popular PyPI project: the project's own module wins
        "requirements.txt": "timm\n",
    })
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    by_name = {r["name"]: r for r in a["required"]}
    assert sorted(by_name) == ["pytorch-lightning", "timm"]
    assert by_name["pytorch-lightning"]["via"] == ["popular distribution of the same name"]
    assert by_name["timm"]["declared"] and names(a["missing"]) == ["pytorch-lightning"]
    assert modules(a["unresolved"]) == ["acme_internal_xyz", "google"]  # unknown names and namespace roots
    assert "utils.py" in a["files"]
    run = run_cli("check", str(root))
    assert run.code == FINDINGS and "Traceback" not in run.err
    assert "'pytorch_lightning' needs distribution 'pytorch-lightning'" in run.err
    assert "popular distribution of the same name" in run.err


def test_A39_several_providers_none_declared_named_by_rank(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import cv2\ntry:\n    import magic\nexcept ImportError:\n    magic = None\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    assert a["required"] == [] and modules(a["unresolved"]) == ["cv2", "magic"]
    sb001 = {f["message"].split("'")[1]: f for f in codes(a, "SB001")}
    assert sb001["cv2"]["severity"] == "error" and sb001["magic"]["severity"] == "warning"  # optional import
    listed = sb001["cv2"]["message"].split(": ", 1)[1].split(" (most downloaded first)")[0].split(", ")
    assert set(listed) == {"opencv-python", "opencv-python-headless", "opencv-contrib-python",
                           "opencv-contrib-python-headless"}
    ranks = [mapping.popularity_rank(n) for n in listed]
    assert ranks == sorted(ranks)  # type: ignore[type-var]
    assert codes(a, "SB003") == []
    run = run_cli("check", str(root))
    assert run.code == FINDINGS and "opencv-python-headless" in run.err and "Traceback" not in run.err
    declared = project({"main.py": "import cv2\n", "requirements.txt": "opencv-contrib-python-headless\n"})
    b = entry(ok_json(run_cli("analyze", str(declared), "--json")))
    assert names(b["required"]) == ["opencv-contrib-python-headless"] and b["unresolved"] == []
    assert "SB001" not in run_cli("check", str(declared)).err


def test_A40_two_declared_providers_warn_and_keep_one(run_cli: RunCli, project: Project) -> None:
    root = project({"main.py": "import cv2\n", "requirements.txt": "opencv-python-headless\nopencv-python\n"})
    a = entry(ok_json(run_cli("analyze", str(root), "--json")))
    ranks = {d: mapping.popularity_rank(d) or 0 for d in ("opencv-python", "opencv-python-headless")}
    chosen = min(ranks, key=lambda d: ranks[d])
    assert names(a["required"]) == [chosen]
    (rival,) = codes(a, "SB019")
    assert rival["severity"] == "warning" and ", ".join(sorted(ranks, key=lambda d: ranks[d])) in rival["message"]
    assert [u["name"] for u in a["unused"]] == [d for d in ranks if d != chosen]
