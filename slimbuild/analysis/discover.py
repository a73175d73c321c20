"""Entrypoint discovery: which code runs first when nothing is configured; pure over a :class:`Layout`.

The layouts, strongest evidence first; the first that names anything wins, and every candidate it names is kept:

1. ``[project.scripts]`` in pyproject.toml;
2. the project's own ``Dockerfile`` (the final stage's ``ENTRYPOINT``/``CMD``) and ``Procfile`` processes;
3. the conventional names at the root: ``__main__.py``, ``streamlit_app.py``, ``app.py``, ``main.py``, ``run.py``;
4. root scripts with an ``if __name__ == "__main__":`` block;
5. the notebooks of the project.

A command is understood when it runs Python on a script or a module (``python x.py``, ``python -m pkg``,
``streamlit run app.py``, behind ``uv run``/``poetry run``/``sh -c`` and the like) that is in the project.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol

from slimbuild.analysis.notebook import load_notebook
from slimbuild.errors import SlimbuildError
from slimbuild.models import Location

STREAMLIT_RUN = "streamlit run "  # the spec of a script that `streamlit run` serves
CONVENTIONAL = ("__main__.py", "streamlit_app.py", "app.py", "main.py", "run.py")
_NOT_ENTRYPOINTS = frozenset({"setup.py", "conftest.py", "noxfile.py", "fabfile.py", "tasks.py"})
_MAIN_GUARD = re.compile(r"""^if\s+(?:__name__\s*==\s*(['"])__main__\1|(['"])__main__\2\s*==\s*__name__)\s*:""", re.M)
_PYTHON = re.compile(r"python(?:3(?:\.\d+)?)?")
_RUNNERS = frozenset({"uv", "poetry", "pipenv", "pdm", "rye", "hatch", "conda", "micromamba", "mamba"})
_SHELLS = frozenset({"sh", "bash", "dash", "zsh"})
_SEPARATORS = frozenset({"&&", "||", ";", "|"})
_PY_OPTS_WITH_VALUE = frozenset({"-X", "-W", "-Q"})


class Layout(Protocol):
    """What discovery may look at: the project's root entries, a few files' text, whether a path exists, notebooks."""

    def root_files(self) -> frozenset[str]:
        """Names of the regular files at the project root."""

    def read(self, rel: str) -> str | None:
        """The text of a project file (None when absent or unreadable)."""

    def exists(self, rel: str) -> bool:
        """Whether a project-relative path is a file or directory."""

    def notebooks(self) -> tuple[str, ...]:
        """Every notebook of the project (project-relative, sorted, ignored directories skipped)."""


@dataclass(frozen=True, order=True)
class Candidate:
    """An entrypoint found without configuration: its spec, where it was found and how."""

    spec: str
    source: Location
    how: str
    skip: str = ""  # why it is not analysed (a notebook that is not Python), shown as a notice


def discover(layout: Layout, project: Mapping[str, Any]) -> tuple[Candidate, ...]:
    """The candidates of the strongest layout that names any, deduplicated by spec (first occurrence kept)."""
    steps: Sequence[Callable[[], list[Candidate]]] = (
        lambda: _from_scripts(project),
        lambda: _from_deployment(layout),
        lambda: [Candidate(n, Location(n), "its conventional name") for n in CONVENTIONAL if n in layout.root_files()],
        lambda: _from_main_guards(layout),
        lambda: [Candidate(n, Location(n), "the project's notebooks", _not_python(layout, n)) for n in layout.notebooks()],
    )
    for step in steps:
        found = step()
        if found:
            unique: dict[str, Candidate] = {}
            for c in found:
                unique.setdefault(c.spec, c)
            return tuple(unique.values())
    return ()


def _not_python(layout: Layout, rel: str) -> str:
    """Why a discovered notebook is not analysed: its code is not Python (A11: skipped with a notice); '' to analyse it.

    A notebook that cannot be read here (too large, not JSON) is analysed: the trace says what is wrong with it.
    """
    text = layout.read(rel)
    if text is None:
        return ""
    try:
        nb = load_notebook(text.encode("utf-8", "surrogateescape"), rel)
    except SlimbuildError:
        return ""
    if nb.language == "python" or not any(c.source.strip() for c in nb.cells):
        return ""
    return f"its kernel language is {nb.language!r}" if nb.language else "it names no kernel language"


def candidate_names(candidates: Sequence[Candidate]) -> list[str]:
    """A distinct entrypoint name per candidate: the file's stem, or its path when two stems collide."""
    stems = [entry_name(c.spec) for c in candidates]
    names = []
    for c, stem in zip(candidates, stems, strict=True):
        if stems.count(stem) > 1:
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(PurePosixPath(c.spec.split(":")[0]).with_suffix(""))).strip("-")
        names.append(stem or "default")
    return names


def entry_name(spec: str) -> str:
    """The name an entrypoint given only by its spec gets: the file's stem; a package's for its __main__/__init__."""
    if spec.startswith(STREAMLIT_RUN):
        spec = spec[len(STREAMLIT_RUN):].split()[0] if spec[len(STREAMLIT_RUN):].split() else spec
    path = PurePosixPath(spec.split(":")[0])
    if path.stem in {"__main__", "__init__"} and path.parent.name:
        return path.parent.name
    return path.stem or spec


def config_line(spec: str) -> str:
    """The configuration that pins ``spec`` as the entrypoint."""
    return f"[tool.slimbuild] entrypoint = {json.dumps(spec)}"


def _from_scripts(project: Mapping[str, Any]) -> list[Candidate]:
    scripts = project.get("scripts")
    if not isinstance(scripts, dict):
        return []
    where = Location("pyproject.toml")
    return [Candidate(v, where, f"[project.scripts] {k}") for k, v in sorted(scripts.items()) if isinstance(v, str) and v]


def _from_main_guards(layout: Layout) -> list[Candidate]:
    out = []
    for name in sorted(layout.root_files()):
        if not name.endswith(".py") or name in _NOT_ENTRYPOINTS or name.startswith("test_") or name.endswith("_test.py"):
            continue
        text = layout.read(name)
        m = _MAIN_GUARD.search(text) if text else None
        if m:
            line = text.count("\n", 0, m.start()) + 1 if text else 0
            out.append(Candidate(name, Location(name, line), "its `if __name__ == \"__main__\":` block"))
    return out


def _from_deployment(layout: Layout) -> list[Candidate]:
    out: list[Candidate] = []
    files = layout.root_files()
    if "Dockerfile" in files:
        text = layout.read("Dockerfile")
        found = dockerfile_command(text) if text else None
        if found is not None:
            line, keyword, argv, workdir = found
            spec = command_target(argv, workdir, layout.exists)
            if spec:
                out.append(Candidate(spec, Location("Dockerfile", line), f"the Dockerfile's {keyword}"))
    if "Procfile" in files:
        for n, raw in enumerate((layout.read("Procfile") or "").splitlines(), start=1):
            kind, sep, command = raw.partition(":")
            if not sep or raw.lstrip().startswith("#") or not kind.strip():
                continue
            try:
                argv = shlex.split(command)
            except ValueError:
                continue
            spec = command_target(argv, "", layout.exists)
            if spec:
                out.append(Candidate(spec, Location("Procfile", n), f"the Procfile's {kind.strip()} process"))
    return out


def _instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, KEYWORD, value) of a Dockerfile, continuation lines joined and comments dropped."""
    out: list[tuple[int, str, str]] = []
    parts: list[str] = []
    start = 0
    for n, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not parts and (not stripped or stripped.startswith("#")):
            continue
        if parts and stripped.startswith("#"):
            continue
        if not parts:
            start = n
        if stripped.endswith("\\"):
            parts.append(stripped[:-1])
            continue
        parts.append(stripped)
        keyword, _, value = " ".join(parts).strip().partition(" ")
        out.append((start, keyword.upper(), value.strip()))
        parts = []
    return out


def _argv(value: str) -> tuple[list[str], bool]:
    """An instruction's argv and whether it was in exec form."""
    if value.startswith("["):
        try:
            loaded = json.loads(value)
        except ValueError:
            loaded = None
        if isinstance(loaded, list) and all(isinstance(v, str) for v in loaded):
            return list(loaded), True
    try:
        return shlex.split(value), False
    except ValueError:
        return [], False


