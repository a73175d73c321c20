"""Image references checked against the grammar of the distribution spec, before any work (pure).

The grammar is distribution/reference's (``reference.go``), as the Docker Engine 20.10 applies it
(``ParseNormalizedNamed``, then ``WithTag`` when tagging)::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain "/"] path-component ["/" path-component]*     (at most 255 characters, normalized)
    domain           := domain-component ["." domain-component]* [":" port-number]
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    path-component   := /[a-z0-9]+/ [separator /[a-z0-9]+/]*,  separator := /[_.]|__|[-]*/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex   (sha256: 64, sha384: 96, sha512: 128 lowercase hex digits)

The first component is a domain only when it holds a "." or a ":" or is ``localhost``; a whole reference of 64 hex
digits is refused (it reads as an image id), and so is the name ``sha256`` (the engine refuses it).
IPv6 registry hosts (``[::1]:5000``) are not in 20.10's grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from slimbuild.errors import UsageError

NAME_MAX = 255
TAG_MAX = 128
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-*)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
_IMAGE_ID = re.compile(r"(?:sha256:)?[a-f0-9]{64}")
_HINT = "e.g. registry.example.com:5000/team/app:1.0: a lowercase name, a tag of letters, digits, '_', '.', '-'"


@dataclass(frozen=True)
class Reference:
    """A parsed reference: ``domain`` ('' for Docker Hub), the path, and its tag and digest ('' when absent)."""

    domain: str
    path: str
    tag: str
    digest: str

    @property
    def name(self) -> str:
        """The repository name as written (domain and path)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path


def _split_name(name: str) -> tuple[str, str]:
    """(domain, path): the first component is a domain only with a '.' or ':' in it, or when it is localhost."""
    first, sep, rest = name.partition("/")
    if sep and (any(c in first for c in ".:") or first == "localhost"):
        return first, rest
    return "", name


def _path_problem(path: str) -> str:
    """Why a repository path breaks the grammar ('' when it does not)."""
    if path.lower() != path:
        return "the repository name must be lowercase"
    for component in path.split("/"):
        if not component:
            return "the repository name has an empty path component (a leading, trailing or doubled '/')"
        if not _PATH_COMPONENT.fullmatch(component):
            return (
                f"path component {component!r} must be lowercase letters and digits, separated by '.', '_', '__' "
                "or dashes (not at its start or end)"
            )
    return ""


def _digest_problem(digest: str) -> str:
    """Why a digest breaks the grammar ('' when it does not)."""
    if not _DIGEST.fullmatch(digest):
        return f"digest {digest!r} is not algorithm:hex"
    algorithm, hex_digits = digest.split(":", 1)
    if algorithm not in _DIGEST_HEX:
        return f"digest algorithm {algorithm!r} is not one of {', '.join(sorted(_DIGEST_HEX))}"
    if len(hex_digits) != _DIGEST_HEX[algorithm] or hex_digits.lower() != hex_digits:
        return f"a {algorithm} digest is {_DIGEST_HEX[algorithm]} lowercase hex digits"
    return ""


def _problem(ref: str) -> tuple[str, Reference | None]:
    """Why REF breaks the grammar ('' and the parsed reference when it does not)."""
    if not ref:
        return "it is empty", None
    if ref != ref.strip() or any(c.isspace() or not c.isprintable() for c in ref):
        return "it holds whitespace or a control character", None
    if _IDENTIFIER.fullmatch(ref):
        return "a name of 64 hex digits reads as an image id (give sha256:<id> for an id)", None
    rest, _, digest = ref.partition("@")
    if digest and (why := _digest_problem(digest)):
        return why, None
    name, tag = rest, ""
    head, sep, tail = rest.rpartition(":")
    if sep and "/" not in tail:
        name, tag = head, tail
        if not _TAG.fullmatch(tag):
            return f"tag {tag!r} must be 1-{TAG_MAX} letters, digits, '_', '.' or '-', not starting with '.' or '-'", None
    domain, path = _split_name(name)
    if domain and not _DOMAIN.fullmatch(domain):
        return f"registry {domain!r} is not a host name with an optional :port", None
    if why := _path_problem(path):
        return why, None
    if not domain and path == "sha256":
        return "the name 'sha256' reads as a digest algorithm", None
    normalized = f"{domain or 'docker.io'}/{path if domain or '/' in path else 'library/' + path}"
    if len(normalized) > NAME_MAX:
        return f"the repository name is longer than {NAME_MAX} characters ({normalized})", None
    return "", Reference(domain, path, tag, digest)


def parse_reference(ref: str, what: str) -> Reference:
    """REF parsed, or UsageError (exit 2) naming WHAT (e.g. '--tag'), the reference and why it is invalid."""
    why, parsed = _problem(ref)
    if parsed is None:
        raise UsageError(f"{what} {ref!r} is not a valid image reference: {why}", hint=_HINT)
    return parsed


def check_tag(ref: str, what: str = "--tag") -> str:
    """A reference an image can be tagged with (name[:tag], no digest); UsageError otherwise."""
    if parse_reference(ref, what).digest:
        raise UsageError(
            f"{what} {ref!r} is not a valid tag: a digest names content, an image cannot be tagged with one",
            hint="drop the @sha256:... part",
        )
    return ref


def check_image(ref: str, what: str) -> str:
    """A reference the engine can look an image up by: name[:tag][@digest], or an image id (sha256:<64 hex>)."""
    if not _IMAGE_ID.fullmatch(ref):
        parse_reference(ref, what)
    return ref
