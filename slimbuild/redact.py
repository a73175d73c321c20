"""URL credentials, masked as ``***`` wherever slimbuild records or prints a URL (RELIABILITY B8, C6, G8; B16).

``redact`` is the one function every output goes through: each message, JSON value and log line slimbuild
prints (report.py's renderings and envelopes, cli.py's error, warning and progress lines), and the manifest's
bytes and label (record/manifest.py). It masks, in a string or in every string (and key) of a JSON-ready value:

* the userinfo of any URL, ``scheme://user:password@`` or ``scheme://token@``, up to the authority's *last* ``@``
  (a password may hold one), whatever the scheme: ``https``, ``git+https``, ``git+ssh``, ``hg+http``... So the
  VCS and editable forms (``-e git+https://user:TOKEN@host/r.git#egg=r``, ``name @ git+https://...``) are
  covered wherever they appear in a line;
* the values of query (or fragment) parameters named like a secret (``token``, ``access_token``,
  ``X-Amz-Signature``, ``api_key``, ``password``...).

It is idempotent (``redact(redact(x)) == redact(x)``), so an edge may apply it to what an inner one already did.
``mask_url`` rewrites one URL, ``mask_text`` every URL in free text (pip's output), ``without_credentials`` drops
the userinfo (the git remote in the manifest), and ``has_credentials`` tells whether a value carries any (the
Dockerfile checks refuse those in labels and env). Standard library only: cli.py imports it on the pre-commit path.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, TypeVar, overload

__all__ = ["MASK", "has_credentials", "mask_text", "mask_url", "redact", "without_credentials"]

MASK = "***"
_T = TypeVar("_T")

# ``scheme:/`` too: a URL given where a path was expected comes back from pathlib with one slash.
# ``pachyderm://repo@commit`` names a commit, not a user: Pachyderm's own notation (a data input, issue 14) is kept.
_USERINFO = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<scheme>(?!(?i:pachyderm):)[A-Za-z][A-Za-z0-9+.-]*:/{1,2})[^/\s?#@]*(?:@[^/\s?#@]*)*@"
)
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&#;][^=&\s#;]*(?:token|key|secret|passw|pwd|sig|auth|credential|session)[^=&\s#;]*=)[^&\s#;]+",
    re.IGNORECASE,
)


def _mask_query(text: str) -> str:
    return _SECRET_QUERY.sub(rf"\g<key>{MASK}", text)


def mask_url(url: str) -> str:
    """The URL with any user:password replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return mask_text(url)
    if "@" in parts.netloc and parts.scheme.lower() != "pachyderm":
        url = urllib.parse.urlunsplit(parts._replace(netloc=f"{MASK}@{parts.netloc.rpartition('@')[2]}"))
    return _mask_query(url)


def without_credentials(url: str) -> str:
    """The URL with its userinfo removed and secret query values masked ("" when it cannot be parsed)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return ""
    return _mask_query(urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])))


def mask_text(text: str) -> str:
    """Every URL credential in free text replaced by ``***``."""
    return _mask_query(_USERINFO.sub(rf"\g<scheme>{MASK}@", text))


@overload
def redact(value: str) -> str: ...
@overload
def redact(value: _T) -> _T: ...
def redact(value: Any) -> Any:
    """VALUE with every URL credential masked: a string, or every string and key of a JSON-ready value."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {redact(k): redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    return value


def has_credentials(text: str) -> bool:
    """Whether TEXT holds a URL with a userinfo part."""
    return _USERINFO.search(text) is not None
