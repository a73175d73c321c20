"""Finish the builder stage's venv: prune, compile, stage and clamp. Runs *inside* the image.

Shipped into the build context as it is (standard library only, Python 3.8+: it runs on the image's
interpreter, not slimbuild's) and run once, by the venv's python, after pip installed the locked wheels:

1. prune what a run never needs: the installers (``--prune`` patterns, relative to site-packages), the venv's
   activate scripts for other shells, and what image/stage_prune.py's rules call dead (test suites, caches,
   docs, examples, C/C++/Cython sources and headers, stubs, unused translations; ``--keep-file`` patterns and
   ``--keep-locale`` languages spare some). Never a ``*.so``, a ``*.libs`` directory (``strip`` corrupts them)
   or a ``.dist-info`` file, and every RECORD is rewritten at the end to list what remains;
2. with ``--pyc``: PEP 552 ``unchecked-hash`` bytecode, each job compiled in a fresh interpreter of its own
   over a fixed set of top-level entries in sorted order, so that the bytes are reproducible (run it with
   ``PYTHONHASHSEED=0``). With ``--strip-sources``
   each third-party module gets a legacy-layout ``.pyc`` beside it and its ``.py`` is removed; a
   module that does not compile keeps its source, and packages named by ``--keep-source`` (they read
   their own source at run time: numba, torch.jit ...) keep it and get ``__pycache__`` bytecode;
3. move the venv under the staging root with a passwd/group entry for the runtime uid (without one
   ``getpass.getuser()`` raises), extract each ``--deb`` (system-packages) there and clamp every mtime
   there to ``--epoch`` (reproducible layers).

One Python process instead of a shell pipeline: the shell's per-file ``rm`` forked once for every
module (seconds for scipy and scikit-learn).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import py_compile
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence

OTHER_SHELLS = ("Activate.ps1", "activate.csh", "activate.fish")

try:
    from slimbuild.image import stage_prune
except ImportError:  # run as the builder's script, slimbuild-stage.py: the rules are copied beside it
    import stage_prune  # type: ignore[import-not-found,no-redef]

_remove = stage_prune._remove


def python_sources(root: str) -> list[str]:
    """Every ``.py`` under root, in a fixed order (sorted at each level, as compileall walks)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py"))
    return found


def _compile(source: str, cfile: str | None, dfile: str | None = None) -> bool:
    try:
        py_compile.compile(
            source, cfile=cfile, dfile=dfile, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
        )
    except (py_compile.PyCompileError, OSError, ValueError):
        return False  # e.g. Python 2 leftovers in a wheel: the source stays, uncompiled
    return True


def compile_sources(
    site_packages: str, *, strip_sources: bool, keep_sources: Sequence[str], tops: Sequence[str] | None = None,
    staged_at: str = "",
) -> int:
    """Compile every module once (only those under ``tops`` when given); with strip_sources, replace
    sources by legacy .pyc. Returns the count compiled. ``staged_at``: site_packages lies below this staging
    root, and the bytecode names each source at its path in the image (the path without that prefix)."""
    keep_rx = None
    if keep_sources:
        keep_rx = re.compile("/site-packages/(" + "|".join(re.escape(k) for k in sorted(keep_sources)) + ")/")
    compiled = 0
    if tops is None:
        sources = python_sources(site_packages)
    else:
        sources = []
        for top in sorted(tops):
            path = os.path.join(site_packages, top)
            if os.path.isdir(path) and not os.path.islink(path):
                sources.extend(python_sources(path))
            elif top.endswith(".py") and os.path.isfile(path):
                sources.append(path)
    for source in sources:
        dfile = source[len(staged_at.rstrip("/")) :] if staged_at else None
        if strip_sources and not (keep_rx and keep_rx.search(source)):
            if _compile(source, source + "c", dfile):
                os.unlink(source)
                compiled += 1
            continue  # a module that does not compile keeps its source, uncompiled
        if _compile(source, importlib.util.cache_from_source(source), dfile):
            compiled += 1
    return compiled


# ---------------------------------------------------------------- parallel install


def read_lock(path: str) -> list[tuple[str, str]]:
    """(normalised name, requirement with its hashes) for each entry of a hash-pinned lock, in order."""
    entries: list[tuple[str, str]] = []
    logical = ""
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.strip()
            if line.startswith("#") and not logical:
                continue
            logical += " " + line.rstrip("\\").strip()
            if line.endswith("\\"):
                continue
            logical = logical.split(" #", 1)[0].strip()
            match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", logical)
            if match:
                entries.append((re.sub(r"[-_.]+", "-", match.group(0)).lower(), logical))
            logical = ""
    return entries


