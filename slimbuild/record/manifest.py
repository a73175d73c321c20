"""The reproducibility manifest: make, write (atomically), read, verify, diff, render, and ``docker save`` tars.

A manifest is a plain JSON-ready dict (schema below, ``SCHEMA_VERSION``). Its canonical bytes are
``json.dumps(sort_keys=True, indent=2, ensure_ascii=False) + "\\n"``; ``manifest_sha256`` hashes those bytes.

Where it lives:

* in the image, as the file ``MANIFEST_PATH_IN_IMAGE`` (canonical bytes) and as two labels:
  ``LABEL_MANIFEST`` (the compact JSON, so ``inspect`` of a local image needs no container run) and
  ``LABEL_MANIFEST_SHA`` (sha256 of the canonical bytes, checked on every read: H1);
* beside the project, written by ``write_manifest`` after the build.

The image's own copy is made *before* the build, so its ``image`` is ``null`` and ``smoke`` empty;
``with_image`` (optionally with ``smoke=``) and ``with_smoke`` fill them for the copy written after the build.

Volatile fields (``VOLATILE_FIELDS``), ignored by ``diff_manifests`` unless asked:

* ``image.id``: the classic builder stamps ``created`` (and history times) into the config, so two
  byte-identical builds get different ids;
* ``image.size_bytes``, ``image.added_bytes`` and ``image.layer_sizes``: what the engine reports depends
  on its storage (overlay2 counts unpacked bytes, the containerd image store counts compressed content);
* ``image.tags``: names given to the image (user tags, the git tag), not its content.

Everything else is expected to be identical across rebuilds of the same inputs (G1), including
``image.layer_diff_ids`` for the dependency and application layers (G4); layers written by ``RUN``
steps slimbuild does not clamp may differ, and ``diff_manifests`` reports each index separately.

Errors: a corrupt manifest (malformed JSON, wrong types, unknown keys, unknown schema version, more than
``MAX_MANIFEST_BYTES``, a label whose sha256 does not match) is ``IntegrityError`` (exit 5); an image or
file without one is ``NoManifest`` (exit 2); an image tar with a member escaping its root, or a device
node or FIFO in the outer tar, is ``PolicyViolation`` (exit 10, as ``context.check_archive``).
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import posixpath
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal

from slimbuild import __version__
from slimbuild.errors import ExitCode, IntegrityError, PolicyViolation, SlimbuildError, UsageError
from slimbuild.locking.target import Target
from slimbuild.models import Location
from slimbuild.paths import atomic_write
from slimbuild.redact import mask_url

SCHEMA_VERSION = 1
MANIFEST_PATH_IN_IMAGE = "/app/.slimbuild/manifest.json"  # travels with the app files
LABEL_MANIFEST_SHA = "io.slimbuild.manifest-sha256"
LABEL_MANIFEST = "io.slimbuild.manifest"

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
# docker-py sends build labels in the URL query string, URL-encoded (up to 3x), and the daemon's
# net/http server caps a request head at 1 MiB: larger manifests go in the file only, not the label.
MAX_LABEL_BYTES = 192 * 1024
# JSON members of a docker save tar (its manifest.json, image configs) kept in memory, in total.
_MAX_TAR_JSON_TOTAL = 64 * 1024 * 1024

VOLATILE_FIELDS = ("image.added_bytes", "image.id", "image.layer_sizes", "image.size_bytes", "image.tags")
FILE_KINDS = ("data", "notebook-script", "source")

FileKind = Literal["source", "data", "notebook-script"]

_CORRUPT_HINT = "the manifest is corrupt or was edited; rebuild the image with slimbuild build"
_CHUNK = 1 << 20


class NoManifest(SlimbuildError):
    """An image or file that carries no slimbuild manifest."""

    exit_code = ExitCode.USAGE
    kind = "no-manifest"


# --------------------------------------------------------------------------- making


@dataclass(frozen=True)
class ImageInfo:
    """What the engine says about the built image."""

    id: str
    layer_diff_ids: tuple[str, ...]
    size_bytes: int | None = None
    layer_sizes: tuple[int, ...] = ()
    added_bytes: int | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Change:
    """One difference between two manifests; ``None`` stands for an absent value."""

    path: str
    old: Any
    new: Any

    def render(self) -> str:
        """``path: old -> new`` with JSON values."""
        return f"{self.path}: {_compact(self.old)} -> {_compact(self.new)}"


def _sort_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _sort_keys(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_sort_keys(item) for item in value]
    return value


def _natural(text: str) -> list[tuple[int, str]]:
    """Sort key that orders ``a.py:9`` before ``a.py:30``."""
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", text)]


def _image_dict(image: ImageInfo | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(image, ImageInfo):
        image = {
            "added_bytes": image.added_bytes,
            "id": image.id,
            "layer_diff_ids": image.layer_diff_ids,
            "layer_sizes": image.layer_sizes,
            "size_bytes": image.size_bytes,
            "tags": image.tags,
        }
    return {
        "added_bytes": image.get("added_bytes"),
        "id": image.get("id"),
        "layer_diff_ids": list(image.get("layer_diff_ids", ())),
        "layer_sizes": list(image.get("layer_sizes", ())),
        "size_bytes": image.get("size_bytes"),
        "tags": sorted(set(image.get("tags", ()))),
    }


def _smoke_list(smoke: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Smoke runs in the order they ran; ``ok`` is derived from the exit code."""
    return [
        {"command": list(run.get("command", ())), "exit_code": run.get("exit_code"), "ok": run.get("exit_code") == 0}
        for run in smoke
    ]


