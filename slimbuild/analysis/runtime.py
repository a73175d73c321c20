"""The runtime trace (``slimbuild.trace.json``): its schema, made from a run's raw records, merged, written, read; pure.

A traced run (pipeline/tracing.py, with the audit hook of pipeline/trace_hook.py in every Python process) leaves one
list of raw records per process. :func:`from_processes` turns them into a :class:`Trace`: every path relative to the
project (``data/sample.csv``) or to site-packages (``site-packages/numpy/__init__.py``), the standard library by name
only, files outside both kept absolute (they are reported, never copied). Nothing in it depends on the process ids,
the time or the order of events, so tracing the same command again gives the same trace; :func:`merge` is a union
(commutative, idempotent), so several commands and inputs add up in one file meant to be committed. A module
imported from inside its own installed package is imported by that package (``site-packages/numpy/``), not by the
line that happened to import it first: that varies with hash seeds, and only the package matters to what is reached.

The file (schema version 2)::

    {"schema": "slimbuild-trace", "version": 2, "project": NAME | null,
     "commands": [{"argv": [...], "untraced": ["python -I x.py", ...]}],
     "modules": {"NAME": {"file": PATH | null, "imported_by": ["FILE:LINE" | "site-packages/PACKAGE/", ...]}},
     "stdlib": [NAME, ...], "opened": [PROJECT PATH, ...], "installed": [SITE-PACKAGES PATH, ...],
     "outside": [ABSOLUTE PATH, ...],
     "libraries": {"dlopen": [NAME | PATH, ...], "needed": {PATH: [PATH | SONAME, ...]}}}

``installed`` (new in version 2) lists the installed files the runs opened or the dynamic loader mapped (read from
``/proc/self/maps`` as each process ends), relative to site-packages (``numpy/core/_multiarray_umath.so``,
``certifi/cacert.pem``), beyond the modules' own files; ``prune = "traced"`` keeps them. Version 1 kept them in
``opened`` as ``site-packages/...``: :func:`loads` migrates such a file (they move to ``installed``), and the next
``slimbuild trace`` writes version 2.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from slimbuild.errors import ConfigError

TRACE_FILE = "slimbuild.trace.json"
SCHEMA = "slimbuild-trace"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1 is migrated on read (see the module doc)
SITE = "site-packages/"
_PYTHON = re.compile(r"python[0-9.]*$")
_SKIPPED_ROOTS = ("/dev/", "/proc/", "/sys/")
_MAINS = ("__main__", "__mp_main__")


@dataclass(frozen=True, order=True)
class Command:
    """One traced command: its argv as the user gave it, and the Python processes it started that were not traced.

    (How many processes it ran is no part of it: a pool's workers vary from run to run, the trace must not.)"""

    argv: tuple[str, ...]
    untraced: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class Module:
    """A module a traced run loaded: its file (a namespace package: its first directory, ending in ``/``) and who
    imported it (``FILE:LINE``)."""

    name: str
    file: str | None
    imported_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Trace:
    """What traced runs imported, opened and loaded; every tuple sorted, every path relative (see the module doc)."""

    project: str | None = None
    commands: tuple[Command, ...] = ()
    modules: tuple[Module, ...] = ()
    stdlib: tuple[str, ...] = ()
    opened: tuple[str, ...] = ()
    outside: tuple[str, ...] = ()
    installed: tuple[str, ...] = ()  # relative to site-packages, without the SITE prefix
    dlopen: tuple[str, ...] = ()
    needed: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    def module(self, name: str) -> Module | None:
        """The module called ``name``, if the runs loaded it."""
        return next((m for m in self.modules if m.name == name), None)

    def extension_files(self) -> tuple[str, ...]:
        """The files of the extension modules imported (``site-packages/...so`` or project-relative)."""
        return tuple(sorted({m.file for m in self.modules if m.file and _is_extension(m.file)}))


@dataclass(frozen=True)
class Process:
    """One traced process's raw records, as the hook wrote them (see pipeline/trace_hook.py)."""

    header: Mapping[str, Any]
    records: tuple[tuple[Any, ...], ...]


def _is_extension(path: str) -> bool:
    return path.endswith(".so") or ".so." in posixpath.basename(path) or path.endswith(".pyd")


class _Places:
    """Where a process's absolute paths belong: site-packages, the standard library, the project, or outside."""

    def __init__(self, header: Mapping[str, Any], root: str) -> None:
        self.root = root.rstrip("/")
        self.cwd = str(header.get("cwd") or root)
        dirs = [str(d).rstrip("/") for d in header.get("site", ()) if d]
        self.site = sorted(set(dirs), key=len, reverse=True)  # the deepest first: a venv inside the project
        self.stdlib = [str(d).rstrip("/") for d in (*header.get("stdlib", ()), *header.get("prefix", ())) if d]

    def absolute(self, path: str) -> str:
        return posixpath.normpath(path if path.startswith("/") else posixpath.join(self.cwd, path))

    def place(self, path: str) -> tuple[str, str]:
        """(kind, path): ``site``/``project`` with a relative path, ``stdlib``, ``outside`` (absolute) or ``skip``."""
        path = self.absolute(path)
        for d in self.site:
            if path.startswith(d + "/"):
                return "site", SITE + path[len(d) + 1:]
        if path.startswith(self.root + "/"):
            return "project", path[len(self.root) + 1:]
        if any(path.startswith(d + "/") for d in self.stdlib):
            return "stdlib", path
        if path.startswith(_SKIPPED_ROOTS) or not path.startswith("/"):
            return "skip", path
        return "outside", path


def _importer(places: _Places, file: object, line: object) -> str | None:
    """``FILE:LINE`` of an importing frame, FILE as :meth:`_Places.place` relativises it (None: no file to name)."""
    if not isinstance(file, str) or not file or file.startswith("<"):
        return None
    kind, where = places.place(file)
    if kind == "stdlib":
        where = "stdlib"
    elif kind == "skip":
        return None
    return f"{where}:{line if isinstance(line, int) else 0}"


# long: one pass over every record kind of a process; splitting it would only pass the accumulators around
def from_processes(
    processes: Iterable[Process], root: str, argv: Sequence[str], project: str | None, *, is_file: Any = None,
) -> Trace:
    """The trace of one command from its processes' raw records; ``is_file`` (a predicate) filters the opened paths."""
    modules: dict[str, tuple[str | None, set[str]]] = {}
    stdlib: set[str] = set()
    opened: set[str] = set()
    installed: set[str] = set()
    outside: set[str] = set()
    dlopen: set[str] = set()
    started: list[list[str]] = []
    seen_argv: list[list[str]] = []
    for proc in processes:
        places = _Places(proc.header, root)
        seen_argv.append([str(a) for a in proc.header.get("argv", ())])
        for rec in proc.records:
            kind = rec[0] if rec else ""
            if kind == "i" and len(rec) >= 5 and isinstance(rec[1], str):
                name, file = rec[1], rec[2] if isinstance(rec[2], str) else None  # None: built in
                if name in _MAINS:
                    continue
                where = places.place(file) if file else ("builtin", "")
                if where[0] in ("stdlib", "skip", "builtin"):
                    stdlib.add(name.split(".")[0])
                    continue
                rel = where[1] + ("/" if file and file.endswith("/") else "")  # a namespace package's directory
                entry = modules.setdefault(name, (rel, set()))
                importer = _importer(places, rec[3], rec[4])
                own = package_dir(rel)
                if importer is not None and own and importer.startswith(own):
                    importer = own  # which of its own modules imports it first varies from run to run (hash seeds)
                if importer is not None:
                    entry[1].add(importer)
            elif kind == "o" and len(rec) >= 2 and isinstance(rec[1], str):
                if is_file is not None and not is_file(places.absolute(rec[1])):
                    continue
                where = places.place(rec[1])
                if where[0] == "site":
                    installed.add(where[1][len(SITE):])
                elif where[0] == "project":
                    opened.add(where[1])
                elif where[0] == "outside":
                    outside.add(where[1])
            elif kind == "m" and len(rec) >= 2 and isinstance(rec[1], str):  # mapped by the loader: installed only
                where = places.place(rec[1])
                if where[0] == "site":
                    installed.add(where[1][len(SITE):])
            elif kind == "d" and len(rec) >= 2 and isinstance(rec[1], str):
                where = places.place(rec[1]) if "/" in rec[1] else ("name", rec[1])
                if where[0] != "skip":
                    dlopen.add(where[1])
            elif kind == "p" and len(rec) >= 2 and isinstance(rec[1], list):
                started.append([str(a) for a in rec[1]])
    module_files = {f for f, _ in modules.values() if f}
    return Trace(
        project=project,
        commands=(Command(tuple(argv), _untraced(started, seen_argv)),),
        modules=tuple(sorted(Module(n, f, tuple(sorted(by))) for n, (f, by) in modules.items())),
        stdlib=tuple(sorted(stdlib - {m.split(".")[0] for m in modules})),
        opened=tuple(sorted(p for p in opened if p not in module_files and "/__pycache__/" not in f"/{p}")),
        outside=tuple(sorted(outside)),
        installed=tuple(sorted(p for p in installed if SITE + p not in module_files and "/__pycache__/" not in f"/{p}")),
        dlopen=tuple(sorted(dlopen)),
    )


def package_dir(file: str | None) -> str:
    """``site-packages/numpy/`` for a file in the installed package numpy ("" for a module outside a package)."""
    if not file or not file.startswith(SITE):
        return ""
    parts = file[len(SITE):].split("/")
    return f"{SITE}{parts[0]}/" if len(parts) > 1 else ""


def _untraced(started: Sequence[Sequence[str]], traced: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The Python processes started (by argv) that wrote no trace: they ignored PYTHONPATH (``-I``, ``-E``, a cleared
    environment) or ran an interpreter that has no audit hooks."""
    def key(argv: Sequence[str]) -> tuple[str, ...]:
        return (posixpath.basename(argv[0]), *argv[1:]) if argv else ()

    have = {key(a) for a in traced}
    missed = {shlex.join([posixpath.basename(a[0]), *a[1:]]) for a in started
              if a and _PYTHON.match(posixpath.basename(a[0])) and key(a) not in have}
    return tuple(sorted(missed))


def with_needed(trace: Trace, needed: Mapping[str, Iterable[str]]) -> Trace:
    """``trace`` with the ``DT_NEEDED`` closure of its extension modules (read by the pipeline from the files)."""
    merged = dict(trace.needed)
    for so, libs in needed.items():
        merged[so] = tuple(sorted({*merged.get(so, ()), *libs}))
    return replace(trace, needed=tuple(sorted(merged.items())))


def merge(old: Trace, new: Trace) -> Trace:
    """The union of two traces (of one project): commands by argv, modules with all their importers, every path."""
    commands: dict[tuple[str, ...], Command] = {c.argv: c for c in old.commands}
    for c in new.commands:
        prev = commands.get(c.argv)
        commands[c.argv] = c if prev is None else Command(c.argv, tuple(sorted({*prev.untraced, *c.untraced})))
    modules: dict[str, Module] = {m.name: m for m in old.modules}
    for m in new.modules:
        prev_m = modules.get(m.name)
        modules[m.name] = m if prev_m is None else Module(
            m.name, prev_m.file or m.file, tuple(sorted({*prev_m.imported_by, *m.imported_by}))
        )
    return with_needed(
        Trace(
            project=new.project or old.project,
            commands=tuple(sorted(commands.values())),
            modules=tuple(sorted(modules.values())),
            stdlib=tuple(sorted({*old.stdlib, *new.stdlib})),
            opened=tuple(sorted({*old.opened, *new.opened})),
            outside=tuple(sorted({*old.outside, *new.outside})),
            installed=tuple(sorted({*old.installed, *new.installed})),
            dlopen=tuple(sorted({*old.dlopen, *new.dlopen})),
            needed=old.needed,
        ),
        dict(new.needed),
    )


def dumps(trace: Trace) -> str:
    """The file's text: sorted keys, one entry a line where it helps a diff, a final newline."""
    doc = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "project": trace.project,
        "commands": [{"argv": list(c.argv), "untraced": list(c.untraced)} for c in trace.commands],
        "modules": {m.name: {"file": m.file, "imported_by": list(m.imported_by)} for m in trace.modules},
        "stdlib": list(trace.stdlib),
        "opened": list(trace.opened),
        "installed": list(trace.installed),
        "outside": list(trace.outside),
        "libraries": {"dlopen": list(trace.dlopen), "needed": {so: list(libs) for so, libs in trace.needed}},
    }
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def loads(text: str, where: str = TRACE_FILE) -> Trace:
    """Read a trace file's text; exit 2 (ConfigError) naming ``where:line`` for bad JSON, the key for a bad shape."""
    again = "trace again with 'slimbuild trace --replace -- COMMAND'"
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}", hint=f"fix it, or {again}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ConfigError(f"{where}: not a slimbuild trace (no \"schema\": \"{SCHEMA}\")", hint=again)
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"{where}: unknown trace schema version {version!r}", hint=again)
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"{where}: trace schema version {version} is newer than this slimbuild reads ({SCHEMA_VERSION})",
            hint=f"upgrade slimbuild, or {again}",
        )
    try:
        return _from_doc(doc)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ConfigError(f"{where}: malformed trace: {exc}", hint=f"fix it, or {again}") from None


