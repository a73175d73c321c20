"""Prove that the slimbuild CLI prints byte-identical output before and after a refactor.

What it proves: for a fixed set of CLI invocations (the cases below), two source trees of slimbuild
produce the same stdout, stderr, exit code and side effects (files the command wrote into the project
copy or the wheel cache). Only the slimbuild code differs between the two captures: the project inputs
are read from the same checkout (``--inputs``, default: the checkout this script lives in), the
interpreter and its site-packages are the same, and every run is isolated the same way.

Run it::

    # everything at once: a temporary worktree of REV is "before", this checkout is "after"
    .venv/bin/python scripts/compare_outputs.py run --before 155cc69

    # or step by step
    .venv/bin/python scripts/compare_outputs.py capture --tree /work/wt-base --out /tmp/cmp-base
    .venv/bin/python scripts/compare_outputs.py capture --tree .            --out /tmp/cmp-after
    .venv/bin/python scripts/compare_outputs.py compare /tmp/cmp-base /tmp/cmp-after   # exit 1 if any differ

``capture`` writes ``OUTDIR/<case>.{stdout,stderr,rc,files}`` plus ``OUTDIR/_meta.json`` (not compared;
``compare`` warns when the two captures read different project inputs or a different wheel seed).

How a case runs (the isolation that makes a capture deterministic against itself):

* The CLI runs as ``PYTHON -c BOOTSTRAP TREE ...``: the bootstrap drops the cwd entry ``python -c`` puts
  first on ``sys.path`` (the console script has none; with it, the ``shadowing`` project's own
  ``requests.py`` shadowed the real requests and slimbuild died with exit 70), removes the editable-install
  finder of ``.venv`` (which maps ``slimbuild.*`` to /work/main and would silently serve a module the tree
  lacks), puts TREE first, and after the run checks that every ``slimbuild*`` module came from TREE; the
  capture aborts otherwise. ``capture`` first prints where ``slimbuild`` loads from.
* Each case gets a fresh copy of its project at a fixed path, ``/tmp/slimbuild-compare/<project>``
  (the same for both captures, so absolute paths in messages match), with every mtime set to a fixed
  time; the copy holds the files ``git ls-files -co --exclude-standard`` lists (no ``__pycache__``, no
  ignored leftovers). The cwd is the copy; the project argument is ``.``.
* Each case gets a fresh, empty ``SLIMBUILD_CACHE`` at a fixed path (``/tmp/slimbuild-compare-cache``)
  holding only hard links to the seeded wheels (below): no replay outcome, parse cache, graph cache or
  wheel-module index survives from one case to the next, so no cache can mask a difference.
* The environment is built from scratch: ``PYTHONHASHSEED=0``, ``TZ=UTC``, ``LANG``/``LC_ALL=C.UTF-8``,
  ``CI=true``, ``COLUMNS=80`` (click wraps help to the terminal width), a fixed empty ``HOME`` and
  ``XDG_CACHE_HOME``, no ``VIRTUAL_ENV``, no ``SLIMBUILD_*`` but the cache, no ``PYTHONPATH``, no
  ``SOURCE_DATE_EPOCH``, ``GIT_CEILING_DIRECTORIES=/tmp`` (the copies are not in a git repo), and
  ``DOCKER_HOST`` pointing at a socket that does not exist (no case may reach a real engine).
* pip is offline and host-independent: ``PIP_CONFIG_FILE=/dev/null`` (the host's pip.conf adds extra
  indexes and a constraints file), ``PIP_NO_INDEX=1``, ``PIP_FIND_LINKS=/tmp/slimbuild-compare-seed/wheelhouse``.
  So ``dockerfile`` of a project without a lock runs pip-compile against a fixed local wheelhouse, not
  against PyPI's current state, and a later capture resolves exactly as the baseline did.
* The wheel seed (``/tmp/slimbuild-compare-seed``) is made once, online (PyPI, with the same isolation
  otherwise), by running ``dockerfile`` on every project with the capturing tree; its wheels become the
  wheelhouse and the per-case cache. It is reused until ``seed --refresh`` (refreshing it changes what
  unlocked projects lock to, so recapture the baseline afterwards). The tests' own wheel fixture
  (tests/integration/conftest.py: ``pip download`` of a few small wheels into a persistent dir) is the model.
* Outputs have the tree's absolute path replaced by ``<TREE>`` (the two trees live at different paths).
* Warm cases (``*.warm``) run the command once, wait 2.5 s (slimbuild does not store a replay outcome
  whose inputs changed in the last 2 s: the copy's ctimes are fresh), and record the second, replayed
  run; their ``.files`` says whether a stored outcome was there to replay.
* Captures take a lock (``/tmp/slimbuild-compare.lock``): two at once would share the fixed paths.

Cases (see ``cases()``; 110 with the current inputs):

* ``cli.*``: ``--version``, ``--help``, every command's ``--help``; usage errors (unknown command,
  unknown option, missing path, a file as PATH, ``lock --locked``: ``lock`` has no ``--locked``).
* ``manifest.*`` (cwd: the fixtures dir): ``inspect`` (text and ``--json``) of two manifest files, of a
  ``docker save``-style tar and of a corrupt manifest; ``inspect IMAGE`` and of a missing file (both ask
  the engine: the no-engine error); ``diff`` old/new, ``--all``, reversed, same, corrupt, missing. The
  fixtures are written by this script (stdlib only, fixed bytes); ``old.manifest.json`` is byte-identical
  to ``with_image(_sample(), IMAGE, smoke=SMOKE)`` of tests/unit/test_manifest.py at 155cc69.
* per project under ``tests/golden/projects/*`` and ``examples/*`` (``golden-<name>.*``,
  ``example-<name>.*``): ``analyze``, ``analyze --json``, ``check``, ``check --json``, warm ``check``
  and warm ``analyze --json``, ``dockerfile --base-image <digest-pinned ref>`` (digest-pinned: no engine
  is asked; runs lock: pip-compile against the offline wheelhouse unless a fresh lock is committed),
  ``dockerfile --locked`` (a refusal where no lock is committed), ``lock`` and ``lock --json``.
* extra on examples/kitchen-sink: ``dockerfile --json``, ``--template distroless``, ``--no-pyc``,
  ``--locked`` with a stale lock (``--target-python 3.12 --json``), ``analyze --target-python 3.12``,
  ``check -e explore.py``, ``lock --target-python 3.12`` (no cp312 wheels offline: exit 4), ``lock -P numpy``,
  ``build --locked`` (the no-engine error after the lock check) and ``build --locked`` with a stale lock.

Nondeterminism found and removed: the cwd on ``sys.path`` (above); pip resolving against PyPI's moving
state and the host's pip.conf (offline wheelhouse); replay outcomes stored or not depending on timing
(fresh cache per case; warm cases wait). No case had to be dropped.

Standard library only; Python 3.10+.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORK = Path("/tmp/slimbuild-compare")  # project copies, fixtures, HOME
CACHE = Path("/tmp/slimbuild-compare-cache")  # SLIMBUILD_CACHE of every case, wiped before each
SEED = Path("/tmp/slimbuild-compare-seed")  # persistent: wheels fetched once, online
LOCK_FILE = Path("/tmp/slimbuild-compare.lock")
SEED_STAMP = SEED / ".complete-v1"
WHEELHOUSE = SEED / "wheelhouse"
FIXTURES = WORK / "_fixtures"
HOME = WORK / "_home"
XDG_CACHE = WORK / "_xdg-cache"
NO_ENGINE = f"unix://{WORK}/no-docker.sock"
BASE_REF = "slimbuild-test/debian-python:bookworm@sha256:" + "0" * 64
FIXED_MTIME = 1_577_836_800  # 2020-01-01T00:00:00Z
RACY_WAIT = 2.5  # slimbuild's evidence.RACY_NS is 2 s
CASE_TIMEOUT = 1800
TREE_MARK = b"<TREE>"
PARTS = ("rc", "stdout", "stderr", "files")
COMMANDS = ("analyze", "check", "lock", "dockerfile", "build", "inspect", "diff")
PASS_THROUGH = (  # network reachability for the online seed; no effect on what slimbuild prints
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
)  # fmt: skip

# Runs the CLI from argv[1] (a source tree); argv[2] is a file to report stray slimbuild modules to.
BOOTSTRAP = r"""
import importlib, os, sys
tree = os.path.realpath(sys.argv[1]); leaks = sys.argv[2]; args = sys.argv[3:]
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]  # `python -c` puts the cwd first; the console script does not
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in str(getattr(f, "__module__", ""))]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in str(getattr(h, "__module__", ""))]
sys.path[:] = [p for p in sys.path if not p.startswith("__editable__")]
sys.path_importer_cache.clear()
sys.path.insert(0, tree)
importlib.invalidate_caches()

