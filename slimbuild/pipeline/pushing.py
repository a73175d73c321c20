"""``build --push``: which refs a run pushes, each pushed with bounded, visible retries, its digest cross-checked.

What is pushed: every tag of the run in the registries the user's ``--tag``s name. The content tag and the
``git-<sha>`` tag are local names (``slimbuild/<project>``, which would be Docker Hub's ``slimbuild``
namespace): with ``--push`` they are also applied in each repository a ``--tag`` names (``-t reg/team/app:1.0``
adds ``reg/team/app:<content>`` and ``reg/team/app:git-<sha>``), and those are pushed with the ``--tag``s;
the local ``slimbuild/...`` names are never pushed. ``--push`` without a ``--tag`` is a usage error (exit 2),
and so is a ``--tag`` with a digest: a push needs a tag (both before any work).

Each ref is pushed through ``Engine.push``, whose stream is read to the end (image/push_stream.py). A transient
failure (connection refused or reset, a timeout, a 5xx answer) is retried ``RETRIES`` times after
``BACKOFF`` seconds (doubling), each retry announced as a ``retry`` progress line; a refusal (login,
permission) is not retried. The digest of the stream's ``aux`` record must be among the engine's
``RepoDigests`` for the ref's repository afterwards, or the push counts as failed. Any failure is exit 8
(RegistryError), the registry's message in it, credentials masked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from slimbuild.errors import RegistryError, UsageError
from slimbuild.image.build_stream import ProgressCallback, ProgressEvent
from slimbuild.image.engine import Engine
from slimbuild.image.push_stream import PushFailed, PushOutcome
from slimbuild.image.reference import Reference, parse_reference
from slimbuild.pipeline import outputs
from slimbuild.record import manifest as manifest_mod

RETRIES = 3
BACKOFF = 1.0  # seconds before the first retry; doubled before each next one

__all__ = [
    "BACKOFF", "RETRIES", "Published", "before_commit", "check_push_tags", "push_all", "qualified", "refs_to_push",
]  # fmt: skip


def check_push_tags(tags: Sequence[str]) -> None:
    """Exit 2 before any work unless every --tag can be pushed: at least one, each with no digest."""
    if not tags:
        raise UsageError(
            "--push needs a --tag naming the registry repository to push to",
            hint="add e.g. -t registry.example.com/team/app:1.0 (the content tag slimbuild/NAME is a local name)",
        )
    for t in tags:
        ref = parse_reference(t, "--tag")
        if ref.digest:
            raise UsageError(
                f"--tag {t!r} names a digest, and a push needs a tag: a registry stores a digest, it cannot be given one",
                hint=f"push {ref.name}:{ref.tag or 'TAG'} instead; the digest the registry stores is recorded in the manifest",
            )


def refs_to_push(local_refs: Sequence[str], user_tags: Sequence[str]) -> list[str]:
    """The run's refs to push: the --tags, and the run's other tags (content, git) in each --tag's repository."""
    repositories = list(dict.fromkeys(parse_reference(t, "--tag").name for t in user_tags))
    run_tags = [parse_reference(r, "ref").tag for r in local_refs if r not in user_tags]
    out = [*user_tags, *(f"{repo}:{tag}" for repo in repositories for tag in run_tags if tag)]
    return list(dict.fromkeys(out))


def _normalized(ref: Reference) -> str:
    """The repository as the registry knows it: docker.io implied, ``library/`` for a one-part Hub name."""
    domain = ref.domain or "docker.io"
    path = ref.path if ref.domain or "/" in ref.path else f"library/{ref.path}"
    return f"{domain}/{path}"


def qualified(reference: str) -> str:
    """``host/repo:tag`` of a reference (docker.io implied, ``latest`` when no tag is given), as recorded."""
    ref = parse_reference(reference, "ref")
    return f"{_normalized(ref)}:{ref.tag or 'latest'}"


