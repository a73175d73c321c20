"""``prune = "traced"`` inside the builder: drop the installed files no traced run needs. Runs *inside* the image.

Shipped into the build context as it is (standard library only, Python 3.8+, like stage_venv.py) and run by the
builder after slimbuild-stage.py staged the venv, on every ``site-packages`` under the staging root (one per
layer unit with ``venv-layers = "distribution"``)::

    python slimbuild-prune.py --keep slimbuild-traced.json /stage

The keep spec (image/traced.py makes it on the host) names the packages (directories) whose modules stay, the
top-level modules and the exact files. It keeps as well every ``.dist-info`` directory, with its ``RECORD``
rewritten to the files that remain (a ``.py`` that slimbuild-stage.py replaced by its ``.pyc`` is listed as that
``.pyc``), the ``.pth`` files and the modules they import, and the bytecode of every kept module. The mtimes of
the directories it touches and of the rewritten ``RECORD`` files are put back as they were (slimbuild-stage.py
clamped them): the layers stay reproducible. It never runs ``strip``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Sequence

MODULE_SUFFIXES = (".py", ".pyc", ".pyd", ".so")


class Spec:
    """The keep spec's three sets, and the rules of the module doc."""

    def __init__(self, doc: dict, pth_modules: Sequence[str] = ()) -> None:  # type: ignore[type-arg]
        if doc.get("format") != 1:
            raise SystemExit(f"slimbuild-prune: unknown keep spec format {doc.get('format')!r}")
        self.packages = set(doc.get("packages", ()))
        self.modules = set(doc.get("modules", ())) | set(pth_modules)
        self.files = set(doc.get("files", ()))

    def keeps(self, rel: str) -> bool:
        """Whether the site-packages path ``rel`` (a file) stays."""
        parts = rel.split("/")
        if parts[0].endswith(".dist-info") or (len(parts) == 1 and rel.endswith(".pth")):
            return True
        if rel in self.files:
            return True
        name = parts[-1]
        if len(parts) >= 2 and parts[-2] == "__pycache__":  # X/__pycache__/m.cpython-311.pyc is the module X/m
            parts = [*parts[:-2], name.split(".")[0] + ".py"]
            name = parts[-1]
        if not name.endswith(MODULE_SUFFIXES):
            return False
        stem = name.split(".")[0]
        folder = "/".join(parts[:-1])
        if not folder:
            return stem in self.modules
        if folder + "/" in self.packages:
            return True
        base = f"{folder}/{stem}"
        return f"{base}.py" in self.files or f"{base}.pyc" in self.files


def pth_modules(site_packages: str) -> list[str]:
    """The modules the ``.pth`` files import at start-up (before any trace could see them)."""
    names: list[str] = []
    for entry in sorted(os.listdir(site_packages)):
        if not entry.endswith(".pth"):
            continue
        try:
            with open(os.path.join(site_packages, entry), encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith(("import ", "import\t")):
                names += [w.strip().split(".")[0] for w in line[len("import"):].split(";")[0].split(",")]
    return [n for n in names if n]


def _mtimes(site_packages: str) -> dict[str, tuple[int, int]]:
    """Every directory's and RECORD's (atime, mtime) in nanoseconds, to put back after the prune."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, _, filenames in os.walk(site_packages):
        st = os.lstat(dirpath)
        out[dirpath] = (st.st_atime_ns, st.st_mtime_ns)
        if dirpath.endswith(".dist-info") and "RECORD" in filenames:
            rec = os.path.join(dirpath, "RECORD")
            st = os.lstat(rec)
            out[rec] = (st.st_atime_ns, st.st_mtime_ns)
    return out


def rewrite_record(site_packages: str, dist_info: str) -> None:
    """The dist-info's RECORD, listing only what remains (a stripped ``.py`` as its ``.pyc``)."""
    path = os.path.join(site_packages, dist_info, "RECORD")
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError:
        return
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        if not row:
            continue
        target = os.path.normpath(os.path.join(site_packages, row[0]))
        if os.path.lexists(target):
            writer.writerow(row)
        elif row[0].endswith(".py") and os.path.lexists(target + "c"):
            writer.writerow([row[0] + "c", "", ""])
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(out.getvalue())


def prune_site(site_packages: str, doc: dict) -> tuple[int, int]:  # type: ignore[type-arg]
    """Drop what the spec does not keep from one site-packages: (files removed, bytes removed)."""
    spec = Spec(doc, pth_modules(site_packages))
    times = _mtimes(site_packages)
    removed = size = 0
    for dirpath, dirnames, filenames in os.walk(site_packages, topdown=False):
        rel_dir = os.path.relpath(dirpath, site_packages).replace(os.sep, "/")
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if not spec.keeps(rel):
                full = os.path.join(dirpath, name)
                size += os.lstat(full).st_size
                os.unlink(full)
                removed += 1
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full) and not os.listdir(full):
                os.rmdir(full)  # emptied by the prune (a package no run imported)
    for entry in sorted(os.listdir(site_packages)):
        if entry.endswith(".dist-info"):
            rewrite_record(site_packages, entry)
    for path, (atime, mtime) in times.items():
        if os.path.lexists(path):
            os.utime(path, ns=(atime, mtime), follow_symlinks=False)
    return removed, size


def site_dirs(root: str) -> list[str]:
    """Every ``site-packages`` directory under root, sorted."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        if os.path.basename(dirpath) == "site-packages":
            found.append(dirpath)
            dirnames[:] = []
    return found


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Drop the installed files no traced run needs (prune = \"traced\").")
    ap.add_argument("--keep", required=True, help="the keep spec (slimbuild-traced.json)")
    ap.add_argument("root", help="the staging root (/stage)")
    args = ap.parse_args(argv)
    with open(args.keep, encoding="utf-8") as fh:
        doc = json.load(fh)
    sites = site_dirs(args.root)
    if not sites:
        print(f"slimbuild-prune: no site-packages under {args.root}", file=sys.stderr)
        return 1
    total = [0, 0]
    for site in sites:
        removed, size = prune_site(site, doc)
        total[0] += removed
        total[1] += size
    print(f"slimbuild-prune: removed {total[0]} files ({total[1]} bytes) that no traced run needs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