def outside():
    bad = []
    for name, mod in sorted(sys.modules.items()):
        if name == "slimbuild" or name.startswith("slimbuild."):
            for f in [getattr(mod, "__file__", None), *list(getattr(mod, "__path__", None) or [])]:
                if f and not os.path.realpath(f).startswith(tree + os.sep):
                    bad.append(f"{name}: {f}")
    return bad

if leaks == "where":
    import slimbuild
    print(slimbuild.__file__)
    print("\n".join(outside()))
    sys.exit(0)
rc = 70
try:
    from slimbuild.cli import main
    rc = main(args)
finally:
    sys.stdout.flush(); sys.stderr.flush()
    bad = outside()
    if bad:
        with open(leaks, "w", encoding="utf-8") as fh:
            fh.write("\n".join(bad) + "\n")
sys.exit(rc)
"""


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One CLI invocation: its argv, where it runs, and what runs before it (warm cases)."""

    name: str
    argv: tuple[str, ...]
    project: Path | None = None  # copied to WORK/<name>, the cwd; None: the cwd is FIXTURES
    warmups: int = 0  # runs of the same argv before the recorded one, RACY_WAIT apart


@dataclass(frozen=True)
class Project:
    label: str  # golden-compat, example-kitchen-sink
    copy_name: str  # compat, kitchen-sink
    source: Path


