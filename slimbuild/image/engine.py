"""Container engine interface and its Docker Engine API implementation (classic builder, API >= 1.41).

Images are always built untagged and tagged only afterwards, all refs or none, so an
interrupted or failed build can never leave a tag created or moved (RELIABILITY E4, E10).

Build failures (E4) raise ``BuildFailed`` with the engine's error and the last log lines on one line
(``slimbuild.image.build_stream`` reads the stream), so the top-level error printer shows them as is.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType, MappingProxyType
from typing import Any, BinaryIO, Protocol

import docker
import docker.errors
import docker.tls
import docker.utils
import urllib3.exceptions

from slimbuild.errors import BuildFailed, EngineUnavailable, Interrupted, NoSuchImage
from slimbuild.image.build_stream import (
    BuildOutcome,
    ProgressCallback,
    ProgressEvent,
    one_line,
    parse_build_stream,
)
from slimbuild.image.engine_commit import commit_run, remove_quietly
from slimbuild.image.engine_commit import short_id as _short
from slimbuild.image.engine_host import EngineHost, causes, resolve_host, root_cause, ssh_command, ssh_unavailable, unavailable
from slimbuild.image.push import credentials_for, push_reference, registry_of
from slimbuild.image.push_stream import PushOutcome
from slimbuild.image.ssh_transport import SSHDialer, ssh_client

MIN_API_VERSION = "1.41"
DEFAULT_TIMEOUT = 60.0
UPLOAD_CHUNK = 256 * 1024

_EMPTY: Mapping[str, str] = MappingProxyType({})
_TMPFS: Mapping[str, str] = MappingProxyType({"/tmp": ""})


@dataclass(frozen=True)
class RunOutcome:
    """A finished container run: its exit code and combined stdout/stderr."""

    exit_code: int
    output: str
    collected: bytes = b""  # run(collect=PATH): that path of the stopped container, as the engine's tar


@dataclass(frozen=True)
class EngineInfo:
    """Who answered: the engine URL, its API and engine versions, OS and architecture."""

    url: str
    api_version: str
    engine_version: str
    os: str
    arch: str
    podman: bool = False  # podman's compat API (its version names a "Podman Engine" component)


class Engine(Protocol):
    """The few engine operations slimbuild needs; a buildx engine can implement it later."""

    def info(self) -> EngineInfo:
        """Describe the engine."""
        ...

    def build(
        self,
        context: BinaryIO | bytes,
        *,
        dockerfile: str = "Dockerfile",
        buildargs: Mapping[str, str] = _EMPTY,
        labels: Mapping[str, str] = _EMPTY,
        on_progress: ProgressCallback | None = None,
        nocache: bool = False,
        network: str = "none",
        target: str = "",
    ) -> BuildOutcome:
        """Build an untagged image from a tar context (up to the stage ``target``, when given)."""
        ...

    def run(
        self,
        image_id: str,
        argv: Sequence[str],
        *,
        user: str,
        read_only: bool = True,
        network: str = "none",
        tmpfs: Mapping[str, str] = _TMPFS,
        cap_drop: Sequence[str] = ("ALL",),
        security_opt: Sequence[str] = ("no-new-privileges",),
        timeout: float,
        env: Mapping[str, str] = _EMPTY,
        files: bytes = b"",
        collect: str = "",
    ) -> RunOutcome:
        """Run argv (replacing ENTRYPOINT and CMD) in a throwaway locked-down container; ``files`` (a tar) is put
        into it at ``/`` before it starts (needs ``read_only=False``), ``collect`` fetched from it after it ends."""
        ...

    def commit_run(self, image: str, archive: BinaryIO | bytes, argv: Sequence[str], *, timeout: float) -> str:
        """Run argv in a container of IMAGE with ARCHIVE (a tar) put in /opt, and commit it, untagged: the new id
        (image/engine_commit.py: the venv image; what the container may change is checked first)."""
        ...

    def tag(self, image_id: str, refs: Sequence[str]) -> None:
        """Apply every ref to the image, or none of them."""
        ...

    def inspect_image(self, ref: str) -> dict[str, Any]:
        """The engine's image inspect document."""
        ...

    def history(self, image_id: str) -> list[dict[str, Any]]:
        """The image's history records."""
        ...

    def save(self, image_id: str) -> Iterator[bytes]:
        """The image as a ``docker save`` tar stream."""
        ...

    def load(self, data: bytes) -> str:
        """Load a ``docker save`` tar (layers the engine has may be left out); the loaded image's id."""
        ...

    def remove_image(self, image_id: str) -> None:
        """Remove an untagged image; tagged or missing images are left alone."""
        ...

    def untag(self, ref: str) -> None:
        """Remove one tag (undoing a tag of this run); a missing ref is left alone."""
        ...

    def remove_chain(self, image_id: str) -> None:
        """Remove an untagged image and the untagged parents that only it used (a build's intermediates)."""
        ...

    def push(self, ref: str, *, env: Mapping[str, str], on_progress: ProgressCallback | None = None) -> PushOutcome:
        """Push one tagged ref with Docker's credentials for its registry: the registry's digest, or RegistryError."""
        ...


