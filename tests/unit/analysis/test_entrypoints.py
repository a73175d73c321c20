"""Entrypoints as users write them (A32-A37): discovery over a layout, pkg:func, __main__.py by path, notebooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimbuild.analysis.discover import (
    candidate_names,
    command_target,
    config_line,
    discover,
    dockerfile_command,
)
from slimbuild.analysis.entrypoint import resolve_entrypoint, select_entrypoints
from slimbuild.analysis.graph import trace
from slimbuild.analysis.notebook import notebook_script, parse_notebook
from slimbuild.analysis.parsing import Parser
from slimbuild.config import load_settings
from slimbuild.errors import AnalysisError, ConfigError, SlimbuildError
from slimbuild.image.plan import VENV_PYTHON, plan_launch
from tests.constants import ANALYSIS, USAGE


class FakeLayout:
    """A project given as {path: text}; directories are implied by the paths."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self.read_paths: list[str] = []

    def root_files(self) -> frozenset[str]:
        return frozenset(p for p in self.files if "/" not in p)

    def read(self, rel: str) -> str | None:
        self.read_paths.append(rel)
        return self.files.get(rel)

    def exists(self, rel: str) -> bool:
        return rel in self.files or any(p.startswith(rel.rstrip("/") + "/") for p in self.files)

    def notebooks(self) -> tuple[str, ...]:
        return tuple(sorted(p for p in self.files if p.endswith(".ipynb")))


def _specs(files: dict[str, str], project: dict[str, Any] | None = None) -> list[tuple[str, str, int]]:
    return [(c.spec, c.source.path, c.source.line) for c in discover(FakeLayout(files), project or {})]


def _parser() -> Parser:
    return Parser({}, allow_unparseable=False, max_bytes=10 * 1024 * 1024)


MAIN = 'if __name__ == "__main__":\n    main()\n'


# ---------------------------------------------------------------- A32 discovery: each layout, precedence


@pytest.mark.parametrize(
    ("files", "project", "expected"),
    [
        ({"main.py": "", "src/t/cli.py": ""}, {"scripts": {"t": "t.cli:main"}}, [("t.cli:main", "pyproject.toml", 0)]),
        ({"Dockerfile": 'FROM python:3.11\nWORKDIR /app\nCOPY . .\nCMD ["python", "train.py"]\n', "train.py": ""}, {},
         [("train.py", "Dockerfile", 4)]),
        ({"Dockerfile": "FROM python\nCMD python -u /app/src/job.py --fast\n", "src/job.py": ""}, {},
         [("src/job.py", "Dockerfile", 2)]),
        ({"Dockerfile": 'FROM python\nENTRYPOINT ["python", "-m"]\nCMD ["pkg"]\n', "pkg/__main__.py": ""}, {},
         [("pkg", "Dockerfile", 2)]),
        ({"Dockerfile": "FROM python\nCMD streamlit run app.py --server.port 8501\n", "app.py": "", "main.py": ""}, {},
         [("streamlit run app.py --server.port 8501", "Dockerfile", 2)]),
        ({"Dockerfile": 'FROM python\nCMD ["sh", "-c", "cd /app && uv run python -m streamlit run ui.py"]\n', "ui.py": ""},
         {}, [("streamlit run ui.py", "Dockerfile", 2)]),
        ({"Procfile": "web: python app.py\nworker: python -m jobs.worker\n", "app.py": "", "jobs/worker.py": ""}, {},
         [("app.py", "Procfile", 1), ("jobs.worker", "Procfile", 2)]),
        ({"streamlit_app.py": "", "README.md": ""}, {}, [("streamlit_app.py", "streamlit_app.py", 0)]),
        ({"app.py": "", "main.py": ""}, {}, [("app.py", "app.py", 0), ("main.py", "main.py", 0)]),
        ({"tool.py": "import os\n" + MAIN, "helpers.py": "", "setup.py": MAIN, "test_x.py": MAIN}, {},
         [("tool.py", "tool.py", 2)]),
        ({"a.ipynb": "{}", "nb/b.ipynb": "{}", "utils.py": ""}, {}, [("a.ipynb", "a.ipynb", 0), ("nb/b.ipynb", "nb/b.ipynb", 0)]),
        ({"a.py": "", "b.py": ""}, {}, []),
    ],
    ids=["project-scripts", "dockerfile-exec", "dockerfile-shell-abs", "entrypoint-plus-cmd", "streamlit-run",
         "sh-c-uv-run", "procfile", "streamlit-app", "conventional-several", "main-guard", "notebooks", "none"],
)
def test_A32_discovery_per_layout(files: dict[str, str], project: dict[str, Any], expected: list[tuple[str, str, int]]) -> None:
    assert _specs(files, project) == expected


