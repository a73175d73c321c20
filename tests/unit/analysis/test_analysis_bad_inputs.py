"""RELIABILITY.md group A (analysis-stage bad inputs), at the level of the pure stages.

Each test is named after its case id; the CLI-level counterparts are in
tests/cli/test_cli_analysis_bad_inputs.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from slimbuild.analysis import mapping
from slimbuild.analysis.finder import ModuleFinder
from slimbuild.analysis.imports import check_size, decode_source, parse_bytes, parse_source, scan_tokens
from slimbuild.analysis.notebook import load_notebook, neutralise_cell, notebook_script, parse_notebook
from slimbuild.analysis.parsing import parse_file_bytes
from slimbuild.analysis.resolve import ModuleIndex, resolve_modules
from slimbuild.analysis.stdlib import stdlib_modules
from slimbuild.errors import AnalysisError, ExitCode
from slimbuild.models import Location, ParsedSource, RawImport
from slimbuild.paths import IGNORED_DIRS
from tests.constants import ANALYSIS


def tops(parsed: ParsedSource) -> list[str]:
    return sorted({(i.module or "").split(".")[0] for i in parsed.imports if i.module})


def by_module(parsed: ParsedSource) -> dict[str, RawImport]:
    return {i.module: i for i in parsed.imports if i.module}


def nb_bytes(cells: list[dict[str, Any]], *, language: str | None = "python", nbformat: int = 4) -> bytes:
    meta: dict[str, Any] = {"language_info": {"name": language}} if language else {}
    return json.dumps({"nbformat": nbformat, "nbformat_minor": 5, "metadata": meta, "cells": cells}).encode()


def code(src: str | list[str]) -> dict[str, Any]:
    return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": src}


def md(src: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": src}


def test_exit_code_constant_matches_errors_module() -> None:
    assert AnalysisError("x").exit_code == ExitCode.ANALYSIS == ANALYSIS


# ---------------------------------------------------------------- A1


def test_A1_syntax_error_exit_3_with_file_line_col() -> None:
    with pytest.raises(AnalysisError) as ei:
        parse_source("import os\nx = (\n", "pkg/mod.py")
    assert ei.value.exit_code == ANALYSIS
    assert ei.value.message.startswith("pkg/mod.py:2:5: syntax error")
    assert "\n" not in ei.value.one_line()
    assert "--allow-unparseable" in ei.value.hint


def test_A1_syntax_error_in_notebook_cell_names_cell() -> None:
    with pytest.raises(AnalysisError) as ei:
        parse_source("x = (\n", "nb.ipynb", cell=4)
    assert ei.value.message.startswith("nb.ipynb[cell 4]:1:5:")


def test_A1_allow_unparseable_falls_back_to_token_scan() -> None:
    parsed = parse_source("import yaml\nfrom toml import loads\nx = (\n", "m.py", allow_unparseable=True)
    assert parsed.fallback
    assert tops(parsed) == ["toml", "yaml"]
    assert [(f.code, f.severity.value) for f in parsed.findings] == [("SB005", "warning")]
    assert "m.py:3:5" in parsed.findings[0].message


def test_A1_token_scan_handles_relative_and_aliased_imports() -> None:
    parsed = scan_tokens("from . import a as b, c\nfrom ..pkg.sub import (x,\n  y as z)\nimport p.q as r, s\n", "m.py")
    got = sorted((i.module or "", i.names, i.level) for i in parsed.imports)
    assert got == [("", ("a", "c"), 1), ("p.q", (), 0), ("pkg.sub", ("x", "y"), 2), ("s", (), 0)]


# ---------------------------------------------------------------- A2


@pytest.mark.parametrize("src", ["print 'x'\n", "try:\n    pass\nexcept ValueError, e:\n    pass\n", "exec 'x = 1'\n"])
def test_A2_python2_hint(src: str) -> None:
    with pytest.raises(AnalysisError) as ei:
        parse_source(src, "old.py")
    assert "Python 2 source?" in ei.value.hint
    assert ei.value.message.startswith("old.py:")


def test_A2_python3_syntax_error_has_no_python2_hint() -> None:
    with pytest.raises(AnalysisError) as ei:
        parse_source("def f(:\n    pass\n", "new.py")
    assert "Python 2" not in ei.value.hint


# ---------------------------------------------------------------- A3


@pytest.mark.parametrize("data", [b"# coding: bogus\nimport os\n", b"#!/usr/bin/python\n# -*- coding: bogus -*-\nimport os\n"])
def test_A3_unknown_codec_names_codec(data: bytes) -> None:
    with pytest.raises(AnalysisError) as ei:
        decode_source(data, "m.py")
    assert "bogus" in ei.value.message
    assert ei.value.message.startswith("m.py:")
    assert "coding" in ei.value.hint


def test_A3_unknown_codec_token_scan_when_allowed() -> None:
    parsed = parse_file_bytes(b"# coding: bogus\nimport yaml\n", "m.py", allow_unparseable=True, max_bytes=1000)
    assert parsed.fallback and tops(parsed) == ["yaml"]


# ---------------------------------------------------------------- A4


@pytest.mark.parametrize(
    ("data", "line", "offset", "codec"),
    [
        (b"import os\n\nx = '\xff'\n", 3, 16, "utf-8"),
        (b"x = '\xff'\nimport os\n", 1, 5, "utf-8"),
        (b"import os\nx = '\xe9\n", 2, 15, "utf-8"),
        (b"# coding: ascii\nx = '\xe9'\n", 2, 21, "ascii"),
        (b"# coding: utf-8\nimport os\nx = b'\xc3'\n", 3, 32, "utf-8"),
    ],
)
def test_A4_undecodable_reports_byte_offset(data: bytes, line: int, offset: int, codec: str) -> None:
    assert data[offset] >= 0x80
    with pytest.raises(AnalysisError) as ei:
        decode_source(data, "m.py")
    msg = ei.value.message
    assert msg.startswith(f"m.py:{line}: ")
    assert f"at offset {offset} as {codec}" in msg
    assert f"0x{data[offset]:02x}" in msg


# ---------------------------------------------------------------- A5


@pytest.mark.parametrize(
    ("data", "expected_text"),
    [
        (b"# -*- coding: latin-1 -*-\nimport yaml\ns = '\xe9'\n", "s = 'é'"),
        (b"\xef\xbb\xbfimport yaml\n", "import yaml"),
        (b"#!/usr/bin/env python\n# coding=cp1252\nimport yaml\ns = '\x80'\n", "s = '€'"),
        (b"import yaml\r\nif x:\r\n    import toml\r\n", "import yaml"),
    ],
    ids=["latin1", "bom", "shebang-cookie", "crlf"],
)
def test_A5_encodings_decoded_and_parsed(data: bytes, expected_text: str) -> None:
    text = decode_source(data, "m.py")
    assert expected_text in text
    assert not text.startswith("\ufeff")
    parsed = parse_bytes(data, "m.py")
    assert "yaml" in tops(parsed)
    assert not parsed.fallback
    assert by_module(parsed)["yaml"].line == data.replace(b"\r\n", b"\n").split(b"\n").index(
        next(ln for ln in data.replace(b"\r\n", b"\n").split(b"\n") if ln.endswith(b"import yaml"))
    ) + 1


# ---------------------------------------------------------------- A6


@pytest.mark.parametrize("data", [b"import os\x00\n", b"\x00\x01\x02\x03", b"\xa7\r\r\n\x00\x00\x00\x00" + b"\xe3" * 20])
def test_A6_binary_is_not_python_source(data: bytes) -> None:
    with pytest.raises(AnalysisError) as ei:
        decode_source(data, "m.py")
    assert "m.py: not Python source" in ei.value.message


def test_A6_nul_in_text_is_clean_error() -> None:
    # a NUL that reaches the parser as text (e.g. from a notebook) is not a crash
    with pytest.raises(AnalysisError):
        parse_source("import os\x00\n", "m.py")


# ---------------------------------------------------------------- A7

DEEP = [
    "x = " + "(" * 200_000,
    "x = " + "[" * 1000 + "]" * 1000,
    "".join("    " * i + "if x:\n" for i in range(1000)) + "    " * 1000 + "pass\n",
    "x = " + "not " * 100_000 + "x\n",
    "x = a" + ".b" * 100_000 + "\n",
    "x = 1" + "+1" * 200_000 + "\n",
    "x = f" + "()" * 100_000 + "\n",
    "x = " + "{" * 100_000,
]


@pytest.mark.parametrize("src", DEEP, ids=["parens", "brackets", "ifs", "unary", "attrs", "binop", "calls", "braces"])
def test_A7_deep_nesting_is_analysis_error_in_bounded_time(src: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(AnalysisError) as ei:
        parse_source(src, "deep.py")
    assert time.monotonic() - t0 < 10
    assert ei.value.exit_code == ANALYSIS
    assert ei.value.message.startswith("deep.py")


@pytest.mark.parametrize("src", DEEP[:2] + DEEP[3:4], ids=["parens", "brackets", "unary"])
def test_A7_deep_nesting_with_fallback_never_escapes(src: str) -> None:
    t0 = time.monotonic()
    try:
        parsed = parse_source("import yaml\n" + src, "deep.py", allow_unparseable=True)
    except AnalysisError:
        pass
    else:
        assert "yaml" in tops(parsed)
    assert time.monotonic() - t0 < 10


def test_A7_size_limit_checked_before_decoding() -> None:
    data = b"x" * 2049
    t0 = time.monotonic()
    with pytest.raises(AnalysisError) as ei:
        decode_source(data, "big.py", max_bytes=2048)
    assert time.monotonic() - t0 < 1
    assert "2,049 bytes" in ei.value.message and "2,048-byte limit" in ei.value.message
    assert "max-source-bytes" in ei.value.hint
    assert decode_source(b"x" * 2048, "ok.py", max_bytes=2048)


def test_A7_check_size_names_real_size() -> None:
    with pytest.raises(AnalysisError, match=r"f\.py: file is 50,000,000 bytes, over the 10-byte limit"):
        check_size(50_000_000, "f.py", 10)
    check_size(10, "f.py", 10)


def test_A7_notebook_size_limit() -> None:
    data = nb_bytes([code("import yaml\n")])
    with pytest.raises(AnalysisError, match=r"nb\.ipynb: notebook is"):
        load_notebook(data, "nb.ipynb", max_bytes=len(data) - 1)
    assert load_notebook(data, "nb.ipynb", max_bytes=len(data)).cells


def test_A7_deeply_nested_notebook_json_is_clean_error() -> None:
    with pytest.raises(AnalysisError, match=r"nb\.ipynb"):
        load_notebook(b"[" * 100_000 + b"]" * 100_000, "nb.ipynb")


def test_A7_huge_single_line_under_limit_parses_in_bounded_time() -> None:
    src = "import yaml\nx = '" + "a" * 5_000_000 + "'\n"
    t0 = time.monotonic()
    assert tops(parse_source(src, "m.py")) == ["yaml"]
    assert time.monotonic() - t0 < 10


# ---------------------------------------------------------------- A8


@pytest.mark.parametrize("data", [b"not json", b'{"nbformat": 4, "cells": [', b"", b'"just a string"', b"\xff\xfe{}"])
def test_A8_notebook_not_json_names_notebook(data: bytes) -> None:
    with pytest.raises(AnalysisError) as ei:
        load_notebook(data, "dir/nb.ipynb")
    assert ei.value.message.startswith("dir/nb.ipynb")
    assert ei.value.exit_code == ANALYSIS


def test_A8_truncated_notebook_says_truncated() -> None:
    data = nb_bytes([code("import yaml\n")])[:-10]
    with pytest.raises(AnalysisError, match=r"nb\.ipynb:\d+:\d+: notebook is not valid JSON .*truncated"):
        load_notebook(data, "nb.ipynb")


# ---------------------------------------------------------------- A9


def test_A9_source_string_and_list_same_cells() -> None:
    lines = ["import yaml\n", "%matplotlib inline\n", "from toml import loads"]
    as_list = load_notebook(nb_bytes([code(lines)]), "nb.ipynb")
    as_str = load_notebook(nb_bytes([code("".join(lines))]), "nb.ipynb")
    assert as_list == as_str
    assert parse_notebook(nb_bytes([code(lines)]), "nb.ipynb") == parse_notebook(nb_bytes([code("".join(lines))]), "nb.ipynb")
    assert tops(parse_notebook(nb_bytes([code(lines)]), "nb.ipynb")) == ["toml", "yaml"]


# ---------------------------------------------------------------- A10


def test_A10_nbformat3_parsed() -> None:
    nb = {
        "nbformat": 3, "nbformat_minor": 0, "metadata": {"name": ""},
        "worksheets": [{"cells": [
            {"cell_type": "heading", "source": "T", "level": 1},
            {"cell_type": "code", "language": "python", "input": ["import yaml\n", "%pylab inline\n"], "outputs": []},
            {"cell_type": "code", "language": "python", "input": "import toml\n", "outputs": []},
        ]}],
    }
    parsed = parse_notebook(json.dumps(nb).encode(), "v3.ipynb")
    assert tops(parsed) == ["toml", "yaml"]
    assert sorted(i.cell or 0 for i in parsed.imports) == [2, 3]


@pytest.mark.parametrize("major", [1, 2, 5, None, "4"])
def test_A10_unsupported_nbformat_is_error_not_skip(major: object) -> None:
    with pytest.raises(AnalysisError, match="unsupported nbformat"):
        load_notebook(json.dumps({"nbformat": major, "metadata": {}}).encode(), "nb.ipynb")


# ---------------------------------------------------------------- A11


@pytest.mark.parametrize(
    "meta",
    [
        {"language_info": {"name": "R"}},
        {"kernelspec": {"name": "ir", "language": "R"}},
        {"kernelspec": {"name": "julia-1.10", "display_name": "Julia"}},
        {"language_info": {"name": "scala"}, "kernelspec": {"name": "python3"}},
    ],
)
def test_A11_non_python_kernel_never_parsed(meta: dict[str, Any]) -> None:
    data = json.dumps({"nbformat": 4, "metadata": meta, "cells": [code("import yaml\n")]}).encode()
    with pytest.raises(AnalysisError, match=r"nb\.ipynb: notebook kernel language is '.+', not Python"):
        parse_notebook(data, "nb.ipynb")


def test_A11_missing_language_metadata_is_error() -> None:
    with pytest.raises(AnalysisError, match="names no kernel language") as ei:
        parse_notebook(nb_bytes([code("import yaml\n")], language=None), "nb.ipynb")
    assert "Jupyter" in ei.value.hint


def test_A11_python_kernelspec_without_language_info_is_python() -> None:
    data = json.dumps({"nbformat": 4, "metadata": {"kernelspec": {"name": "python3"}}, "cells": [code("import yaml\n")]}).encode()
    assert tops(parse_notebook(data, "nb.ipynb")) == ["yaml"]


# ---------------------------------------------------------------- A12

WHERE = Location("nb.ipynb", 0, 0, 1)


def test_A12_magics_become_pass_keeping_lines_and_blocks() -> None:
    src = (
        "%pip install xpkg\n!pip install ypkg\nif True:\n    %time import numpy\n    %matplotlib inline\n"
        "x = !ls\nobj?\n??obj\nimport yaml"
    )
    out, skipped, hints, written = neutralise_cell(src, WHERE)
    assert out.splitlines() == ["pass", "pass", "if True:", "    import numpy", "    pass", "pass", "pass", "pass", "import yaml"]
    assert skipped == "" and written == []
    assert [(loc.line, pkg) for loc, pkg in hints] == [(1, "xpkg"), (2, "ypkg")]


def test_A12_magic_line_continuation() -> None:
    src = "%pip install apkg \\\n    bpkg \\\n    cpkg\nimport yaml\n!pip install \\\n  -U dpkg\n"
    out, _, hints, _ = neutralise_cell(src, WHERE)
    assert out.splitlines() == ["pass", "", "", "import yaml", "pass", ""]
    assert sorted(pkg for _, pkg in hints) == ["apkg", "bpkg", "cpkg", "dpkg"]
    parse_source(out, "nb.ipynb", cell=1)


def test_A12_conda_and_get_ipython_installs_are_hints() -> None:
    src = ('%conda install -c conda-forge -y zpkg\n'
           'get_ipython().system("pip install qpkg")\n'
           "get_ipython().run_line_magic('pip', 'install wpkg')\n"
           "!python -m pip install --quiet vpkg==1.0\n"
           "%pip install -r requirements.txt\n")
    _, _, hints, _ = neutralise_cell(src, WHERE)
    assert sorted(pkg for _, pkg in hints) == ["qpkg", "vpkg==1.0", "wpkg", "zpkg"]


def test_A12_cell_magics_skipped_entirely() -> None:
    for head in ("%%bash", "%%sh", "%%html", "%%javascript", "%%writefile notes.txt", "%%R"):
        out, skipped, _, written = neutralise_cell(f"{head}\nimport notpython\n", WHERE)
        assert out.strip() == "" and skipped.startswith("%%") and written == []


def test_A12_python_cell_magics_keep_body() -> None:
    out, _, _, _ = neutralise_cell("%%time\nimport yaml\n", WHERE)
    assert out.splitlines() == ["", "import yaml"]


def test_A12_writefile_py_records_module() -> None:
    out, skipped, _, written = neutralise_cell("%%writefile helpers.py\nimport requests\n", WHERE)
    assert written == ["helpers.py"] and skipped == "%%writefile helpers.py"
    assert "import requests" in out


def test_A12_notebook_pip_hints_not_imports() -> None:
    parsed = parse_notebook(nb_bytes([code("%pip install xpkg\nimport yaml\n"), code("%%bash\npip install ypkg\n")]), "nb.ipynb")
    assert tops(parsed) == ["yaml"]
    assert sorted(p for _, p in parsed.pip_hints) == ["xpkg", "ypkg"]
    assert [loc.cell for loc, _ in sorted(parsed.pip_hints, key=lambda h: h[1])] == [1, 2]


def test_A12_notebook_script_leaves_skipped_cells_out() -> None:
    data = nb_bytes([code("%%bash\necho hi\n"), code("%%writefile h.py\nX = 1\n"), code("%pip install x\nimport yaml\n")])
    script = notebook_script(data, "nb.ipynb")
    assert "echo hi" not in script and "X = 1" not in script
    assert "# --- cell 3 ---\npass\nimport yaml\n" in script


# ---------------------------------------------------------------- A13


def test_A13_bad_cell_reported_good_cells_kept() -> None:
    data = nb_bytes([md("# t"), code("import yaml\n"), code("x = (\n"), code("import toml\n")])
    parsed = parse_notebook(data, "nb.ipynb")
    assert tops(parsed) == ["toml", "yaml"]
    bad = [f for f in parsed.findings if f.code == "SB008"]
    assert len(bad) == 1
    assert bad[0].render().startswith("nb.ipynb[cell 3]: SB008 cell skipped: syntax error")
    assert bad[0].severity.value == "error"


def test_A13_adding_a_broken_cell_leaves_other_imports_unchanged() -> None:
    good = [code("import yaml\n"), code("from toml import loads\n")]
    base = parse_notebook(nb_bytes(good), "nb.ipynb")
    broken = parse_notebook(nb_bytes([*good, code("def (:\n")]), "nb.ipynb")
    assert base.imports == broken.imports


def test_A13_bad_cell_with_fallback_is_token_scanned() -> None:
    parsed = parse_notebook(nb_bytes([code("import yaml\nx = (\n")]), "nb.ipynb", allow_unparseable=True)
    assert tops(parsed) == ["yaml"]
    assert [(f.code, f.location.cell) for f in parsed.findings] == [("SB005", 1)]


# ---------------------------------------------------------------- A14

A14 = """\
import importlib
from importlib import import_module
m = importlib.import_module("a1")
xs = [importlib.import_module("a2"), {"k": __import__("a3")}]
f(importlib.import_module(name="a4"))
g = lambda: import_module("a5")
def h(mod=importlib.import_module("a6")):
    return mod
