"""Run specs for pushed images (pure): a Pachyderm pipeline spec and a Kubernetes Job per stage, one Argo Workflow.

Every image is named by the digest the registry serves it by (``host/repo@sha256:...``, never a tag), read from the
manifest's ``pushed`` list (build --push writes it). A stage whose manifest records no push is refused (exit 2), and
so is one whose manifest records no entrypoint (nothing to run) or whose user is unknown or root.

The containers run as the image's own user (the bundled templates' ``RUNTIME_UID``; a custom template's from the
image config) with a read-only root filesystem (an ``emptyDir`` on ``/tmp`` for scratch files), no privilege
escalation, every capability dropped and the runtime's default seccomp profile: what the smoke run already proved
the image runs under. Resource requests come from ``[tool.slimbuild.pipeline]``; limits are left to the cluster.

Pachyderm's specs are JSON, as its documentation writes them (``pachctl create pipeline -f``); Kubernetes' and Argo's
are YAML. Both are rendered with sorted keys, so the same inputs give the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slimbuild.errors import UsageError
from slimbuild.image.plan import RUNTIME_UID
from slimbuild.image.reference import parse_reference
from slimbuild.stages import Stage

FORMATS = ("argo", "kubernetes", "pachyderm")
BUILTIN_TEMPLATES = ("distroless", "slim")  # their USER is RUNTIME_UID:RUNTIME_UID
MANAGED_BY = "slimbuild"
_TMP_VOLUME = "tmp"
_CPU_SCALE = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3}


@dataclass(frozen=True)
class StageImage:
    """One stage with what its run spec needs from its manifest: the pinned image, its argv and its user."""

    stage: Stage
    image: str  # repo@sha256:...
    argv: tuple[str, ...]
    uid: int
    gid: int


@dataclass(frozen=True)
class SpecFile:
    """One rendered run spec: its file name (in ``-o DIR``) and its text."""

    name: str
    text: str


def push_hint(stage: str, what: str = "push it") -> str:
    """How to get a stage's image pushed (and recorded in its manifest)."""
    return f"{what}: slimbuild build -e {stage} --push --tag REGISTRY/REPO:TAG, then run spec again"


def pinned_image(manifest: Mapping[str, Any], stage: str, source: str, repository: str = "") -> str:
    """``repo@sha256:...`` of the stage's pushed image (the first pushed repository, or REPOSITORY); exit 2 if none."""
    pushed = sorted(manifest.get("pushed") or [], key=lambda p: (str(p["reference"]), str(p["digest"])))
    if not pushed:
        raise UsageError(f"stage {stage!r}: its image was never pushed ({source} records no push)", hint=push_hint(stage))
    names = [(parse_reference(str(p["reference"]), f"{source}: pushed reference").name, str(p["digest"])) for p in pushed]
    chosen = [(name, digest) for name, digest in names if not repository or name == repository]
    if not chosen:
        known = ", ".join(sorted({name for name, _ in names}))
        raise UsageError(
            f"stage {stage!r}: its image was not pushed to {repository} ({source} records {known})",
            hint=f"{push_hint(stage)}; or choose one of: --repository {known.split(', ')[0]}",
        )
    name, digest = chosen[0]
    return f"{name}@{digest}"


def image_user(manifest: Mapping[str, Any], config_user: str | None, stage: str, source: str) -> tuple[int, int]:
    """The image's numeric (uid, gid): its config's USER when known, else the bundled templates' ``RUNTIME_UID``."""
    if config_user is None:
        template = str((manifest.get("template") or {}).get("name", ""))
        if template in BUILTIN_TEMPLATES:
            return RUNTIME_UID, RUNTIME_UID
        raise UsageError(
            f"stage {stage!r}: built from a {template or 'custom'} template, whose user only the image config says",
            hint="run spec where the engine holds the image (docker pull it by digest)",
        )
    uid, _, gid = config_user.partition(":")
    if not uid.isdigit() or not (gid or uid).isdigit() or int(uid) == 0:
        raise UsageError(
            f"stage {stage!r}: the image's user {config_user or 'root'!r} is not a numeric non-root uid[:gid] ({source})",
            hint="Kubernetes' runAsNonRoot needs one: end the template with USER 10001:10001",
        )
    return int(uid), int(gid or uid)


def stage_image(
    stage: Stage, manifest: Mapping[str, Any], source: str, *, repository: str = "", config_user: str | None = None
) -> StageImage:
    """The stage's image, argv and user from its manifest (SOURCE names it in errors)."""
    image = pinned_image(manifest, stage.name, source, repository)
    entry = manifest.get("entrypoint")
    if not entry or not entry.get("argv"):
        raise UsageError(f"stage {stage.name!r}: {source} records no entrypoint to run", hint="rebuild it with slimbuild build")
    uid, gid = image_user(manifest, config_user, stage.name, source)
    return StageImage(stage, image, tuple(entry["argv"]), uid, gid)


def pipeline_name(configured: str, project_name: object, directory: str) -> str:
    """The pipeline's name: configured, else the [project] name, else the directory's, as a DNS label."""
    for candidate in (configured, project_name if isinstance(project_name, str) else "", directory):
        label = re.sub(r"[^a-z0-9]+", "-", candidate.lower()).strip("-")[:40].strip("-")
        if label:
            return label
    return "pipeline"


