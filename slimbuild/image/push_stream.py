"""The engine's push stream, read to the end: the registry's manifest digest, or the registry's error (pure).

``POST /images/{name}/push`` answers 200 and streams JSON progress; a push that fails (a registry that is down,
refuses the login, answers 500) reports it *inside* that stream as an ``error`` record (docker-py#3161), so
the HTTP status says nothing. ``parse_push_stream`` reads every record: an ``error`` raises ``PushFailed``
(exit 8) with the registry's message, the ``aux`` record's ``Digest`` is the manifest digest the registry
stored, and a stream that ends with neither is a failure too (never a success without a digest).

``PushFailed.transient`` says whether trying again may help (connection refused or reset, timeouts, a 5xx
answer): pipeline/pushing.py retries those. The engine also retries a failed layer upload by itself
(``Retrying in N seconds``); those records are reported as ``retry`` progress, so every retry is visible.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from slimbuild.errors import RegistryError
from slimbuild.image.build_stream import ProgressCallback, ProgressEvent, one_line

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# What a registry or the network says when trying again later may succeed: refused or reset connections (a
# registry restarting), timeouts, unexpected EOFs, and 5xx answers (500, 502 Bad Gateway, 503, 504).
_TRANSIENT = re.compile(
    r"connection refused|connection reset|broken pipe|timed? ?out|timeout|unexpected EOF|\bEOF\b|"
    r"HTTP status: 5\d\d|\b50[0-4]\b|bad gateway|service unavailable|gateway time|internal server error|"
    r"temporary failure|TLS handshake",
    re.IGNORECASE,
)
# A refusal trying again cannot fix: the login, the permission, the rate limit.
_REFUSED = re.compile(
    r"unauthorized|authentication required|no basic auth credentials|denied|forbidden|toomanyrequests|"
    r"\b40[13]\b|\b429\b|manifest invalid|name invalid|blob unknown",
    re.IGNORECASE,
)
_LOGIN_HINT = (
    "log in to {registry} (docker login {registry}); slimbuild reads Docker's config ($DOCKER_CONFIG/config.json, "
    "else ~/.docker/config.json) and its credential helpers"
)


class PushFailed(RegistryError):
    """A push the registry or the network failed; ``transient`` when trying again may succeed."""

    def __init__(self, message: str, hint: str = "", *, transient: bool = False) -> None:
        super().__init__(message, hint)
        self.transient = transient


@dataclass(frozen=True)
class PushOutcome:
    """A finished push: the reference pushed and the manifest digest the registry stored for it."""

    reference: str
    digest: str
    size: int | None = None


def is_transient(message: str) -> bool:
    """Whether a push error reads like one that trying again may fix (never a refused login or permission)."""
    return not _REFUSED.search(message) and bool(_TRANSIENT.search(message))


def push_failure(reference: str, registry: str, message: str) -> PushFailed:
    """The exit-8 error for a push of REFERENCE that failed with MESSAGE (the registry's or the network's)."""
    text = one_line(message) or "no reason given"
    if _REFUSED.search(message):
        hint = _LOGIN_HINT.format(registry=registry) if re.search(r"auth|denied|401|403", message, re.I) else ""
        return PushFailed(f"the registry refused the push of {reference}: {text}", hint)
    transient = is_transient(message)
    hint = f"check that the registry {registry} is up and reachable from the Docker engine" if transient else ""
    return PushFailed(f"push of {reference} failed: {text}", hint, transient=transient)


def _error_text(record: Mapping[str, Any]) -> str:
    detail = record.get("errorDetail")
    text = detail.get("message") if isinstance(detail, Mapping) else None
    return str(text or record.get("error") or "")


def _aux_digest(record: Mapping[str, Any]) -> tuple[str, int | None] | None:
    aux = record.get("aux")
    if not isinstance(aux, Mapping):
        return None
    digest, size = aux.get("Digest"), aux.get("Size")
    if isinstance(digest, str) and _DIGEST.fullmatch(digest):
        return digest, size if isinstance(size, int) and not isinstance(size, bool) else None
    return None


_COUNTDOWN = re.compile(r"Retrying in (\d+) seconds?")


class _Progress:
    """Turns push records into progress: each retry round of the engine (its countdown restarts) once, and each
    layer's outcome once (the byte counts in between are left out)."""

    def __init__(self, reference: str, on_progress: ProgressCallback | None) -> None:
        self.reference, self.on_progress = reference, on_progress
        self.countdown: dict[str, int] = {}
        self.done: set[tuple[str, str]] = set()

    def __call__(self, record: Mapping[str, Any]) -> None:
        if self.on_progress is None:
            return
        status, layer = str(record.get("status") or ""), str(record.get("id") or "")
        if m := _COUNTDOWN.match(status):
            seconds = int(m.group(1))
            if seconds >= self.countdown.get(layer, 0):  # a new round starts its countdown afresh
                self.on_progress(
                    ProgressEvent("retry", f"the engine retries the upload of layer {layer} of {self.reference} in {seconds}s")
                )
            self.countdown[layer] = seconds
        elif status in {"Pushed", "Layer already exists"} or status.startswith("Mounted from"):
            if (layer, status) not in self.done:
                self.done.add((layer, status))
                self.on_progress(ProgressEvent("push", f"{self.reference}: layer {layer}: {status.lower()}"))


def parse_push_stream(
    records: Iterable[Any], reference: str, registry: str, *, on_progress: ProgressCallback | None = None
) -> PushOutcome:
    """Read the whole push stream of REFERENCE: its digest, or PushFailed (exit 8) with the registry's message."""
    found: tuple[str, int | None] | None = None
    report = _Progress(reference, on_progress)
    for record in records:
        if not isinstance(record, Mapping):
            continue
        if record.get("error") or record.get("errorDetail"):
            raise push_failure(reference, registry, _error_text(record))
        found = _aux_digest(record) or found
        report(record)
    if found is None:
        raise PushFailed(
            f"push of {reference} ended without the registry's manifest digest",
            "the engine reported neither success nor an error; push again, and check the engine's log",
            transient=True,
        )
    return PushOutcome(reference, found[0], found[1])
