"""The image's sys.path, as the interpreter builds it (A49, A50): namespace portions lose to regular packages (PEP 420),
and a script's directory, not the project root, is sys.path[0]."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimbuild.analysis.entrypoint import resolve_entrypoint
from slimbuild.analysis.graph import trace
from slimbuild.analysis.parsing import Parser
from slimbuild.analysis.resolve import ModuleIndex, shadowed_namespaces
from slimbuild.config import load_settings
from slimbuild.errors import ConfigError
from slimbuild.image.plan import VENV_PYTHON, plan_launch
from slimbuild.models import ImportGraph, Severity
from slimbuild.record.manifest import make_manifest, validate_manifest
from tests.constants import USAGE


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def _trace(root: Path, spec: str, **kw: object) -> ImportGraph:
    entry = resolve_entrypoint(root, "x", spec)
    parser = Parser({}, allow_unparseable=False, max_bytes=10 * 1024 * 1024)
    return trace(root, entry, target_python="3.11", parser=parser, read_digest=lambda p: "", **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- A49 namespace directory vs installed regular package

AIRFLOW = {"main.py": "from airflow import DAG\nimport airflow.dags.etl\n", "airflow/dags/etl.py": "import toml\n"}


def test_A49_shadowed_namespace_is_third_party_and_not_followed(tmp_path: Path) -> None:
    root = _write(tmp_path, AIRFLOW)
    graph = _trace(root, "main.py")  # no distribution of that name: a namespace portion, first-party (PEP 420)
    assert graph.namespaces == ("airflow",)
    assert "airflow/dags/etl.py" in graph.files and not any(s.module.startswith("airflow") for s in graph.third_party)
    graph = _trace(root, "main.py", shadowed={"airflow"})
    assert graph.files == ("main.py",)  # airflow/dags/etl.py never runs: the installed airflow package wins
    assert sorted(s.module for s in graph.third_party) == ["airflow", "airflow.dags.etl"]


def test_A49_regular_first_party_package_is_never_shadowed(tmp_path: Path) -> None:
    root = _write(tmp_path, {"main.py": "import airflow\n", "airflow/__init__.py": "import toml\n"})
    graph = _trace(root, "main.py", shadowed={"airflow"})
    assert graph.files == ("airflow/__init__.py", "main.py") and graph.namespaces == ()


def test_A49_which_namespaces_a_distribution_shadows() -> None:
    env = ModuleIndex.from_dists("env", {"apache-airflow": ["airflow", "airflow.models"], "myproj": ["tools"]})
    names = ["airflow", "google", "utils", "yaml", "tools", "mine", "internal"]
    common = {"user_mapping": {"internal": "acme-internal"}, "wheels": None}
    shadowed = shadowed_namespaces(names, environment=env, declared=["pyyaml"], project="myproj", **common)  # type: ignore[arg-type]
    # installed (airflow), declared (pyyaml), mapped by the user (internal); never: a namespace root (google), a
    # popular name nobody installed or declared (utils), the project's own distribution (tools), an unknown name
    assert shadowed == {"airflow", "yaml", "internal"}
    assert shadowed_namespaces(names, environment=None, declared=[], **common) == {"internal"}  # type: ignore[arg-type]


# ---------------------------------------------------------------- A50 sys.path of a script in a subdirectory

TRAIN = {
    "scripts/train.py": "import os\nimport src.features\nimport helper\n",
    "scripts/helper.py": "",
    "src/features.py": "import yaml\n",
}


def test_A50_import_only_the_project_root_resolves_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    graph = _trace(_write(tmp_path, TRAIN), "scripts/train.py")
    (f,) = [f for f in graph.findings if f.code == "SB023"]
    assert (str(f.location), f.severity) == ("scripts/train.py:2:1", Severity.ERROR)
    assert "'src.features'" in f.message and "the project root" in f.message and "sys.path[0] is scripts/" in f.message
    assert "ModuleNotFoundError" in f.message and 'pythonpath = ["."]' in f.message
    assert "src/features.py" in graph.files  # still traced: what it imports is known
    # `python -m scripts.train` and a root script start with the root on sys.path: nothing to say
    root = _write(tmp_path, {"scripts/__init__.py": "", "run.py": "import src.features\n"})
    for spec in ("scripts.train", "run.py"):
        assert [f.code for f in _trace(root, spec).findings] == []


def test_A50_pythonpath_setting_resolves_it_as_first_party(tmp_path: Path) -> None:
    graph = _trace(_write(tmp_path, TRAIN), "scripts/train.py", pythonpath=(".",))
    assert [f.code for f in graph.findings] == [] and "src/features.py" in graph.files
    assert [s.module for s in graph.third_party] == ["yaml"]


def test_A50_a_script_that_changes_sys_path_itself(tmp_path: Path) -> None:
    for i, (header, severity) in enumerate([
        ("", Severity.ERROR),
        ("import sys\nsys.path.insert(0, '..')\n", None),  # the root, by a literal: on sys.path in the image too
        ("import os, sys\nsys.path.append(os.path.dirname(os.path.dirname(__file__)))\n", Severity.WARNING),
    ]):
        root = _write(tmp_path / str(i), {**TRAIN, "scripts/train.py": header + "import src.features\n"})
        found = [f for f in _trace(root, "scripts/train.py").findings if f.code == "SB023"]
        assert [f.severity for f in found] == ([severity] if severity else []), header
        if severity is Severity.WARNING:
            assert "computed entry at scripts/train.py:2" in found[0].message


def test_A50_pythonpath_setting_validated_and_put_on_the_image_pythonpath(tmp_path: Path) -> None:
    root = _write(tmp_path, {**TRAIN, "lib/x.py": ""})
    (root / "pyproject.toml").write_text('[tool.slimbuild]\npythonpath = [".", "lib/"]\n')
    assert load_settings(root).pythonpath == (".", "lib")
    for bad in ('"/etc"', '"../x"', '"missing"', '"scripts/train.py"', '""'):
        (root / "pyproject.toml").write_text(f"[tool.slimbuild]\npythonpath = [{bad}]\n")
        with pytest.raises(ConfigError) as err:
            load_settings(root)
        assert err.value.exit_code == USAGE and "pythonpath" in err.value.message
    launch = plan_launch("script", "scripts/train.py", "__main__", "", ("scripts/train.py", "src/features.py"),
                         pythonpath=(".", "lib"))
    assert launch.argv == (VENV_PYTHON, "/app/scripts/train.py")
    assert launch.pythonpath == ("/app", "/app/lib", "/app/src")
    assert plan_launch("script", "scripts/train.py", "__main__", "", ("scripts/train.py",)).pythonpath == ()


def test_A50_manifest_records_the_image_pythonpath_only_when_configured() -> None:
    common = {
        "target": {"python": "3.11", "platform": "linux/amd64"},
        "base_image": {"reference": "b", "digest_or_id": "sha256:" + "0" * 64},
        "distributions": [], "files": [], "template": {"name": "slim", "dockerfile_sha256": "0" * 64},
        "source_date_epoch": 0, "lock_sha256": "0" * 64,
    }
    with_path = make_manifest(**common, pythonpath=["/app", "/app/src"])  # type: ignore[arg-type]
    assert with_path["pythonpath"] == ["/app", "/app/src"]
    validate_manifest(with_path, "test")
    assert "pythonpath" not in make_manifest(**common)  # type: ignore[arg-type]