def _strings(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"'{key}' must be a list of strings")
    return tuple(sorted(set(value)))


def _from_doc(doc: Mapping[str, Any]) -> Trace:
    project = doc.get("project")
    if project is not None and not isinstance(project, str):
        raise ValueError("'project' must be a string or null")
    commands = []
    for i, c in enumerate(doc.get("commands", [])):
        argv = c["argv"]
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv) or not argv:
            raise ValueError(f"'commands[{i}].argv' must be a non-empty list of strings")
        commands.append(Command(tuple(argv), _strings(c.get("untraced", []), f"commands[{i}].untraced")))
    modules = []
    raw_modules = doc.get("modules", {})
    if not isinstance(raw_modules, dict):
        raise ValueError("'modules' must be an object")
    for name, m in raw_modules.items():
        file = m.get("file")
        if file is not None and not isinstance(file, str):
            raise ValueError(f"'modules.{name}.file' must be a string or null")
        modules.append(Module(name, file, _strings(m.get("imported_by", []), f"modules.{name}.imported_by")))
    libraries = doc.get("libraries", {})
    if not isinstance(libraries, dict) or not isinstance(libraries.get("needed", {}), dict):
        raise ValueError("'libraries' must be an object with 'dlopen' and 'needed'")
    needed = tuple(sorted((so, _strings(v, f"libraries.needed.{so}")) for so, v in libraries.get("needed", {}).items()))
    opened = _strings(doc.get("opened", []), "opened")
    installed = set(_strings(doc.get("installed", []), "installed"))
    if doc.get("version") == 1:  # version 1 listed the installed files in "opened", as site-packages/PATH
        installed |= {p[len(SITE):] for p in opened if p.startswith(SITE)}
        opened = tuple(p for p in opened if not p.startswith(SITE))
    escaping = {p for p in opened if escapes(p)}  # a hand-edited path outside the project: reported, never copied
    # an installed path that leaves site-packages (absolute, ``..``): never kept nor pruned by, reported
    leaving = {p for p in installed if escapes(p)}
    return Trace(
        project=project,
        commands=tuple(sorted(commands)),
        modules=tuple(sorted(modules)),
        stdlib=_strings(doc.get("stdlib", []), "stdlib"),
        opened=tuple(p for p in opened if p not in escaping),
        outside=tuple(sorted({*_strings(doc.get("outside", []), "outside"), *escaping, *_as_outside(leaving)})),
        installed=tuple(sorted(installed - leaving)),
        dlopen=_strings(libraries.get("dlopen", []), "libraries.dlopen"),
        needed=needed,
    )