def wheel_targets(wheel: str) -> set[str]:
    """What a wheel writes outside its own .dist-info: site-packages top-level names, scripts, data."""
    import zipfile

    targets: set[str] = set()
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            parts = name.split("/")
            if parts[0].endswith(".dist-info"):
                if parts[-1] == "entry_points.txt":
                    section = ""
                    for line in zf.read(name).decode("utf-8", "replace").splitlines():
                        line = line.strip()
                        if line.startswith("["):
                            section = line
                        elif "=" in line and section in ("[console_scripts]", "[gui_scripts]"):
                            targets.add("bin/" + line.split("=", 1)[0].strip())
                continue
            if parts[0].endswith(".data") and len(parts) > 2:
                scheme, rest = parts[1], parts[2:]
                if scheme in ("purelib", "platlib"):
                    targets.add(rest[0])
                elif scheme == "scripts":
                    targets.add("bin/" + rest[0])
                else:
                    targets.add(scheme + "/" + rest[0])
                continue
            targets.add(parts[0])
    return targets


def _wheel_for(name: str, wheels: str) -> str | None:
    for f in sorted(os.listdir(wheels)):
        if f.endswith(".whl") and re.sub(r"[-_.]+", "-", f.split("-", 1)[0]).lower() == name:
            return os.path.join(wheels, f)
    return None


# Cost model of the builder's work, in seconds on one core (measured on numpy, scipy, pandas, scikit-learn):
PIP_START = 0.8  # a pip process importing itself from its wheel
PIP_PER_BYTE = 0.02e-6  # unpacking and recording, per uncompressed byte
PIP_PER_FILE = 0.3e-3
COMPILE_PER_BYTE = 0.15e-6  # compiling, per byte of .py outside test suites


def wheel_costs(wheel: str) -> tuple[float, float]:
    """Estimated (pip, compile) seconds for a wheel, from its zip directory."""
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        infos = zf.infolist()
    unpacked = sum(i.file_size for i in infos)
    sources = sum(i.file_size for i in infos if i.filename.endswith(".py") and "/tests/" not in i.filename)
    return unpacked * PIP_PER_BYTE + len(infos) * PIP_PER_FILE, sources * COMPILE_PER_BYTE


def plan_groups(entries: Sequence[tuple[str, str]], wheels: str) -> list[list[tuple[str, str]]]:
    """Split the lock in (at most) two groups that write no path in common, in the order to install them.

    Distributions whose wheels write a common top-level name, script or data path stay together (two
    pips would race on that path). The first group installs and then compiles while the second still
    installs; the split minimises the estimated end, max(pip A + compile A, pip B) + compile B, over every
    split of up to 16 blocks (else the lock stays whole). Deterministic: the same lock and wheels give
    the same groups.
    """
    names = [n for n, _ in entries]
    parent = {n: n for n in names}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    costs: dict[str, tuple[float, float]] = {}
    owner: dict[str, str] = {}
    for name in names:
        wheel = _wheel_for(name, wheels)
        if wheel is None:
            return [list(entries)]  # an sdist or a missing wheel: pip says what is wrong, in one group
        costs[name] = wheel_costs(wheel)
        for target in sorted(wheel_targets(wheel)):
            if target in owner:
                parent[find(name)] = find(owner[target])
            else:
                owner[target] = name
    components: dict[str, list[str]] = {}
    for name in names:
        components.setdefault(find(name), []).append(name)
    blocks = sorted(components.values(), key=sorted)
    if not 2 <= len(blocks) <= 16:
        return [list(entries)]
    block_cost = [(sum(costs[n][0] for n in b), sum(costs[n][1] for n in b)) for b in blocks]
    total_pip = sum(c[0] for c in block_cost)
    total_compile = sum(c[1] for c in block_cost)
    best: tuple[float, int] = (PIP_START + total_pip + total_compile, 0)  # one group: no split
    for mask in range(1, (1 << len(blocks)) - 1):
        pip_a = sum(c[0] for i, c in enumerate(block_cost) if mask >> i & 1)
        compile_a = sum(c[1] for i, c in enumerate(block_cost) if mask >> i & 1)
        end = max(PIP_START + pip_a + compile_a, PIP_START + total_pip - pip_a) + total_compile - compile_a
        best = min(best, (end, mask))
    if best[1] == 0:
        return [list(entries)]
    first = {n for i, b in enumerate(blocks) if best[1] >> i & 1 for n in b}
    by_name = dict(entries)
    return [[(n, by_name[n]) for n in names if n in first], [(n, by_name[n]) for n in names if n not in first]]