# --------------------------------------------------------------------------- signals


class _Terminated(BaseException):
    """SIGTERM arrived while slimbuild held an engine connection."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(signum)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn a default-handled SIGTERM into an exception (main thread only) so cleanup can run."""
    install = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    if install:
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        if install:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


_INTERRUPTS = (KeyboardInterrupt, _Terminated, Interrupted)


def _version_tuple(version: str) -> tuple[int, ...]:
    """'1.41' -> (1, 41); junk parts count as 0."""
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def _client_kwargs(host: EngineHost) -> dict[str, Any]:
    """docker.APIClient's connection arguments for HOST (its TLS files; ssh engines: image/ssh_transport.py)."""
    kwargs: dict[str, Any] = {"base_url": host.url}
    if host.tls is not None:
        pair = (host.tls.cert, host.tls.key) if host.tls.cert and host.tls.key else None
        try:
            kwargs["tls"] = docker.tls.TLSConfig(client_cert=pair, ca_cert=host.tls.ca, verify=host.tls.verify)
        except docker.errors.DockerException as exc:
            raise EngineUnavailable(
                f"invalid Docker TLS settings for {host.url}: {one_line(str(exc))}",
                "check DOCKER_TLS_VERIFY and DOCKER_CERT_PATH",
            ) from None
    return kwargs


