"""M9 on a real engine and registry: the example pipeline's stages built, pushed, and their run specs pinned by the
digests the registry serves, checked by pachyderm-sdk, kubernetes and hera (tests/runspecs.py).

Each stage is pushed by ``slimbuild build -e STAGE --push -t REGISTRY/REPO:TAG`` (the command spec's refusal names),
which records ``pushed`` in that stage's manifest; the rebuild is the same image (reproducible, cached).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.image.engine import DockerEngine
from slimbuild.record.manifest import read_manifest_file
from tests.conftest import Run
from tests.constants import OK, USAGE
from tests.docker.conftest import BASE_IMAGE, registry_digest
from tests.runspecs import check_job, check_pachyderm, check_workflow, documents

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]
SHARED_CACHE = Path(os.environ.get("SLIMBUILD_TEST_CACHE", "~/.cache/slimbuild-test-cache")).expanduser()
STAGES = ("ingest", "features", "report")


def test_M9_the_example_pipeline_pushed_gets_specs_pinned_by_the_served_digests(
    engine: DockerEngine,
    registry: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[..., Run],
) -> None:
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    root = tmp_path / "pipeline-specs"
    shutil.copytree(REPO / "examples" / "pipeline-specs", root)
    made: list[str] = []
    try:
        run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--json")
        assert run.code == OK, run.err
        images = {Path(i["manifest"]).name.split(".")[1]: i for i in json.loads(run.out)["images"]}
        assert sorted(images) == sorted(STAGES)
        made.extend(tag for i in images.values() for tag in i["tags"])
        refused = run_cli("spec", str(root), "--format", "kubernetes")  # built, never pushed
        assert refused.code == USAGE and "its image was never pushed" in refused.err, refused.err

        space = f"slimbuild-test/m9-{uuid.uuid4().hex[:8]}"
        pinned = {}
        for name, image in images.items():
            repository = f"{registry}/{space}/{name}"
            made.append(f"{repository}:0.1")
            push = ("--push", "-t", f"{repository}:0.1", "--json")
            run = run_cli("build", str(root), "-e", name, "--base-image", BASE_IMAGE, *push)
            assert run.code == OK, run.err
            (again,) = json.loads(run.out)["images"]
            assert again["image_id"] == image["image_id"] and again["manifest"] == image["manifest"]
            digest = registry_digest(registry, f"{space}/{name}", "0.1")
            pinned[name] = f"{repository}@{digest}"
            made.append(pinned[name])
            assert pinned[name] in engine.inspect_image(image["image_id"])["RepoDigests"]
            recorded = read_manifest_file(Path(image["manifest"]))["pushed"]
            assert {"digest": digest, "reference": f"{repository}:0.1"} in recorded, recorded

        checks = {"pachyderm": check_pachyderm, "kubernetes": check_job, "argo": check_workflow}
        out = tmp_path / "specs"
        for fmt, check in checks.items():
            run = run_cli("spec", str(root), "--format", fmt, "-o", str(out))
            assert run.code == OK, run.err
            texts = [Path(p).read_text(encoding="utf-8") for p in run.out.splitlines()]
            parsed = [check(doc) for text in texts for doc in documents(fmt, text)]
            assert len(parsed) == (1 if fmt == "argo" else 3)
            for name in STAGES:
                assert pinned[name] in "".join(texts) and ":0.1" not in "".join(texts)

        pachyderm = [check_pachyderm(json.loads((out / f"{n}.pipeline.json").read_text())) for n in STAGES]
        assert [(p.transform.image, p.input.pfs.repo) for p in pachyderm] == [
            (pinned["ingest"], "sales-raw"), (pinned["features"], "ingest"), (pinned["report"], "features"),
        ]  # fmt: skip
        job = check_job(documents("kubernetes", (out / "ingest.job.yaml").read_text())[0])
        box = job.spec.template.spec.containers[0]
        user = engine.inspect_image(pinned["ingest"])["Config"]["User"]
        assert f"{box.security_context.run_as_user}:{box.security_context.run_as_group}" == user == "10001:10001"
        assert engine.inspect_image(pinned["ingest"])["Id"] == images["ingest"]["image_id"]
        # the Job's container as a pod runs it: its command, its user, a read-only root and a writable /tmp
        ran = engine.run(pinned["ingest"], ["/usr/bin/env", "OUTPUT_DIR=/tmp/out", *box.command], user=user, timeout=120)
        assert ran.exit_code == 0 and "ingest: rows=0" in ran.output, ran.output
        workflow = check_workflow(documents("argo", (out / "sales.workflow.yaml").read_text())[0])
        dag = next(t for t in workflow.spec.templates if t.dag is not None).dag
        order = [(t.name, t.dependencies) for t in dag.tasks]
        assert order == [("ingest", None), ("features", ["ingest"]), ("report", ["features"])]
    finally:
        for ref in made:
            try:
                engine.client.remove_image(ref, force=True)
            except Exception:  # noqa: BLE001 - cleanup must not mask the result
                pass
