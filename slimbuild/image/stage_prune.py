"""What the builder prunes from site-packages by default: files that no run of the image reads.

Shipped into the build context beside ``slimbuild-stage.py`` (image/stage_venv.py imports it; standard library
only, Python 3.8+: it runs on the image's interpreter). ``dead`` is the pure rule (a path relative to
site-packages in, the reason it goes or None out); ``prune`` walks site-packages with it; ``rewrite_records`` makes
each ``RECORD`` list what remains. The rules, each documented in README.md ("What the image leaves out"):

* ``tests`` and ``__pycache__`` directories, wherever they are (as before; the bytecode is compiled afresh);
* a ``test`` directory that holds a pytest module (``test_*.py``): a suite. ``django/test`` (a library) holds none;
* ``conftest.py`` (only pytest imports it);
* ``doc``/``docs``, ``example``/``examples``/``_examples``, ``benchmark``/``benchmarks`` directories that are not
  a regular package (no ``__init__.py``: nothing imports them) and hold no shared object;
* C, C++ and Cython sources and headers, their templates (``*.pyx.tp``, ``*.pxi.in`` ...), ``meson.build`` and
  ``CMakeLists.txt`` files, static archives (``lib*.a``) and ``pkgconfig/*.pc``: they serve a compiler, never a run;
* type stubs (``*.pyi``), unless a type checker or language server that reads them is installed (mypy, jedi,
  pyright ...) or they lie in a ``typeshed`` directory;
* translation catalogues (``.mo``, ``.po`` under ``<lang>/LC_MESSAGES/``) of languages the image does not use:
  kept are ``C``/``POSIX``, ``en``, the languages of ``LANG``, ``LANGUAGE``, ``LC_ALL`` and ``LC_MESSAGES`` where
  the builder runs (the base's environment) and those ``--keep-locale`` names; ``.pot`` templates always go.

Never pruned: anything in a ``*.dist-info`` (METADATA, RECORD, licences, entry points), a ``*.libs`` directory
(manylinux's vendored libraries) or a ``*.data`` directory, a shared object (``*.so``, ``*.so.N``: never
stripped either, ``strip`` corrupts the vendored ones), and what a ``--keep-file`` pattern matches (fnmatch on the
path relative to site-packages, ``*`` crossing ``/``; a directory that matches keeps everything below it). The
packages named by ``--keep-source`` (they compile at run time: torch's inductor and cpp_extension, triton, numba)
keep their sources, headers and build files too. Package data read at run time (matplotlib's mpl-data,
scikit-learn's datasets, tzdata's zoneinfo, certifi's cacert.pem) matches no rule.
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import os
import re
import shutil
from collections.abc import Iterable, Sequence

PRUNED_DIRS = ("tests", "__pycache__")
SUITE_DIRS = ("test",)
NON_PACKAGE_DIRS = ("doc", "docs", "example", "examples", "_examples", "benchmark", "benchmarks")
SOURCE_SUFFIXES = (
    ".pyx", ".pxd", ".pxi", ".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".hxx",
    ".pyx.tp", ".pxd.tp", ".pxi.tp", ".c.tp", ".h.tp", ".cpp.tp", ".pyx.in", ".pxd.in", ".pxi.in",
)
BUILD_FILES = ("meson.build", "meson.options", "meson_options.txt", "CMakeLists.txt", "conftest.py")
STUB_READERS = ("basedpyright", "jedi", "mypy", "pyre-check", "pyright", "pytype")
CATALOGUES = (".mo", ".po")
ALWAYS_LOCALES = ("C", "POSIX", "en")
LOCALE_ENV = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
_SHARED = re.compile(r".*\.so(\.\d+)*$")


class Rules:
    """What the default pruning spares: ``keep`` patterns, the languages kept, whether stubs stay (a type checker
    is installed) and the top-level packages that compile at run time (``jit``)."""

    def __init__(
        self, keep: Sequence[str] = (), locales: Iterable[str] = (), stubs: bool = False, jit: Sequence[str] = ()
    ) -> None:
        self.keep = tuple(keep)
        self.locales = frozenset(_language(name) for name in (*ALWAYS_LOCALES, *locales) if name)
        self.stubs = stubs
        self.jit = tuple(jit)

    def kept(self, rel: str) -> bool:
        """Whether a ``--keep-file`` pattern matches the path or one of its parent directories."""
        parts = rel.split("/")
        return any(
            fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1) for pattern in self.keep
        )


def _language(name: str) -> str:
    """``de`` for ``de_DE.UTF-8``, ``sr`` for ``sr@latin``, ``C`` for ``C.UTF-8``; ``en`` stays ``en``."""
    base = re.split(r"[_.@-]", name, maxsplit=1)[0]
    return base if base in ("C", "POSIX") else base.lower()


def environment_locales(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """The languages gettext would look up in this environment (``LANGUAGE`` may list several, ``:``-separated)."""
    found: list[str] = []
    for key in LOCALE_ENV:
        found.extend(v for v in environ.get(key, "").split(":") if v)
    return found


def protected(rel: str) -> bool:
    """Never pruned, whatever a rule says: .dist-info, *.libs and *.data contents, and shared objects."""
    parts = rel.split("/")
    if any(p.endswith((".dist-info", ".libs", ".data")) for p in parts):
        return True
    return bool(_SHARED.match(parts[-1]))


# long: one rule per branch, in the order README.md lists them
def dead(rel: str, is_dir: bool, rules: Rules, listing: Sequence[str] = ()) -> str | None:
    """Why the path (relative to site-packages, ``/``-separated) can go, or None to keep it. ``listing``: for a
    directory, the relative paths of every file below it (the suite and non-package rules read it)."""
    if protected(rel):
        return None
    parts = rel.split("/")
    name = parts[-1]
    if is_dir and name == "__pycache__":
        return "bytecode cache"
    if rules.kept(rel):
        return None
    jit = parts[0] in rules.jit
    if is_dir:
        if name in PRUNED_DIRS:
            return "test suite"
        inside = [p.rsplit("/", 1)[-1] for p in listing]
        if any(_SHARED.match(f) for f in inside):
            return None
        if name in SUITE_DIRS and any(f.startswith("test_") and f.endswith(".py") for f in inside):
            return "test suite"
        if name in NON_PACKAGE_DIRS and "__init__.py" not in (p[len(rel) + 1 :] for p in listing):
            return "documentation or examples"
        return None
    if name == "conftest.py":
        return "pytest configuration"
    if not jit and (name.endswith(SOURCE_SUFFIXES) or name in BUILD_FILES):
        return "C/C++/Cython source, header or build file"
    if not jit and (re.fullmatch(r"lib.*\.a", name) or (name.endswith(".pc") and "pkgconfig" in parts[:-1])):
        return "static library or pkg-config file"
    if name.endswith(".pyi") and not rules.stubs and "typeshed" not in parts:
        return "type stub"
    if name.endswith(".pot"):
        return "translation template"
    if name.endswith(CATALOGUES) and len(parts) >= 3 and parts[-2] == "LC_MESSAGES":
        if _language(parts[-3]) not in rules.locales:
            return "translation of an unused language"
    return None


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _listing(path: str, rel: str) -> list[str]:
    out: list[str] = []
    for dirpath, _dirs, files in os.walk(path):
        sub = os.path.relpath(dirpath, path).replace(os.sep, "/")
        prefix = rel if sub == "." else rel + "/" + sub
        out.extend(prefix + "/" + f for f in files)
    return out


def prune_tree(site_packages: str, top: str, rules: Rules) -> int:
    """Apply ``dead`` below site-packages/top (top itself included when a directory). Returns the bytes removed."""
    removed = 0
    root = os.path.join(site_packages, top)
    if not os.path.isdir(root) or os.path.islink(root):
        if os.path.isfile(root) and dead(top, False, rules):
            removed += os.lstat(root).st_size
            os.unlink(root)
        return removed
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, site_packages).replace(os.sep, "/")
        for name in list(dirnames):
            path = os.path.join(dirpath, name)
            rel = rel_dir + "/" + name
            if os.path.islink(path):
                continue
            listing = _listing(path, rel) if name in SUITE_DIRS + NON_PACKAGE_DIRS else ()
            if dead(rel, True, rules, listing):
                removed += sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(path) for f in fs)
                shutil.rmtree(path)
                dirnames.remove(name)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if dead(rel_dir + "/" + name, False, rules):
                removed += os.lstat(path).st_size
                os.unlink(path)
    return removed


def prune(site_packages: str, patterns: Sequence[str], rules: Rules, tops: Sequence[str] | None = None) -> int:
    """Remove the named installers (``patterns``, relative to site-packages) and what ``dead`` says from
    site-packages (from its top-level entries ``tops`` only, when given: another pip may still be writing the
    rest). Returns the bytes the rules removed."""
    removed = 0
    if tops is None:
        for pattern in patterns:
            for path in sorted(glob.glob(os.path.join(glob.escape(site_packages), pattern))):
                _remove(path)
        tops = sorted(os.listdir(site_packages))
    for top in sorted(tops):
        if any(fnmatch.fnmatchcase(top, pattern) for pattern in patterns):
            _remove(os.path.join(site_packages, top))
        elif not top.endswith(".dist-info"):
            removed += prune_tree(site_packages, top, rules)
    return removed


def stub_readers_installed(site_packages: str) -> bool:
    """Whether a distribution that reads ``.pyi`` stubs at run time (a type checker) is in site-packages."""
    for entry in os.listdir(site_packages):
        if entry.endswith(".dist-info"):
            name = re.sub(r"[-_.]+", "-", entry[: -len(".dist-info")].rsplit("-", 1)[0]).lower()
            if name in STUB_READERS:
                return True
    return False


def rewrite_record(site_packages: str, dist_info: str) -> bool:
    """Make one RECORD list what remains: a pruned file's row goes, a source replaced by its legacy ``.pyc``
    (``--strip-sources``) becomes that ``.pyc``'s row (no hash, as pip writes bytecode rows). Every other line
    is kept byte for byte. Returns whether the file changed."""
    path = os.path.join(site_packages, dist_info, "RECORD")
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8", newline="") as fh:
        lines = fh.read().splitlines(keepends=True)
    out = []
    for line in lines:
        row = next(csv.reader([line]), [])
        if not row or not row[0]:
            out.append(line)
            continue
        target = os.path.normpath(os.path.join(site_packages, row[0]))
        if os.path.lexists(target):
            out.append(line)
        elif row[0].endswith(".py") and os.path.isfile(target + "c"):
            ending = line[len(line.rstrip("\r\n")) :] or "\n"
            out.append(_csv_field(row[0] + "c") + ",," + ending)
    if out == lines:
        return False
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("".join(out))
    return True


def _csv_field(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\r\n') else value


def rewrite_records(site_packages: str) -> int:
    """rewrite_record for every .dist-info of site-packages; the count rewritten."""
    if not os.path.isdir(site_packages):
        return 0
    return sum(
        rewrite_record(site_packages, entry) for entry in sorted(os.listdir(site_packages)) if entry.endswith(".dist-info")
    )
