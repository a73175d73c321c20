"""Import name -> distribution, as a chain that records how each name was resolved.

The chain, first answer wins:

1. ``mapping``: the user's ``[tool.slimbuild.mapping]``;
2. ``environment``: metadata of the project's environment (``--python``, the
   active virtualenv, or ``.venv/`` in the project), read *in that interpreter*;
3. ``wheel``: top-level names read from wheels slimbuild has already fetched;
4. ``table``: the bundled table of well-known mismatches (``sklearn`` ...);
5. ``declared``: a declared distribution whose normalised name equals the import.

Nothing else: an import with no answer is *unresolved*. slimbuild never guesses
that the PyPI project of the same name is meant (dependency confusion).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from slimbuild.analysis import mapping as table
from slimbuild.models import Resolved
from slimbuild.paths import WHEEL_MODULES_FILE

# Run in the project's interpreter: dist name -> dotted module prefixes (depth <= 3).
PROBE = r"""
import json, importlib.metadata as md
out = {}
for d in md.distributions():
    name = d.metadata.get("Name")
    if not name:
        continue
    mods = set()
    for f in d.files or ():
        parts = f.parts
        skip = ("..", "bin", "__pycache__")
        if not parts or parts[0] in skip or parts[0].endswith((".dist-info", ".egg-info", ".data", ".pth")):
            continue
        last = parts[-1]
        if last.endswith(".py") or ".cpython-" in last or last.endswith((".so", ".pyd", ".abi3.so")):
            stem = last.split(".")[0]
            chain = list(parts[:-1]) + ([] if stem == "__init__" else [stem])
            for i in range(1, min(len(chain), 3) + 1):
                mods.add(".".join(chain[:i]))
    top = d.read_text("top_level.txt")
    if top:
        mods.update(t.strip().replace("/", ".") for t in top.splitlines() if t.strip())
    out.setdefault(name, set()).update(m for m in mods if all(p.isidentifier() for p in m.split(".")))
print(json.dumps({k: sorted(v) for k, v in sorted(out.items())}))
"""


@dataclass(frozen=True)
class ModuleIndex:
    """Dotted module prefix -> distributions that provide it."""

    source: str
    providers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_dists(cls, source: str, dists: Mapping[str, Iterable[str]]) -> ModuleIndex:
        """Index a mapping of distribution -> module names."""
        providers: dict[str, set[str]] = {}
        for dist, mods in dists.items():
            for m in mods:
                providers.setdefault(m, set()).add(canonicalize_name(dist))
        return cls(source, {m: tuple(sorted(d)) for m, d in providers.items()})

    def lookup(self, module: str) -> str | None:
        """The one distribution providing the longest known prefix of ``module``."""
        parts = module.split(".")
        for i in range(len(parts), 0, -1):
            dists = self.providers.get(".".join(parts[:i]))
            if dists:
                return dists[0] if len(dists) == 1 else None
        return None


def probe_environment(python: str, timeout: float = 60.0) -> dict[str, list[str]]:
    """Run the metadata probe in another interpreter; raises OSError/ValueError on failure."""
    proc = subprocess.run([python, "-I", "-c", PROBE], capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise ValueError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    data = json.loads(proc.stdout)
    if not isinstance(data, dict):
        raise ValueError("probe printed no mapping")
    return data


def _prefix_lookup(mapping: Mapping[str, str], module: str) -> str | None:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        hit = mapping.get(".".join(parts[:i]))
        if hit:
            return hit
    return None


def resolve_modules(
    modules: Iterable[str],
    *,
    user_mapping: Mapping[str, str],
    environment: ModuleIndex | None,
    wheels: ModuleIndex | None,
    declared: Iterable[str],
) -> dict[str, Resolved]:
    """Resolve each dotted module name through the chain; pure."""
    declared_names = {canonicalize_name(d) for d in declared}
    out: dict[str, Resolved] = {}
    for module in sorted(set(modules)):
        dist: str | None = _prefix_lookup(user_mapping, module)
        via = "mapping"
        if dist is None and environment is not None:
            dist, via = environment.lookup(module), f"environment ({environment.source})"
        if dist is None and wheels is not None:
            dist, via = wheels.lookup(module), "wheel metadata"
        if dist is None:
            dist, via = table.known_distribution(module), "bundled table"
        if dist is None:
            top = canonicalize_name(module.split(".")[0])
            if top in declared_names and not table.is_namespace_root(module.split(".")[0]):
                dist, via = top, "declared name"
        if dist is None:
            out[module] = Resolved(module, None, "unresolved")
        else:
            out[module] = Resolved(module, canonicalize_name(dist), via)
    return out


def wheel_index(cache: Path, declared: Sequence[str]) -> ModuleIndex | None:
    """Top-level names of fetched wheels of the declared distributions (resolution step 3)."""
    try:
        known = json.loads((cache / WHEEL_MODULES_FILE).read_text())
    except (OSError, ValueError):
        return None
    wanted = {canonicalize_name(d) for d in declared}
    dists: dict[str, set[str]] = {}
    for filename, mods in known.items():
        name = canonicalize_name(filename.split("-")[0])
        if name in wanted:
            dists.setdefault(name, set()).update(mods)
    return ModuleIndex.from_dists("wheels", dists) if dists else None
