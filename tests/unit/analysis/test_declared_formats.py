"""Declarations where users keep them: stage requirements files, Poetry, PEP 735 groups, Pipfile, conda, setup.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from slimbuild.analysis.declared import read_declared
from slimbuild.analysis.declared_conda import conda_specifier, pypi_name
from slimbuild.analysis.declared_formats import poetry_specifier
from slimbuild.errors import ConfigError
from slimbuild.models import Finding


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _specs(decls: tuple[object, ...]) -> dict[str, str]:
    return {d.name: d.specifier for d in decls}  # type: ignore[attr-defined]


# ---------------------------------------------------------------- requirements nearest the entrypoint


def test_stage_requirements_beside_the_script_are_read_up_to_the_root(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "requirements.txt": "requests>=2\npandas>=1.5\n",
            "stages/train/requirements.txt": "-r ../common.txt\npandas==2.1.4\n",
            "stages/common.txt": "numpy<2\n",
            "stages/train/run.py": "import pandas\n",
            "stages/serve/requirements.txt": "flask\n",
        },
    )
    reqs, _ = read_declared(root, entry_dir=Path("stages/train"))
    assert _specs(reqs) == {"numpy": "<2", "pandas": "==2.1.4", "requests": ">=2"}
    pandas = next(d for d in reqs if d.name == "pandas")
    assert (pandas.source.path, pandas.source.line) == ("stages/train/requirements.txt", 2)
    assert "flask" not in _specs(reqs)  # another stage's file is not this entrypoint's
    assert _specs(read_declared(root)[0]) == {"pandas": ">=1.5", "requests": ">=2"}


def test_stage_pipfile_and_environment_file_beside_the_script(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "Pipfile": '[packages]\nflask = "*"\nscikit-learn = "==1.3.0"\n',
            "04-deployment/web-service/Pipfile": '[packages]\nscikit-learn = "==1.0.2"\ngunicorn = "*"\n',
            "04-deployment/batch/environment.yml": "dependencies:\n  - pandas=1.4\n",
        },
    )
    reqs, _ = read_declared(root, entry_dir=Path("04-deployment/web-service"), project={})
    assert _specs(reqs) == {"flask": "", "gunicorn": "", "scikit-learn": "==1.0.2"}
    sk = next(d for d in reqs if d.name == "scikit-learn")
    assert (sk.source.path, sk.source.line) == ("04-deployment/web-service/Pipfile", 2)
    reqs, _ = read_declared(root, entry_dir=Path("04-deployment/batch"), project={})
    assert _specs(reqs)["pandas"] == "==1.4.*"


def test_configured_requirement_files_turn_off_the_stage_lookup(tmp_path: Path) -> None:
    root = _write(tmp_path, {"deps.txt": "requests\n", "stage/requirements.txt": "flask\n"})
    reqs, _ = read_declared(root, ["deps.txt"], entry_dir=Path("stage"))
    assert [d.name for d in reqs] == ["requests"]


def test_include_outside_the_project_is_read_and_named_by_its_path(tmp_path: Path) -> None:
    root = _write(tmp_path / "proj", {"requirements.txt": "-r ../shared.txt\n"})
    _write(tmp_path, {"shared.txt": "numpy\n"})
    reqs, _ = read_declared(root)
    assert [(d.name, d.source.path) for d in reqs] == [("numpy", (tmp_path / "shared.txt").resolve().as_posix())]


# ---------------------------------------------------------------- Poetry

POETRY = """\
[tool.poetry]
name = "forecast"
version = "0.1.0"

[tool.poetry.dependencies]
python = "^3.10"
pandas = "^2.1"
numpy = { version = "~1.26.2", markers = "sys_platform != 'win32'" }
scipy = [
    { version = "<1.12", python = "<3.11" },
    { version = "^1.12", python = ">=3.11" },
]
torch = { version = ">=2.1", optional = true }
mylib = { git = "https://example.invalid/mylib.git" }
requests = "*"
Pillow = "10.1.0"

[tool.poetry.extras]
ml = ["torch"]

[tool.poetry.group.dev.dependencies]
pytest = "^8"

