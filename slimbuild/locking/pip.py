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
from slimbuild.redact import mask_text, mask_url

__all__ = [
    "PipRun",
    "index_sources_and_warnings",
    "index_unreachable",
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
        if option in ("index-url", "extra-index-url", "find-links", "no-index"):
            found[option] = shlex.split(value.strip().strip("'\""))
    return {k: tuple(v) for k, v in found.items()}


def index_sources_and_warnings(env: Mapping[str, str] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Index URLs and find-links pip will use (credentials masked), and the dependency-confusion warning."""
    config = pip_sources(env)
    no_index = bool(config.get("no-index")) and config["no-index"][0].lower() in (
        "1",
        "true",
        "yes",
        "on",
    )
    index = () if no_index else config.get("index-url", ("(pip's default index)",))
    extra = () if no_index else config.get("extra-index-url", ())
    links = config.get("find-links", ())
    sources = tuple(mask_url(u) for u in (*index, *extra, *links))
    warnings: list[str] = []
    if extra:
        warnings.append(
            "extra index configured (" + ", ".join(mask_url(u) for u in extra) + "): "
            "pip picks the highest version from ANY index, so a public project with a "
            "private name can be locked instead (dependency confusion); use a single "
            "index or proxy (PIP_INDEX_URL) and unset PIP_EXTRA_INDEX_URL / extra-index-url"
        )
    return sources, tuple(warnings)


def index_unreachable(down: Sequence[tuple[str, str]]) -> ResolutionError:
    """The error for an index that could not be fetched (the first of ``unreachable``'s failures)."""
    url, reason = down[0]
    return ResolutionError(
        f"package index unreachable: {url} ({reason})",
        hint="check the network and PIP_INDEX_URL; offline, point PIP_FIND_LINKS at a wheelhouse with PIP_NO_INDEX=1",
    )
