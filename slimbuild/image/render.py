"""Render the Dockerfile from a BuildPlan and a Jinja2 template; check the result.

Every plan value that reaches the Dockerfile is either validated against a strict
character set (image references, uid, wheel names, prune patterns, label and env
keys) or quoted by a filter for the one place it is used, so that Docker re-parses
exactly the intended instruction list (catalogue case D2):

* ``json_str`` / ``json_list``: JSON strings / arrays for exec-form ENTRYPOINT, CMD
  and HEALTHCHECK, which Docker does not expand any further;
* ``copy_list``: JSON array for COPY, whose words Docker *does* pass through its
  shell-word lexer (quotes, ``$``, ``\\``), so those are backslash-escaped first;
* ``dq``: one double-quoted word for ENV and LABEL values (``\\``, ``"`` and ``$``
  escaped, the only escapes Docker honours inside double quotes).

Line breaks of any kind (``\\n``, ``\\r``, U+0085, U+2028, U+2029), NUL and other
control characters are refused in paths, labels and env with PolicyViolation:
Docker splits instructions on ``\\n`` and other tools split on the rest.

The bundled templates live in ``templates/`` (shipped as ``slimbuild/templates``).
A user-supplied template directory is rendered in Jinja2's SandboxedEnvironment;
the sandbox is not a security boundary (the Jinja docs say so), so such templates
must be trusted code.
"""

from __future__ import annotations

import json
import posixpath
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.sandbox

from slimbuild.errors import ConfigError, PolicyViolation

__all__ = [
    "CONTEXT_APP_DIR",
    "CONTEXT_LOCK",
    "CONTEXT_ROOT_DIR",
    "CONTEXT_STAGE_SCRIPT",
    "CONTEXT_WHEELS_DIR",
    "DEFAULT_PRUNE",
    "BuildPlan",
    "Instruction",
    "bundled_template_dir",
    "parse_dockerfile",
    "render_dockerfile",
    "validate_dockerfile",
    "validate_plan",
]

# Build-context layout the templates expect (context.py writes these arcnames).
CONTEXT_WHEELS_DIR = "wheels"
CONTEXT_LOCK = "requirements.lock"
CONTEXT_BUILD_LOCK = "build-requirements.lock"
CONTEXT_ROOT_DIR = "image"  # the context's image/ holds the app files at the paths they take in the image
CONTEXT_APP_DIR = "image/app"
CONTEXT_STAGE_SCRIPT = "slimbuild-stage.py"  # slimbuild/stage_venv.py, run in the builder stage

# Installers that only a build needs; the plan drops an entry when the analysis imports it.
DEFAULT_PRUNE: tuple[str, ...] = (
    "_distutils_hack",
    "distutils-precedence.pth",
    "pip",
    "pip-*.dist-info",
    "pkg_resources",
    "setuptools",
    "setuptools-*.dist-info",
    "wheel",
    "wheel-*.dist-info",
)

