"""`slimbuild trace -- python script.py` on small projects: real subprocesses, real audit hooks (L5-L8)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.constants import OK, USAGE

CLI = Callable[..., Run]
Project = Callable[[dict[str, str | bytes]], Path]

MAIN = """\
import importlib
import multiprocessing
import subprocess
import sys
from pathlib import Path

import helper


def work(x):
    import childonly  # imported in the children only
    return childonly.double(x)


if __name__ == "__main__":
    plugin = importlib.import_module(Path("plugin.txt").read_text().strip())
    print("rows", helper.rows(Path("data/in.csv")), plugin.NAME)
    for method in ("fork", "spawn"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            print(method, pool.map(work, [1, 2]))
    subprocess.run([sys.executable, "-c", "import fractions"], check=True)
    subprocess.run([sys.executable, "-I", "-c", "import colorsys"], check=True)
"""

FILES: dict[str, str | bytes] = {
    "main.py": MAIN,
    "helper.py": "def rows(path):\n    return len(path.read_text().splitlines())\n",
    "childonly.py": "def double(x):\n    return 2 * x\n",
    "plugins/__init__.py": "",
    "plugins/fancy.py": "NAME = 'fancy'\n",
    "plugin.txt": "plugins.fancy\n",
    "data/in.csv": "a,b\n1,2\n",
    "pyproject.toml": '[project]\nname = "demo"\n\n[tool.slimbuild]\nentrypoint = "main.py"\n',
}


def _trace(run_cli: CLI, root: Path, *command: str, replace: bool = False) -> Run:
    return run_cli("trace", str(root), "--python", sys.executable, *(["--replace"] if replace else []), "--", *command)


def _doc(root: Path) -> dict[str, object]:
    return json.loads((root / "slimbuild.trace.json").read_text())  # type: ignore[no-any-return]


def test_L5_trace_records_imports_opens_and_python_children(
    project: Project, run_cli: CLI, capfd: pytest.CaptureFixture[str]
) -> None:
    root = project(FILES)
    run = _trace(run_cli, root, "python", "main.py")
    assert run.code == OK, run.err
    out = capfd.readouterr().out
    assert "rows 2 fancy" in out and "fork [2, 4]" in out and "spawn [2, 4]" in out  # its output passes through
    doc = _doc(root)
    assert doc["schema"] == "slimbuild-trace" and doc["version"] == 2 and doc["project"] == "demo"
    modules = doc["modules"]
    assert isinstance(modules, dict)
    assert modules["helper"] == {"file": "helper.py", "imported_by": ["main.py:7"]}
    assert modules["plugins.fancy"]["imported_by"] == ["main.py:16"]  # importlib.import_module, by its caller
    assert modules["childonly"] == {"file": "childonly.py", "imported_by": ["main.py:11"]}  # from fork and spawn workers
    assert "fractions" in doc["stdlib"]  # the `python -c` child is traced through the environment
    assert "colorsys" not in doc["stdlib"]  # `python -I` ignores PYTHONPATH: not traced, and said so
    (command,) = doc["commands"]
    assert command["argv"] == ["python", "main.py"]
    assert int(run.out.split("(")[1].split()[0]) >= 6  # "traced ... (N Python processes)": main, workers, children
    assert [u for u in command["untraced"] if "-I" in u] == [command["untraced"][0]]
    assert "was not traced" in run.err and "-I -c 'import colorsys'" in run.err
    assert {"data/in.csv", "plugin.txt"} <= set(doc["opened"])
    assert not any(str(root) in json.dumps(v) for k, v in doc.items() if k != "outside")  # relative paths only


def test_L5_traces_of_several_commands_merge(project: Project, run_cli: CLI) -> None:
    root = project({**FILES, "other.py": "import json\nprint(open('data/other.txt').read())\n", "data/other.txt": "x"})
    assert _trace(run_cli, root, "python", "main.py").code == OK
    run = _trace(run_cli, root, "python", "other.py")
    assert run.code == OK, run.err
    doc = _doc(root)
    assert [c["argv"] for c in doc["commands"]] == [["python", "main.py"], ["python", "other.py"]]
    assert {"data/in.csv", "data/other.txt"} <= set(doc["opened"]) and "helper" in doc["modules"]
    assert "(2 commands)" in run.out
    assert _trace(run_cli, root, "python", "other.py", replace=True).code == OK
    assert [c["argv"] for c in _doc(root)["commands"]] == [["python", "other.py"]]


def test_L6_a_failing_command_passes_its_exit_code_and_output_and_writes_no_trace(
    project: Project, run_cli: CLI, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = project({**FILES, "fail.py": "import sys\nprint('half way')\nsys.exit(3)\n"})
    assert _trace(run_cli, root, "python", "main.py").code == OK
    before = (root / "slimbuild.trace.json").read_bytes()
    capfd.readouterr()
    run = _trace(run_cli, root, "python", "fail.py")
    assert run.code == 3
    assert "half way" in capfd.readouterr().out
    assert "exited with 3; no trace written" in run.err
    assert (root / "slimbuild.trace.json").read_bytes() == before
    assert not list(root.glob(".slimbuild.trace.json.*"))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "crash.py").write_text("raise SystemExit(5)\n")
    assert _trace(run_cli, fresh, "python", "crash.py").code == 5
    assert not (fresh / "slimbuild.trace.json").exists()


def test_L6_a_command_that_cannot_start_is_exit_2(project: Project, run_cli: CLI) -> None:
    root = project(FILES)
    run = run_cli("trace", str(root), "--", "no-such-program-xyz", "main.py")
    assert run.code == USAGE and "cannot run 'no-such-program-xyz'" in run.err
    assert run_cli("trace", str(root)).code == USAGE  # no command after --


def test_L7_the_same_command_traced_five_times_gives_the_same_trace(project: Project, run_cli: CLI) -> None:
    root = project(FILES)
    texts = []
    for _ in range(5):
        assert _trace(run_cli, root, "python", "main.py", replace=True).code == OK
        texts.append((root / "slimbuild.trace.json").read_bytes())
    assert len(set(texts)) == 1
    for _ in range(2):  # merged into itself: unchanged
        assert _trace(run_cli, root, "python", "main.py").code == OK
        assert (root / "slimbuild.trace.json").read_bytes() == texts[0]


def test_L8_a_trace_edited_into_invalid_json_is_exit_2_naming_file_and_line(project: Project, run_cli: CLI) -> None:
    root = project({**FILES, "touch.py": "open('ran', 'w').write('x')\n"})
    (root / "slimbuild.trace.json").write_text('{"schema": "slimbuild-trace",\n "version": 1,\n "opened": [,]\n}\n')
    run = run_cli("analyze", str(root))
    assert run.code == USAGE and "slimbuild.trace.json:3:" in run.err and "not valid JSON" in run.err
    assert "Traceback" not in run.err
    run = _trace(run_cli, root, "python", "touch.py")
    assert run.code == USAGE and "slimbuild.trace.json:3:" in run.err
    assert not (root / "ran").exists()  # refused before the run
    assert _trace(run_cli, root, "python", "touch.py", replace=True).code == OK  # --replace starts afresh


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({"schema": "slimbuild-trace", "version": 7}, "schema version 7 is newer"),
        ({"schema": "slimbuild-trace", "version": 1, "project": "someone-else"}, "trace of project 'someone-else'"),
        ({"schema": "slimbuild-trace", "version": 1, "opened": ["elsewhere/only.csv"]}, "names none of this project's files"),
    ],
)
def test_L8_a_trace_of_another_schema_or_project_is_exit_2(
    project: Project, run_cli: CLI, doc: dict[str, object], says: str
) -> None:
    root = project(FILES)
    (root / "slimbuild.trace.json").write_text(json.dumps(doc))
    for args in (("analyze", str(root)), ("check", str(root))):
        run = run_cli(*args)
        assert run.code == USAGE, run.err
        assert says in run.err


def test_L8_a_command_that_never_imports_the_entrypoint_is_a_warning(project: Project, run_cli: CLI) -> None:
    root = project({**FILES, "scratch.py": "import helper\n"})
    run = _trace(run_cli, root, "python", "scratch.py")
    assert run.code == OK
    assert "never imported the entrypoint (main.py)" in run.err
    assert "never imported" not in _trace(run_cli, root, "python", "main.py").err


def test_L8_files_outside_the_project_are_reported_never_copied(project: Project, run_cli: CLI, tmp_path: Path) -> None:
    outside = tmp_path / "shared" / "big.csv"
    outside.parent.mkdir()
    outside.write_text("1\n")
    root = project({**FILES, "main.py": f"print(open({str(outside)!r}).read())\nprint(open('data/in.csv').read())\n"})
    assert _trace(run_cli, root, "python", "main.py").code == OK
    assert _doc(root)["outside"] == [str(outside)]
    run = run_cli("analyze", str(root), "--json")
    assert run.code == OK, run.err
    (analysis,) = json.loads(run.out)["entrypoints"]
    assert str(outside) not in json.dumps(analysis["files"])
    findings = {c: " | ".join(f["message"] for f in analysis["findings"] if f["code"] == c) for c in ("SB032", "SB033")}
    assert str(outside) in findings["SB033"] and "never copied" in findings["SB033"]
    assert "data/in.csv" in findings["SB032"]


def test_L8_a_trace_edited_to_name_files_outside_the_project_reports_them_and_copies_nothing(
    project: Project, run_cli: CLI
) -> None:
    root = project({**FILES, "main.py": "import helper\n"})
    assert _trace(run_cli, root, "python", "main.py").code == OK
    doc = _doc(root)
    doc["opened"] = [*doc["opened"], "../secrets.csv"]  # type: ignore[misc]
    doc["modules"]["evil"] = {"file": "../evil.py", "imported_by": ["main.py:1"]}  # type: ignore[index]
    (root / "slimbuild.trace.json").write_text(json.dumps(doc))
    run = run_cli("analyze", str(root), "--json")
    assert run.code == OK, run.err
    (analysis,) = json.loads(run.out)["entrypoints"]
    assert not any(".." in f for f in analysis["files"])
    outside = [f["message"] for f in analysis["findings"] if f["code"] == "SB033"]
    assert any("../secrets.csv" in m and "never copied" in m for m in outside)
    assert not any("../secrets.csv" in f["message"] for f in analysis["findings"] if f["code"] == "SB032")


def test_L5_the_environments_own_sitecustomize_still_runs_and_sys_path_is_untouched(
    project: Project, run_cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "sitecustomize.py").write_text("import os\nos.environ['OWN_SITECUSTOMIZE'] = 'ran'\n")
    monkeypatch.setenv("PYTHONPATH", str(own))
    script = "import os, sys\nimport helper\nprint('own:', os.environ.get('OWN_SITECUSTOMIZE'), 'path:', sys.path[1:3])\n"
    root = project({**FILES, "show.py": script})
    assert _trace(run_cli, root, "python", "show.py").code == OK
    traced = capfd.readouterr().out
    plain = subprocess.run([sys.executable, "show.py"], cwd=root, capture_output=True, text=True, check=True).stdout
    assert "own: ran" in traced  # chained: the environment's own sitecustomize ran under the hook's
    assert traced.split("path:")[1].strip() == plain.split("path:")[1].strip()  # the hook's directory is off sys.path
    assert "helper" in _doc(root)["modules"]  # type: ignore[operator]
