"""Where first-party modules are: the interpreter's import system, replayed over the project's files."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from slimbuild.cache.evidence import Listing, scan_dir
from slimbuild.paths import IGNORED_DIRS


def _join(d: str, name: str) -> str:
    return d + name if d.endswith("/") else f"{d}/{name}"


class ModuleFinder:
    """Finds first-party modules in an ordered list of search roots.

    Paths are plain strings inside (resolved roots joined with listed names): the finder answers
    thousands of questions per trace, and ``pathlib`` objects would dominate its cost.
    """

    def __init__(
        self, root: Path, roots: Iterable[Path], virtual: Iterable[str] = (), shadowed: Iterable[str] = (),
        fallback: Iterable[Path] = (),
    ) -> None:
        self.root = root
        self.roots: list[str] = []  # resolved search roots, in order
        self.virtual: set[str] = set(virtual)
        # top-level names an installed regular package provides: a project directory without __init__.py of that
        # name is a namespace portion the interpreter never uses (PEP 420), so it is not first-party
        self.shadowed = frozenset(shadowed)
        self.namespaces: set[str] = set()  # top-level names found as namespace portions only
        self._memo: dict[str, list[str] | None] = {}
        self._tops: dict[str, str | None] = {}
        self._dirs: dict[str, Listing] = {}
        self._linked: dict[str, frozenset[str]] = {}  # dir -> names in it that are symlinks
        self._exists: dict[str, bool] = {}
        self._by_depth: list[str] | None = None
        self.root_checks: dict[str, tuple[str, bool]] = {}  # every candidate root asked about: (resolved, is a dir)
        # directories an IDE or PYTHONPATH puts on sys.path and the interpreter does not (the project root, for a
        # script in a subdirectory): searched last, and what is found only there is noted in ``off_path``
        self.fallback: list[str] = []
        self.off_path: dict[str, str] = {}  # top-level name -> the fallback directory it was found in
        for r in roots:
            self.add_root(r)
        self.fallback = [f for f in dict.fromkeys(str(f.resolve()) for f in fallback) if f not in self.roots]

    def add_root(self, r: Path) -> bool:
        """Add a search root (e.g. from ``sys.path.append``); True when new."""
        cand = str(r)
        r = r.resolve()
        is_dir = r.is_dir()
        resolved = str(r)
        self.root_checks[cand] = (resolved, is_dir)
        if resolved in self.roots or not is_dir:
            return False
        if resolved in self.fallback:  # the code puts it on sys.path itself
            self.fallback.remove(resolved)
            self.off_path = {top: d for top, d in self.off_path.items() if d != resolved}
        try:
            rel = r.relative_to(self.root)
        except ValueError:
            return False  # outside the project: not first-party
        if any(part in IGNORED_DIRS for part in rel.parts):
            return False  # a virtualenv, site-packages or build output is never first-party
        self.roots.append(resolved)
        self._by_depth = None
        self._memo.clear()
        self._tops.clear()
        self._exists.clear()  # listings stay valid: they do not depend on the roots
        return True

    def _listing(self, d: str) -> Listing:
        """Files and subdirectories of ``d``, read once: imports ask about the same dirs thousands of times."""
        hit = self._dirs.get(d)
        if hit is None:
            hit = self._dirs[d] = scan_dir(d)
        return hit

    def listings(self) -> dict[str, Listing]:
        """Every directory listing consulted so far (the evidence a cached graph depends on)."""
        return dict(self._dirs)

    def is_real(self, path: str) -> bool:
        """True when ``path`` (a file this finder returned) is its own real path: no part below its root is a symlink.

        Every directory on the way was listed, and listings name their symlinks; False means "ask realpath".
        """
        for r in self.roots:
            prefix = r if r.endswith("/") else r + "/"
            if path.startswith(prefix):
                d = r
                for name in path[len(prefix):].split("/"):
                    if d not in self._dirs:
                        return False
                    linked = self._linked.get(d)
                    if linked is None:
                        linked = self._linked[d] = frozenset(n for n, _ in self._dirs[d][2])
                    if name in linked or name in ("", ".", ".."):
                        return False
                    d = _join(d, name)
                return True
        return False

    def _has_python(self, d: str, depth: int = 2) -> bool:
        files, dirs, _ = self._listing(d)
        if any(os.path.splitext(f)[1] in {".py", ".pyi"} for f in files):
            return True
        if depth > 1:
            for name in sorted(dirs):
                if name not in IGNORED_DIRS and name.isidentifier() and self._has_python(_join(d, name), depth - 1):
                    return True
        return False

    def _is_file(self, d: str, name: str) -> bool:
        return name in self._listing(d)[0]

    def has_file(self, path: str) -> bool:
        """True when the directory listing of an absolute, normalised ``path``'s parent names it as a file."""
        d, _, name = path.rpartition("/")
        return bool(name) and self._is_file(d or "/", name)

    def _is_dir(self, d: str, name: str) -> bool:
        return name in self._listing(d)[1]

    def _locate_top(self, top: str) -> str | None:
        try:
            return self._tops[top]
        except KeyError:
            found = self._tops[top] = self._find_top(top)
            return found

    def _find_top(self, top: str) -> str | None:
        if not top.isidentifier() or top in IGNORED_DIRS:
            return None
        found = self._search(top, self.roots)
        if found is None and self.fallback:
            found = self._search(top, self.fallback)
            if found is not None:
                self.off_path[top] = found[1]
        return None if found is None else found[0]

    def _search(self, top: str, roots: list[str]) -> tuple[str, str] | None:
        """(path, root) of ``top`` as importlib's FileFinder finds it over ``roots``, root by root: a package
        directory, then a module. Namespace portions (a directory without __init__.py) count only when no root has
        a regular one (PEP 420), and not when an installed regular package of that name wins over them
        (``shadowed``)."""
        for r in roots:
            if self._is_dir(r, top) and self._is_file(_join(r, top), "__init__.py"):
                return _join(r, top), r
            if self._is_file(r, f"{top}.py"):
                return _join(r, f"{top}.py"), r
        if top in self.shadowed:
            return None
        for r in roots:
            d = _join(r, top)
            if self._is_dir(r, top) and self._has_python(d):
                self.namespaces.add(top)
                return d, r
        return None

    def is_first_party(self, top: str) -> bool:
        """True when the top-level name is a module of the project."""
        return top in self.virtual or self._locate_top(top) is not None

    def files_for(self, dotted: str) -> list[Path] | None:
        """Files executed by importing ``dotted`` (parents' ``__init__`` first); None if not first-party."""
        files = self.file_paths(dotted)
        return None if files is None else [Path(f) for f in files]

    def file_paths(self, dotted: str) -> list[str] | None:
        """:meth:`files_for`, as strings."""
        try:
            return self._memo[dotted]
        except KeyError:
            pass
        parts = dotted.split(".")
        top = self._locate_top(parts[0])
        result: list[str] | None
        if top is None:
            result = None
        else:
            files: list[str] = []
            current = top
            is_module = current.endswith(".py")
            for i, part in enumerate(parts):
                if i > 0:
                    if is_module:
                        break  # attribute of a module, not a submodule
                    child = self._child(current, part)
                    if child is None:
                        break
                    current, is_module = child
                if is_module:
                    files.append(current)
                elif self._is_file(current, "__init__.py"):
                    files.append(_join(current, "__init__.py"))
            result = files
        self._memo[dotted] = result
        return result

    def module_exists(self, dotted: str) -> bool:
        """True when ``dotted`` names an existing first-party module or package."""
        try:
            return self._exists[dotted]
        except KeyError:
            found = self._exists[dotted] = self._module_exists(dotted)
            return found

    def _module_exists(self, dotted: str) -> bool:
        parts = dotted.split(".")
        top = self._locate_top(parts[0])
        if top is None:
            return False
        current = top
        is_module = current.endswith(".py")
        for part in parts[1:]:
            if is_module:
                return False
            child = self._child(current, part)
            if child is None:
                return False
            current, is_module = child
        return True

    def _child(self, current: str, part: str) -> tuple[str, bool] | None:
        """Submodule ``part`` of the package directory ``current``: (path, is a module), as FileFinder finds it."""
        if not part.isidentifier():
            return None
        if self._is_dir(current, part):
            d = _join(current, part)
            if self._is_file(d, "__init__.py") or not self._is_file(current, f"{part}.py"):
                return d, False  # a package wins over a module; a namespace portion only when there is no module
        if self._is_file(current, f"{part}.py"):
            return _join(current, f"{part}.py"), True
        return None

    def module_name(self, path: Path | str) -> tuple[str, str | None]:
        """Dotted name and package of a first-party file, from the deepest root it lies under (src/ beats the root)."""
        if self._by_depth is None:
            self._by_depth = sorted(self.roots, key=lambda root: len(Path(root).parts), reverse=True)
        p = str(path)
        for r in self._by_depth:
            prefix = r if r.endswith("/") else r + "/"
            if not p.startswith(prefix) or p == prefix:
                continue
            parts = p[len(prefix):].split("/")
            if "" in parts or "." in parts:  # not a normalised path: let pathlib decide
                return self._module_name_path(Path(p))
            last = parts[-1]
            dot = last.rfind(".")
            if 0 < dot < len(last) - 1:
                parts[-1] = last[:dot]  # Path.with_suffix("")
            if parts[-1] == "__init__":
                parts = parts[:-1]
                return ".".join(parts), ".".join(parts)
            return ".".join(parts), ".".join(parts[:-1]) or None
        return self._module_name_path(Path(p))

    def _module_name_path(self, path: Path) -> tuple[str, str | None]:
        for r in sorted(self.roots, key=lambda root: len(Path(root).parts), reverse=True):
            try:
                rel = path.relative_to(r)
            except ValueError:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
                return ".".join(parts), ".".join(parts)
            return ".".join(parts), ".".join(parts[:-1]) or None
        return path.stem, None
