"""``module:function`` resolved as importlib resolves it (A47, A48), for the trace and for the image's ENTRYPOINT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from slimbuild.analysis.entrypoint import resolve_entrypoint, select_entrypoints
from slimbuild.analysis.finder import ModuleFinder
from slimbuild.analysis.graph import trace
from slimbuild.analysis.parsing import Parser
from slimbuild.config import load_settings
from slimbuild.errors import SlimbuildError
from slimbuild.image.plan import VENV_PYTHON, plan_launch
from tests.constants import ANALYSIS, USAGE

MAIN = "def main():\n    return 0\n"


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def _trace_files(root: Path, spec: str) -> tuple[str, ...]:
    entry = resolve_entrypoint(root, "x", spec)
    parser = Parser({}, allow_unparseable=False, max_bytes=10 * 1024 * 1024)
    return trace(root, entry, target_python="3.11", parser=parser, read_digest=lambda p: "").files


# ---------------------------------------------------------------- A47 module:function, as importlib resolves it


TOOL = {
    "pyproject.toml": '[project]\nname = "tool"\nversion = "1"\n[project.scripts]\ntool = "tool:main"\n',
    "tool/__init__.py": MAIN,
    "tool/__main__.py": "import toml\nfrom tool import main\nmain()\n",
}


@pytest.mark.parametrize("with_main", [True, False], ids=["with-__main__", "without-__main__"])
def test_A47_project_script_name_runs_its_module_function_not_the_package_main(tmp_path: Path, with_main: bool) -> None:
    files = dict(TOOL) if with_main else {k: v for k, v in TOOL.items() if k != "tool/__main__.py"}
    root = _write(tmp_path, files)
    settings_ = load_settings(root, {})
    [(name, spec, _)] = select_entrypoints(settings_, "tool")
    entry = resolve_entrypoint(root, name, spec)
    assert (entry.kind, entry.path, entry.module, entry.function) == ("module", "tool/__init__.py", "tool", "main")
    assert _trace_files(root, spec) == ("tool/__init__.py",)  # __main__'s top level (and its toml) never runs
    launch = plan_launch(entry.kind, entry.path, entry.module, entry.function, ("tool/__init__.py",))
    assert launch.argv == (VENV_PYTHON, "-c", "import sys; from tool import main as f; sys.exit(f())")


CASES = [  # (files, spec, the file importlib runs)
    ({"tool.py": MAIN, "tool/data.py": ""}, "tool:main", "tool.py"),  # a module beats a namespace directory
    ({"tool.py": MAIN, "tool/__init__.py": MAIN}, "tool:main", "tool/__init__.py"),  # a package beats a module
    ({"tool/x.py": "", "src/tool/__init__.py": MAIN}, "tool:main", "src/tool/__init__.py"),  # regular beats namespace
    ({"app/__init__.py": "", "app/cli.py": MAIN, "app/cli/x.py": ""}, "app.cli:main", "app/cli.py"),
    ({"app/__init__.py": "", "app/cli.py": "", "app/cli/__init__.py": MAIN}, "app.cli:main", "app/cli/__init__.py"),
    ({"src/app/__init__.py": "", "src/app/cli.py": MAIN}, "app.cli:main", "src/app/cli.py"),
]


def test_A47_module_function_resolved_before_any_directory_test(tmp_path: Path) -> None:
    for i, (files, spec, expected) in enumerate(CASES):
        root = _write(tmp_path / str(i), files)
        entry = resolve_entrypoint(root, "x", spec)
        assert (entry.kind, entry.path, entry.function) == ("module", expected, "main"), files
        assert expected in _trace_files(root, spec)
        finder = ModuleFinder(root.resolve(), [root, root / "src"])
        found = finder.files_for(spec.split(":")[0])
        assert found is not None and found[-1] == (root / expected).resolve(), files  # the trace follows the same file


def test_A47_bad_function_part_is_a_usage_error(tmp_path: Path) -> None:
    root = _write(tmp_path, {"tool/__init__.py": MAIN})
    for spec in ("tool:", "tool:ma in", "tool:1x", "tool:a:b"):
        with pytest.raises(SlimbuildError) as err:
            resolve_entrypoint(root, "x", spec)
        assert err.value.exit_code == USAGE and repr(spec) in err.value.message


# ---------------------------------------------------------------- A48 generated module:function strings

# importlib's own answers, for every dotted name below, over this project (sys.path = [root, root/src])
PROJECT = {
    "tool/__init__.py": MAIN, "tool/__main__.py": MAIN, "tool.py": MAIN, "tool/cli.py": MAIN, "tool/cli/x.py": MAIN,
    "mod.py": MAIN, "mod/x.py": MAIN, "ns/sub.py": MAIN, "ns/cli/__init__.py": MAIN,
    "src/pkg/__init__.py": MAIN, "src/pkg/cli.py": MAIN, "sub/cli.py": MAIN, "src/sub/__init__.py": MAIN,
}
PARTS = ("tool", "mod", "ns", "pkg", "sub", "cli", "x", "src", "py", "__main__")
ORACLE = r"""
import importlib.util, json, sys
root, names = sys.argv[1], json.loads(sys.stdin.read())
sys.path[:0] = [root, root + "/src"]
out = {}
for n in names:
    try:
        spec = importlib.util.find_spec(n)
    except (ImportError, ValueError):
        spec = None
    out[n] = spec.origin if spec is not None and spec.has_location else None
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str | None]]:
    root = _write(tmp_path_factory.mktemp("a48"), PROJECT).resolve()
    names = sorted({".".join((a, b, c)[:n]) for a in PARTS for b in PARTS for c in PARTS for n in (1, 2, 3)})
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", ORACLE, str(root)], input=json.dumps(names), capture_output=True, text=True,
        check=True, cwd="/",
    )
    return root, json.loads(proc.stdout)