def split_tops(site_packages: str, tops: Sequence[str], parts: int) -> list[list[str]]:
    """Top-level entries in at most ``parts`` jobs of about equal ``.py`` bytes: largest first to the lightest
    job, ties by name, each job sorted (deterministic)."""
    def size(top: str) -> int:
        path = os.path.join(site_packages, top)
        files = python_sources(path) if os.path.isdir(path) and not os.path.islink(path) else [path]
        return sum(os.path.getsize(f) for f in files if f.endswith(".py") and os.path.isfile(f))

    jobs: list[tuple[int, int, list[str]]] = [(0, i, []) for i in range(max(1, parts))]
    for weight, top in sorted(((size(t), t) for t in tops), key=lambda wt: (-wt[0], wt[1])):
        load, i, names = min(jobs)
        jobs[i] = (load + weight, i, [*names, top])
    return [sorted(names) for _, _, names in jobs if names]


def _compile_job(site_packages: str, tops: Sequence[str], strip: bool, keep: Sequence[str]) -> subprocess.Popen[bytes]:
    """Compile these entries in a fresh interpreter: the bytecode depends only on them, never on another job."""
    flags = (["--strip-sources"] if strip else []) + [f"--keep-source={k}" for k in keep] + [f"--top={t}" for t in tops]
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--compile-unit", "", site_packages, *flags])


# long: one loop over the groups: wait for each pip, prune its entries and start its compile jobs
def install_and_compile(
    lock: str,
    pip: Sequence[str],
    wheels: str,
    site_packages: str,
    *,
    work: str,
    prune_patterns: Sequence[str],
    rules: stage_prune.Rules,
    pyc: bool,
    strip_sources: bool,
    keep_sources: Sequence[str],
) -> None:
    """Install the lock with one pip per group, at once; prune and compile each group as soon as it is in, in fresh
    interpreters over fixed sets of entries (the last group in two jobs: no pip is left to use the second core)."""
    import time

    start = time.monotonic()
    groups = plan_groups(read_lock(lock), wheels)
    os.makedirs(work, exist_ok=True)
    procs = []
    for i, group in enumerate(groups):
        path = os.path.join(work, f"group-{i}.lock")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for _, line in group))
        procs.append(subprocess.Popen([sys.executable, *pip, "-r", path]))
    compiling: list[subprocess.Popen[bytes]] = []
    try:
        for i, (proc, group) in enumerate(zip(procs, groups), 1):
            names = ", ".join(n for n, _ in group)
            if proc.wait() != 0:
                raise SystemExit(f"slimbuild-stage: pip failed (exit {proc.returncode}) installing {names}")
            _log(f"group {i}/{len(groups)} installed at {time.monotonic() - start:.1f}s: {names}")
            tops = sorted(_installed_tops(site_packages, [n for n, _ in group]))
            pruned = stage_prune.prune(site_packages, prune_patterns, rules, tops=tops)
            _log(f"group {i}/{len(groups)}: {pruned} bytes pruned")
            if pyc:
                parts = 2 if i == len(groups) else 1  # the other groups compile beside a pip
                for job in split_tops(site_packages, tops, parts):
                    compiling.append(_compile_job(site_packages, job, strip_sources, keep_sources))
        for job_proc in compiling:
            if job_proc.wait() != 0:
                raise SystemExit(f"slimbuild-stage: compiling failed (exit {job_proc.returncode})")
        if pyc:
            _log(f"{len(compiling)} compile jobs done by {time.monotonic() - start:.1f}s")
    finally:
        for proc in [*procs, *compiling]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    shutil.rmtree(work, ignore_errors=True)


def _log(message: str) -> None:
    print(f"slimbuild-stage: {message}", file=sys.stderr, flush=True)