def dns_name(stage: str) -> str:
    """A stage's name where Kubernetes and Argo want a DNS label (stages.STAGE_NAME admits only '_' to replace)."""
    return stage.replace("_", "-")


def cpu_cores(quantity: str) -> float:
    """A Kubernetes CPU quantity ("500m", "2") as Pachyderm's number of cores."""
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", quantity)
    if match is None or match[2] not in _CPU_SCALE:
        raise UsageError(f"cpu {quantity!r} is not a CPU quantity", hint='e.g. cpu = "500m" or cpu = 2')
    return round(float(match[1]) * _CPU_SCALE[match[2]], 9)


# --------------------------------------------------------------------------- the three formats


def pachyderm_spec(si: StageImage) -> dict[str, Any]:
    """A Pachyderm pipeline spec: the stage's pipeline, reading its repo (or its ``from`` stage's output repo)."""
    stage = si.stage
    spec: dict[str, Any] = {
        "pipeline": {"name": stage.name},
        "description": f"slimbuild stage {stage.name}",
        "transform": {"image": si.image, "cmd": list(si.argv)},
        "input": {"pfs": {"repo": stage.repo or stage.after, "glob": stage.glob}},
    }
    requests: dict[str, Any] = {}
    if stage.cpu:
        requests["cpu"] = cpu_cores(stage.cpu)
    if stage.memory:
        requests["memory"] = stage.memory
    if requests:
        spec["resourceRequests"] = requests
    return spec


def _labels(pipeline: str, stage: str | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": pipeline}
    return {**labels, "app.kubernetes.io/name": dns_name(stage)} if stage else labels


def pod_security(si: StageImage) -> dict[str, Any]:
    """The pod's securityContext: non-root, as the image's own uid and gid, the runtime's default seccomp profile."""
    return {"runAsNonRoot": True, "runAsUser": si.uid, "runAsGroup": si.gid, "seccompProfile": {"type": "RuntimeDefault"}}


def container(si: StageImage) -> dict[str, Any]:
    """The stage's container: pinned image, its argv, read-only root, no escalation, no capabilities, its requests."""
    spec: dict[str, Any] = {
        "name": dns_name(si.stage.name),
        "image": si.image,
        "command": list(si.argv),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": si.uid,
            "runAsGroup": si.gid,
        },
        "volumeMounts": [{"name": _TMP_VOLUME, "mountPath": "/tmp"}],
    }
    requests = {k: v for k, v in (("cpu", si.stage.cpu), ("memory", si.stage.memory)) if v}
    if requests:
        spec["resources"] = {"requests": requests}
    return spec


def kubernetes_job(pipeline: str, si: StageImage) -> dict[str, Any]:
    """A batch/v1 Job that runs the stage once (no retries: an analysis that failed fails again)."""
    name = f"{pipeline}-{dns_name(si.stage.name)}"
    if len(name) > 63:
        raise UsageError(f"Job name {name!r} is longer than 63 characters", hint="set a shorter [tool.slimbuild.pipeline] name")
    labels = _labels(pipeline, si.stage.name)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(si),
                    "containers": [container(si)],
                    "volumes": [{"name": _TMP_VOLUME, "emptyDir": {}}],
                },
            },
        },
    }


def argo_workflow(pipeline: str, images: Sequence[StageImage]) -> dict[str, Any]:
    """An Argo Workflow whose DAG runs each stage after the stage it reads from (``from``)."""
    tasks = []
    for si in images:
        task: dict[str, Any] = {"name": dns_name(si.stage.name), "template": dns_name(si.stage.name)}
        if si.stage.after:
            task["dependencies"] = [dns_name(si.stage.after)]
        tasks.append(task)
    templates: list[dict[str, Any]] = [{"name": "pipeline", "dag": {"tasks": tasks}}]
    for si in images:
        templates.append({"name": dns_name(si.stage.name), "container": container(si), "securityContext": pod_security(si)})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": f"{pipeline}-", "labels": _labels(pipeline)},
        "spec": {"entrypoint": "pipeline", "templates": templates, "volumes": [{"name": _TMP_VOLUME, "emptyDir": {}}]},
    }


def to_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def to_yaml(doc: Mapping[str, Any]) -> str:
    """Block-style YAML, keys sorted, every value written out where it stands (no anchors and aliases)."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return str(yaml.dump(dict(doc), Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=4096))


def spec_files(fmt: str, pipeline: str, images: Sequence[StageImage]) -> tuple[SpecFile, ...]:
    """The run specs of FORMAT: one file per stage (pachyderm, kubernetes), or the pipeline's workflow (argo)."""
    if fmt == "pachyderm":
        return tuple(SpecFile(f"{si.stage.name}.pipeline.json", to_json(pachyderm_spec(si))) for si in images)
    if fmt == "kubernetes":
        return tuple(SpecFile(f"{si.stage.name}.job.yaml", to_yaml(kubernetes_job(pipeline, si))) for si in images)
    if fmt == "argo":
        return (SpecFile(f"{pipeline}.workflow.yaml", to_yaml(argo_workflow(pipeline, images))),)
    raise UsageError(f"unknown spec format {fmt!r}", hint=f"one of {', '.join(FORMATS)}")


def joined(fmt: str, files: Sequence[SpecFile]) -> str:
    """The files as one stream for stdout: YAML documents separated by ``---``; JSON objects one after another."""
    return ("---\n" if fmt != "pachyderm" else "").join(f.text for f in files)
