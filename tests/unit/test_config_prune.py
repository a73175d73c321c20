"""L41: ``keep-files`` and ``keep-locales``, the default pruning's exceptions: read, checked at their line, and
passed to the builder's stage script in the rendered Dockerfile."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from slimbuild.config import load_settings
from slimbuild.errors import ConfigError, ExitCode, PolicyViolation
from slimbuild.image.render import render_dockerfile
from tests.unit.image.test_render import PLAN


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "x"\n\n[tool.slimbuild]\nentrypoint = "main.py"\n{body}')
    return tmp_path


def test_L41_keep_files_and_locales_reach_the_stage_script(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path, 'keep-files = ["numpy/*.pyi", "mypkg/docs"]\nkeep-locales = ["de", "pt_BR"]\n'))
    assert s.keep_files == ("numpy/*.pyi", "mypkg/docs") and s.keep_locales == ("de", "pt_BR")
    plan = dataclasses.replace(PLAN, keep_files=s.keep_files, keep_locales=s.keep_locales)
    text = render_dockerfile(plan)
    assert "--keep-file 'numpy/*.pyi' --keep-file 'mypkg/docs' --keep-locale de --keep-locale pt_BR" in text
    assert "--keep-file '" not in render_dockerfile(PLAN)  # the default: no exceptions


def test_L41_run_time_compilers_are_named_without_pyc_too() -> None:
    # --keep-source also spares those packages' headers and sources from pruning: passed whatever --pyc says
    text = render_dockerfile(dataclasses.replace(PLAN, pyc=False, keep_sources=("torch",)))
    assert "--keep-source torch" in text and "--strip-sources" not in text


@pytest.mark.parametrize(
    ("body", "line", "word"),
    [
        ('keep-files = ["/etc/passwd"]', 6, "keep-files pattern '/etc/passwd'"),
        ('keep-files = ["../../bin/x"]', 6, "keep-files pattern '../../bin/x'"),
        ("keep-files = [\"a'; rm -rf /; '\"]", 6, "keep-files pattern"),
        ('keep-files = ["ok/*.pyi", ""]', 6, "keep-files pattern ''"),
        ('keep-locales = ["de", "Deutsch!"]', 6, "keep-locales entry 'Deutsch!'"),
        ('keep-locales = ["en;x"]', 6, "keep-locales entry"),
    ],
)
def test_L41_bad_keep_values_exit_2_at_their_line(tmp_path: Path, body: str, line: int, word: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(_write(tmp_path, body + "\n"))
    assert exc.value.exit_code == ExitCode.USAGE
    assert f"pyproject.toml:{line}:" in str(exc.value) and word in str(exc.value)


@pytest.mark.parametrize(
    ("field", "value"), [("keep_files", ("x'y",)), ("keep_files", ("a/../b",)), ("keep_locales", ("de fr",))]
)
def test_L41_the_plan_refuses_what_the_shell_would_read(field: str, value: tuple[str, ...]) -> None:
    with pytest.raises(PolicyViolation):
        render_dockerfile(dataclasses.replace(PLAN, **{field: value}))  # type: ignore[arg-type]
