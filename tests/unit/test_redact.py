"""URL credentials masked as ``***`` (slimbuild/redact.py; RELIABILITY B8, C6, G8)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from slimbuild.redact import has_credentials, mask_text, mask_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://user:tok@pypi.example.com/simple", "https://***@pypi.example.com/simple"),
        ("https://tok@pypi.example.com:8443/simple/", "https://***@pypi.example.com:8443/simple/"),
        ("https://index.example/simple", "https://index.example/simple"),
        ("file:///opt/pypi/simple", "file:///opt/pypi/simple"),
    ],
)
def test_C6_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_C6_mask_text() -> None:
    text = "Looking in indexes: http://user:****@127.0.0.1:9/simple, https://a:b@x.org/s"
    assert mask_text(text) == "Looking in indexes: http://***@127.0.0.1:9/simple, https://***@x.org/s"


def test_B8_has_credentials() -> None:
    assert has_credentials("see https://user:tok@host/x") and has_credentials("git+ssh://git@host/repo")
    assert not has_credentials("https://host/x") and not has_credentials("user@example.com")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://user:p@ss@host.example/simple", "https://***@host.example/simple"),
        ("https://user:p@ss@host.example", "https://***@host.example"),
        ("https://host.example/simple?token=s3cr3t&page=2", "https://host.example/simple?token=***&page=2"),
        ("https://host.example/x?access_token=abc#frag", "https://host.example/x?access_token=***#frag"),
        ("https://host.example/x?X-Amz-Signature=abc&a=b", "https://host.example/x?X-Amz-Signature=***&a=b"),
        ("https://host.example/x?page=2", "https://host.example/x?page=2"),
    ],
)
def test_B8_no_part_of_a_credential_survives_masking(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert mask_text(f"Looking in indexes: {url} (x)") == f"Looking in indexes: {masked} (x)"


@pytest.mark.parametrize(
    ("remote", "recorded"),
    [
        ("https://user:p@ss@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://tok@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://github.com/o/r.git?token=abc", "https://github.com/o/r.git?token=***"),
        ("https://github.com/o/r.git", "https://github.com/o/r.git"),
        ("git@github.com:o/r.git", ""),
    ],
)
def test_B5_G8_the_manifest_records_the_git_remote_without_credentials(tmp_path: Path, remote: str, recorded: str) -> None:
    from slimbuild.record.provenance import git_state

    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q"], ["remote", "add", "origin", remote]):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, env=env)
    (tmp_path / "f").write_text("x\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True, env=env)
    subprocess.run(
        ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "m"], check=True, env=env
    )
    state = git_state(tmp_path)
    assert state is not None and state["remote"] == recorded
    assert "ss@" not in json.dumps(state) and "abc" not in str(state["remote"])  # the commit's sha may hold "abc"
