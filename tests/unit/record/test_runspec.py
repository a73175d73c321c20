"""Run specs made from manifests (pure): pinned by digest, as the image's user, checked by the projects' own models."""

from __future__ import annotations

import pytest

from slimbuild.errors import UsageError
from slimbuild.record import runspec
from slimbuild.stages import Stage
from tests import constants
from tests.runspecs import DIGEST, check_job, check_pachyderm, check_workflow, documents, manifest

OTHER = "sha256:" + "e" * 64
STAGES = (
    Stage("ingest", repo="raw", glob="/*", cpu="250m", memory="256Mi"),
    Stage("features", after="ingest", cpu="1500m"),
    Stage("train_model", after="features", memory="1Gi"),
)


def _pushed(name: str, digest: str = DIGEST) -> list[dict[str, str]]:
    return [{"reference": f"127.0.0.1:5000/churn/{name}:v1", "digest": digest}]


def _images() -> list[runspec.StageImage]:
    return [runspec.stage_image(s, manifest(s.name, pushed=_pushed(s.name)), f"slimbuild.{s.name}.manifest.json") for s in STAGES]


def test_M6_pachyderm_specs_pin_the_digest_and_read_each_stage_input() -> None:
    specs = [runspec.pachyderm_spec(si) for si in _images()]
    requests = [check_pachyderm(doc) for doc in specs]
    assert [r.pipeline.name for r in requests] == ["ingest", "features", "train_model"]
    assert [r.transform.image for r in requests] == [f"127.0.0.1:5000/churn/{s.name}@{DIGEST}" for s in STAGES]
    assert all(":v1" not in r.transform.image for r in requests)
    assert requests[0].transform.cmd == ["python", "/app/ingest.py"]
    assert [(r.input.pfs.repo, r.input.pfs.glob) for r in requests] == [("raw", "/*"), ("ingest", "/"), ("features", "/")]
    assert (requests[0].resource_requests.cpu, requests[0].resource_requests.memory) == (0.25, "256Mi")
    assert requests[1].resource_requests.cpu == 1.5 and "cpu" not in specs[2]["resourceRequests"]


def test_M6_kubernetes_jobs_run_non_root_read_only_without_privileges() -> None:
    for si in _images():
        job = check_job(runspec.kubernetes_job("churn", si))
        pod = job.spec.template.spec
        (box,) = pod.containers
        assert box.image == si.image and "@sha256:" in box.image and box.command == list(si.argv)
        assert (pod.security_context.run_as_non_root, pod.security_context.run_as_user, pod.security_context.run_as_group) == (
            True, 10001, 10001,
        )  # fmt: skip
        ctx = box.security_context
        assert ctx.read_only_root_filesystem is True and ctx.allow_privilege_escalation is False and ctx.privileged is False
        assert ctx.capabilities.drop == ["ALL"] and ctx.run_as_user == 10001
        assert pod.restart_policy == "Never" and pod.automount_service_account_token is False
        assert [m.mount_path for m in box.volume_mounts] == ["/tmp"] and pod.volumes[0].empty_dir is not None
    jobs = [check_job(runspec.kubernetes_job("churn", si)) for si in _images()]
    assert [j.metadata.name for j in jobs] == ["churn-ingest", "churn-features", "churn-train-model"]
    assert jobs[0].spec.template.spec.containers[0].resources.requests == {"cpu": "250m", "memory": "256Mi"}
    assert jobs[2].spec.template.spec.containers[0].resources.requests == {"memory": "1Gi"}


def test_M6_the_argo_workflow_runs_the_stages_in_the_order_of_their_from_links() -> None:
    workflow = check_workflow(runspec.argo_workflow("churn", _images()))
    assert workflow.metadata.generate_name == "churn-" and workflow.spec.entrypoint == "pipeline"
    dag = next(t for t in workflow.spec.templates if t.name == "pipeline").dag
    assert [(t.name, t.dependencies) for t in dag.tasks] == [
        ("ingest", None), ("features", ["ingest"]), ("train-model", ["features"]),
    ]  # fmt: skip
    steps = {t.name: t for t in workflow.spec.templates if t.container is not None}
    assert steps["train-model"].container.image == f"127.0.0.1:5000/churn/train_model@{DIGEST}"
    assert steps["ingest"].container.security_context.read_only_root_filesystem is True
    assert steps["ingest"].security_context.run_as_non_root is True and steps["ingest"].security_context.run_as_user == 10001


