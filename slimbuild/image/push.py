"""One push through the Docker Engine API, with the credentials the ``docker`` CLI would use (docker-py's auth).

Credentials come from Docker's config as the CLI finds it: ``$DOCKER_CONFIG/config.json`` when DOCKER_CONFIG is
set, else ``~/.docker/config.json`` (a missing file means no login, not a fallback elsewhere); its ``auths``,
``credsStore`` and ``credHelpers`` are resolved for the registry by docker-py's ``auth`` module, which runs the
``docker-credential-*`` helpers. They are handed to the engine in this one request's ``X-Registry-Auth``
header, never printed, logged or stored: every message that leaves here has the secrets it could hold masked.

A reference without a registry host is Docker Hub's (``docker.io``), as for ``docker push``; one without a tag
is pushed as ``:latest`` (the engine would otherwise push every tag of the repository).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker.auth
import docker.errors
import docker.utils
import urllib3.exceptions

from slimbuild.errors import ConfigError, Interrupted, RegistryError
from slimbuild.image.build_stream import ProgressCallback, one_line
from slimbuild.image.push_stream import PushFailed, PushOutcome, parse_push_stream, push_failure
from slimbuild.redact import MASK

_SECRET_KEYS = {"password", "identitytoken", "registrytoken", "auth"}


def registry_of(reference: str) -> str:
    """The registry host a reference is pushed to: its domain, or ``docker.io`` (as the docker CLI does)."""
    repository, _tag = docker.utils.parse_repository_tag(reference)
    return str(docker.auth.resolve_repository_name(repository)[0])


def docker_config_file(env: Mapping[str, str]) -> Path:
    """Where the docker CLI reads its config: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    folder = env.get("DOCKER_CONFIG") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".docker")
    return Path(folder) / "config.json"


def credentials_for(registry: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The auth config for REGISTRY from Docker's config and credential helpers ({} when there is no login)."""
    path = docker_config_file(env)
    if not path.is_file():
        return {}
    try:
        configs = docker.auth.load_config(config_path=str(path), credstore_env=dict(env))
        found = configs.resolve_authconfig(None if registry == docker.auth.INDEX_NAME else registry)
    except (docker.errors.InvalidConfigFile, ValueError) as exc:
        raise ConfigError(
            f"cannot read the registry logins in {path}: {one_line(str(exc))}",
            hint="fix the file (docker login rewrites it), or point DOCKER_CONFIG at another directory",
        ) from None
    except docker.errors.DockerException as exc:  # a credential helper that is missing or failed
        raise RegistryError(
            f"the credential helper for {registry} (in {path}) failed: {one_line(str(exc))}",
            hint="check credsStore/credHelpers there and that docker-credential-<name> is on PATH",
        ) from None
    return dict(found or {})


def secrets_of(auth: Mapping[str, Any]) -> tuple[str, ...]:
    """The secret values of an auth config (password, tokens), longest first, for masking."""
    values = {str(v) for k, v in auth.items() if k.lower() in _SECRET_KEYS and v}
    return tuple(sorted(values, key=len, reverse=True))


def masked(text: str, secrets: tuple[str, ...]) -> str:
    """TEXT with every secret value replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def push_reference(
    client: Any, reference: str, auth: Mapping[str, Any], *, on_progress: ProgressCallback | None = None
) -> PushOutcome:
    """Push REFERENCE (its one tag) with AUTH and read the stream to the end: its digest, or RegistryError (exit 8)."""
    repository, tag = docker.utils.parse_repository_tag(reference)
    registry = registry_of(reference)
    secrets = secrets_of(auth)
    qualified = f"{repository}:{tag or 'latest'}"
    try:
        stream = client.push(repository, tag=tag or "latest", stream=True, decode=True, auth_config=dict(auth))
        return parse_push_stream(stream, qualified, registry, on_progress=on_progress)
    except PushFailed as exc:  # the registry's message may quote what it was sent
        raise PushFailed(masked(exc.message, secrets), masked(exc.hint, secrets), transient=exc.transient) from None
    except (KeyboardInterrupt, Interrupted):
        client.close()  # the engine cancels a push whose connection is gone
        raise Interrupted(f"push of {qualified} interrupted", "no digest was recorded; push again") from None
    except docker.errors.APIError as exc:
        raise push_failure(qualified, registry, masked(str(exc.explanation or exc), secrets)) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:  # the engine's connection, not the registry's
        raise push_failure(qualified, registry, f"connection to the engine lost: {masked(str(exc), secrets)}") from None
