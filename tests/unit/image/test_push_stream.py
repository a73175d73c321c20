"""K6: the push stream read to the end (docker-py#3161: a failed push inside a 200 answer), and the credentials
the docker CLI would use, found through docker-py's auth module and never echoed."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slimbuild.errors import ConfigError, ExitCode, RegistryError
from slimbuild.image.build_stream import ProgressEvent
from slimbuild.image.push import credentials_for, docker_config_file, push_reference, registry_of
from slimbuild.image.push_stream import PushFailed, is_transient, parse_push_stream

DIGEST = "sha256:" + "d" * 64
REF = "127.0.0.1:5000/team/app:1.0"


def _progress(*layers: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"status": f"The push refers to repository [{REF.rsplit(':', 1)[0]}]"}]
    for layer in layers:
        out += [
            {"status": "Preparing", "progressDetail": {}, "id": layer},
            {"status": "Pushing", "progressDetail": {"current": 512, "total": 1024}, "id": layer},
            {"status": "Pushed", "progressDetail": {}, "id": layer},
        ]
    return out


def test_K6_an_error_inside_a_successful_push_stream_is_exit_8_with_the_registry_s_message() -> None:
    stream = [
        *_progress("aaa", "bbb"),
        {"errorDetail": {"message": "received unexpected HTTP status: 500 Internal Server Error"},
         "error": "received unexpected HTTP status: 500 Internal Server Error"},
        {"progressDetail": {}, "aux": {"Tag": "1.0", "Digest": DIGEST, "Size": 528}},  # never read past the error
    ]  # fmt: skip
    with pytest.raises(PushFailed) as info:
        parse_push_stream(iter(stream), REF, "127.0.0.1:5000")
    err = info.value
    assert err.exit_code == ExitCode.REGISTRY and isinstance(err, RegistryError)
    assert err.message == f"push of {REF} failed: received unexpected HTTP status: 500 Internal Server Error"
    assert err.transient and "127.0.0.1:5000 is up" in err.hint


def test_K6_the_aux_digest_is_the_outcome_and_each_layer_is_reported_once() -> None:
    events: list[ProgressEvent] = []
    stream = [*_progress("aaa"), {"status": "1.0: digest: x size: 528"},
              {"progressDetail": {}, "aux": {"Tag": "1.0", "Digest": DIGEST, "Size": 528}}]  # fmt: skip
    outcome = parse_push_stream(stream, REF, "127.0.0.1:5000", on_progress=events.append)
    assert (outcome.reference, outcome.digest, outcome.size) == (REF, DIGEST, 528)
    assert [(e.kind, e.message) for e in events] == [("push", f"{REF}: layer aaa: pushed")]


def test_K6_a_stream_that_ends_without_a_digest_is_never_success() -> None:
    with pytest.raises(PushFailed, match="ended without the registry's manifest digest"):
        parse_push_stream(_progress("aaa"), REF, "127.0.0.1:5000")
    bad = {"aux": {"Digest": "sha256:short"}}
    with pytest.raises(PushFailed):
        parse_push_stream([bad], REF, "127.0.0.1:5000")


def test_K6_the_engine_s_own_upload_retries_are_reported_once_per_round() -> None:
    events: list[ProgressEvent] = []
    countdown = [{"status": f"Retrying in {n} second{'s' if n > 1 else ''}", "id": "aaa"} for n in (5, 4, 3, 2, 1)]
    second = [{"status": f"Retrying in {n} seconds", "id": "aaa"} for n in (10, 9)]
    stream = [*countdown, *second, {"status": "Pushed", "id": "aaa"}, {"aux": {"Digest": DIGEST}}]
    parse_push_stream(stream, REF, "r", on_progress=events.append)
    retries = [e.message for e in events if e.kind == "retry"]
    assert retries == [
        f"the engine retries the upload of layer aaa of {REF} in 5s",
        f"the engine retries the upload of layer aaa of {REF} in 10s",
    ]


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ('Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused', True),
        ("read tcp 127.0.0.1:4->127.0.0.1:5: read: connection reset by peer", True),
        ("net/http: TLS handshake timeout", True),
        ("received unexpected HTTP status: 502 Bad Gateway", True),
        ("received unexpected HTTP status: 503 Service Unavailable", True),
        ("unauthorized: authentication required", False),
        ("no basic auth credentials", False),
        ("denied: requested access to the resource is denied", False),
        ("toomanyrequests: You have reached your pull rate limit", False),
        ("An image does not exist locally with the tag: x", False),
    ],
)
def test_K6_only_transient_failures_are_retried(message: str, transient: bool) -> None:
    assert is_transient(message) is transient


# ----------------------------------------------------------------------------- credentials


def _config(folder: Path, doc: dict[str, Any]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(doc), encoding="utf-8")
    return {"DOCKER_CONFIG": str(folder), "PATH": os.environ.get("PATH", ""), "HOME": str(folder.parent / "home")}


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_K6_credentials_come_from_docker_config_s_auths_as_the_cli_finds_them(tmp_path: Path) -> None:
    env = _config(tmp_path / "cfg", {"auths": {"127.0.0.1:5000": {"auth": _auth("u", "p4ss")}}})
    found = credentials_for("127.0.0.1:5000", env)
    assert (found["username"], found["password"]) == ("u", "p4ss")
    assert credentials_for("other.example.com", env) == {}
    assert docker_config_file(env) == tmp_path / "cfg" / "config.json"
    # DOCKER_CONFIG set but empty: no login, even when ~/.docker/config.json has one (the CLI does not fall back)
    home = tmp_path / "home"
    _config(home / ".docker", {"auths": {"127.0.0.1:5000": {"auth": _auth("u", "home")}}})
    assert credentials_for("127.0.0.1:5000", {"DOCKER_CONFIG": str(tmp_path / "empty"), "HOME": str(home)}) == {}
    assert credentials_for("127.0.0.1:5000", {"HOME": str(home)})["password"] == "home"


def test_K6_a_credential_helper_is_run_for_its_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text('#!/bin/sh\nread server\necho "{\\"Username\\": \\"hu\\", \\"Secret\\": \\"helper-secret\\"}"\n')
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    env = _config(tmp_path / "cfg", {"credHelpers": {"registry.example.com": "fake"}})
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    monkeypatch.setenv("PATH", env["PATH"])  # docker-py looks the helper up on the process PATH
    found = credentials_for("registry.example.com", env)
    assert (found["Username"], found["Password"]) == ("hu", "helper-secret")


def test_K6_an_unreadable_docker_config_is_exit_2_naming_the_file(tmp_path: Path) -> None:
    env = _config(tmp_path / "cfg", {"auths": {"127.0.0.1:5000": "not a table"}})
    with pytest.raises(ConfigError, match=r"cannot read the registry logins in .*config\.json"):
        credentials_for("127.0.0.1:5000", env)


def test_K6_a_hub_reference_goes_to_docker_io() -> None:
    assert registry_of("team/app:1.0") == "docker.io"
    assert registry_of("app") == "docker.io"
    assert registry_of("127.0.0.1:5000/team/app:1.0") == "127.0.0.1:5000"


class _Client:
    """docker.APIClient's push as the engine answers it: a 200 stream of records."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def push(self, repository: str, *, tag: str, stream: bool, decode: bool, auth_config: dict[str, Any]) -> Iterator[Any]:
        self.calls.append((repository, tag, auth_config))
        return iter(self.records)

    def close(self) -> None:
        pass


def test_K6_the_login_goes_to_the_engine_only_and_never_into_a_message() -> None:
    secret = "s3cret-Canary"
    said = f"unauthorized: bad login for u:{secret}"
    client = _Client([{"error": said, "errorDetail": {"message": said}}])
    with pytest.raises(RegistryError) as info:
        push_reference(client, "127.0.0.1:5000/team/app", {"username": "u", "password": secret})
    assert client.calls == [("127.0.0.1:5000/team/app", "latest", {"username": "u", "password": secret})]  # one tag
    text = info.value.one_line() + str(info.value)  # what is printed, and what a --debug traceback shows
    assert secret not in text and "***" in text and "the registry refused the push" in text and "docker login" in text
