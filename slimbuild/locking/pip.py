"""pip and pip-tools as subprocesses: the target shim, pip's configured sources, fetch failures.

pip-tools has no public Python API, so ``pip-compile`` (and ``pip download``) run as ``python -c _PIP_SHIM``:
inside that process the shim makes the image, not the host, the target of pip's finder, resolver and marker
evaluation, and reports the index fetch failures pip logs only at debug level (RELIABILITY E11). The shim
depends on pip internals (as pip-tools itself does); when they move it fails with a clear error rather than
silently locking for the host. Output and URLs are returned with credentials masked.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from slimbuild.errors import ResolutionError
from slimbuild.locking.target import Target
from slimbuild.models import Finding, IndexOption, Severity
from slimbuild.redact import mask_text, mask_url

__all__ = [
    "PipIndex",
    "PipRun",
    "extra_index_findings",
    "index_unreachable",
    "pip_index",
    "pip_sources",
    "run_pip_tool",
    "unreachable",
]

_SHIM_MARK = "SLIMBUILD-SHIM"

# Runs inside the pip / pip-compile process (argv: config-json, module, args...).
# It makes the image, not the host, the target of pip's finder, resolver and
# marker evaluation, and reports index fetch failures pip logs only at debug.
_PIP_SHIM = r"""
import json, runpy, sys
cfg = json.loads(sys.argv[1]); module = sys.argv[2]
MARK = "SLIMBUILD-SHIM"
try:
    from pip._internal.index import collector as _collector
    _orig_fail = _collector._handle_get_simple_fail
    def _fail(link, reason, meth=None):
        url = getattr(link, "url", str(link))
        text = str(reason).replace("\n", " ")
        sys.stderr.write(f"{MARK} fetch-failed {url} {text}\n")
        return _orig_fail(link, reason, meth)
    _collector._handle_get_simple_fail = _fail
    t = cfg.get("target")
    if t:
        from pip._internal.models import target_python as _tp
        from pip._internal.resolution.resolvelib import resolver as _rl
        from pip._vendor.packaging import markers as _markers
        _orig_tp = _tp.TargetPython.__init__
        def _tp_init(self, platforms=None, py_version_info=None, abis=None, implementation=None):
            _orig_tp(self, platforms=platforms or list(t["platforms"]),
                     py_version_info=py_version_info or tuple(t["py"]),
                     abis=abis or [t["abi"]], implementation=implementation or "cp")
        _tp.TargetPython.__init__ = _tp_init
        _orig_rl = _rl.Resolver.__init__
        def _rl_init(self, *a, **kw):
            if kw.get("py_version_info") is None:
                kw["py_version_info"] = tuple(t["py"])
            return _orig_rl(self, *a, **kw)
        _rl.Resolver.__init__ = _rl_init
        _env = dict(t["markers"])
        _markers.default_environment = lambda: dict(_env)
        try:
            from packaging import markers as _pmarkers
            _pmarkers.default_environment = lambda: dict(_env)
        except ImportError:
            pass
except (ImportError, AttributeError) as exc:
    sys.stderr.write(f"{MARK} unsupported {exc}\n")
    sys.exit(97)