def projects(inputs: Path) -> list[Project]:
    """Every project under tests/golden/projects/* and examples/*, sorted."""
    found: list[Project] = []
    for group, folder in (("golden", inputs / "tests" / "golden" / "projects"), ("example", inputs / "examples")):
        for p in sorted(folder.iterdir()) if folder.is_dir() else []:
            if p.is_dir() and not p.name.startswith((".", "_")):
                found.append(Project(f"{group}-{p.name}", p.name, p))
    names = [p.copy_name for p in found]
    if len(set(names)) != len(names):
        raise SystemExit(f"compare_outputs: two projects share a name: {names}")
    return found


def cases(inputs: Path) -> list[Case]:
    """The fixed case list; the project inputs come from ``inputs``."""
    out: list[Case] = [
        Case("cli.version", ("--version",)),
        Case("cli.help", ("--help",)),
        *(Case(f"cli.help-{c}", (c, "--help")) for c in COMMANDS),
        Case("cli.usage-bogus-command", ("bogus",)),
        Case("cli.usage-bogus-option", ("analyze", "--bogus")),
        Case("cli.usage-missing-path", ("analyze", "/tmp/slimbuild-compare/_does-not-exist")),
        Case("cli.usage-path-is-file", ("check", "old.manifest.json")),
        Case("cli.usage-lock-has-no-locked", ("lock", "--locked")),
        Case("manifest.inspect-old", ("inspect", "old.manifest.json")),
        Case("manifest.inspect-old-json", ("inspect", "old.manifest.json", "--json")),
        Case("manifest.inspect-new", ("inspect", "new.manifest.json")),
        Case("manifest.inspect-new-json", ("inspect", "new.manifest.json", "--json")),
        Case("manifest.inspect-tar", ("inspect", "image.tar")),
        Case("manifest.inspect-tar-json", ("inspect", "image.tar", "--json")),
        Case("manifest.inspect-corrupt", ("inspect", "corrupt.manifest.json")),
        Case("manifest.inspect-corrupt-json", ("inspect", "corrupt.manifest.json", "--json")),
        Case("manifest.inspect-missing-json", ("inspect", "missing.manifest.json")),
        Case("manifest.inspect-image-no-engine", ("inspect", "demo:latest")),
        Case("manifest.diff", ("diff", "old.manifest.json", "new.manifest.json")),
        Case("manifest.diff-all", ("diff", "old.manifest.json", "new.manifest.json", "--all")),
        Case("manifest.diff-reverse", ("diff", "new.manifest.json", "old.manifest.json")),
        Case("manifest.diff-same", ("diff", "old.manifest.json", "old.manifest.json", "--all")),
        Case("manifest.diff-corrupt", ("diff", "old.manifest.json", "corrupt.manifest.json")),
        Case("manifest.diff-missing", ("diff", "old.manifest.json", "missing.manifest.json")),
    ]
    for p in projects(inputs):
        base = f"{p.label}."
        out += [
            Case(base + "analyze", ("analyze", "."), p.source),
            Case(base + "analyze-json", ("analyze", ".", "--json"), p.source),
            Case(base + "check", ("check", "."), p.source),
            Case(base + "check-json", ("check", ".", "--json"), p.source),
            Case(base + "check.warm", ("check", "."), p.source, warmups=1),
            Case(base + "analyze-json.warm", ("analyze", ".", "--json"), p.source, warmups=1),
            Case(base + "dockerfile", ("dockerfile", ".", "--base-image", BASE_REF), p.source),
            Case(base + "dockerfile-locked", ("dockerfile", ".", "--locked", "--base-image", BASE_REF), p.source),
            Case(base + "lock", ("lock", "."), p.source),
            Case(base + "lock-json", ("lock", ".", "--json"), p.source),
        ]
        if p.label == "example-kitchen-sink":
            out += [
                Case(base + "dockerfile-json", ("dockerfile", ".", "--json", "--base-image", BASE_REF), p.source),
                Case(
                    base + "dockerfile-distroless",
                    ("dockerfile", ".", "--template", "distroless", "--base-image", BASE_REF),
                    p.source,
                ),
                Case(base + "dockerfile-no-pyc", ("dockerfile", ".", "--no-pyc", "--base-image", BASE_REF), p.source),
                Case(
                    base + "dockerfile-locked-stale-json",
                    ("dockerfile", ".", "--locked", "--json", "--target-python", "3.12", "--base-image", BASE_REF),
                    p.source,
                ),
                Case(base + "analyze-target-3.12", ("analyze", ".", "--target-python", "3.12"), p.source),
                Case(base + "check-entry-explore", ("check", ".", "-e", "explore.py"), p.source),
                Case(base + "lock-target-3.12", ("lock", ".", "--target-python", "3.12"), p.source),
                Case(base + "lock-upgrade-numpy", ("lock", ".", "-P", "numpy"), p.source),
                Case(base + "build-no-engine", ("build", ".", "--locked", "--base-image", BASE_REF), p.source),
                Case(base + "build-locked-stale", ("build", ".", "--locked", "--target-python", "3.12"), p.source),
            ]
    names = [c.name for c in out]
    assert len(set(names)) == len(names), "duplicate case names"
    return out


