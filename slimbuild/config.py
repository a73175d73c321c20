"""Settings: defaults < ``[tool.slimbuild]`` (or ``slimbuild.toml``) < ``SLIMBUILD_*`` < command line."""

from __future__ import annotations

import difflib
import json
import os
import posixpath
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from slimbuild.errors import ConfigError
from slimbuild.stages import PipelineConfig, check_stages, parse_pipeline

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

_VERSION = re.compile(r"^3\.\d{1,2}$")
HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# Target versions slimbuild knows the standard library of (stdlib-list), oldest first.
PRUNE_MODES = ("default", "traced")  # prune: "traced" also drops what no traced run opened (image/traced.py)
VENV_LAYERS = ("single", "distribution")  # venv-layers; "" is "distribution" with several entrypoints, else "single"
SUPPORTED_TARGETS = tuple(f"3.{minor}" for minor in range(8, 15))


@dataclass(frozen=True)
class DataInput:
    """One entry of ``inputs``: its kind (the key it was given by), the reference as written, the sha256 if given."""

    kind: str  # "path", "url", "dataset", "dvc" or "lakefs"
    ref: str
    sha256: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, resolved once."""

    root: Path
    entrypoints: Mapping[str, str] = field(default_factory=dict)
    target_python: str = HOST_PYTHON
    python: str = ""
    mapping: Mapping[str, str] = field(default_factory=dict)
    keep: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()
    optional_groups: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # dependency groups (PEP 735, Poetry) that are runtime; none by default
    allow_unparseable: bool = False
    max_source_bytes: int = 10 * 1024 * 1024
    exclude: tuple[str, ...] = ()
    # project directories on the image's sys.path (PYTHONPATH), e.g. "." for a script in scripts/ importing src.x
    pythonpath: tuple[str, ...] = ()
    # lock and build settings (used by later stages)
    machine: str = "x86_64"
    include: tuple[str, ...] = ()
    template: str = "slim"
    base_image: str = ""
    smoke: tuple[str, ...] = ()
    pyc: bool = True  # hash-based .pyc: start-up 0.7 s vs 1.5-2.2 s without (scripts/spike/NOTES.md)
    allow_sdist: tuple[str, ...] = ()
    # Debian packages installed into the image from .deb files fetched on the host (pipeline/system_libs.py)
    system_packages: tuple[str, ...] = ()
    allow_secrets: tuple[str, ...] = ()  # globs (gitignore style) the secret checks let into the image (B20)
    audit: bool = False
    healthcheck: tuple[str, ...] = ()
    strip_sources: bool = True
    keep_sources: tuple[str, ...] = ("lightning", "numba", "pytorch_lightning", "taichi", "torch", "torchaudio",
                                     "torchvision", "triton")
    # the default pruning's exceptions (image/stage_prune.py): patterns relative to site-packages never pruned,
    # and languages whose translation catalogues stay (beside en and the base's LANG)
    keep_files: tuple[str, ...] = ()
    keep_locales: tuple[str, ...] = ()
    # the venv's layers: "distribution" (one per distribution, shared across stages and projects) or "single";
    # "" chooses "distribution" for a project with several entrypoints (a pipeline), else "single"
    venv_layers: str = ""
    # "traced": drop from the image the installed files no traced run opened, then re-run the traced commands in it
    prune: str = "default"
    config_file: str = ""
    lock_out: str = ""  # --lock-out: where the lock is read and written instead of the project
    manifest_out: str = ""  # --manifest-out: where build writes the manifest instead of the project
    # data the analysis reads at run time ([tool.slimbuild] inputs), in the configuration's order
    inputs: tuple[DataInput, ...] = ()
    # pyproject.toml's [project] table, read once with the config: name, version, scripts, dependencies
    project: Mapping[str, Any] = field(default_factory=dict)
    # [tool.slimbuild.pipeline]: the entrypoints as the stages of a pipeline, for `slimbuild spec` (None: not configured)
    pipeline: PipelineConfig | None = None


# key in TOML -> (field name, type)
_KEYS: dict[str, tuple[str, type]] = {
    "entrypoint": ("entrypoints", str),
    "entrypoints": ("entrypoints", dict),
    "python": ("target_python", str),
    "target-python": ("target_python", str),
    "mapping": ("mapping", dict),
    "keep": ("keep", list),
    "requirements": ("requirements", list),
    "optional-groups": ("optional_groups", list),
    "groups": ("groups", list),
    "allow-unparseable": ("allow_unparseable", bool),
    "max-source-bytes": ("max_source_bytes", int),
    "exclude": ("exclude", list),
    "pythonpath": ("pythonpath", list),
    "machine": ("machine", str),
    "include": ("include", list),
    "template": ("template", str),
    "base-image": ("base_image", str),
    "smoke": ("smoke", list),
    "pyc": ("pyc", bool),
    "allow-sdist": ("allow_sdist", list),
    "system-packages": ("system_packages", list),
    "allow-secrets": ("allow_secrets", list),
    "audit": ("audit", bool),
    "healthcheck": ("healthcheck", list),
    "strip-sources": ("strip_sources", bool),
    "keep-sources": ("keep_sources", list),
    "keep-files": ("keep_files", list),
    "keep-locales": ("keep_locales", list),
    "venv-layers": ("venv_layers", str),
    "prune": ("prune", str),
    "inputs": ("inputs", tuple),  # a list of tables: parse_inputs
    "pipeline": ("pipeline", dict),  # a table of stages: parse_pipeline
}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path.name}: cannot read: {exc.strerror}", hint="check the file's permissions") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path.name}:{line}: not UTF-8: cannot decode byte 0x{data[exc.start]:02x} at offset {exc.start}",
            hint="TOML files are UTF-8: save it as UTF-8",
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: invalid TOML: {exc}", hint="fix the file's syntax") from None


def read_pyproject(root: Path) -> dict[str, Any]:
    """``pyproject.toml`` parsed ({} when there is none): the one place that reads it."""
    pyproject = root / "pyproject.toml"
    return _read_toml(pyproject) if pyproject.is_file() else {}


def project_table(pyproject: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[project]`` table of a parsed pyproject.toml ({} when absent or not a table)."""
    project = pyproject.get("project", {})
    return project if isinstance(project, dict) else {}


