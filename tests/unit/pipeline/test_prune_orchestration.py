"""prune = "traced" in the build's sequence, against the in-memory engine (L22, L23): the traced commands run in the
pruned image before the smoke run; a failing or interrupted one leaves no tag and no image; no trace, no build."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from slimbuild.errors import Interrupted
from slimbuild.image.engine import RunOutcome
from tests.constants import BUILD, INTERRUPTED, OK, USAGE
from tests.unit.pipeline import test_build_orchestration as orchestration
from tests.unit.pipeline.test_build_orchestration import NORMALISE, FakeEngine, _cli, _members, _write_project

cache, fake_lock = orchestration.cache, orchestration.fake_lock  # its fixtures, found here by name

MISSING = "/opt/venv/lib/python3.11/site-packages/tinypkg/data.json"


def _traced_project(root: Path) -> Path:
    _write_project(root, 'prune = "traced"\n')
    trace = {"schema": "slimbuild-trace", "version": 2, "project": "orch",
             "commands": [{"argv": ["/home/u/.venv/bin/python", "main.py"], "untraced": []}],
             "modules": {"tinypkg": {"file": "site-packages/tinypkg/__init__.py", "imported_by": ["main.py:1"]},
                         "helper": {"file": "helper.py", "imported_by": ["main.py:3"]}},
             "opened": [], "installed": [], "outside": [], "stdlib": [], "libraries": {"dlopen": [], "needed": {}}}
    (root / "slimbuild.trace.json").write_text(json.dumps(trace))
    return root


class _ProofEngine(FakeEngine):
    """The proof run (the traced command) fails or is interrupted; the smoke run would pass."""

    def __init__(self, proof: BaseException | None = None, proof_exit: int = 0) -> None:
        super().__init__()
        self.proof, self.proof_exit = proof, proof_exit

    def run(self, image_id: str, argv: Sequence[str], *, user: str, timeout: float, **kw: Any) -> RunOutcome:
        if tuple(argv) != ("/opt/venv/bin/python", "main.py"):
            return super().run(image_id, argv, user=user, timeout=timeout, **kw)
        self.calls.append(("prove", image_id, tuple(argv)))
        if self.proof is not None:
            raise self.proof
        return RunOutcome(self.proof_exit, f"Traceback\nFileNotFoundError: [Errno 2] No such file or directory: '{MISSING}'\n"
                          if self.proof_exit else "2\n")


def test_L22_the_traced_commands_run_in_the_pruned_image_before_the_smoke_run_and_a_failure_names_the_file(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _traced_project(tmp_path / "p")
    engine = _ProofEngine()
    run = _cli("build", str(root), "--json", engine=engine, monkeypatch=monkeypatch)
    assert run.code == OK, run.err
    assert engine.kinds() == ["build", "build", *NORMALISE, "prove", "run", "tag"]
    deps = _members(engine.contexts[0][1])
    spec = json.loads(deps["slimbuild-traced.json"])
    assert spec["packages"] == ["tinypkg/"] and "slimbuild-prune.py" in deps
    assert "slimbuild-prune.py --keep /tmp/slimbuild-traced.json /stage" in deps["Dockerfile"].decode()
    manifest = json.loads((root / "slimbuild.manifest.json").read_text())
    assert manifest["pruned"]["proven"] == [{"command": ["/opt/venv/bin/python", "main.py"], "exit_code": 0, "ok": True}]

    failing = _ProofEngine(proof_exit=1)
    (root / "slimbuild.manifest.json").unlink()
    run = _cli("build", str(root), engine=failing, monkeypatch=monkeypatch)
    assert run.code == BUILD and f"first missing file: {MISSING}" in run.err and "no tag was applied" in run.err, run.err
    assert "run" not in failing.kinds() and "tag" not in failing.kinds() and failing.refs == {}
    image = next(c[1] for c in failing.calls if c[0] == "prove")
    assert ("remove_image", image) in failing.calls and not (root / "slimbuild.manifest.json").exists()


def test_L23_an_interrupted_prune_proof_exits_130_with_no_tag_and_no_image(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _traced_project(tmp_path / "p")
    engine = _ProofEngine(proof=Interrupted("run of 'python main.py' interrupted", ""))
    run = _cli("build", str(root), engine=engine, monkeypatch=monkeypatch)
    assert run.code == INTERRUPTED, run.err
    image = next(c[1] for c in engine.calls if c[0] == "prove")
    assert "tag" not in engine.kinds() and engine.refs == {} and image not in engine.images
    assert not (root / "slimbuild.manifest.json").exists()


def test_L26_prune_traced_without_a_trace_or_with_a_bad_mode_is_exit_2_before_any_build(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p", 'prune = "traced"\n')
    engine = FakeEngine()
    run = _cli("build", str(root), engine=engine, monkeypatch=monkeypatch)
    assert run.code == USAGE and "slimbuild.trace.json" in run.err and "slimbuild trace --" in run.err, run.err
    bad = _write_project(tmp_path / "q", 'prune = "everything"\n')
    run = _cli("build", str(bad), engine=engine, monkeypatch=monkeypatch)
    assert run.code == USAGE and "prune = 'everything' is not one of default, traced" in run.err, run.err
    assert "build" not in engine.kinds()
