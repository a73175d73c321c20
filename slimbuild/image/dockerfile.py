"""Checks that keep a Dockerfile safe (catalogue case D2): the plan's values before rendering, the text after.

Every plan value that reaches the Dockerfile is validated here against a strict character set (image
references, uid, wheel names, prune patterns, label and env keys) before image/render.py quotes it for the one
place it is used. Line breaks of any kind (``\\n``, ``\\r``, U+0085, U+2028, U+2029), NUL and other control
characters are refused in paths, labels and env with PolicyViolation: Docker splits instructions on ``\\n``
and other tools split on the rest. The rendered text is then parsed as Docker splits it and checked for
what slimbuild's images never do (ADD, curl | sh, sudo, upgrades, shell-form CMD, a root final USER).
Pure: no Jinja2, no I/O.
"""

from __future__ import annotations

import json
import posixpath
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slimbuild.config import KEEP_FILE_PATTERN, KEEP_LOCALE_NAME
from slimbuild.errors import ConfigError, PolicyViolation
from slimbuild.redact import has_credentials, redact

if TYPE_CHECKING:
    from slimbuild.image.plan import BuildPlan

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
_SDIST_FILE = re.compile(r"[A-Za-z0-9_.+-]+\.tar\.gz")
_WHEEL_FILE = re.compile(r"[A-Za-z0-9_.+!-]+\.whl")
_DEB_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+~-]*\.deb")  # pool file names: name_version_arch.deb
_PIP_WHEEL = re.compile(r"pip-[A-Za-z0-9_.+!-]+\.whl")
_PRUNE_PATTERN = re.compile(r"[A-Za-z0-9_.*+-]+")
_INTERPRETER = re.compile(r"/[A-Za-z0-9_./+-]+")
_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_GLOB_CHARS = frozenset("*?[")
_RESERVED_ENV = frozenset({"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "SOURCE_DATE_EPOCH"})


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: upper-case keyword, its raw argument text, first line number."""

    keyword: str
    value: str
    line: int


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
    """Raise PolicyViolation (or ConfigError) for any plan value unsafe to render; the first problem is reported."""
    _check_images_and_numbers(plan)
    _check_wheelhouse(plan)
    _check_app_and_argv(plan)
    _check_labels_and_env(plan)
    _check_unique(plan)


def _check_images_and_numbers(plan: BuildPlan) -> None:
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
    for what, value in (("deps", plan.deps_image), ("venv", plan.venv_image)):
        if value and not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
            raise PolicyViolation(f"{what} image {value!r} is not an image id", hint="expected sha256:<64 hex digits>")
    if isinstance(plan.uid, bool) or not 0 < plan.uid < 2**31 - 1:
        raise PolicyViolation(f"uid {plan.uid!r} is not a non-root numeric uid", hint="use e.g. 10001")
    if not 0 <= plan.source_date_epoch < 2**33:
        raise ConfigError(
            f"SOURCE_DATE_EPOCH {plan.source_date_epoch} is out of range",
            hint="use seconds since 1970, e.g. from git log -1 --format=%ct",
        )


def _check_wheelhouse(plan: BuildPlan) -> None:
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
    for name in plan.debs:
        if not _DEB_FILE.fullmatch(name):
            raise PolicyViolation(f"Debian package file {name!r} is not a plain .deb file name", hint="a pool file name")
    for pattern in plan.prune:
        if not _PRUNE_PATTERN.fullmatch(pattern) or pattern.strip(".*") == "":
            raise PolicyViolation(
                f"prune pattern {pattern!r} is not a plain site-packages name", hint="e.g. 'pip' or 'pip-*.dist-info'"
            )
    for pattern in plan.keep_files:  # rendered in single quotes: the config check's alphabet, nothing a shell reads
        if not KEEP_FILE_PATTERN.fullmatch(pattern) or ".." in pattern.split("/"):
            raise PolicyViolation(
                f"keep-files pattern {pattern!r} is not a path pattern inside site-packages", hint="e.g. 'numpy/*.pyi'"
            )
    for name in plan.keep_locales:
        if not KEEP_LOCALE_NAME.fullmatch(name):
            raise PolicyViolation(f"keep-locales entry {name!r} is not a language name", hint="e.g. 'de' or 'pt_BR'")


def _check_app_and_argv(plan: BuildPlan) -> None:
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


def _check_labels_and_env(plan: BuildPlan) -> None:
    for key, value in plan.labels:
        _check_text("label", key)
        if not _LABEL_KEY.fullmatch(key):
            raise PolicyViolation(
                f"label key {key!r} is invalid", hint="use lower-case reverse-DNS keys, e.g. org.opencontainers.image.source"
            )
        _check_text(f"label {key} value", value)
        if not value.strip():
            raise ConfigError(f"label {key} is empty", hint="leave the label out instead")
        if has_credentials(value):
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
        if has_credentials(value):
            raise PolicyViolation(f"env {key} carries URL credentials", hint="remove user:password@ from the URL")


def _check_unique(plan: BuildPlan) -> None:
    keys = [u.key for u in plan.layers]
    if len(set(keys)) != len(keys) or not all(re.fullmatch(r"[0-9a-f]{16}", k) for k in keys):
        raise PolicyViolation("the venv's layer keys are not 16 distinct hex digits", hint="re-render from the lock")
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
        if redact(ins.value) != ins.value:  # B16: an image never holds a credential (its history shows every line)
            raise PolicyViolation(
                f"{where}: {ins.keyword} carries a URL credential ({redact(ins.value)[:100]})",
                hint="pass credentials at run time (docker run -e NAME=...), never in the image",
            )
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