x = importlib.import_module(f"pkg.{n}")
y = import_module(var)
z = __import__(var)
w = importlib.import_module(".rel", package="pkg")
obj.import_module(var)
"""


def test_A14_literal_dynamic_imports_any_position() -> None:
    parsed = parse_source(A14, "m.py")
    dyn = sorted(i.module or "" for i in parsed.imports if i.dynamic)
    assert dyn == ["a1", "a2", "a3", "a4", "a5", "a6", "rel"]
    assert by_module(parsed)["rel"].level == 1


def test_A14_non_literal_dynamic_imports_located() -> None:
    parsed = parse_source(A14, "m.py")
    assert sorted((loc.line, loc.col) for loc in parsed.dynamic_unresolved) == [(9, 5), (10, 5), (11, 5)]


def test_A14_dynamic_import_in_cell_carries_cell() -> None:
    parsed = parse_source("import importlib\nimportlib.import_module(x)\n", "nb.ipynb", cell=7)
    assert parsed.dynamic_unresolved == (Location("nb.ipynb", 2, 1, 7),)


# ---------------------------------------------------------------- A15

A15 = """\
import typing
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import tc_a
else:
    import rt_else
if typing.TYPE_CHECKING:
    from tc_b import X
try:
    import opt_a
except ImportError:
    import opt_fallback