# --------------------------------------------------------------------------- fixtures (manifests, image tar)


def _canonical(doc: dict[str, Any]) -> bytes:
    """slimbuild's canonical manifest bytes (manifest.manifest_bytes)."""
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _dist(name: str, version: str, digit: str, required_by: list[str], size: int | None) -> dict[str, Any]:
    return {"hashes": ["sha256:" + digit * 64], "name": name, "required_by": required_by, "size_bytes": size, "version": version}


def _old_manifest() -> dict[str, Any]:
    """A schema-1 manifest as make_manifest() + with_image() of the base commit write it (test_manifest.py's sample)."""
    return {
        "audit": None,
        "base_image": {"digest_or_id": "python@sha256:" + "b" * 64, "local_only": False, "reference": "python:3.11-slim"},
        "declared_left_out": ["jupyter", "matplotlib"],
        "distributions": [
            _dist("numpy", "2.1.0", "1", ["numpy", "numpy.linalg"], 35_000_000),
            _dist("pandas", "2.2.3", "2", ["pandas"], 60_000_000),
            _dist("tzdata", "2024.2", "3", [], None),
        ],
        "entrypoint": {"argv": ["python", "/app/train.py"], "name": "train", "path": "train.py"},
        "excluded_sensitive": [".env", ".git"],
        "files": [
            {"kind": "source", "path": "analysis/__init__.py", "sha256": "c" * 64, "size": 0},
            {"kind": "data", "path": "data/iris.csv", "sha256": "d" * 64, "size": 4_500},
            {"kind": "source", "path": "train.py", "sha256": "a" * 64, "size": 120},
        ],
        "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": True},
        "image": {
            "added_bytes": 90_000_000,
            "id": "sha256:" + "9" * 64,
            "layer_diff_ids": ["sha256:" + "7" * 64, "sha256:" + "8" * 64],
            "layer_sizes": [100, 200],
            "size_bytes": 150_000_000,
            "tags": ["demo:abc"],
        },
        "index_sources": ["https://***@pypi.example/simple", "https://pypi.org/simple"],
        "lock_sha256": "f" * 64,
        "schema_version": 1,
        "slimbuild_version": "0.1.0",
        "smoke": [{"command": ["python", "-c", "import numpy"], "exit_code": 0, "ok": True}],
        "source_date_epoch": 1_700_000_000,
        "target": {"platform": "linux/x86_64 cp311", "python": "3.11"},
        "template": {"dockerfile_sha256": "e" * 64, "name": "slim"},
        "unparsed": ["legacy/old.py"],
        "unresolved_dynamic": ["train.py:9", "train.py:30:5"],
    }


def _new_manifest() -> dict[str, Any]:
    """The old one rebuilt after changes: every kind of difference diff reports, volatile ones too."""
    doc = json.loads(json.dumps(_old_manifest()))
    doc["audit"] = [{"fix_versions": ["2.2.4"], "id": "PYSEC-0000-1", "name": "pandas", "version": "2.2.3"}]
    doc["base_image"]["digest_or_id"] = "python@sha256:" + "c" * 64
    doc["declared_left_out"] = ["jupyter", "seaborn"]
    doc["distributions"] = [
        _dist("numpy", "2.1.1", "4", ["numpy", "numpy.linalg"], 36_000_000),
        _dist("pandas", "2.2.3", "2", ["pandas", "pandas.io"], 60_000_000),
        _dist("scipy", "1.14.0", "5", ["scipy.stats"], 40_000_000),
    ]
    doc["files"] = [
        {"kind": "source", "path": "analysis/__init__.py", "sha256": "c" * 64, "size": 0},
        {"kind": "source", "path": "analysis/model.py", "sha256": "1" * 64, "size": 300},
        {"kind": "source", "path": "train.py", "sha256": "b" * 64, "size": 140},
    ]
    doc["git"] = {"commit": "89abcdef0123456789abcdef0123456789abcdef", "dirty": False}
    doc["image"] = {
        "added_bytes": 95_000_000,
        "id": "sha256:" + "6" * 64,
        "layer_diff_ids": ["sha256:" + "7" * 64, "sha256:" + "5" * 64, "sha256:" + "4" * 64],
        "layer_sizes": [100, 250, 10],
        "size_bytes": 155_000_000,
        "tags": ["demo:def", "demo:latest"],
    }
    doc["lock_sha256"] = "0" * 64
    doc["smoke"] = [{"command": ["python", "/app/train.py"], "exit_code": 1, "ok": False}]
    doc["source_date_epoch"] = 1_700_086_400
    doc["target"] = {"platform": "linux/aarch64 cp312", "python": "3.12"}
    doc["unresolved_dynamic"] = []
    return doc


