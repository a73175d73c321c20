"""URL credentials masked as ``***`` (slimbuild/redact.py; RELIABILITY B8, C6, G8)."""

from __future__ import annotations

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