def dockerfile_command(text: str) -> tuple[int, str, list[str], str] | None:
    """What the final stage runs: (line, 'CMD'/'ENTRYPOINT', argv, WORKDIR), or None when it names nothing."""
    entry: tuple[int, list[str], bool] | None = None
    cmd: tuple[int, list[str]] | None = None
    workdir = ""
    for line, keyword, value in _instructions(text):
        if keyword == "FROM":
            entry, cmd, workdir = None, None, ""
        elif keyword == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir or "/", value.strip("\"'")))
        elif keyword == "ENTRYPOINT":
            argv, exec_form = _argv(value)
            entry = (line, argv, exec_form)
        elif keyword == "CMD":
            cmd = (line, _argv(value)[0])
    if entry is not None and entry[1]:
        argv = entry[1] + (cmd[1] if cmd is not None and entry[2] else [])
        return entry[0], "ENTRYPOINT", argv, workdir
    if cmd is not None and cmd[1]:
        return cmd[0], "CMD", cmd[1], workdir
    return None


def command_target(argv: Sequence[str], workdir: str, exists: Callable[[str], bool]) -> str:
    """The project script, notebook or module a command runs ('' when it runs none, or one not in the project)."""
    words = list(argv)
    # a shell line: each command of it in turn (`cd /app && python main.py`)
    segment: list[str] = []
    for w in [*words, ";"]:
        if w in _SEPARATORS:
            found = _segment_target(segment, workdir, exists)
            if found:
                return found
            segment = []
        else:
            segment.append(w)
    return ""


