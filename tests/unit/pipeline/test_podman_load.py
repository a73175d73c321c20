"""M14 with the FakeEngine: an engine that loads complete archives only (podman) still gets the normalised image."""
# ruff: noqa: F811 - pytest fixtures imported by name

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from slimbuild.errors import BuildFailed
from tests.constants import OK
from tests.unit.pipeline.test_build_orchestration import (  # noqa: F401 - fixtures used by name
    FakeEngine,
    _cli,
    _write_project,
    cache,
    fake_lock,
    proj,
)


class _CompleteArchivesOnly(FakeEngine):
    """Refuses a ``docker load`` tar whose manifest names layer files it does not carry, as podman 4.3 does."""

    def load(self, data: bytes) -> str:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = set(tar.getnames())
        if not any(name.endswith("layer.tar") for name in names):
            self.calls.append(("refused",))
            raise BuildFailed(
                "the engine refused to load the normalised image: payload does not match any of the supported image formats",
                "no tag was applied",
            )
        return super().load(data)


def test_M14_a_refused_config_only_load_is_retried_with_the_whole_image(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p")
    engine = _CompleteArchivesOnly()
    run = _cli("build", str(root), engine=engine, monkeypatch=monkeypatch)
    assert run.code == OK, run.err
    kinds = [c[0] for c in engine.calls if c[0] in {"refused", "save", "load"}]
    refused = kinds.index("refused")
    assert kinds.count("refused") == 1 and kinds[refused + 1 :] == ["save", "load"]  # the image saved, loaded whole
    (tagged,) = set(engine.refs.values())
    assert engine.images[tagged]["Config"]["Labels"]  # the loaded (normalised) image is the one tagged