def _tar_member(
    name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, mode: int = 0o644
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = mode
    info.mtime = FIXED_MTIME
    return info, data


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def _image_tar(manifest: dict[str, Any]) -> bytes:
    """A ``docker save`` tar (legacy layout): a base layer and an app layer carrying the manifest, labelled."""
    raw = _canonical({**manifest, "image": None, "smoke": []})  # the in-image copy is made before the build
    base = _tar([
        _tar_member("bin/", kind=tarfile.DIRTYPE, mode=0o755),
        _tar_member("bin/su", b"\x7fELF", mode=0o4755),
        _tar_member("usr/lib/python3.11/site-packages/pip/__init__.py", b"pip"),
        _tar_member("etc/old.conf", b"old"),
    ])  # fmt: skip
    app = _tar([
        _tar_member("usr/lib/python3.11/site-packages/.wh.pip"),
        _tar_member("etc/.wh.old.conf"),
        _tar_member("app/", kind=tarfile.DIRTYPE, mode=0o755),
        _tar_member("app/train.py", b"print(1)\n"),
        _tar_member("app/.slimbuild/manifest.json", raw),
    ])  # fmt: skip
    layers = [base, app]
    compact = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    labels = {"io.slimbuild.manifest": compact, "io.slimbuild.manifest-sha256": hashlib.sha256(raw).hexdigest()}
    config = json.dumps(
        {
            "architecture": "amd64",
            "config": {"Labels": labels, "User": "10001"},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]},
        },
        sort_keys=True,
    ).encode()
    members = []
    names = []
    for i, layer in enumerate(layers):
        names.append(f"{i:064x}/layer.tar")
        members += [_tar_member(names[-1], layer), _tar_member(f"{i:064x}/VERSION", b"1.0"), _tar_member(f"{i:064x}/json", b"{}")]
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    members.append(_tar_member(config_name, config))
    index = json.dumps([{"Config": config_name, "RepoTags": ["demo:latest"], "Layers": names}]).encode()
    members.append(_tar_member("manifest.json", index))
    return _tar(members)


def write_fixtures() -> None:
    """The inputs of the inspect/diff cases, same bytes every time."""
    shutil.rmtree(FIXTURES, ignore_errors=True)
    FIXTURES.mkdir(parents=True)
    old, new = _old_manifest(), _new_manifest()
    (FIXTURES / "old.manifest.json").write_bytes(_canonical(old))
    (FIXTURES / "new.manifest.json").write_bytes(_canonical(new))
    corrupt = {**old, "distributions": [{**old["distributions"][0], "size_bytes": "big"}], "extra": 1}
    (FIXTURES / "corrupt.manifest.json").write_bytes(_canonical(corrupt))
    (FIXTURES / "image.tar").write_bytes(_image_tar(old))
    _fix_mtimes(FIXTURES)


# --------------------------------------------------------------------------- running


def _fix_mtimes(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(dirpath, name), (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    for dirpath, _dirs, _files in sorted(os.walk(root), reverse=True):
        os.utime(dirpath, (FIXED_MTIME, FIXED_MTIME))


def _project_files(source: Path) -> list[str]:
    """The project's files: tracked and untracked-but-not-ignored (git), else every file but caches."""
    proc = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-z", "-co", "--exclude-standard", "--", "."],
        capture_output=True,
        check=False,
    )
    if proc.returncode == 0:
        return sorted({f for f in proc.stdout.decode().split("\0") if f and (source / f).is_file()})
    return sorted(
        str(p.relative_to(source)) for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )  # pragma: no cover - inputs outside git


def copy_project(p: Project) -> Path:
    dest = WORK / p.copy_name
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for rel in _project_files(p.source):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p.source / rel, target, follow_symlinks=False)
    _fix_mtimes(dest)
    return dest


