"""Which engine to talk to, resolved from the environment and the Docker CLI's contexts as the ``docker`` CLI does.

The CLI's rules (docker/cli 20.10 to 28, checked against the CLI itself):

* ``DOCKER_HOST`` set: the default context with that host; ``DOCKER_CONTEXT`` and ``currentContext`` are ignored.
* else ``DOCKER_CONTEXT``, else ``currentContext`` in ``$DOCKER_CONFIG/config.json`` (``~/.docker``), else the default
  context (``unix:///var/run/docker.sock``). A named context that does not exist is an error, never the default.
* the default context's TLS: on when ``DOCKER_TLS`` or ``DOCKER_TLS_VERIFY`` is non-empty (any value, even ``0``);
  verified only with ``DOCKER_TLS_VERIFY``. The files are ``ca.pem``, ``cert.pem`` and ``key.pem`` in
  ``DOCKER_CERT_PATH`` (default: the config directory); a verified connection needs ``ca.pem``, and the client
  certificate is sent only when its files exist. ``DOCKER_CERT_PATH`` alone does not turn TLS on.
* a named context: ``contexts/meta/<sha256(name)>/meta.json`` names the docker endpoint's ``Host`` and
  ``SkipTLSVerify``; its TLS files are ``contexts/tls/<sha256(name)>/docker/{ca,cert,key}.pem``. TLS is on when
  any of them exists or verification is skipped.
* ``ssh://[user@]host[:port][/socket]``: the CLI runs, per connection, ``ssh -l USER -p PORT -o ConnectTimeout=30 -T
  -- HOST 'docker system dial-stdio'`` (``docker --host=unix:///socket system dial-stdio`` with a path), the ``ssh``
  found on PATH, with the user's own ssh configuration (keys, known_hosts, agent); a password, a query or a fragment in
  the URL is refused (docker/cli cli/connhelper). slimbuild runs the same command (``ssh_command``;
  image/ssh_transport.py), not paramiko.

Only small files are read here (no engine, no network); ``engine.connect`` turns the result into a client.
The failures to reach an engine are worded here too (``unavailable``): the host, the reason, never a certificate.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shlex
import ssl
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from slimbuild.errors import EngineUnavailable
from slimbuild.image.build_stream import one_line
from slimbuild.redact import redact as redact_url

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_CONTEXT = "default"
_MAX_META = 1024 * 1024


@dataclass(frozen=True)
class TLSFiles:
    """The TLS settings of an endpoint: whether the engine's certificate is verified, and the files to use."""

    verify: bool
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class EngineHost:
    """Where the engine is: its URL as the user wrote it, where that came from, TLS, and whether it is reached over ssh."""

    url: str
    source: str
    tls: TLSFiles | None = None

    @property
    def ssh(self) -> bool:
        """True for ``ssh://`` engines (reached through the ``ssh`` binary, as the CLI does)."""
        return self.url.startswith("ssh://")


def config_dir(env: Mapping[str, str]) -> Path:
    """The Docker CLI's configuration directory: ``DOCKER_CONFIG``, else ``~/.docker``."""
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"])
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".docker"


def context_name(env: Mapping[str, str]) -> tuple[str, str]:
    """The context the CLI would use, and what named it (``DOCKER_HOST``, ``DOCKER_CONTEXT``, the config file)."""
    if env.get("DOCKER_HOST"):
        return DEFAULT_CONTEXT, "DOCKER_HOST"
    if env.get("DOCKER_CONTEXT"):
        return env["DOCKER_CONTEXT"], "DOCKER_CONTEXT"
    path = config_dir(env) / "config.json"
    try:
        doc = json.loads(path.read_bytes()[:_MAX_META])
    except (OSError, ValueError):
        return DEFAULT_CONTEXT, "default"  # the CLI, too, reads a missing or unreadable config as empty
    current = doc.get("currentContext") if isinstance(doc, dict) else None
    if isinstance(current, str) and current:
        return current, str(path)
    return DEFAULT_CONTEXT, "default"


def resolve_host(env: Mapping[str, str]) -> EngineHost:
    """The engine the ``docker`` CLI would talk to under ``env`` (EngineUnavailable when its settings are unusable)."""
    name, named_by = context_name(env)
    if name == DEFAULT_CONTEXT:
        return _default_context(env, named_by)
    return _named_context(env, name, named_by)


def _default_context(env: Mapping[str, str], named_by: str) -> EngineHost:
    url = env.get("DOCKER_HOST") or DEFAULT_HOST
    verify = bool(env.get("DOCKER_TLS_VERIFY"))
    if not (verify or env.get("DOCKER_TLS")):
        return EngineHost(url, named_by)
    certs = Path(env["DOCKER_CERT_PATH"]) if env.get("DOCKER_CERT_PATH") else config_dir(env)
    ca = certs / "ca.pem"
    if verify and not ca.is_file():
        raise EngineUnavailable(
            f"invalid Docker TLS settings for {url}: DOCKER_TLS_VERIFY is set but there is no CA certificate {ca}",
            "put the engine's CA certificate as ca.pem in DOCKER_CERT_PATH, or unset DOCKER_TLS_VERIFY",
        )
    cert, key = _client_pair(certs / "cert.pem", certs / "key.pem", url)
    return EngineHost(url, named_by, TLSFiles(verify, str(ca) if verify else None, cert, key))


