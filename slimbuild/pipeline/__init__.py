"""The one sequencer: every command's I/O, in order, behind this facade.

``analyze``/``check`` (:mod:`.analyzing`), ``lock``/``lock_findings`` (:mod:`.locking`), ``prepare_build``/``build``
(:mod:`.building`), ``inspect``/``diff`` (:mod:`.inspecting`), ``verify`` (:mod:`.verifying`), ``spec``
(:mod:`.specifying`), ``sbom`` (:mod:`.sbomming`), ``trace`` (:mod:`.tracing`). Attributes load their module on
first use, so the pre-commit ``check`` never imports the Docker SDK or Jinja2 (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slimbuild.pipeline.analyzing import analyze as analyze
    from slimbuild.pipeline.analyzing import check as check
    from slimbuild.pipeline.building import BuildInputs as BuildInputs
    from slimbuild.pipeline.building import BuildResult as BuildResult
    from slimbuild.pipeline.building import build as build
    from slimbuild.pipeline.building import prepare_build as prepare_build
    from slimbuild.pipeline.inspecting import diff as diff
    from slimbuild.pipeline.inspecting import inspect as inspect
    from slimbuild.pipeline.locking import LockOutcome as LockOutcome
    from slimbuild.pipeline.locking import lock as lock
    from slimbuild.pipeline.locking import lock_findings as lock_findings
    from slimbuild.pipeline.sbomming import sbom as sbom
    from slimbuild.pipeline.specifying import SpecOutcome as SpecOutcome
    from slimbuild.pipeline.specifying import spec as spec
    from slimbuild.pipeline.tracing import TraceOutcome as TraceOutcome
    from slimbuild.pipeline.tracing import trace as trace
    from slimbuild.pipeline.verifying import Verification as Verification
    from slimbuild.pipeline.verifying import verify as verify

_WHERE = {
    "analyze": "analyzing", "check": "analyzing",
    "lock": "locking", "lock_findings": "locking", "LockOutcome": "locking",
    "prepare_build": "building", "build": "building", "BuildInputs": "building", "BuildResult": "building",
    "inspect": "inspecting", "diff": "inspecting",
    "verify": "verifying", "Verification": "verifying",
    "spec": "specifying", "SpecOutcome": "specifying",
    "sbom": "sbomming",
    "trace": "tracing", "TraceOutcome": "tracing",
}  # fmt: skip

__all__ = [
    "BuildInputs", "BuildResult", "LockOutcome", "SpecOutcome", "TraceOutcome", "Verification", "analyze", "build",
    "check", "diff", "inspect", "lock", "lock_findings", "prepare_build", "sbom", "spec", "trace", "verify",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