def _target_dict(target: Target | Mapping[str, str]) -> dict[str, Any]:
    if isinstance(target, Target):
        return {"platform": target.describe(), "python": target.python_version}
    return dict(target)


def make_manifest(
    *,
    target: Target | Mapping[str, str],
    base_image: Mapping[str, Any],
    distributions: Iterable[Mapping[str, Any]],
    files: Iterable[Mapping[str, Any]],
    template: Mapping[str, str],
    source_date_epoch: int,
    lock_sha256: str,
    entrypoint: Mapping[str, Any] | None = None,
    declared_left_out: Iterable[str] = (),
    excluded_sensitive: Iterable[str] = (),
    git: Mapping[str, Any] | None = None,
    index_sources: Iterable[str] = (),
    unparsed: Iterable[str] = (),
    unresolved_dynamic: Iterable[Location | str] = (),
    smoke: Iterable[Mapping[str, Any]] = (),
    image: ImageInfo | Mapping[str, Any] | None = None,
    audit: Iterable[Mapping[str, Any]] | None = None,
    slimbuild_version: str = __version__,
) -> dict[str, Any]:
    """A schema-valid manifest from JSON-ready values: keys and lists sorted, URL credentials masked.

    ``size_bytes`` of a distribution and ``local_only`` of the base default to null and false; index
    sources keep pip's order; smoke runs keep the order they ran in.
    """
    manifest: dict[str, Any] = {
        "audit": None if audit is None else sorted((dict(v) for v in audit), key=lambda v: (v["name"], v["id"])),
        "base_image": {"local_only": False, **base_image},
        "declared_left_out": sorted(set(declared_left_out)),
        "distributions": sorted(
            (
                {
                    **d,
                    "hashes": sorted(set(d.get("hashes", ()))),
                    "required_by": sorted(set(d.get("required_by", ()))),
                    "size_bytes": d.get("size_bytes"),
                }
                for d in distributions
            ),
            key=lambda d: (str(d.get("name")), str(d.get("version"))),
        ),
        "entrypoint": None if entrypoint is None else {**entrypoint, "argv": list(entrypoint.get("argv", ()))},
        "excluded_sensitive": sorted(set(excluded_sensitive)),
        "files": sorted((dict(f) for f in files), key=lambda f: str(f.get("path"))),
        "git": None if git is None else dict(git),
        "image": None if image is None else _image_dict(image),
        "index_sources": list(dict.fromkeys(mask_url(url) for url in index_sources)),
        "lock_sha256": lock_sha256,
        "schema_version": SCHEMA_VERSION,
        "slimbuild_version": slimbuild_version,
        "smoke": _smoke_list(smoke),
        "source_date_epoch": source_date_epoch,
        "target": _target_dict(target),
        "template": dict(template),
        "unparsed": sorted(set(unparsed)),
        "unresolved_dynamic": sorted({str(loc) for loc in unresolved_dynamic}, key=_natural),
    }
    result: dict[str, Any] = _sort_keys(manifest)
    validate_manifest(result, "new manifest")
    return result