def test_A32_precedence_scripts_then_deployment_then_names_then_guards_then_notebooks() -> None:
    files = {
        "Dockerfile": 'FROM x\nCMD ["python", "serve.py"]\n', "serve.py": "", "main.py": "", "cli.py": MAIN, "nb.ipynb": "{}",
    }
    assert _specs(files, {"scripts": {"t": "t:main"}}) == [("t:main", "pyproject.toml", 0)]
    assert _specs(files) == [("serve.py", "Dockerfile", 2)]
    del files["Dockerfile"]
    assert _specs(files) == [("main.py", "main.py", 0)]
    del files["main.py"]
    assert _specs(files) == [("cli.py", "cli.py", 1)]
    files["cli.py"] = ""
    assert _specs(files) == [("nb.ipynb", "nb.ipynb", 0)]


def test_A32_dockerfile_command_of_the_final_stage_and_unknown_commands() -> None:
    text = "FROM a AS build\nCMD python build.py\n\nFROM b\n# a comment\nCMD [\"python\", \\\n  \"run.py\"]\n"
    assert dockerfile_command(text) == (6, "CMD", ["python", "run.py"], "")
    assert dockerfile_command("FROM a\nRUN echo\n") is None
    exists = {"x.py", "pkg"}.__contains__
    assert command_target(["gunicorn", "app:app"], "", exists) == ""  # a command that is not Python on a project file
    assert command_target(["python", "-c", "print(1)"], "", exists) == ""
    assert command_target(["python", "missing.py"], "", exists) == ""
    assert command_target(["python", "../x.py"], "", exists) == ""
    assert command_target(["/usr/local/bin/python3.11", "-X", "dev", "x.py"], "", exists) == "x.py"
    assert command_target(["poetry", "run", "python", "-m", "pkg"], "", exists) == "pkg"
    in_src = {"src/main.py"}.__contains__
    assert command_target(["python", "main.py"], "/app/src", in_src) == "src/main.py"  # WORKDIR is the project's src/
    assert command_target(["python", "main.py"], "", in_src) == ""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=8), st.text(max_size=20))
def test_A32_command_target_fuzz_never_a_traceback(argv: list[str], workdir: str) -> None:
    found = command_target(argv, workdir, {"x.py", "pkg"}.__contains__)
    assert found in {"", "x.py", "pkg"} or found.startswith(("pkg", "streamlit run x.py"))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_A32_dockerfile_and_procfile_fuzz_never_a_traceback(text: str) -> None:
    layout = FakeLayout({"Dockerfile": text, "Procfile": text, "x.py": ""})
    discover(layout, {})  # no exception of any kind


def test_A32_names_are_distinct_and_the_config_line_pins_one() -> None:
    cands = discover(FakeLayout({"a/eda.ipynb": "{}", "b/eda.ipynb": "{}", "c.ipynb": "{}"}), {})
    assert candidate_names(cands) == ["a-eda", "b-eda", "c"]
    assert config_line("a/eda.ipynb") == '[tool.slimbuild] entrypoint = "a/eda.ipynb"'