[tool.poetry.dev-dependencies]
black = "^24"
"""


def test_poetry_dependencies_translate_caret_and_tilde_and_skip_python_and_groups(tmp_path: Path) -> None:
    root = _write(tmp_path, {"pyproject.toml": POETRY})
    reqs, _ = read_declared(root, project={})
    names = sorted({d.name for d in reqs})
    assert names == ["mylib", "numpy", "pandas", "pillow", "requests", "scipy"]
    specs = {d.name: d.specifier for d in reqs if d.name != "scipy"}
    assert SpecifierSet(specs["pandas"]) == SpecifierSet(">=2.1,<3")
    assert SpecifierSet(specs["numpy"]) == SpecifierSet(">=1.26.2,<1.27")
    assert specs["pillow"] == "==10.1.0" and specs["requests"] == ""
    assert next(d for d in reqs if d.name == "mylib").marker == "url"
    scipy = sorted((d.specifier, d.marker) for d in reqs if d.name == "scipy")
    assert len(scipy) == 2 and all("python_version" in m for _, m in scipy)
    pandas = next(d for d in reqs if d.name == "pandas")
    assert (pandas.source.path, pandas.source.line) == ("pyproject.toml", 7)


def test_poetry_optional_dependencies_count_only_through_a_selected_extra(tmp_path: Path) -> None:
    root = _write(tmp_path, {"pyproject.toml": POETRY})
    assert "torch" not in {d.name for d in read_declared(root, project={})[0]}
    assert "torch" in {d.name for d in read_declared(root, optional_groups=["ml"], project={})[0]}


def test_poetry_groups_are_runtime_only_when_configured(tmp_path: Path) -> None:
    root = _write(tmp_path, {"pyproject.toml": POETRY})
    names = {d.name for d in read_declared(root, project={}, groups=["dev"])[0]}
    assert {"pytest", "black"} <= names


def test_poetry_2_project_dependencies_are_refined_not_extended(tmp_path: Path) -> None:
    text = (
        '[project]\nname = "x"\nversion = "1"\ndependencies = ["pandas"]\n\n'
        '[tool.poetry.dependencies]\npandas = "^2.1"\nrich = "*"\n'
    )
    root = _write(tmp_path, {"pyproject.toml": text})
    reqs, _ = read_declared(root, project={"dependencies": ["pandas"]})
    assert sorted(d.name for d in reqs) == ["pandas", "pandas"]
    assert ">=2.1" in {s for d in reqs for s in d.specifier.split(",")}


@pytest.mark.parametrize(
    ("poetry", "pep440"),
    [("^1.2.3", ">=1.2.3,<2"), ("^0.2.3", ">=0.2.3,<0.3"), ("^0.0.3", ">=0.0.3,<0.0.4"), ("^0", ">=0,<1"),
     ("~1.2.3", ">=1.2.3,<1.3"), ("~1", ">=1,<2"), ("1.2.3", "==1.2.3"), (">= 1.2 < 2.0", ">=1.2,<2.0"),
     ("*", ""), ("^1.0 || ^2.0", ""), ("~=1.4", "~=1.4")],
)
def test_poetry_constraint_syntax(poetry: str, pep440: str) -> None:
    assert SpecifierSet(poetry_specifier(poetry)) == SpecifierSet(pep440)


# ---------------------------------------------------------------- PEP 735


def test_dependency_groups_are_runtime_only_when_configured_and_follow_includes(tmp_path: Path) -> None:
    text = (
        '[project]\nname = "x"\nversion = "1"\ndependencies = ["numpy"]\n\n[dependency-groups]\n'
        'ml = ["torch>=2", {include-group = "Data"}]\ndata = ["pandas>=2"]\ntest = ["pytest"]\n'
    )
    root = _write(tmp_path, {"pyproject.toml": text})
    assert [d.name for d in read_declared(root)[0]] == ["numpy"]
    assert [d.name for d in read_declared(root, groups=["ml"])[0]] == ["numpy", "pandas", "torch"]
    with pytest.raises(ConfigError, match="no dependency group 'gpu'"):
        read_declared(root, groups=["gpu"])


# ---------------------------------------------------------------- Pipfile


def test_pipfile_packages_not_dev_packages(tmp_path: Path) -> None:
    text = (
        '[[source]]\nurl = "https://pypi.org/simple"\nverify_ssl = true\nname = "pypi"\n\n'
        '[packages]\nrequests = "*"\nDjango = ">=4.2,<5"\npsycopg2 = {version = "==2.9.9", sys_platform = "== \'linux\'"}\n'
        'mylib = {path = ".", editable = true}\n\n[dev-packages]\npytest = "*"\n\n[requires]\npython_version = "3.11"\n'
    )
    root = _write(tmp_path, {"Pipfile": text})
    reqs, _ = read_declared(root, project={})
    assert _specs(reqs) == {"django": "<5,>=4.2", "mylib": "", "psycopg2": "==2.9.9", "requests": ""}
    psycopg = next(d for d in reqs if d.name == "psycopg2")
    assert "sys_platform" in psycopg.marker and (psycopg.source.path, psycopg.source.line) == ("Pipfile", 9)


# ---------------------------------------------------------------- conda

ENVIRONMENT = """\
name: detect
channels:
  - pytorch
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pytorch::pytorch=2.1
  - numpy==1.26.4
  - matplotlib-base>=3.8
  - py-xgboost
  - scikit-learn 1.3.*
  - cudatoolkit=11.8
  - pandas=2.1.4=py311h_0
  - pip:
      - -r requirements-pip.txt
      - timm>=0.9
