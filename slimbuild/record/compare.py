"""``slimbuild diff A B``: what differs between two images, saved tars or manifests, in any mix (pure).

Each side is a ``Side``: the manifest read from it (pipeline/inspecting.py reads it the way ``inspect``
does, labels and content hashes checked) and, for an image or a tar, the sizes of its layers measured on
the image itself. ``compare`` sorts the differences into what a reader asks first:

* distributions added, removed or changed (version, or the same version with other hashes);
* the base image changed (reference, digest or id; ``same_tag`` when only the digest moved under one tag);
* first-party and data files added, removed or changed, by the sha256 of the manifests' ``files``;
* the data inputs (``inputs``: record/data.py) added, removed or changed;
* the data files the traced runs opened (``traced_data``) added, removed, changed (another sha256 or size) or gone
  (``missing``); whether the image includes one is reported by the files above, or as ``other``;
* the size of each layer and in total, with the difference: from the two images' own layer sizes when
  both sides are images or tars (measured the same way on both), else from the manifests'
  ``image.layer_sizes`` and ``image.size_bytes``;
* every other difference of ``diff_manifests`` (lock, template, layer diff ids, ...), as ``Change``s.

Sizes are volatile (the engine's storage decides them): they are shown, and count as a difference only
with ``include_volatile`` (``--all``), like the other ``VOLATILE_FIELDS``. The smoke runs, the index sources and the
pushed digests are compared only between two manifest files: an image (or its tar) carries the manifest made before
its smoke run, without the indexes used or its own registry digest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slimbuild.image.normalize import makes_layer
from slimbuild.record.manifest import Change, diff_manifests


def _covered(path: str) -> bool:
    """Whether a path of diff_manifests is one the sections below report (the rest is reported as ``other``)."""
    head = path.split(".", 1)[0].split("[", 1)[0]
    if head in ("base_image", "inputs"):
        return True
    if path.startswith("traced_data["):
        return path.endswith(("]", "].sha256", "].size", "].missing"))
    if path.startswith("files["):
        return path.endswith(("]", "].sha256", "].size", "].kind"))
    if path.startswith("distributions["):
        return path.endswith(("]", "].version", "].hashes"))
    return path.startswith(("image.layer_sizes", "image.size_bytes"))


@dataclass(frozen=True)
class Side:
    """One side of a diff: where it came from, its manifest, and its layers' sizes when it is an image or tar."""

    source: str
    form: str  # "image", "registry", "tar" or "manifest"
    manifest: Mapping[str, Any]
    layer_sizes: tuple[int, ...] | None = None
    # how layer_sizes were measured: "engine" (unpacked bytes), "tar" (layer tar bytes), "registry" (compressed blobs)
    size_measure: str = ""


@dataclass(frozen=True)
class DistChange:
    """A distribution added (``old`` None), removed (``new`` None) or changed (version, or hashes only)."""

    name: str
    old: str | None
    new: str | None
    hashes_changed: bool = False


@dataclass(frozen=True)
class BaseChange:
    """The base image of both sides: reference and digest (or local image id)."""

    old_reference: str
    old_digest: str
    new_reference: str
    new_digest: str

    @property
    def same_tag(self) -> bool:
        """Whether the base moved under one name:tag (only its digest or id changed)."""
        return _name(self.old_reference) == _name(self.new_reference) != "" and self.old_digest != self.new_digest


@dataclass(frozen=True)
class FileChange:
    """A first-party or data file added (``old_sha256`` None), removed (``new_sha256`` None) or changed."""

    path: str
    kind: str
    old_sha256: str | None
    new_sha256: str | None


@dataclass(frozen=True)
class InputChange:
    """A data input (``kind``, ``ref``) added, removed, or with another digest or sha256."""

    kind: str
    ref: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None


@dataclass(frozen=True)
class TracedChange:
    """A data file the traced runs opened: added (``old`` None), removed (``new`` None), or with another sha256, size
    or ``missing`` flag; each side its ``traced_data`` record."""

    path: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None


@dataclass(frozen=True)
class LayerSize:
    index: int
    old: int | None
    new: int | None

    @property
    def difference(self) -> int | None:
        return None if self.old is None or self.new is None else self.new - self.old


@dataclass(frozen=True)
class Sizes:
    """Layer sizes and totals of both sides; ``source`` is ``images`` or ``manifests``."""

    source: str
    measure: str
    layers: tuple[LayerSize, ...]
    old_total: int | None
    new_total: int | None

    @property
    def difference(self) -> int | None:
        return None if self.old_total is None or self.new_total is None else self.new_total - self.old_total

    @property
    def changed(self) -> bool:
        return self.old_total != self.new_total or any(layer.old != layer.new for layer in self.layers)


@dataclass(frozen=True)
class Comparison:
    """Everything ``diff`` reports about two sides."""

    old: Side
    new: Side
    distributions: tuple[DistChange, ...]
    base: BaseChange | None
    files: tuple[FileChange, ...]
    inputs: tuple[InputChange, ...]
    sizes: Sizes
    other: tuple[Change, ...]
    include_volatile: bool = False
    traced_data: tuple[TracedChange, ...] = ()

    @property
    def differs(self) -> bool:
        """Whether the two differ (sizes only with ``include_volatile``)."""
        found = self.distributions or self.base or self.files or self.inputs or self.traced_data or self.other
        return bool(found) or (self.include_volatile and self.sizes.changed)


def _name(reference: str) -> str:
    """``name:tag`` of a reference (``name:tag@sha256:...``); '' for a bare digest or image id."""
    name = reference.split("@", 1)[0]
    return "" if name.startswith("sha256:") else name