def test_A32_discovery_reads_only_the_few_files_it_needs() -> None:
    layout = FakeLayout({"app.py": MAIN, "other.py": MAIN, "Dockerfile": "FROM x\n", "pkg/deep.py": MAIN})
    assert [c.spec for c in discover(layout, {})] == ["app.py"]
    assert layout.read_paths == ["Dockerfile"]


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_A32_one_candidate_says_how_it_was_found(tmp_path: Path) -> None:
    root = _write(tmp_path, {"Procfile": "web: python app.py\n", "app.py": "", "main.py": ""})
    ((name, spec, (note,)),) = select_entrypoints(load_settings(root, {}, env={}))
    assert (name, spec) == ("app", "app.py")
    assert note is not None and note.code == "SB016" and str(note.location) == "Procfile:1"
    assert "Procfile's web process" in note.message and 'entrypoint = "app.py"' in note.message


def test_A32_several_candidates_each_analysed_single_is_usage_error(tmp_path: Path) -> None:
    root = _write(tmp_path, {"app.py": "", "main.py": ""})
    settings_ = load_settings(root, {}, env={})
    found = select_entrypoints(settings_)
    assert [(n, s) for n, s, _ in found] == [("app", "app.py"), ("main", "main.py")]
    assert all(note.code == "SB016" and "one of 2, each analysed" in note.message for _, _, (note,) in found)
    with pytest.raises(ConfigError) as err:
        select_entrypoints(settings_, single=True)
    assert err.value.exit_code == USAGE
    assert "2 entrypoint candidates" in err.value.message and "main.py" in err.value.message
    assert 'entrypoint = "app.py"' in err.value.hint
    # a configured entrypoint is never second-guessed, and carries no note
    assert select_entrypoints(settings_, "main.py", single=True) == [("main", "main.py", ())]


def test_A37_discovered_notebooks_not_in_python_are_skipped_with_a_notice(tmp_path: Path) -> None:
    def nb(language: str | None, src: str = "x = 1\n") -> str:
        meta = {"language_info": {"name": language}} if language else {}
        cells = [{"cell_type": "code", "source": src, "metadata": {}, "outputs": []}]
        return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": meta, "cells": cells})

    root = _write(tmp_path, {"a.ipynb": nb("python"), "b.ipynb": nb("R"), "c.ipynb": nb(None), "d.ipynb": nb(None, "")})
    found = select_entrypoints(load_settings(root, {}, env={}))
    assert [s for _, s, _ in found] == ["a.ipynb", "d.ipynb"]
    notes = [str(f.location) + " " + f.message for f in found[0][2][1:]]
    assert notes == ["b.ipynb entrypoint candidate 'b.ipynb' skipped: its kernel language is 'r'",
                     "c.ipynb entrypoint candidate 'c.ipynb' skipped: it names no kernel language"]
    for rel in ("a.ipynb", "d.ipynb"):
        (root / rel).unlink()
    with pytest.raises(AnalysisError) as err:
        select_entrypoints(load_settings(root, {}, env={}))
    assert "nothing to build" in err.value.message and "not Python" in err.value.message
    assert "b.ipynb (its kernel language is 'r')" in err.value.message


def test_A32_streamlit_run_spec_traced_as_the_script_and_served_in_the_image(tmp_path: Path) -> None:
    root = _write(tmp_path, {"ui/app.py": "import helpers\n", "ui/helpers.py": "import yaml\n"})
    entry = resolve_entrypoint(root, "app", "streamlit run ui/app.py --server.port=8501")
    assert (entry.kind, entry.path, entry.runner, entry.args) == ("script", "ui/app.py", "streamlit", ("--server.port=8501",))
    graph = trace(root, entry, target_python="3.11", parser=_parser(), read_digest=lambda p: "")
    assert graph.files == ("ui/app.py", "ui/helpers.py")
    launch = plan_launch(entry.kind, entry.path, entry.module, entry.function, graph.files, entry.runner, entry.args)
    assert launch.argv == (VENV_PYTHON, "-m", "streamlit", "run", "/app/ui/app.py", "--server.port=8501")
    assert load_settings(root, {"entrypoints": {}}, env={"SLIMBUILD_ENTRYPOINT": "streamlit run ui/app.py"}).entrypoints == {
        "app": "streamlit run ui/app.py"
    }
    for bad in ("streamlit run", "streamlit run 'x", "streamlit run data.csv"):
        with pytest.raises(ConfigError) as err:
            resolve_entrypoint(root, "app", bad)
        assert err.value.exit_code == USAGE


