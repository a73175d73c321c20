"""The one module that sequences the stages and their I/O."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from slimbuild import parsecache
from slimbuild.check import reconcile
from slimbuild.config import Settings
from slimbuild.declared import read_declared
from slimbuild.errors import AnalysisError, ConfigError
from slimbuild.models import Analysis
from slimbuild.paths import atomic_write, cache_dir
from slimbuild.resolve import ModuleIndex, probe_environment, resolve_modules
from slimbuild.trace import IGNORED_DIRS, Entrypoint, Parser, resolve_entrypoint, trace

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_DISCOVER = ("__main__.py", "main.py", "app.py", "run.py")


def _project_meta(root: Path) -> dict[str, object]:
    p = root / "pyproject.toml"
    if not p.is_file():
        return {}
    try:
        project = tomllib.loads(p.read_text(encoding="utf-8")).get("project", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return {}
    return project if isinstance(project, dict) else {}


def _has_sources(root: Path) -> tuple[bool, list[str]]:
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


def select_entrypoints(settings: Settings, requested: str = "") -> list[tuple[str, str]]:
    """(name, spec) pairs to analyse: the requested one, the configured ones, or one discovered."""
    if requested:
        if requested in settings.entrypoints:
            return [(requested, settings.entrypoints[requested])]
        return [(Path(requested.split(":")[0]).stem or requested, requested)]
    if settings.entrypoints:
        return sorted(settings.entrypoints.items())
    root = settings.root
    scripts = _project_meta(root).get("scripts")
    if isinstance(scripts, dict) and len(scripts) == 1:
        ((name, spec),) = scripts.items()
        return [(str(name), str(spec))]
    for cand in _DISCOVER:
        if (root / cand).is_file():
            return [(Path(cand).stem, cand)]
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


def _environment_python(settings: Settings, env: Mapping[str, str]) -> str:
    if settings.python:
        return settings.python
    venv = env.get("VIRTUAL_ENV")
    if venv and Path(venv, "bin", "python").exists():
        return str(Path(venv, "bin", "python"))
    local = settings.root / ".venv" / "bin" / "python"
    if local.exists():
        return str(local)
    return ""


def environment_index(settings: Settings, env: Mapping[str, str]) -> ModuleIndex | None:
    """Module index of the project's environment, cached by interpreter and site-packages mtimes."""
    python = _environment_python(settings, env)
    if not python:
        return None
    exe = Path(python)
    if not exe.exists():
        raise ConfigError(f"--python {python}: no such interpreter", hint="pass the path of the project's python")
    prefix = exe.resolve().parent.parent if exe.parent.name == "bin" else exe.parent
    venv_prefix = exe.parent.parent
    stamps = sorted(
        f"{p}:{p.stat().st_mtime_ns}" for base in {prefix, venv_prefix} for p in base.glob("lib/python3*/site-packages")
    )
    key = hashlib.sha256(json.dumps([str(exe.absolute()), stamps]).encode()).hexdigest()[:20]
    cache = cache_dir(env) / "environments" / f"{key}.json"
    try:
        dists = json.loads(cache.read_text())
    except (OSError, ValueError):
        try:
            dists = probe_environment(str(exe))
        except (OSError, ValueError, Exception) as exc:  # noqa: BLE001 - any probe failure is a config problem
            raise ConfigError(f"cannot read installed distributions with {python}: {exc}", hint="check --python") from None
        try:
            atomic_write(cache, json.dumps(dists, sort_keys=True).encode())
        except OSError:
            pass
    return ModuleIndex.from_dists(str(exe), dists)


def _read_digest_factory(max_bytes: int) -> Callable[[Path], str]:
    def read_digest(p: Path) -> str:
        st = p.stat()
        if st.st_size > max_bytes:
            return f"oversize:{st.st_size}:{st.st_mtime_ns}"
        return parsecache.digest_file(p)

    return read_digest


def analyze(settings: Settings, requested: str = "", env: Mapping[str, str] | None = None) -> tuple[Analysis, ...]:
    """Trace, resolve and reconcile every selected entrypoint."""
    env = os.environ if env is None else env
    root = settings.root
    entries: list[Entrypoint] = [resolve_entrypoint(root, n, s) for n, s in select_entrypoints(settings, requested)]
    declared, _constraints = read_declared(root, settings.requirements, settings.optional_groups)
    env_index = environment_index(settings, env)
    cache_path = parsecache.cache_file(cache_dir(env), root)
    cache = parsecache.load(cache_path)
    results = []
    used: parsecache.Cache = {}
    for entry in entries:
        parser = Parser(cache, allow_unparseable=settings.allow_unparseable, max_bytes=settings.max_source_bytes)
        graph = trace(
            root,
            entry,
            target_python=settings.target_python,
            parser=parser,
            read_digest=_read_digest_factory(settings.max_source_bytes),
        )
        used.update(parser.used)
        resolved = resolve_modules(
            (s.module for s in graph.third_party),
            user_mapping=settings.mapping,
            environment=env_index,
            wheels=None,
            declared=(d.name for d in declared),
        )
        results.append(
            reconcile(
                name=entry.name,
                graph=graph,
                resolved=resolved,
                declared=declared,
                keep=settings.keep,
                target_python=settings.target_python,
                project_name=str(_project_meta(root).get("name", "")),
            )
        )
    parsecache.save(cache_path, cache, used)
    return tuple(results)
