"""What never enters a build context: secret files by name, and secrets by content (catalogue B5, B18-B21).

The names come from ``secret_files.toml`` (beside this module): Dockle's credential list (CIS-DI-0010), gitleaks' path rule
and shhgit's signatures, each rule naming the list it came from. ``is_sensitive`` matches a project path against
them. ``scan_contents`` runs detect-secrets' regex plugins (the list is in the same file) over every text file
of the context in memory, line by line as detect-secrets does, plus checks for cloud service-account JSON and
kubeconfig credentials under any name; a file
over ``max-bytes`` or with a NUL byte in its first block is not read further. ``allow-secrets`` globs
(gitignore style, relative to the project root) lift both checks for the files they match, except the
``never-ship`` rules (``.git``, ``__pycache__``).
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import pathspec

from slimbuild.errors import ConfigError, PolicyViolation
from slimbuild.paths import IGNORED_DIRS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "NameRule",
    "SecretFinding",
    "allow_spec",
    "check_contents",
    "is_sensitive",
    "name_rule",
    "name_rules",
    "scan_contents",
    "sensitive_names",
]

_BINARY_PROBE = 8192


@dataclass(frozen=True)
class NameRule:
    """One file-name rule of secret_files.toml."""

    pattern: str
    match: str  # "name" (any component), "file" (the file's own name), "path" (a file's last components)
    kind: str  # "secret" (an allow-list can lift it) or "never-ship"
    sources: tuple[str, ...]

    def describe(self) -> str:
        return f"name {self.pattern} ({', '.join(self.sources)})"


@dataclass(frozen=True)
class SecretFinding:
    """A secret found in a file's content: the project path, the 1-based line and the detector."""

    path: str
    line: int
    rule: str


@functools.cache
def _data() -> dict[str, Any]:
    with (files("slimbuild.image") / "secret_files.toml").open("rb") as handle:
        return tomllib.load(handle)


@functools.cache
def name_rules() -> tuple[NameRule, ...]:
    """The name rules, in the data file's order (validated once: a bad entry is a slimbuild bug)."""
    data = _data()
    known = set(data["sources"])
    rules = []
    for raw in data["rules"]:
        rule = NameRule(str(raw["pattern"]).lower(), str(raw["match"]), str(raw["kind"]), tuple(raw["from"]))
        if rule.match not in {"name", "file", "path"} or rule.kind not in {"secret", "never-ship"}:
            raise ValueError(f"secret_files.toml: bad rule {raw!r}")
        if not rule.sources or not set(rule.sources) <= known:
            raise ValueError(f"secret_files.toml: rule {rule.pattern!r} names an unknown source")
        rules.append(rule)
    return tuple(rules)


@functools.cache
def _matchers() -> dict[str, re.Pattern[str]]:
    """One regex per match kind, of all its rules' patterns: a component (or a file's tail) is tried once per kind."""
    by_kind: dict[str, list[str]] = {"name": [], "file": [], "path": []}
    for rule in name_rules():
        by_kind[rule.match].append(fnmatch.translate(rule.pattern))
    out = {kind: re.compile("|".join(f"(?:{p})" for p in pats) or "(?!)") for kind, pats in by_kind.items()}
    out["path"] = re.compile(f"(?:^|/)(?:{out['path'].pattern})")  # searched: a suffix of the whole path
    return out


def _hits(rule: NameRule, parts: Sequence[str], is_dir: bool) -> bool:
    if rule.match == "name":
        return any(fnmatch.fnmatchcase(part, rule.pattern) for part in parts)
    if is_dir:
        return False
    want = rule.pattern.split("/")
    tail = parts[-len(want) :]
    return len(tail) == len(want) and all(map(fnmatch.fnmatchcase, tail, want))


def name_rule(relpath: str, *, is_dir: bool = False) -> NameRule | None:
    """The first rule that RELPATH (a relative POSIX path; IS_DIR: its last component is a directory) matches."""
    parts = [p.lower() for p in relpath.split("/") if p]
    if not parts:
        return None
    m = _matchers()
    candidate = (
        any(m["name"].match(part) for part in parts)
        or (not is_dir and m["file"].match(parts[-1]) is not None)
        or (not is_dir and len(parts) > 1 and m["path"].search("/".join(parts)) is not None)
    )
    if not candidate:
        return None
    for rule in name_rules():
        if _hits(rule, parts, is_dir):
            return rule
    return None


def allow_spec(patterns: Sequence[str]) -> pathspec.GitIgnoreSpec | None:
    """A matcher for the ``allow-secrets`` globs (None when there are none)."""
    if not patterns:
        return None
    for pattern in patterns:
        if not pattern.strip() or pattern.startswith("!") or "\x00" in pattern:
            raise ConfigError(
                f"allow-secrets: {pattern!r} is not a path or glob", hint='e.g. allow-secrets = ["tests/fixtures/*.pem"]'
            )
    return pathspec.GitIgnoreSpec.from_lines(patterns)


def _allowed(allow: pathspec.GitIgnoreSpec | None, relpath: str, is_dir: bool) -> bool:
    return allow is not None and bool(allow.match_file(relpath + "/" if is_dir else relpath))


def is_sensitive(relpath: str, *, is_dir: bool = False, allow: pathspec.GitIgnoreSpec | None = None) -> bool:
    """Whether RELPATH names a secret or never-ship file that ALLOW (allow-secrets) does not lift."""
    rule = name_rule(relpath, is_dir=is_dir)
    if rule is None:
        return False
    return rule.kind == "never-ship" or not _allowed(allow, relpath, is_dir)


