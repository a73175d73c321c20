"""Declared requirements: requirements files with includes, pyproject, setup.cfg (parsed with packaging)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimbuild.analysis.declared import read_declared
from slimbuild.errors import ConfigError


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_requirements_with_includes_constraints_hashes_and_continuations(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "requirements.txt": "-r base.txt\n-c constraints.txt\nScikit_Learn>=1.3 \\\n    --hash=sha256:" + "ab" * 32 + "\n"
            "# comment\n--index-url https://example.invalid/simple\nrequests[socks]>=2 ; python_version >= '3.8'  # inline\n",
            "base.txt": "pandas==2.2.0\n",
            "constraints.txt": "numpy<2\n",
        },
    )
    reqs, cons = read_declared(root)
    assert [(d.name, d.specifier) for d in reqs] == [("pandas", "==2.2.0"), ("requests", ">=2"), ("scikit-learn", ">=1.3")]
    assert [(d.name, d.source.path, d.source.line) for d in cons] == [("numpy", "constraints.txt", 1)]


def test_pyproject_optional_groups_only_when_configured(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname="x"\nversion="1"\ndependencies=["numpy"]\n'
            '[project.optional-dependencies]\nml=["torch"]\n'
        },
    )
    assert [d.name for d in read_declared(root)[0]] == ["numpy"]
    assert [d.name for d in read_declared(root, optional_groups=["ml"])[0]] == ["numpy", "torch"]
    with pytest.raises(ConfigError, match="no optional-dependencies group 'gpu'"):
        read_declared(root, optional_groups=["gpu"])


def test_setup_cfg_install_requires(tmp_path: Path) -> None:
    root = _write(tmp_path, {"setup.cfg": "[options]\ninstall_requires =\n    numpy>=1.20\n    PyYAML\n"})
    assert [d.name for d in read_declared(root)[0]] == ["numpy", "pyyaml"]


def test_invalid_requirement_names_file_and_line(tmp_path: Path) -> None:
    root = _write(tmp_path, {"requirements.txt": "numpy\npandas>>2\n"})
    with pytest.raises(ConfigError, match=r"requirements\.txt:2: invalid requirement"):
        read_declared(root)


def test_missing_include_is_a_config_error(tmp_path: Path) -> None:
    root = _write(tmp_path, {"requirements.txt": "-r nope.txt\n"})
    with pytest.raises(ConfigError, match=r"nope\.txt"):
        read_declared(root)


def test_a_comment_after_a_tab_is_a_comment_as_pip_reads_it(tmp_path: Path) -> None:
    root = _write(tmp_path, {"requirements.txt": "requests>=2\t# http\npandas==2.2.0\t#data\n"})
    reqs, _ = read_declared(root)
    assert [(d.name, d.specifier, d.source.line) for d in reqs] == [("pandas", "==2.2.0", 2), ("requests", ">=2", 1)]
