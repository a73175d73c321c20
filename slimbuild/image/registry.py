"""An image's config blob read from a registry, without its layers: the edge ``inspect``/``diff`` of a remote image use.

The registry API goes through python-dxf (a maintained Docker registry v2 client: the bearer-token and basic
login handshakes, URL layout, Docker Hub's ``library/`` names). Three requests at most, never a layer blob:
the manifest (by tag or digest), the platform's manifest when that was an index, and the config blob. The
documents are checked by the pure :mod:`slimbuild.image.oci` (sizes bounded, digests checked, one platform).

Credentials are the ones the ``docker`` CLI would use: Docker's ``config.json`` (``$DOCKER_CONFIG``, else
``~/.docker``), its ``auths`` and its credential helpers, read through the Docker SDK's ``docker.auth`` (the one
import of ``docker`` outside engine.py). They are sent only when the registry asks, and are never printed.

A registry on a loopback address (``localhost``, ``127.0.0.0/8``, ``[::1]``) is spoken to over plain HTTP, as dockerd
does by default; every other registry over HTTPS. python-dxf refuses to send a login over HTTP at all
(``DXFAuthInsecureError``); for loopback registries only, where nothing leaves the machine, a basic login is set
on the client's headers here instead.

Errors: a login the registry refuses, or none where it wants one (401), a rate limit (429), any other refusal and an
unreachable registry are ``RegistryError`` (exit 8) with the registry's own message; a reference the registry does
not know is ``NoSuchImage`` (exit 2); a document over its size limit or whose content does not match its digest
is ``IntegrityError`` (exit 5).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import requests
from dxf import DXF, DXFBase, exceptions

from slimbuild.errors import IntegrityError, NoSuchImage, RegistryError, SlimbuildError
from slimbuild.image import oci
from slimbuild.image.reference import Reference
from slimbuild.redact import redact

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
TIMEOUT = 30.0
_BODY_LIMIT = 64 * 1024  # of an error response: enough for the registry's message, never more


@dataclass(frozen=True)
class RemoteImage:
    """What the registry holds for a reference: the manifest's digest, the config blob (checked) and the layers' sizes."""

    manifest_digest: str
    config_digest: str
    config: dict[str, Any]
    layer_sizes: tuple[int, ...]
    platform: str


def is_loopback(host: str) -> bool:
    """Whether HOST (with an optional :port) is this machine: spoken to over plain HTTP."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return name in {"localhost", "[::1]"} or name.startswith("127.")


def credentials(domain: str) -> tuple[str, str] | None:
    """(user, password) the docker CLI would send to DOMAIN's registry, from config.json or its helpers; None without."""
    import docker.auth
    import docker.errors

    try:
        found = docker.auth.load_config().resolve_authconfig(domain or DOCKER_HUB)
    except (
        docker.errors.DockerException,
        OSError,
        ValueError,
        KeyError,
    ) as exc:  # never the exception's text: it may hold a secret
        raise RegistryError(
            f"{domain or DOCKER_HUB}: Docker's credentials could not be read ({type(exc).__name__})",
            "check config.json and its credential helper (docker login works when it is right)",
        ) from None
    if not found:
        return None
    user, password = found.get("username") or found.get("Username"), found.get("password") or found.get("Password")
    return (str(user), str(password)) if user and password else None


def _body(response: requests.Response) -> bytes:
    try:
        return next(response.iter_content(_BODY_LIMIT), b"")
    except requests.RequestException:
        return b""


def registry_message(body: bytes) -> str:
    """The registry's own words from an error body (``{"errors": [{"code", "message"}]}``), one line, redacted."""
    try:
        errors = json.loads(body.decode("utf-8", "replace")).get("errors")
        text = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError, TypeError):
        text = body.decode("utf-8", "replace")
    return redact(" ".join(text.split())[:300]) or "no message"


class _Login:
    """python-dxf's auth callback: on a 401, the docker CLI's credentials for the registry, else an anonymous token."""

    def __init__(self, domain: str, insecure: bool) -> None:
        self.domain, self.insecure = domain, insecure
        self.refusal = b""
        self.sent = False

    def __call__(self, dxf: DXFBase, response: requests.Response) -> None:
        self.refusal = _body(response)
        challenge = response.headers.get("www-authenticate", "")
        if not challenge:  # nothing to answer: the 401 stands (python-dxf would fail on the missing header)
            return
        login = credentials(self.domain)
        if login is None:
            if challenge.lower().startswith("bearer") and not self.insecure:
                dxf.authenticate(response=response)  # Docker Hub and others hand anonymous pull tokens out
            return
        self.sent = True
        if not self.insecure:
            dxf.authenticate(login[0], login[1], response=response)
            return
        if not challenge.lower().startswith("basic"):
            raise RegistryError(f"{self.domain}: a token login over plain HTTP is not supported", "serve the registry over HTTPS")
        # python-dxf refuses any login over HTTP (DXFAuthInsecureError); this registry is on loopback.
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode("ascii")
        dxf._headers = {"Authorization": f"Basic {token}"}