@pytest.mark.parametrize("fmt", runspec.FORMATS)
def test_M6_the_files_are_stable_sorted_and_parse_back(fmt: str) -> None:
    files = runspec.spec_files(fmt, "churn", _images())
    assert files == runspec.spec_files(fmt, "churn", _images())
    names = {"pachyderm": [f"{s.name}.pipeline.json" for s in STAGES], "kubernetes": [f"{s.name}.job.yaml" for s in STAGES]}
    assert [f.name for f in files] == names.get(fmt, ["churn.workflow.yaml"])
    docs = documents(fmt, runspec.joined(fmt, files))
    check = {"pachyderm": check_pachyderm, "kubernetes": check_job, "argo": check_workflow}[fmt]
    assert len(docs) == len(files) and all(check(doc) for doc in docs)
    assert "&id" not in runspec.joined(fmt, files)  # no YAML anchors: each document reads alone


def test_M6_names_and_quantities() -> None:
    assert runspec.pipeline_name("", "Churn_Pipeline", "x") == "churn-pipeline"
    assert runspec.pipeline_name("", None, "My Project") == "my-project"
    assert runspec.pipeline_name("", None, "___") == "pipeline"
    assert [runspec.cpu_cores(q) for q in ("500m", "2", "0.5", "1k")] == [0.5, 2.0, 0.5, 1000.0]
    long = Stage("s" * 40, repo="raw")
    si = runspec.stage_image(long, manifest(long.name, pushed=_pushed("s")), "m.json")
    with pytest.raises(UsageError, match="longer than 63 characters"):
        runspec.kubernetes_job("p" * 30, si)


def test_M7_a_stage_never_pushed_is_refused_naming_it_and_how_to_push() -> None:
    for pushed in (None, []):
        with pytest.raises(UsageError) as info:
            runspec.stage_image(STAGES[1], manifest("features", pushed=pushed), "slimbuild.features.manifest.json")
        assert info.value.exit_code == constants.USAGE
        line = info.value.one_line()
        assert "stage 'features': its image was never pushed (slimbuild.features.manifest.json records no push)" in line
        assert "slimbuild build -e features --push --tag REGISTRY/REPO:TAG" in line


def test_M7_repository_picks_the_push_and_the_default_is_the_first() -> None:
    pushed = [
        {"reference": "b.example:5000/team/train:1", "digest": OTHER},
        {"reference": "a.example/team/train:1", "digest": DIGEST},
        {"reference": "a.example/team/train:latest", "digest": DIGEST},
    ]
    doc = manifest("train", pushed=pushed)
    assert runspec.pinned_image(doc, "train", "m.json") == f"a.example/team/train@{DIGEST}"
    assert runspec.pinned_image(doc, "train", "m.json", "b.example:5000/team/train") == f"b.example:5000/team/train@{OTHER}"
    with pytest.raises(UsageError, match=r"not pushed to c.example/train \(m.json records a.example/team/train, b.example"):
        runspec.pinned_image(doc, "train", "m.json", "c.example/train")


def test_M7_the_user_is_the_templates_or_the_image_configs_and_never_root() -> None:
    assert runspec.image_user(manifest(template="distroless"), None, "t", "m") == (10001, 10001)
    assert runspec.image_user(manifest(template="custom"), "2000:3000", "t", "m") == (2000, 3000)
    assert runspec.image_user(manifest(template="custom"), "2000", "t", "m") == (2000, 2000)
    with pytest.raises(UsageError, match="built from a custom template, whose user only the image config says"):
        runspec.image_user(manifest(template="custom"), None, "t", "m")
    for user in ("", "0", "0:0", "app", "10001:staff"):
        with pytest.raises(UsageError, match="is not a numeric non-root uid"):
            runspec.image_user(manifest(template="custom"), user, "t", "m")
    no_entry = {**manifest("t", pushed=_pushed("t")), "entrypoint": None}
    with pytest.raises(UsageError, match="records no entrypoint to run"):
        runspec.stage_image(Stage("t", repo="raw"), no_entry, "m.json")