def _dists(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[DistChange, ...]:
    a = {str(d["name"]): d for d in old.get("distributions", ())}
    b = {str(d["name"]): d for d in new.get("distributions", ())}
    out = []
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        if x is None or y is None:
            out.append(DistChange(name, None if x is None else str(x["version"]), None if y is None else str(y["version"])))
        elif x["version"] != y["version"] or sorted(x.get("hashes", ())) != sorted(y.get("hashes", ())):
            out.append(DistChange(name, str(x["version"]), str(y["version"]), x["version"] == y["version"]))
    return tuple(out)


def _base(old: Mapping[str, Any], new: Mapping[str, Any]) -> BaseChange | None:
    a, b = old.get("base_image") or {}, new.get("base_image") or {}
    if a == b:
        return None
    return BaseChange(str(a.get("reference", "")), str(a.get("digest_or_id", "")), str(b.get("reference", "")),
                      str(b.get("digest_or_id", "")))  # fmt: skip


def _files(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[FileChange, ...]:
    a = {str(f["path"]): f for f in old.get("files", ())}
    b = {str(f["path"]): f for f in new.get("files", ())}
    out = []
    for path in sorted(set(a) | set(b)):
        x, y = a.get(path), b.get(path)
        if x is not None and y is not None and x.get("sha256") == y.get("sha256") and x.get("kind") == y.get("kind"):
            continue
        kind = str((y or x or {}).get("kind", ""))
        out.append(FileChange(path, kind, None if x is None else str(x["sha256"]), None if y is None else str(y["sha256"])))
    return tuple(out)


def _inputs(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[InputChange, ...]:
    a = {(str(i["kind"]), str(i["ref"])): i for i in old.get("inputs", ())}
    b = {(str(i["kind"]), str(i["ref"])): i for i in new.get("inputs", ())}
    return tuple(InputChange(kind, ref, a.get((kind, ref)), b.get((kind, ref)))
                 for kind, ref in sorted(set(a) | set(b)) if a.get((kind, ref)) != b.get((kind, ref)))  # fmt: skip


_TRACED_STATE = ("missing", "sha256", "size")


def _traced(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[TracedChange, ...]:
    """The traced data files of either side (none recorded: a manifest made without a trace, or before the field)."""
    a = {str(r["path"]): r for r in old.get("traced_data") or ()}
    b = {str(r["path"]): r for r in new.get("traced_data") or ()}
    out = []
    for path in sorted(set(a) | set(b)):
        x, y = a.get(path), b.get(path)
        if x is None or y is None or any(x.get(k) != y.get(k) for k in _TRACED_STATE):
            out.append(TracedChange(path, x, y))
    return tuple(out)


def _recorded(side: Side) -> tuple[tuple[int, ...], int | None]:
    image = side.manifest.get("image") or {}
    total = image.get("size_bytes")
    return tuple(int(s) for s in image.get("layer_sizes", ())), total if isinstance(total, int) else None


def _sizes(old: Side, new: Side) -> Sizes:
    a_total: int | None
    b_total: int | None
    if old.layer_sizes is not None and new.layer_sizes is not None and old.size_measure == new.size_measure:
        a, b = old.layer_sizes, new.layer_sizes
        source, measure, a_total, b_total = "images", old.size_measure, sum(a), sum(b)
    else:
        (a, a_total), (b, b_total) = _recorded(old), _recorded(new)
        source, measure = "manifests", "as recorded"
    layers = tuple(
        LayerSize(i, a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(max(len(a), len(b)))
    )
    return Sizes(source, measure, layers, a_total, b_total)


def _with_inputs(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A version 1 manifest (no ``inputs``) compared as one with none."""
    return {"inputs": [], **manifest}


# Fields only the manifest beside the project holds: the image's own copy is made before the smoke run, and leaves
# out the indexes used (an index or mirror must not change the image) and the registry digests (it cannot hold its own).
_PROJECT_ONLY = ("smoke", "index_sources", "pushed", "pruned", "trace_in_image")


def _project_only(path: str) -> bool:
    return any(path == key or path.startswith((f"{key}[", f"{key}.")) for key in _PROJECT_ONLY)


def compare(old: Side, new: Side, *, include_volatile: bool = False) -> Comparison:
    """What changed from ``old`` to ``new``."""
    a, b = _with_inputs(old.manifest), _with_inputs(new.manifest)
    both_files = old.form == new.form == "manifest"
    other = tuple(
        c
        for c in diff_manifests(a, b, include_volatile=include_volatile)
        if not _covered(c.path) and (both_files or not _project_only(c.path))
    )
    return Comparison(
        old, new, _dists(a, b), _base(a, b), _files(a, b), _inputs(a, b), _sizes(old, new), other, include_volatile,
        _traced(a, b),
    )


def layer_sizes_from_history(history: Sequence[Mapping[str, Any]], layer_count: int) -> tuple[int, ...] | None:
    """Each layer's size from the engine's history (newest first), oldest layer first; None when they do not line up.

    An entry made a layer when its ``CreatedBy`` is a RUN, COPY or ADD (the classic builder's form), else when
    its size is not zero; the sizes are used only when the entries that made layers are as many as the layers.
    """
    oldest_first = list(reversed(history))
    by_instruction = tuple(int(h.get("Size") or 0) for h in oldest_first if makes_layer(str(h.get("CreatedBy") or "")))
    if len(by_instruction) == layer_count:
        return by_instruction
    by_size = tuple(int(h.get("Size") or 0) for h in oldest_first if int(h.get("Size") or 0) > 0)
    return by_size if len(by_size) == layer_count else None