@contextmanager
def _registry_errors(source: str, host: str, login: _Login) -> Iterator[None]:
    """The client's failures as slimbuild's errors: exit 8 with the registry's message, 2 for an unknown name."""
    try:
        yield
    except SlimbuildError:
        raise
    except exceptions.DXFUnauthorizedError:
        hint = (
            f"the credentials docker has for {host} were refused: docker login {host} again"
            if login.sent
            else f"log in with docker login {host} (slimbuild reads the same credentials)"
        )
        raise RegistryError(f"{source}: the registry refused access (401 {registry_message(login.refusal)})", hint) from None
    except exceptions.DXFDigestMismatchError as exc:  # python-dxf's own check of a blob, at its last chunk
        raise IntegrityError(
            f"{source}: the blob's content {exc.got} does not match its digest {exc.expected}", oci.CORRUPT_HINT
        ) from None
    except requests.HTTPError as exc:
        raise _http_error(source, exc.response) from None
    except requests.RequestException as exc:
        raise RegistryError(
            f"{source}: the registry {host} cannot be reached ({type(exc).__name__})", "check the address, and that it is up"
        ) from None
    except exceptions.DXFError as exc:
        raise RegistryError(f"{source}: {type(exc).__name__}: {redact(str(exc))[:200]}", "check the registry") from None


def _http_error(source: str, response: requests.Response | None) -> SlimbuildError:
    status = response.status_code if response is not None else 0
    message = registry_message(_body(response)) if response is not None else "no response"
    if status == 404:
        return NoSuchImage(f"{source}: not in the registry ({message})", "check the name and tag: docker push it first")
    if status == 429:
        return RegistryError(f"{source}: rate limited by the registry (429 {message})", "wait, or log in for a higher limit")
    return RegistryError(f"{source}: the registry answered {status} ({message})", "check the reference and the registry")


def _fetch_manifest(dxf: DXF, name: str, source: str, digest: str = "") -> tuple[oci.ImageManifest | oci.Index, str]:
    """The manifest NAME (a tag or digest) names, read bounded, with its digest checked (DIGEST, else the registry's)."""
    # python-dxf reads a manifest whole (get_manifest_and_response); its request method streams, so the limit holds.
    response: requests.Response = dxf._request(  # type: ignore[no-untyped-call]
        "get", "manifests/" + name, headers={"Accept": oci.ACCEPT}, stream=True
    )
    with response:
        length = response.headers.get("content-length")
        what = f"{source}: the manifest"
        oci.check_declared_size(int(length) if length and length.isdigit() else None, oci.MAX_MANIFEST_BYTES, what)
        data = oci.read_bounded(response.iter_content(65536), oci.MAX_MANIFEST_BYTES, what)
        expected = digest or response.headers.get("docker-content-digest", "")
        content_type = response.headers.get("content-type", "")
    if expected:
        oci.check_digest(data, expected, what)
    return oci.parse_document(data, content_type, source), expected or oci.sha256_digest(data)


def _fetch_config(dxf: DXF, config: oci.Descriptor, source: str) -> bytes:
    """The config blob, its declared size bounded and exact, its digest checked (python-dxf checks it as well)."""
    what = f"{source}: the image config {config.digest}"
    oci.check_declared_size(config.size, oci.MAX_CONFIG_BYTES, what)
    chunks = cast("Iterable[bytes]", dxf.pull_blob(config.digest))  # without size=True: an iterator of chunks
    data = oci.read_bounded(chunks, config.size, what)
    if len(data) != config.size:
        raise IntegrityError(f"{what} is {len(data)} bytes, its descriptor says {config.size}", "push the image again")
    oci.check_digest(data, config.digest, what)
    return data


def read_image(ref: Reference, source: str, *, platform: str | None = None, timeout: float = TIMEOUT) -> RemoteImage:
    """The config blob and layer sizes of REF's image in its registry (one platform of an index); no layer is fetched."""
    domain = ref.domain or DOCKER_HUB
    host = DOCKER_HUB_API if domain in {DOCKER_HUB, "index.docker.io"} else domain
    insecure = is_loopback(host)
    login = _Login(domain, insecure)
    client = DXF(host, ref.path, auth=login, insecure=insecure, timeout=timeout)
    with client, _registry_errors(source, domain, login):
        document, digest = _fetch_manifest(client, ref.digest or ref.tag or "latest", source, ref.digest)
        chosen = platform or ""
        if isinstance(document, oci.Index):
            entry = oci.select_platform(document, platform, oci.host_platform(), source)
            oci.check_declared_size(entry.size, oci.MAX_MANIFEST_BYTES, f"{source}: the manifest for {entry.platform}")
            document, digest = _fetch_manifest(client, entry.digest, source, entry.digest)
            chosen = entry.platform
            if isinstance(document, oci.Index):
                raise IntegrityError(f"{source}: an index entry names another index", "push the image again")
        config = oci.config_of(_fetch_config(client, document.config, source), source)
    found = oci.platform_of_config(config)
    if platform and not oci.platform_matches(found, platform):
        raise NoSuchImage(f"{source}: the image is for {found}, not {platform}", f"drop --platform, or give --platform {found}")
    return RemoteImage(digest, document.config.digest, config, tuple(layer.size for layer in document.layers), chosen or found)