try:
    import opt_b
except (ValueError, ModuleNotFoundError):
    pass
try:
    import not_opt
except ValueError:
    pass
def f():
    import in_func
class C:
    import in_class
    async def m(self):
        from in_method import y
while True:
    with ctx():
        import in_with
    break
match v:
    case 1:
        import in_match
"""


def test_A15_type_checking_optional_and_nested_imports() -> None:
    got = {m: (i.optional, i.type_checking) for m, i in by_module(parse_source(A15, "m.py")).items()}
    assert got == {
        "typing": (False, False),
        "tc_a": (False, True),
        "rt_else": (False, False),
        "tc_b": (False, True),
        "opt_a": (True, False),
        "opt_fallback": (True, False),
        "opt_b": (True, False),
        "not_opt": (False, False),
        "in_func": (False, False),
        "in_class": (False, False),
        "in_method": (False, False),
        "in_with": (False, False),
        "in_match": (False, False),
    }


# ---------------------------------------------------------------- A16


def test_A16_sys_path_entries_recorded() -> None:
    parsed = parse_source('import sys\nsys.path.append("lib")\nsys.path.insert(0, "vendor")\nsys.path.append(d)\n', "m.py")
    assert parsed.sys_path_entries == ("lib", "vendor", "<computed>:4")  # a computed entry: only its line (A50)


def test_A16_sys_path_root_outside_project_or_in_ignored_dir_refused(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    for d in ("lib", ".venv/lib/python3.11/site-packages", "build/lib", "site-packages"):
        (root / d).mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    finder = ModuleFinder(root.resolve(), [root])
    assert finder.add_root(root / "lib")
    assert not finder.add_root(root / "lib")  # already known
    assert not finder.add_root(tmp_path / "outside")
    assert not finder.add_root(root / "missing")
    for d in (".venv/lib/python3.11/site-packages", "build/lib", "site-packages"):
        assert not finder.add_root(root / d), d


# ---------------------------------------------------------------- A17


def test_A17_namespace_package_and_shadowing_modules_are_first_party(tmp_path: Path) -> None:
    (tmp_path / "nsp" / "sub").mkdir(parents=True)
    (tmp_path / "nsp" / "sub" / "deep.py").write_text("")
    (tmp_path / "requests.py").write_text("")
    (tmp_path / "utils").mkdir()
    (tmp_path / "utils" / "__init__.py").write_text("")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("")
    finder = ModuleFinder(tmp_path.resolve(), [tmp_path])
    assert finder.is_first_party("nsp")
    assert finder.module_exists("nsp.sub.deep")
    assert finder.files_for("nsp.sub.deep") == [(tmp_path / "nsp" / "sub" / "deep.py").resolve()]
    assert finder.is_first_party("requests") and finder.is_first_party("utils")
    assert not finder.is_first_party("data")  # a directory without Python code is not a package
    assert not finder.is_first_party("yaml")


# ---------------------------------------------------------------- A18


def test_A18_unmapped_import_never_resolved_to_same_name() -> None:
    res = resolve_modules(
        ["internal_lib", "internal_lib.sub"], user_mapping={}, environment=None, wheels=None, declared=["requests"]
    )
    assert all(r.distribution is None and r.via == "unresolved" for r in res.values())


def test_A18_declared_or_mapped_name_resolves() -> None:
    res = resolve_modules(["internal_lib", "acme"], user_mapping={"internal_lib": "Acme_Internal"}, environment=None, wheels=None,
                          declared=["ACME"])
    assert (res["internal_lib"].distribution, res["internal_lib"].via) == ("acme-internal", "mapping")
    assert (res["acme"].distribution, res["acme"].via) == ("acme", "declared name")


# ---------------------------------------------------------------- A19

A19 = {
    "sklearn": "scikit-learn",
    "sklearn.linear_model": "scikit-learn",
    "yaml": "pyyaml",
    "google.cloud.storage": "google-cloud-storage",
    "google.cloud.storage.blob": "google-cloud-storage",
    "bs4": "beautifulsoup4",
}


def test_A19_table_maps_import_names_to_distributions() -> None:
    for module, dist in A19.items():
        found = mapping.known_distribution(module)
        assert found is not None and found.lower() == dist, module
    assert mapping.known_distribution("google") is None
    for module in ("cv2", "PIL.Image"):  # several distributions provide these: none is the answer alone
        assert mapping.known_distribution(module) is None and len(mapping.providers(module)) > 1, module
    assert mapping.known_distribution("google.cloud") is None
    assert mapping.known_distribution("google.cloud.unknownthing") is None


def test_A19_resolution_normalises_names() -> None:
    res = resolve_modules(list(A19), user_mapping={}, environment=None, wheels=None, declared=[])
    assert {m: r.distribution for m, r in res.items()} == A19
    assert {r.via for r in res.values()} == {"bundled table"}


def test_A19_environment_metadata_wins_over_table() -> None:
    env = ModuleIndex.from_dists("py", {"opencv-python-headless": ["cv2"], "Pillow_SIMD": ["PIL"]})
    res = resolve_modules(["cv2", "PIL.Image", "yaml"], user_mapping={}, environment=env, wheels=None, declared=[])
    assert res["cv2"].distribution == "opencv-python-headless"
    assert res["PIL.Image"].distribution == "pillow-simd"
    assert res["yaml"].distribution == "pyyaml"


# ---------------------------------------------------------------- A20


def test_A20_stdlib_judged_for_target_version() -> None:
    assert "tomllib" in stdlib_modules("3.11") and "tomllib" not in stdlib_modules("3.10")
    for mod in ("distutils", "imp", "asynchat"):
        assert mod in stdlib_modules("3.11") and mod not in stdlib_modules("3.12"), mod
    assert "os" in stdlib_modules("3.12") and "__future__" in stdlib_modules("3.10")


# ---------------------------------------------------------------- A21


def test_A21_environment_and_build_dirs_ignored() -> None:
    expected = {".venv", "venv", "site-packages", "dist-packages", "build", "dist", "__pycache__", ".ipynb_checkpoints"}
    assert expected <= IGNORED_DIRS


def test_A21_ignored_top_level_names_never_first_party(tmp_path: Path) -> None:
    for d in ("build", "site-packages", ".venv"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "__init__.py").write_text("")
    finder = ModuleFinder(tmp_path.resolve(), [tmp_path])
    assert not finder.is_first_party("build")


# ---------------------------------------------------------------- A22


@pytest.mark.parametrize("rel", ["a b.py", "it's.py", "-x.py", "new\nline.py", "caf\udce9.py"])
def test_A22_awkward_names_in_locations_and_errors(rel: str) -> None:
    parsed = parse_bytes(b"import yaml\n", rel)
    assert parsed.path == rel and tops(parsed) == ["yaml"]
    with pytest.raises(AnalysisError) as ei:
        parse_bytes(b"x = (\n", rel)
    assert "\n" not in ei.value.one_line()


# ---------------------------------------------------------------- A23


def test_A23_parse_results_deterministic() -> None:
    src = A14 + A15
    assert parse_source(src, "m.py") == parse_source(src, "m.py")
    data = nb_bytes([code("%pip install b a c\nimport yaml\n"), code("x = (\n"), code("import toml\n")])
    assert parse_notebook(data, "nb.ipynb") == parse_notebook(data, "nb.ipynb")