def _segment_target(words: list[str], workdir: str, exists: Callable[[str], bool]) -> str:
    while words:
        head = PurePosixPath(words[0]).name
        if head in {"exec", "nohup"} or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words = words[1:]
        elif head == "env":
            words = [w for w in words[1:] if not w.startswith("-")]
        elif head in _SHELLS and len(words) >= 3 and words[1] in {"-c", "-lc", "-ec"}:
            try:
                return command_target(shlex.split(words[2]), workdir, exists)
            except ValueError:
                return ""
        elif head in _RUNNERS and len(words) >= 2 and words[1] == "run":
            rest = words[2:]
            while rest and rest[0].startswith("-"):
                rest = rest[2:] if rest[0] in {"-n", "--name", "-p", "--prefix", "--with", "--python"} else rest[1:]
            words = rest
        else:
            break
    if not words:
        return ""
    head = PurePosixPath(words[0]).name
    if _PYTHON.fullmatch(head):
        return _python_target(words[1:], workdir, exists)
    if head == "streamlit" and len(words) >= 3 and words[1] == "run":
        return _streamlit_spec(words[2:], workdir, exists)
    return ""


def _streamlit_spec(words: list[str], workdir: str, exists: Callable[[str], bool]) -> str:
    """``streamlit run SCRIPT ARGS``: the spec that serves the project's script the same way."""
    script = _project_file(words[0], workdir, exists)
    return shlex.join(["streamlit", "run", script, *words[1:]]) if script.endswith(".py") else ""


def _python_target(args: list[str], workdir: str, exists: Callable[[str], bool]) -> str:
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-m" and i + 1 < len(args):
            module = args[i + 1]
            if module == "streamlit" and i + 3 < len(args) and args[i + 2] == "run":
                return _streamlit_spec(args[i + 3 :], workdir, exists)
            top = module.split(".")[0]
            dirs = ("", "src/")
            if any(exists(f"{d}{top}") or exists(f"{d}{top}.py") for d in dirs) and module.replace(".", "").isidentifier():
                return module
            return ""
        if a == "-c" or a == "-":
            return ""
        if a.startswith("-"):
            i += 2 if a in _PY_OPTS_WITH_VALUE else 1
            continue
        return _project_file(a, workdir, exists)
    return ""


def _project_file(path: str, workdir: str, exists: Callable[[str], bool]) -> str:
    """A command's path as a project-relative one: the project is assumed copied to WORKDIR."""
    if not path.endswith((".py", ".ipynb")):
        return ""
    tries = []
    if not path.startswith("/"):
        tries.append(posixpath.normpath(path))  # the project copied to WORKDIR
        path = posixpath.join(workdir or "/", path)  # else: WORKDIR is a directory of the project
    norm = posixpath.normpath(path)
    if workdir and workdir != "/" and norm.startswith(workdir.rstrip("/") + "/"):
        tries.append(norm[len(workdir.rstrip("/")) + 1 :])
    parts = norm.strip("/").split("/")
    tries.extend("/".join(parts[i:]) for i in range(1, len(parts)))  # /app/src/x.py -> src/x.py, x.py
    for rel in tries:
        if rel and not rel.startswith("../") and rel != ".." and exists(rel):
            return rel
    return ""