# ---------------------------------------------------------------- A33 pkg:func


def test_A33_pkg_func_traced_from_init_and_launched(tmp_path: Path) -> None:
    root = _write(tmp_path, {"pkg/__init__.py": "from .core import run\n", "pkg/core.py": "import yaml\ndef run(): pass\n"})
    entry = resolve_entrypoint(root, "pkg", "pkg:run")
    assert (entry.kind, entry.path, entry.module, entry.package, entry.function) == (
        "module", "pkg/__init__.py", "pkg", "pkg", "run"
    )
    graph = trace(root, entry, target_python="3.11", parser=_parser(), read_digest=lambda p: "")
    assert graph.files == ("pkg/__init__.py", "pkg/core.py")
    assert [s.module for s in graph.third_party] == ["yaml"]
    launch = plan_launch(entry.kind, entry.path, entry.module, entry.function, graph.files)
    assert launch.argv == (VENV_PYTHON, "-c", "import sys; from pkg import run as f; sys.exit(f())")


def test_A33_src_pkg_func(tmp_path: Path) -> None:
    root = _write(tmp_path, {"src/pkg/__init__.py": "async def main(): pass\n"})
    entry = resolve_entrypoint(root, "pkg", "src/pkg:main")
    assert (entry.path, entry.module) == ("src/pkg/__init__.py", "pkg")
    assert plan_launch(entry.kind, entry.path, entry.module, entry.function, [entry.path]).pythonpath == ("/app/src",)


@pytest.mark.parametrize(
    "source",
    ["def main(): pass\n", "main = lambda: 0\n", "from .cli import main\n", "try:\n    from x import main\nexcept ImportError:\n"
     "    main = None\n", "if True:\n    class main: pass\n", "from x import *\n", "def __getattr__(n): pass\n"],
    ids=["def", "assign", "import", "try", "class-in-if", "star", "getattr"],
)
def test_A34_function_defined_in_any_top_level_form(tmp_path: Path, source: str) -> None:
    root = _write(tmp_path, {"pkg/__init__.py": source, "pkg/cli.py": "def main(): pass\n"})
    assert resolve_entrypoint(root, "pkg", "pkg:main").function == "main"


def test_A34_missing_function_exit_3_naming_it(tmp_path: Path) -> None:
    root = _write(tmp_path, {"pkg/__init__.py": "def run(): pass\ndef other(): pass\n", "tool.py": "def helper(): pass\n",
                             "ns/x.py": ""})
    with pytest.raises(AnalysisError) as err:
        resolve_entrypoint(root, "pkg", "pkg:rnu")
    assert err.value.exit_code == ANALYSIS
    assert "'rnu'" in err.value.message and "pkg/__init__.py" in err.value.message and "pkg:run" in err.value.hint
    for spec, needle in [("tool.py:main", "tool.py"), ("pkg.sub:main", "not found"), ("ns:main", "no __init__.py")]:
        with pytest.raises(AnalysisError) as err:
            resolve_entrypoint(root, "x", spec)
        assert needle in err.value.message and err.value.exit_code == ANALYSIS


def test_A34_unparseable_module_is_left_to_the_trace(tmp_path: Path) -> None:
    root = _write(tmp_path, {"pkg/__init__.py": "def (:\n"})
    assert resolve_entrypoint(root, "pkg", "pkg:main").path == "pkg/__init__.py"  # the trace reports file:line


# ---------------------------------------------------------------- A35 __main__.py by path