def _cross_check(engine: Engine, ref: str, outcome: PushOutcome) -> None:
    """The stream's digest must be among the engine's RepoDigests for REF's repository (what docker pull sees)."""
    want = _normalized(parse_reference(ref, "ref"))
    recorded = engine.inspect_image(ref).get("RepoDigests") or []
    for item in recorded:
        name, _, digest = str(item).partition("@")
        if digest == outcome.digest and _normalized(parse_reference(name, "RepoDigests")) == want:
            return
    raise RegistryError(
        f"push of {ref}: the registry's digest {outcome.digest} is not among the engine's RepoDigests "
        f"({', '.join(map(str, recorded)) or 'none'})",
        hint="the push result cannot be trusted; push again",
    )


def push_one(
    engine: Engine,
    ref: str,
    *,
    env: Mapping[str, str],
    on_progress: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushOutcome:
    """Push REF, retrying transient failures RETRIES times with backoff (each retry reported); exit 8 at last."""
    delay = BACKOFF
    for attempt in range(RETRIES + 1):
        try:
            outcome = engine.push(ref, env=env, on_progress=on_progress)
            break
        except PushFailed as exc:
            if not exc.transient or attempt == RETRIES:
                if not attempt:
                    raise
                after = f"{exc.message} (after {attempt} retr{'y' if attempt == 1 else 'ies'})"
                raise PushFailed(after, exc.hint, transient=exc.transient) from None
            if on_progress is not None:
                on_progress(ProgressEvent("retry", f"{exc.message}; retry {attempt + 1} of {RETRIES} in {delay:g}s"))
            sleep(delay)
            delay *= 2
    _cross_check(engine, ref, outcome)
    return outcome


def push_all(
    engine: Engine,
    refs: Sequence[str],
    *,
    env: Mapping[str, str],
    on_progress: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, str]]:
    """Push every ref in order; the records ``{"reference": host/repo:tag, "digest"}``, sorted, once all succeeded.

    A failure names what was already pushed: a registry keeps those (nothing here can take a push back).
    """
    done: list[dict[str, str]] = []
    for ref in refs:
        try:
            outcome = push_one(engine, ref, env=env, on_progress=on_progress, sleep=sleep)
        except RegistryError as exc:
            if not done:
                raise
            kept = "already pushed, and kept by the registry: " + ", ".join(d["reference"] for d in done)
            raise RegistryError(exc.message, "; ".join(h for h in (exc.hint, kept) if h)) from None
        done.append({"reference": qualified(ref), "digest": outcome.digest})
        if on_progress is not None:
            on_progress(ProgressEvent("push", f"pushed {qualified(ref)}@{outcome.digest}"))
    return sorted(done, key=lambda d: (d["reference"], d["digest"]))


def _writer(data: bytes) -> Callable[[BinaryIO], object]:
    return lambda fh: fh.write(data)


@dataclass(frozen=True)
class Published:
    """What ``build --push`` published for one image: its manifest with ``pushed``, and those records."""

    manifest: dict[str, Any]
    pushed: tuple[dict[str, str], ...]


def before_commit(
    engine: Engine,
    images: Sequence[tuple[Sequence[str], Mapping[str, Any], Path]],
    user_tags: Sequence[str],
    *,
    env: Mapping[str, str],
    on_progress: ProgressCallback | None,
    out: list[Published],
    sleep: Callable[[float], None] = time.sleep,
) -> Callable[[Sequence[outputs.Staged]], list[outputs.Staged]]:
    """The step outputs.publish runs once every tag is applied: push each image's refs (IMAGES: its local refs,
    its manifest and where that goes), then restage each manifest with ``pushed``; OUT receives them in order.

    Nothing is restaged until every ref of every image is pushed, so a failure leaves the manifests unwritten.
    """

    def push_then_restage(files: Sequence[outputs.Staged]) -> list[outputs.Staged]:
        records = [push_all(engine, refs_to_push(refs, user_tags), env=env, on_progress=on_progress, sleep=sleep)
                   for refs, _, _ in images]  # fmt: skip
        restaged: dict[Path, outputs.Staged] = {}
        try:
            for (_, doc, path), pushed in zip(images, records, strict=True):
                final = manifest_mod.with_pushed(doc, pushed)
                restaged[path] = outputs.stage(path, _writer(manifest_mod.manifest_bytes(final)))
                out.append(Published(final, tuple(pushed)))
        except BaseException:
            for f in restaged.values():
                f.discard()
            raise
        return [restaged.get(f.path, f) for f in files]

    return push_then_restage
