"""Replay the output of an unchanged ``analyze`` or ``check``.

A pre-commit hook runs ``slimbuild check`` on every commit, mostly with nothing changed that the
check depends on. The first run records what it read (config and declaration files, lock files,
the graph's files and directory listings, the wheel index) and what it printed; a later run whose
key (command, options, settings, slimbuild's own code, the project environment's site-packages)
and recorded inputs are unchanged prints the same output without importing the pipeline.

Standard library only, and cheap to import: this is all a warm run loads besides the click layer
and the config.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from slimbuild import __version__
from slimbuild.cache.evidence import RACY_NS, TraceEvidence, code_stamp, read_digest_factory
from slimbuild.paths import atomic_write

if TYPE_CHECKING:
    from slimbuild.config import Settings

_FORMAT = 1


@dataclass
class Recorder:
    """What one run read, filled in by the pipeline; ``cacheable`` is cleared when it read more than it can record."""

    max_bytes: int
    evidence: TraceEvidence = field(default_factory=TraceEvidence)
    cacheable: bool = True
    started_ns: int = field(default_factory=time.time_ns)

    def file(self, path: Path | str) -> None:
        """Record a file (or its absence) once: a stage that reads it again in this run reads the same file."""
        p = os.path.abspath(path)
        if p not in self.evidence.files and p not in self.evidence.absent:
            self.evidence.add_file(p, read_digest_factory(self.max_bytes))


@dataclass(frozen=True)
class Output:
    """What a command printed, and its exit code."""

    stdout: str
    stderr: str
    exit_code: int


# every package of slimbuild and its data: the recorded output of a command depends on all of it
_OWN_CODE = ("", "analysis", "analysis/data", "cache", "image", "locking", "locking/data", "pipeline", "record")


def _own_environment() -> tuple[tuple[str, int], ...]:
    """slimbuild's own site-packages (stdlib-list, packaging): installing or upgrading there is a miss."""
    out = []
    for p in sys.path:
        if p.endswith(("site-packages", "dist-packages")):
            try:
                out.append((p, os.stat(p).st_mtime_ns))
            except OSError:
                continue
    return tuple(out)


def environment_python(settings_python: str, root: Path, env: Mapping[str, str]) -> str:
    """The interpreter whose installed distributions resolve imports: --python, $VIRTUAL_ENV, ./.venv, or none."""
    if settings_python:
        return settings_python
    venv = env.get("VIRTUAL_ENV")
    if venv and Path(venv, "bin", "python").exists():
        return str(Path(venv, "bin", "python"))
    local = root / ".venv" / "bin" / "python"
    if local.exists():
        return str(local)
    return ""


def environment_key(python: str) -> str:
    """Names an environment's state: its interpreter and the mtimes of its site-packages directories.

    Installing, upgrading or removing a distribution adds or renames an entry there, which changes the mtime.
    """
    exe = Path(python)
    prefix = exe.resolve().parent.parent if exe.parent.name == "bin" else exe.parent
    venv_prefix = exe.parent.parent
    stamps = sorted(
        f"{p}:{p.stat().st_mtime_ns}" for base in {prefix, venv_prefix} for p in base.glob("lib/python3*/site-packages")
    )
    return hashlib.sha256(json.dumps([str(exe.absolute()), stamps]).encode()).hexdigest()[:20]


def _target_grammar(target: str) -> str:
    """For a target newer than this Python, the python3.X on PATH that may parse for it (analysis/grammar.py)."""
    try:
        newer = tuple(int(p) for p in target.split(".")[:2]) > sys.version_info[:2]
    except ValueError:
        return ""
    return (shutil.which(f"python{target}") or "-") if newer else ""


def outcome_key(command: str, as_json: bool, requested: str, settings: Settings, env: Mapping[str, str]) -> str | None:
    """The key of one command's output; None when its environment cannot be named (the pipeline will say why)."""
    python = environment_python(settings.python, settings.root, env)
    env_state = ""
    if python:
        if not Path(python).exists():
            return None  # the pipeline says "no such interpreter"
        try:
            env_state = environment_key(python)
        except OSError:
            return None
    parts = (
        _FORMAT, __version__, code_stamp(_OWN_CODE), _own_environment(), sys.executable, sys.version, command, as_json,
        requested, repr(settings), python, env_state, _target_grammar(settings.target_python),
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def _file(cache_root: Path, key: str) -> Path:
    return cache_root / "analysis" / f"outcome-{key}.pickle"


def lookup(cache_root: Path, key: str, max_bytes: int) -> Output | None:
    """The recorded output of ``key`` when everything it read is unchanged; None otherwise."""
    try:
        with _file(cache_root, key).open("rb") as fh:
            header, evidence, output = pickle.load(fh)
    except Exception:  # noqa: BLE001 - a missing, truncated or foreign file is a miss
        return None
    if header != (_FORMAT, key) or not isinstance(evidence, TraceEvidence) or not isinstance(output, Output):
        return None
    if not evidence.still_valid(read_digest_factory(max_bytes)):
        return None
    return output


def store(cache_root: Path, key: str, recorder: Recorder, output: Output) -> None:
    """Record an output, unless an input changed while the run read it; failures are ignored (read-only cache)."""
    if not recorder.cacheable or recorder.evidence.newest_change_ns() >= recorder.started_ns - RACY_NS:
        return
    try:
        data = pickle.dumps(((_FORMAT, key), recorder.evidence, output), protocol=pickle.HIGHEST_PROTOCOL)
        path = _file(cache_root, key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, data, 0o600, durable=False)
    except (OSError, pickle.PicklingError):
        pass
