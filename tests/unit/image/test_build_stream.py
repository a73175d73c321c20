"""parse_build_stream over recorded-style classic-builder chunk lists (RELIABILITY E4, E5, E6)."""

from __future__ import annotations

from typing import Any

import pytest

from slimbuild.errors import BuildFailed
from slimbuild.image.build_stream import LOG_TAIL_LINES, BuildOutcome, ProgressEvent, parse_build_stream
from tests.constants import BUILD

IMAGE = "sha256:" + "0123456789abcdef" * 4
FAKE = "sha256:" + "f" * 64


def _ok_stream(*run_output: str) -> list[dict[str, Any]]:
    """A successful two-step build as Engine API 1.41 streams it, with RUN output in the middle."""
    return [
        {"stream": "Step 1/2 : FROM slimbuild-test/debian-python:bookworm"},
        {"stream": "\n"},
        {"stream": " ---> d1fe9e476448\n"},
        {"stream": "Step 2/2 : RUN ./build.sh"},
        {"stream": "\n"},
        {"stream": " ---> Running in c698765d0522\n"},
        *({"stream": line} for line in run_output),
        {"stream": "Removing intermediate container c698765d0522\n"},
        {"stream": " ---> 0123456789ab\n"},
        {"aux": {"ID": IMAGE}},
        {"stream": "Successfully built 0123456789ab\n"},
    ]


def test_image_id_comes_from_aux() -> None:
    assert parse_build_stream(_ok_stream("hello\n")).image_id == IMAGE


@pytest.mark.parametrize(
    "run_output",
    [
        pytest.param(("Successfully built cffi\n",), id="successfully-built-cffi"),
        pytest.param(("Successfully built deadbeef\n",), id="successfully-built-hex"),
        pytest.param((f"layer digest {FAKE}\n",), id="line-ending-with-sha256"),
        pytest.param((f"{FAKE}\n", "Successfully built ffffffffffff\n"), id="both"),
    ],
)
def test_E5_log_lines_never_supply_the_image_id(run_output: tuple[str, ...]) -> None:
    outcome = parse_build_stream(_ok_stream(*run_output))
    assert outcome.image_id == IMAGE


def test_E5_log_line_after_aux_cannot_override() -> None:
    chunks = [*_ok_stream(), {"stream": f"Successfully built {FAKE}\n"}]
    assert parse_build_stream(chunks).image_id == IMAGE


def test_E5_buildkit_style_aux_payloads_are_not_image_ids() -> None:
    chunks: list[dict[str, Any]] = [
        {"id": "moby.buildkit.trace", "aux": "ZmFrZQ=="},
        {"aux": {"ID": "not-a-digest"}},
        {"stream": f"Successfully built {FAKE[7:19]}\n"},
    ]
    with pytest.raises(BuildFailed, match="result unknown"):
        parse_build_stream(chunks)


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([], id="empty-stream"),
        pytest.param(_ok_stream("hello\n")[:-2], id="dropped-before-aux"),
        pytest.param([c for c in _ok_stream("x\n") if "aux" not in c], id="success-line-but-no-aux"),
    ],
)
def test_E6_no_aux_id_is_build_result_unknown(chunks: list[dict[str, Any]]) -> None:
    with pytest.raises(BuildFailed) as info:
        parse_build_stream(chunks)
    assert info.value.exit_code == BUILD
    assert "build result unknown" in info.value.message
    assert info.value.hint


def test_E4_error_chunk_raises_build_failed_with_error_and_tail() -> None:
    chunks = _ok_stream("compiling\n", "gcc: fatal error: no input files\n")[:8]
    chunks.append({"errorDetail": {"code": 1, "message": "The command returned a non-zero code: 1"}, "error": "ignored"})
    with pytest.raises(BuildFailed) as info:
        parse_build_stream(chunks)
    err = info.value
    assert err.exit_code == BUILD
    assert "\n" not in err.message and "\n" not in err.one_line()
    assert "The command returned a non-zero code: 1" in err.message
    assert "gcc: fatal error: no input files | " not in err.message  # it is the last log line
    assert err.message.endswith("compiling | gcc: fatal error: no input files")
    assert "Step 2/2 : RUN ./build.sh" in err.message
    assert err.hint


def test_E4_tail_is_bounded_to_the_last_lines() -> None:
    chunks = _ok_stream(*(f"compiling module {i}\n" for i in range(100)))
    chunks = chunks[: chunks.index({"stream": "Removing intermediate container c698765d0522\n"})]
    chunks.append({"error": "no space left on device"})
    with pytest.raises(BuildFailed) as info:
        parse_build_stream(chunks)
    message = info.value.message
    assert message.startswith("image build failed: no space left on device; ")
    assert f"last {LOG_TAIL_LINES} log lines" in message
    assert "compiling module 99" in message
    assert "compiling module 80" in message and "compiling module 79" not in message


def test_E4_error_without_detail_and_multiline_text_stays_one_line() -> None:
    with pytest.raises(BuildFailed) as info:
        parse_build_stream([{"error": "failed to copy files:\n  copy file range failed"}])
    assert info.value.message == "image build failed: failed to copy files: copy file range failed"


def test_E4_error_after_aux_still_fails() -> None:
    with pytest.raises(BuildFailed):
        parse_build_stream([*_ok_stream(), {"error": "boom"}])


def test_progress_events_for_steps_and_log_lines() -> None:
    events: list[ProgressEvent] = []
    outcome = parse_build_stream(_ok_stream("line one\nline ", "two\n"), on_progress=events.append)
    steps = [e for e in events if e.kind == "step"]
    assert [(e.step, e.total_steps) for e in steps] == [(1, 2), (2, 2)]
    assert steps[1].message == "Step 2/2 : RUN ./build.sh"
    logs = [e.message for e in events if e.kind == "log"]
    assert "line one" in logs and "line two" in logs  # fragments are reassembled into lines
    assert isinstance(outcome, BuildOutcome)
    assert outcome.log_tail[-1] == "Successfully built 0123456789ab"


def test_progress_handles_carriage_returns_and_status_chunks() -> None:
    events: list[ProgressEvent] = []
    chunks: list[Any] = [
        {"status": "Pulling from library/python", "id": "3.11"},
        {"stream": "50%\r100%\r\n"},
        "not a mapping",
        {"aux": {"ID": IMAGE}},
    ]
    parse_build_stream(chunks, on_progress=events.append)
    assert [e.message for e in events] == ["Pulling from library/python", "50%", "100%"]


def test_no_callback_is_fine_and_nothing_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    parse_build_stream(_ok_stream("noisy\n"))
    assert capsys.readouterr() == ("", "")