@pytest.mark.parametrize("base", ["", "src/"], ids=["root", "src"])
def test_A35_main_by_path_runs_as_python_m_with_relative_imports(tmp_path: Path, base: str) -> None:
    root = _write(tmp_path, {f"{base}pkg/__init__.py": "", f"{base}pkg/__main__.py": "from .helper import go\nfrom . import io\n",
                             f"{base}pkg/helper.py": "import yaml\n", f"{base}pkg/io.py": "import toml\n"})
    entry = resolve_entrypoint(root, "pkg", f"{base}pkg/__main__.py")
    assert (entry.kind, entry.module, entry.package) == ("package", "pkg.__main__", "pkg")
    graph = trace(root, entry, target_python="3.11", parser=_parser(), read_digest=lambda p: "")
    assert [f.code for f in graph.findings] == []  # no SB009: the relative imports are followed
    assert sorted(s.module for s in graph.third_party) == ["toml", "yaml"]
    launch = plan_launch(entry.kind, entry.path, entry.module, entry.function, graph.files)
    assert launch.argv == (VENV_PYTHON, "-m", "pkg")
    assert launch.pythonpath == (("/app/src",) if base else ())


def test_A35_root_main_stays_a_script(tmp_path: Path) -> None:
    root = _write(tmp_path, {"__main__.py": "import os\n"})
    assert resolve_entrypoint(root, "x", "__main__.py").kind == "script"


# ---------------------------------------------------------------- A36 notebooks


def _nb(cells: list[dict[str, Any]], metadata: dict[str, Any] | None = None) -> bytes:
    meta = {"language_info": {"name": "python"}} if metadata is None else metadata
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": meta, "cells": cells}).encode()


def _code(src: str, tags: list[str] | None = None) -> dict[str, Any]:
    return {"cell_type": "code", "source": src, "metadata": {"tags": tags or []}, "outputs": [], "execution_count": None}


@pytest.mark.parametrize(
    "data",
    [_nb([]), _nb([], metadata={}), _nb([{"cell_type": "markdown", "source": "# T"}, _code("  \n")], metadata={})],
    ids=["no-cells", "no-cells-no-metadata", "markdown-and-empty-code"],
)
def test_A36_empty_notebook_is_nothing_to_trace(data: bytes) -> None:
    parsed = parse_notebook(data, "nb.ipynb")
    assert parsed.imports == () and parsed.findings == ()


def test_A36_raises_exception_cells_skipped_in_trace_and_script() -> None:
    raising = [_code("import nothere\n1/0\n", ["raises-exception"]), _code("x = (\n", ["raises-exception"])]
    data = _nb([_code("import yaml\n"), *raising])
    parsed = parse_notebook(data, "nb.ipynb")
    assert [i.module for i in parsed.imports] == ["yaml"] and parsed.findings == ()
    script = notebook_script(data, "nb.ipynb")
    assert "nothere" not in script and "import yaml" in script


def test_A36_percent_file_read_like_writefile() -> None:
    data = _nb([_code("%%file helpers.py\nimport toml\n"), _code("import helpers\n")])
    parsed = parse_notebook(data, "nb.ipynb")
    assert parsed.written_modules == ("helpers.py",)
    assert sorted(i.module or "" for i in parsed.imports) == ["helpers", "toml"]
    assert "import toml" not in notebook_script(data, "nb.ipynb")  # the cell writes a file; it is not run as code


def test_A36_bad_notebook_still_a_slimbuild_error() -> None:
    with pytest.raises(SlimbuildError):
        parse_notebook(b"", "nb.ipynb")  # a 0-byte file is a truncated notebook (A8), not an empty one


@pytest.mark.parametrize(
    "dockerfile",
    [b"FROM x\nCMD [\"python\", \"app\xff\xfe.py\"]\n", b"\x00\x01\x02" * 1000,
     b"FROM x\n" + b"# pad\n" * 200_000 + b"CMD python job.py\n"],
    ids=["undecodable", "binary", "huge"],
)
def test_A32_undecodable_binary_or_huge_dockerfile_is_no_evidence(tmp_path: Path, dockerfile: bytes) -> None:
    root = _write(tmp_path, {"job.py": "", "main.py": ""})
    (root / "Dockerfile").write_bytes(dockerfile)
    assert [s for _, s, _ in select_entrypoints(load_settings(root, {}, env={}))] == ["main.py"]
