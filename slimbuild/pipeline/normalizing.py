"""The normalisation step of a build: the built image's config rewritten to SOURCE_DATE_EPOCH and loaded back.

Identical inputs then give the identical image id (issue 14; RELIABILITY G1, G4). The layers are not
touched: they are already reproducible (tests/docker G4), and the engine keeps them; only the config
changes (image/normalize.py says what and why). The base image's own config is read once per base id
with ``docker save`` and kept in the cache (``base-config/<hex>.json``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from slimbuild.errors import BuildFailed, SlimbuildError
from slimbuild.image.engine import Engine
from slimbuild.image.normalize import config_digest, config_from_save, full_load_tar, load_tar, normalized_config
from slimbuild.paths import atomic_write

_MISSING = "<missing>"


def _bottom_image(history: list[dict[str, Any]]) -> str:
    """The oldest image of the chain that the engine knows by id (the pulled or imported base)."""
    known = [str(item.get("Id") or "") for item in history if str(item.get("Id") or _MISSING) != _MISSING]
    if not known:
        raise BuildFailed("cannot normalise the image config: the engine's history names no image", "rebuild")
    return known[-1]  # records are newest first


def _base_config(engine: Engine, image_id: str, cache: Path) -> dict[str, Any]:
    """The config of ``image_id``, from the cache or else from ``docker save`` (once per image id)."""
    path = cache / "base-config" / f"{image_id.split(':', 1)[-1]}.json"
    try:
        cached = json.loads(path.read_bytes())
        if isinstance(cached, dict):
            return cached
    except (OSError, ValueError):
        pass
    config = config_from_save(engine.save(image_id))
    try:
        atomic_write(path, json.dumps(config, sort_keys=True).encode("utf-8"), durable=False)
    except (OSError, SlimbuildError):
        pass  # a cache that cannot be written costs time on the next build, never the build
    return config


def normalize_image(engine: Engine, image_id: str, epoch: int, cache: Path) -> str:
    """The id of ``image_id``'s normalised twin (loaded now unless the engine has it); ``image_id`` is left as it is."""
    info = engine.inspect_image(image_id)
    history = engine.history(image_id)
    base = _base_config(engine, _bottom_image(history), cache)
    config = normalized_config(info, history, base, epoch)
    wanted = config_digest(config)
    if wanted == image_id:
        return image_id
    diff_ids = [str(d) for d in (info.get("RootFS") or {}).get("Layers") or []]
    try:
        loaded = _load(engine, image_id, config, diff_ids)
    except BaseException:  # interrupted or refused: no half-loaded twin stays behind (it has no tag yet)
        _remove_quietly(engine, wanted)
        raise
    if loaded != wanted:
        _remove_quietly(engine, loaded)
        raise BuildFailed(
            f"the engine loaded the normalised image as {loaded[:19]}, not {wanted[:19]}",
            "no tag was applied; the engine rewrote the config: report it with the engine version",
        )
    return loaded


def _load(engine: Engine, image_id: str, config: bytes, diff_ids: list[str]) -> str:
    """Load the normalised config onto the image's layers: config-only, else (podman) the whole image again."""
    try:
        return engine.load(load_tar(config, diff_ids))
    except BuildFailed:
        # podman's compat API loads complete archives only ("payload does not match any of the supported image
        # formats"): send the saved image with the new config; the layers are the same, so is the id
        whole = io.BytesIO()
        full_load_tar(engine.save(image_id), config, whole)
        return engine.load(whole.getvalue())


def _remove_quietly(engine: Engine, image_id: str) -> None:
    try:
        engine.remove_image(image_id)  # untagged images only; a missing one is left alone
    except (SlimbuildError, OSError):
        pass