def _installed_tops(site_packages: str, names: Sequence[str]) -> set[str]:
    """The site-packages top-level entries that pip recorded for these distributions (from their RECORD)."""
    import csv

    wanted = set(names)
    tops: set[str] = set()
    for entry in sorted(os.listdir(site_packages)):
        if not entry.endswith(".dist-info"):
            continue
        dist = re.sub(r"[-_.]+", "-", entry[: -len(".dist-info")].rsplit("-", 1)[0]).lower()
        if dist not in wanted:
            continue
        with open(os.path.join(site_packages, entry, "RECORD"), encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                if row and not row[0].startswith(("../", "/")):
                    top = row[0].split("/", 1)[0]
                    if not top.endswith(".dist-info"):
                        tops.add(top)
    return tops


# ---------------------------------------------------------------- staging


MINIMAL_PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
MINIMAL_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def stage(venv: str, root: str, uid: int, passwd: str = "copy", etc: str = "/etc") -> None:
    """Move the venv under the staging root, with passwd and group entries for the runtime uid.

    ``passwd="copy"`` extends this image's files (the runtime stage has the same base); ``"minimal"``
    writes root, nobody and the app user only (a distroless runtime, whose files differ from the builder's).
    """
    for sub in ("opt", "etc", "app"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    dest = os.path.join(root, venv.lstrip("/"))  # the same absolute path below the staging root
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.rename(venv, dest)
    shell = "/usr/sbin/nologin" if passwd == "copy" else "/sbin/nologin"
    for name, minimal, line in (
        ("passwd", MINIMAL_PASSWD, f"app:x:{uid}:{uid}:app:/app:{shell}\n"),
        ("group", MINIMAL_GROUP, f"app:x:{uid}:\n"),
    ):
        dest = os.path.join(root, "etc", name)
        if passwd == "copy":
            shutil.copy2(os.path.join(etc, name), dest)
            with open(dest, "a", encoding="utf-8") as fh:
                fh.write(line)
        else:
            with open(dest, "w", encoding="utf-8") as fh:
                fh.write(minimal + line)
            os.chmod(dest, 0o644)


MERGED_USR = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def install_debs(debs: Sequence[str], root: str, system_root: str = "/") -> None:
    """Extract each .deb under root (``dpkg-deb -x``: offline, no maintainer scripts), in the given order.

    Where the image's ``/lib`` (``/bin`` ...) is a link into ``/usr`` (merged /usr, Debian 12), what a package
    puts there moves below ``usr/``: a real ``lib/`` in the layer would replace the base's link.
    """
    for deb in debs:
        try:
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        except FileNotFoundError:
            sys.exit("slimbuild-stage: dpkg-deb is not in the builder image: system-packages needs a Debian builder")
        _log(f"extracted {os.path.basename(deb)}")
    for name in MERGED_USR:
        top = os.path.join(root, name)
        if os.path.isdir(top) and not os.path.islink(top) and os.path.islink(os.path.join(system_root, name)):
            shutil.copytree(top, os.path.join(root, "usr", name), symlinks=True, dirs_exist_ok=True)
            shutil.rmtree(top)


def clamp_mtimes(root: str, epoch: int) -> None:
    """Set every entry under root (root included, links not followed) to epoch."""
    os.utime(root, (epoch, epoch), follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.utime(os.path.join(dirpath, name), (epoch, epoch), follow_symlinks=False)


# ---------------------------------------------------------------- one layer per distribution

LAYOUT_VERSION = "slimbuild-layers v1"  # image/layers.py writes the layout file
SKELETON = "skel"
UNIT_EPOCH = 315532800  # every unit's mtime: fixed (the zip epoch), so a layer never depends on the project


def read_layout(path: str) -> list[tuple[str, list[str]]]:
    """(key, canonical names) per unit of the layout file, in its order."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    if not lines or lines[0] != LAYOUT_VERSION:
        raise SystemExit(f"slimbuild-stage: {path} is not a {LAYOUT_VERSION} file")
    units = []
    for line in lines[1:]:
        key, *names = line.split()
        if not re.fullmatch(r"[0-9a-f]{16}", key) or not names:
            raise SystemExit(f"slimbuild-stage: bad layout line in {path}: {line!r}")
        units.append((key, names))
    return units


def _dist_infos(site_packages: str) -> dict[str, str]:
    """Canonical distribution name -> its .dist-info directory name in site-packages."""
    found = {}
    for entry in sorted(os.listdir(site_packages)):
        if entry.endswith(".dist-info") and os.path.isdir(os.path.join(site_packages, entry)):
            found[re.sub(r"[-_.]+", "-", entry[: -len(".dist-info")].rsplit("-", 1)[0]).lower()] = entry
    return found


def _record_paths(site_packages: str, dist_info: str) -> list[str]:
    """The absolute paths a distribution's RECORD lists (its files, scripts and data), in RECORD's order."""
    import csv

    paths = []
    with open(os.path.join(site_packages, dist_info, "RECORD"), encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh):
            if row and row[0]:
                paths.append(os.path.normpath(os.path.join(site_packages, row[0])))
    return paths


def _move_into(path: str, unit_root: str) -> None:
    dest = unit_root + path
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.rename(path, dest)


def split_units(venv: str, site_packages: str, stage_root: str, units: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """Move each unit's distributions (every file their RECORD lists that is still there, and their whole
    .dist-info) from the venv to ``<stage_root>/<key>/<same absolute path>``. What no unit owns stays in the
    venv (its skeleton). A path two distributions list goes with the first unit. Returns the unit roots."""
    venv = os.path.normpath(venv)
    infos = _dist_infos(site_packages)
    roots = []
    for key, names in units:
        unit_root = os.path.join(stage_root, key)
        os.makedirs(unit_root, exist_ok=True)  # a unit whose files were all pruned is an empty layer
        roots.append(unit_root)
        for name in sorted(names):
            dist_info = infos.get(name)
            if dist_info is None:
                continue  # pruned whole (an installer the image does not need)
            for path in _record_paths(site_packages, dist_info):
                if path.startswith(venv + os.sep) and os.path.lexists(path) and not os.path.isdir(path):
                    _move_into(path, unit_root)
            info_dir = os.path.join(site_packages, dist_info)
            for dirpath, _dirs, filenames in os.walk(info_dir):
                for f in sorted(filenames):
                    _move_into(os.path.join(dirpath, f), unit_root)
    _remove_empty_dirs(site_packages)
    return roots


def _remove_empty_dirs(top: str) -> None:
    """Remove the directories below top (not top itself) that the moves left empty."""
    for dirpath, _dirs, _files in os.walk(top, topdown=False):
        if dirpath != top and not os.listdir(dirpath):
            os.rmdir(dirpath)


def compile_units(roots: Sequence[str], site_packages: str, *, strip_sources: bool, keep_sources: Sequence[str]) -> None:
    """Compile each unit in a fresh interpreter of its own (two at a time), so that its bytecode depends only
    on its own sources, never on what this process compiled before."""
    import subprocess

    flags = ["--strip-sources"] if strip_sources else []
    for name in keep_sources:
        flags += ["--keep-source", name]
    pending = list(roots)
    running: list[subprocess.Popen[bytes]] = []
    while pending or running:
        while pending and len(running) < 2:
            root = pending.pop(0)
            cmd = [sys.executable, os.path.abspath(__file__), "--compile-unit", root, site_packages, *flags]
            running.append(subprocess.Popen(cmd))
        proc = running.pop(0)
        if proc.wait() != 0:
            raise SystemExit(f"slimbuild-stage: compiling a layer failed (exit {proc.returncode})")


def _compile_unit_main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="slimbuild-stage --compile-unit")
    ap.add_argument("root")
    ap.add_argument("site_packages")
    ap.add_argument("--strip-sources", action="store_true")
    ap.add_argument("--keep-source", action="append", default=[])
    ap.add_argument("--top", action="append", help="only these top-level entries (install_and_compile's jobs)")
    args = ap.parse_args(argv)
    staged = args.root + args.site_packages
    if os.path.isdir(staged):
        count = compile_sources(
            staged, strip_sources=args.strip_sources, keep_sources=args.keep_source, tops=args.top, staged_at=args.root
        )
        if args.top:
            _log(f"{count} modules compiled ({', '.join(args.top[:4])}{' ...' if len(args.top) > 4 else ''})")
    return 0


def clamp_unit(root: str) -> None:
    """Every directory of a unit 0755 and every entry at UNIT_EPOCH: the directories several layers hold
    (opt/, site-packages/, bin/ ...) are then the identical entry in each."""
    for dirpath, dirnames, _files in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    os.chmod(root, 0o755)
    clamp_mtimes(root, UNIT_EPOCH)


def _rules(args: argparse.Namespace) -> stage_prune.Rules:
    """The pruning rules for this venv: the --keep-file patterns, the languages of the builder's environment
    (the base's) and --keep-locale, stubs kept when a type checker is installed or in the lock."""
    locked = [name for name, _ in read_lock(args.install)] if args.install else []
    stubs = stage_prune.stub_readers_installed(args.site_packages) or any(n in stage_prune.STUB_READERS for n in locked)
    locales = [*stage_prune.environment_locales(os.environ), *args.keep_locale]
    return stage_prune.Rules(keep=args.keep_file, locales=locales, stubs=stubs, jit=args.keep_source)


# long: the command line and the order of the steps, each one call
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Finish the builder stage's venv: prune, compile, stage and clamp.")
    ap.add_argument("--venv", default=sys.prefix)
    ap.add_argument("--site-packages", default=sysconfig.get_path("purelib"))
    ap.add_argument("--stage", default="/stage")
    ap.add_argument("--epoch", type=int, required=True)
    ap.add_argument("--uid", type=int, required=True)
    ap.add_argument("--passwd", choices=("copy", "minimal"), default="copy")
    ap.add_argument("--etc", default="/etc", help="where the passwd and group files to copy are")
    ap.add_argument("--prune", action="append", default=[])
    ap.add_argument("--pyc", action="store_true")
    ap.add_argument("--strip-sources", action="store_true")
    ap.add_argument("--keep-source", action="append", default=[])
    ap.add_argument("--keep-file", action="append", default=[], help="a pattern (relative to site-packages) never pruned")
    ap.add_argument("--keep-locale", action="append", default=[], help="a language whose translations stay (en stays)")
    ap.add_argument("--deb", action="append", default=[], help="a .deb to extract into the staging root (system-packages)")
    ap.add_argument("--install", metavar="LOCK", help="install this lock first, one pip per group (pip's command after --)")
    ap.add_argument("--wheels", default="/wheels/", help="the wheelhouse (to group the lock by what each wheel writes)")
    ap.add_argument("--layers", metavar="LAYOUT", help="stage one root per unit of this layout file (image/layers.py)")
    ap.add_argument("--in-place", metavar="WORK", help="finish the venv where it is, no --stage (stage_inplace.py); remove WORK")
    ap.add_argument("pip", nargs=argparse.REMAINDER, help="-- PIP_MAIN install ARGS...: how to run pip, without -r")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--compile-unit"]:
        return _compile_unit_main(argv[1:])
    args = ap.parse_args(argv)
    pip = args.pip[1:] if args.pip[:1] == ["--"] else list(args.pip)  # only the separator, not pip's own "--"
    rules = _rules(args)
    if args.install:
        if not pip:
            ap.error("--install needs pip's command after --")
        install_and_compile(
            args.install, pip, args.wheels, args.site_packages, work=os.path.join(args.in_place or "/tmp", "slimbuild-groups"),
            prune_patterns=args.prune,
            rules=rules, pyc=args.pyc and not args.layers, strip_sources=args.strip_sources, keep_sources=args.keep_source,
        )
    stage_prune.prune(args.site_packages, args.prune, rules)
    for name in OTHER_SHELLS:
        _remove(os.path.join(args.venv, "bin", name))
    roots = split_units(args.venv, args.site_packages, args.stage, read_layout(args.layers)) if args.layers else []
    if args.pyc and (roots or not args.install):  # what no unit holds (or the whole venv) compiles here
        compile_sources(args.site_packages, strip_sources=args.strip_sources, keep_sources=args.keep_source)
    if args.pyc and roots:  # by the venv's interpreter: before the venv moves
        compile_units(roots, args.site_packages, strip_sources=args.strip_sources, keep_sources=args.keep_source)
    for site in [root + args.site_packages for root in roots] or [args.site_packages]:
        stage_prune.rewrite_records(site)  # after the bytecode: a stripped source's row names its .pyc
    if args.in_place:  # the bundled venv.sh (no --deb, no --layers): stage_inplace.py lies beside this script
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import stage_inplace  # type: ignore[import-not-found]

        stage_inplace.finish_in_place(args.venv, args.uid, args.epoch, args.in_place, etc=args.etc)
        return 0
    skeleton = os.path.join(args.stage, SKELETON) if args.layers else args.stage
    stage(args.venv, skeleton, args.uid, args.passwd, args.etc)
    install_debs(args.deb, skeleton)  # system-packages travel with the venv's skeleton (its own layer when layered)
    clamp_mtimes(skeleton, args.epoch)
    for root in roots:
        clamp_unit(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
