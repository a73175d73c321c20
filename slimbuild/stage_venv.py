"""Finish the builder stage's venv: prune, compile, stage and clamp. Runs *inside* the image.

Shipped into the build context as it is (standard library only, Python 3.8+: it runs on the image's
interpreter, not slimbuild's) and run once, by the venv's python, after pip installed the locked wheels:

1. prune what a run never needs: ``tests`` and ``__pycache__`` directories, C/Cython sources and
   headers, the installers (``--prune`` patterns, relative to site-packages), the venv's activate
   scripts for other shells. Never a ``*.so`` or a ``*.libs`` directory (``strip`` corrupts them);
2. with ``--pyc``: PEP 552 ``unchecked-hash`` bytecode, compiled in this one process in a fixed (sorted)
   order, so that the bytes are reproducible (run it with ``PYTHONHASHSEED=0``). With ``--strip-sources``
   each third-party module gets a legacy-layout ``.pyc`` beside it and its ``.py`` is removed; a
   module that does not compile keeps its source, and packages named by ``--keep-source`` (they read
   their own source at run time: numba, torch.jit ...) keep it and get ``__pycache__`` bytecode;
3. move the venv under the staging root with a passwd/group entry for the runtime uid (without one
   ``getpass.getuser()`` raises) and clamp every mtime there to ``--epoch`` (reproducible layers).

One Python process instead of a shell pipeline: the shell's per-file ``rm`` forked once for every
module (seconds for scipy and scikit-learn).
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import py_compile
import re
import shutil
import sys
import sysconfig
from collections.abc import Sequence

PRUNED_DIRS = ("tests", "__pycache__")
PRUNED_SUFFIXES = (".pyx", ".pxd", ".pxi", ".c", ".h")
OTHER_SHELLS = ("Activate.ps1", "activate.csh", "activate.fish")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def prune(site_packages: str, patterns: Sequence[str]) -> None:
    """Remove test suites, caches, C sources and the named installers from site-packages."""
    for dirpath, dirnames, filenames in os.walk(site_packages):
        dirnames.sort()
        for name in [d for d in dirnames if d in PRUNED_DIRS]:
            shutil.rmtree(os.path.join(dirpath, name))
            dirnames.remove(name)
        for name in filenames:
            if name.endswith(PRUNED_SUFFIXES):
                os.unlink(os.path.join(dirpath, name))
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(glob.escape(site_packages), pattern))):
            _remove(path)


def python_sources(root: str) -> list[str]:
    """Every ``.py`` under root, in a fixed order (sorted at each level, as compileall walks)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py"))
    return found


def _compile(source: str, cfile: str | None) -> bool:
    try:
        py_compile.compile(
            source, cfile=cfile, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
        )
    except (py_compile.PyCompileError, OSError, ValueError):
        return False  # e.g. Python 2 leftovers in a wheel: the source stays, uncompiled
    return True


def compile_sources(site_packages: str, *, strip_sources: bool, keep_sources: Sequence[str]) -> int:
    """Compile every module once; with strip_sources, replace sources by legacy .pyc. Returns the count compiled."""
    keep_rx = None
    if keep_sources:
        keep_rx = re.compile("/site-packages/(" + "|".join(re.escape(k) for k in sorted(keep_sources)) + ")/")
    compiled = 0
    for source in python_sources(site_packages):
        if strip_sources and not (keep_rx and keep_rx.search(source)):
            if _compile(source, source + "c"):
                os.unlink(source)
                compiled += 1
            continue  # a module that does not compile keeps its source, uncompiled
        if _compile(source, importlib.util.cache_from_source(source)):
            compiled += 1
    return compiled


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


def clamp_mtimes(root: str, epoch: int) -> None:
    """Set every entry under root (root included, links not followed) to epoch."""
    os.utime(root, (epoch, epoch), follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.utime(os.path.join(dirpath, name), (epoch, epoch), follow_symlinks=False)


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
    args = ap.parse_args(argv)
    prune(args.site_packages, args.prune)
    for name in OTHER_SHELLS:
        _remove(os.path.join(args.venv, "bin", name))
    if args.pyc:
        compile_sources(args.site_packages, strip_sources=args.strip_sources, keep_sources=args.keep_source)
    stage(args.venv, args.stage, args.uid, args.passwd, args.etc)
    clamp_mtimes(args.stage, args.epoch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
