"""The architecture's checkable rules (ARCHITECTURE.md): module and function sizes, a light pre-commit path, the map.

The import layering itself is import-linter's job (``[tool.importlinter]`` in pyproject.toml, run by scripts/test.sh).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "slimbuild"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60
LONG_MARK = "# long: "  # a comment block right above a def (or its first decorator) that starts so allows a long one

# The pre-commit hook runs `slimbuild check`; a warm one replays through the cache and must load none of these.
HEAVY_FOR_PRE_COMMIT = ("docker", "jinja2", "slimbuild.pipeline", "slimbuild.analysis.graph")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_modules_stay_under_the_size_limit() -> None:
    too_long = []
    for path in _modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{_rel(path)}: {lines} lines")
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them):\n" + "\n".join(too_long)


def _long_functions(path: Path, root: Path = ROOT) -> list[str]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        assert node.end_lineno is not None
        length = node.end_lineno - node.lineno + 1
        if length <= MAX_FUNCTION_LINES:
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        block = []  # the comment lines right above, nearest first
        for line in reversed(lines[: first - 1]):
            if not line.strip().startswith("#"):
                break
            block.append(line.strip())
        if not (block and block[-1].startswith(LONG_MARK)):
            found.append(f"{path.relative_to(root).as_posix()}:{node.lineno} {node.name}: {length} lines")
    return found


def test_functions_stay_under_the_size_limit() -> None:
    too_long = [entry for path in _modules() for entry in _long_functions(path)]
    assert not too_long, (
        f"functions over {MAX_FUNCTION_LINES} lines (split them, or put `{LONG_MARK}<reason>` right above the def):\n"
        + "\n".join(too_long)
    )


def test_long_mark_is_honoured(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    sample = tmp_path / "slimbuild" / "sample.py"
    sample.parent.mkdir()
    sample.write_text(
        f"def plain():\n{body}\n\n\n# long: a table, read top to bottom\n@staticmethod\ndef marked():\n{body}\n\n\n"
        f"# long: a reason that takes\n# two lines\ndef marked_twice():\n{body}\n\n\n"
        f"# long: not the block's first line\n# other\n\n# unrelated\ndef unmarked():\n{body}\n",
        encoding="utf-8",
    )
    found = _long_functions(sample, tmp_path)
    assert [entry.split(":")[1].split()[1] for entry in found] == ["plain", "unmarked"]


def test_the_pre_commit_path_stays_light() -> None:
    probe = (
        "import json, sys\n"
        "import slimbuild.cli, slimbuild.cache.replay\n"
        f"heavy = {HEAVY_FOR_PRE_COMMIT!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in heavy))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    loaded = json.loads(proc.stdout)
    assert loaded == [], f"importing slimbuild.cli and slimbuild.cache.replay loads: {', '.join(loaded)}"


def test_every_subpackage_is_on_the_map() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    packages = sorted(p.parent.relative_to(ROOT).as_posix().replace("/", ".") for p in PACKAGE.rglob("__init__.py"))
    unmentioned = [p for p in packages if p != "slimbuild" and p.split(".")[-1] + "/" not in text and p not in text]
    assert not unmentioned, f"subpackages ARCHITECTURE.md does not mention: {', '.join(unmentioned)}"
