"""All or nothing, against the FakeEngine (E18-E21): where outputs go is checked and every reference validated
before any work; outputs are staged before the tags and committed after them; a failure after tagging started
undoes this run's tags. The real-engine tier proves the same in tests/docker/test_all_or_nothing.py."""

# ruff: noqa: F811 - the orchestration tests' fixtures (cache, fake_lock, proj) are imported, then taken by name

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from slimbuild.pipeline import outputs
from tests.constants import INTERRUPTED, OK, USAGE
from tests.unit.pipeline.test_build_orchestration import (  # noqa: F401 - fixtures used by name
    BASE,
    NORMALISE,
    VENV_DEPS,
    FakeEngine,
    _cli,
    _write_project,
    cache,
    fake_lock,
    proj,
)

OLD_ID = "sha256:" + "0" * 64


def _project_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ----------------------------------------------------------------------------- E18: where the outputs go


def _read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """FOLDER refuses new files as a read-only mount does (the real mount is in the docker tier: root ignores chmod)."""
    real = tempfile.mkstemp

    def mkstemp(*args: Any, dir: Any = None, **kwargs: Any) -> tuple[int, str]:
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize("keep_context", [False, True])
def test_E18_a_read_only_project_is_exit_2_before_any_work_naming_where_to_write_instead(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch, keep_context: bool
) -> None:
    root = _write_project(tmp_path / "p")
    before = _project_files(root)
    _read_only(monkeypatch, root)
    engine = FakeEngine()
    run = _cli("build", str(root), *(["--keep-context"] if keep_context else []), engine=engine, monkeypatch=monkeypatch)
    assert run.code == USAGE, run.err
    line = run.err.strip()
    assert line.startswith("slimbuild: error: cannot write the lock slimbuild.lock in ") and "Read-only file system" in line
    assert "--lock-out" in line and "--locked" in line and "the cache dir" in line
    assert fake_lock == [] and engine.calls == []  # before the lock, before the engine
    assert _project_files(root) == before


