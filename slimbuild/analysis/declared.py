"""What a project declares, wherever users keep it; the one reader of declaration files.

Requirements files (the root's, and those from the entrypoint's directory up to the root, with ``-r``/``-c``
includes), ``[project]``, Poetry, ``[dependency-groups]``, Pipfile, conda ``environment.yml``, ``setup.py`` and
``setup.cfg``. The other tools' formats are parsed in declared_formats.py and declared_conda.py (pure).
"""

from __future__ import annotations

import configparser
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PepRequirement
from packaging.utils import canonicalize_name

from slimbuild.analysis.declared_conda import read_environment
from slimbuild.analysis.declared_formats import (
    TomlLines,
    dependency_groups,
    load_toml,
    parse_pep508,
    poetry_extras,
    poetry_groups,
    read_dependency_group,
    read_pipfile,
    read_poetry,
    read_setup_py,
)
from slimbuild.analysis.declared_lines import (
    FileOptions,
    ProjectReference,
    index_option,
    project_reference,
    requirement_hashes,
)
from slimbuild.config import project_table, read_pyproject
from slimbuild.errors import ConfigError
from slimbuild.models import Declared, Finding, Location

DEFAULT_REQUIREMENT_FILES = ("requirements.txt", "requirements.in", "requirements/base.txt", "requirements/prod.txt")
ENVIRONMENT_FILES = ("environment.yml", "environment.yaml")
MAX_DECLARATION_BYTES = 2 * 1024 * 1024  # far above any real declaration file; bounds time and memory
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


def read_declaration_bytes(path: Path, rel: str) -> bytes:
    """A declaration file's bytes, refused past ``MAX_DECLARATION_BYTES`` (a file that big is not a declaration)."""
    try:
        size = path.stat().st_size
        if size > MAX_DECLARATION_BYTES:
            raise ConfigError(
                f"{rel}: {size} bytes, over the {MAX_DECLARATION_BYTES} bytes a declaration file may have",
                hint="is it really a requirements/environment file? move it or name the right one in [tool.slimbuild]",
            )
        with path.open("rb") as fh:
            return fh.read(MAX_DECLARATION_BYTES + 1)[:MAX_DECLARATION_BYTES]
    except OSError as exc:
        raise ConfigError(f"{rel}: cannot read: {exc.strerror or exc}", hint="check the path and its permissions") from None


def read_declaration_text(path: Path, rel: str) -> str:
    """A declaration file's text: UTF-8 (a BOM is allowed), undecodable bytes an error with their offset."""
    data = read_declaration_bytes(path, rel)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{rel}: not UTF-8 (byte {exc.start}: {data[exc.start:exc.start + 1]!r})", hint="save the file as UTF-8"
        ) from None


def parse_requirements_file(
    path: Path,
    root: Path,
    *,
    _chain: tuple[Path, ...] = (),
    consulted: set[Path] | None = None,
    included_from: Location | None = None,
    options: FileOptions | None = None,
) -> tuple[tuple[Declared, ...], tuple[Declared, ...]]:
    """Requirements and constraints of one file, following ``-r``/``-c`` includes (each added to ``consulted``).

    An include loop is an error at the line that closes it; an include outside the project is read, and reported
    by its absolute path. ``options`` gets the index options and the lines naming this project (``-e .``).
    """
    rel = _rel(path, root)
    resolved = path.resolve()
    if resolved in _chain:
        loop = " -> ".join(_rel(p, root) for p in (*_chain, resolved))
        raise ConfigError(f"{included_from or rel}: requirement includes form a loop ({loop})", hint="remove one -r/-c line")
    if consulted is not None:
        consulted.add(path)
    if len(_chain) > _MAX_INCLUDE_DEPTH:
        raise ConfigError(f"{included_from or rel}: requirement includes nest too deeply", hint="flatten the -r chain")
    lines = logical_lines(read_declaration_text(path, rel))
    return parse_requirement_lines(lines, path.parent, rel, root, (*_chain, resolved), consulted, options)


