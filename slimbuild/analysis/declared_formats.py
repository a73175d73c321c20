"""Declarations in other tools' files: Poetry, PEP 735 ``[dependency-groups]``, Pipfile, ``setup.py``.

Pure: each reader takes a file's text (or its parsed TOML) and the path to report, and returns ``Declared`` values
with their file and line. Bad input is a ``ConfigError`` naming ``file:line``; nothing here executes project code.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PepRequirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from slimbuild.errors import ConfigError
from slimbuild.models import Declared, Finding, Location, Severity

_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.\-]+)\s*=""")
_POETRY_CLAUSE = re.compile(r"(\^|~=|~|===|==|!=|>=|<=|>|<|=)?\s*(\*|[0-9][^\s,]*)")


def parse_pep508(spec: str, where: Location, hint: str = "use PEP 508 syntax, e.g. pandas>=2") -> Declared:
    """One PEP 508 string as a declaration (a direct reference is marked "url")."""
    try:
        req = PepRequirement(spec)
    except InvalidRequirement as exc:
        raise ConfigError(f"{where}: invalid requirement {spec!r}: {exc}", hint=hint) from None
    if req.url:
        return Declared(canonicalize_name(req.name), "", where, "url")
    return Declared(canonicalize_name(req.name), str(req.specifier), where, str(req.marker or ""))


