"""The base image's Python: read from the image config or one probe run, cached by digest, checked against the target."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from slimbuild.errors import ConfigError, ExitCode
from slimbuild.image.engine import RunOutcome
from slimbuild.pipeline.base_python import PROBE, base_python, check_target, major_minor, version_from_env

DIGEST = "sha256:" + "a" * 64
PINNED = f"team/py:1@{DIGEST}"


class ProbeEngine:
    """Answers inspect_image and run only, counting both (the base_python edge needs no more)."""

    def __init__(self, env: Sequence[str] = (), output: str = "slimbuild-python 3.11.2\n", exit_code: int = 0) -> None:
        self.env, self.output, self.exit_code = list(env), output, exit_code
        self.calls: list[tuple[Any, ...]] = []

    def inspect_image(self, ref: str) -> dict[str, Any]:
        self.calls.append(("inspect_image", ref))
        return {"Id": DIGEST, "Config": {"Env": self.env}}

    def run(self, image_id: str, argv: Sequence[str], *, user: str, timeout: float, **_kw: Any) -> RunOutcome:
        self.calls.append(("run", image_id, tuple(argv), user))
        return RunOutcome(self.exit_code, self.output)


def test_E22_the_image_config_s_python_version_answers_without_a_container(tmp_path: Path) -> None:
    engine = ProbeEngine(env=["PATH=/usr/local/bin", "PYTHON_VERSION=3.12.7"])
    assert base_python(engine, PINNED, tmp_path) == "3.12.7"  # type: ignore[arg-type]
    assert [c[0] for c in engine.calls] == ["inspect_image"]


def test_E22_other_bases_are_asked_once_per_digest_then_read_from_the_cache(tmp_path: Path) -> None:
    engine = ProbeEngine(env=["PATH=/usr/bin", "PYTHON_VERSION=not-a-version"])
    assert base_python(engine, PINNED, tmp_path) == "3.11.2"  # type: ignore[arg-type]
    (run,) = [c for c in engine.calls if c[0] == "run"]
    assert run[1] == PINNED and run[2] == PROBE and not run[3].startswith("0")  # never as root
    engine.calls.clear()
    assert base_python(engine, PINNED, tmp_path) == "3.11.2"  # type: ignore[arg-type]
    assert base_python(None, PINNED, tmp_path) == "3.11.2"  # cached: no engine needed
    assert engine.calls == []
    assert base_python(None, f"team/py:1@sha256:{'b' * 64}", tmp_path) == ""  # another digest, no engine: unknown


def test_E22_a_mismatch_names_both_versions_and_both_fixes() -> None:
    check_target("3.11", "3.11.2", "debian:bookworm")  # same major.minor: accepted
    with pytest.raises(ConfigError) as err:
        check_target("3.12", "3.11.2", "slimbuild-test/debian-python:bookworm")
    assert err.value.exit_code == ExitCode.USAGE
    text = err.value.one_line()
    assert "3.12" in text and "3.11.2" in text and "slimbuild-test/debian-python:bookworm" in text
    assert "--base-image" in text and 'python = "3.11"' in text
    assert version_from_env(["PYTHON_VERSION=3.13.0rc2"]) == "3.13.0rc2" and major_minor("3.13.0rc2") == "3.13"
    assert version_from_env(["PYTHON_VERSION="]) == "" and version_from_env(None) == ""


@pytest.mark.parametrize(("output", "code"), [("exec: \"python3\": not found\n", 127), ("", 0), ("Python 3\n", 1)])
def test_E25_a_base_whose_python_cannot_be_read_is_exit_2_and_not_cached(tmp_path: Path, output: str, code: int) -> None:
    engine = ProbeEngine(output=output, exit_code=code)
    with pytest.raises(ConfigError, match="cannot read the Python version of the base image") as err:
        base_python(engine, PINNED, tmp_path)  # type: ignore[arg-type]
    assert err.value.exit_code == ExitCode.USAGE and "--base-image" in err.value.one_line()
    assert not list((tmp_path / "base-python").glob("*"))  # a failed probe is asked again next time