def parse_requirement_lines(
    lines: Iterable[tuple[int, str]],
    base: Path,
    rel: str,
    root: Path,
    chain: tuple[Path, ...] = (),
    consulted: set[Path] | None = None,
    options: FileOptions | None = None,
) -> tuple[tuple[Declared, ...], tuple[Declared, ...]]:
    """Requirement lines (of a file, or of an environment file's ``pip:`` section); includes are relative to ``base``."""
    reqs: list[Declared] = []
    cons: list[Declared] = []
    sink = FileOptions() if options is None else options
    for line_no, line in lines:
        loc = Location(rel, line_no)
        words = line.split()
        if not words:
            continue
        target = _include_target(words)
        if target is not None:
            inc = base / target
            if consulted is not None:
                consulted.add(inc)
            if not inc.is_file():
                raise ConfigError(f"{loc}: included file '{target}' not found", hint="fix the -r/-c path")
            sub_r, sub_c = parse_requirements_file(
                inc, root, _chain=chain, consulted=consulted, included_from=loc, options=sink
            )
            if words[0].startswith(("-c", "--constraint")):
                cons.extend(sub_r + sub_c)
            else:
                reqs.extend(sub_r)
                cons.extend(sub_c)
            continue
        opt = index_option(words, loc, base)
        if opt is not None:
            sink.index.append(opt)
            continue
        ref = project_reference(words, loc, base, root)
        if ref is not None and ref.path == root.resolve():
            sink.projects.append(ref)  # this project: its declarations are read where they are (pyproject.toml...)
            continue
        decl = _local_declaration(ref, root) if ref is not None else _declaration(words, loc)
        if decl is not None:
            reqs.append(decl)
    return tuple(reqs), tuple(cons)


def _local_declaration(ref: ProjectReference, root: Path) -> Declared:
    """A local directory that is not this project: kept as a URL declaration, which the lock refuses (C8)."""
    return Declared(f"<local project {ref.text} ({_rel(ref.path, root)})>", "", ref.source, "url")


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
    hashes = requirement_hashes(words, loc)
    spec = " ".join(w for i, w in enumerate(words) if not w.startswith("--hash") and (i == 0 or words[i - 1] != "--hash"))
    try:
        req = PepRequirement(spec)
    except InvalidRequirement as exc:
        if "://" in spec or spec.startswith((".", "/")):
            return Declared(f"<url {spec}>", "", loc, "url")
        raise ConfigError(f"{loc}: invalid requirement {spec!r}: {exc}", hint="use PEP 508 syntax, e.g. pandas>=2") from None
    if req.url:  # PEP 508 direct reference: name @ URL
        return Declared(canonicalize_name(req.name), "", loc, "url")
    return Declared(canonicalize_name(req.name), str(req.specifier), loc, str(req.marker or ""), hashes)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:  # outside the project: its absolute path says where
        return path.resolve().as_posix()