def load_toml(text: str, rel: str) -> dict[str, Any]:
    """A TOML document; a syntax error is a ``ConfigError`` at ``file:line``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        at = _TOML_AT.search(msg)
        where = f"{rel}:{at.group(1)}" if at else rel
        raise ConfigError(f"{where}: invalid TOML: {_TOML_AT.sub('', msg)}", hint="fix the file's syntax") from None
    except RecursionError:
        raise ConfigError(f"{rel}: invalid TOML: nested too deeply", hint="fix the file's syntax") from None


class TomlLines:
    """Best-effort line numbers of ``key = ...`` lines per table header (tomllib keeps none)."""

    def __init__(self, text: str, rel: str) -> None:
        self.rel = rel
        self._lines: dict[tuple[str, str], int] = {}
        self._text = text.splitlines()
        header = ""
        for number, line in enumerate(self._text, start=1):
            m = _HEADER.match(line)
            if m:
                header = _norm_header(m.group(1))
                self._lines.setdefault((header, ""), number)
                continue
            k = _KEY.match(line)
            if k:
                self._lines.setdefault((header, k.group(1).strip("\"'")), number)

    def at(self, table: str, key: str = "") -> Location:
        """Where ``key`` of ``[table]`` is (the header's line, or no line, when not found)."""
        parent, _, last = table.rpartition(".")
        line = (
            self._lines.get((table, key))
            or self._lines.get((table, ""))
            or self._lines.get((parent, last))  # a table written as a key of its parent: dependencies = ...
            or 0
        )
        return Location(self.rel, line)


    def string_at(self, value: str, table: str, key: str) -> Location:
        """Where the string ``value`` of an array ``key`` of ``[table]`` is: the first line after the key quoting it."""
        start = self.at(table, key).line
        for quoted in (f'"{value}"', f"'{value}'"):
            for number in range(max(start, 1), len(self._text) + 1):
                if quoted in self._text[number - 1]:
                    return Location(self.rel, number)
        return Location(self.rel, start)


def _norm_header(raw: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in raw.split("."))


def _table(value: object, where: Location, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {what} must be a table, not {type(value).__name__}", hint="see the tool's docs")
    return value


# ---------------------------------------------------------------- Poetry


def _bump(release: list[int], index: int) -> str:
    upper = release[: index + 1]
    upper[index] += 1
    return ".".join(str(n) for n in upper)


def _poetry_clause(op: str, version: str) -> str:
    if version == "*":
        return ""
    if op in {"^", "~"}:
        release = list(Version(version).release)
        if op == "^":
            nonzero = next((i for i, n in enumerate(release) if n), len(release) - 1)
            return f">={version},<{_bump(release, nonzero)}"
        return f">={version},<{_bump(release, 1 if len(release) > 1 else 0)}"
    return f"=={version}" if op in {"", "="} else f"{op}{version}"


def poetry_specifier(constraint: str) -> str:
    """A Poetry version constraint as a PEP 440 specifier ('' for any version).

    ``^1.2`` is ``>=1.2,<2``, ``~1.2.3`` is ``>=1.2.3,<1.3``, a bare version is ``==``; an ``||`` union has no
    single PEP 440 form, so it leaves the version to the resolver (''). Raises ValueError on what is not a constraint.
    """
    text = constraint.strip()
    if "||" in text or "|" in text:
        return ""
    parts: list[str] = []
    rest = text
    while rest.strip(" ,"):
        m = _POETRY_CLAUSE.match(rest.strip(" ,"))
        if not m:
            raise ValueError(f"not a version constraint: {constraint!r}")
        try:
            clause = _poetry_clause(m.group(1) or "", m.group(2))
        except InvalidVersion:
            raise ValueError(f"not a version: {m.group(2)!r}") from None
        if clause:
            parts.append(clause)
        rest = rest.strip(" ,")[m.end() :]
    spec = ",".join(parts)
    try:
        return str(SpecifierSet(spec))
    except InvalidSpecifier as exc:
        raise ValueError(str(exc)) from None


def _python_marker(constraint: str) -> str:
    spec = poetry_specifier(constraint)
    out = []
    for s in SpecifierSet(spec):
        var = "python_full_version" if s.version.count(".") >= 2 and not s.version.endswith("*") else "python_version"
        out.append(f'{var} {s.operator} "{s.version}"')
    return " and ".join(out)


def _poetry_marker(entry: Mapping[str, Any]) -> str:
    parts = []
    if isinstance(entry.get("markers"), str) and entry["markers"].strip():
        parts.append(f"({entry['markers']})")
    if isinstance(entry.get("python"), str) and entry["python"].strip() not in {"", "*"}:
        marker = _python_marker(entry["python"])
        if marker:
            parts.append(f"({marker})")
    if isinstance(entry.get("platform"), str):
        parts.append(f'sys_platform == "{entry["platform"]}"')
    return " and ".join(parts)


def _poetry_entries(name: str, value: object, where: Location) -> list[Declared]:
    """One ``name = ...`` of a Poetry dependencies table: a string, a table, or a list of tables."""
    dist = canonicalize_name(name)
    if isinstance(value, list):
        return [d for item in value for d in _poetry_entries(name, item, where)]
    if isinstance(value, str):
        value = {"version": value}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: dependency '{name}' must be a version string, a table or a list of tables, "
            f"not {type(value).__name__}",
            hint='e.g. pandas = "^2.1" or pandas = { version = "^2.1", optional = true }',
        )
    if any(k in value for k in ("git", "path", "url", "file")):
        return [Declared(dist, "", where, "url")]
    version = value.get("version", "*")
    if not isinstance(version, str):
        raise ConfigError(f"{where}: '{name}' version must be a string", hint='e.g. version = "^2.1"')
    try:
        spec = poetry_specifier(version)
        marker = _poetry_marker(value)
    except (ValueError, InvalidSpecifier) as exc:
        raise ConfigError(f"{where}: '{name}': {exc}", hint="use Poetry constraint syntax, e.g. ^2.1 or >=2,<3") from None
    try:
        if marker:
            Marker(marker)
    except InvalidMarker as exc:
        raise ConfigError(f"{where}: '{name}': invalid markers: {exc}", hint="use PEP 508 markers") from None
    return [Declared(dist, spec, where, marker)]


def _poetry_table(deps: object, lines: TomlLines, table: str, wanted: set[str] | None) -> list[Declared]:
    """Declarations of one Poetry dependencies table; optional ones only when their name is in ``wanted``."""
    out: list[Declared] = []
    for name, value in sorted(_table(deps, lines.at(table), f"[{table}]").items()):
        if canonicalize_name(name) == "python":
            continue  # the interpreter, not a distribution
        optional = isinstance(value, dict) and value.get("optional") is True
        if wanted is not None and optional and canonicalize_name(name) not in wanted:
            continue
        out.extend(_poetry_entries(name, value, lines.at(table, name)))
    return out


def poetry_extras(poetry: Mapping[str, Any], lines: TomlLines) -> dict[str, set[str]]:
    """``[tool.poetry.extras]``: extra -> the distributions it selects."""
    extras = _table(poetry.get("extras", {}), lines.at("tool.poetry.extras"), "[tool.poetry.extras]")
    out: dict[str, set[str]] = {}
    for extra, names in extras.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(
                f"{lines.at('tool.poetry.extras', extra)}: extra '{extra}' must be a list of names", hint='e.g. ml = ["torch"]'
            )
        out[extra] = {canonicalize_name(n) for n in names}
    return out


def poetry_groups(poetry: Mapping[str, Any]) -> set[str]:
    """The dependency groups Poetry knows (``group.<g>``, and ``dev`` for the old ``dev-dependencies``)."""
    groups = set(poetry.get("group", {}) if isinstance(poetry.get("group"), dict) else ())
    return groups | ({"dev"} if "dev-dependencies" in poetry else set())


def read_poetry(
    pyproject: Mapping[str, Any], lines: TomlLines, extras: Iterable[str], groups: Iterable[str]
) -> list[Declared]:
    """``[tool.poetry.dependencies]`` (optional ones through the selected extras) and the selected groups.

    With a ``[project] dependencies`` list (Poetry 2), Poetry's table only refines those entries: names it adds are
    not runtime declarations, as Poetry itself reads it.
    """
    tool = pyproject.get("tool", {})
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    if poetry is None:
        return []
    poetry = _table(poetry, lines.at("tool.poetry"), "[tool.poetry]")
    known = poetry_extras(poetry, lines)
    wanted = set().union(*(known[e] for e in extras if e in known))
    out = _poetry_table(poetry.get("dependencies", {}), lines, "tool.poetry.dependencies", wanted)
    project = pyproject.get("project", {})
    if isinstance(project, dict) and isinstance(project.get("dependencies"), list):
        names = {parse_pep508(s, Location(lines.rel), "use PEP 508 syntax").name for s in project["dependencies"]}
        out = [d for d in out if d.name in names]
    for group in sorted(set(groups)):
        if group == "dev" and "dev-dependencies" in poetry:
            out.extend(_poetry_table(poetry["dev-dependencies"], lines, "tool.poetry.dev-dependencies", None))
        table = poetry.get("group", {}).get(group) if isinstance(poetry.get("group"), dict) else None
        if table is not None:
            table = _table(table, lines.at(f"tool.poetry.group.{group}"), f"[tool.poetry.group.{group}]")
            where = f"tool.poetry.group.{group}.dependencies"
            out.extend(_poetry_table(table.get("dependencies", {}), lines, where, None))
    return out


# ---------------------------------------------------------------- PEP 735


def dependency_groups(pyproject: Mapping[str, Any], lines: TomlLines) -> dict[str, list[object]]:
    """``[dependency-groups]`` by normalised group name (empty when absent)."""
    raw = _table(pyproject.get("dependency-groups", {}), lines.at("dependency-groups"), "[dependency-groups]")
    out: dict[str, list[object]] = {}
    for name, items in raw.items():
        if not isinstance(items, list):
            raise ConfigError(
                f"{lines.at('dependency-groups', name)}: group '{name}' must be a list", hint='e.g. ml = ["torch>=2"]'
            )
        out[canonicalize_name(name)] = items
    return out


def read_dependency_group(
    groups: Mapping[str, list[object]], name: str, lines: TomlLines, _chain: tuple[str, ...] = ()
) -> list[Declared]:
    """The requirements of one PEP 735 group, following ``{include-group = ...}`` (a loop is an error)."""
    key = canonicalize_name(name)
    where = lines.at("dependency-groups", name) if name in groups else lines.at("dependency-groups")
    if key not in groups:
        raise ConfigError(
            f"{where}: no dependency group '{name}'", hint=f"groups: {', '.join(sorted(groups)) or 'none'}"
        )
    out: list[Declared] = []
    for item in groups[key]:
        if isinstance(item, str):
            out.append(parse_pep508(item, where))
        elif isinstance(item, dict) and set(item) == {"include-group"} and isinstance(item["include-group"], str):
            included = canonicalize_name(item["include-group"])
            if included in (*_chain, key):  # reported where the loop closes
                loop = " -> ".join((*_chain, key, included))
                raise ConfigError(f"{where}: dependency groups include each other ({loop})", hint="remove one include-group")
            out.extend(read_dependency_group(groups, item["include-group"], lines, (*_chain, key)))
        else:
            raise ConfigError(
                f"{where}: group '{name}' holds {item!r}, neither a requirement nor an include-group table",
                hint='e.g. test = ["pytest", {include-group = "ml"}]',
            )
    return out


# ---------------------------------------------------------------- Pipfile

_PIPFILE_MARKER_KEYS = ("os_name", "sys_platform", "platform_machine", "platform_system", "python_version")


def read_pipfile(text: str, rel: str) -> list[Declared]:
    """``[packages]`` of a Pipfile (``[dev-packages]`` is not runtime)."""
    data = load_toml(text, rel)
    lines = TomlLines(text, rel)
    out: list[Declared] = []
    for name, value in sorted(_table(data.get("packages", {}), lines.at("packages"), "[packages]").items()):
        where = lines.at("packages", name)
        entry = {"version": value} if isinstance(value, str) else value
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{where}: package '{name}' must be a version string or a table, not {type(value).__name__}",
                hint='e.g. requests = "*" or requests = {version = ">=2", extras = ["socks"]}',
            )
        if any(k in entry for k in ("git", "path", "file", "editable")):
            out.append(Declared(canonicalize_name(name), "", where, "url"))
            continue
        version = entry.get("version", "*")
        if not isinstance(version, str):
            raise ConfigError(f"{where}: '{name}' version must be a string", hint='e.g. version = ">=2"')
        markers = [f"({entry['markers']})"] if isinstance(entry.get("markers"), str) else []
        markers += [f"{k} {entry[k]}" for k in _PIPFILE_MARKER_KEYS if isinstance(entry.get(k), str)]
        spec = "" if version.strip() == "*" else version.strip()
        marker = f"; {' and '.join(markers)}" if markers else ""
        out.append(parse_pep508(f"{name}{spec}{marker}", where, hint='use PEP 440 versions, e.g. ">=2,<3" or "*"'))
    return out


