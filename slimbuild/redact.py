"""URL credentials, masked as ``***`` wherever slimbuild records or prints a URL (RELIABILITY B8, C6, G8).

One pattern finds the userinfo of a URL (``scheme://user:password@``); ``mask_url`` rewrites one URL,
``mask_text`` every URL in free text (pip's output), and ``has_credentials`` tells whether a value
carries any (the Dockerfile checks refuse those in labels and env). Standard library only.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["has_credentials", "mask_text", "mask_url"]

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")


def mask_url(url: str) -> str:
    """The URL with any user:password replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return mask_text(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


def mask_text(text: str) -> str:
    """Every URL credential in free text replaced by ``***``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def has_credentials(text: str) -> bool:
    """Whether TEXT holds a URL with a userinfo part."""
    return _USERINFO.search(text) is not None