def _parse_list(
    values: object, where: Location, lines: TomlLines | None = None, table: str = "", key: str = ""
) -> list[Declared]:
    """A list of PEP 508 strings; with ``lines``, each gets the line that quotes it."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        at = lines.at(table, key) if lines is not None and table else where
        name = f"[{table}] {key}" if table else "dependencies"
        got = "a string" if isinstance(values, str) else "a list holding non-strings" if isinstance(values, list) else (
            f"a {type(values).__name__}"
        )
        example = f'{key or "dependencies"} = {json.dumps([values] if isinstance(values, str) else ["pandas>=2"])}'
        raise ConfigError(f"{at}: {name} must be a list of strings, not {got}", hint=f"e.g. {example}")
    return [parse_pep508(spec, lines.string_at(spec, table, key) if lines else where) for spec in values]


def _requirement_files(
    root: Path, names: Iterable[str], consulted: set[Path] | None, options: FileOptions
) -> tuple[list[Declared], list[Declared]]:
    reqs: list[Declared] = []
    cons: list[Declared] = []
    for name in names:
        p = root / name
        if consulted is not None:
            consulted.add(p)
        if not p.is_file():
            raise ConfigError(f"requirements file '{name}' not found", hint="fix 'requirements' in [tool.slimbuild]")
        r, c = parse_requirements_file(p, root, consulted=consulted, options=options)
        reqs.extend(r)
        cons.extend(c)
    return reqs, cons


def _stage_dirs(root: Path, entry_dir: Path | None) -> list[Path]:
    """The directories from the entrypoint's up to the root's (excluded), nearest first."""
    if entry_dir is None:
        return []
    start, top = (root / entry_dir).resolve(), root.resolve()
    if start != top and top not in start.parents:
        return []
    return [d for d in (start, *start.parents) if top in d.parents]


def _nearest_wins(levels: Iterable[Iterable[Declared]]) -> list[Declared]:
    """Declarations level by level, nearest first: a distribution declared nearer shadows the farther declarations."""
    out: list[Declared] = []
    seen: set[str] = set()
    for level in levels:
        decls = list(level)
        out.extend(d for d in decls if d.name not in seen)
        seen.update(d.name for d in decls)
    return out


def _pyproject_declarations(
    root: Path, project: Mapping[str, Any], extras: Sequence[str], groups: Sequence[str]
) -> tuple[list[Declared], set[str], set[str]]:
    """``[project]``, Poetry and ``[dependency-groups]``: declarations, the extras and the groups they define."""
    where = Location("pyproject.toml")
    path = root / "pyproject.toml"
    text = read_declaration_text(path, "pyproject.toml") if path.is_file() else ""
    lines = TomlLines(text, "pyproject.toml")
    reqs = _parse_list(project.get("dependencies", []) or [], where, lines, "project", "dependencies")
    optional = project.get("optional-dependencies", {}) or {}
    if not isinstance(optional, dict):
        raise ConfigError(f"{where}: [project.optional-dependencies] must be a table", hint="ml = [\"torch\"]")
    for extra in extras:
        if extra in optional:
            reqs.extend(_parse_list(optional[extra], where, lines, "project.optional-dependencies", extra))
    if "poetry" not in text and "dependency-groups" not in text:
        return reqs, set(optional), set()
    data = load_toml(text, "pyproject.toml")
    reqs.extend(read_poetry(data, lines, extras, groups))
    tool = data.get("tool", {})
    poetry = tool.get("poetry", {}) if isinstance(tool, dict) else {}
    poetry = poetry if isinstance(poetry, dict) else {}
    pep735 = dependency_groups(data, lines)
    for group in groups:
        if canonicalize_name(group) in pep735:
            reqs.extend(read_dependency_group(pep735, group, lines))
    return reqs, set(optional) | set(poetry_extras(poetry, lines)), set(pep735) | poetry_groups(poetry)


def _environment_files(
    directory: Path, root: Path, consulted: set[Path] | None, findings: list[Finding], options: FileOptions
) -> tuple[list[Declared], list[Declared]]:
    """A directory's Pipfile and environment.yml (with its pip: section): requirements and constraints."""
    reqs: list[Declared] = []
    cons: list[Declared] = []
    if consulted is not None:
        consulted.update(directory / n for n in ("Pipfile", *ENVIRONMENT_FILES))
    if (directory / "Pipfile").is_file():
        rel = _rel(directory / "Pipfile", root)
        reqs.extend(read_pipfile(read_declaration_text(directory / "Pipfile", rel), rel))
    for name in ENVIRONMENT_FILES:
        if (directory / name).is_file():
            rel = _rel(directory / name, root)
            decls, found, pip = read_environment(read_declaration_text(directory / name, rel), rel)
            r, c = parse_requirement_lines(pip, directory, rel, root, consulted=consulted, options=options)
            reqs.extend((*decls, *r))
            cons.extend(c)
            findings.extend(found)
    return reqs, cons


def _other_tools(
    root: Path, extras: Sequence[str], consulted: set[Path] | None, findings: list[Finding]
) -> tuple[list[Declared], set[str]]:
    """setup.py and setup.cfg: requirements and the extras setup.py defines."""
    if consulted is not None:
        consulted.update(root / n for n in ("setup.py", "setup.cfg"))
    reqs: list[Declared] = []
    known: set[str] = set()
    if (root / "setup.py").is_file():
        decls, found, known = read_setup_py(read_declaration_bytes(root / "setup.py", "setup.py"), "setup.py", extras)
        reqs.extend(decls)
        findings.extend(found)
    reqs.extend(_setup_cfg(root))
    return reqs, known


def _this_project(root: Path, options: FileOptions, known_extras: set[str]) -> list[str]:
    """The extras the lines naming this project select (``-e .[ml]``); such a line needs a project to name."""
    refs = options.projects
    if refs and not any((root / n).is_file() for n in ("pyproject.toml", "setup.py", "setup.cfg")):
        raise ConfigError(
            f"{refs[0].source}: '{refs[0].text}' names this project, which has no pyproject.toml, setup.py or setup.cfg",
            hint="remove the line, or declare the project's dependencies in pyproject.toml [project]",
        )
    extras: list[str] = []
    for ref in refs:
        for extra in ref.extras:
            if extra not in known_extras:
                raise ConfigError(
                    f"{ref.source}: '{ref.text}': this project has no extra '{extra}'",
                    hint=f"extras: {', '.join(sorted(known_extras)) or 'none'}",
                )
            extras.append(extra)
    return extras


