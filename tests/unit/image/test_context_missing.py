"""A56: a wanted path (``include``) that does not exist is called missing; a dangling link is still called one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slimbuild.errors import ConfigError
from slimbuild.image.context import collect_project_files


@pytest.mark.parametrize("rel", ["data/missing.csv", "nodir/sub/file.txt", "missing.txt"])
def test_A56_missing_include_says_missing(tmp_path: Path, rel: str) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(ConfigError) as err:
        collect_project_files(tmp_path, [rel])
    assert err.value.message == f"{rel}: no such file or directory in the project"
    assert "symlink" not in err.value.one_line() and "include" in err.value.hint


def test_A56_dangling_link_names_its_missing_target(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    os.symlink("gone/x.csv", tmp_path / "data" / "link.csv")
    with pytest.raises(ConfigError) as err:
        collect_project_files(tmp_path, ["data/link.csv"])
    assert err.value.message == "data/link.csv: dangling symlink (its target data/gone does not exist)"
