"""Settings from the packaged YAML file."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def load_settings() -> dict[str, Any]:
    """The default settings."""
    text = resources.files("churn").joinpath("defaults.yaml").read_text(encoding="utf-8")
    return dict(yaml.safe_load(text))
