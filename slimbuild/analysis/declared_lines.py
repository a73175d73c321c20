"""What a requirements-file line says besides a requirement: index options, ``--hash`` pins, this project (``-e .``).

Pure: each reader takes a line's words and where it is, and returns values or ``None`` when the line is not of its
kind; bad input is a ``ConfigError`` at ``file:line``. Credentials in an option's URL are kept (pip needs them)
and masked in every message (``slimbuild.redact``).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slimbuild.errors import ConfigError
from slimbuild.models import IndexOption, Location
from slimbuild.redact import mask_text

__all__ = ["FileOptions", "ProjectReference", "index_option", "project_reference", "requirement_hashes"]

# pip's spellings of the options that choose where distributions come from, by their long form
_INDEX_OPTIONS = {
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
    "--trusted-host": "--trusted-host",
    "--no-index": "--no-index",
}
_HASH = re.compile(r"^(sha256|sha384|sha512):([0-9a-f]+)$")
_HASH_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
_EXTRAS = re.compile(r"^(?P<path>.*?)(?:\[(?P<extras>[^\]]*)\])?$")


@dataclass(frozen=True)
class ProjectReference:
    """A local path on a requirements line (``-e .``, ``./``, ``file:.``, ``-e ../other``), resolved."""

    path: Path
    extras: tuple[str, ...]
    text: str  # as written
    source: Location


@dataclass
class FileOptions:
    """What the requirements files read for one entrypoint say besides requirements (filled while reading)."""

    index: list[IndexOption] = field(default_factory=list)
    projects: list[ProjectReference] = field(default_factory=list)  # lines naming this project (``-e .``)


def index_option(words: Sequence[str], loc: Location, base: Path) -> IndexOption | None:
    """The index option of a line (``-i URL``, ``--index-url=URL``, ``-fDIR``, ``--no-index``...); None for another line.

    A relative ``--find-links`` directory is taken from the file's directory when it exists there, as pip does.
    """
    opt, eq, inline = words[0].partition("=")
    if opt not in _INDEX_OPTIONS and opt[:2] in ("-i", "-f") and not opt.startswith("--") and len(opt) > 2:
        opt, inline, eq = opt[:2], words[0][2:], "="
    long = _INDEX_OPTIONS.get(opt)
    if long is None:
        return None
    if long == "--no-index":
        return IndexOption(long, "", loc)
    value = inline if eq else (words[1] if len(words) > 1 else "")
    if not value:
        raise ConfigError(f"{loc}: {long} needs a value", hint=f"write '{long} URL' on its own line")
    if long == "--find-links" and "://" not in value and (base / value).exists():
        value = str((base / value).resolve())
    return IndexOption(long, value, loc)


def requirement_hashes(words: Sequence[str], loc: Location) -> tuple[str, ...]:
    """The ``--hash=ALGO:HEX`` (or ``--hash ALGO:HEX``) pins of a requirement line, lower case."""
    out: list[str] = []
    for i, word in enumerate(words):
        if word == "--hash":
            value = words[i + 1] if i + 1 < len(words) else ""
        elif word.startswith("--hash="):
            value = word[len("--hash=") :]
        else:
            continue
        m = _HASH.match(value.lower())
        if m is None or len(m[2]) != _HASH_LEN[m[1]]:
            raise ConfigError(
                f"{loc}: malformed hash {mask_text(value)!r}", hint="write --hash=sha256:<64 hex digits> (pip's form)"
            )
        out.append(value.lower())
    return tuple(dict.fromkeys(out))


def _local_path(target: str) -> str | None:
    """The path a requirement names (``.``, ``./x``, ``/abs``, ``file:.``, ``file:///abs``); None for anything else."""
    if target.startswith("file://"):
        return urllib.parse.unquote(urllib.parse.urlsplit(target).path) or "/"
    if target.startswith("file:"):
        return urllib.parse.unquote(target[len("file:") :]) or "."
    if target in (".", "..") or target.startswith(("./", "../", "/", "~")):
        return target
    return None


def project_reference(words: Sequence[str], loc: Location, base: Path, root: Path) -> ProjectReference | None:
    """A line installing a local directory (``-e .``, ``-e ./``, ``.``, ``file:.``, ``-e .[ml]``); None for another line.

    Its path is taken from the requirements file's directory and, when that is not the project, from the project's
    root (where ``pip install -r`` runs): either way naming the root means this project.
    """
    first = words[0]
    if first in ("-e", "--editable"):
        target = words[1] if len(words) > 1 else ""
    elif first.startswith("--editable="):
        target = first.split("=", 1)[1]
    elif first.startswith("-e") and not first.startswith("--"):
        target = first[2:]
    elif not first.startswith("-"):
        target = first
    else:
        return None
    m = _EXTRAS.match(target)
    path = _local_path(m["path"] if m else target)
    if path is None:
        return None
    extras = tuple(e.strip() for e in (m["extras"] or "").split(",") if e.strip()) if m else ()
    expanded = Path(os.path.expanduser(path))  # an unknown ~user stays as written (pathlib would raise)
    candidates = [(base / expanded).resolve(), (root / expanded).resolve()]
    top = root.resolve()
    found = next((c for c in candidates if c == top), candidates[0])
    return ProjectReference(found, extras, target, loc)
