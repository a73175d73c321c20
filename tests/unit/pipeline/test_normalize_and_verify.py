"""The normalisation step and verify's pure parts, with the FakeEngine (G17, G18; CASES G14-G18)."""
# ruff: noqa: F811 - pytest fixtures imported by name

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slimbuild.errors import Interrupted
from slimbuild.pipeline.verifying import base_moved
from tests.constants import INTERRUPTED
from tests.unit.pipeline.test_build_orchestration import (  # noqa: F401 - fixtures used by name
    FakeEngine,
    _cli,
    _write_project,
    cache,
    fake_lock,
    proj,
)


class _InterruptedLoad(FakeEngine):
    """``docker load`` that registers the image, then is interrupted before it answers (SIGINT mid-call)."""

    def load(self, data: bytes) -> str:
        self.loaded = super().load(data)
        raise Interrupted("interrupted by signal SIGINT", hint="nothing was left half-written")


def test_G17_an_interrupted_normalisation_leaves_no_loaded_image_and_no_tag(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p")
    engine = _InterruptedLoad()
    run = _cli("build", str(root), engine=engine, monkeypatch=monkeypatch)
    assert run.code == INTERRUPTED, run.err
    assert engine.loaded not in engine.images  # the half-loaded twin is gone
    built = [c for c in engine.calls if c[0] == "build"]
    assert len(built) == 2 and engine.refs == {} and "tag" not in engine.kinds()
    assert not list(root.glob("*manifest*"))


class _Tags:
    def __init__(self, digests: dict[str, list[str]]) -> None:
        self.digests = digests

    def inspect_image(self, ref: str) -> dict[str, Any]:
        from slimbuild.errors import NoSuchImage

        if ref not in self.digests:
            raise NoSuchImage(f"no such image: {ref}", "")
        return {"RepoDigests": self.digests[ref]}


OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("reference", "digests", "moved"),
    [
        (f"python:3.11-slim@{OLD}", {"python:3.11-slim": [f"python@{NEW}"]}, True),  # the tag moved
        (f"python:3.11-slim@{OLD}", {"python:3.11-slim": [f"python@{OLD}"]}, False),  # it did not
        (f"python:3.11-slim@{OLD}", {}, False),  # the tag is gone from the engine: nothing to say
        (OLD, {}, False),  # a local base recorded by id has no tag
    ],
)
def test_G18_verify_says_when_the_recorded_base_tag_names_another_digest(
    reference: str, digests: dict[str, list[str]], moved: bool
) -> None:
    note = base_moved(_Tags(digests), reference)  # type: ignore[arg-type]
    assert bool(note) is moved
    if moved:
        assert "python:3.11-slim now names sha256:bbbbbbbbbbb" in note and "the record sha256:aaaaaaaaaaa" in note