def _named_context(env: Mapping[str, str], name: str, named_by: str) -> EngineHost:
    ident = hashlib.sha256(name.encode("utf-8")).hexdigest()
    contexts = config_dir(env) / "contexts"
    meta_path = contexts / "meta" / ident / "meta.json"
    hint = "list the contexts with 'docker context ls'; choose one with 'docker context use NAME' or DOCKER_CONTEXT"
    try:
        meta = json.loads(meta_path.read_bytes()[:_MAX_META])
    except FileNotFoundError:
        raise EngineUnavailable(f"Docker context {name!r} ({named_by}) not found: no {meta_path}", hint) from None
    except (OSError, ValueError) as exc:
        raise EngineUnavailable(f"Docker context {name!r} ({named_by}) is unreadable: {meta_path}: {exc}", hint) from None
    endpoint = (meta.get("Endpoints") or {}).get("docker") if isinstance(meta, dict) else None
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get("Host"), str) or not endpoint["Host"]:
        raise EngineUnavailable(f"Docker context {name!r} ({named_by}) has no docker endpoint host in {meta_path}", hint)
    url = str(endpoint["Host"])
    skip = bool(endpoint.get("SkipTLSVerify"))
    tls_dir = contexts / "tls" / ident / "docker"
    ca = tls_dir / "ca.pem"
    cert, key = _client_pair(tls_dir / "cert.pem", tls_dir / "key.pem", url)
    source = f"context {name}"
    if not (skip or ca.is_file() or cert):
        return EngineHost(url, source)
    return EngineHost(url, source, TLSFiles(not skip, str(ca) if ca.is_file() and not skip else None, cert, key))


def _client_pair(cert: Path, key: Path, url: str) -> tuple[str | None, str | None]:
    """The client certificate and key when both exist; none when neither does; one alone is an error (as in the CLI)."""
    have_cert, have_key = cert.is_file(), key.is_file()
    if have_cert and have_key:
        return str(cert), str(key)
    if have_cert or have_key:
        present, missing = (cert, key) if have_cert else (key, cert)
        raise EngineUnavailable(
            f"invalid Docker TLS settings for {url}: {present} has no partner {missing}",
            "put both cert.pem and key.pem beside ca.pem, or neither",
        )
    return None, None


def ssh_command(url: str) -> tuple[str, ...]:
    """The command the docker CLI runs for an ``ssh://`` engine (one per connection), checked as the CLI checks the URL."""
    hint = "use ssh://[user@]host[:port][/path/to/docker.sock], with the key in your ssh configuration or agent"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EngineUnavailable(f"invalid ssh engine URL {url!r}: {exc}", hint) from None
    problem = ""
    if parts.password is not None:
        problem = "a plain-text password is not supported"
    elif not parts.hostname:
        problem = "the hostname is empty"
    elif parts.query or parts.fragment:
        problem = "query parameters and fragments are not allowed"
    if problem:
        raise EngineUnavailable(f"invalid ssh engine URL {redact_url(url)!r}: {problem}", hint)
    argv = ["ssh"]
    if parts.username:
        argv += ["-l", shlex.quote(parts.username)]
    if port is not None:
        argv += ["-p", str(port)]
    argv += ["-o ConnectTimeout=30", "-T", "--", shlex.quote(str(parts.hostname))]
    remote = ["docker", "system", "dial-stdio"]
    if parts.path.strip("/"):
        remote = ["docker", f"--host=unix://{parts.path}", "system", "dial-stdio"]
    return (*argv, " ".join(shlex.quote(arg) for arg in remote))


# --------------------------------------------------------------------------- connection errors


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (cause, context, exception args, urllib3 reason)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        nested = [item.__cause__, item.__context__, getattr(item, "reason", None), *getattr(item, "args", ())]
        stack.extend(x for x in nested if isinstance(x, BaseException))


def _is_permission_denied(exc: BaseException) -> bool:
    """True when the socket refused us for lack of permission (EACCES/EPERM)."""
    return any(
        isinstance(c, PermissionError) or (isinstance(c, OSError) and c.errno in (errno.EACCES, errno.EPERM)) for c in causes(exc)
    )


def root_cause(exc: BaseException) -> str:
    """The innermost OS-level reason, for the message."""
    found = [c for c in causes(exc) if isinstance(c, OSError) and c.errno is not None]
    return one_line(f"{found[-1].strerror}" if found else str(exc))


def _tls_failure(exc: BaseException) -> str:
    """The TLS reason when the handshake failed (verification, an expired or foreign certificate), else ''.

    Only OpenSSL's reason is kept: never a certificate's contents.
    """
    for cause in causes(exc):
        if isinstance(cause, ssl.SSLError):
            text = getattr(cause, "verify_message", "") or cause.reason or cause.strerror or "handshake failed"
            return one_line(str(text))
    return ""


def unavailable(url: str, exc: BaseException) -> EngineUnavailable:
    """Map a failure to reach the engine to EngineUnavailable with a useful hint."""
    tls = _tls_failure(exc)
    if tls:
        return EngineUnavailable(
            f"TLS connection to the Docker daemon at {url} failed ({tls})",
            "check ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH (or the context's): the engine's certificate must be"
            " valid now, for this host, and signed by ca.pem",
        )
    if _is_permission_denied(exc):
        return EngineUnavailable(
            f"permission denied connecting to the Docker daemon at {url}",
            "add your user to the 'docker' group and log in again, or use rootless Docker and point DOCKER_HOST at its socket",
        )
    return EngineUnavailable(
        f"Docker daemon not reachable at {url} ({root_cause(exc)})",
        "start the Docker daemon (dockerd / systemctl start docker) or point DOCKER_HOST at a running engine",
    )


def ssh_unavailable(url: str, reason: str) -> EngineUnavailable:
    """An ``ssh://`` engine whose ssh failed (unreachable host, a key refused, an unknown host key, no docker there)."""
    return EngineUnavailable(
        f"Docker daemon not reachable at {url} ({reason})",
        f"check that '{' '.join(ssh_command(url)[:-1])} docker version' works: the host, your key or agent, its"
        " known_hosts entry, and Docker 18.09 or later on the remote host",
    )
