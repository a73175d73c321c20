"""``[tool.slimbuild] inputs``: the data an analysis reads at run time, parsed and validated (G10)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimbuild.config import INPUT_KEYS, DataInput, load_settings, parse_inputs
from slimbuild.errors import ConfigError
from tests import constants

SHA = "ab" * 32


def _settings(tmp_path: Path, inputs: str) -> Any:
    (tmp_path / "pyproject.toml").write_text(f'[tool.slimbuild]\nentrypoint = "main.py"\ninputs = {inputs}\n', encoding="utf-8")
    return load_settings(tmp_path)


def test_G10_every_kind_of_input_is_read_as_written(tmp_path: Path) -> None:
    s = _settings(
        tmp_path,
        f'[{{path = "data/raw/", sha256 = "{SHA}"}}, {{url = "s3://bucket/x.parquet", sha256 = "{SHA}"}}, '
        '{dataset = "pachyderm://repo@0123abc"}, {dvc = "data.dvc"}, {lakefs = "lakefs://repo/main/data/"}]',
    )
    assert s.inputs == (
        DataInput("path", "data/raw/", SHA),
        DataInput("url", "s3://bucket/x.parquet", SHA),
        DataInput("dataset", "pachyderm://repo@0123abc"),
        DataInput("dvc", "data.dvc"),
        DataInput("lakefs", "lakefs://repo/main/data/"),
    )
    assert _settings(tmp_path, "[]").inputs == ()


@pytest.mark.parametrize(
    ("inputs", "needle"),
    [
        ('"data/"', "'inputs' must be a list of tables"),
        ('["data/"]', "'inputs[0]' must be a table"),
        ("[{}]", "'inputs[0]' must name exactly one of"),
        ('[{path = "a", url = "s3://b/c"}]', "(path and url given)"),
        ('[{path = "a", sha = "x"}]', "unknown key 'inputs[0].sha'"),
        ('[{path = 3}]', "'inputs[0].path' must be a non-empty string"),
        ('[{path = ""}]', "'inputs[0].path' must be a non-empty string"),
        ('[{path = "/data/raw"}]', "'inputs[0].path' '/data/raw' must be a path relative to the project"),
        ('[{path = "../shared/data"}]', "must be a path relative to the project"),
        ('[{path = "a", sha256 = "ABC"}]', "'inputs[0].sha256' must be 64 lowercase hex digits"),
        (f'[{{path = "a", sha256 = "{SHA.upper()}"}}]', "'inputs[0].sha256' must be 64 lowercase hex digits"),
        (f'[{{dataset = "pachyderm://r@c", sha256 = "{SHA}"}}]', "'inputs[0].sha256' is for a path or a url"),
        ('[{url = "bucket/key"}]', "'inputs[0].url' 'bucket/key' must be a URL with a scheme"),
        ('[{url = "https://user:pw@host/x"}]', "'inputs[0].url' must not carry credentials"),
        ('[{lakefs = "lakefs://repo"}]', "must be lakefs://REPOSITORY/REF[/PATH]"),
        ('[{lakefs = "s3://repo/main"}]', "must be lakefs://REPOSITORY/REF[/PATH]"),
        ('[{dvc = "data.yaml"}]', "must name a .dvc file"),
        ('[{path = "a"}, {path = "b"}, {path = "a"}]', "'inputs[2].path' repeats inputs[0]"),
    ],
)
def test_G10_bad_inputs_exit_2_at_pyproject_with_the_key(tmp_path: Path, inputs: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        _settings(tmp_path, inputs)
    assert info.value.exit_code == constants.USAGE
    assert info.value.message.startswith("pyproject.toml: ")
    assert needle in info.value.message
    assert "\n" not in info.value.one_line()


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                              max_size=3), max_leaves=10)
_ENTRY = st.dictionaries(st.sampled_from([*INPUT_KEYS, "sha256", "other"]), _VALUES | st.text(max_size=30), max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_VALUES, st.lists(_ENTRY | _VALUES, max_size=4)))
def test_G10_fuzzed_inputs_parse_or_raise_a_config_error(value: Any) -> None:
    try:
        parsed = parse_inputs(value, "pyproject.toml")
    except ConfigError as exc:
        assert exc.message.startswith("pyproject.toml: ") and exc.exit_code == constants.USAGE
        return
    assert isinstance(parsed, tuple) and all(isinstance(i, DataInput) and i.kind in INPUT_KEYS for i in parsed)
    assert len({(i.kind, i.ref) for i in parsed}) == len(parsed)
