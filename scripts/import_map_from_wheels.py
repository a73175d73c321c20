#!/usr/bin/env python3
"""Check and grow slimbuild's bundled import-name table from real wheels.

    python3 scripts/import_map_from_wheels.py WHEEL...            # report, for the wheels named
    python3 scripts/import_map_from_wheels.py --cached            # ... for the wheels already cached
    python3 scripts/import_map_from_wheels.py --cached --write    # and update import_map.toml

It reads each wheel's file list (and ``top_level.txt``) and compares the import names it provides with
``slimbuild/analysis/data/import_map.toml``:

  confirm   an entry the wheel provides (recorded in [sources] as ``wheel <filename>``)
  provider  the wheel provides an entry's import name but is not among its providers (added)
  add       an import name that differs from the distribution's name and that the table lacks (added)
  wrong     an entry says the wheel's distribution provides a name the wheel does not contain (exit 1)

Cached wheels are those in slimbuild's wheelhouse (``$SLIMBUILD_CACHE/wheels``) and in pip's cache
(``pip cache dir``). It never queries an index: to check an entry, fetch its wheel by name first
(``pip download --no-deps NAME``) and pass the file. Exit 0 when nothing is wrong, 1 when some entry is
contradicted by a wheel, 2 for bad arguments or unreadable wheels.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from slimbuild.paths import atomic_write, cache_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

TABLE = Path(__file__).resolve().parent.parent / "slimbuild" / "analysis" / "data" / "import_map.toml"
# Top-level directories some wheels ship by mistake: never an import name worth a table entry.
NOT_IMPORT_NAMES = frozenset({"benchmarks", "doc", "docs", "example", "examples", "scripts", "test", "tests"})
DEPTH = 3  # dotted prefixes read from a file list (google.cloud.storage)


class ScriptError(Exception):
    """A bad argument or an unreadable wheel: one line, exit 2."""


@dataclass(frozen=True)
class Wheel:
    """What one wheel provides."""

    filename: str
    dist: str  # canonical
    modules: frozenset[str]  # dotted prefixes, to DEPTH
    top_level: tuple[str, ...]  # importable top-level names


def read_wheel(path: Path) -> Wheel:
    """Import names of one wheel, from its file list and top_level.txt."""
    try:
        name, _version, _build, _tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        raise ScriptError(f"{path}: not a wheel file name ({exc}); pass .whl files") from exc
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.namelist()
            top_txt = next((m for m in members if re.fullmatch(r"[^/]+\.dist-info/top_level\.txt", m)), None)
            listed = zf.read(top_txt).decode("utf-8").split() if top_txt else []
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, KeyError) as exc:
        raise ScriptError(f"{path}: unreadable wheel ({exc}); delete it and download it again") from exc
    modules = set(_modules_of(members))
    modules.update(t.replace("/", ".") for t in listed if all(p.isidentifier() for p in t.split("/")))
    tops = sorted({m.split(".")[0] for m in modules} - NOT_IMPORT_NAMES)
    return Wheel(path.name, canonicalize_name(name), frozenset(modules), tuple(tops))


def _modules_of(members: Iterable[str]) -> Iterable[str]:
    """Dotted module prefixes (to DEPTH) of the Python files and extension modules in a file list."""
    for member in members:
        parts = PurePosixPath(member).parts
        if not parts or ".." in parts or parts[0].endswith((".dist-info", ".data")) or parts[0] == "__pycache__":
            continue
        last = parts[-1]
        if not (last.endswith((".py", ".pyd", ".so")) or ".cpython-" in last):
            continue
        stem = last.split(".")[0]
        chain = [*parts[:-1], *([] if stem == "__init__" else [stem])]
        for i in range(1, min(len(chain), DEPTH) + 1):
            prefix = chain[:i]
            if all(p.isidentifier() for p in prefix):
                yield ".".join(prefix)


def cached_wheels(env: Mapping[str, str]) -> list[Path]:
    """Wheels in slimbuild's wheelhouse and pip's cache (wheels pip built locally)."""
    roots = [cache_dir(env) / "wheels"]
    try:
        pip_dir = subprocess.run(
            [sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, timeout=60, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pip_dir = ""
    if pip_dir:
        roots.append(Path(pip_dir) / "wheels")
    # the wheelhouse keeps each wheel under its digest, with its own file name
    found = {p for root in roots if root.is_dir() for p in root.rglob("*.whl") if not p.name.startswith(".")}
    return sorted(found, key=lambda p: (p.name, str(p)))


@dataclass
class Table:
    """The [modules] and [sources] of import_map.toml, as the script edits them."""

    modules: dict[str, list[str]]
    sources: dict[str, str]


def load_table(path: Path) -> Table:
    """Parse import_map.toml."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    modules = {k: [v] if isinstance(v, str) else list(v) for k, v in raw["modules"].items()}
    return Table(modules, dict(raw.get("sources", {})))


