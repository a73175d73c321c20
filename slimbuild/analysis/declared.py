"""What a project declares: requirements files, ``[project.dependencies]``, ``setup.cfg``."""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PepRequirement
from packaging.utils import canonicalize_name

from slimbuild.config import project_table, read_pyproject
from slimbuild.errors import ConfigError
from slimbuild.models import Declared, Location

DEFAULT_REQUIREMENT_FILES = ("requirements.txt", "requirements.in", "requirements/base.txt", "requirements/prod.txt")
_MAX_INCLUDE_DEPTH = 20
# pip's rule: '#' starts a comment at line start or after whitespace.
_COMMENT = re.compile(r"(^|\s)#.*$")


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Requirements-file lines as pip reads them: ``\\`` continuations joined, comments stripped (``#`` at the start or
    after whitespace), with the first line number; the lock file is read with the same rule."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    # The empty last line ends a continuation left open on the file's last line.
    for number, raw in enumerate([*text.splitlines(), ""], start=1):
        line = _COMMENT.sub("", raw)
        if not buf:
            start = number
        if line.rstrip().endswith("\\"):
            buf.append(line.rstrip()[:-1])
            continue
        buf.append(line)
        joined = " ".join(part.strip() for part in buf).strip()
        buf = []
        if joined:
            out.append((start, joined))
    return out


def parse_requirements_file(
    path: Path, root: Path, *, _seen: frozenset[Path] = frozenset(), consulted: set[Path] | None = None
) -> tuple[tuple[Declared, ...], tuple[Declared, ...]]:
    """Requirements and constraints of one file, following ``-r``/``-c`` includes (each added to ``consulted``)."""
    rel = _rel(path, root)
    if path.resolve() in _seen:
        return (), ()
    if consulted is not None:
        consulted.add(path)
    if len(_seen) > _MAX_INCLUDE_DEPTH:
        raise ConfigError(f"{rel}: requirement includes nest too deeply", hint="check for -r cycles")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{rel}: cannot read requirements file ({exc})", hint="check the path and its encoding") from None
    seen = _seen | {path.resolve()}
    reqs: list[Declared] = []
    cons: list[Declared] = []
    for line_no, line in logical_lines(text):
        loc = Location(rel, line_no)
        words = line.split()
        opt = words[0]
        target = _include_target(words)
        if target is not None:
            inc = path.parent / target
            if consulted is not None:
                consulted.add(inc)
            if not inc.is_file():
                raise ConfigError(f"{loc}: included file '{target}' not found", hint="fix the -r/-c path")
            sub_r, sub_c = parse_requirements_file(inc, root, _seen=seen, consulted=consulted)
            if opt.startswith(("-c", "--constraint")):
                cons.extend(sub_r + sub_c)
            else:
                reqs.extend(sub_r)
                cons.extend(sub_c)
            continue
        decl = _declaration(words, loc)
        if decl is not None:
            reqs.append(decl)
    return tuple(reqs), tuple(cons)


def _include_target(words: list[str]) -> str | None:
    """The file a ``-r``/``-c`` line includes (None for any other line)."""
    opt = words[0]
    if opt in {"-r", "--requirement", "-c", "--constraint"} or opt.startswith(
        ("-r", "-c", "--requirement=", "--constraint=")
    ):
        return (
            words[1]
            if len(words) > 1 and opt in {"-r", "-c", "--requirement", "--constraint"}
            else opt.split("=", 1)[-1]
            if "=" in opt
            else opt[2:]
        )
    return None


def _declaration(words: list[str], loc: Location) -> Declared | None:
    """What one requirement line declares (a URL, editable or path is marked "url"); None for a pip option."""
    opt = words[0]
    if opt in {"-e", "--editable"}:
        return Declared(f"<editable {words[-1]}>", "", loc, "url")
    if opt.startswith("-"):
        return None  # index and pip options: not declarations
    spec = " ".join(w for w in words if not w.startswith("--hash"))
    try:
        req = PepRequirement(spec)
    except InvalidRequirement as exc:
        if "://" in spec or spec.startswith((".", "/")):
            return Declared(f"<url {spec}>", "", loc, "url")
        raise ConfigError(f"{loc}: invalid requirement {spec!r}: {exc}", hint="use PEP 508 syntax, e.g. pandas>=2") from None
    if req.url:  # PEP 508 direct reference: name @ URL
        return Declared(canonicalize_name(req.name), "", loc, "url")
    return Declared(canonicalize_name(req.name), str(req.specifier), loc, str(req.marker or ""))


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _parse_list(values: Iterable[str], where: Location) -> list[Declared]:
    out = []
    for spec in values:
        try:
            req = PepRequirement(spec)
        except InvalidRequirement as exc:
            raise ConfigError(f"{where}: invalid requirement {spec!r}: {exc}", hint="use PEP 508 syntax") from None
        out.append(Declared(canonicalize_name(req.name), str(req.specifier), where, "url" if req.url else str(req.marker or "")))
    return out


def read_declared(
    root: Path,
    requirement_files: Iterable[str] = (),
    optional_groups: Iterable[str] = (),
    consulted: set[Path] | None = None,
    project: Mapping[str, Any] | None = None,
) -> tuple[tuple[Declared, ...], tuple[Declared, ...]]:
    """All runtime declarations and constraints of a project, sorted by name.

    ``consulted``, when given, gets every file read or looked for (besides the root's listing).
    ``project`` is pyproject.toml's ``[project]`` table as the settings hold it (read here when None).
    """
    if consulted is not None:
        consulted.update((root / "pyproject.toml", root / "setup.cfg"))
    reqs: list[Declared] = []
    cons: list[Declared] = []
    files = list(requirement_files) or [f for f in DEFAULT_REQUIREMENT_FILES if (root / f).is_file()]
    for name in files:
        p = root / name
        if consulted is not None:
            consulted.add(p)
        if not p.is_file():
            raise ConfigError(f"requirements file '{name}' not found", hint="fix 'requirements' in [tool.slimbuild]")
        r, c = parse_requirements_file(p, root, consulted=consulted)
        reqs.extend(r)
        cons.extend(c)
    if project is None:
        project = project_table(read_pyproject(root))
    reqs.extend(_parse_list(project.get("dependencies", []) or [], Location("pyproject.toml")))
    groups = project.get("optional-dependencies", {}) or {}
    for group in optional_groups:
        if group not in groups:
            raise ConfigError(
                f"pyproject.toml: no optional-dependencies group '{group}'",
                hint=f"groups: {', '.join(sorted(groups)) or 'none'}",
            )
        reqs.extend(_parse_list(groups[group], Location("pyproject.toml")))
    setup_cfg = root / "setup.cfg"
    if setup_cfg.is_file():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(setup_cfg, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"setup.cfg: cannot parse: {exc}", hint="fix the file's syntax") from None
        raw = parser.get("options", "install_requires", fallback="")
        lines = [ln.strip() for ln in raw.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        reqs.extend(_parse_list(lines, Location("setup.cfg")))
    return tuple(sorted(reqs, key=lambda d: (d.name, d.source))), tuple(sorted(cons, key=lambda d: (d.name, d.source)))