_dotted = st.lists(st.sampled_from(PARTS), min_size=1, max_size=3).map(".".join)
_function = st.one_of(st.just("main"), st.sampled_from(["", "nope", "1x", "a b", "a.b", "main:main"]), st.text(max_size=8))
_spec = st.one_of(
    st.tuples(_dotted, _function).map(":".join),
    _dotted,
    st.tuples(st.text(max_size=12), _function).map(":".join),
    st.text(max_size=20),
    st.tuples(st.sampled_from(["a" * 300, "x\0y", "../..", "/etc/passwd", "src/pkg", "tool.py", "mod/x.py"]), _function)
    .map(":".join),
)


@settings(max_examples=300, deadline=None)
@given(spec=_spec)
@example(spec="ns:main")  # a namespace package: nothing of its own to define main in (exit 3)
@example(spec="tool:main")
def test_A48_any_module_function_string_resolves_as_importlib_or_is_a_one_line_error(
    oracle: tuple[Path, dict[str, str | None]], spec: str
) -> None:
    root, origins = oracle
    module_part, colon, function = spec.partition(":")
    try:
        entry = resolve_entrypoint(root, "x", spec)
    except SlimbuildError as exc:
        assert exc.exit_code in (USAGE, ANALYSIS) and exc.message and "\n" not in exc.message
        if function == "main" and origins.get(module_part):
            pytest.fail(f"importlib finds {module_part!r} at {origins[module_part]}, slimbuild says: {exc.message}")
        return
    if colon and function == "main" and module_part in origins and origins[module_part]:
        assert (entry.kind, root / entry.path) == ("module", Path(str(origins[module_part])))
    if entry.kind == "module" and module_part in origins:  # a module slimbuild runs is one importlib finds
        origin = origins[module_part]
        assert origin and Path(origin) in {root / entry.path, (root / entry.path).parent / "__init__.py"}
    if entry.kind != "notebook":  # the image can always be told how to start it
        plan_launch(entry.kind, entry.path, entry.module, entry.function, (entry.path,), entry.runner, entry.args)