def read_project_table(root: Path, pyproject: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """The ``[tool.slimbuild]`` table and the file it came from ('' when none)."""
    data = read_pyproject(root) if pyproject is None else pyproject
    table = data.get("tool", {}).get("slimbuild")
    if table is not None:
        return _ensure_table(table, "pyproject.toml [tool.slimbuild]"), "pyproject.toml"
    own = root / "slimbuild.toml"
    if own.is_file():
        data = _read_toml(own)
        table = data.get("tool", {}).get("slimbuild", data)
        return _ensure_table(table, "slimbuild.toml"), "slimbuild.toml"
    return {}, ""


def _config_text(root: Path, source: str) -> str:
    """The text of the config file (decoded before: read_project_table read it), '' when there is none."""
    if not source:
        return ""
    try:
        return (root / source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _ensure_table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table", hint="see README.md, 'Configuration'")
    return value


def _coerce(key: str, value: object, kind: type, where: str, strict: bool = False) -> object:
    if kind is list:
        if isinstance(value, str) and strict:  # TOML: a string is no list (smoke = "python x.py" is not one argv)
            example = f"{key} = {json.dumps(_words(value) if key in _ARGV_KEYS else [value])}"
            raise ConfigError(f"{where}: '{key}' must be a list of strings, not a string", hint=f"e.g. {example}")
        if isinstance(value, str):
            value = [value]  # an environment variable holds one string: one item
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: '{key}' must be a list of strings", hint=f'e.g. {key} = ["..."]')
        return tuple(value)
    if kind is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{where}: '{key}' must be a table of strings", hint=f"e.g. [tool.slimbuild.{key}]")
        return dict(value)
    if kind is bool:
        if isinstance(value, str):
            low = value.strip().lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off", ""}:
                return False
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: '{key}' must be true or false", hint=f"{key} = true")
        return value
    if kind is int:
        try:
            return int(str(value))
        except ValueError:
            raise ConfigError(f"{where}: '{key}' must be an integer, not {value!r}", hint=f"{key} = 10485760") from None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: '{key}' must be a string", hint=f'{key} = "..."')
    return value


def _apply(values: dict[str, object], table: Mapping[str, object], where: str, text: str = "") -> None:
    """Settings from one source; ``text``: the TOML file's text (its lines are named in errors, a string is no list)."""
    for raw_key, value in table.items():
        key = raw_key.replace("_", "-")
        if key not in _KEYS:
            close = difflib.get_close_matches(key, list(_KEYS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(_KEYS))}"
            raise ConfigError(f"{where}: unknown key '{raw_key}'", hint=hint)
        name, kind = _KEYS[key]
        if key == "inputs":
            coerced: object = parse_inputs(value, where)
        elif key == "pipeline":
            coerced = parse_pipeline(value, where, text)
        else:
            coerced = _coerce(key, value, kind, _key_line(text, raw_key, where) if text else where, strict=bool(text))
        if key == "entrypoint":
            spec = str(coerced)
            coerced = {_entry_name(spec) or "default": spec}
        values[name] = coerced


_ARGV_KEYS = frozenset({"smoke", "healthcheck"})


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # unbalanced quotes
        return [command]


def _key_line(text: str, key: str, where: str) -> str:
    """``FILE:LINE`` of the first ``key = ...`` line of the text (of ``[tool.slimbuild]`` when it has one)."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if re.match(r"\s*\[\s*tool\s*\.\s*slimbuild\s*\]", ln)), 0)
    rx = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=")
    number = next((i + 1 for i in range(start, len(lines)) if rx.match(lines[i])), 0)
    return f"{where}:{number}" if number else where


# --------------------------------------------------------------------------- inputs: data read at run time

INPUT_KEYS = ("path", "url", "dataset", "dvc", "lakefs")  # exactly one per entry; its key is the entry's kind
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*)://(\S+)")
_INPUTS_HINT = 'e.g. inputs = [{path = "data/raw/", sha256 = "..."}, {url = "s3://bucket/key"}] (see README.md, "Data")'


def parse_inputs(value: object, where: str) -> tuple[DataInput, ...]:
    """``inputs`` validated: a list of tables, each naming one path, url, dataset, dvc file or lakefs reference."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: 'inputs' must be a list of tables", hint=_INPUTS_HINT)
    entries = tuple(_parse_input(item, f"inputs[{index}]", where) for index, item in enumerate(value))
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(entries):
        first = seen.setdefault((entry.kind, entry.ref), index)
        if first != index:
            raise ConfigError(
                f"{where}: 'inputs[{index}].{entry.kind}' repeats inputs[{first}] ({entry.ref!r})", hint="list each input once"
            )
    return entries


def _parse_input(item: object, key: str, where: str) -> DataInput:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: '{key}' must be a table", hint=_INPUTS_HINT)
    for name in item:
        if name not in (*INPUT_KEYS, "sha256"):
            close = difflib.get_close_matches(str(name), [*INPUT_KEYS, "sha256"], n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"an entry has one of {', '.join(INPUT_KEYS)}, and sha256"
            raise ConfigError(f"{where}: unknown key '{key}.{name}'", hint=hint)
    kinds = [name for name in INPUT_KEYS if name in item]
    if len(kinds) != 1:
        named = " and ".join(kinds) if kinds else "none"
        raise ConfigError(f"{where}: '{key}' must name exactly one of {', '.join(INPUT_KEYS)} ({named} given)", hint=_INPUTS_HINT)
    kind = kinds[0]
    ref = item[kind]
    if not isinstance(ref, str) or not ref.strip() or "\x00" in ref or ref != ref.strip():
        raise ConfigError(f"{where}: '{key}.{kind}' must be a non-empty string without surrounding spaces", hint=_INPUTS_HINT)
    _check_ref(kind, ref, f"{key}.{kind}", where)
    sha = item.get("sha256")
    if sha is not None:
        if kind not in ("path", "url"):
            raise ConfigError(
                f"{where}: '{key}.sha256' is for a path or a url, not a {kind}", hint=f"the {kind} reference pins it"
            )
        if not isinstance(sha, str) or _SHA256.fullmatch(sha) is None:
            raise ConfigError(f"{where}: '{key}.sha256' must be 64 lowercase hex digits", hint="e.g. the output of sha256sum")
    return DataInput(kind, ref, sha)


def _check_ref(kind: str, ref: str, key: str, where: str) -> None:
    """A path (or .dvc file) relative inside the project; a url, dataset or lakefs reference with its scheme."""
    if kind in ("path", "dvc"):
        parts = ref.replace("\\", "/").split("/")
        if ref.startswith(("/", "~")) or ".." in parts or re.match(r"^[A-Za-z]:", ref):
            raise ConfigError(
                f"{where}: '{key}' {ref!r} must be a path relative to the project, inside it",
                hint="give it relative to the project root (verify --data DIR checks it below DIR)",
            )
        if kind == "dvc" and not ref.endswith(".dvc"):
            raise ConfigError(f"{where}: '{key}' {ref!r} must name a .dvc file", hint='e.g. dvc = "data.dvc"')
        return
    match = _SCHEME.fullmatch(ref)
    if match is None:
        raise ConfigError(f"{where}: '{key}' {ref!r} must be a URL with a scheme (scheme://...)", hint=_INPUTS_HINT)
    authority = match[2].split("/", 1)[0]
    if "@" in authority and kind != "dataset":
        raise ConfigError(
            f"{where}: '{key}' must not carry credentials (user@ or user:password@)",
            hint="the manifest records it as written: let the client read credentials from its own configuration",
        )
    if kind == "lakefs" and (match[1] != "lakefs" or len([p for p in match[2].split("/") if p]) < 2):
        raise ConfigError(f"{where}: '{key}' {ref!r} must be lakefs://REPOSITORY/REF[/PATH]", hint="e.g. lakefs://repo/main/data/")


def _entry_name(spec: str) -> str:
    """The name of the one configured entrypoint: the file's stem; a package's for its __main__.py/__init__.py."""
    if spec.startswith("streamlit run ") and spec.split()[2:]:
        spec = spec.split()[2]
    path = Path(spec.split(":")[0])
    if path.stem in {"__main__", "__init__"} and path.parent.name:
        return path.parent.name
    return path.stem


def load_settings(root: Path, overrides: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings for a project root from config file, environment and overrides."""
    env = os.environ if env is None else env
    if not root.exists():
        raise ConfigError(f"{root}: no such directory", hint="pass the project's directory, e.g. 'slimbuild analyze .'")
    if not root.is_dir():
        raise ConfigError(f"{root}: not a directory", hint="pass the project's directory; use --entrypoint for a file")
    pyproject = read_pyproject(root)
    table, source = read_project_table(root, pyproject)
    values: dict[str, object] = {}
    _apply(values, table, source or "config", _config_text(root, source))
    env_table = {
        k[len("SLIMBUILD_") :].lower(): v
        for k, v in env.items()
        if k.startswith("SLIMBUILD_")
        and k not in {"SLIMBUILD_CACHE", "SLIMBUILD_STATE", "SLIMBUILD_DEBUG"}
        and k[len("SLIMBUILD_") :].lower().replace("_", "-") in _KEYS
    }
    _apply(values, env_table, "environment (SLIMBUILD_*)")
    for key, value in (overrides or {}).items():
        if value is None or value == () or value == {}:
            continue
        values[key] = value
    settings = replace(
        Settings(root=root.resolve()), **values, config_file=source, project=project_table(pyproject)  # type: ignore[arg-type]
    )
    if "target_python" not in values:
        settings = replace(settings, target_python=default_target(settings.project.get("requires-python")))
    if not _VERSION.match(settings.target_python):
        raise ConfigError(
            f"target Python version {settings.target_python!r} is not of the form 3.X",
            hint="e.g. --target-python 3.11",
        )
    if settings.max_source_bytes <= 0:
        raise ConfigError("max-source-bytes must be positive", hint="e.g. max-source-bytes = 10485760")
    if settings.pipeline is not None:
        check_stages(settings.pipeline, settings.entrypoints)
    _check_keeps(settings, _config_text(root, source))
    if settings.prune not in PRUNE_MODES:
        raise ConfigError(
            f"prune = {settings.prune!r} is not one of {', '.join(PRUNE_MODES)}",
            hint='prune = "traced" (drop what no traced run opened; needs slimbuild.trace.json) or "default"',
        )
    if settings.venv_layers and settings.venv_layers not in VENV_LAYERS:
        raise ConfigError(
            f"venv-layers = {settings.venv_layers!r} is not one of {', '.join(VENV_LAYERS)}",
            hint='venv-layers = "distribution" (one layer per distribution, shared by stages) or "single"',
        )
    return replace(settings, pythonpath=tuple(_pythonpath_entry(settings.root, p) for p in settings.pythonpath))


KEEP_FILE_PATTERN = re.compile(r"[A-Za-z0-9._*?\[\]!+-]+(/[A-Za-z0-9._*?\[\]!+-]+)*")
KEEP_LOCALE_NAME = re.compile(r"[a-z]{2,3}([_-][A-Za-z0-9]+)?(@[a-z]+)?|C|POSIX")


def _check_keeps(settings: Settings, text: str) -> None:
    """``keep-files`` patterns relative to site-packages and ``keep-locales`` language names; exit 2 otherwise."""
    where = settings.config_file or "config"
    for pattern in settings.keep_files:
        if not isinstance(pattern, str) or not KEEP_FILE_PATTERN.fullmatch(pattern) or ".." in pattern.split("/"):
            raise ConfigError(
                f"{_key_line(text, 'keep-files', where)}: keep-files pattern {pattern!r} is not a path pattern "
                "inside site-packages",
                hint='e.g. keep-files = ["numpy/*.pyi", "mypkg/docs"] (relative to site-packages; * crosses /)',
            )
    for name in settings.keep_locales:
        if not isinstance(name, str) or not KEEP_LOCALE_NAME.fullmatch(name):
            raise ConfigError(
                f"{_key_line(text, 'keep-locales', where)}: keep-locales entry {name!r} is not a language name",
                hint='e.g. keep-locales = ["de", "pt_BR"] (en and the base image\'s LANG are always kept)',
            )


def _pythonpath_entry(root: Path, entry: str) -> str:
    """A ``pythonpath`` entry as a normalised project-relative directory ("." for the root); exit 2 otherwise."""
    where = "[tool.slimbuild] pythonpath"
    norm = posixpath.normpath(entry.replace("\\", "/")) if entry.strip() else ""
    if not norm or "\0" in norm or norm.startswith("/") or norm == ".." or norm.startswith("../"):
        raise ConfigError(
            f"{where}: {entry!r} is not a directory inside the project",
            hint='give project-relative directories, e.g. pythonpath = ["."]',
        )
    try:
        is_dir = (root / norm).resolve().is_relative_to(root) and (root / norm).is_dir()
    except (OSError, ValueError):
        is_dir = False
    if not is_dir:
        raise ConfigError(f"{where}: {entry!r} is not a directory of the project", hint="create it, or remove the entry")
    return norm


def _admits(spec: SpecifierSet, version: str) -> bool:
    """Whether a release of Python ``version`` ("3.X", any patch level) satisfies a requires-python SpecifierSet."""
    from packaging.version import Version

    return any(spec.contains(Version(f"{version}.{patch}")) for patch in range(100))


def default_target(requires_python: object, host: str = HOST_PYTHON) -> str:
    """The target Python when none is configured: the host's version when ``requires-python`` of
    [project] admits it (or there is none); else the supported version nearest to it that it admits, the lowest
    above the host first (the image's Python must be one the project says it runs on)."""
    if requires_python is None:
        return host
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    where = "pyproject.toml [project] requires-python"
    if not isinstance(requires_python, str):
        raise ConfigError(f"{where} must be a string", hint='e.g. requires-python = ">=3.10"')
    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier:
        raise ConfigError(
            f"{where} {requires_python!r} is not a version specifier",
            hint='fix it (e.g. ">=3.10"), or set python = "3.X" in [tool.slimbuild] or --target-python',
        ) from None
    if _admits(spec, host):
        return host
    key = tuple(int(p) for p in host.split("."))
    above = [v for v in SUPPORTED_TARGETS if tuple(int(p) for p in v.split(".")) > key and _admits(spec, v)]
    below = [v for v in SUPPORTED_TARGETS if tuple(int(p) for p in v.split(".")) < key and _admits(spec, v)]
    if above or below:
        return above[0] if above else below[-1]
    raise ConfigError(
        f"{where} {requires_python!r} admits none of Python {SUPPORTED_TARGETS[0]}-{SUPPORTED_TARGETS[-1]}",
        hint='fix requires-python, or set python = "3.X" in [tool.slimbuild] or --target-python',
    )