def _link_tree(src: Path, dest: Path) -> None:
    """Hard-link every file of src under dest (copy across filesystems); slimbuild replaces, never rewrites, cache files."""
    for dirpath, _dirs, files in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                os.link(Path(dirpath, name), dest / rel / name)
            except OSError:
                shutil.copy2(Path(dirpath, name), dest / rel / name)


def fresh_cache() -> None:
    shutil.rmtree(CACHE, ignore_errors=True)
    CACHE.mkdir(parents=True)
    seeded = SEED / "cache" / "wheels"
    if seeded.is_dir():
        _link_tree(seeded, CACHE / "wheels")


def make_env(*, online: bool, cache: Path = CACHE) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    env.update(
        PATH=os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        HOME=str(HOME),
        XDG_CACHE_HOME=str(XDG_CACHE),
        SLIMBUILD_CACHE=str(cache),
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
        TZ="UTC",
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
        CI="true",
        COLUMNS="80",
        LINES="24",
        TERM="dumb",
        GIT_CEILING_DIRECTORIES="/tmp",
        DOCKER_HOST=NO_ENGINE,
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
    )
    if not online:
        env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(WHEELHOUSE))
    return env


@dataclass
class Result:
    rc: str
    stdout: bytes
    stderr: bytes
    notes: list[str] = field(default_factory=list)


def run_cli(python: str, tree: Path, argv: Sequence[str], cwd: Path, env: dict[str, str]) -> Result:
    leaks = WORK / "_leaks.txt"
    leaks.unlink(missing_ok=True)
    try:
        proc = subprocess.run(
            [python, "-c", BOOTSTRAP, str(tree), str(leaks), *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=CASE_TIMEOUT,
            check=False,
        )
        rc, out, err = str(proc.returncode), proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = f"timeout after {CASE_TIMEOUT}s", exc.stdout or b"", exc.stderr or b""
    if leaks.exists():
        raise SystemExit(f"compare_outputs: slimbuild modules loaded from outside {tree}:\n{leaks.read_text()}")
    real = os.path.realpath(tree).encode()
    for path in sorted({real, str(tree).encode()}, key=len, reverse=True):
        out, err = out.replace(path, TREE_MARK), err.replace(path, TREE_MARK)
    return Result(rc, out, err)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(root: Path) -> dict[str, str]:
    if not root.is_dir():
        return {}
    return {
        str(p.relative_to(root)): ("symlink" if p.is_symlink() else _digest(p))
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def _cache_listing(seed_inodes: set[int]) -> list[str]:
    """What the case left in the cache: files outside analysis/ and environments/ (keyed by code stamps), minus seeded wheels."""
    lines = []
    for p in sorted(CACHE.rglob("*")):
        rel = p.relative_to(CACHE)
        if not p.is_file() or rel.parts[0] in {"analysis", "environments"} or p.name.startswith("."):
            continue
        if p.stat().st_ino in seed_inodes:
            continue
        lines.append(f"cache: {rel} sha256:{_digest(p)}")
    return lines


def run_case(case: Case, python: str, tree: Path, env: dict[str, str], project_map: dict[Path, Project]) -> Result:
    fresh_cache()
    shutil.rmtree(XDG_CACHE, ignore_errors=True)
    XDG_CACHE.mkdir(parents=True)
    seed_inodes = {p.stat().st_ino for p in CACHE.rglob("*") if p.is_file()}
    cwd = copy_project(project_map[case.project]) if case.project is not None else FIXTURES
    before = _snapshot(cwd)
    notes: list[str] = []
    for _ in range(case.warmups):
        time.sleep(RACY_WAIT)
        warm = run_cli(python, tree, case.argv, cwd, env)
        notes.append(f"warmup: rc {warm.rc}")
        time.sleep(RACY_WAIT)
        stored = sorted((CACHE / "analysis").glob("outcome-*.pickle")) if (CACHE / "analysis").is_dir() else []
        notes.append(f"replay outcome stored before the recorded run: {'yes' if stored else 'no'}")
    result = run_cli(python, tree, case.argv, cwd, env)
    after = _snapshot(cwd)
    for rel in sorted(set(before) | set(after)):
        if rel not in before:
            notes.append(f"project: + {rel} sha256:{after[rel]}")
        elif rel not in after:
            notes.append(f"project: - {rel}")
        elif before[rel] != after[rel]:
            notes.append(f"project: ~ {rel} sha256:{after[rel]}")
    notes += _cache_listing(seed_inodes)
    result.notes = notes or ["(no files written)"]
    return result


def where(python: str, tree: Path) -> str:
    """Where ``slimbuild`` loads from under the bootstrap; exits unless it is inside the tree."""
    HOME.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [python, "-c", BOOTSTRAP, str(tree), "where"],
        cwd=HOME,
        env=make_env(online=False),
        capture_output=True,
        text=True,
        check=False,
    )
    lines = proc.stdout.splitlines()
    real = os.path.realpath(tree) + os.sep
    if proc.returncode != 0 or not lines or not os.path.realpath(lines[0]).startswith(real) or any(lines[1:]):
        raise SystemExit(f"compare_outputs: slimbuild does not load from {tree}:\n{proc.stdout}{proc.stderr}")
    return lines[0]


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    with LOCK_FILE.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"compare_outputs: waiting for another capture ({LOCK_FILE})", file=sys.stderr)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


