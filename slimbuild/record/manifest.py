"""The reproducibility manifest: make, write (atomically), read, verify, diff (schema.py: its schema; image_tar.py: tars).

A manifest is a plain JSON-ready dict (schema in schema.py, ``SCHEMA_VERSION``). Its canonical bytes are
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
* ``image.tags``: names given to the image (user tags, the git tag), not its content;
* ``pushed`` (``build --push``): where the image was published and the registry's digest for it.

Everything else is expected to be identical across rebuilds of the same inputs (G1), including
``image.layer_diff_ids`` for the dependency and application layers (G4); layers written by ``RUN``
steps slimbuild does not clamp may differ, and ``diff_manifests`` reports each index separately.

Errors: a corrupt manifest (malformed JSON, wrong types, unknown keys, unknown schema version, more than
``MAX_MANIFEST_BYTES``, a label whose sha256 does not match) is ``IntegrityError`` (exit 5); an image or
file without one is ``NoManifest`` (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from slimbuild import __version__
from slimbuild.errors import ExitCode, IntegrityError, SlimbuildError, UsageError
from slimbuild.locking.target import Target
from slimbuild.models import Location
from slimbuild.paths import atomic_write
from slimbuild.record.schema import (
    CORRUPT_HINT,
    FILE_KINDS,
    FILE_SHA_KEY,
    HEX64,
    MAX_MANIFEST_BYTES,
    SCHEMA_VERSION,
    compact,
    corrupt,
    join_path,
    load_json,
    parse_manifest,
    validate_manifest,
)
from slimbuild.redact import mask_url, redact

__all__ = [
    "CORRUPT_HINT", "FILE_KINDS", "MAX_MANIFEST_BYTES", "SCHEMA_VERSION", "load_json", "parse_manifest",
    "validate_manifest",
]  # fmt: skip  (the schema lives in schema.py; these names are read from here too)

MANIFEST_PATH_IN_IMAGE = "/app/.slimbuild/manifest.json"  # travels with the app files
LABEL_MANIFEST_SHA = "io.slimbuild.manifest-sha256"
LABEL_MANIFEST = "io.slimbuild.manifest"

# docker-py sends build labels in the URL query string, URL-encoded (up to 3x), and the daemon's
# net/http server caps a request head at 1 MiB: larger manifests go in the file only, not the label.
MAX_LABEL_BYTES = 192 * 1024

VOLATILE_FIELDS = ("image.added_bytes", "image.id", "image.layer_sizes", "image.size_bytes", "image.tags", "pushed")

FileKind = Literal["source", "data", "notebook-script"]


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
        return f"{self.path}: {compact(self.old)} -> {compact(self.new)}"


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


def _distribution_list(distributions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Distributions sorted by name and version, their hashes and dependents sorted, sizes defaulted to null."""
    return sorted(
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
    )


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
    pins: Iterable[Mapping[str, str]] = (),
    inputs: Iterable[Mapping[str, Any]] = (),
    pythonpath: Sequence[str] = (),
    sbom: str = "",
    system_packages: Iterable[Mapping[str, str]] = (),
    traced_data: Iterable[Mapping[str, Any]] | None = None,
    slimbuild_version: str = __version__,
) -> dict[str, Any]:
    """A schema-valid manifest from JSON-ready values: keys and lists sorted, URL credentials masked.

    ``size_bytes`` of a distribution and ``local_only`` of the base default to null and false; index
    sources keep pip's order; smoke runs keep the order they ran in. ``traced_data`` (None: the project has no
    trace, and the key is absent) is sorted by path.
    """
    manifest: dict[str, Any] = {
        "audit": None if audit is None else sorted((dict(v) for v in audit), key=lambda v: (v["name"], v["id"])),
        "base_image": {"local_only": False, **base_image},
        "declared_left_out": sorted(set(declared_left_out)),
        "distributions": _distribution_list(distributions),
        "entrypoint": None if entrypoint is None else {**entrypoint, "argv": list(entrypoint.get("argv", ()))},
        "excluded_sensitive": sorted(set(excluded_sensitive)),
        "files": sorted((dict(f) for f in files), key=lambda f: str(f.get("path"))),
        "git": None if git is None else dict(git),
        "image": None if image is None else _image_dict(image),
        "index_sources": list(dict.fromkeys(mask_url(url) for url in index_sources)),
        "inputs": [dict(i) for i in inputs],  # in the configuration's order (record/data.py)
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
    manifest.update(_optional_keys(pins, pythonpath, system_packages, traced_data))
    manifest.update({"sbom": sbom} if sbom else {})  # optional: where build --sbom wrote it (verify rebuilds with it)
    result: dict[str, Any] = _sort_keys(manifest)
    validate_manifest(result, "new manifest")
    return result


def _optional_keys(
    pins: Iterable[Mapping[str, str]],
    pythonpath: Sequence[str],
    system_packages: Iterable[Mapping[str, str]],
    traced_data: Iterable[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """The optional top-level keys that have a value (absent otherwise: older manifests read the same)."""
    out: dict[str, Any] = {}
    pin_list = sorted((dict(p) for p in pins), key=lambda p: (p["name"], p["version"], p["source"]))
    if pin_list:  # where each pin came from; absent when nothing was pinned
        out["pins"] = pin_list
    if pythonpath:  # the image's PYTHONPATH, recorded when [tool.slimbuild] pythonpath sets it
        out["pythonpath"] = list(pythonpath)
    packages = sorted((dict(p) for p in system_packages), key=lambda p: p["name"])
    if packages:  # the Debian packages system-packages installed (name, version, sha256 of the .deb)
        out["system_packages"] = packages
    if traced_data is not None:  # the data files the traced runs opened (record/data.py): with a trace only, even none
        out["traced_data"] = sorted((dict(r) for r in traced_data), key=lambda r: str(r["path"]))
    return out


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


def with_pushed(manifest: Mapping[str, Any], pushed: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    """A copy of the manifest with ``pushed``: each ref pushed and its registry's manifest digest, sorted."""
    records = sorted(
        ({"digest": p["digest"], "reference": p["reference"]} for p in pushed), key=lambda p: (p["reference"], p["digest"])
    )
    result: dict[str, Any] = _sort_keys({**manifest, "pushed": records})
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
    """The canonical bytes: sorted keys, two-space indent, UTF-8, one trailing newline; URL credentials masked (B16)."""
    return (json.dumps(redact(manifest), sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def manifest_sha256(manifest: Mapping[str, Any]) -> str:
    """Hex sha256 of the canonical bytes (the value of ``LABEL_MANIFEST_SHA``)."""
    return hashlib.sha256(manifest_bytes(manifest)).hexdigest()


def manifest_labels(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Image labels for the manifest: its sha256, and the compact JSON unless it exceeds ``MAX_LABEL_BYTES``."""
    labels = {LABEL_MANIFEST_SHA: manifest_sha256(manifest)}
    text = compact(manifest)
    if len(text.encode("utf-8")) <= MAX_LABEL_BYTES:
        labels[LABEL_MANIFEST] = text
    return labels


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    """Validate the manifest and write its canonical bytes atomically, with its own sha256 (``FILE_SHA_KEY``)."""
    validate_manifest(manifest, str(path))
    plain = {k: v for k, v in manifest.items() if k != FILE_SHA_KEY}
    atomic_write(path, manifest_bytes({**plain, FILE_SHA_KEY: manifest_sha256(plain)}))


def read_manifest_file(path: Path) -> dict[str, Any]:
    """Read and validate a manifest file; at most ``MAX_MANIFEST_BYTES`` are read."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise NoManifest(f"{path}: no slimbuild manifest", "give the manifest.json written by slimbuild build") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read manifest: {exc.strerror or exc}", "check the path and its permissions") from None
    return parse_manifest_file(data, str(path))


def parse_manifest_file(data: bytes, source: str) -> dict[str, Any]:
    """A manifest file's bytes parsed and validated; its ``FILE_SHA_KEY``, where it has one, checked and dropped (H6)."""
    doc = load_json(data, source, "slimbuild manifest")
    if isinstance(doc, dict) and FILE_SHA_KEY in doc:
        carried = doc.pop(FILE_SHA_KEY)
        if not isinstance(carried, str) or HEX64.regex.fullmatch(carried) is None:
            raise corrupt(source, f"{FILE_SHA_KEY} must be {HEX64.text}")
        actual = manifest_sha256(doc)
        if actual != carried:
            raise IntegrityError(
                f"{source}: slimbuild manifest content sha256 {actual} does not match the {FILE_SHA_KEY} it carries, {carried}",
                "the manifest file was edited after slimbuild wrote it; do not trust it, take the image's own (inspect IMAGE)",
            )
    validate_manifest(doc, source)
    result: dict[str, Any] = doc
    return result


# --------------------------------------------------------------------------- images


def _no_manifest(source: str) -> NoManifest:
    return NoManifest(
        f"{source}: no slimbuild manifest (not built by slimbuild?)",
        "inspect an image built by slimbuild build, or its docker save tar",
    )


def image_labels(config: Mapping[str, Any]) -> Mapping[str, Any]:
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


def expected_sha(labels: Mapping[str, Any], source: str) -> str | None:
    value = labels.get(LABEL_MANIFEST_SHA)
    if value is None:
        return None
    if not isinstance(value, str) or HEX64.regex.fullmatch(value) is None:
        raise IntegrityError(f"{source}: label {LABEL_MANIFEST_SHA} is not a sha256: {str(value)[:80]!r}", CORRUPT_HINT)
    return value


def manifest_from_image_config(inspect: Mapping[str, Any], *, source: str | None = None) -> dict[str, Any]:
    """The manifest in an image's labels (inspect document or image config), its sha256 checked (H1)."""
    source = source or _source_of(inspect)
    labels = image_labels(inspect)
    expected = expected_sha(labels, source)
    text = labels.get(LABEL_MANIFEST)
    if text is None:
        if expected is None:
            raise _no_manifest(source)
        raise NoManifest(
            f"{source}: the slimbuild manifest is too large for a label",
            "inspect the image's docker save tar (docker save IMAGE -o image.tar; slimbuild inspect image.tar)",
        )
    if expected is None:
        raise IntegrityError(f"{source}: label {LABEL_MANIFEST} has no {LABEL_MANIFEST_SHA} label to check it", CORRUPT_HINT)
    if not isinstance(text, str):
        raise corrupt(source, f"label {LABEL_MANIFEST} is not a string")
    manifest = parse_manifest(text.encode("utf-8"), f"{source} label {LABEL_MANIFEST}")
    check_sha(manifest_sha256(manifest), expected, source)
    return manifest


def check_sha(actual: str, expected: str, source: str) -> None:
    if actual != expected:
        raise IntegrityError(
            f"{source}: slimbuild manifest sha256 {actual} does not match label {LABEL_MANIFEST_SHA}={expected}",
            "the manifest was altered after the build; do not trust this image, rebuild it",
        )


# --------------------------------------------------------------------------- diff


# Lists of objects compared item by item under this key; lists whose order matters compared index by index.
_KEYED_LISTS = {"distributions": "name", "files": "path", "pins": "name", "traced_data": "path"}
_INDEXED_LISTS = ("image.layer_diff_ids", "image.layer_sizes")


def _diff(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            sub = join_path(path, key)
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
