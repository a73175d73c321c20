"""Entrypoints: which code runs first, found from the config, the CLI or the project's layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from slimbuild.analysis.finder import ModuleFinder
from slimbuild.errors import AnalysisError, ConfigError
from slimbuild.models import Entrypoint
from slimbuild.paths import IGNORED_DIRS

if TYPE_CHECKING:
    from slimbuild.cache.replay import Recorder
    from slimbuild.config import Settings


def resolve_entrypoint(root: Path, name: str, spec: str) -> Entrypoint:
    """Turn a config or CLI entrypoint spec into an :class:`Entrypoint`."""
    module_part, _, function = spec.partition(":")
    candidate = (root / module_part).resolve() if module_part else root
    try:
        rel = candidate.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise ConfigError(f"entrypoint {spec!r} is outside the project {root}", hint="name a file inside the project") from None
    if candidate.is_file():
        if candidate.suffix == ".ipynb":
            return Entrypoint(name, spec, "notebook", rel, "__main__", None, function)
        if candidate.suffix == ".py":
            return Entrypoint(name, spec, "script", rel, "__main__", None, function)
        raise ConfigError(f"entrypoint {spec!r} is not a .py file, a package or a notebook", hint="point it at Python code")
    if candidate.is_dir():
        main = candidate / "__main__.py"
        if main.is_file():
            return Entrypoint(name, spec, "package", f"{rel}/__main__.py", f"{candidate.name}.__main__", candidate.name, function)
        raise AnalysisError(f"entrypoint {spec!r}: package has no __main__.py", hint="add one, or name a module:function")
    # dotted module, possibly module:function, searched in root and src/
    dotted = module_part
    if dotted and all(p.isidentifier() for p in dotted.split(".")):
        finder = ModuleFinder(root.resolve(), [root, root / "src"])
        files = finder.files_for(dotted)
        if files and finder.module_exists(dotted):
            target = files[-1]
            if target.name == "__init__.py" and (target.parent / "__main__.py").is_file() and not function:
                target = target.parent / "__main__.py"
            mod, pkg = finder.module_name(target)
            relp = target.relative_to(root.resolve()).as_posix()
            return Entrypoint(name, spec, "module", relp, mod, pkg, function)
    raise AnalysisError(
        f"entrypoint {spec!r} not found in {root}",
        hint="name a .py file, a package with __main__.py, a module:function, or a .ipynb notebook",
    )


_DISCOVER = ("__main__.py", "main.py", "app.py", "run.py")


def _has_sources(root: Path) -> tuple[bool, list[str]]:
    """Whether the tree has any .py file, and its notebooks (project-relative), skipping ignored directories."""
    notebooks: list[str] = []
    found_py = False
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS and not d.startswith("."))
        for f in sorted(filenames):
            if f.endswith(".py"):
                found_py = True
            elif f.endswith(".ipynb"):
                notebooks.append(Path(dirpath, f).relative_to(root).as_posix())
    return found_py, notebooks


def select_entrypoints(
    settings: Settings, requested: str = "", record: Recorder | None = None
) -> list[tuple[str, str]]:
    """(name, spec) pairs to analyse: the requested one, the configured ones, or one discovered.

    A notebook discovered by walking the whole tree makes the run's output impossible to replay (``record``).
    """
    if requested:
        if requested in settings.entrypoints:
            return [(requested, settings.entrypoints[requested])]
        return [(Path(requested.split(":")[0]).stem or requested, requested)]
    if settings.entrypoints:
        return sorted(settings.entrypoints.items())
    root = settings.root
    scripts = settings.project.get("scripts")
    if isinstance(scripts, dict) and len(scripts) == 1:
        ((name, spec),) = scripts.items()
        return [(str(name), str(spec))]
    for cand in _DISCOVER:
        if (root / cand).is_file():
            return [(Path(cand).stem, cand)]
    if record is not None:
        record.cacheable = False
    has_py, notebooks = _has_sources(root)
    if not has_py and not notebooks:
        raise AnalysisError(
            f"{root}: nothing to build: no Python files or notebooks", hint="run slimbuild in the project's directory"
        )
    if not has_py and len(notebooks) == 1:
        return [(Path(notebooks[0]).stem, notebooks[0])]
    raise ConfigError(
        "no entrypoint: slimbuild traces imports from the code that runs first",
        hint="pass --entrypoint FILE|PACKAGE|module:function|NOTEBOOK, or set entrypoint in [tool.slimbuild]",
    )