_BUILTIN_TEMPLATES = ("distroless", "slim")
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_DIGEST = r"sha256:[0-9a-f]{64}"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REF = re.compile(
    rf"(?P<name>(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    rf"(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}))?"
    rf"(?:@(?P<digest>{_DIGEST}))?"
)
_IMAGE_ID = re.compile(_DIGEST)
_LABEL_KEY = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_KEY = re.compile(r"(PASSW(OR)?D|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH)", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s@]+@")
_SDIST_FILE = re.compile(r"[A-Za-z0-9_.+-]+\.tar\.gz")
_WHEEL_FILE = re.compile(r"[A-Za-z0-9_.+!-]+\.whl")
_PIP_WHEEL = re.compile(r"pip-[A-Za-z0-9_.+!-]+\.whl")
_PRUNE_PATTERN = re.compile(r"[A-Za-z0-9_.*+-]+")
_INTERPRETER = re.compile(r"/[A-Za-z0-9_./+-]+")
_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_GLOB_CHARS = frozenset("*?[")
_RESERVED_ENV = frozenset({"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "SOURCE_DATE_EPOCH"})


@dataclass(frozen=True, kw_only=True)
class BuildPlan:
    """Everything the Dockerfile template needs, already decided.

    ``python`` is the interpreter the builder makes the venv with: ``""`` finds
    ``python3`` on the builder's PATH at build time (``/usr/bin/python3`` on Debian,
    ``/usr/local/bin/python3`` on python:*-slim); an absolute path pins it, which
    the distroless template needs because the runtime must have the same path.
    ``runtime_image`` defaults to ``base_image``. ``app_files`` are relative POSIX
    paths copied from ``app/<path>`` in the context to ``/app/<path>``.
    """

    base_image: str
    pip_wheel: str
    wheel_files: tuple[str, ...]
    app_files: tuple[str, ...]
    entrypoint: tuple[str, ...]
    source_date_epoch: int
    python: str = ""
    runtime_image: str = ""
    cmd: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    pyc: bool = False
    strip_sources: bool = False
    sdists: tuple[str, ...] = ()  # distributions built from an sdist in the builder (allow-sdist); needs CONTEXT_BUILD_LOCK
    keep_sources: tuple[str, ...] = ()
    uid: int = 10001
    prune: tuple[str, ...] = DEFAULT_PRUNE
    healthcheck: tuple[str, ...] = ()
    template: str = "slim"
    # An image built earlier from this plan's builder and deps stages (``build`` does that in a first
    # step): the Dockerfile then starts from it instead of repeating those stages.
    deps_image: str = ""


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: upper-case keyword, its raw argument text, first line number."""

    keyword: str
    value: str
    line: int


def bundled_template_dir() -> Path:
    """The directory holding the bundled ``<name>/Dockerfile.j2`` templates."""
    package = Path(__file__).resolve().parent.parent  # slimbuild/: installed, templates/ is inside it
    for candidate in (package / "templates", package.parent / "templates"):
        if (candidate / "slim" / "Dockerfile.j2").is_file():
            return candidate
    raise ConfigError("bundled Dockerfile templates not found", hint="reinstall slimbuild")


# ---------------------------------------------------------------- quoting filters


def json_str(value: str) -> str:
    """One string as a JSON string literal (ASCII only, so no raw line separator survives)."""
    return json.dumps(value, ensure_ascii=True)


def json_list(values: Iterable[str]) -> str:
    """Strings as a JSON array for exec-form ENTRYPOINT/CMD/HEALTHCHECK."""
    return "[" + ", ".join(json_str(v) for v in values) + "]"


def _lexer_escape(word: str) -> str:
    # Docker runs COPY words through its shell-word lexer even in JSON form.
    return re.sub(r"""([\\$'"])""", r"\\\1", word)


def copy_list(sources: Iterable[str], dest: str) -> str:
    """A JSON-form COPY argument list whose words survive Docker's word lexer unchanged."""
    return json_list([_lexer_escape(s) for s in [*sources, dest]])


def dq(value: str) -> str:
    """One double-quoted word for ENV/LABEL values: escapes exactly ``\\``, ``"`` and ``$``."""
    return '"' + re.sub(r'([\\"$])', r"\\\1", value) + '"'


# ---------------------------------------------------------------- validation


def _check_text(what: str, value: str, *, allow_tab: bool = False) -> None:
    for ch in value:
        if ch in _LINE_BREAKS or ch == "\x00" or (unicodedata.category(ch) in {"Cc", "Cs"} and not (allow_tab and ch == "\t")):
            raise PolicyViolation(
                f"{what} {value!r} contains the control character {ch!r}",
                hint="line breaks and control characters could inject Dockerfile instructions; rename or remove it",
            )


def _check_image(what: str, ref: str) -> None:
    _check_text(what, ref)
    if _IMAGE_ID.fullmatch(ref):
        return
    match = _IMAGE_REF.fullmatch(ref)
    if match is None:
        raise PolicyViolation(f"{what} {ref!r} is not an image reference", hint="use name:tag@sha256:<digest>")
    tag, digest = match.group("tag"), match.group("digest")
    if tag == "latest":
        raise PolicyViolation(
            f"{what} {ref!r} uses the tag 'latest'", hint="pin a version tag and its digest: name:X.Y@sha256:<digest>"
        )
    if not tag or not digest:
        raise PolicyViolation(
            f"{what} {ref!r} is not pinned as name:tag@sha256:<digest>",
            hint="resolve the digest once (docker buildx imagetools inspect) or use a local image id sha256:<64 hex>",
        )


def _check_app_path(path: str) -> None:
    _check_text("app file", path)
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in {"", ".", ".."} for p in parts):
        raise PolicyViolation(f"app file {path!r} is not a normalised relative path", hint="use a path like 'pkg/mod.py'")
    if _GLOB_CHARS & set(path) or "\\" in path:
        raise PolicyViolation(
            f"app file {path!r} contains a wildcard or backslash, which COPY would interpret",
            hint="rename the file without * ? [ or \\",
        )


def validate_plan(plan: BuildPlan) -> None:
    """Raise PolicyViolation (or ConfigError) for any plan value unsafe to render."""
    _check_image("base image", plan.base_image)
    if plan.runtime_image:
        _check_image("runtime image", plan.runtime_image)
    if not _TEMPLATE_NAME.fullmatch(plan.template):
        raise ConfigError(f"template name {plan.template!r} is invalid", hint="use e.g. 'slim' or 'distroless'")
    if plan.python and not (_INTERPRETER.fullmatch(plan.python) and ".." not in plan.python.split("/")):
        raise PolicyViolation(
            f"python interpreter {plan.python!r} is not a plain absolute path", hint="e.g. /usr/bin/python3, or leave it empty"
        )
    for name in plan.sdists:
        if not re.fullmatch(r"[a-z0-9]+(?:[-_.][a-z0-9]+)*", name):
            raise ConfigError(
                f"allow-sdist entry {name!r} is not a normalised distribution name", hint='e.g. allow-sdist = ["mylib"]'
            )
    for name in plan.keep_sources:
        if not name.isidentifier():
            raise ConfigError(f"keep-sources entry {name!r} is not a package name", hint='e.g. keep-sources = ["numba"]')
    if plan.deps_image and not re.fullmatch(r"sha256:[0-9a-f]{64}", plan.deps_image):
        raise PolicyViolation(f"deps image {plan.deps_image!r} is not an image id", hint="expected sha256:<64 hex digits>")
    if isinstance(plan.uid, bool) or not 0 < plan.uid < 2**31 - 1:
        raise PolicyViolation(f"uid {plan.uid!r} is not a non-root numeric uid", hint="use e.g. 10001")
    if not 0 <= plan.source_date_epoch < 2**33:
        raise ConfigError(
            f"SOURCE_DATE_EPOCH {plan.source_date_epoch} is out of range",
            hint="use seconds since 1970, e.g. from git log -1 --format=%ct",
        )
    if not _PIP_WHEEL.fullmatch(plan.pip_wheel):
        raise PolicyViolation(
            f"pip wheel {plan.pip_wheel!r} is not a pip-*.whl file name", hint="download pip's wheel into the wheelhouse"
        )
    for name in plan.wheel_files:
        # an opted-in sdist (allow-sdist) is the only non-wheel the wheelhouse may carry
        if not (_WHEEL_FILE.fullmatch(name) or (plan.sdists and _SDIST_FILE.fullmatch(name))):
            raise PolicyViolation(
                f"wheel file {name!r} is not a plain wheel file name", hint="only *.whl files from the wheelhouse"
            )
    for pattern in plan.prune:
        if not _PRUNE_PATTERN.fullmatch(pattern) or pattern.strip(".*") == "":
            raise PolicyViolation(
                f"prune pattern {pattern!r} is not a plain site-packages name", hint="e.g. 'pip' or 'pip-*.dist-info'"
            )
    for path in plan.app_files:
        _check_app_path(path)
    if not plan.entrypoint:
        raise ConfigError("the plan has no entrypoint", hint="set entrypoint in [tool.slimbuild]")
    for what, argv in (("entrypoint", plan.entrypoint), ("cmd", plan.cmd), ("healthcheck", plan.healthcheck)):
        for arg in argv:
            if "\x00" in arg or any(unicodedata.category(ch) == "Cs" for ch in arg):
                raise PolicyViolation(
                    f"{what} argument {arg!r} contains NUL or a lone surrogate", hint="exec arguments must be valid text"
                )
    for key, value in plan.labels:
        _check_text("label", key)
        if not _LABEL_KEY.fullmatch(key):
            raise PolicyViolation(
                f"label key {key!r} is invalid", hint="use lower-case reverse-DNS keys, e.g. org.opencontainers.image.source"
            )
        _check_text(f"label {key} value", value)
        if not value.strip():
            raise ConfigError(f"label {key} is empty", hint="leave the label out instead")
        if _URL_CREDENTIALS.search(value):
            raise PolicyViolation(f"label {key} carries URL credentials", hint="remove user:password@ from the URL")
    for key, value in plan.env:
        _check_text("env", key)
        if not _ENV_KEY.fullmatch(key) or key in _RESERVED_ENV:
            raise PolicyViolation(f"env name {key!r} is invalid or reserved", hint="use NAME=value with NAME like MY_SETTING")
        if _SECRET_KEY.search(key):
            raise PolicyViolation(
                f"env name {key!r} looks like a secret", hint="secrets never go into image ENV; pass them at run time"
            )
        _check_text(f"env {key} value", value)
        if _URL_CREDENTIALS.search(value):
            raise PolicyViolation(f"env {key} carries URL credentials", hint="remove user:password@ from the URL")
    for what, pairs in (("label", plan.labels), ("env", plan.env)):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise PolicyViolation(f"duplicate {what} key in the plan", hint="give each key once")
    app = set(plan.app_files)
    if len(app) != len(plan.app_files):
        raise PolicyViolation("duplicate app file in the plan", hint="list each file once")
    for path in app:
        parent = posixpath.dirname(path)
        while parent:
            if parent in app:
                raise PolicyViolation(f"app file {parent!r} is also a directory of {path!r}", hint="rename one of them")
            parent = posixpath.dirname(parent)


# ---------------------------------------------------------------- rendering


def _app_groups(app_files: Sequence[str]) -> list[tuple[list[str], str]]:
    by_dir: dict[str, list[str]] = {}
    for path in app_files:
        by_dir.setdefault(posixpath.dirname(path), []).append(f"{CONTEXT_APP_DIR}/{path}")
    groups = []
    for directory in sorted(by_dir, key=lambda d: d.encode()):
        dest = f"/stage/app/{directory}/" if directory else "/stage/app/"
        groups.append((sorted(by_dir[directory], key=lambda s: s.encode()), dest))
    return groups


def _template_vars(plan: BuildPlan) -> Mapping[str, object]:
    def by_key(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return sorted(pairs, key=lambda kv: kv[0].encode())

    return {
        "base_image": plan.base_image,
        "runtime_image": plan.runtime_image or plan.base_image,
        "python_cmd": plan.python or "$(command -v python3)",
        "pip_wheel": plan.pip_wheel,
        "wheel_sources": [f"{CONTEXT_WHEELS_DIR}/{w}" for w in sorted({*plan.wheel_files, plan.pip_wheel}, key=str.encode)],
        "wheels_dest": "/wheels/",
        "lock_source": CONTEXT_LOCK,
        "lock_dest": "/tmp/requirements.lock",
        "stage_source": CONTEXT_STAGE_SCRIPT,
        "stage_dest": f"/tmp/{CONTEXT_STAGE_SCRIPT}",
        "sdists": sorted(set(plan.sdists)),
        "build_lock_source": CONTEXT_BUILD_LOCK,
        "build_lock_dest": "/tmp/build-requirements.lock",
        "app_groups": _app_groups(plan.app_files),  # per-directory COPY lists, for user templates that want them
        "app_root_source": f"{CONTEXT_ROOT_DIR}/",
        "entrypoint": list(plan.entrypoint),
        "cmd": list(plan.cmd),
        "healthcheck": list(plan.healthcheck),
        "labels": by_key(plan.labels),
        "env": by_key(plan.env),
        "source_date_epoch": int(plan.source_date_epoch),
        "pyc": bool(plan.pyc),
        "strip_sources": bool(plan.strip_sources),
        "keep_sources": sorted(set(plan.keep_sources)),
        # for user templates that compile with compileall -x (the bundled ones pass --keep-source to slimbuild-stage.py)
        "keep_sources_rx": json_str("/site-packages/(" + "|".join(sorted(set(plan.keep_sources))) + ")/")
        if plan.keep_sources
        else "",
        "uid": int(plan.uid),
        "deps_image": plan.deps_image,
        "prune": sorted(set(plan.prune), key=str.encode),
    }


def _environment(template_dir: Path | None) -> jinja2.Environment:
    # Trusted-code-only for user templates: the sandbox limits attribute access, it is not a security boundary.
    cls = jinja2.Environment if template_dir is None else jinja2.sandbox.SandboxedEnvironment
    env = cls(
        loader=jinja2.FileSystemLoader(str(template_dir or bundled_template_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(json_str=json_str, json_list=json_list, copy_list=copy_list, dq=dq)
    return env


def render_dockerfile(plan: BuildPlan, template_dir: Path | None = None) -> str:
    """The Dockerfile for PLAN from ``<template_dir or bundled>/<plan.template>/Dockerfile.j2``, checked.

    A user's directory holds its ``Dockerfile.j2`` at the top (as documented) or under ``<plan.template>/``.
    """
    validate_plan(plan)
    env = _environment(template_dir)
    name = f"{plan.template}/Dockerfile.j2"
    if template_dir is not None and (template_dir / "Dockerfile.j2").is_file():
        name = "Dockerfile.j2"
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound:
        if template_dir is not None:
            raise ConfigError(
                f"template directory {template_dir} has no Dockerfile.j2",
                hint=f"put your Dockerfile.j2 there, or use a bundled template: {', '.join(_BUILTIN_TEMPLATES)}",
            ) from None
        raise ConfigError(
            f"template {name!r} not found in the bundled templates", hint=f"bundled: {', '.join(_BUILTIN_TEMPLATES)}"
        ) from None
    try:
        text = template.render(**_template_vars(plan))
    except jinja2.UndefinedError as exc:
        raise ConfigError(
            f"template {name}: {exc.message}", hint="the template uses a variable the plan does not provide"
        ) from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"template {name}: {exc}", hint="fix the template") from None
    validate_dockerfile(text)
    return text


# ---------------------------------------------------------------- parsing and checks


def parse_dockerfile(text: str) -> tuple[Instruction, ...]:
    """Instructions as Docker splits them: ``\\`` continuations joined, comment and blank lines dropped."""
    out: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        stripped = line.strip()
        if not parts and (not stripped or stripped.startswith("#")):
            continue
        if parts and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped by Docker
        if not parts:
            start = number
        continued = re.search(r"\\[ \t]*$", line)
        parts.append(line[: continued.start()] if continued else line)
        if not continued:
            joined = "".join(parts).strip()
            keyword, _, value = joined.partition(" ")
            out.append(Instruction(keyword.upper(), value.strip(), start))
            parts = []
    if parts:
        joined = "".join(parts).strip()
        keyword, _, value = joined.partition(" ")
        out.append(Instruction(keyword.upper(), value.strip(), start))
    return tuple(out)


def _exec_form(value: str) -> list[str] | None:
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if isinstance(parsed, list) and all(isinstance(v, str) for v in parsed):
        return parsed
    return None


_FORBIDDEN_RUN = (
    (re.compile(r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(ba|da|z|k)?sh\b"), "pipes a download into a shell"),
    (re.compile(r"(^|[\s;&|(])sudo(\s|$)"), "uses sudo"),
    (re.compile(r"\bapt(-get)?\s+(\S+\s+)*(dist-)?upgrade\b"), "upgrades system packages"),
)


def validate_dockerfile(text: str) -> None:
    """Raise PolicyViolation on ADD, curl|sh, sudo, upgrade, shell-form CMD/ENTRYPOINT or a root/non-numeric last USER."""
    instructions = parse_dockerfile(text)
    stages: set[str] = set()
    last_user: Instruction | None = None
    for ins in instructions:
        where = f"Dockerfile line {ins.line}"
        if ins.keyword == "ADD":
            raise PolicyViolation(f"{where}: ADD is not allowed", hint="use COPY (ADD fetches URLs and unpacks archives)")
        if ins.keyword == "FROM":
            words = ins.value.split()
            ref = words[0] if words else ""
            if ref.lower() not in stages:
                _check_image(f"{where}: base image", ref)
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2].lower())
            last_user = None
        if ins.keyword == "RUN":
            for pattern, why in _FORBIDDEN_RUN:
                if pattern.search(ins.value):
                    raise PolicyViolation(f"{where}: RUN {why}", hint="slimbuild templates never do this; fix the template")
        if ins.keyword in {"CMD", "ENTRYPOINT"} and _exec_form(ins.value) is None:
            raise PolicyViolation(f"{where}: {ins.keyword} is not in exec (JSON) form", hint='use ["program", "arg"]')
        if ins.keyword == "COPY" and not ins.value.startswith("--from="):
            words = _exec_form(ins.value) or ins.value.split()
            if any(w.rstrip("/") in {".", ""} for w in words[:-1]):
                raise PolicyViolation(f"{where}: COPY of the whole context", hint="copy an explicit file list")
        if ins.keyword == "USER":
            last_user = ins
    if last_user is None:
        raise PolicyViolation("Dockerfile: the final stage sets no USER", hint="end with USER 10001:10001")
    if not re.fullmatch(r"[0-9]+(:[0-9]+)?", last_user.value) or int(last_user.value.split(":")[0]) == 0:
        raise PolicyViolation(
            f"Dockerfile line {last_user.line}: USER {last_user.value!r} is not a non-root numeric uid",
            hint="use USER 10001:10001",
        )
