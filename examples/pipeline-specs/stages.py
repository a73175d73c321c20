"""Where a stage reads and writes: Pachyderm mounts its input repo at /pfs/<repo> and collects /pfs/out."""

from __future__ import annotations

import os
from pathlib import Path


def input_dir(default_repo: str) -> Path:
    return Path(os.environ.get("INPUT_DIR", f"/pfs/{default_repo}"))


def output_dir() -> Path:
    out = Path(os.environ.get("OUTPUT_DIR", "/pfs/out"))
    out.mkdir(parents=True, exist_ok=True)
    return out