def sensitive_names(root: Path, limit: int = 200, allow: pathspec.GitIgnoreSpec | None = None) -> tuple[str, ...]:
    """Secret-like files and dirs in the project, by relative name only (B5: listed, never read, never shipped)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel = "" if rel_dir == "." else f"{rel_dir}/"
        keep = []
        for d in sorted(dirnames):
            # a sensitive dir (.git, .env) is listed before the skip check: it is named, never walked
            if is_sensitive(f"{rel}{d}", is_dir=True, allow=allow):
                found.append(f"{rel}{d}/")
            elif d not in IGNORED_DIRS:
                keep.append(d)
        dirnames[:] = keep
        found.extend(f"{rel}{f}" for f in sorted(filenames) if is_sensitive(f"{rel}{f}", allow=allow))
        if len(found) >= limit:
            break
    return tuple(sorted(found)[:limit])


# ---------------------------------------------------------------- content


class _Plugin(Protocol):
    secret_type: str

    def analyze_string(self, string: str) -> Iterable[str]: ...


@dataclass(frozen=True)
class _Detector:
    name: str
    plugin: _Plugin
    # the plugin's own patterns and flags, plus MULTILINE (^ and $ at each line), to search the whole text once
    prefilter: tuple[re.Pattern[str], ...]

    def may_match(self, text: str) -> bool:
        return any(p.search(text) is not None for p in self.prefilter)


@functools.cache
def _detectors() -> tuple[_Detector, ...]:
    # detect-secrets (and requests, which it imports) loads only when a build scans its context
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    classes: list[Any] = list(get_mapping_from_secret_type_to_class().values())
    by_name = {cls.__name__: cls for cls in classes}
    out = []
    for name in _data()["content"]["plugins"]:
        plugin = by_name[name]()  # every listed plugin is a RegexBasedDetector: its patterns are its denylist
        prefilter = tuple(re.compile(p.pattern, p.flags | re.MULTILINE) for p in plugin.denylist)
        out.append(_Detector(f"{plugin.secret_type} (detect-secrets {name})", plugin, prefilter))
    return tuple(out)


def _max_bytes() -> int:
    return int(_data()["content"]["max-bytes"])


def _service_account(text: str) -> bool:
    if '"service_account"' not in text or '"private_key"' not in text:
        return False
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("type") == "service_account" and bool(data.get("private_key"))


_KUBE_KIND = re.compile(r"^kind:[ \t]*[\"']?Config[\"']?[ \t]*$", re.MULTILINE)
_KUBE_CREDENTIAL = re.compile(r"^[ \t-]*(?:client-key-data|token|password):[ \t]*[^\s#]", re.MULTILINE)


def _kubeconfig_line(text: str) -> int:
    """The line of a kubeconfig's first credential (a YAML document of kind Config), or 0."""
    if "kind:" not in text or _KUBE_KIND.search(text) is None:
        return 0
    match = _KUBE_CREDENTIAL.search(text)
    return 0 if match is None else text.count("\n", 0, match.start()) + 1


def _scan_text(path: str, text: str) -> list[SecretFinding]:
    found: list[SecretFinding] = []
    content = _data()["content"]
    if _service_account(text):
        found.append(SecretFinding(path, 1, f"cloud service-account JSON ({content['service-account']})"))
    kube = _kubeconfig_line(text)
    if kube:
        found.append(SecretFinding(path, kube, f"kubeconfig credentials ({content['kubeconfig']})"))
    lines: list[str] | None = None
    for detector in _detectors():
        if not detector.may_match(text):
            continue
        lines = text.splitlines() if lines is None else lines
        for number, line in enumerate(lines, 1):
            if any(True for _ in detector.plugin.analyze_string(line)):
                found.append(SecretFinding(path, number, detector.name))
                break  # one line per detector and file is enough to name it
    return found


def _read_bounded(handle: BinaryIO, limit: int) -> bytes | None:
    """The file's bytes, or None when it is binary (a NUL in the first block) or over LIMIT bytes."""
    head = handle.read(_BINARY_PROBE)
    if b"\x00" in head:
        return None
    rest = handle.read(limit + 1 - len(head)) if len(head) == _BINARY_PROBE else b""
    data = head + rest
    return None if len(data) > limit else data


def scan_contents(
    entries: Iterable[tuple[str, Path | None, bytes | None]], allow: pathspec.GitIgnoreSpec | None = None
) -> tuple[SecretFinding, ...]:
    """Secrets in ENTRIES: (project path, source file or None, bytes or None). Files ALLOW matches are not read."""
    limit = _max_bytes()
    found: list[SecretFinding] = []
    for path, source, data in entries:
        if _allowed(allow, path, False):
            continue
        if data is None:
            if source is None:
                continue
            try:
                with open(source, "rb") as handle:
                    data = _read_bounded(handle, limit)
            except OSError:
                continue  # the archiver reports an unreadable file
        elif len(data) > limit or b"\x00" in data[:_BINARY_PROBE]:
            data = None
        if data is not None:
            found.extend(_scan_text(path, data.decode("utf-8", "replace")))
    return tuple(sorted(found, key=lambda f: (f.path.encode(), f.line)))  # stable: the service-account rule first


def check_contents(
    entries: Iterable[tuple[str, Path | None, bytes | None]], allow: pathspec.GitIgnoreSpec | None = None
) -> None:
    """Raise PolicyViolation (exit 10) naming the first file, its line and the rule, when ENTRIES hold a secret."""
    found = scan_contents(entries, allow)
    if not found:
        return
    first = found[0]
    others = sorted({f.path for f in found} - {first.path})
    more = f"; also in {', '.join(others[:5])}{' ...' if len(others) > 5 else ''}" if others else ""
    raise PolicyViolation(
        f"{first.path}:{first.line}: {first.rule} would go into the image{more}",
        hint=f"take the secret out and read it at run time; if it is a false positive, allow-secrets = [\"{first.path}\"]",
    )