def compare(table: Table, wheels: Sequence[Wheel]) -> list[tuple[str, str, str, str]]:
    """(kind, import name, distribution, wheel file) for every finding, sorted; updates ``table`` in place."""
    out: set[tuple[str, str, str, str]] = set()
    confirmed: dict[str, dict[str, str]] = {}  # import name -> distribution -> wheel file name
    for w in sorted(wheels, key=lambda w: w.filename):
        for key, dists in sorted(table.modules.items()):
            names = {canonicalize_name(d) for d in dists}
            if w.dist in names:
                kind = "confirm" if key in w.modules else "wrong"
            elif key in w.modules:
                kind = "provider"
                dists.append(w.dist)
            else:
                continue
            out.add((kind, key, w.dist, w.filename))
            if kind != "wrong":
                confirmed.setdefault(key, {})[w.dist] = w.filename
        for top in w.top_level:
            if top in table.modules or canonicalize_name(top) == w.dist or top[:1] == "_":
                continue  # known, the distribution's own name, or private (_distutils_hack, pynacl's _sodium)
            if any(k.startswith(top + ".") for k in table.modules):
                continue  # a shared namespace the table knows by its members
            out.add(("add", top, w.dist, w.filename))
            table.modules[top] = [w.dist]
            confirmed.setdefault(top, {})[w.dist] = w.filename
    for key, by_dist in confirmed.items():
        previous = {str(canonicalize_name(f.split("-")[0])): f for f in _wheels_of(table.sources.get(key, ""))}
        merged: dict[str, str] = {**previous, **by_dist}
        table.sources[key] = "; ".join(f"wheel {merged[d]}" for d in sorted(merged))
    return sorted(out, key=lambda f: (f[1].lower(), f[0], f[2], f[3]))


def _wheels_of(source: str) -> list[str]:
    """The wheel file names a [sources] value records."""
    return [part.removeprefix("wheel ").strip() for part in source.split(";") if part.strip().startswith("wheel ")]


def _toml_key(key: str) -> str:
    return f'"{key}"' if "." in key else key


def _toml_value(dists: Sequence[str]) -> str:
    return json.dumps(dists[0]) if len(dists) == 1 else "[" + ", ".join(json.dumps(d) for d in dists) + "]"


def render(text: str, table: Table) -> str:
    """import_map.toml with its [modules] entries and [sources] regenerated; comments and [namespaces] kept."""
    lines = text.splitlines()
    start = lines.index("[modules]") + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    tail = lines[end:]
    if "[sources]" in tail:
        tail = tail[: tail.index("[sources]")]
    while tail and not tail[-1].strip():
        tail.pop()
    entries = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in sorted(table.modules.items(), key=lambda kv: kv[0].lower())]
    sources = [f"{_toml_key(k)} = {json.dumps(v)}" for k, v in sorted(table.sources.items(), key=lambda kv: kv[0].lower())]
    return "\n".join([*lines[:start], *entries, *tail, "", "[sources]", *sources]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Report (and with --write apply) what the wheels say about the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wheels", nargs="*", type=Path, help="wheel files to read")
    ap.add_argument("--cached", action="store_true", help="also read the wheels already cached")
    ap.add_argument("--write", action="store_true", help="update the table (and its [sources])")
    ap.add_argument("--table", type=Path, default=TABLE, help=f"the table to check (default {TABLE})")
    args = ap.parse_args(argv)
    try:
        paths = [*args.wheels, *(cached_wheels(os.environ) if args.cached else [])]
        if not paths:
            raise ScriptError("no wheels: name .whl files, or pass --cached")
        table = load_table(args.table)
        findings = compare(table, [read_wheel(p) for p in paths])
        for kind, key, dist, filename in findings:
            print(f"{kind:9} {key} = {dist}  ({filename})")
        if args.write:
            atomic_write(args.table, render(args.table.read_text(encoding="utf-8"), table).encode("utf-8"))
    except (ScriptError, OSError, tomllib.TOMLDecodeError, KeyError, ValueError) as exc:
        print(f"import_map_from_wheels: {exc}", file=sys.stderr)
        return 2
    return 1 if any(f[0] == "wrong" for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
