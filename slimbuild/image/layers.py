"""The venv's layers: one per distribution (or per stable group of them), keyed by their wheels; pure.

Stages of a pipeline (a project with several entrypoints), and projects on the same base, then share the
layer of every distribution they have in common, byte for byte: stored once by the engine when the layers
below are the same, pushed once to a registry. The builder stage stages each unit's files under
``/stage/<key>/`` (image/stage_venv.py, from the layout file this module writes) and the deps stage copies
them one ``COPY`` each, then the venv's skeleton (``/stage/skel/``: pyvenv.cfg, bin/python, passwd).

The engine limits how many layers an image stacks: overlay2 mounts at most 128 lower directories (moby's
``maxDepth``), and on docker 20.10's classic builder every step, a ``LABEL`` or ``USER`` too, runs a container on
the image below it, which fails with "max depth exceeded" once that image has 125 layers (measured): an image
whose Dockerfile ends with a config step has at most ``ENGINE_LAYER_LIMIT`` (124) layers, the base's included.
So the venv gets at most ``MAX_LAYERS`` layers, fewer when the base's own layers (read from the engine once per
build) and the template's other layer steps (``layer_steps``, from the rendered Dockerfile) leave less room
(``layer_budget``). Past the budget the largest ``budget - buckets`` keep a layer each and the rest share the
buckets by the hash of their name, so a build never fails on the count and a distribution's group does not
depend on the lock's order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging.utils import canonicalize_name, parse_wheel_filename

from slimbuild.config import VENV_LAYERS
from slimbuild.errors import ConfigError
from slimbuild.image.dockerfile import parse_dockerfile

# Distribution layers at most, when the base leaves room: start-up mounts every layer, so no more than this.
MAX_LAYERS = 64
BUCKETS = 16  # the groups the smaller distributions share beyond the budget (fewer for a small budget)
# The layers of a built image at most (base included): docker 20.10, overlay2, classic builder (see above).
ENGINE_LAYER_LIMIT = 124
# The steps that may add a layer (WORKDIR only when it creates the directory: counted, to stay on the safe side).
_LAYER_STEPS = frozenset({"RUN", "COPY", "ADD", "WORKDIR"})
SKELETON_KEY = "skel"
LAYOUT_VERSION = "slimbuild-layers v1"
_KEY = re.compile(r"[0-9a-f]{16}")
_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class WheelInfo:
    """One distribution of the lock as the layout sees it: canonical name, its file's sha256 and size."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class LayerUnit:
    """One layer of the venv: the distributions it holds (sorted) and its key (from their wheels' hashes)."""

    key: str
    names: tuple[str, ...]


def layered(setting: str, entrypoints: int) -> bool:
    """Whether the venv gets one layer per distribution: ``venv-layers``, or by default for a pipeline."""
    if setting and setting not in VENV_LAYERS:
        raise ConfigError(
            f"venv-layers = {setting!r} is not one of {', '.join(VENV_LAYERS)}",
            hint='venv-layers = "distribution" (one layer per distribution, shared by stages) or "single"',
        )
    return (setting or ("distribution" if entrypoints > 1 else "single")) == "distribution"


def wheel_name(filename: str) -> str:
    """The canonical distribution name of a wheel's (or an sdist's) file name."""
    if filename.endswith(".whl"):
        return str(parse_wheel_filename(filename)[0])
    return canonicalize_name(filename.rsplit("-", 1)[0])


def unit_key(wheels: Iterable[WheelInfo]) -> str:
    """The key of a unit: its wheels' sha256, sorted; never the other distributions of the lock."""
    h = hashlib.sha256(b"slimbuild layer v1\0")
    for sha in sorted(w.sha256 for w in wheels):
        h.update(sha.encode() + b"\0")
    return h.hexdigest()[:16]


def _bucket(name: str, buckets: int) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % buckets


def layer_steps(dockerfile: str) -> tuple[str, int]:
    """The image the final stage's chain starts from, and the layer steps along that chain (stage by stage)."""
    stages: list[tuple[str, str, int]] = []  # (name, parent, steps)
    for ins in parse_dockerfile(dockerfile):
        if ins.keyword == "FROM":
            words = [w for w in ins.value.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else ""
            stages.append((name.lower(), words[0] if words else "", 0))
        elif stages and ins.keyword in _LAYER_STEPS:
            name, parent, steps = stages[-1]
            stages[-1] = (name, parent, steps + 1)
    by_name = {name: i for i, (name, _, _) in enumerate(stages) if name}
    total, index, seen = 0, len(stages) - 1, set()
    while index >= 0 and index not in seen:
        seen.add(index)
        _, parent, steps = stages[index]
        total += steps
        earlier = by_name.get(parent.lower(), int(parent) if parent.isdigit() else -1)
        if earlier < 0 or earlier >= index:
            return parent, total
        index = earlier
    return "", total


def layer_budget(base_layers: int, other_layers: int, limit: int = ENGINE_LAYER_LIMIT) -> int:
    """How many venv layers fit on a base of ``base_layers`` with ``other_layers`` more (skeleton, app, builder
    steps of the final chain): ``MAX_LAYERS``, or fewer; ConfigError when not even one does."""
    room = limit - base_layers - other_layers
    if room < 1:
        raise ConfigError(
            f"the base image has {base_layers} layers: with the {other_layers} more of the template and the venv the"
            f" image would pass the engine's limit of {limit} layers",
            hint="use a base image with fewer layers (squash it: docker export | docker import), or a template with fewer steps",
        )
    return min(MAX_LAYERS, room)


def group_layers(wheels: Sequence[WheelInfo], max_layers: int = MAX_LAYERS, buckets: int = BUCKETS) -> tuple[LayerUnit, ...]:
    """The venv's layers for these distributions, largest first (ties by name), deterministically.

    Up to ``max_layers`` distributions: one layer each. Beyond: the ``max_layers - buckets`` largest alone,
    every other one in the group ``sha256(name) % buckets`` (empty groups dropped); a budget under
    ``4 * buckets`` uses a quarter of it as buckets (one layer: everything in it). Largest first, so that
    the big shared distributions sit low in every stage's chain, where the engine can store them once.
    """
    if max_layers < 1 or buckets < 1:
        raise ValueError(f"max_layers ({max_layers}) and buckets ({buckets}) must be at least 1")
    buckets = min(buckets, max(1, max_layers // 4))
    by_name = {w.name: w for w in wheels}
    ordered = sorted(by_name.values(), key=lambda w: (-w.size, w.name))
    if len(ordered) <= max_layers:
        groups = [[w] for w in ordered]
    else:
        solo = max_layers - buckets
        shared: list[list[WheelInfo]] = [[] for _ in range(buckets)]
        for w in ordered[solo:]:
            shared[_bucket(w.name, buckets)].append(w)
        groups = [[w] for w in ordered[:solo]]
        groups += sorted((g for g in shared if g), key=lambda g: (-sum(w.size for w in g), min(w.name for w in g)))
    return tuple(LayerUnit(unit_key(g), tuple(sorted(w.name for w in g))) for g in groups)


def layout_text(units: Sequence[LayerUnit]) -> bytes:
    """The layout file stage_venv reads: a version line, then ``<key> <name> <name>...`` per unit, in order."""
    for unit in units:
        if not _KEY.fullmatch(unit.key) or not unit.names or not all(_NAME.fullmatch(n) for n in unit.names):
            raise ValueError(f"bad layer unit {unit!r}")
    return "".join([LAYOUT_VERSION + "\n", *(f"{u.key} {' '.join(u.names)}\n" for u in units)]).encode()