def _as_outside(installed: Iterable[str]) -> set[str]:
    """Installed paths leaving site-packages, as ``outside`` names them (absolute as given, else ``site-packages/..``)."""
    return {p if p.startswith("/") else SITE + p for p in installed}


def escapes(path: str) -> bool:
    """Whether a path the trace gives as relative leaves the project (absolute, or ``..`` in it)."""
    return path.startswith("/") or ".." in path.split("/")


def project_files(trace: Trace) -> tuple[str, ...]:
    """The project-relative files the trace names (modules' and opened files): none existing means another project."""
    files = {m.file for m in trace.modules if m.file and not m.file.startswith(SITE) and not escapes(m.file)}
    return tuple(sorted(files | {p for p in trace.opened if not p.startswith(SITE)}))


def check_project(trace: Trace, project: str | None, exists: Any, where: str = TRACE_FILE) -> None:
    """Exit 2 when the trace belongs to another project: another ``[project] name``, or none of its files here."""
    again = "trace this project's command with 'slimbuild trace --replace -- COMMAND'"
    if trace.project and project and trace.project != project:
        raise ConfigError(f"{where} is the trace of project '{trace.project}', not of '{project}'", hint=again)
    files = project_files(trace)
    if files and not any(exists(f) for f in files):
        raise ConfigError(
            f"{where} names none of this project's files (e.g. {files[0]}): it was traced in another project", hint=again,
        )
