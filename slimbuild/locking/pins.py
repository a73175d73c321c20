"""Pins: the versions the user ran, read from their environment and from other tools' lock files; pure.

Sources, in this order; for each required distribution the first source with a pin that satisfies the
declarations wins (a pin that does not is reported as SB018 and not used):

1. the project's environment (``--python``, the active virtualenv, ``.venv/``): versions read through
   ``importlib.metadata`` in that interpreter (the subprocess is locking/installed.py; direct-URL and
   editable installs are left out);
2. ``uv.lock`` (``[[package]]`` name / version, registry sources only);
3. ``poetry.lock`` (``[[package]]`` name / version; git, directory, file and url sources skipped);
4. ``Pipfile.lock`` (JSON, its ``default`` section only: ``"version": "==X"``);
5. ``pylock.toml`` (PEP 751, ``[[packages]]`` name / version; vcs, directory and archive entries skipped);
6. a fully pinned requirements file (every declaration of that file ``name==X``), as analysis.declared read it.

A distribution listed twice with different versions in one file (a fork by markers) is ambiguous there and
is not pinned from that file. The parsers take bytes and raise only ``ResolutionError`` (``file:line`` where
the format tells the line); the file reads are pipeline/locking.py's.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from slimbuild.errors import ResolutionError
from slimbuild.models import Declared, Finding, Location, Severity

__all__ = [
    "LOCK_FILES",
    "MAX_PIN_FILE_BYTES",
    "Pin",
    "choose_pins",
    "environment_pins",
    "parse_pin_file",
    "pinned_requirements",
]

MAX_PIN_FILE_BYTES = 64 * 1024 * 1024  # a uv.lock of a large workspace is a few MB
ENVIRONMENT_METHOD = "importlib.metadata"


@dataclass(frozen=True, order=True)
class Pin:
    """One distribution's version as a source recorded it."""

    name: str  # canonical
    version: str
    source: str  # ".venv (importlib.metadata)", "poetry.lock", "requirements.txt"
    line: int = 0  # where in the source file, when known (0: unknown or an environment)

    def requirement(self) -> str:
        """The constraint line handed to pip-compile."""
        return f"{self.name}=={self.version}"


def _bad(source: str, line: int, what: str, tool: str) -> ResolutionError:
    where = f"{source}:{line}" if line else source
    return ResolutionError(
        f"{where}: {what}",
        hint=f"fix or regenerate it ({tool}), or delete it; slimbuild reads it only for the versions to pin",
    )


def _decode(data: bytes, source: str, tool: str) -> str:
    if len(data) > MAX_PIN_FILE_BYTES:
        raise _bad(source, 0, f"larger than {MAX_PIN_FILE_BYTES // (1024 * 1024)} MiB", tool)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _bad(source, line, f"not UTF-8 ({exc.reason} at byte {exc.start})", tool) from None


def _toml(text: str, source: str, tool: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        detail = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) or "syntax error"
        raise _bad(source, int(match[1]) if match else 0, f"invalid TOML: {detail}", tool) from None
    except RecursionError:
        raise _bad(source, 0, "invalid TOML: nested too deeply", tool) from None


def _line_of(text: str, name: str) -> int:
    """The line of ``name = "NAME"`` (TOML) or ``"NAME": {`` (JSON), for locations; 0 if not found."""
    quoted = re.escape(name)
    pattern = re.compile(rf'^\s*name\s*=\s*"{quoted}"|"{quoted}"\s*:', re.MULTILINE | re.IGNORECASE)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else 0


def _version(raw: object, name: str, source: str, text: str, tool: str) -> str:
    if not isinstance(raw, str):
        raise _bad(source, _line_of(text, name), f"{name}: version must be a string, not {type(raw).__name__}", tool)
    try:
        return str(Version(raw))
    except InvalidVersion:
        raise _bad(source, _line_of(text, name), f"{name}: invalid version {raw[:60]!r}", tool) from None


_NAME_LINE = re.compile(r'^\s*name\s*=\s*"([^"\n]+)"|"([^"\n]+)"\s*:\s*\{', re.MULTILINE)