def with_image(
    manifest: Mapping[str, Any], image: ImageInfo | Mapping[str, Any], *, smoke: Iterable[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """A copy of the manifest with the built image (and, if given, the smoke runs) filled in."""
    updated = {**manifest, "image": _image_dict(image)}
    if smoke is not None:
        updated["smoke"] = _smoke_list(smoke)
    result: dict[str, Any] = _sort_keys(updated)
    validate_manifest(result, "updated manifest")
    return result


def with_smoke(manifest: Mapping[str, Any], smoke: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A copy of the manifest with the smoke runs (``command``, ``exit_code``) filled in."""
    result: dict[str, Any] = _sort_keys({**manifest, "smoke": _smoke_list(smoke)})
    validate_manifest(result, "updated manifest")
    return result


def image_info_from_inspect(inspect: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> ImageInfo:
    """ImageInfo from an inspect document (``Id``, ``RootFS.Layers``, ``Size``, ``RepoTags``); ``base``'s gives added bytes."""
    rootfs = inspect.get("RootFS") or {}
    layers = rootfs.get("Layers") if isinstance(rootfs, Mapping) else None
    size = _int_or_none(inspect.get("Size"))
    base_size = None if base is None else _int_or_none(base.get("Size"))
    tags = inspect.get("RepoTags")
    return ImageInfo(
        id=str(inspect.get("Id", "")),
        layer_diff_ids=tuple(str(x) for x in layers or ()),
        size_bytes=size,
        added_bytes=None if size is None or base_size is None else size - base_size,
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --------------------------------------------------------------------------- bytes and files


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The canonical bytes: sorted keys, two-space indent, UTF-8, one trailing newline."""
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def manifest_sha256(manifest: Mapping[str, Any]) -> str:
    """Hex sha256 of the canonical bytes (the value of ``LABEL_MANIFEST_SHA``)."""
    return hashlib.sha256(manifest_bytes(manifest)).hexdigest()


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def manifest_labels(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Image labels for the manifest: its sha256, and the compact JSON unless it exceeds ``MAX_LABEL_BYTES``."""
    labels = {LABEL_MANIFEST_SHA: manifest_sha256(manifest)}
    compact = _compact(manifest)
    if len(compact.encode("utf-8")) <= MAX_LABEL_BYTES:
        labels[LABEL_MANIFEST] = compact
    return labels


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    """Validate the manifest and write its canonical bytes atomically."""
    validate_manifest(manifest, str(path))
    atomic_write(path, manifest_bytes(manifest))


def read_manifest_file(path: Path) -> dict[str, Any]:
    """Read and validate a manifest file; at most ``MAX_MANIFEST_BYTES`` are read."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise NoManifest(f"{path}: no slimbuild manifest", "give the manifest.json written by slimbuild build") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read manifest: {exc.strerror or exc}", "check the path and its permissions") from None
    return parse_manifest(data, str(path))


# --------------------------------------------------------------------------- parsing and validation


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


_HEX64 = _Match(r"[0-9a-f]{64}", "64 lowercase hex digits")

# The whole schema, version 1. Every key is required; unknown keys are refused (bump SCHEMA_VERSION to add one).
_SCHEMA: dict[str, Any] = {
    # pip-audit's findings when the lock was audited (C12), else null
    "audit": _Nullable([{"fix_versions": [str], "id": str, "name": str, "version": str}]),
    "base_image": {"digest_or_id": str, "local_only": bool, "reference": str},
    "declared_left_out": [str],
    "distributions": [
        {"hashes": [str], "name": str, "required_by": [str], "size_bytes": _Nullable(int), "version": str}
    ],
    "entrypoint": _Nullable({"argv": [str], "name": str, "path": str}),
    "excluded_sensitive": [str],
    "files": [{"kind": _OneOf(*FILE_KINDS), "path": str, "sha256": _HEX64, "size": int}],
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
    "lock_sha256": _HEX64,
    "schema_version": int,
    "slimbuild_version": str,
    "smoke": [{"command": [str], "exit_code": int, "ok": bool}],
    "source_date_epoch": int,
    "target": {"platform": str, "python": str},
    "template": {"dockerfile_sha256": _HEX64, "name": str},
    "unparsed": [str],
    "unresolved_dynamic": [str],
}


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
            raise _corrupt(source, f"{where or 'the document'} must be an object")
        extra = sorted(set(value) - set(spec))
        if extra:
            raise _corrupt(source, f"unknown key {_join(where, extra[0])!r}")
        missing = sorted(set(spec) - set(value))
        if missing:
            raise _corrupt(source, f"missing key {_join(where, missing[0])!r}")
        for key, sub in spec.items():
            _check(value[key], sub, _join(where, key), source)
    elif isinstance(spec, list):
        if not isinstance(value, list):
            raise _corrupt(source, f"{where} must be a list")
        for index, item in enumerate(value):
            _check(item, spec[0], f"{where}[{index}]", source)
    elif not _conforms(value, spec):
        raise _corrupt(source, f"{where} must be {_describe(described)}, not {_compact(value)[:40]}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _corrupt(source: str, what: str) -> IntegrityError:
    return IntegrityError(f"{source}: malformed slimbuild manifest: {what}", _CORRUPT_HINT)


def validate_manifest(manifest: Any, source: str) -> None:
    """Raise IntegrityError unless ``manifest`` is a schema-valid manifest of ``SCHEMA_VERSION``."""
    if not isinstance(manifest, dict):
        raise _corrupt(source, "the document must be an object")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _corrupt(source, "schema_version is missing or not an integer")
    if version != SCHEMA_VERSION:
        hint = "upgrade slimbuild to read it" if version > SCHEMA_VERSION else _CORRUPT_HINT
        raise IntegrityError(
            f"{source}: unknown slimbuild manifest schema version {version} (this slimbuild reads {SCHEMA_VERSION})", hint
        )
    _check(manifest, _SCHEMA, "", source)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load_json(data: bytes, source: str, what: str) -> Any:
    if len(data) > MAX_MANIFEST_BYTES:
        raise IntegrityError(
            f"{source}: {what} is larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB",
            "refuse it; slimbuild never writes one that large",
        )
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IntegrityError(f"{source}: {what} is not valid JSON: {detail}", _CORRUPT_HINT) from None


def parse_manifest(data: bytes, source: str) -> dict[str, Any]:
    """Parse and validate manifest bytes; ``source`` names them in errors."""
    manifest = _load_json(data, source, "slimbuild manifest")
    validate_manifest(manifest, source)
    result: dict[str, Any] = manifest
    return result


# --------------------------------------------------------------------------- images


def _no_manifest(source: str) -> NoManifest:
    return NoManifest(
        f"{source}: no slimbuild manifest (not built by slimbuild?)",
        "inspect an image built by slimbuild build, or its docker save tar",
    )


def _labels(config: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("Config", "config"):
        inner = config.get(key)
        if isinstance(inner, Mapping):
            labels = inner.get("Labels")
            if isinstance(labels, Mapping):
                return labels
    return {}


def _source_of(config: Mapping[str, Any]) -> str:
    tags = config.get("RepoTags")
    if isinstance(tags, list) and tags and isinstance(tags[0], str):
        return tags[0]
    return str(config.get("Id") or "image")


def _expected_sha(labels: Mapping[str, Any], source: str) -> str | None:
    value = labels.get(LABEL_MANIFEST_SHA)
    if value is None:
        return None
    if not isinstance(value, str) or _HEX64.regex.fullmatch(value) is None:
        raise IntegrityError(f"{source}: label {LABEL_MANIFEST_SHA} is not a sha256: {str(value)[:80]!r}", _CORRUPT_HINT)
    return value


def manifest_from_image_config(inspect: Mapping[str, Any], *, source: str | None = None) -> dict[str, Any]:
    """The manifest in an image's labels (inspect document or image config), its sha256 checked (H1)."""
    source = source or _source_of(inspect)
    labels = _labels(inspect)
    expected = _expected_sha(labels, source)
    text = labels.get(LABEL_MANIFEST)
    if text is None:
        if expected is None:
            raise _no_manifest(source)
        raise NoManifest(
            f"{source}: the slimbuild manifest is too large for a label",
            "inspect the image's docker save tar (docker save IMAGE -o image.tar; slimbuild inspect image.tar)",
        )
    if expected is None:
        raise IntegrityError(f"{source}: label {LABEL_MANIFEST} has no {LABEL_MANIFEST_SHA} label to check it", _CORRUPT_HINT)
    if not isinstance(text, str):
        raise _corrupt(source, f"label {LABEL_MANIFEST} is not a string")
    manifest = parse_manifest(text.encode("utf-8"), f"{source} label {LABEL_MANIFEST}")
    _check_sha(manifest_sha256(manifest), expected, source)
    return manifest


def _check_sha(actual: str, expected: str, source: str) -> None:
    if actual != expected:
        raise IntegrityError(
            f"{source}: slimbuild manifest sha256 {actual} does not match label {LABEL_MANIFEST_SHA}={expected}",
            "the manifest was altered after the build; do not trust this image, rebuild it",
        )


# --------------------------------------------------------------------------- diff


# Lists of objects compared item by item under this key; lists whose order matters compared index by index.
_KEYED_LISTS = {"distributions": "name", "files": "path"}
_INDEXED_LISTS = ("image.layer_diff_ids", "image.layer_sizes")


def _diff(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            sub = _join(path, key)
            if key not in old or key not in new:
                out.append(Change(sub, old.get(key), new.get(key)))
            else:
                _diff(old[key], new[key], sub, out)
        return
    key_field = _KEYED_LISTS.get(path)
    if key_field and isinstance(old, list) and isinstance(new, list):
        olds = {str(item.get(key_field)): item for item in old if isinstance(item, dict)}
        news = {str(item.get(key_field)): item for item in new if isinstance(item, dict)}
        if len(olds) == len(old) and len(news) == len(new):
            for key in sorted(set(olds) | set(news)):
                _diff(olds.get(key), news.get(key), f"{path}[{key}]", out)
            return
    if path in _INDEXED_LISTS and isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new)):
            _diff(a, b, f"{path}[{index}]", out)
        return
    if type(old) is not type(new) or old != new:
        out.append(Change(path, old, new))


def _is_volatile(path: str) -> bool:
    return any(path == v or path.startswith((f"{v}.", f"{v}[")) for v in VOLATILE_FIELDS)


def diff_manifests(
    a: Mapping[str, Any], b: Mapping[str, Any], *, include_volatile: bool = False
) -> tuple[Change, ...]:
    """Differences from ``a`` to ``b``, sorted by path; ``VOLATILE_FIELDS`` are skipped unless asked for."""
    changes: list[Change] = []
    _diff(dict(a), dict(b), "", changes)
    kept = (c for c in changes if include_volatile or not _is_volatile(c.path))
    return tuple(sorted(kept, key=lambda c: c.path))


# --------------------------------------------------------------------------- rendering


def format_size(size: int | None) -> str:
    """A byte count in decimal units (``12.3 MB``), or ``?`` when unknown."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop always returns


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _epoch_text(epoch: int) -> str:
    stamp = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return f"{epoch} ({stamp.strftime('%Y-%m-%dT%H:%M:%SZ')})"


def render_inspect_text(manifest: Mapping[str, Any], *, declared_left_out: bool = True) -> str:
    """The manifest as human text: base, target, distributions by size, files, how it was built."""
    m = manifest
    base, target, template = m["base_image"], m["target"], m["template"]
    lines = [f"slimbuild manifest (schema {m['schema_version']}, written by slimbuild {m['slimbuild_version']})"]
    local = "  (local only, not pullable)" if base["local_only"] else ""
    lines.append(f"base image: {base['reference']}  {base['digest_or_id']}{local}")
    lines.append(f"target: Python {target['python']} on {target['platform']}")
    entry = m["entrypoint"]
    if entry is not None:
        lines.append(f"entrypoint: {entry['name']}: {entry['path']}  ({' '.join(entry['argv'])})")
    image = m["image"]
    if image is None:
        lines.append("image: not recorded (manifest written before the build)")
    else:
        added = "" if image["added_bytes"] is None else f" ({format_size(image['added_bytes'])} over the base)"
        lines.append(
            f"image: {image['id']}  {format_size(image['size_bytes'])}{added}, {len(image['layer_diff_ids'])} layers"
        )
        if image["tags"]:
            lines.append(f"  tags: {', '.join(image['tags'])}")
        lines.extend(f"  layer {i}: {diff_id}" for i, diff_id in enumerate(image["layer_diff_ids"]))
    dists = sorted(m["distributions"], key=lambda d: (-(d["size_bytes"] or -1), d["name"]))
    total = sum(d["size_bytes"] or 0 for d in dists)
    lines.append(f"distributions ({len(dists)}, {format_size(total)} installed):")
    lines.extend(
        _table([[d["name"], d["version"], format_size(d["size_bytes"]), ", ".join(d["required_by"])] for d in dists])
    )
    files = m["files"]
    lines.append(f"first-party files ({len(files)}, {format_size(sum(f['size'] for f in files))}):")
    lines.extend(_table([[f["path"], f["kind"], format_size(f["size"]), f["sha256"][:12]] for f in files]))
    lines.append("built with:")
    git = m["git"]
    git_text = "not a git checkout" if git is None else git["commit"] + (" (uncommitted changes)" if git["dirty"] else "")
    built = [
        ["template", template["name"]],
        ["Dockerfile sha256", template["dockerfile_sha256"]],
        ["SOURCE_DATE_EPOCH", _epoch_text(m["source_date_epoch"])],
        ["git", git_text],
        ["lock sha256", m["lock_sha256"]],
        ["index", ", ".join(m["index_sources"]) or "(none recorded)"],
    ]
    for run in m["smoke"]:
        verdict = "ok" if run["ok"] else "FAILED"
        built.append(["smoke run", f"{' '.join(run['command'])} -> exit {run['exit_code']} ({verdict})"])
    lines.extend(_table(built))
    if m["excluded_sensitive"]:
        lines.append(f"sensitive files kept out ({len(m['excluded_sensitive'])}): {', '.join(m['excluded_sensitive'])}")
    if declared_left_out and m["declared_left_out"]:
        left = m["declared_left_out"]
        lines.append(f"declared but left out of the image ({len(left)}): {', '.join(left)}")
    if m["unparsed"]:
        lines.append(f"unparsed files ({len(m['unparsed'])}): {', '.join(m['unparsed'])}")
    if m["unresolved_dynamic"]:
        where = m["unresolved_dynamic"]
        lines.append(f"dynamic imports not traced ({len(where)}): {', '.join(where)}")
    return "\n".join(lines) + "\n"


def render_inspect_json(manifest: Mapping[str, Any]) -> str:
    """The versioned JSON envelope for ``inspect --json``."""
    doc = {"kind": "inspect", "manifest": manifest, "version": 1}
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- docker save tars


@dataclass(frozen=True)
class LayerFile:
    """One member of a layer tar: normalised path, size, permission bits (with setuid/setgid), owner, type."""

    path: str
    size: int
    mode: int
    uid: int
    gid: int = 0
    type: str = "file"
    linkname: str = ""


@dataclass(frozen=True)
class LayerScan:
    """One layer of a saved image: its member name, sha256 of its bytes, diff id and files in tar order."""

    name: str
    digest: str
    diff_id: str
    size: int
    files: tuple[LayerFile, ...]
    compressed: bool = False


@dataclass(frozen=True)
class ImageScan:
    """A ``docker save`` tar read once: the image config, its layers and the manifest file found in them."""

    image_id: str
    config: dict[str, Any]
    repo_tags: tuple[str, ...]
    layers: tuple[LayerScan, ...]
    manifest_file: bytes | None = None

    def final_files(self) -> dict[str, LayerFile]:
        """The image's file system after stacking the layers (whiteouts applied), by path."""
        result: dict[str, LayerFile] = {}
        for layer in self.layers:
            for f in layer.files:
                if posixpath.basename(f.path) == ".wh..wh..opq":
                    _drop_below(result, posixpath.dirname(f.path), keep_root=True)
            for f in layer.files:
                parent, base = posixpath.split(f.path)
                if base == ".wh..wh..opq":
                    continue
                if base.startswith(".wh."):
                    _drop_below(result, posixpath.join(parent, base[4:]), keep_root=False)
                    continue
                result[f.path] = f
        return dict(sorted(result.items()))


def _drop_below(files: dict[str, LayerFile], root: str, *, keep_root: bool) -> None:
    prefix = f"{root}/" if root else ""
    for path in [p for p in files if p.startswith(prefix) or (not keep_root and p == root)]:
        del files[path]


class _ChunkReader(io.RawIOBase):
    """A readable raw stream over an iterable of byte chunks (``Engine.save``)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._view = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._view:
            try:
                self._view = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        target = memoryview(buffer).cast("B")
        n = min(len(target), len(self._view))
        target[:n] = self._view[:n]
        self._view = self._view[n:]
        return n


class _Hashing:
    """Reads from ``raw`` after replaying ``prefix``, hashing and counting every byte."""

    def __init__(self, raw: IO[bytes], prefix: bytes) -> None:
        self._raw = raw
        self._prefix = prefix
        self.sha = hashlib.sha256(prefix)
        self.count = len(prefix)

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            data = self._prefix if size < 0 else self._prefix[:size]
            self._prefix = self._prefix[len(data) :]
            return data
        data = self._raw.read(size)
        self.sha.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


_TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


def _safe_name(name: str, where: str) -> str:
    """The member name without ``./`` and trailing ``/``; PolicyViolation for ``..`` (and absolute outer names)."""
    if "\x00" in name or any(part == ".." for part in name.split("/")):
        raise PolicyViolation(f"{where}: member {name!r} escapes the archive root", "refuse this image tar")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    return "/".join(parts)


def _check_outer(member: tarfile.TarInfo) -> str:
    if member.name.startswith("/"):
        raise PolicyViolation(f"image tar: member {member.name!r} has an absolute path", "refuse this image tar")
    name = _safe_name(member.name, "image tar")
    if member.isdev() or member.isfifo():
        raise PolicyViolation(f"image tar: member {member.name!r} is a device or FIFO", "refuse this image tar")
    if member.issym() or member.islnk():
        base = posixpath.dirname(name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            raise PolicyViolation(
                f"image tar: member {member.name!r} links outside the archive: {member.linkname!r}", "refuse this image tar"
            )
    elif not (member.isfile() or member.isdir()):
        raise PolicyViolation(f"image tar: member {member.name!r} has an unsupported type", "refuse this image tar")
    return name


def _looks_like_tar(head: bytes) -> tuple[bool, bool]:
    """(is an archive, is compressed) from a member's first 512 bytes."""
    if head[:2] == b"\x1f\x8b":
        return True, True
    if len(head) == 512 and (head[257:262] == b"ustar" or head == bytes(512)):
        return True, False
    return False, False


def _scan_layer(reader: _Hashing, name: str) -> tuple[tuple[LayerFile, ...], bytes | None]:
    """The files of one layer tar (streamed) and the slimbuild manifest file if the layer holds one."""
    want = MANIFEST_PATH_IN_IMAGE.lstrip("/")
    files: list[LayerFile] = []
    found: bytes | None = None
    try:
        with tarfile.open(fileobj=reader, mode="r|*") as layer:  # type: ignore[call-overload]
            for member in layer:
                path = _safe_name(member.name, f"image tar layer {name}")
                if not path:
                    continue
                kind = _TYPES.get(member.type, "other")
                files.append(LayerFile(path, member.size, member.mode, member.uid, member.gid, kind, member.linkname))
                if path == want and member.isfile() and member.size <= MAX_MANIFEST_BYTES:
                    fh = layer.extractfile(member)
                    found = fh.read() if fh is not None else None
        reader.drain()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise IntegrityError(f"image tar: layer {name} is corrupt: {exc}", "save the image again") from None
    return tuple(files), found


@dataclass
class _Blob:
    digest: str
    size: int
    json: bytes | None = None
    files: tuple[LayerFile, ...] | None = None
    manifest_file: bytes | None = None
    compressed: bool = False


def _read_outer(tar: tarfile.TarFile) -> tuple[dict[str, _Blob], dict[str, str]]:
    blobs: dict[str, _Blob] = {}
    links: dict[str, str] = {}
    json_total = 0
    seen: set[str] = set()
    for member in tar:
        name = _check_outer(member)
        if name in seen:
            raise IntegrityError(f"image tar: member {name!r} appears twice", "refuse this image tar")
        seen.add(name)
        if member.issym():
            links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
            continue
        if member.islnk():
            links[name] = _safe_name(member.linkname, "image tar")
            continue
        if not member.isfile():
            continue
        fh = tar.extractfile(member)
        if fh is None:  # pragma: no cover - regular files always have content
            continue
        head = fh.read(512)
        reader = _Hashing(fh, head)
        is_tar, compressed = _looks_like_tar(head)
        blob = _Blob("", 0, compressed=compressed)
        if is_tar:
            blob.files, blob.manifest_file = _scan_layer(reader, name)
        elif head.lstrip()[:1] in (b"{", b"[") and member.size <= MAX_MANIFEST_BYTES:
            json_total += member.size
            if json_total > _MAX_TAR_JSON_TOTAL:
                raise IntegrityError("image tar: too much JSON metadata", "refuse this image tar")
            blob.json = head + fh.read()
            reader = _Hashing(io.BytesIO(), blob.json)
        else:
            reader.drain()
        blob.digest = "sha256:" + reader.sha.hexdigest()
        blob.size = reader.count
        blobs[name] = blob
    return blobs, links


def _resolve(name: str, blobs: dict[str, _Blob], links: dict[str, str], what: str) -> _Blob:
    current = _safe_name(name, "image tar manifest.json")
    for _ in range(40):
        if current in blobs:
            return blobs[current]
        if current not in links:
            break
        current = links[current]
    raise IntegrityError(f"image tar: {what} {name!r} is missing", "save the image again")


def _named_digest(name: str) -> str | None:
    match = re.search(r"([0-9a-f]{64})(?:\.json)?$", name)
    return f"sha256:{match[1]}" if match else None


def scan_image_tar(stream: Iterable[bytes] | BinaryIO) -> ImageScan:
    """Read a ``docker save`` tar (legacy or OCI layout, optionally gzipped) in one streaming pass."""
    fileobj: IO[bytes]
    if isinstance(stream, (bytes, bytearray)):
        fileobj = io.BytesIO(stream)
    elif hasattr(stream, "read"):
        fileobj = stream  # type: ignore[assignment]
    else:
        fileobj = io.BufferedReader(_ChunkReader(stream), _CHUNK)
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
            blobs, links = _read_outer(tar)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise IntegrityError(f"image tar is corrupt: {exc}", "save the image again (docker save IMAGE -o image.tar)") from None
    index = blobs.get("manifest.json")
    if index is None or index.json is None:
        raise IntegrityError("image tar: no manifest.json (not a docker save tar?)", "save the image with docker save")
    entries = _load_json(index.json, "image tar", "manifest.json")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise IntegrityError("image tar: manifest.json is not a list of images", "save the image again")
    if len(entries) != 1:
        raise UsageError(f"image tar holds {len(entries)} images", "save one image per tar")
    entry = entries[0]
    config_name, layer_names = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layer_names, list) or not all(isinstance(x, str) for x in layer_names):
        raise IntegrityError("image tar: manifest.json lacks Config or Layers", "save the image again")
    config_blob = _resolve(config_name, blobs, links, "image config")
    if config_blob.json is None:
        raise IntegrityError(f"image tar: image config {config_name!r} is not JSON", "save the image again")
    named = _named_digest(config_name)
    if named is not None and named != config_blob.digest:
        raise IntegrityError(f"image tar: image config {config_name!r} has sha256 {config_blob.digest}", "save the image again")
    config = _load_json(config_blob.json, "image tar", "image config")
    if not isinstance(config, dict):
        raise IntegrityError("image tar: image config is not an object", "save the image again")
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layer_names):
        raise IntegrityError("image tar: image config rootfs.diff_ids does not match the layers", "save the image again")
    layers = []
    found: bytes | None = None
    for layer_name, diff_id in zip(layer_names, diff_ids):
        blob = _resolve(layer_name, blobs, links, "layer")
        if blob.files is None:
            raise IntegrityError(f"image tar: layer {layer_name!r} is not a tar", "save the image again")
        named = _named_digest(layer_name) if layer_name.startswith("blobs/") else None
        expected = diff_id if not blob.compressed else named
        if (expected is not None and blob.digest != expected) or (named is not None and blob.digest != named):
            raise IntegrityError(
                f"image tar: layer {layer_name!r} has sha256 {blob.digest}, expected {expected or named}",
                "the image tar was altered; save the image again",
            )
        layers.append(LayerScan(layer_name, blob.digest, str(diff_id), blob.size, blob.files, blob.compressed))
        if blob.manifest_file is not None:
            found = blob.manifest_file
    tags = entry.get("RepoTags") or []
    return ImageScan(
        image_id=config_blob.digest,
        config=config,
        repo_tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        layers=tuple(layers),
        manifest_file=found,
    )


def image_info_from_scan(scan: ImageScan) -> ImageInfo:
    """ImageInfo from a scanned image tar (layer sizes are the saved layer tars' sizes)."""
    sizes = tuple(layer.size for layer in scan.layers)
    return ImageInfo(scan.image_id, tuple(layer.diff_id for layer in scan.layers), sum(sizes), sizes)


def manifest_from_scan(scan: ImageScan, *, source: str = "image tar") -> dict[str, Any]:
    """The build-time manifest of a scanned image: from its label, else from its manifest file; sha256 checked."""
    labels = _labels(scan.config)
    file_manifest = None
    if scan.manifest_file is not None:
        file_manifest = parse_manifest(scan.manifest_file, f"{source}:{MANIFEST_PATH_IN_IMAGE}")
    if LABEL_MANIFEST not in labels and file_manifest is not None:
        expected = _expected_sha(labels, source)
        if expected is None:
            raise IntegrityError(f"{source}: {MANIFEST_PATH_IN_IMAGE} has no {LABEL_MANIFEST_SHA} label", _CORRUPT_HINT)
        _check_sha(hashlib.sha256(scan.manifest_file or b"").hexdigest(), expected, source)
        return file_manifest
    manifest = manifest_from_image_config(scan.config, source=source)
    if scan.manifest_file is not None:
        _check_sha(hashlib.sha256(scan.manifest_file).hexdigest(), manifest_sha256(manifest), source)
    return manifest


def read_manifest_from_image_tar(stream: Iterable[bytes] | BinaryIO, *, source: str = "image tar") -> dict[str, Any]:
    """The manifest of a ``docker save`` tar, verified, with ``image`` filled from the tar."""
    scan = scan_image_tar(stream)
    return with_image(manifest_from_scan(scan, source=source), image_info_from_scan(scan))
