"""Run specs checked by the projects' own client libraries (the `test` extra): pachyderm-sdk, kubernetes, hera.

Each parser ignores keys it does not know, so every check also renders the parsed object back and compares it with
the document: a key the project's model lacks, misspelt or misplaced, makes the round trip differ.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from slimbuild.record.manifest import make_manifest, with_image

DIGEST = "sha256:" + "d" * 64


def manifest(entry: str = "train", *, pushed: list[dict[str, str]] | None = None, template: str = "slim") -> dict[str, Any]:
    """A schema-valid manifest of entrypoint ENTRY, with ``pushed`` as build --push records it (None: never pushed)."""
    doc = make_manifest(
        target={"python": "3.11", "platform": "linux/amd64"},
        base_image={"reference": f"python:3.11-slim@{DIGEST}", "digest_or_id": DIGEST},
        distributions=[],
        files=[{"path": f"{entry}.py", "sha256": "2" * 64, "size": 10, "kind": "source"}],
        template={"name": template, "dockerfile_sha256": "e" * 64},
        source_date_epoch=1_700_000_000,
        lock_sha256="f" * 64,
        entrypoint={"name": entry, "path": f"{entry}.py", "argv": ["python", f"/app/{entry}.py"]},
    )
    doc = with_image(doc, {"id": "sha256:" + "1" * 64, "layer_diff_ids": [DIGEST], "size_bytes": 1000})
    if pushed is not None:
        doc["pushed"] = sorted(pushed, key=lambda p: (p["reference"], p["digest"]))
    return doc


def check_pachyderm(doc: dict[str, Any]) -> Any:
    """The spec as pachyderm-sdk's CreatePipelineRequest, with the fields a pipeline needs."""
    from pachyderm_sdk.api.pps import CreatePipelineRequest

    request = CreatePipelineRequest().from_dict(doc)
    assert request.to_dict() == doc
    assert request.pipeline.name and request.transform.image and request.transform.cmd
    assert request.input.pfs.repo and request.input.pfs.glob
    return request


def check_job(doc: dict[str, Any]) -> Any:
    """The Job as kubernetes' V1Job (its models refuse a missing required field), round-tripped."""
    from kubernetes.client import ApiClient

    client = ApiClient()
    job = client.deserialize(json.dumps(doc), "V1Job", "application/json")
    assert client.sanitize_for_serialization(job) == doc
    assert job.api_version == "batch/v1" and job.kind == "Job" and job.metadata.name
    return job


def check_workflow(doc: dict[str, Any]) -> Any:
    """The Workflow as hera's model of Argo's io.argoproj.workflow.v1alpha1.Workflow, round-tripped."""
    from hera.workflows.models import Workflow

    workflow = Workflow.model_validate(doc)
    assert workflow.model_dump(by_alias=True, exclude_none=True, mode="json") == doc
    assert workflow.api_version == "argoproj.io/v1alpha1" and workflow.kind == "Workflow"
    return workflow


def documents(fmt: str, text: str) -> list[dict[str, Any]]:
    """The documents of spec's stdout: a stream of JSON objects (pachyderm), else YAML documents."""
    if fmt != "pachyderm":
        return [d for d in yaml.safe_load_all(text) if d is not None]
    decoder, docs, at = json.JSONDecoder(), [], 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
    return docs
