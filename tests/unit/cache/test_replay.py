"""Warm-run replay of ``analyze``/``check``: same output when nothing changed, recomputed when anything it read did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimbuild.cache import evidence as evidence_mod
from slimbuild.cache import replay
from slimbuild.paths import cache_dir

Project = Callable[[dict[str, str | bytes]], Path]

BASE: dict[str, str | bytes] = {
    "main.py": "import helper\nimport numpy\n",
    "helper.py": "import pandas\n",
    "requirements.txt": "numpy\npandas\n",
}


@pytest.fixture(autouse=True)
def _no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by a test are seconds old at most: trust their stamps as if they were older."""
    monkeypatch.setattr(evidence_mod, "RACY_NS", 0)
    monkeypatch.setattr(replay, "RACY_NS", 0)


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Commands that really ran the pipeline (replays do not)."""
    calls: list[str] = []
    import slimbuild.cli as cli

    real = cli._output

    def counting(command: str, *a: Any, **k: Any) -> Any:
        calls.append(f"_{command}_output")
        return real(command, *a, **k)

    monkeypatch.setattr(cli, "_output", counting)
    return calls


def _outcomes() -> list[Path]:
    return sorted((cache_dir() / "analysis").glob("outcome-*.pickle"))


def _append(p: Path, text: str) -> None:
    with p.open("a") as fh:
        fh.write(text)


def test_warm_check_replays_the_same_output_and_exit_code(project: Project, run_cli: Any, computed: list[str]) -> None:
    root = project({**BASE, "main.py": "import helper\nimport numpy\nimport yaml\n"})
    first = run_cli("check", str(root), "-e", "main.py")
    second = run_cli("check", str(root), "-e", "main.py")
    assert first.code == second.code == 1  # yaml (pyyaml) is undeclared
    assert "SB001" in first.err
    assert (second.out, second.err) == (first.out, first.err)
    assert computed == ["_check_output"]
    assert len(_outcomes()) == 1


def test_each_command_and_output_mode_has_its_own_record(project: Project, run_cli: Any, computed: list[str]) -> None:
    root = project(BASE)
    runs = [("check",), ("check", "--json"), ("analyze",), ("analyze", "--json")]
    first = [run_cli(cmd[0], str(root), "-e", "main.py", *cmd[1:]) for cmd in runs]
    again = [run_cli(cmd[0], str(root), "-e", "main.py", *cmd[1:]) for cmd in runs]
    assert [(r.code, r.out, r.err) for r in first] == [(r.code, r.out, r.err) for r in again]
    assert len(computed) == 4
    assert json.loads(first[3].out)["required"]


@pytest.mark.parametrize(
    "change",
    [
        "reached_source",
        "new_first_party_module",
        "requirements",
        "included_requirements",
        "pyproject_dependencies",
        "config",
        "lock_file",
        "wheel_index",
    ],
)
def test_a_changed_input_is_recomputed(project: Project, run_cli: Any, computed: list[str], change: str) -> None:
    files = dict(BASE)
    if change == "included_requirements":
        files["requirements.txt"] = "-r base.txt\nnumpy\n"
        files["base.txt"] = "pandas\n"
    root = project(files)
    before = run_cli("check", str(root), "-e", "main.py")
    if change == "reached_source":
        _append(root / "helper.py", "import yaml\n")
    elif change == "new_first_party_module":
        (root / "numpy.py").write_text("# a local module shadows the PyPI project\n")
    elif change == "requirements":
        _append(root / "requirements.txt", "scipy\n")
    elif change == "included_requirements":
        _append(root / "base.txt", "scipy\n")
    elif change == "pyproject_dependencies":
        (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "1"\ndependencies = ["scipy"]\n')
    elif change == "config":
        (root / "other.txt").write_text("numpy\n")
        (root / "slimbuild.toml").write_text('requirements = ["other.txt"]\n')  # pandas is now undeclared
    elif change == "lock_file":
        (root / "slimbuild.lock").write_text("# not a slimbuild lock\n")
    elif change == "wheel_index":
        (cache_dir() / "wheel-modules.json").write_text(json.dumps({"numpy-2.0.0-cp311-none-any.whl": ["numpy"]}))
    after = run_cli("check", str(root), "-e", "main.py")
    assert computed == ["_check_output", "_check_output"], change
    if change not in {"lock_file", "wheel_index"}:
        assert after.err != before.err, change


def test_a_lock_file_appearing_is_seen(project: Project, run_cli: Any, computed: list[str]) -> None:
    root = project(BASE)
    run_cli("check", str(root), "-e", "main.py")
    lock_names = [p.name for p in root.iterdir() if p.suffix == ".lock" or "lock" in p.name]
    assert not lock_names
    # where slimbuild looks for the lock was recorded as absent: any file there is a miss
    (outcome,) = _outcomes()
    import pickle

    _header, evidence, _output = pickle.loads(outcome.read_bytes())
    absent = sorted(p for p in evidence.absent if "lock" in Path(p).name)
    assert absent, evidence.absent
    Path(absent[0]).write_text("x\n")
    run_cli("check", str(root), "-e", "main.py")
    assert computed == ["_check_output", "_check_output"]


def test_a_changed_environment_is_recomputed(
    project: Project, run_cli: Any, computed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(BASE)
    site = root / ".venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (root / ".venv" / "bin").mkdir()
    (root / ".venv" / "bin" / "python").symlink_to(sys.executable)
    run_cli("check", str(root), "-e", "main.py")
    run_cli("check", str(root), "-e", "main.py")
    assert computed == ["_check_output"]
    time.sleep(0.01)
    (site / "newdist-1.0.dist-info").mkdir()  # an install changes site-packages' mtime
    run_cli("check", str(root), "-e", "main.py")
    assert computed == ["_check_output", "_check_output"]


def test_settings_from_the_environment_are_part_of_the_key(
    project: Project, run_cli: Any, computed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(BASE)
    run_cli("check", str(root), "-e", "main.py")
    monkeypatch.setenv("SLIMBUILD_TARGET_PYTHON", "3.10")
    run_cli("check", str(root), "-e", "main.py")
    assert computed == ["_check_output", "_check_output"]


def test_errors_are_not_recorded(project: Project, run_cli: Any, computed: list[str]) -> None:
    root = project({**BASE, "helper.py": "def broken(:\n"})
    first = run_cli("check", str(root), "-e", "main.py")
    second = run_cli("check", str(root), "-e", "main.py")
    assert first.code == second.code != 0
    assert first.err == second.err
    assert computed == ["_check_output", "_check_output"]
    assert _outcomes() == []


def test_a_corrupt_record_is_a_miss(project: Project, run_cli: Any, computed: list[str]) -> None:
    root = project(BASE)
    first = run_cli("check", str(root), "-e", "main.py")
    (outcome,) = _outcomes()
    outcome.write_bytes(b"garbage")
    second = run_cli("check", str(root), "-e", "main.py")
    assert (second.code, second.err) == (first.code, first.err)
    assert computed == ["_check_output", "_check_output"]


def test_a_file_changed_during_the_run_is_not_recorded(project: Project, run_cli: Any, computed: list[str]) -> None:
    root = project(BASE)
    rec = replay.Recorder(1 << 20)
    rec.file(root / "helper.py")
    rec.started_ns = time.time_ns() - 10**9  # the run began a second before the file was last written
    replay.store(cache_dir(), "k" * 32, rec, replay.Output("", "", 0))
    assert _outcomes() == []
    rec.started_ns = time.time_ns() + 10**9
    replay.store(cache_dir(), "k" * 32, rec, replay.Output("", "", 0))
    assert len(_outcomes()) == 1


def test_racy_window_keeps_fresh_files_out_of_the_record(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evidence_mod, "RACY_NS", 2_000_000_000)
    monkeypatch.setattr(replay, "RACY_NS", 2_000_000_000)
    root = project(BASE)
    rec = replay.Recorder(1 << 20)
    rec.file(root / "helper.py")
    replay.store(cache_dir(), "k" * 32, rec, replay.Output("", "", 0))
    assert _outcomes() == []  # written a moment ago: its timestamp cannot vouch for its content yet


def test_a_replay_does_not_import_the_pipeline(project: Project, tmp_path: Path) -> None:
    root = project(BASE)
    old = time.time() - 60
    for p in root.rglob("*"):
        os.utime(p, (old, old))
    time.sleep(2.1)  # ctime cannot be set back: wait out the racy window for real
    env = {**os.environ, "SLIMBUILD_CACHE": str(tmp_path / "c")}
    code = (
        "import sys\nfrom slimbuild.cli import main\nrc = main(['check', sys.argv[1], '-e', 'main.py'])\n"
        "print(rc, 'slimbuild.pipeline' in sys.modules, 'packaging' in sys.modules, file=sys.stderr)\n"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code, str(root)], env=env, capture_output=True, text=True, check=False)
        for _ in range(2)
    ]
    assert runs[0].stderr.splitlines()[-1] == "0 True True"
    assert runs[1].stderr.splitlines()[-1] == "0 False False"
    assert runs[0].stderr.splitlines()[:-1] == runs[1].stderr.splitlines()[:-1]


def _code_dirs() -> set[str]:
    """Every directory of the slimbuild package, relative to it ("" is its top), as code_stamp names them."""
    package = Path(replay.__file__).resolve().parent.parent
    return {
        "" if d == package else d.relative_to(package).as_posix()
        for d in (package, *package.rglob("*"))
        if d.is_dir() and d.name != "__pycache__"
    }


def test_own_code_stamps_every_directory_of_the_package() -> None:
    """A new subpackage not listed in _OWN_CODE would let a changed checkout replay an old output."""
    assert set(replay._OWN_CODE) == _code_dirs()


def test_trace_code_names_existing_directories_and_all_of_the_analysis() -> None:
    """A graph cached under a stale code stamp must miss: every directory the trace runs code from is stamped."""
    from slimbuild.cache import parsecache

    dirs = _code_dirs()
    assert set(parsecache._TRACE_CODE) <= dirs
    assert {d for d in dirs if d == "analysis" or d.startswith("analysis/")} | {"", "cache"} <= set(parsecache._TRACE_CODE)


@pytest.mark.parametrize("change", ["dockerfile_cmd", "main_guard", "conventional_name_appears", "module_dir_appears"])
def test_A32_discovered_entrypoint_replayed_until_what_found_it_changes(
    project: Project, run_cli: Any, computed: list[str], change: str
) -> None:
    files: dict[str, str | bytes] = {**BASE, "job.py": "import yaml\n", "requirements.txt": "numpy\npandas\npyyaml\n"}
    files.pop("main.py")
    if change == "dockerfile_cmd":
        files["Dockerfile"] = 'FROM x\nCMD ["python", "helper.py"]\n'
    else:
        if change == "module_dir_appears":
            files["Dockerfile"] = 'FROM x\nCMD ["python", "-m", "tool"]\n'  # no tool/ yet: the next layout decides
        files["helper.py"] = 'import pandas\nif __name__ == "__main__":\n    pass\n'
    root = project(files)
    before = run_cli("check", str(root))
    assert run_cli("check", str(root)).err == before.err
    assert computed == ["_check_output"]
    if change == "dockerfile_cmd":
        (root / "Dockerfile").write_text('FROM x\nCMD ["python", "job.py"]\n')
    elif change == "main_guard":
        _append(root / "job.py", 'if __name__ == "__main__":\n    pass\n')
    elif change == "conventional_name_appears":
        (root / "app.py").write_text("import numpy\n")
    else:
        (root / "tool").mkdir()
        (root / "tool" / "__main__.py").write_text("import numpy\n")
    after = run_cli("check", str(root))
    assert computed == ["_check_output", "_check_output"], change
    assert after.err != before.err and "SB016" in after.err, change
