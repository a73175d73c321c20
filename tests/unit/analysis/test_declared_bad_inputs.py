"""Group A for the declaration readers (A24-A31 in tests/CASES.md): file:line and a hint, exit 2, never a traceback.

Each parser is also fuzzed with hypothesis: whatever the text, it returns or raises a ``SlimbuildError``.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimbuild.analysis import declared
from slimbuild.analysis.declared import logical_lines, parse_requirement_lines, read_declared
from slimbuild.analysis.declared_conda import conda_specifier, read_environment
from slimbuild.analysis.declared_formats import (
    TomlLines,
    dependency_groups,
    load_toml,
    poetry_specifier,
    read_dependency_group,
    read_pipfile,
    read_poetry,
    read_setup_py,
)
from slimbuild.errors import ConfigError, SlimbuildError
from slimbuild.models import Finding
from tests.constants import USAGE


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, body in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            (root / rel).write_bytes(body)
        else:
            (root / rel).write_text(body)
    return root


def _error(root: Path, **kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        read_declared(root, project={}, **kwargs)  # type: ignore[arg-type]
    assert info.value.exit_code == USAGE
    assert info.value.hint
    return info.value


def test_A24_requirement_include_loop_is_an_error_at_the_closing_line(tmp_path: Path) -> None:
    files = {"requirements.txt": "numpy\n-r stage/base.txt\n", "stage/base.txt": "pandas\n-r ../requirements.txt\n"}
    root = _write(tmp_path, dict(files))
    err = _error(root)
    assert err.message.startswith("stage/base.txt:2: ")
    assert "requirements.txt -> stage/base.txt -> requirements.txt" in err.message


def test_A24_a_diamond_of_includes_is_not_a_loop(tmp_path: Path) -> None:
    files = {"requirements.txt": "-r a.txt\n-r b.txt\n", "a.txt": "-r c.txt\n", "b.txt": "-r c.txt\n", "c.txt": "x\n"}
    root = _write(tmp_path, dict(files))
    assert [d.name for d in read_declared(root, project={})[0]] == ["x", "x"]


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("Pipfile", '[packages]\nrequests = "*"\nflask = \n', 3),
        ("pyproject.toml", '[tool.poetry.dependencies]\npandas = "^2"\n[tool.poetry.dependencies]\n', 3),
    ],
)
def test_A25_invalid_toml_names_file_and_line(tmp_path: Path, name: str, text: str, line: int) -> None:
    err = _error(_write(tmp_path, {name: text}))
    assert err.message.startswith(f"{name}:{line}: invalid TOML")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[tool.poetry]\nname = "x"\ndependencies = "pandas"\n', "pyproject.toml:3"),
        ('[tool.poetry.dependencies]\npython = "^3.10"\npandas = 2\n', "pyproject.toml:3"),
        ('[tool.poetry.dependencies]\npandas = "^^2"\n', "pyproject.toml:2"),
        ('[tool.poetry.dependencies]\npandas = { version = 2 }\n', "pyproject.toml:2"),
        ('[tool.poetry.extras]\nml = "torch"\n', "pyproject.toml:2"),
    ],
)
def test_A26_poetry_table_of_the_wrong_type_names_file_and_line(tmp_path: Path, text: str, where: str) -> None:
    err = _error(_write(tmp_path, {"pyproject.toml": text}))
    assert err.message.startswith(f"{where}: ")


def test_A27_dependency_group_include_loop_and_bad_items(tmp_path: Path) -> None:
    loop = '[dependency-groups]\na = ["x", {include-group = "b"}]\nb = [{include-group = "a"}]\n'
    err = _error(_write(tmp_path / "loop", {"pyproject.toml": loop}), groups=["a"])
    assert err.message.startswith("pyproject.toml:3: ") and "a -> b -> a" in err.message
    bad = '[dependency-groups]\na = [{include = "b"}]\n'
    assert _error(_write(tmp_path / "bad", {"pyproject.toml": bad}), groups=["a"]).message.startswith("pyproject.toml:2: ")
    missing = '[dependency-groups]\na = [{include-group = "nope"}]\n'
    assert "no dependency group 'nope'" in _error(_write(tmp_path / "miss", {"pyproject.toml": missing}), groups=["a"]).message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: x\ndependencies:\n  - numpy\n  - [oops\n", 5),
        ("dependencies: numpy\n", 1),
        ("dependencies:\n  - numpy\n  - pip: requests\n", 3),
        ("dependencies:\n  - {conda: x}\n  - [1, 2]\n", 3),
        ("- just\n- a list\n", 1),
        ("dependencies:\n  - numpy=1.0=x=y=\n  - '!!bad'\n", 3),
    ],
)
def test_A28_invalid_environment_yml_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    err = _error(_write(tmp_path, {"environment.yml": text}))
    assert re.match(rf"environment\.yml:{line}: ", err.message), err.message


@pytest.mark.parametrize("name", ["requirements.txt", "Pipfile", "environment.yml", "setup.cfg", "pyproject.toml"])
def test_A29_undecodable_declaration_file_names_the_byte(tmp_path: Path, name: str) -> None:
    body = b"[packages]\nnumpy = \"*\"\n# caf\xe9\n" if name != "environment.yml" else b"dependencies:\n  - caf\xe9\n"
    err = _error(_write(tmp_path, {name: body}))
    assert err.message.startswith(f"{name}: not UTF-8 (byte ")
    assert "UTF-8" in err.hint


def test_A29_setup_py_with_a_bogus_codec_or_nul_bytes_is_a_config_error(tmp_path: Path) -> None:
    for body in (b"# coding: bogus\nsetup()\n", b"setup(install_requires=['x'])\x00\n", b"\xff\xfe\x00x"):
        err = _error(_write(tmp_path, {"setup.py": body}))
        assert err.message.startswith("setup.py")


def test_A30_huge_declaration_file_is_refused_quickly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(declared, "MAX_DECLARATION_BYTES", 1000)
    body = "dependencies:\n" + "  - numpy\n" * 200
    err = _error(_write(tmp_path, {"environment.yml": body}))
    assert err.message.startswith(f"environment.yml: {len(body)} bytes, over the 1000 bytes")


def test_A30_default_bound_refuses_a_file_of_many_megabytes(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_bytes(b"numpy\n" * (declared.MAX_DECLARATION_BYTES // 6 + 10))
    assert "over the" in _error(tmp_path).message


def test_A31_setup_py_is_never_executed_and_bad_syntax_names_the_line(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    run = f"open({str(marker)!r}, 'w').close()\nsetup(install_requires=['numpy'])\n"
    assert [d.name for d in read_declared(_write(tmp_path / "a", {"setup.py": run}), project={})[0]] == ["numpy"]
    assert not marker.exists()
    err = _error(_write(tmp_path / "b", {"setup.py": "from setuptools import setup\nsetup(\n  install_requires=[\n"}))
    assert re.match(r"setup\.py:\d+: cannot parse setup\.py", err.message)


def test_A31_non_literal_install_requires_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    text = "from setuptools import setup\nsetup(install_requires=open('requirements.txt').read().splitlines())\n"
    found: list[Finding] = []
    assert read_declared(_write(tmp_path, {"setup.py": text}), project={}, findings=found) == ((), ())
    assert [(f.code, str(f.location), f.severity.value) for f in found] == [("SB015", "setup.py:2", "warning")]


# ---------------------------------------------------------------- fuzzing: only SlimbuildError may escape

_FUZZ = settings(max_examples=int(os.environ.get("FUZZ_N", "150")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
_TOMLISH = st.text(alphabet=st.sampled_from(list('[]{}=",.\n #^~<>*|abcdeptyorl0123456789-_\'')), max_size=200)
_YAMLISH = st.text(alphabet=st.sampled_from(list("-:[]{}\n =<>|*!&@#'\"abcnpiy0123456789.,")), max_size=200)


def _quietly(fn: object, *args: object) -> None:
    try:
        fn(*args)  # type: ignore[operator]
    except SlimbuildError:
        pass


@_FUZZ
@given(_TOMLISH)
def test_A25_fuzz_pipfile(text: str) -> None:
    _quietly(read_pipfile, text, "Pipfile")


@_FUZZ
@given(st.one_of(_TOMLISH, st.text(max_size=100)))
def test_A26_fuzz_poetry(body: str) -> None:
    for text in (body, "[tool.poetry.dependencies]\n" + body, "[tool.poetry]\n" + body):
        try:
            data = load_toml(text, "pyproject.toml")
        except SlimbuildError:
            continue
        lines = TomlLines(text, "pyproject.toml")
        _quietly(read_poetry, data, lines, ["ml"], ["dev"])


@_FUZZ
@given(st.text(max_size=40))
def test_A26_fuzz_poetry_and_conda_version_syntax(text: str) -> None:
    for fn in (poetry_specifier, conda_specifier):
        try:
            fn(text)
        except ValueError:
            pass


@_FUZZ
@given(_TOMLISH)
def test_A27_fuzz_dependency_groups(body: str) -> None:
    text = "[dependency-groups]\n" + body
    try:
        data = load_toml(text, "pyproject.toml")
        lines = TomlLines(text, "pyproject.toml")
        groups = dependency_groups(data, lines)
        for name in groups:
            read_dependency_group(groups, name, lines)
    except SlimbuildError:
        pass


@_FUZZ
@given(st.one_of(_YAMLISH, st.text(max_size=200)))
def test_A28_fuzz_environment_yml(body: str) -> None:
    for text in (body, "dependencies:\n" + body):
        _quietly(read_environment, text, "environment.yml")


@_FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: ("setup(install_requires=" + t).encode())))
def test_A31_fuzz_setup_py(source: bytes) -> None:
    _quietly(read_setup_py, source, "setup.py", ["s3"])


@_FUZZ
@given(st.lists(st.text(max_size=60), max_size=8))
def test_A24_fuzz_requirement_lines(lines: list[str]) -> None:
    text = "\n".join(lines)
    _quietly(parse_requirement_lines, logical_lines(text), Path("/nonexistent"), "requirements.txt", Path("/nonexistent"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["requirements.txt", "Pipfile", "environment.yml", "setup.py", "pyproject.toml", "setup.cfg"]),
       body=st.binary(max_size=300))
def test_A29_fuzz_any_declaration_file_as_bytes(tmp_path: Path, name: str, body: bytes) -> None:
    (tmp_path / name).write_bytes(body)
    try:
        _quietly(read_declared, tmp_path, (), (), None, {}, )
    finally:
        (tmp_path / name).unlink()


def test_A28_alias_bomb_in_environment_yml_stays_bounded() -> None:
    levels = ["a0: &a0 [numpy, numpy, numpy, numpy, numpy, numpy, numpy, numpy, numpy, numpy]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    text = "\n".join(levels) + "\ndependencies: *a8\n"
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"environment\.yml:\d+: a dependency must be a string"):
        read_environment(text, "environment.yml")
    assert time.monotonic() - start < 2