# --------------------------------------------------------------------------- seed


def ensure_seed(python: str, tree: Path, inputs: Path, *, refresh: bool = False) -> None:
    """Fetch, once and online, the wheels every project's lock needs; they become the offline wheelhouse."""
    wanted = [p.label for p in projects(inputs)]
    if SEED_STAMP.exists() and not refresh:
        have = json.loads(SEED_STAMP.read_text()).get("projects", [])
        extra = sorted(set(wanted) - set(have))
        if extra:
            print(f"compare_outputs: warning: the wheel seed predates {', '.join(extra)}; 'seed --refresh' (then recapture)")
        return
    print(f"compare_outputs: seeding wheels into {SEED} (online, once) with {tree}", flush=True)
    shutil.rmtree(SEED, ignore_errors=True)
    (SEED / "cache").mkdir(parents=True)
    HOME.mkdir(parents=True, exist_ok=True)
    env = make_env(online=True, cache=SEED / "cache")
    results = {}
    for p in projects(inputs):
        started = time.monotonic()
        res = run_cli(python, tree, ("dockerfile", ".", "--base-image", BASE_REF), copy_project(p), env)
        results[p.label] = res.rc
        print(f"  {p.label}: rc {res.rc} ({time.monotonic() - started:.0f} s)", flush=True)
    WHEELHOUSE.mkdir()
    for f in sorted((SEED / "cache" / "wheels").glob("*/*/*")):
        if not f.name.startswith(".") and not (WHEELHOUSE / f.name).exists():
            os.link(f, WHEELHOUSE / f.name)
    shutil.rmtree(SEED / "cache" / "analysis", ignore_errors=True)  # only the wheels are reused
    (SEED / "cache" / "wheel-modules.json").unlink(missing_ok=True)
    files = sorted(p.name for p in WHEELHOUSE.iterdir())
    stamp = {"projects": wanted, "dockerfile_rc": results, "wheels": files, "tree": str(tree)}
    SEED_STAMP.write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n")
    print(f"compare_outputs: {len(files)} wheels in {WHEELHOUSE}")


def seed_digest() -> str:
    return (
        hashlib.sha256("\n".join(sorted(p.name for p in WHEELHOUSE.iterdir())).encode()).hexdigest()
        if WHEELHOUSE.is_dir()
        else ""
    )


# --------------------------------------------------------------------------- capture / compare / run


