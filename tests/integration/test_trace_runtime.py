"""The trace feeds analyze and lock, with a real venv of real wheels (L9)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.locking.lockfile import parse_lock
from tests.conftest import Run
from tests.constants import OK
from tests.integration.conftest import clean_env

pytestmark = pytest.mark.network

CLI = Callable[..., Run]

# a third-party module that imports another by a computed name: no static analysis of it can see six
LAZY = 'import importlib\n\n\ndef load():\n    return importlib.import_module("".join(["s", "ix"]))\n'


@pytest.fixture(scope="module")
def venv(wheel_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with PyYAML and six from the cached wheels, and a hand-installed distribution ``lazyload``."""
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index", "--find-links",
         str(wheel_dir), "pyyaml==6.0.1", "six==1.17.0"],
        check=True, env=clean_env(),
    )
    (site,) = root.glob("lib/python3*/site-packages")
    (site / "lazyload").mkdir()
    (site / "lazyload" / "__init__.py").write_text(LAZY)
    info = site / "lazyload-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lazyload\nVersion: 1.0\n")
    (info / "RECORD").write_text("lazyload/__init__.py,,\nlazyload-1.0.dist-info/METADATA,,\n")
    (info / "top_level.txt").write_text("lazyload\n")
    return python


def _project(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


PLUGIN_PROJECT = {
    "main.py": (
        "import importlib\nfrom pathlib import Path\n\n"
        "plugin = importlib.import_module(Path('plugin.txt').read_text().strip())\n"
        "print(plugin.run(Path('data/in.txt').read_text()))\n"
    ),
    "plugins/__init__.py": "",
    "plugins/yamlish.py": "import yaml\n\n\ndef run(text):\n    return yaml.safe_dump({'n': len(text)})\n",
    "plugin.txt": "plugins.yamlish\n",
    "data/in.txt": "hello\n",
    "requirements.txt": "PyYAML\nsix\n",
    "pyproject.toml": '[tool.slimbuild]\nentrypoint = "main.py"\n',
}


def test_L9_a_distribution_imported_only_at_run_time_is_required_and_locked(
    venv: Path, offline: Path, tmp_path: Path, run_cli: CLI
) -> None:
    root = _project(tmp_path / "proj", PLUGIN_PROJECT)
    before = json.loads(run_cli("analyze", str(root), "--python", str(venv), "--json").out)["entrypoints"][0]
    assert before["required"] == [] and before["unresolved_dynamic"]  # static analysis cannot see the plugin
    run = run_cli("trace", str(root), "--python", str(venv), "--", "python", "main.py")
    assert run.code == OK, run.err
    trace = json.loads((root / "slimbuild.trace.json").read_text())
    ext = "site-packages/yaml/_yaml.cpython-311-x86_64-linux-gnu.so"
    assert trace["modules"]["yaml._yaml"]["file"] == ext
    assert "libc.so.6" in trace["libraries"]["needed"][ext]  # the DT_NEEDED closure, read with pyelftools
    run = run_cli("analyze", str(root), "--python", str(venv), "--json")
    assert run.code == OK, run.err
    (after,) = json.loads(run.out)["entrypoints"]
    (pyyaml,) = after["required"]
    assert pyyaml["name"] == "pyyaml" and "imported at run time (slimbuild.trace.json)" in pyyaml["via"]
    assert {"plugins/__init__.py", "plugins/yamlish.py"} <= set(after["files"])  # the plugin goes into the image
    assert after["unresolved_dynamic"] == []
    codes = {c: " | ".join(f["message"] for f in after["findings"] if f["code"] == c) for c in ("SB031", "SB032")}
    assert "plugins.yamlish" in codes["SB031"] and "data/in.txt" in codes["SB032"]
    text = run_cli("analyze", str(root), "--python", str(venv)).out
    assert "imported at run time (slimbuild.trace.json)" in text
    run = run_cli("lock", str(root), "--python", str(venv))
    assert run.code == OK, run.err
    assert [d.name for d in parse_lock((root / "slimbuild.lock").read_text()).dists] == ["pyyaml"]


def test_L9_a_declared_distribution_only_the_run_imports_is_kept_with_the_reason(
    venv: Path, tmp_path: Path, run_cli: CLI
) -> None:
    root = _project(tmp_path / "proj", {
        "main.py": "import lazyload\n\nprint(lazyload.load().__name__)\n",
        "requirements.txt": "lazyload\nsix\n",
    })
    (before,) = json.loads(run_cli("analyze", str(root), "--python", str(venv), "--json").out)["entrypoints"]
    assert [u["name"] for u in before["unused"]] == ["six"]
    assert run_cli("trace", str(root), "--python", str(venv), "--", "python", "main.py").code == OK
    run = run_cli("analyze", str(root), "--python", str(venv), "--json")
    (after,) = json.loads(run.out)["entrypoints"]
    assert after["unused"] == []
    six = next(r for r in after["required"] if r["name"] == "six")
    assert six["via"] == ["imported at run time (slimbuild.trace.json)"]
    kept = next(f for f in after["findings"] if f["code"] == "SB030")
    assert "'six' is kept" in kept["message"] and "site-packages/lazyload/__init__.py:5" in kept["message"]
    check = run_cli("check", str(root), "--python", str(venv))
    assert "SB002" not in check.err and "SB030" in check.err
