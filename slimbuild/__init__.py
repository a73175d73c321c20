"""slimbuild: trace what an analysis imports, lock it, build a slim image."""

from __future__ import annotations

__version__ = "0.1.0"