def _setup_cfg(root: Path) -> list[Declared]:
    setup_cfg = root / "setup.cfg"
    if not setup_cfg.is_file():
        return []
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(read_declaration_text(setup_cfg, "setup.cfg"), source="setup.cfg")
    except configparser.Error as exc:
        line = getattr(exc, "lineno", 0)
        raise ConfigError(f"setup.cfg{f':{line}' if line else ''}: cannot parse: {exc.message}", hint="fix its syntax") from None
    raw = parser.get("options", "install_requires", fallback="")
    lines = [ln.strip() for ln in raw.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return _parse_list(lines, Location("setup.cfg"))


# long: the one entry point; each source is a helper above, this only orders them and checks the selections
def read_declared(
    root: Path,
    requirement_files: Iterable[str] = (),
    optional_groups: Iterable[str] = (),
    consulted: set[Path] | None = None,
    project: Mapping[str, Any] | None = None,
    *,
    groups: Iterable[str] = (),
    entry_dir: Path | None = None,
    findings: list[Finding] | None = None,
    options: FileOptions | None = None,
) -> tuple[tuple[Declared, ...], tuple[Declared, ...]]:
    """All runtime declarations and constraints of a project (for one entrypoint), sorted by name.

    ``consulted``, when given, gets every file read or looked for (besides the root's listing).
    ``project`` is pyproject.toml's ``[project]`` table as the settings hold it (read here when None).
    ``optional_groups`` are the extras selected (``[project.optional-dependencies]``, Poetry extras, setup.py's
    ``extras_require``); ``groups`` the dependency groups (PEP 735, Poetry groups), none of which is runtime otherwise.
    ``entry_dir`` (relative to ``root``) adds the requirements files, Pipfiles and environment files from that
    directory up to the root, unless ``requirement_files`` names the files: a distribution declared nearer the
    entrypoint shadows the farther ones.
    ``findings`` gets SB015 warnings (declarations that cannot be taken as PyPI distributions).
    ``options`` gets the requirements files' index options and their lines naming this project (``-e .``): such
    a line selects the project's own declarations (and its extras, ``-e .[ml]``), never a distribution.
    """
    extras, wanted_groups = list(optional_groups), list(groups)
    opts = FileOptions() if options is None else options
    sink: list[Finding] = [] if findings is None else findings
    if consulted is not None:
        consulted.add(root / "pyproject.toml")
    explicit = list(requirement_files)
    levels: list[list[Declared]] = []
    cons: list[Declared] = []
    for stage in [] if explicit else _stage_dirs(root, entry_dir):
        names = [str((stage / f).relative_to(root.resolve())) for f in DEFAULT_REQUIREMENT_FILES if (stage / f).is_file()]
        if consulted is not None:
            consulted.update(stage / f for f in DEFAULT_REQUIREMENT_FILES)
        r, c = _requirement_files(root.resolve(), names, consulted, opts)
        env_r, env_c = _environment_files(stage, root, consulted, sink, opts)
        levels.append([*r, *env_r])
        cons.extend((*c, *env_c))
    files = explicit or [f for f in DEFAULT_REQUIREMENT_FILES if (root / f).is_file()]
    reqs, c = _requirement_files(root, files, consulted, opts)
    env_r, env_c = _environment_files(root, root, consulted, sink, opts)
    reqs.extend(env_r)
    cons.extend((*c, *env_c))
    if project is None:
        project = project_table(read_pyproject(root))
    if opts.projects:  # `-e .[ml]`: the extras it selects are read with the ones configured
        _, known, _ = _pyproject_declarations(root, project, [], [])
        setup_known = _other_tools(root, [], None, [])[1]
        extras.extend(e for e in _this_project(root, opts, known | setup_known) if e not in extras)
    declared, known_extras, known_groups = _pyproject_declarations(root, project, extras, wanted_groups)
    other, setup_extras = _other_tools(root, extras, consulted, sink)
    for extra in extras:
        if extra not in known_extras | setup_extras:
            raise ConfigError(
                f"pyproject.toml: no optional-dependencies group '{extra}'",
                hint=f"extras: {', '.join(sorted(known_extras | setup_extras)) or 'none'}",
            )
    for group in wanted_groups:
        if canonicalize_name(group) not in known_groups and group not in known_groups:
            raise ConfigError(
                f"pyproject.toml: no dependency group '{group}' ([dependency-groups] or [tool.poetry.group])",
                hint=f"groups: {', '.join(sorted(known_groups)) or 'none'}; fix 'groups' in [tool.slimbuild]",
            )
    levels.append([*reqs, *declared, *other])
    out = _nearest_wins(levels)
    return tuple(sorted(out, key=lambda d: (d.name, d.source))), tuple(sorted(cons, key=lambda d: (d.name, d.source)))