# ---------------------------------------------------------------- setup.py


def _module_literals(tree: ast.Module) -> dict[str, ast.expr]:
    out: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = node.value
    return out


def _setup_calls(tree: ast.Module) -> list[ast.Call]:
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "setup") or (isinstance(f, ast.Attribute) and f.attr == "setup"):
                calls.append(node)
    return calls


def _literal(node: ast.expr, names: Mapping[str, ast.expr]) -> object:
    if isinstance(node, ast.Name) and node.id in names:
        node = names[node.id]
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _spec_lines(value: object) -> list[str] | None:
    if isinstance(value, str):
        value = value.splitlines()
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip() and not v.strip().startswith("#")]
    return None


def read_setup_py(source: bytes, rel: str, extras: Iterable[str]) -> tuple[list[Declared], list[Finding], set[str]]:
    """Literal ``install_requires`` (and the selected ``extras_require``) of a setup.py, read with ``ast``, never run.

    Returns the declarations, an SB015 warning for each list that is not a literal, and the extras it defines.
    """
    try:
        tree = ast.parse(source, filename=rel)
    except SyntaxError as exc:
        raise ConfigError(f"{rel}:{exc.lineno or 0}: cannot parse setup.py: {exc.msg}", hint="fix its syntax") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ConfigError(f"{rel}: cannot parse setup.py: {exc}", hint="fix the file (NUL bytes, deep nesting)") from None
    names = _module_literals(tree)
    out: list[Declared] = []
    findings: list[Finding] = []
    known: set[str] = set()
    selected = set(extras)
    for call in _setup_calls(tree):
        for kw in call.keywords:
            where = Location(rel, kw.value.lineno)
            if kw.arg == "install_requires":
                specs = _spec_lines(_literal(kw.value, names))
                if specs is None:
                    findings.append(_not_literal(where, "install_requires"))
                    continue
                out.extend(parse_pep508(s, where) for s in specs)
            elif kw.arg == "extras_require":
                table = _literal(kw.value, names)
                if not isinstance(table, dict):
                    findings.append(_not_literal(where, "extras_require"))
                    continue
                known.update(str(k) for k in table)
                for extra in sorted(selected & set(table)):
                    specs = _spec_lines(table[extra])
                    if specs is None:
                        findings.append(_not_literal(where, f"extras_require[{extra!r}]"))
                        continue
                    out.extend(parse_pep508(s, where) for s in specs)
    return out, findings, known


def _not_literal(where: Location, what: str) -> Finding:
    return Finding(
        where,
        "SB015",
        f"setup.py {what} is not a literal list, and slimbuild never runs setup.py: its declarations are not read "
        "(declare them in pyproject.toml [project] or a requirements file)",
        Severity.WARNING,
    )
