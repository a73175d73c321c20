"""The versions installed in the project's interpreter: ``importlib.metadata`` run *in that interpreter* (I/O edge).

The interpreter is the analysis's (``--python``, the active virtualenv, ``.venv/``); pins.py turns the versions
into pins. A failure to run it is a ConfigError naming the interpreter.
"""

from __future__ import annotations

import json
import subprocess

from slimbuild.errors import ConfigError

__all__ = ["VERSIONS_PROBE", "probe_versions"]

# Prints {distribution name: version} of every distribution the interpreter sees that came from an index:
# one with a PEP 610 direct_url.json (editable, local path, VCS, URL) has no index version to pin.
VERSIONS_PROBE = r"""
import json, importlib.metadata as md
out, seen = {}, set()
for d in md.distributions():
    name, version = d.metadata.get("Name"), d.version
    if not name or not version or name.lower() in seen:
        continue
    seen.add(name.lower())  # first on sys.path wins, as import does
    if d.read_text("direct_url.json") is None:
        out[name] = version
print(json.dumps(out, sort_keys=True))
"""


def probe_versions(python: str, timeout: float = 60.0) -> dict[str, str]:
    """name -> version installed in PYTHON; raises ConfigError when it cannot be run or prints nonsense."""
    hint = "check --python (or the active virtualenv / .venv): it must be a working interpreter"
    try:
        proc = subprocess.run(
            [python, "-I", "-c", VERSIONS_PROBE], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot read installed versions with {python}: {exc}", hint=hint) from None
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        raise ConfigError(f"cannot read installed versions with {python}: {last}", hint=hint)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ConfigError(f"cannot read installed versions with {python}: the probe printed no mapping", hint=hint)
    return data