sys.argv = [module] + sys.argv[3:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""
_SHIM_UNSUPPORTED_RC = 97


@dataclass(frozen=True)
class PipRun:
    """Result of one pip / pip-compile run through the shim."""

    returncode: int
    output: str
    fetch_failures: tuple[tuple[str, str], ...]  # (masked url, reason), pip-visible only


def run_pip_tool(
    module: str,
    args: Sequence[str],
    *,
    target: Target | None,
    env: Mapping[str, str] | None,
    cwd: Path,
) -> PipRun:
    """Run ``python -m MODULE ARGS`` through the target shim; never raises on failure."""
    cfg: dict[str, object] = {}
    if target is not None:
        cfg["target"] = {
            "platforms": list(target.platform_tags()),
            "py": list(target.version_info),
            "abi": target.abi,
            "markers": target.marker_environment(),
        }
    proc = subprocess.run(
        [sys.executable, "-c", _PIP_SHIM, json.dumps(cfg), module, *args],
        cwd=cwd,
        env=dict(os.environ if env is None else env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    failures: list[tuple[str, str]] = []
    lines: list[str] = []
    for line in proc.stdout.splitlines():
        if line.startswith(f"{_SHIM_MARK} fetch-failed "):
            _, _, url, *reason = line.split(" ", 3)
            # Drop urllib3's object reprs; keep the errno text a user can act on.
            short = re.sub(r"<[^<>]+>: ", "", " ".join(reason))
            failures.append((mask_url(url), mask_text(short if len(short) <= 200 else short[:197] + "...")))
        elif line.startswith(f"{_SHIM_MARK} unsupported"):
            raise ResolutionError(
                f"cannot target {target.describe() if target else 'the image'} with this pip: {line[len(_SHIM_MARK) + 13 :]}",
                hint="install the pip and pip-tools versions slimbuild is tested with",
            )
        else:
            lines.append(line)
    return PipRun(proc.returncode, mask_text("\n".join(lines)), tuple(failures))


def unreachable(failures: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Fetch failures that mean an index is down, not that a project is absent (404)."""
    return tuple((url, reason) for url, reason in failures if not re.search(r"\b(404|Not Found)\b", reason))


def pip_sources(env: Mapping[str, str] | None = None) -> dict[str, tuple[str, ...]]:
    """Index URLs and find-links pip is configured with (``pip config list`` + env)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        env=dict(os.environ if env is None else env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    found: dict[str, list[str]] = {}
    # Later scopes override earlier ones; pip lists global < user < site < env.
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        option = key.rpartition(".")[2]
        if option in ("index-url", "extra-index-url", "find-links", "no-index", "trusted-host"):
            found[option] = shlex.split(value.strip().strip("'\""))
    return {k: tuple(v) for k, v in found.items()}


DEFAULT_INDEX = "https://pypi.org/simple"  # pip's default index (recorded as such in the manifest, G8)
_CONFUSION = (
    "pip picks the highest version from ANY index, so a public project with a "
    "private name can be locked instead (dependency confusion)"
)


@dataclass(frozen=True)
class PipIndex:
    """Where pip looks, once the requirements files' index options are applied: the environment to run pip with,
    the sources it uses (credentials masked) and the warnings about the user's pip configuration (C6)."""

    env: dict[str, str]
    sources: tuple[str, ...]
    warnings: tuple[str, ...]


def _truthy(values: Sequence[str]) -> bool:
    return bool(values) and values[0].lower() in ("1", "true", "yes", "on")


def pip_index(env: Mapping[str, str] | None, options: Sequence[IndexOption] = ()) -> PipIndex:
    """pip's configured sources (``pip config list`` + env), with the requirements files' options on top, as pip
    applies them: ``--index-url`` replaces the index, ``--extra-index-url``, ``--find-links`` and ``--trusted-host``
    add to the configured ones, ``--no-index`` turns the indexes off. They reach pip-compile and pip download as
    ``PIP_*`` variables, so both see the same sources."""
    base = dict(os.environ if env is None else env)
    config = pip_sources(base)
    index = list(config.get("index-url", ()))
    extra = list(config.get("extra-index-url", ()))
    links = list(config.get("find-links", ()))
    trusted = list(config.get("trusted-host", ()))
    no_index = _truthy(config.get("no-index", ()))
    for opt in options:
        if opt.option == "--index-url":
            index = [opt.value]
        elif opt.option == "--extra-index-url":
            extra.append(opt.value)
        elif opt.option == "--find-links":
            links.append(opt.value)
        elif opt.option == "--trusted-host":
            trusted.append(opt.value)
        elif opt.option == "--no-index":
            no_index = True
    out = dict(base)
    if options:
        for key, values in (("PIP_INDEX_URL", index), ("PIP_EXTRA_INDEX_URL", extra), ("PIP_FIND_LINKS", links),
                            ("PIP_TRUSTED_HOST", trusted)):
            if values:
                out[key] = " ".join(values)
        if no_index:
            out["PIP_NO_INDEX"] = "1"
    sources = tuple(dict.fromkeys(
        mask_url(u) for u in ((() if no_index else (*(index or [DEFAULT_INDEX]), *extra)) + tuple(links))
    ))
    config_extra = () if _truthy(config.get("no-index", ())) else config.get("extra-index-url", ())
    return PipIndex(out, sources, _extra_index_warnings(config_extra))


def extra_index_findings(options: Sequence[IndexOption]) -> tuple[Finding, ...]:
    """SB024 for each ``--extra-index-url`` a requirements file gives (C6: dependency confusion), at its line."""
    return tuple(
        Finding(
            opt.source,
            "SB024",
            f"--extra-index-url {mask_url(opt.value)}: {_CONFUSION}; use one index (--index-url, or a proxy that "
            "serves your private and the public projects) instead",
            Severity.WARNING,
        )
        for opt in options
        if opt.option == "--extra-index-url"
    )


def _extra_index_warnings(extra: Sequence[str]) -> tuple[str, ...]:
    if not extra:
        return ()
    return (
        "extra index configured (" + ", ".join(mask_url(u) for u in extra) + "): "
        f"{_CONFUSION}; use a single index or proxy (PIP_INDEX_URL) and unset PIP_EXTRA_INDEX_URL / extra-index-url",
    )


def index_unreachable(down: Sequence[tuple[str, str]]) -> ResolutionError:
    """The error for an index that could not be fetched (the first of ``unreachable``'s failures)."""
    url, reason = down[0]
    return ResolutionError(
        f"package index unreachable: {url} ({reason})",
        hint="check the network and PIP_INDEX_URL; offline, point PIP_FIND_LINKS at a wheelhouse with PIP_NO_INDEX=1",
    )
