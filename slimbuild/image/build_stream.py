"""The classic builder's JSON stream: progress events, log lines and the built image id.

``parse_build_stream`` turns the decoded chunks into a ``BuildOutcome``. A failed build (RELIABILITY E4)
raises ``BuildFailed`` whose one-line message carries the engine's error text followed by the last
``LOG_TAIL_LINES`` log lines joined with `` | ``; the image id comes only from an ``aux.ID`` record (E5, E6).
"""

from __future__ import annotations

import collections
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from slimbuild.errors import BuildFailed

LOG_TAIL_LINES = 20
_MAX_LINE = 300
_IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
_STEP = re.compile(r"Step (\d+)/(\d+) : (.*)")

ProgressKind = Literal["context", "step", "log", "push", "retry"]


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report: context bytes sent, a Dockerfile step started, or a build log line."""

    kind: ProgressKind
    message: str
    step: int | None = None
    total_steps: int | None = None
    bytes_sent: int | None = None
    total_bytes: int | None = None


@dataclass(frozen=True)
class BuildOutcome:
    """A successful build: the image id from the engine's ``aux`` record and the last log lines."""

    image_id: str
    log_tail: tuple[str, ...] = ()


ProgressCallback = Callable[[ProgressEvent], None]


class _LineSplitter:
    """Reassemble log lines from stream fragments that may split or join lines."""

    def __init__(self) -> None:
        self._partial = ""

    def feed(self, text: str) -> list[str]:
        """Complete lines contained in text plus what was buffered."""
        data = (self._partial + text).replace("\r\n", "\n").replace("\r", "\n")
        *lines, self._partial = data.split("\n")
        return lines

    def flush(self) -> list[str]:
        """The last unterminated line, if any."""
        rest, self._partial = self._partial, ""
        return [rest] if rest else []


def one_line(text: str) -> str:
    """Collapse whitespace and cap the length so a message stays one readable line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_LINE else flat[: _MAX_LINE - 3] + "..."


def _aux_image_id(aux: object) -> str | None:
    """The image id of an ``aux`` record, or None for other aux payloads (e.g. BuildKit traces)."""
    if isinstance(aux, Mapping):
        value = aux.get("ID")
        if isinstance(value, str) and _IMAGE_ID.fullmatch(value):
            return value
    return None


def _error_text(chunk: Mapping[str, Any]) -> str:
    """The error message of an ``error``/``errorDetail`` chunk."""
    detail = chunk.get("errorDetail")
    if isinstance(detail, Mapping) and detail.get("message"):
        return str(detail["message"])
    return str(chunk.get("error") or "unknown error")


def parse_build_stream(
    chunks: Iterable[Any],
    *,
    on_progress: ProgressCallback | None = None,
    tail_lines: int = LOG_TAIL_LINES,
) -> BuildOutcome:
    """Turn decoded build-stream chunks into a BuildOutcome; the image id comes only from ``aux.ID``."""
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    splitter = _LineSplitter()
    image_id: str | None = None

    def emit_lines(lines: list[str]) -> None:
        for raw in lines:
            line = raw.rstrip()
            if not line.strip():
                continue
            tail.append(one_line(line))
            if on_progress is None:
                continue
            step = _STEP.match(line)
            if step:
                on_progress(ProgressEvent("step", line, step=int(step[1]), total_steps=int(step[2])))
            else:
                on_progress(ProgressEvent("log", line))

    for chunk in chunks:
        if not isinstance(chunk, Mapping):
            continue
        if "error" in chunk or "errorDetail" in chunk:
            emit_lines(splitter.flush())
            error = one_line(_error_text(chunk))
            lines = [line for line in tail if line != error]
            shown = f"; last {len(lines)} log lines: " + " | ".join(lines) if lines else ""
            raise BuildFailed(
                f"image build failed: {error}{shown}",
                "fix the failing Dockerfile step shown in the log lines and build again",
            )
        if "aux" in chunk:
            found = _aux_image_id(chunk["aux"])
            if found is not None:
                image_id = found
        for key in ("stream", "status"):
            value = chunk.get(key)
            if isinstance(value, str):
                emit_lines(splitter.feed(value if key == "stream" else value + "\n"))
    emit_lines(splitter.flush())
    if image_id is None:
        raise BuildFailed(
            "image build result unknown: the engine's stream ended without an image id",
            "the connection to the engine may have dropped; check the engine (docker info) and build again",
        )
    return BuildOutcome(image_id=image_id, log_tail=tuple(tail))
