"""Render the Dockerfile from a BuildPlan and a Jinja2 template; check the result.

Every plan value that reaches the Dockerfile is validated first (image/dockerfile.py: validate_plan) and
quoted by a filter for the one place it is used, so that Docker re-parses exactly the intended instruction
list (catalogue case D2):

* ``json_str`` / ``json_list``: JSON strings / arrays for exec-form ENTRYPOINT, CMD
  and HEALTHCHECK, which Docker does not expand any further;
* ``copy_list``: JSON array for COPY, whose words Docker *does* pass through its
  shell-word lexer (quotes, ``$``, ``\\``), so those are backslash-escaped first;
* ``dq``: one double-quoted word for ENV and LABEL values (``\\``, ``"`` and ``$``
  escaped, the only escapes Docker honours inside double quotes).

The rendered text is checked too (validate_dockerfile) before it is returned.

The bundled templates live in ``templates/`` (shipped as ``slimbuild/templates``).
A user-supplied template directory is rendered in Jinja2's SandboxedEnvironment;
the sandbox is not a security boundary (the Jinja docs say so), so such templates
must be trusted code.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import jinja2
import jinja2.sandbox

from slimbuild.errors import ConfigError
from slimbuild.image.dockerfile import validate_dockerfile, validate_plan
from slimbuild.image.plan import (
    CONTEXT_APP_DIR,
    CONTEXT_BUILD_LOCK,
    CONTEXT_DEBS_DIR,
    CONTEXT_LAYERS,
    CONTEXT_LOCK,
    CONTEXT_PRUNE_SCRIPT,
    CONTEXT_ROOT_DIR,
    CONTEXT_STAGE_RULES,
    CONTEXT_STAGE_SCRIPT,
    CONTEXT_TRACED,
    CONTEXT_WHEELS_DIR,
    BuildPlan,
)

__all__ = ["bundled_template_dir", "copy_list", "dq", "json_list", "json_str", "render_dockerfile", "render_venv_script"]

VENV_WORK = "/opt/slimbuild-venv"  # where venv.sh and its inputs lie in the venv container (image/engine_commit.py)

_BUILTIN_TEMPLATES = ("distroless", "slim")


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
        "stage_rules_source": CONTEXT_STAGE_RULES,  # imported by the stage script: copy it to the same directory
        "sdists": sorted(set(plan.sdists)),
        "build_lock_source": CONTEXT_BUILD_LOCK,
        "build_lock_dest": "/tmp/build-requirements.lock",
        "deb_sources": [f"{CONTEXT_DEBS_DIR}/{d}" for d in sorted(set(plan.debs), key=str.encode)],
        "debs_dest": "/tmp/debs/",
        "deb_files": sorted(set(plan.debs), key=str.encode),
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
        "venv_image": plan.venv_image,
        # the venv's layers: keys in COPY order (empty: one layer), and the layout file stage_venv reads
        "layers": [u.key for u in plan.layers],
        "layers_source": CONTEXT_LAYERS,
        "layers_dest": f"/tmp/{CONTEXT_LAYERS}",
        "prune": sorted(set(plan.prune), key=str.encode),
        "keep_files": list(plan.keep_files),
        "keep_locales": list(plan.keep_locales),
        "traced": bool(plan.traced),
        "traced_source": CONTEXT_TRACED,
        "traced_dest": f"/tmp/{CONTEXT_TRACED}",
        "traced_script_source": CONTEXT_PRUNE_SCRIPT,
        "traced_script_dest": f"/tmp/{CONTEXT_PRUNE_SCRIPT}",
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


def _template_file(plan: BuildPlan, template_dir: Path | None, file: str) -> str:
    """FILE of the plan's template: ``<plan.template>/FILE``, or ``FILE`` at the top of a user's directory that holds
    its ``Dockerfile.j2`` there (as documented)."""
    if template_dir is not None and (template_dir / "Dockerfile.j2").is_file():
        return file
    return f"{plan.template}/{file}"


def render_dockerfile(plan: BuildPlan, template_dir: Path | None = None) -> str:
    """The Dockerfile for PLAN from ``<template_dir or bundled>/<plan.template>/Dockerfile.j2``, checked.

    A user's directory holds its ``Dockerfile.j2`` at the top (as documented) or under ``<plan.template>/``.
    """
    validate_plan(plan)
    env = _environment(template_dir)
    name = _template_file(plan, template_dir, "Dockerfile.j2")
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




def render_venv_script(plan: BuildPlan, template_dir: Path | None = None) -> str | None:
    """The template's ``venv.sh.j2`` for PLAN (the venv step run in a container of the base and committed), with the
    paths under ``VENV_WORK``; None when the template has none (its Dockerfile's builder stage makes the venv)."""
    validate_plan(plan)
    env = _environment(template_dir)
    name = _template_file(plan, template_dir, "venv.sh.j2")
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound:
        return None
    paths = {
        "work_dir": VENV_WORK,
        "wheels_dest": f"{VENV_WORK}/{CONTEXT_WHEELS_DIR}/",
        "lock_dest": f"{VENV_WORK}/{CONTEXT_LOCK}",
        "stage_dest": f"{VENV_WORK}/{CONTEXT_STAGE_SCRIPT}",
    }
    try:
        return template.render(**{**_template_vars(plan), **paths})
    except jinja2.TemplateError as exc:
        raise ConfigError(f"template {name}: {exc}", hint="fix the template") from None
