"""The manifest's schema (versions 1 and 2), its validation and its JSON parsing (the rest: manifest.py).

Version 2 (what this slimbuild writes) adds ``inputs``: the data the analysis reads at run time, as the
configuration lists it (record/data.py makes the records). Version 1 manifests, written before it, still
read and validate against the version 1 schema; they are returned as they are (no ``inputs`` key), so
the sha256 of an old image's label still matches. Readers take ``manifest.get("inputs", [])``. Version 2 also
has the optional ``traced_data`` (the data files traced runs opened), absent without a trace: ``.get("traced_data")``.

A manifest file written by ``write_manifest`` also carries ``sha256``: the hex sha256 of its canonical
bytes without that key. ``read_manifest_file`` checks it (a file edited after it was written is
IntegrityError, exit 5) and drops it, so a file reads back as the manifest that was written.
"""

from __future__ import annotations

import json
import re
from typing import Any

from slimbuild.errors import IntegrityError
from slimbuild.redact import redact

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
FILE_KINDS = ("data", "notebook-script", "source")
INPUT_KINDS = ("dataset", "dvc", "lakefs", "path", "url")
INPUT_TYPES = ("directory", "file", "symlink")
FILE_SHA_KEY = "sha256"  # the file's own content hash (manifest files only, never in the image)
CORRUPT_HINT = "the manifest is corrupt or was edited; rebuild the image with slimbuild build"