def test_E18_manifest_out_is_checked_before_any_work_and_a_file_in_its_way_is_named(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p")
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    engine = FakeEngine()
    run = _cli("build", str(root), "--locked", "--manifest-out", f"{blocker}/out/", engine=engine, monkeypatch=monkeypatch)
    assert run.code == USAGE, run.err
    assert "cannot write the manifest slimbuild.manifest.json" in run.err and f"{blocker} is not a directory" in run.err
    assert "--manifest-out" in run.err and fake_lock == [] and engine.calls == []


def test_E18_a_cache_dir_that_is_a_file_is_exit_2_before_any_work(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p")
    (tmp_path / "cache-file").write_text("x", encoding="utf-8")
    monkeypatch.setenv("SLIMBUILD_CACHE", str(tmp_path / "cache-file"))
    engine = FakeEngine()
    run = _cli("build", str(root), engine=engine, monkeypatch=monkeypatch)
    # paths.cache_dir refuses it first (J5), with the same exit code and the variable to fix
    assert run.code == USAGE and "is not a directory" in run.err and "SLIMBUILD_CACHE" in run.err, run.err
    assert fake_lock == [] and engine.calls == []


def test_E18_lock_out_and_manifest_out_write_there_and_nothing_in_the_read_only_project(
    proj: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _project_files(proj)
    project_lock = (proj / "slimbuild.lock").read_bytes()
    _read_only(monkeypatch, proj)
    out = tmp_path / "out"
    engine = FakeEngine()
    run = _cli(
        "build", str(proj), "--lock-out", f"{out}/", "--manifest-out", f"{out}/m.json", engine=engine, monkeypatch=monkeypatch
    )
    assert run.code == OK, run.err
    assert (out / "slimbuild.lock").read_bytes() == project_lock  # the project's fresh lock, where it was asked for
    assert (out / "m.json").is_file() and _project_files(proj) == before
    assert engine.kinds() == [*VENV_DEPS, "build", *NORMALISE, "run", "tag"]


# ----------------------------------------------------------------------------- E19: undo this run's tags


def test_E19_a_manifest_that_cannot_be_put_in_place_after_tagging_undoes_every_tag(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine()
    engine.images[OLD_ID] = {"Id": OLD_ID, "Size": 1}
    engine.refs["team/orch:dev"] = OLD_ID  # a ref this run moves: it must go back
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst).name == "slimbuild.manifest.json":
            raise OSError(errno.EROFS, "Read-only file system")
        real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", replace)
    run = _cli("build", str(root), "--tag", "team/orch:dev", engine=engine, monkeypatch=monkeypatch)
    assert run.code == USAGE, run.err
    assert "cannot write slimbuild.manifest.json" in run.err and "no tag of this run was kept" in run.err
    (tag_call,) = [c for c in engine.calls if c[0] == "tag" and c[2] != ("team/orch:dev",)]
    new_refs = [r for r in tag_call[2] if r != "team/orch:dev"]
    assert engine.kinds()[:7] == [*VENV_DEPS, "build", *NORMALISE, "run", "tag"]
    assert {("untag", r) for r in new_refs} <= set(engine.calls)  # the new refs removed
    assert ("tag", OLD_ID, ("team/orch:dev",)) in engine.calls and engine.refs == {"team/orch:dev": OLD_ID}
    assert tag_call[1] not in engine.images  # the image of the failed run is gone too
    assert not list(root.glob("*manifest*")) and not list(root.glob(".*.tmp"))  # no temp file left either


class _InterruptSecondTag(FakeEngine):
    """SIGINT (KeyboardInterrupt) arrives while the second entrypoint's image is being tagged."""

    def tag(self, image_id: str, refs: Sequence[str]) -> None:
        if sum(1 for c in self.calls if c[0] == "tag") == 1:
            self.calls.append(("tag", image_id, tuple(refs)))
            raise KeyboardInterrupt
        super().tag(image_id, refs)


def test_E19_an_interrupt_while_tagging_the_second_entrypoint_undoes_the_first_s_tags(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p")
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    (root / "pyproject.toml").write_text(
        text.replace('entrypoint = "main.py"', 'entrypoints = { one = "main.py", two = "helper.py" }'), encoding="utf-8"
    )
    engine = _InterruptSecondTag()
    run = _cli("build", str(root), engine=engine, monkeypatch=monkeypatch)
    assert run.code == INTERRUPTED, run.err
    first, second = [c for c in engine.calls if c[0] == "tag"]
    assert [c for c in engine.calls if c[0] == "untag"] == [("untag", r) for r in first[2]]
    assert engine.refs == {} and first[1] not in engine.images and second[1] not in engine.images
    assert not list(root.glob("*manifest*")) and not list(root.glob(".*.tmp"))


# ----------------------------------------------------------------------------- E20 / E21: references


@pytest.mark.parametrize(
    ("args", "ref", "why"),
    [
        (("--tag", "Team/App:1"), "Team/App:1", "must be lowercase"),
        (("--tag", "team/app:-1"), "team/app:-1", "tag '-1'"),
        (("--tag", "team/app@sha256:" + "a" * 64), "team/app@sha256:" + "a" * 64, "cannot be tagged"),
        (("--tag", "team//app"), "team//app", "empty path component"),
        (("--base-image", "python:3.11 slim"), "python:3.11 slim", "whitespace"),
    ],
)
def test_E20_an_invalid_reference_is_exit_2_before_any_work(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], ref: str, why: str
) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine()
    run = _cli("build", str(root), *args, engine=engine, monkeypatch=monkeypatch)
    assert run.code == USAGE, run.err
    assert f"{args[0]} {ref!r} is not a valid" in run.err and why in run.err
    assert fake_lock == [] and engine.calls == []  # no lock, no build, no engine at all


def test_E20_an_invalid_configured_base_image_is_exit_2_before_any_work(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p")
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    (root / "pyproject.toml").write_text(text.replace(BASE, "Python:3.11-slim"), encoding="utf-8")
    engine = FakeEngine()
    run = _cli("dockerfile", str(root), engine=engine, monkeypatch=monkeypatch)
    assert run.code == USAGE and "base-image 'Python:3.11-slim' is not a valid image reference" in run.err, run.err
    assert fake_lock == [] and engine.calls == []


def test_E20_E21_inspect_checks_the_reference_then_a_missing_image_is_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    def never() -> Any:
        raise AssertionError("the engine must not be reached for an invalid reference")

    bad = _cli("inspect", "no such:image", engine=never, monkeypatch=monkeypatch)
    assert bad.code == USAGE and "image 'no such:image' is not a valid image reference" in bad.err, bad.err
    engine = FakeEngine()
    missing = _cli("inspect", "no-such:image", engine=engine, monkeypatch=monkeypatch)
    assert missing.code == USAGE and missing.err.startswith("slimbuild: error: no such image: no-such:image"), missing.err
    assert "Traceback" not in missing.err


def test_E21_a_missing_base_image_is_exit_2_before_any_build(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine()
    run = _cli("build", str(root), "--base-image", "missing/py:1", engine=engine, monkeypatch=monkeypatch)
    assert run.code == USAGE and "no such image: base image 'missing/py:1'" in run.err, run.err
    assert "docker pull missing/py:1" in run.err and engine.kinds() == []
