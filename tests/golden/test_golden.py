"""Golden projects: each has the expected analysis per entrypoint, checked field by field."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.constants import OK

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CASES = sorted(
    [(p.name, p, p / "expected.toml") for p in (HERE / "projects").iterdir() if (p / "expected.toml").is_file()]
    + [(f.stem, REPO / "examples" / f.stem, f) for f in (HERE / "expected").glob("*.toml")]
)


def test_every_example_has_expectations() -> None:
    examples = {p.name for p in (REPO / "examples").iterdir() if p.is_dir()}
    assert examples == {f.stem for f in (HERE / "expected").glob("*.toml")}


@pytest.mark.parametrize(("name", "root", "expected_file"), CASES, ids=[c[0] for c in CASES])
def test_golden_analysis(name: str, root: Path, expected_file: Path, run_cli: Callable[..., Run]) -> None:
    expected = tomllib.loads(expected_file.read_text())["entrypoints"]
    result = run_cli("analyze", str(root), "--json")
    assert result.code == OK, result.err
    doc = json.loads(result.out)
    got = {e["name"]: e for e in doc["entrypoints"]}
    assert set(got) == set(expected)
    for entry, want in expected.items():
        e = got[entry]
        assert e["files"] == want["files"]
        assert [r["name"] for r in e["required"]] == want["required"]
        assert [r["name"] for r in e["missing"]] == want["missing"]
        assert [u["name"] for u in e["unused"]] == want["unused"]
        assert [u["module"] for u in e["unresolved"]] == want["unresolved"]