def compact(value: Any) -> str:
    """Compact JSON with sorted keys (labels, messages), URL credentials masked (B16)."""
    return json.dumps(redact(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class _Nullable:
    def __init__(self, spec: Any) -> None:
        self.spec = spec


class _OneOf:
    def __init__(self, *values: str) -> None:
        self.values = values


class _Match:
    def __init__(self, pattern: str, text: str) -> None:
        self.regex = re.compile(pattern)
        self.text = text


HEX64 = _Match(r"[0-9a-f]{64}", "64 lowercase hex digits")
SHA256_DIGEST = _Match(r"sha256:[0-9a-f]{64}", "sha256: and 64 lowercase hex digits")

# The whole schema, version 1. Every key is required but those of _OPTIONAL_KEYS (top level); unknown keys are
# refused (bump SCHEMA_VERSION to add a required one).
_OPTIONAL_KEYS = frozenset(
    {"pins", "pruned", "pushed", "pythonpath", "sbom", "system_packages", "trace_in_image", "traced_data"}
)
_SCHEMA_V1: dict[str, Any] = {
    # pip-audit's findings when the lock was audited (C12), else null
    "audit": _Nullable([{"fix_versions": [str], "id": str, "name": str, "version": str}]),
    "base_image": {"digest_or_id": str, "local_only": bool, "reference": str},
    "declared_left_out": [str],
    "distributions": [
        {"hashes": [str], "name": str, "required_by": [str], "size_bytes": _Nullable(int), "version": str}
    ],
    "entrypoint": _Nullable({"argv": [str], "name": str, "path": str}),
    "excluded_sensitive": [str],
    "files": [{"kind": _OneOf(*FILE_KINDS), "path": str, "sha256": HEX64, "size": int}],
    "git": _Nullable({"commit": str, "dirty": bool}),
    "image": _Nullable(
        {
            "added_bytes": _Nullable(int),
            "id": str,
            "layer_diff_ids": [str],
            "layer_sizes": [int],
            "size_bytes": _Nullable(int),
            "tags": [str],
        }
    ),
    "index_sources": [str],
    "lock_sha256": HEX64,
    # where each pin of the lock came from (the environment, another tool's lock); optional, see _OPTIONAL_KEYS
    "pins": [{"name": str, "source": str, "version": str}],
    # where build --push put the image: each reference (host/repo:tag) and the digest the registry serves it by;
    # sorted, optional (absent when never pushed), see _OPTIONAL_KEYS. `slimbuild spec` pins run specs by it.
    "pushed": [{"digest": _Match(r"sha256:[0-9a-f]{64}", "sha256: and 64 lowercase hex digits"), "reference": str}],
    # prune = "traced" (issue 15): what the keep spec kept (counts) and the traced commands that passed in the pruned
    # image; optional, see _OPTIONAL_KEYS
    "pruned": {"kept_files": int, "kept_modules": int, "kept_packages": int, "mode": _OneOf("traced"),
               "proven": [{"command": [str], "exit_code": int, "ok": bool}]},
    # the image's PYTHONPATH when the configuration sets pythonpath (A50); optional, see _OPTIONAL_KEYS
    "pythonpath": [str],
    # where build --sbom wrote the CycloneDX SBOM in the image (issue 16); optional, see _OPTIONAL_KEYS
    "sbom": str,
    "schema_version": int,
    "slimbuild_version": str,
    "smoke": [{"command": [str], "exit_code": int, "ok": bool}],
    "source_date_epoch": int,
    # the Debian packages installed from .deb files (system-packages); optional, see _OPTIONAL_KEYS
    "system_packages": [{"name": str, "sha256": HEX64, "version": str}],
    "target": {"platform": str, "python": str},
    # build --trace-in-image (issue 15): the smoke commands traced in the image, the installed files (relative to
    # site-packages) they opened or mapped, and the bytes of the installed files they never did; optional
    "trace_in_image": {"commands": [[str]], "installed_bytes": int, "installed_files": int, "never_opened_bytes": int,
                       "never_opened_files": int, "opened": [str], "opened_bytes": int},
    "template": {"dockerfile_sha256": HEX64, "name": str},
    "unparsed": [str],
    "unresolved_dynamic": [str],
}
# Version 2: the data inputs (record/data.py); ``ref`` and ``sha256`` as configured, ``type`` and ``digest``
# computed by build for a local path (and a .dvc file), ``outs`` the outputs a .dvc file names.
_SCHEMA: dict[str, Any] = {
    **_SCHEMA_V1,
    "inputs": [
        {
            "digest": _Nullable(HEX64),
            "kind": _OneOf(*INPUT_KINDS),
            "outs": [{"md5": str, "path": str}],
            "ref": str,
            "sha256": _Nullable(HEX64),
            "type": _Nullable(_OneOf(*INPUT_TYPES)),
        }
    ],
    # issue 15: the project's data files the traced runs opened (slimbuild.trace.json), sorted by path: sha256 and size
    # (null, with missing true, for a file gone since the trace), and whether the image holds it; optional (absent
    # without a trace), see _OPTIONAL_KEYS
    "traced_data": [{"included": bool, "missing": bool, "path": str, "sha256": _Nullable(HEX64), "size": _Nullable(int)}],
}
_SCHEMAS = {1: _SCHEMA_V1, 2: _SCHEMA}


def _describe(spec: Any) -> str:
    if isinstance(spec, _Nullable):
        return f"{_describe(spec.spec)} or null"
    if isinstance(spec, _OneOf):
        return "one of " + ", ".join(repr(v) for v in spec.values)
    if isinstance(spec, _Match):
        return spec.text
    if isinstance(spec, dict):
        return "an object"
    if isinstance(spec, list):
        return "a list"
    return {int: "an integer", str: "a string", bool: "true or false"}[spec]


def _conforms(value: Any, spec: Any) -> bool:
    if spec is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if spec is str:
        return isinstance(value, str)
    if spec is bool:
        return isinstance(value, bool)
    if isinstance(spec, _OneOf):
        return value in spec.values
    if isinstance(spec, _Match):
        return isinstance(value, str) and spec.regex.fullmatch(value) is not None
    return False


def _check(value: Any, spec: Any, where: str, source: str) -> None:
    described = spec
    if isinstance(spec, _Nullable):
        if value is None:
            return
        spec = spec.spec
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise corrupt(source, f"{where or 'the document'} must be an object")
        extra = sorted(set(value) - set(spec))
        if extra:
            raise corrupt(source, f"unknown key {join_path(where, extra[0])!r}")
        optional = _OPTIONAL_KEYS if not where else frozenset()
        missing = sorted(set(spec) - set(value) - optional)
        if missing:
            raise corrupt(source, f"missing key {join_path(where, missing[0])!r}")
        for key, sub in spec.items():
            if key in value:
                _check(value[key], sub, join_path(where, key), source)
    elif isinstance(spec, list):
        if not isinstance(value, list):
            raise corrupt(source, f"{where} must be a list")
        for index, item in enumerate(value):
            _check(item, spec[0], f"{where}[{index}]", source)
    elif not _conforms(value, spec):
        raise corrupt(source, f"{where} must be {_describe(described)}, not {compact(value)[:40]}")


def join_path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def corrupt(source: str, what: str) -> IntegrityError:
    return IntegrityError(f"{source}: malformed slimbuild manifest: {what}", CORRUPT_HINT)


def validate_manifest(manifest: Any, source: str) -> None:
    """Raise IntegrityError unless ``manifest`` is a schema-valid manifest of a version this slimbuild reads."""
    if not isinstance(manifest, dict):
        raise corrupt(source, "the document must be an object")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise corrupt(source, "schema_version is missing or not an integer")
    if version not in _SCHEMAS:
        hint = "upgrade slimbuild to read it" if version > SCHEMA_VERSION else CORRUPT_HINT
        readable = ", ".join(str(v) for v in READABLE_VERSIONS)
        raise IntegrityError(
            f"{source}: unknown slimbuild manifest schema version {version} (this slimbuild reads {readable})", hint
        )
    _check(manifest, _SCHEMAS[version], "", source)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(data: bytes, source: str, what: str) -> Any:
    if len(data) > MAX_MANIFEST_BYTES:
        raise IntegrityError(
            f"{source}: {what} is larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB",
            "refuse it; slimbuild never writes one that large",
        )
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IntegrityError(f"{source}: {what} is not valid JSON: {detail}", CORRUPT_HINT) from None


def parse_manifest(data: bytes, source: str) -> dict[str, Any]:
    """Parse and validate manifest bytes; ``source`` names them in errors."""
    manifest = load_json(data, source, "slimbuild manifest")
    validate_manifest(manifest, source)
    result: dict[str, Any] = manifest
    return result