def _lines(text: str) -> dict[str, int]:
    """Canonical name -> the first line that names it (one pass over the text, however many packages)."""
    out: dict[str, int] = {}
    newlines = 0
    last = 0
    for match in _NAME_LINE.finditer(text):
        newlines += text.count("\n", last, match.start())
        last = match.start()
        out.setdefault(canonicalize_name(match[1] or match[2]), newlines + 1)
    return out


def _collect(entries: Iterable[tuple[str, str]], source: str, text: str) -> dict[str, Pin]:
    """name -> Pin; a name seen with two versions is ambiguous and dropped."""
    seen: dict[str, set[str]] = {}
    for name, version in entries:
        seen.setdefault(canonicalize_name(name), set()).add(version)
    lines = _lines(text)
    return {
        name: Pin(name, next(iter(versions)), source, lines.get(name, 0))
        for name, versions in sorted(seen.items())
        if len(versions) == 1
    }


def _tables(doc: Mapping[str, Any], key: str, source: str, tool: str) -> list[Mapping[str, Any]]:
    items = doc.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _bad(source, 0, f"'{key}' must be an array of tables ([[{key}]])", tool)
    return items


def _name(entry: Mapping[str, Any], source: str, tool: str) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
        raise _bad(source, 0, f"a package entry has no valid name ({str(name)[:60]!r})", tool)
    return name


def parse_uv_lock(data: bytes, source: str = "uv.lock") -> dict[str, Pin]:
    """uv.lock: ``[[package]]`` entries from a registry (the project itself and git/path sources are skipped)."""
    tool = "uv lock"
    text = _decode(data, source, tool)
    out = []
    for entry in _tables(_toml(text, source, tool), "package", source, tool):
        name = _name(entry, source, tool)
        where = entry.get("source")
        if not isinstance(where, dict) or "registry" not in where or "version" not in entry:
            continue  # editable, virtual, git, path, url: not an index version
        out.append((name, _version(entry["version"], name, source, text, tool)))
    return _collect(out, source, text)


def parse_poetry_lock(data: bytes, source: str = "poetry.lock") -> dict[str, Pin]:
    """poetry.lock: ``[[package]]`` entries (git, directory, file and url sources are skipped)."""
    tool = "poetry lock"
    text = _decode(data, source, tool)
    out = []
    for entry in _tables(_toml(text, source, tool), "package", source, tool):
        name = _name(entry, source, tool)
        where = entry.get("source")
        if isinstance(where, dict) and where.get("type") in ("git", "directory", "file", "url"):
            continue
        out.append((name, _version(entry.get("version"), name, source, text, tool)))
    return _collect(out, source, text)


def parse_pylock(data: bytes, source: str = "pylock.toml") -> dict[str, Pin]:
    """pylock.toml (PEP 751): ``[[packages]]`` with a version (vcs, directory and archive entries are skipped)."""
    tool = "the tool that wrote it"
    text = _decode(data, source, tool)
    doc = _toml(text, source, tool)
    lock_version = doc.get("lock-version")
    if not isinstance(lock_version, str) or not lock_version.startswith("1."):
        raise _bad(source, 0, f"unsupported lock-version {str(lock_version)[:20]!r} (PEP 751 is 1.x)", tool)
    out = []
    for entry in _tables(doc, "packages", source, tool):
        name = _name(entry, source, tool)
        if any(k in entry for k in ("vcs", "directory", "archive")) or "version" not in entry:
            continue
        out.append((name, _version(entry["version"], name, source, text, tool)))
    return _collect(out, source, text)


