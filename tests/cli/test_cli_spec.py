"""``slimbuild spec``: run specs of the pushed stage images, on stdout or in a directory; refusals are exit 2 (M7, M8)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.record.manifest import write_manifest
from tests.conftest import Run
from tests.constants import OK, USAGE
from tests.runspecs import check_job, check_pachyderm, check_workflow, documents, manifest

PYPROJECT = """[project]
name = "churn"

[tool.slimbuild.entrypoints]
ingest = "ingest.py"
features = "features.py"
report = "report.py"

[tool.slimbuild.pipeline]
memory = "128Mi"

[tool.slimbuild.pipeline.stages.ingest]
repo = "events"
glob = "/*"

[tool.slimbuild.pipeline.stages.features]
from = "ingest"
cpu = "500m"

[tool.slimbuild.pipeline.stages.report]
from = "features"
"""
STAGES = ("ingest", "features", "report")
CHECKS = {"pachyderm": check_pachyderm, "kubernetes": check_job, "argo": check_workflow}


def _digest(name: str) -> str:
    return "sha256:" + format(STAGES.index(name) + 10, "x") * 64


def _project(tmp_path: Path, pushed: tuple[str, ...] = STAGES) -> Path:
    root = tmp_path / "churn"
    root.mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    for name in STAGES:
        refs = [{"reference": f"127.0.0.1:5000/churn/{name}:0.1", "digest": _digest(name)}] if name in pushed else None
        write_manifest(root / f"slimbuild.{name}.manifest.json", manifest(name, pushed=refs))
    return root


@pytest.mark.parametrize("fmt", ["pachyderm", "kubernetes", "argo"])
def test_M8_spec_prints_the_specs_of_every_stage_pinned_by_the_pushed_digest(
    tmp_path: Path, run_cli: Callable[..., Run], fmt: str
) -> None:
    root = _project(tmp_path)
    run = run_cli("spec", str(root), "--format", fmt)
    assert run.code == OK, run.err
    docs = documents(fmt, run.out)
    assert len(docs) == (1 if fmt == "argo" else 3) and all(CHECKS[fmt](doc) for doc in docs)
    for name in STAGES:
        assert f"127.0.0.1:5000/churn/{name}@{_digest(name)}" in run.out
    assert ":0.1" not in run.out  # never a tag
    assert run_cli("spec", str(root), "--format", fmt).out == run.out


def test_M8_spec_writes_one_file_per_stage_and_the_workflow_into_the_directory(
    tmp_path: Path, run_cli: Callable[..., Run]
) -> None:
    root = _project(tmp_path)
    out = tmp_path / "specs"
    for fmt in ("pachyderm", "kubernetes", "argo"):
        run = run_cli("spec", str(root), "--format", fmt, "-o", str(out))
        assert run.code == OK, run.err
        assert [Path(line).parent for line in run.out.splitlines()] == [out] * (1 if fmt == "argo" else 3)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.pipeline.json" for n in STAGES] + [f"{n}.job.yaml" for n in STAGES] + ["churn.workflow.yaml"]
    )
    spec = json.loads((out / "features.pipeline.json").read_text(encoding="utf-8"))
    assert check_pachyderm(spec).resource_requests.cpu == 0.5 and spec["input"]["pfs"]["repo"] == "ingest"
    job = check_job(documents("kubernetes", (out / "report.job.yaml").read_text(encoding="utf-8"))[0])
    assert job.spec.template.spec.containers[0].resources.requests == {"memory": "128Mi"}


def test_M7_spec_refuses_an_image_never_pushed_and_writes_nothing(tmp_path: Path, run_cli: Callable[..., Run]) -> None:
    root = _project(tmp_path, pushed=("ingest", "report"))
    out = tmp_path / "specs"
    for fmt in ("pachyderm", "kubernetes", "argo"):
        run = run_cli("spec", str(root), "--format", fmt, "-o", str(out))
        assert run.code == USAGE and run.out == ""
        assert run.err.count("\n") == 1 and "Traceback" not in run.err
        assert "stage 'features': its image was never pushed" in run.err
        assert "slimbuild build -e features --push --tag REGISTRY/REPO:TAG" in run.err
    assert not out.exists()


def test_M7_spec_refuses_a_stage_not_built_an_unknown_stage_and_a_missing_table(
    tmp_path: Path, run_cli: Callable[..., Run]
) -> None:
    root = _project(tmp_path)
    (root / "slimbuild.report.manifest.json").unlink()
    run = run_cli("spec", str(root), "--format", "argo")
    assert run.code == USAGE and "stage 'report': not built (slimbuild.report.manifest.json is missing" in run.err
    assert "build and push it: slimbuild build -e report --push" in run.err
    (root / "pyproject.toml").write_text(PYPROJECT.replace('from = "features"', 'from = "feature"'), encoding="utf-8")
    run = run_cli("spec", str(root), "--format", "kubernetes")
    assert run.code == USAGE and run.err.startswith("slimbuild: error: pyproject.toml:21: 'pipeline.stages.report.from'")
    assert "names no stage: 'feature' (did you mean 'features'?)" in run.err
    (root / "pyproject.toml").write_text(PYPROJECT.replace("stages.report]", "stages.reprot]"), encoding="utf-8")
    run = run_cli("spec", str(root), "--format", "pachyderm")
    assert run.code == USAGE and "pyproject.toml:20: stage 'reprot' is no entrypoint (did you mean 'report'?)" in run.err
    (root / "pyproject.toml").write_text(PYPROJECT.split("[tool.slimbuild.pipeline]")[0], encoding="utf-8")
    run = run_cli("spec", str(root), "--format", "pachyderm")
    assert run.code == USAGE and "pyproject.toml: no [tool.slimbuild.pipeline] table" in run.err


def test_M8_spec_options(tmp_path: Path, run_cli: Callable[..., Run]) -> None:
    root = _project(tmp_path)
    run = run_cli("spec", str(root))
    assert run.code == USAGE and "missing option '--format'" in run.err.lower()
    run = run_cli("spec", str(root), "--format", "helm")
    assert run.code == USAGE and "'helm' is not one of 'argo', 'kubernetes', 'pachyderm'" in run.err
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    run = run_cli("spec", str(root), "--format", "argo", "-o", str(tmp_path / "afile"))
    assert run.code == USAGE and "not a directory" in run.err
    assert (tmp_path / "afile").read_text(encoding="utf-8") == "x"
    run = run_cli("spec", str(root), "--format", "argo", "--repository", "127.0.0.1:5000/churn/ingest")
    assert run.code == USAGE and "stage 'features': its image was not pushed to 127.0.0.1:5000/churn/ingest" in run.err
