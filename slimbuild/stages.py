"""``[tool.slimbuild.pipeline]``: the entrypoints as the stages of a pipeline, which ``slimbuild spec`` writes run specs for.

config.py reads the table through ``parse_pipeline`` (its shape, each error at ``pyproject.toml:LINE``) and, once the
entrypoints are known, ``check_stages`` (every stage is one). A stage reads a data repo (``repo``, with its ``glob``)
or the output of another stage (``from``); ``cpu`` and ``memory`` are its resource requests (the table's own ``cpu``
and ``memory`` are every stage's default).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from slimbuild.errors import ConfigError


@dataclass(frozen=True)
class Stage:
    """One stage of ``[tool.slimbuild.pipeline]``: an entrypoint's image, reading a data repo or another stage's output."""

    name: str
    repo: str = ""  # the Pachyderm repo it reads, or
    after: str = ""  # (`from`) the stage whose output it reads
    glob: str = "/"
    cpu: str = ""  # resource requests as Kubernetes quantities ('': none)
    memory: str = ""
    where: str = ""  # FILE:LINE of its table, for errors found after parsing


@dataclass(frozen=True)
class PipelineConfig:
    """``[tool.slimbuild.pipeline]``: its name ('' : the project's) and its stages, in the configuration's order."""

    name: str
    stages: tuple[Stage, ...]


_PIPELINE_KEYS = ("cpu", "memory", "name", "stages")
_STAGE_KEYS = ("cpu", "from", "glob", "memory", "repo")
_PIPELINE_HINT = 'e.g. [tool.slimbuild.pipeline.stages.train] with repo = "raw" or from = "features" (README.md, "Pipelines")'
STAGE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?")  # a Pachyderm pipeline name, a DNS label once _ is -
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
_REPO = re.compile(r"[A-Za-z0-9_-]{1,63}")  # Pachyderm's rule for repo names
_QUANTITY = re.compile(r"(?:\d+(?:\.\d+)?|\.\d+)(?:[KMGTPE]i|[numkMGTPE])?")  # a Kubernetes resource quantity


def _table_line(text: str, path: Sequence[str], where: str) -> str:
    """``FILE:LINE`` of the table or key at PATH below [tool.slimbuild] (a ``[a.b]`` header, ``b = {...}`` or ``a.b =``)."""
    want = list(path)
    current: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[+([^\]]+)\]+", line)
        if header:
            current = [p.strip().strip("\"'") for p in header[1].split(".")]
            current = current[2:] if current[:2] == ["tool", "slimbuild"] else current
            if current == want:
                return f"{where}:{number}"
            continue
        key = re.match(r"\s*([\w\"'.-]+)\s*=", line)
        full = current + [p.strip().strip("\"'") for p in key[1].split(".")] if key else []
        if full and full == want[: len(full)]:
            return f"{where}:{number}"
    return where


def _unknown(table: Mapping[str, object], known: Sequence[str], key: str, at_key: Callable[[str], str]) -> None:
    for name in table:
        if name not in known:
            close = difflib.get_close_matches(str(name), list(known), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
            raise ConfigError(f"{at_key(str(name))}: unknown key '{key}.{name}'", hint=hint)


def _quantity(value: object, key: str, where: str) -> str:
    text = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(text, str) or _QUANTITY.fullmatch(text) is None:
        raise ConfigError(
            f"{where}: '{key}' {value!r} is not a Kubernetes quantity", hint='e.g. cpu = "500m" or 2, memory = "512Mi"'
        )
    return text


def parse_pipeline(value: object, where: str, text: str = "") -> PipelineConfig:
    """``[tool.slimbuild.pipeline]`` validated: a name, default requests, and one table per stage (``stages``)."""

    def at(*path: str) -> str:
        return _table_line(text, ("pipeline", *path), where) if text else where

    if not isinstance(value, dict):
        raise ConfigError(f"{where}: 'pipeline' must be a table", hint=_PIPELINE_HINT)
    _unknown(value, _PIPELINE_KEYS, "pipeline", at)
    name = value.get("name", "")
    if not isinstance(name, str) or (name and _DNS_LABEL.fullmatch(name) is None):
        raise ConfigError(
            f"{at('name')}: 'pipeline.name' {name!r} must be lowercase letters, digits and '-', at most 40",
            hint='it names the Argo Workflow and prefixes the Jobs, e.g. name = "churn"',
        )
    defaults = {k: _quantity(value[k], f"pipeline.{k}", at(k)) for k in ("cpu", "memory") if k in value}
    stages = value.get("stages")
    if not isinstance(stages, dict) or not stages or not all(isinstance(t, dict) for t in stages.values()):
        raise ConfigError(f"{at('stages')}: 'pipeline.stages' must hold one table per stage", hint=_PIPELINE_HINT)
    parsed = tuple(_parse_stage(str(n), t, defaults, at) for n, t in stages.items())
    _check_links(parsed, at)
    return PipelineConfig(name, parsed)


def _parse_stage(name: str, table: Mapping[str, object], defaults: Mapping[str, str], at: Callable[..., str]) -> Stage:
    key = f"pipeline.stages.{name}"
    where = at("stages", name)
    if STAGE_NAME.fullmatch(name) is None:
        raise ConfigError(
            f"{where}: stage name {name!r} must be lowercase letters, digits, '-' and '_', at most 40",
            hint="a stage is named after its entrypoint: rename the entrypoint",
        )
    _unknown(table, _STAGE_KEYS, key, lambda k: at("stages", name, k))
    if ("repo" in table) == ("from" in table):
        raise ConfigError(
            f"{where}: '{key}' must name exactly one input, repo (the data it reads) or from (the stage it follows)",
            hint=_PIPELINE_HINT,
        )
    texts: dict[str, str] = {}
    for field_name in ("repo", "from", "glob"):
        item = table.get(field_name, "/" if field_name == "glob" else "")
        if not isinstance(item, str) or item != item.strip() or "\0" in item:
            raise ConfigError(f"{at('stages', name, field_name)}: '{key}.{field_name}' must be a string", hint=_PIPELINE_HINT)
        texts[field_name] = item
    if "from" in table and not texts["from"]:
        raise ConfigError(f"{at('stages', name, 'from')}: '{key}.from' is empty: name the stage it follows", hint=_PIPELINE_HINT)
    if "repo" in table and _REPO.fullmatch(texts["repo"]) is None:
        raise ConfigError(
            f"{at('stages', name, 'repo')}: '{key}.repo' {texts['repo']!r} is not a repo name",
            hint="letters, digits, '_' and '-' (Pachyderm's rule)",
        )
    if not texts["glob"].startswith("/"):
        raise ConfigError(f"{at('stages', name, 'glob')}: '{key}.glob' {texts['glob']!r} must start with '/'", hint='e.g. "/*"')
    requests = {k: _quantity(table[k], f"{key}.{k}", at("stages", name, k)) for k in ("cpu", "memory") if k in table}
    merged = {**defaults, **requests}
    return Stage(name, texts["repo"], texts["from"], texts["glob"], merged.get("cpu", ""), merged.get("memory", ""), where)


def _check_links(stages: Sequence[Stage], at: Callable[..., str]) -> None:
    """Every ``from`` names another stage and no chain of them comes back; a ``repo`` is no stage's output."""
    by_name = {s.name: s for s in stages}
    dns = [s.name.replace("_", "-") for s in stages]
    for stage in stages:
        if dns.count(stage.name.replace("_", "-")) > 1:
            raise ConfigError(
                f"{stage.where}: stage names {stage.name!r} and another differ only by '_' and '-'", hint="rename one"
            )
        if stage.repo in by_name:
            raise ConfigError(
                f"{at('stages', stage.name, 'repo')}: 'pipeline.stages.{stage.name}.repo' {stage.repo!r} is a stage's output",
                hint=f'write from = "{stage.repo}"',
            )
        if stage.after and stage.after not in by_name:
            close = difflib.get_close_matches(stage.after, list(by_name), n=1)
            raise ConfigError(
                f"{at('stages', stage.name, 'from')}: 'pipeline.stages.{stage.name}.from' names no stage: {stage.after!r}",
                hint=f"did you mean '{close[0]}'?" if close else f"stages: {', '.join(by_name)}",
            )
    for stage in stages:
        chain = [stage.name]
        while by_name[chain[-1]].after:
            chain.append(by_name[chain[-1]].after)
            if chain[-1] in chain[:-1]:
                raise ConfigError(
                    f"{stage.where}: the stages' from links form a cycle: {' -> '.join(chain)}",
                    hint="a pipeline runs each stage after the one it reads from: break the cycle",
                )


def check_stages(pipeline: PipelineConfig, entrypoints: Mapping[str, str]) -> None:
    """Every stage is a configured entrypoint (its image); exit 2 at the stage's line otherwise."""
    for stage in pipeline.stages:
        if stage.name in entrypoints:
            continue
        if not entrypoints:
            raise ConfigError(
                f"{stage.where}: stage {stage.name!r}: the pipeline's stages are entrypoints, and none are configured",
                hint='name them in [tool.slimbuild.entrypoints] (e.g. ingest = "ingest.py")',
            )
        close = difflib.get_close_matches(stage.name, list(entrypoints), n=1)
        raise ConfigError(
            f"{stage.where}: stage {stage.name!r} is no entrypoint",
            hint=f"did you mean '{close[0]}'?" if close else f"entrypoints: {', '.join(sorted(entrypoints))}",
        )