def _ignore_ca_bundle_variables(client: Any) -> None:
    """Verify with the CA the settings name, as the CLI does: requests would let REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
    replace it (psf/requests#3829); proxies from the environment still apply."""
    merge = client.merge_environment_settings

    def merge_keeping_verify(url: str, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        return merge(url, proxies, stream, client.verify if verify is None else verify, cert)

    client.merge_environment_settings = merge_keeping_verify


def connect(env: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> DockerEngine:
    """Connect to the engine the docker CLI would use: DOCKER_HOST and its TLS variables, else the current context."""
    environ = dict(os.environ if env is None else env)
    host = resolve_host(environ)
    url = host.url
    dialer: SSHDialer | None = None
    try:
        if host.ssh:
            client, dialer = ssh_client(url, ssh_command(url), environ, version=MIN_API_VERSION, timeout=timeout)
        else:
            client = docker.APIClient(version=MIN_API_VERSION, timeout=timeout, **_client_kwargs(host))
            _ignore_ca_bundle_variables(client)
    except docker.errors.DockerException as exc:
        if "Invalid bind address" in str(exc) or "Invalid port" in str(exc):
            raise EngineUnavailable(
                f"invalid DOCKER_HOST {url!r}", "use unix:///path/to/docker.sock, tcp://host:port or ssh://user@host"
            ) from None
        raise unavailable(url, exc) from None
    try:
        version = client.version(api_version=False)
    except (docker.errors.DockerException, OSError) as exc:
        reason = dialer.failure() if dialer is not None else ""
        client.close()
        raise (ssh_unavailable(url, reason) if reason else unavailable(url, exc)) from None
    api = str(version.get("ApiVersion", "0"))
    if _version_tuple(api) < _version_tuple(MIN_API_VERSION):
        client.close()
        raise EngineUnavailable(
            f"Engine API >= {MIN_API_VERSION} required, the engine at {url} offers {api}",
            "upgrade the Docker Engine to 20.10 or newer",
        )
    client._version = api  # what version="auto" does, after the TLS settings are pinned
    info = EngineInfo(
        url=url,
        api_version=api,
        engine_version=str(version.get("Version", "?")),
        os=str(version.get("Os", "?")),
        arch=str(version.get("Arch", "?")),
        podman=any("podman" in str(c.get("Name", "")).lower() for c in version.get("Components") or [] if isinstance(c, dict)),
    )
    return DockerEngine(client, info)


# --------------------------------------------------------------------------- the Docker engine


def _context_chunks(context: BinaryIO | bytes, on_progress: ProgressCallback | None) -> Iterator[bytes]:
    """Stream the context in chunks, reporting bytes sent."""
    total = len(context) if isinstance(context, bytes | bytearray) else None
    sent = 0
    view = memoryview(context) if isinstance(context, bytes | bytearray) else None
    while True:
        if view is not None:
            chunk = bytes(view[sent : sent + UPLOAD_CHUNK])
        else:
            chunk = context.read(UPLOAD_CHUNK)  # type: ignore[union-attr]
        if not chunk:
            break
        sent += len(chunk)
        if on_progress is not None:
            size = f"/{total}" if total is not None else ""
            on_progress(ProgressEvent("context", f"sending build context {sent}{size} bytes", bytes_sent=sent, total_bytes=total))
        yield chunk


class DockerEngine:
    """Engine over the Docker Engine API via ``docker.APIClient`` (classic builder)."""

    def __init__(self, client: Any, info: EngineInfo) -> None:
        self._client = client
        self._info = info

    @property
    def client(self) -> Any:
        """The underlying ``docker.APIClient`` (for tests and diagnostics)."""
        return self._client

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()

    def info(self) -> EngineInfo:
        """Describe the engine this object is connected to."""
        return self._info

    def _lost(self, exc: BaseException) -> EngineUnavailable:
        return unavailable(self._info.url, exc)

    def build(
        self,
        context: BinaryIO | bytes,
        *,
        dockerfile: str = "Dockerfile",
        buildargs: Mapping[str, str] = _EMPTY,
        labels: Mapping[str, str] = _EMPTY,
        on_progress: ProgressCallback | None = None,
        nocache: bool = False,
        network: str = "none",
        target: str = "",
    ) -> BuildOutcome:
        """Build an untagged image; Ctrl-C/SIGTERM closes the connection so the engine cancels the build."""
        responses: list[Any] = []

        def remember(response: Any, *args: Any, **kwargs: Any) -> None:
            responses.append(response)

        hooks: list[Any] = self._client.hooks["response"]
        hooks.append(remember)
        try:
            with _sigterm_raises():
                try:
                    stream = self._client.build(
                        fileobj=_context_chunks(context, on_progress),
                        custom_context=True,
                        dockerfile=dockerfile,
                        buildargs=dict(buildargs),
                        labels=dict(labels),
                        nocache=nocache,
                        network_mode=network,
                        target=target or None,
                        rm=True,
                        forcerm=True,
                        pull=False,
                        decode=True,
                    )
                    return parse_build_stream(stream, on_progress=on_progress)
                except _INTERRUPTS:
                    # Closing the response drops the connection; the engine then cancels the build
                    # and (forcerm) removes its intermediate container (moby PR #9774).
                    for response in responses:
                        response.close()
                    self._client.close()
                    raise Interrupted("image build interrupted; the engine was told to cancel it", "no tag was created") from None
                except docker.errors.APIError as exc:
                    raise BuildFailed(
                        f"image build failed: {one_line(str(exc.explanation or exc))}",
                        "check the Dockerfile and the build context",
                    ) from None
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    raise EngineUnavailable(
                        f"image build result unknown: connection to the engine at {self._info.url} lost ({root_cause(exc)})",
                        "check the engine (docker info) and build again; no tag was created",
                    ) from None
        finally:
            hooks.remove(remember)

    def run(
        self,
        image_id: str,
        argv: Sequence[str],
        *,
        user: str,
        read_only: bool = True,
        network: str = "none",
        tmpfs: Mapping[str, str] = _TMPFS,
        cap_drop: Sequence[str] = ("ALL",),
        security_opt: Sequence[str] = ("no-new-privileges",),
        timeout: float,
        env: Mapping[str, str] = _EMPTY,
        files: bytes = b"",
        collect: str = "",
    ) -> RunOutcome:
        """Run argv (replacing ENTRYPOINT and CMD) as user in a throwaway container; always removed, never committed
        (``files``, a tar put at ``/`` before the start, and ``collect``, a path fetched after the end: see Engine).

        ``output`` is stdout and stderr as the engine logged them; their relative order is not guaranteed.
        """
        if not argv:
            raise ValueError("argv must not be empty")
        client = self._client
        container: str | None = None
        try:
            with _sigterm_raises():
                host_config = client.create_host_config(
                    read_only=read_only, network_mode=network, tmpfs=dict(tmpfs), cap_drop=list(cap_drop),
                    security_opt=list(security_opt),
                )  # fmt: skip
                created = client.create_container(
                    image_id, entrypoint=[argv[0]], command=list(argv[1:]) or None, user=user,
                    environment=dict(env) or None, host_config=host_config, network_disabled=network == "none",
                    labels={"slimbuild.run": "1"},
                )  # fmt: skip
                container = str(created["Id"])
                if files:
                    client.put_archive(container, "/", files)
                client.start(container)
                status = self._wait(container, image_id, argv, timeout)
                output = client.logs(container, stdout=True, stderr=True)
                collected = b"".join(client.get_archive(container, collect)[0]) if collect else b""
                return RunOutcome(int(status.get("StatusCode", -1)), bytes(output).decode("utf-8", "replace"), collected)
        except _INTERRUPTS:
            raise Interrupted(f"run of {' '.join(argv)!r} interrupted", "") from None
        except docker.errors.APIError as exc:
            raise BuildFailed(
                f"cannot run {' '.join(argv)!r} in image {_short(image_id)}: {one_line(str(exc.explanation or exc))}",
                "check the command exists in the image and the user may run it",
            ) from None
        except OSError as exc:
            raise self._lost(exc) from None
        finally:
            if container is not None:
                remove_quietly(client, container)

    def commit_run(self, image: str, archive: BinaryIO | bytes, argv: Sequence[str], *, timeout: float) -> str:
        """The venv image: argv run in a container of IMAGE and committed (image/engine_commit.py); never tagged."""
        try:
            with _sigterm_raises():
                return commit_run(self._client, image, archive, argv, timeout=timeout)
        except _INTERRUPTS:
            raise Interrupted(f"venv step {' '.join(argv)!r} interrupted", "no image was tagged") from None
        except OSError as exc:
            raise self._lost(exc) from None

    def _wait(self, container: str, image_id: str, argv: Sequence[str], timeout: float) -> dict[str, Any]:
        """The container's exit status; past the timeout it is killed and the run fails (BuildFailed)."""
        try:
            return dict(self._client.wait(container, timeout=timeout))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if not any(isinstance(c, urllib3.exceptions.ReadTimeoutError) or "timed out" in str(c) for c in causes(exc)):
                raise
            self._client.kill(container)
            raise BuildFailed(
                f"smoke run {' '.join(argv)!r} in image {_short(image_id)} timed out after {timeout:g}s",
                "make the smoke command faster or raise its timeout",
            ) from None

    def _image_id_or_none(self, ref: str) -> str | None:
        try:
            return str(self._client.inspect_image(ref)["Id"])
        except docker.errors.ImageNotFound:
            return None

    def _set_ref(self, image_id: str, ref: str) -> None:
        repo, tag = docker.utils.parse_repository_tag(ref)
        self._client.tag(image_id, repo, tag or "latest", force=True)

    def _rollback(self, applied: list[tuple[str, str | None]]) -> None:
        """Undo this call's tags: restore moved refs, remove new ones (keeping the build cache)."""
        for ref, previous in reversed(applied):
            try:
                if previous is None:
                    self._client.remove_image(ref, noprune=True)
                else:
                    self._set_ref(previous, ref)
            except (docker.errors.DockerException, OSError):
                pass

    def tag(self, image_id: str, refs: Sequence[str]) -> None:
        """Point every ref at image_id, all or nothing: on failure or interrupt this call's refs are undone.

        Undoing restores a moved ref to its previous image and removes a new one; as with ``docker rmi``,
        the engine deletes an image whose last tag is removed (its parent layers, the build cache, are kept).
        """
        applied: list[tuple[str, str | None]] = []
        current = ""
        try:
            with _sigterm_raises():
                try:
                    for current in refs:
                        previous = self._image_id_or_none(current)
                        self._set_ref(image_id, current)
                        applied.append((current, previous))
                except BaseException:
                    self._rollback(applied)
                    raise
        except _INTERRUPTS:
            raise Interrupted(f"tagging image {_short(image_id)} interrupted", "no tag of this run was kept") from None
        except docker.errors.APIError as exc:
            raise BuildFailed(
                f"cannot tag image {_short(image_id)} as {current!r}: {one_line(str(exc.explanation or exc))}",
                "use a valid lowercase reference such as registry/name:tag; no tag of this run was kept",
            ) from None
        except OSError as exc:
            raise self._lost(exc) from None

    def inspect_image(self, ref: str) -> dict[str, Any]:
        """The engine's inspect document for an image id or reference."""
        try:
            return dict(self._client.inspect_image(ref))
        except docker.errors.ImageNotFound:
            raise NoSuchImage(f"no such image: {ref}", "build or pull it first, or check the reference") from None
        except OSError as exc:
            raise self._lost(exc) from None

    def history(self, image_id: str) -> list[dict[str, Any]]:
        """The image's history records, newest first."""
        try:
            return [dict(item) for item in self._client.history(image_id)]
        except docker.errors.ImageNotFound:
            raise NoSuchImage(f"no such image: {image_id}", "build or pull it first, or check the reference") from None
        except OSError as exc:
            raise self._lost(exc) from None

    def save(self, image_id: str) -> Iterator[bytes]:
        """Stream the image as a ``docker save`` tar."""
        try:
            stream = self._client.get_image(image_id)
        except docker.errors.ImageNotFound:
            raise NoSuchImage(f"no such image: {image_id}", "build or pull it first, or check the reference") from None
        except OSError as exc:
            raise self._lost(exc) from None
        for chunk in stream:
            yield bytes(chunk)

    def load(self, data: bytes) -> str:
        """``docker load`` of a tar; the id the engine gives the loaded image (its error stream is read to the end)."""
        loaded = ""
        try:
            for message in self._client.load_image(data):
                if not isinstance(message, dict):
                    continue
                if message.get("errorDetail") or message.get("error"):
                    detail = message.get("errorDetail") or {}
                    text = str(detail.get("message") if isinstance(detail, dict) else "") or str(message.get("error"))
                    raise BuildFailed(f"the engine refused to load the normalised image: {one_line(text)}", "no tag was applied")
                text = str(message.get("stream") or "")
                if "Loaded image ID:" in text:
                    loaded = text.split("Loaded image ID:", 1)[1].strip()
                elif text.startswith("Loaded image: sha256:"):  # podman names an untagged image so
                    loaded = text.split("Loaded image:", 1)[1].strip()
        except docker.errors.APIError as exc:
            raise BuildFailed(
                f"the engine refused to load the normalised image: {one_line(str(exc.explanation or exc))}", "no tag was applied"
            ) from None
        except OSError as exc:
            raise self._lost(exc) from None
        if not loaded:
            raise BuildFailed("the engine loaded the normalised image but did not say its id", "no tag was applied")
        return loaded

    def remove_chain(self, image_id: str) -> None:
        """Remove an untagged image with its untagged parents (the engine stops at a tagged or shared one)."""
        self.remove_image(image_id, noprune=False)

    def remove_image(self, image_id: str, *, noprune: bool = True) -> None:
        """Remove an image that carries no tag; tagged (someone uses it) or missing images are left alone."""
        try:
            if self._client.inspect_image(image_id).get("RepoTags"):
                return
            self._client.remove_image(image_id, noprune=noprune)
        except docker.errors.ImageNotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # still used by a container or another image
                return
            raise BuildFailed(f"cannot remove image {_short(image_id)}: {one_line(str(exc.explanation or exc))}", "") from None
        except OSError as exc:
            raise self._lost(exc) from None

    def push(self, ref: str, *, env: Mapping[str, str], on_progress: ProgressCallback | None = None) -> PushOutcome:
        """Push REF (image/push.py: the credentials the docker CLI would use, the stream read to the end)."""
        with _sigterm_raises():
            try:
                return push_reference(self._client, ref, credentials_for(registry_of(ref), env), on_progress=on_progress)
            except _Terminated:
                self._client.close()
                raise Interrupted(f"push of {ref} interrupted", "no digest was recorded; push again") from None

    def untag(self, ref: str) -> None:
        """Remove the tag REF (the engine deletes the image when it was its last tag; the build cache stays)."""
        try:
            self._client.remove_image(ref, noprune=True)
        except docker.errors.ImageNotFound:
            return
        except docker.errors.APIError as exc:
            raise BuildFailed(f"cannot remove the tag {ref}: {one_line(str(exc.explanation or exc))}", "") from None
        except OSError as exc:
            raise self._lost(exc) from None