def _git(tree: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _inputs_digest(inputs: Path) -> str:
    h = hashlib.sha256()
    for p in projects(inputs):
        for rel in _project_files(p.source):
            h.update(f"{p.label}/{rel}\0{_digest(p.source / rel)}\n".encode())
    return h.hexdigest()


def _prepare_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / "_meta.json").exists():
            raise SystemExit(f"compare_outputs: {out} is not empty and holds no capture; refusing to overwrite it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def capture(tree: Path, out: Path, inputs: Path, python: str, only: str = "") -> int:
    tree, out, inputs = tree.resolve(), out.resolve(), inputs.resolve()
    with exclusive():
        shutil.rmtree(HOME, ignore_errors=True)
        HOME.mkdir(parents=True)
        print(f"compare_outputs: slimbuild loads from {where(python, tree)}", flush=True)
        ensure_seed(python, tree, inputs)
        write_fixtures()
        _prepare_out(out)
        env = make_env(online=False)
        project_map = {p.source: p for p in projects(inputs)}
        selected = [c for c in cases(inputs) if re.search(only, c.name)]
        meta = {
            "tree": str(tree),
            "tree_rev": _git(tree, "rev-parse", "HEAD"),
            "tree_dirty": bool(_git(tree, "status", "--porcelain", "--", "slimbuild", "templates")),
            "inputs": str(inputs),
            "inputs_sha256": _inputs_digest(inputs),
            "seed_sha256": seed_digest(),
            "python": python,
            "python_version": subprocess.run([python, "-VV"], capture_output=True, text=True, check=False).stdout.strip(),
            "cases": [c.name for c in selected],
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        counts: dict[str, int] = {}
        for i, case in enumerate(selected, 1):
            started = time.monotonic()
            res = run_case(case, python, tree, env, project_map)
            (out / f"{case.name}.stdout").write_bytes(res.stdout)
            (out / f"{case.name}.stderr").write_bytes(res.stderr)
            (out / f"{case.name}.rc").write_text(res.rc + "\n")
            (out / f"{case.name}.files").write_text("\n".join(res.notes) + "\n")
            counts[res.rc] = counts.get(res.rc, 0) + 1
            print(f"[{i:3}/{len(selected)}] rc {res.rc:>3}  {time.monotonic() - started:6.1f} s  {case.name}", flush=True)
        meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        meta["exit_codes"] = dict(sorted(counts.items()))
        (out / "_meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    print(f"compare_outputs: {len(selected)} cases captured in {out}; exit codes: {dict(sorted(counts.items()))}")
    return 0


def _case_names(d: Path) -> set[str]:
    return {p.name[: -len(".rc")] for p in d.glob("*.rc")}


def _text(data: bytes) -> list[str]:
    return data.decode("utf-8", errors="backslashreplace").splitlines(keepends=True)


def compare(a: Path, b: Path) -> int:
    for d in (a, b):
        if not (d / "_meta.json").is_file():
            raise SystemExit(f"compare_outputs: {d} holds no capture (no _meta.json)")
    meta_a, meta_b = (json.loads((d / "_meta.json").read_text()) for d in (a, b))
    for key, what in (("inputs_sha256", "project inputs"), ("seed_sha256", "wheel seed"), ("python_version", "interpreter")):
        if meta_a.get(key) != meta_b.get(key):
            print(f"warning: the captures used different {what}: {meta_a.get(key)} vs {meta_b.get(key)}")
    names = sorted(_case_names(a) | _case_names(b))
    differ = 0
    for name in names:
        chunks: list[str] = []
        for part in PARTS:
            fa, fb = a / f"{name}.{part}", b / f"{name}.{part}"
            da = fa.read_bytes() if fa.exists() else None
            db = fb.read_bytes() if fb.exists() else None
            if da == db:
                continue
            if da is None or db is None:
                chunks.append(f"  {part}: only in {a if db is None else b}\n")
                continue
            diff = difflib.unified_diff(_text(da), _text(db), str(fa), str(fb), n=3)
            chunks += [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in diff]
        if chunks:
            differ += 1
            print(f"DIFFERS  {name}")
            sys.stdout.write("".join(chunks))
        else:
            print(f"same     {name}")
    print(f"{len(names)} cases, {len(names) - differ} identical, {differ} differ")
    return 1 if differ else 0


def run(before: str, after: Path, inputs: Path, python: str, out: Path, only: str = "") -> int:
    root = Path(_git(REPO, "rev-parse", "--show-toplevel") or REPO)
    tmp = Path(tempfile.mkdtemp(prefix="slimbuild-before-"))
    tree = tmp / "tree"
    try:
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(tree), before], check=True)
        capture(tree, out / "before", inputs, python, only)
        capture(after, out / "after", inputs, python, only)
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"compare_outputs: before = {before} ({out / 'before'}), after = {after} ({out / 'after'})")
    return compare(out / "before", out / "after")


def _default_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--inputs", type=Path, default=REPO, help="checkout holding the input projects")
        p.add_argument("--python", default=_default_python(), help="interpreter that runs the CLI (default: .venv/bin/python)")
        p.add_argument("--only", default="", metavar="REGEX", help="capture only the cases whose name matches")

    p_cap = sub.add_parser("capture", help="run every case with the slimbuild of --tree; write OUTDIR/<case>.*")
    p_cap.add_argument("--tree", type=Path, required=True, help="source tree holding slimbuild/ (and templates/)")
    p_cap.add_argument("--out", type=Path, required=True)
    common(p_cap)
    p_cmp = sub.add_parser("compare", help="compare two captures; exit 1 when any case differs")
    p_cmp.add_argument("a", type=Path)
    p_cmp.add_argument("b", type=Path)
    p_run = sub.add_parser("run", help="capture a temporary worktree of --before and --after, then compare")
    p_run.add_argument("--before", required=True, metavar="REV")
    p_run.add_argument("--after", type=Path, default=REPO, help="the after tree (default: this checkout)")
    p_run.add_argument("--out", type=Path, default=Path("/tmp/slimbuild-compare-run"), help="holds before/ and after/")
    common(p_run)
    p_seed = sub.add_parser("seed", help="make (or --refresh) the offline wheel seed")
    p_seed.add_argument("--tree", type=Path, default=REPO)
    p_seed.add_argument("--refresh", action="store_true")
    common(p_seed)
    args = parser.parse_args(argv)

    if args.command == "capture":
        return capture(args.tree, args.out, args.inputs, args.python, args.only)
    if args.command == "compare":
        return compare(args.a, args.b)
    if args.command == "run":
        return run(args.before, args.after.resolve(), args.inputs.resolve(), args.python, args.out.resolve(), args.only)
    with exclusive():
        HOME.mkdir(parents=True, exist_ok=True)
        ensure_seed(args.python, args.tree.resolve(), args.inputs.resolve(), refresh=args.refresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