"""


def test_conda_environment_packages_under_pypi_names_and_its_pip_section(tmp_path: Path) -> None:
    root = _write(tmp_path, {"environment.yml": ENVIRONMENT, "requirements-pip.txt": "albumentations==1.3.1\n"})
    found: list[Finding] = []
    reqs, _ = read_declared(root, project={}, findings=found)
    assert _specs(reqs) == {
        "albumentations": "==1.3.1", "matplotlib": ">=3.8", "numpy": "==1.26.4", "pandas": "==2.1.4",
        "scikit-learn": "==1.3.*", "timm": ">=0.9", "torch": "==2.1.*", "xgboost": "",
    }
    timm = next(d for d in reqs if d.name == "timm")
    assert (timm.source.path, timm.source.line) == ("environment.yml", 17)
    assert [(f.code, f.location.line, f.severity.value) for f in found] == [("SB015", 13, "warning")]
    assert "cudatoolkit" in found[0].message


def test_conda_names_table() -> None:
    assert pypi_name("python") == "" and pypi_name("pip") == ""
    assert pypi_name("pytorch") == "torch" and pypi_name("r-base") is None and pypi_name("Pandas") == "pandas"
    assert conda_specifier("=1.2") == "==1.2.*" and conda_specifier("==1.2") == "==1.2"


# ---------------------------------------------------------------- setup.py

SETUP_PY = """\
from setuptools import find_packages, setup

REQUIRED = [
    "requests>=2.31",
    "click",
]

setup(
    name="tool",
    packages=find_packages(),
    install_requires=REQUIRED + ["rich"] if False else REQUIRED,
    extras_require={"s3": ["boto3>=1.28"], "dev": ["pytest"]},
)
"""


def test_setup_py_literal_lists_read_with_ast_and_extras_when_selected(tmp_path: Path) -> None:
    literal = SETUP_PY.replace('REQUIRED + ["rich"] if False else REQUIRED', "REQUIRED")
    root = _write(tmp_path, {"setup.py": literal + "\nraise SystemExit('never executed')\n"})
    reqs, _ = read_declared(root, project={})
    assert _specs(reqs) == {"click": "", "requests": ">=2.31"}
    assert "boto3" in _specs(read_declared(root, optional_groups=["s3"], project={})[0])


def test_setup_py_non_literal_install_requires_is_a_warning(tmp_path: Path) -> None:
    root = _write(tmp_path, {"setup.py": SETUP_PY})
    found: list[Finding] = []
    reqs, _ = read_declared(root, project={}, findings=found)
    assert reqs == ()
    assert [(f.code, f.location.path, f.location.line) for f in found] == [("SB015", "setup.py", 11)]


def test_project_dependencies_get_the_line_that_quotes_them(tmp_path: Path) -> None:
    text = (
        '[project]\nname = "x"\nversion = "1"\ndependencies = [\n    "numpy>=1",\n    \'rich\',\n]\n\n'
        '[project.optional-dependencies]\nml = ["torch", "numpy>=1"]\n'
    )
    root = _write(tmp_path, {"pyproject.toml": text})
    project = {"dependencies": ["numpy>=1", "rich"], "optional-dependencies": {"ml": ["torch", "numpy>=1"]}}
    reqs, _ = read_declared(root, optional_groups=["ml"], project=project)
    assert sorted((d.name, d.source.line) for d in reqs) == [("numpy", 5), ("numpy", 10), ("rich", 6), ("torch", 10)]
