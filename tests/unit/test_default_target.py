"""Case A44: with no ``python`` configured, the target follows ``requires-python`` of [project]."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimbuild.config import HOST_PYTHON, SUPPORTED_TARGETS, default_target, load_settings
from slimbuild.errors import ConfigError, ExitCode


@pytest.mark.parametrize(
    ("requires", "host", "expected"),
    [
        (None, "3.11", "3.11"),  # nothing said: the host's, as before
        ("", "3.11", "3.11"),
        (">=3.9", "3.11", "3.11"),  # the host's when admitted
        (">=3.11.4", "3.11", "3.11"),  # a later 3.11 patch release is admitted
        ("~=3.11", "3.11", "3.11"),
        (">=3.12", "3.11", "3.12"),  # else the lowest admitted above the host
        (">=3.13,<3.15", "3.11", "3.13"),
        ("==3.14.*", "3.11", "3.14"),
        ("<3.11", "3.11", "3.10"),  # none above: the highest admitted below
        (">=3.8,<3.10", "3.11", "3.9"),
        ("==3.9.7", "3.11", "3.9"),
        ("!=3.11.*", "3.11", "3.12"),
        (">=3.10", "3.13", "3.13"),
    ],
)
def test_A44_default_target_follows_requires_python(requires: str | None, host: str, expected: str) -> None:
    assert default_target(requires, host) == expected


@pytest.mark.parametrize(
    ("requires", "what"),
    [
        ("<3.0", "admits none of Python"),
        (">=4", "admits none of Python"),
        ("python>=3.10", "is not a version specifier"),
        (">=three", "is not a version specifier"),
    ],
)
def test_A44_requires_python_that_gives_no_target_is_a_config_error(requires: str, what: str) -> None:
    with pytest.raises(ConfigError) as err:
        default_target(requires, "3.11")
    assert err.value.exit_code == ExitCode.USAGE
    assert what in err.value.message and repr(requires) in err.value.message
    assert "--target-python" in err.value.hint


def test_A44_requires_python_not_a_string_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must be a string"):
        default_target(3.10, "3.11")


def _project(tmp_path: Path, pyproject: str, slimbuild_toml: str = "") -> Path:
    (tmp_path / "pyproject.toml").write_text(pyproject)
    if slimbuild_toml:
        (tmp_path / "slimbuild.toml").write_text(slimbuild_toml)
    return tmp_path


def test_A44_load_settings_takes_the_target_from_requires_python(tmp_path: Path) -> None:
    root = _project(tmp_path, '[project]\nname = "p"\nrequires-python = ">=3.14"\n')
    assert load_settings(root, env={}).target_python == "3.14"


@pytest.mark.parametrize(
    ("config", "env", "overrides"),
    [
        ('[tool.slimbuild]\npython = "3.10"\n', {}, {}),
        ("", {"SLIMBUILD_PYTHON": "3.10"}, {}),
        ("", {}, {"target_python": "3.10"}),
    ],
)
def test_A44_a_configured_target_wins_over_requires_python(
    tmp_path: Path, config: str, env: dict[str, str], overrides: dict[str, object]
) -> None:
    # a broken requires-python does not matter either when the target is configured
    root = _project(tmp_path, f'[project]\nname = "p"\nrequires-python = "nonsense"\n{config}')
    assert load_settings(root, overrides, env=env).target_python == "3.10"


def test_A44_no_requires_python_keeps_the_host(tmp_path: Path) -> None:
    root = _project(tmp_path, '[project]\nname = "p"\n')
    assert load_settings(root, env={}).target_python == HOST_PYTHON


def test_A44_supported_targets_are_the_stdlib_lists() -> None:
    from slimbuild.analysis.stdlib import stdlib_modules

    for version in SUPPORTED_TARGETS:
        assert "os" in stdlib_modules(version)
