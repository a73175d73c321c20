"""K6: ``build --push`` against a FakeEngine: which refs are pushed, bounded visible retries, the digests recorded
all or nothing (a push failed or interrupted halfway records nothing and keeps no tag)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from slimbuild.errors import Interrupted, RegistryError
from slimbuild.image.build_stream import ProgressCallback, ProgressEvent
from slimbuild.image.push_stream import PushFailed, PushOutcome, push_failure
from slimbuild.pipeline import pushing
from slimbuild.record import manifest as manifest_mod
from tests.constants import INTERRUPTED, OK, REGISTRY, USAGE
from tests.unit.pipeline import test_build_orchestration as orchestration
from tests.unit.pipeline.test_build_orchestration import BASE, FakeEngine, _build, _cli, _write_project

cache, fake_lock = orchestration.cache, orchestration.fake_lock  # its fixtures, found here by name

REG = "127.0.0.1:5000"


def _digest(ref: str) -> str:
    return "sha256:" + hashlib.sha256(ref.split(":")[0].encode()).hexdigest()


class PushingEngine(FakeEngine):
    """A FakeEngine whose registry stores what is pushed; ``fail`` holds, per ref, what each attempt raises."""

    def __init__(self, fail: Mapping[str, Sequence[BaseException]] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.fail = {k: list(v) for k, v in (fail or {}).items()}
        self.pushed: list[str] = []
        self.repo_digests: dict[str, list[str]] = {}

    def push(self, ref: str, *, env: Mapping[str, str], on_progress: ProgressCallback | None = None) -> PushOutcome:
        self.calls.append(("push", ref))
        if self.fail.get(ref):
            raise self.fail[ref].pop(0)
        image_id = self.images[self.refs[ref]]["Id"]
        digest = "sha256:" + hashlib.sha256(image_id.encode()).hexdigest()
        self.repo_digests.setdefault(image_id, []).append(f"{ref.rsplit(':', 1)[0]}@{digest}")
        self.pushed.append(ref)
        return PushOutcome(ref, digest)

    def inspect_image(self, ref: str) -> dict[str, Any]:
        doc = super().inspect_image(ref)
        doc["RepoDigests"] = list(self.repo_digests.get(doc["Id"], []))
        return doc


def _transient(ref: str) -> PushFailed:
    return push_failure(ref, REG, 'Get "http://127.0.0.1:5000/v2/": dial tcp: connect: connection refused')


def test_K6_every_tag_of_the_run_is_pushed_in_the_tag_s_repository_and_recorded(
    tmp_path: Path, fake_lock: list[int]
) -> None:
    root = _write_project(tmp_path / "p")
    engine = PushingEngine()
    (result,) = _build(root, engine, tags=[f"{REG}/team/orch:1.0"], push=True)
    content = result.tags[0].rsplit(":", 1)[1]
    assert result.tags == (f"slimbuild/orch:{content}", f"{REG}/team/orch:1.0", f"{REG}/team/orch:{content}")
    assert engine.pushed == [f"{REG}/team/orch:1.0", f"{REG}/team/orch:{content}"]  # never the local slimbuild/...
    kinds = engine.kinds()
    assert kinds[kinds.index("tag") :] == ["tag", "push", "push"]  # after the smoke run and the local tags
    digest = engine.repo_digests[result.image_id][0].split("@")[1]
    want = [{"digest": digest, "reference": f"{REG}/team/orch:{t}"} for t in ("1.0", content)]
    doc = manifest_mod.read_manifest_file(root / "slimbuild.manifest.json")
    assert doc["pushed"] == want and list(result.pushed) == want and result.manifest == doc


def test_K6_a_hub_tag_is_recorded_with_its_implied_registry() -> None:
    assert pushing.qualified("team/app:1") == "docker.io/team/app:1"
    assert pushing.qualified("app") == "docker.io/library/app:latest"
    assert pushing.qualified(f"{REG}/team/app") == f"{REG}/team/app:latest"
    assert pushing.refs_to_push(["slimbuild/x:abc", "slimbuild/x:git-1234567", "team/app"], ["team/app"]) == [
        "team/app", "team/app:abc", "team/app:git-1234567",
    ]  # fmt: skip


def test_K6_transient_failures_are_retried_a_bounded_number_of_times_with_backoff_each_announced(
    tmp_path: Path, fake_lock: list[int]
) -> None:
    ref = f"{REG}/team/orch:1.0"
    engine = PushingEngine()
    engine.tag(BASE, [ref])
    slept: list[float] = []
    events: list[ProgressEvent] = []
    engine.fail = {ref: [_transient(ref), _transient(ref)]}
    pushing.push_one(engine, ref, env={}, on_progress=events.append, sleep=slept.append)
    assert slept == [pushing.BACKOFF, 2 * pushing.BACKOFF] and engine.pushed == [ref]
    assert [e.message.rsplit(";", 1)[1] for e in events if e.kind == "retry"] == [
        f" retry 1 of {pushing.RETRIES} in {pushing.BACKOFF:g}s", f" retry 2 of {pushing.RETRIES} in {2 * pushing.BACKOFF:g}s",
    ]  # fmt: skip

    engine.fail = {ref: [_transient(ref)] * (pushing.RETRIES + 1)}
    with pytest.raises(PushFailed, match=f"connection refused \\(after {pushing.RETRIES} retries\\)"):
        pushing.push_one(engine, ref, env={}, sleep=slept.append)
    assert [c for c in engine.calls if c[0] == "push"].count(("push", ref)) == 1 + 2 + 1 + pushing.RETRIES

    refused = push_failure(ref, REG, "unauthorized: authentication required")
    engine.fail, before = {ref: [refused]}, len(slept)
    with pytest.raises(PushFailed, match="the registry refused the push"):
        pushing.push_one(engine, ref, env={}, sleep=slept.append)
    assert len(slept) == before  # a refused login is not retried


def test_K6_a_digest_the_engine_did_not_record_is_a_failed_push(tmp_path: Path) -> None:
    ref = f"{REG}/team/orch:1.0"
    engine = PushingEngine()
    engine.tag(BASE, [ref])
    engine.push = lambda r, **_kw: PushOutcome(r, "sha256:" + "e" * 64)  # type: ignore[method-assign]
    with pytest.raises(RegistryError, match="not among the engine's RepoDigests"):
        pushing.push_one(engine, ref, env={})


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (push_failure(f"{REG}/team/orch:1.0", REG, "denied: requested access to the resource is denied"), REGISTRY),
        (KeyboardInterrupt(), INTERRUPTED),
        (Interrupted("push interrupted", "no digest was recorded"), INTERRUPTED),
    ],
)
def test_K6_a_push_failed_or_interrupted_halfway_records_no_digest_and_keeps_no_tag(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch, fault: BaseException, code: int
) -> None:
    root = _write_project(tmp_path / "p")
    first = PushingEngine()
    run = _cli("build", str(root), engine=first, monkeypatch=monkeypatch)  # an earlier build, not pushed
    assert run.code == OK, run.err
    before = (root / "slimbuild.manifest.json").read_bytes()
    (root / "main.py").write_text("import helper\n\nprint(helper.double(3))\n", encoding="utf-8")  # a new image
    engine = PushingEngine(fail={f"{REG}/team/orch:1.0": [fault]})
    engine.images.update(first.images)
    engine.refs.update(first.refs)
    refs_before = dict(engine.refs)
    run = _cli("build", str(root), "--push", "-t", f"{REG}/team/orch:dev", "-t", f"{REG}/team/orch:1.0",
               engine=engine, monkeypatch=monkeypatch)  # fmt: skip
    assert run.code == code, run.err
    assert engine.pushed == [f"{REG}/team/orch:dev"]  # the first ref went out, the second failed halfway
    assert (root / "slimbuild.manifest.json").read_bytes() == before  # not updated: no half-recorded digest
    assert engine.refs == refs_before  # every tag of the run undone, the earlier build's back in place
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]
    if code == REGISTRY:
        assert f"already pushed, and kept by the registry: {REG}/team/orch:dev" in run.err


@pytest.mark.parametrize(
    ("args", "why"),
    [((), "--push needs a --tag"), (("-t", f"{REG}/team/orch@sha256:" + "a" * 64), "a push needs a tag")],
)
def test_K6_push_without_a_pushable_tag_is_exit_2_before_the_engine_or_the_lock(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], why: str
) -> None:
    root = _write_project(tmp_path / "p")
    engine = PushingEngine()
    run = _cli("build", str(root), "--push", *args, engine=engine, monkeypatch=monkeypatch)
    assert run.code == USAGE and why in run.err, run.err
    assert engine.calls == [] and fake_lock == []
