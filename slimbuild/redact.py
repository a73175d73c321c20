"""URL credentials, masked as ``***`` wherever slimbuild records or prints a URL (RELIABILITY B8, C6, G8).

One pattern finds the userinfo of a URL (``scheme://user:password@``, up to the authority's *last* ``@``, since a
password may hold one), another the values of query parameters named like a secret (``token``, ``access_token``,
``X-Amz-Signature``, ``api_key``...). ``mask_url`` rewrites one URL, ``mask_text`` every URL in free text (pip's
output), ``without_credentials`` drops the userinfo (the git remote in the manifest), and ``has_credentials``
tells whether a value carries any (the Dockerfile checks refuse those in labels and env). Standard library only.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["has_credentials", "mask_text", "mask_url", "without_credentials"]

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s?#@]*(?:@[^/\s?#@]*)*@")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&][^=&\s#]*(?:token|key|secret|passw|pwd|sig|auth|credential|session)[^=&\s#]*=)[^&\s#]+", re.IGNORECASE
)


def _mask_query(text: str) -> str:
    return _SECRET_QUERY.sub(r"\g<key>***", text)


def mask_url(url: str) -> str:
    """The URL with any user:password replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return mask_text(url)
    if "@" in parts.netloc:
        url = urllib.parse.urlunsplit(parts._replace(netloc=f"***@{parts.netloc.rpartition('@')[2]}"))
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
    return _mask_query(_USERINFO.sub(r"\g<scheme>***@", text))


def has_credentials(text: str) -> bool:
    """Whether TEXT holds a URL with a userinfo part."""
    return _USERINFO.search(text) is not None
