"""The manifest records where the distributions came from (C24, RELIABILITY G8), credentials masked."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from slimbuild.pipeline import building
from tests.unit.pipeline.test_build_orchestration import (  # noqa: F401 - fixtures used by name
    FakeEngine,
    _build,
    _members,
    _write_project,
    cache,
    fake_lock,
)


def test_C24_the_manifest_records_the_index_sources_masked(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    faked = building.lock
    used = ("https://user:pw-SENTINEL@idx.example/simple", "https://pypi.org/simple")

    def lock(*args: Any, **kwargs: Any) -> Any:
        return tuple(replace(o, index_sources=used) for o in faked(*args, **kwargs))

    monkeypatch.setattr(building, "lock", lock)
    engine = FakeEngine()
    (result,) = _build(_write_project(tmp_path / "p"), engine)
    assert result.manifest["index_sources"] == ["https://***@idx.example/simple", "https://pypi.org/simple"]
    assert json.loads(result.manifest_path.read_text())["index_sources"] == result.manifest["index_sources"]
    shipped = b"".join(data for _target, context in engine.contexts for data in _members(context).values())
    assert b"pw-SENTINEL" not in shipped
    # the image's own copy leaves them out: where the wheels came from changes no image (B8/B9, G4)
    assert b"idx.example" not in shipped
    assert all("idx.example" not in json.dumps(image.get("Labels", {})) for image in engine.images.values())
