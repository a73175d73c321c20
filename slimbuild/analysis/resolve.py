"""Import name -> distribution, as a chain that records how each name was resolved.

The chain, first answer wins:

1. ``mapping``: the user's ``[tool.slimbuild.mapping]``;
2. ``environment``: metadata of the project's environment (``--python``, the
   active virtualenv, or ``.venv/`` in the project), read *in that interpreter*;
3. ``wheel``: top-level names read from wheels slimbuild has already fetched;
4. ``table``: the bundled table of well-known mismatches (``sklearn`` ...);
5. ``declared``: a declared distribution whose normalised name equals the import;
6. ``popular``: one of PyPI's most-downloaded distributions (``mapping.popular_distribution``) whose
   normalised name equals the import's top level (``pytorch_lightning`` -> ``pytorch-lightning``).

Several distributions can provide one import name (``cv2``: opencv-python, opencv-python-headless, ...).
When an environment, the wheels or the table know several, the one the project declares wins, even over a
single undeclared provider an earlier step knows; when none is declared the import is *ambiguous*: it stays
unresolved, with its candidates (most downloaded first) for SB001, and is never picked silently.

Anything else is *unresolved*. Step 6 is not the guess dependency confusion exploits: that attack
needs a name nobody owns yet (an internal package name, a typo), and the list holds only established
projects, each downloaded millions of times, so the same-name project is a fact about PyPI, not a
hunch. A name outside the list, a namespace root (``google``), a top level the table knows only
through dotted entries (``mysql`` of ``mysql.connector``) and first-party modules (which never
reach resolution) are never resolved by name.
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

POPULAR = "popular distribution of the same name"

# Run in the project's interpreter: {"modules": dist name -> dotted module prefixes (depth <= 3),
# "requires": dist name -> its Requires-Dist lines, markers and extras as written}.
PROBE = r"""
import json, importlib.metadata as md
out, requires = {}, {}
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
    requires.setdefault(name, set()).update(d.requires or ())
print(json.dumps({"modules": {k: sorted(v) for k, v in sorted(out.items())},
                  "requires": {k: sorted(v) for k, v in sorted(requires.items())}}))
"""


@dataclass(frozen=True)
class ModuleIndex:
    """Dotted module prefix -> distributions that provide it."""

    source: str
    providers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # canonical distribution -> its Requires-Dist lines (an environment's metadata; what a dependency brings)
    requires: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_dists(
        cls, source: str, dists: Mapping[str, Iterable[str]], requires: Mapping[str, Iterable[str]] | None = None
    ) -> ModuleIndex:
        """Index a mapping of distribution -> module names (and of distribution -> Requires-Dist lines)."""
        providers: dict[str, set[str]] = {}
        for dist, mods in dists.items():
            for m in mods:
                providers.setdefault(m, set()).add(canonicalize_name(dist))
        needs: dict[str, tuple[str, ...]] = {canonicalize_name(d): tuple(sorted(set(r))) for d, r in (requires or {}).items()}
        return cls(source, {m: tuple(sorted(d)) for m, d in providers.items()}, needs)

    def lookup_all(self, module: str) -> tuple[str, ...]:
        """Every distribution providing the longest known prefix of ``module`` (sorted), or ()."""
        parts = module.split(".")
        for i in range(len(parts), 0, -1):
            dists = self.providers.get(".".join(parts[:i]))
            if dists:
                return dists
        return ()

    def lookup(self, module: str) -> str | None:
        """The one distribution providing the longest known prefix of ``module`` (None when several)."""
        dists = self.lookup_all(module)
        return dists[0] if len(dists) == 1 else None


def probe_environment(python: str, timeout: float = 60.0) -> dict[str, dict[str, list[str]]]:
    """Run the metadata probe in another interpreter: ``{"modules": ..., "requires": ...}`` (see PROBE);
    raises OSError/ValueError on failure."""
    proc = subprocess.run([python, "-I", "-c", PROBE], capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise ValueError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    data = json.loads(proc.stdout)
    if not (isinstance(data, dict) and all(isinstance(data.get(k), dict) for k in ("modules", "requires"))):
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
    declared_names = frozenset(canonicalize_name(d) for d in declared)
    out: dict[str, Resolved] = {}
    for module in sorted(set(modules)):
        out[module] = _resolve_one(module, user_mapping, environment, wheels, declared_names)
    return out


def shadowed_namespaces(
    namespaces: Iterable[str],
    *,
    user_mapping: Mapping[str, str],
    environment: ModuleIndex | None,
    wheels: ModuleIndex | None,
    declared: Iterable[str],
    project: str = "",
) -> frozenset[str]:
    """The project's namespace directories (no ``__init__.py``) a distribution's regular package wins over; pure.

    Under PEP 420 a regular package anywhere on ``sys.path`` beats namespace portions: ``from airflow import DAG``
    beside a project folder ``airflow/dags/`` imports apache-airflow. A name counts when it resolves to a
    distribution the user maps it to, the environment has installed, or the project declares; never by popularity
    alone, never for a shared namespace root (``google``), never for the project's own distribution.
    """
    declared_names = frozenset(canonicalize_name(d) for d in declared)
    own = canonicalize_name(project) if project else ""
    out = set()
    for top in namespaces:
        if table.is_namespace_root(top):
            continue
        r = _resolve_one(top, user_mapping, environment, wheels, declared_names)
        if r.distribution is None or r.distribution == own:
            continue
        if r.via == "mapping" or r.via.startswith("environment") or r.distribution in declared_names:
            out.add(top)
    return frozenset(out)


def _resolve_one(
    module: str,
    user_mapping: Mapping[str, str],
    environment: ModuleIndex | None,
    wheels: ModuleIndex | None,
    declared_names: frozenset[str],
) -> Resolved:
    """One module through the chain (see the module docstring)."""
    mapped = _prefix_lookup(user_mapping, module)
    if mapped is not None:
        return Resolved(module, canonicalize_name(mapped), "mapping")
    steps: list[tuple[str, tuple[str, ...]]] = []
    if environment is not None:
        steps.append((f"environment ({environment.source})", environment.lookup_all(module)))
    if wheels is not None:
        steps.append(("wheel metadata", wheels.lookup_all(module)))
    steps.append(("bundled table", tuple(canonicalize_name(d) for d in table.providers(module))))
    for via, dists in steps:  # a declared provider wins wherever it is known
        chosen = table.by_rank(d for d in dists if d in declared_names)
        if chosen:
            return Resolved(module, chosen[0], via, table.by_rank(dists) if len(dists) > 1 else ())
    for via, dists in steps:
        if len(dists) == 1:
            return Resolved(module, dists[0], via)
        if len(dists) > 1 and via == "bundled table":
            return Resolved(module, None, "several distributions", table.by_rank(dists))
    top = module.split(".")[0]
    if canonicalize_name(top) in declared_names and not table.is_namespace_root(top):
        return Resolved(module, canonicalize_name(top), "declared name")
    several = next((dists for _, dists in steps if len(dists) > 1), ())
    if several:
        return Resolved(module, None, "several distributions", table.by_rank(several))
    popular = table.popular_distribution(module)
    if popular is not None:
        return Resolved(module, popular, POPULAR)
    return Resolved(module, None, "unresolved")


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