def parse_pipfile_lock(data: bytes, source: str = "Pipfile.lock") -> dict[str, Pin]:
    """Pipfile.lock: the ``default`` section (``develop`` is not the image's); ``==X`` versions only."""
    tool = "pipenv lock"
    text = _decode(data, source, tool)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(source, exc.lineno, f"invalid JSON: {exc.msg}", tool) from None
    except RecursionError:
        raise _bad(source, 0, "invalid JSON: nested too deeply", tool) from None
    default = doc.get("default", {}) if isinstance(doc, dict) else None
    if not isinstance(default, dict):
        raise _bad(source, 0, "'default' must be an object of name: {version: ...}", tool)
    out = []
    for name, entry in default.items():
        if not isinstance(entry, dict) or not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
            raise _bad(source, _line_of(text, name), f"invalid entry {name[:60]!r} in 'default'", tool)
        version = entry.get("version")
        if version is None:
            continue  # git, path, file: not an index version
        if not isinstance(version, str) or not version.startswith("=="):
            raise _bad(source, _line_of(text, name), f"{name}: version {str(version)[:60]!r} is not '==X'", tool)
        out.append((name, _version(version[2:], name, source, text, tool)))
    return _collect(out, source, text)


# Other tools' lock files in the project's root, in the order they are consulted.
LOCK_FILES: tuple[tuple[str, Callable[[bytes, str], dict[str, Pin]]], ...] = (
    ("uv.lock", parse_uv_lock),
    ("poetry.lock", parse_poetry_lock),
    ("Pipfile.lock", parse_pipfile_lock),
    ("pylock.toml", parse_pylock),
)


def parse_pin_file(name: str, data: bytes) -> dict[str, Pin]:
    """Pins of one of ``LOCK_FILES`` by its file name."""
    return dict(LOCK_FILES)[name](data, name)


def environment_pins(versions: Mapping[str, str], label: str) -> dict[str, Pin]:
    """Pins from an environment's installed distributions (name -> version); unparseable versions are skipped."""
    out: dict[str, Pin] = {}
    for raw, version in sorted(versions.items()):
        try:
            out[canonicalize_name(raw)] = Pin(canonicalize_name(raw), str(Version(version)), f"{label} ({ENVIRONMENT_METHOD})")
        except (InvalidVersion, TypeError):
            continue
    return out


def pinned_requirements(declared: Iterable[Declared]) -> dict[str, Pin]:
    """Pins of the requirements files whose every declaration is ``name==X`` (pyproject and setup.cfg excluded)."""
    by_file: dict[str, list[Declared]] = {}
    for d in declared:
        if d.source.path not in ("pyproject.toml", "setup.cfg") and not d.name.startswith("<"):
            by_file.setdefault(d.source.path, []).append(d)
    out: dict[str, Pin] = {}
    for path, decls in sorted(by_file.items()):
        specs = [re.fullmatch(r"==([^,*;\s]+)", d.specifier) for d in decls]
        if any(m is None for m in specs) or any(d.marker == "url" for d in decls):
            continue
        for d, m in zip(decls, specs, strict=True):
            assert m is not None
            out.setdefault(d.name, Pin(d.name, m[1], path, d.source.line))
    return out


def _specifiers(inputs: Sequence[str]) -> dict[str, Requirement]:
    out: dict[str, Requirement] = {}
    for line in inputs:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue  # inputs_digest reports it
        out[canonicalize_name(req.name)] = req
    return out


def choose_pins(
    inputs: Sequence[str], sources: Sequence[Mapping[str, Pin]], *, skip: Iterable[str] = ()
) -> tuple[tuple[Pin, ...], tuple[Finding, ...]]:
    """For each distribution of the lock's inputs, the first source's pin that its specifier allows.

    Pins only narrow what the analysis requires (they never add a distribution). A pin that the declared
    specifier excludes is not used and is reported (SB018, with both versions). ``skip``: names not pinned
    (``--upgrade-package``).
    """
    skipped = {canonicalize_name(s) for s in skip}
    chosen: list[Pin] = []
    findings: list[Finding] = []
    for name, req in sorted(_specifiers(inputs).items()):
        if name in skipped:
            continue
        for source in sources:
            pin = source.get(name)
            if pin is None:
                continue
            if req.specifier.contains(pin.version, prereleases=True):
                chosen.append(pin)
                break
            findings.append(
                Finding(
                    Location(pin.source.split(" (")[0], pin.line),
                    "SB018",
                    f"{pin.source} pins {name}=={pin.version}, which the declarations exclude ({req}): "
                    "not used; the declaration wins",
                    Severity.WARNING,
                )
            )
    return tuple(chosen), tuple(findings)
