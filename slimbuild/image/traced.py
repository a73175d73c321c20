"""``prune = "traced"``: what of the installed distributions the image keeps, from the trace and the wheels; pure.

The rules (README.md, "Pruning to the trace"); every path is relative to site-packages:

* **A package is one directory of modules** (``numpy/linalg/``, a regular or a namespace package), not its
  subpackages: each of those is a package of its own. Every module (``.py``, ``.pyc``, extension module) of a
  package one of whose modules a traced run imported is kept, with its bytecode; a top-level module
  (``six.py``) is a package of its own. A subpackage no run imported (``numpy/f2py/``, ``pandas/tests/``) is
  dropped whole.
* **Other files** (data, fonts, certificates, vendored libraries) are kept when a traced run opened or mapped
  them (the trace's ``installed``, its ``dlopen`` and ``needed`` paths).
* **The ``DT_NEEDED`` closure** of every kept extension module and kept library is kept: the libraries the
  wheels ship (``numpy.libs/``, another wheel's ``.so``), read from the locked wheels themselves, so a library
  whose name differs from the traced environment's (another auditwheel hash) is still found.
* **Always kept**: every ``.dist-info`` directory (``METADATA``, licence files; ``RECORD`` rewritten in the image
  to what remains, so scanners still see every distribution), the ``.pth`` files and the modules they import,
  and everything outside site-packages (the venv's ``bin/``, ``pyvenv.cfg``). Nothing is ever ``strip``-ped.

image/prune_traced.py applies the spec :func:`keep_spec` makes inside the builder (it sees the files as they are
there: ``.py`` replaced by ``.pyc``, tests pruned); :func:`first_missing` names what a failed proof run lacked.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from slimbuild.analysis.runtime import SITE, Trace, escapes

SPEC_FORMAT = 1
_SHARED = re.compile(r".*\.so(\.[0-9A-Za-z_]+)*$")
_MODULE = re.compile(r".*\.(py|pyc|pyd|so)$")
_DATA = re.compile(r"[^/]+\.data/(purelib|platlib)/")  # a wheel's members installed into site-packages too


@dataclass(frozen=True)
class WheelFiles:
    """One locked wheel: its distribution, its members as site-packages paths, and what its shared objects need
    (``(soname, member)``, locking/syslibs.py's scan)."""

    dist: str
    members: tuple[str, ...]
    needed: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class KeepSpec:
    """What the image keeps of site-packages (see the module doc); ``dumps`` is the file the builder reads."""

    packages: tuple[str, ...]  # directories ending in "/"
    modules: tuple[str, ...]  # top-level module names
    files: tuple[str, ...]  # exact files
    outside: tuple[str, ...] = ()  # trace paths that leave site-packages: ignored, reported

    def dumps(self) -> bytes:
        doc = {"format": SPEC_FORMAT, "packages": list(self.packages), "modules": list(self.modules),
               "files": list(self.files)}
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def site_members(names: Iterable[str]) -> tuple[str, ...]:
    """A wheel's member names as installed site-packages paths (``X.data/purelib/a.py`` is ``a.py``; its scripts
    and data land outside site-packages and are never pruned)."""
    out = set()
    for name in names:
        if name.endswith("/"):
            continue
        m = _DATA.match(name)
        if m:
            out.add(name[m.end():])
        elif not name.split("/", 1)[0].endswith(".data"):
            out.add(name)
    return tuple(sorted(out))


def _site(path: str) -> str | None:
    """A trace path as a site-packages path (None: not an installed file, or one leaving site-packages)."""
    if not path.startswith(SITE):
        return None
    rel = path[len(SITE):]
    return None if escapes(rel) or not rel else rel


def _imported(trace: Trace) -> tuple[set[str], set[str], set[str]]:
    """(package directories, top-level modules, module files) of the installed modules the runs imported."""
    packages: set[str] = set()
    modules: set[str] = set()
    files: set[str] = set()
    for m in trace.modules:
        rel = _site(m.file or "")
        if rel is None:
            continue
        if rel.endswith("/"):  # a namespace package's directory
            packages.add(rel)
        elif "/" in rel:
            packages.add(posixpath.dirname(rel) + "/")
            files.add(rel)
        else:
            modules.add(m.name.split(".")[0])
            files.add(rel)
    return packages, modules, files


def _closure(start: Iterable[str], wheels: Sequence[WheelFiles]) -> set[str]:
    """``start`` and every library it needs, transitively, that one of the wheels ships (by file name)."""
    needs: dict[str, set[str]] = {}
    for w in wheels:
        for soname, member in w.needed:
            needs.setdefault(member, set()).add(soname)
    by_name: dict[str, list[str]] = {}
    for w in wheels:
        for member in w.members:
            if _SHARED.fullmatch(member):
                by_name.setdefault(posixpath.basename(member), []).append(member)
    found: set[str] = set()
    todo = list(start)
    while todo:
        lib = todo.pop()
        if lib in found:
            continue
        found.add(lib)
        for soname in needs.get(lib, ()):
            hits = by_name.get(soname) or [m for n, ms in by_name.items() if n.startswith(soname + ".") for m in ms]
            todo.extend(hits)
    return found


def keep_spec(trace: Trace, wheels: Sequence[WheelFiles]) -> KeepSpec:
    """What the image keeps: the imported packages' modules, the files the runs opened, their libraries' closure."""
    packages, modules, module_files = _imported(trace)
    outside = {p for p in trace.outside if p.startswith(SITE)}
    opened: set[str] = set(trace.installed)
    for path in (*trace.dlopen, *(lib for _, libs in trace.needed for lib in libs)):
        rel = _site(path)
        if rel is not None:
            opened.add(rel)
        elif path.startswith(SITE):
            outside.add(path)
    members = {m for w in wheels for m in w.members}
    kept_modules = {
        m for m in members
        if _MODULE.fullmatch(m) and (posixpath.dirname(m) + "/" in packages or ("/" not in m and m.split(".")[0] in modules))
    }  # fmt: skip
    shared = {m for m in kept_modules | opened | module_files if _SHARED.fullmatch(m)}
    files = opened | (_closure(shared, wheels) - kept_modules)
    return KeepSpec(tuple(sorted(packages)), tuple(sorted(modules)), tuple(sorted(files)), tuple(sorted(outside)))


_MISSING = (
    re.compile(r"No such file or directory: '([^']+)'"),
    re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '([^']+)'"),
    re.compile(r"([^\s:'\"]+\.so[^\s:'\"]*): cannot open shared object file"),
    re.compile(r"FileNotFoundError: .*?'([^']+)'"),
)


def first_missing(output: str) -> str:
    """The first file or module a failed run's output says is missing ("" when it names none)."""
    best: tuple[int, str] | None = None
    for rx in _MISSING:
        m = rx.search(output)
        if m and (best is None or m.start() < best[0]):
            what = m.group(1)
            best = (m.start(), f"module {what}" if "No module named" in m.group(0) else what)
    return best[1] if best else ""


def proof_argv(argv: Sequence[str], python: str) -> tuple[str, ...]:
    """A traced command as it runs in the image: a leading ``python`` (any path, any version) is the venv's."""
    if argv and re.fullmatch(r"python(3(\.[0-9]+)?)?", posixpath.basename(argv[0])):
        return (python, *argv[1:])
    return tuple(argv)


def summary(spec: KeepSpec, commands: Iterable[Sequence[str]]) -> Mapping[str, object]:
    """The manifest's ``pruned`` record: the mode, what the spec keeps (counts) and the commands proven."""
    return {
        "mode": "traced",
        "kept_packages": len(spec.packages),
        "kept_modules": len(spec.modules),
        "kept_files": len(spec.files),
        "proven": [list(c) for c in commands],
    }
