"""Optional vulnerability gate over a lock, through pip-audit (run as a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimbuild.errors import ConfigError, PolicyViolation, ResolutionError
from slimbuild.redact import mask_text


@dataclass(frozen=True, order=True)
class Vulnerability:
    """One known vulnerability of a locked distribution."""

    name: str
    version: str
    id: str
    fix_versions: tuple[str, ...] = ()


def parse_audit(data: Any) -> tuple[Vulnerability, ...]:
    """Vulnerabilities from pip-audit's JSON (``--format json``); pure."""
    deps = data.get("dependencies", []) if isinstance(data, dict) else data
    if not isinstance(deps, list):
        raise ResolutionError("pip-audit printed JSON of an unknown shape", hint="upgrade pip-audit")
    out = []
    for dep in deps:
        if not isinstance(dep, dict):
            continue
        for v in dep.get("vulns", []) or []:
            out.append(
                Vulnerability(
                    str(dep.get("name", "")),
                    str(dep.get("version", "")),
                    str(v.get("id", "")),
                    tuple(str(f) for f in v.get("fix_versions", []) or []),
                )
            )
    return tuple(sorted(out))


def run_audit(lock_path: Path, env: Mapping[str, str] | None = None) -> tuple[Vulnerability, ...]:
    """Run pip-audit on a hashed lock without installing anything."""
    cmd = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(lock_path),
        "--require-hashes",
        "--disable-pip",
        "--no-deps",
        "--format",
        "json",
        "--progress-spinner",
        "off",
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=dict(env) if env is not None else None, timeout=600, check=False
        )
    except subprocess.TimeoutExpired:
        raise ResolutionError(
            "pip-audit did not finish within 600 s", hint="check the vulnerability service is reachable"
        ) from None
    if "No module named pip_audit" in proc.stderr:
        raise ConfigError("--audit needs pip-audit, which is not installed", hint="pip install pip-audit, or drop --audit")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        last = mask_text(proc.stderr.strip().splitlines()[-1]) if proc.stderr.strip() else f"exit {proc.returncode}"
        raise ResolutionError(f"pip-audit failed: {last}", hint="check that its vulnerability service is reachable") from None
    return parse_audit(data)


def gate(vulns: tuple[Vulnerability, ...], lock_name: str) -> None:
    """Fail (policy, exit 10) when the lock has known vulnerabilities."""
    if vulns:
        listed = "; ".join(
            f"{v.name}=={v.version} {v.id}" + (f" (fixed in {', '.join(v.fix_versions)})" if v.fix_versions else "")
            for v in vulns
        )
        first = vulns[0].name
        raise PolicyViolation(
            f"{lock_name}: {len(vulns)} known vulnerabilit{'y' if len(vulns) == 1 else 'ies'}: {listed}",
            hint=f"upgrade with 'slimbuild lock -P {first}', or accept the risk by locking without --audit",
        )
