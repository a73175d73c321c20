"""``prune = "traced"`` and ``build --trace-in-image``: the keep spec for the context, the traced commands proven
in the pruned image, and the smoke command traced inside the image.

* :func:`keep_files`: the project's trace (required) and the locked wheels' members and ``DT_NEEDED`` entries
  (the scan pipeline/system_libs.py caches per wheel) give image/traced.py's keep spec, shipped in the context with
  image/prune_traced.py, which the builder runs on the staged venv.
* :func:`prove`: every command of the trace (its ``commands``, as traced) runs in the built, untagged image, locked
  down as the smoke run is; the first that fails fails the build (exit 7, BuildFailed) naming the first missing
  file its output names. The caller then discards the image: no tag.
* :func:`trace_in_image`: the smoke commands run once more in a throwaway container of the image, with
  pipeline/trace_hook.py put into it with the engine's archive upload (no bind mount; the container is removed,
  never committed, so nothing of it reaches the image) and its records fetched back; then one more run lists
  the installed files' sizes. The record says which installed files the run opened or mapped, and how many bytes
  of the installed files it never did.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slimbuild.analysis import runtime
from slimbuild.analysis.runtime import SITE, Trace
from slimbuild.config import Settings
from slimbuild.errors import BuildFailed, ConfigError
from slimbuild.image import prune_traced
from slimbuild.image.context import ContextFile
from slimbuild.image.engine import Engine
from slimbuild.image.plan import CONTEXT_PRUNE_SCRIPT, CONTEXT_TRACED, VENV_PYTHON
from slimbuild.image.traced import KeepSpec, WheelFiles, first_missing, keep_spec, proof_argv, site_members
from slimbuild.pipeline.system_libs import _wheel_libs
from slimbuild.pipeline.tracing import _processes, read_trace

_TRACE_ROOT = "/slimbuild-trace"
_RUN_TIMEOUT = 600.0
_LISTING = (
    "import json, os, sysconfig\n"
    "site = sysconfig.get_path('purelib')\n"
    "out = {}\n"
    "for d, _, fs in os.walk(site):\n"
    "    for f in fs:\n"
    "        p = os.path.join(d, f)\n"
    "        if os.path.isfile(p) and not os.path.islink(p):\n"
    "            out[os.path.relpath(p, site)] = os.path.getsize(p)\n"
    "print('@@SLIMBUILD-LISTING@@' + json.dumps(out, sort_keys=True))\n"
)


def project_trace(settings: Settings) -> Trace:
    """The trace ``prune = "traced"`` prunes to: the project's, with at least one command (exit 2 otherwise)."""
    trace = read_trace(settings)
    if trace is None or not trace.commands:
        raise ConfigError(
            f'prune = "traced" needs {runtime.TRACE_FILE} with at least one traced command',
            hint="run 'slimbuild trace -- python YOUR_SCRIPT.py ARGS' first (commit the trace), or set prune = \"default\"",
        )
    return trace


def wheel_files(wheels: Sequence[Path], cache: Path) -> list[WheelFiles]:
    """Each locked wheel's site-packages members and its shared objects' ``DT_NEEDED`` entries (cached scans)."""
    out = []
    for path in sorted(wheels):
        if not path.name.endswith(".whl"):
            continue  # an sdist is built in the builder: its files are pruned by the package rule alone
        try:
            with zipfile.ZipFile(path) as zf:
                members = site_members(zf.namelist())
        except (zipfile.BadZipFile, OSError) as exc:
            raise BuildFailed(f"{path.name}: cannot read the wheel: {exc}", hint="delete it from the cache, lock again") from None
        libs = _wheel_libs(path, cache)
        out.append(WheelFiles(libs.dist if libs else path.name, members, libs.needed if libs else ()))
    return out


def keep_files(
    settings: Settings, wheels: Sequence[Path], cache: Path
) -> tuple[KeepSpec, tuple[tuple[str, ...], ...], tuple[ContextFile, ...]]:
    """The keep spec, the traced commands to prove, and the two context files the builder's prune step reads."""
    trace = project_trace(settings)
    spec = keep_spec(trace, wheel_files(wheels, cache))
    return spec, tuple(c.argv for c in trace.commands), (
        ContextFile(CONTEXT_TRACED, None, spec.dumps(), 0o644),
        ContextFile(CONTEXT_PRUNE_SCRIPT, Path(prune_traced.__file__), None, 0o644),
    )


def prove(engine: Engine, image_id: str, commands: Sequence[Sequence[str]], uid: int) -> list[dict[str, object]]:
    """Run every traced command in the pruned image; the first failure raises BuildFailed naming what it lacked."""
    results: list[dict[str, object]] = []
    for argv in commands:
        run_argv = proof_argv(argv, VENV_PYTHON)
        run = engine.run(image_id, run_argv, user=f"{uid}:{uid}", timeout=_RUN_TIMEOUT)
        results.append({"command": list(run_argv), "exit_code": run.exit_code, "ok": run.exit_code == 0})
        if run.exit_code != 0:
            missing = first_missing(run.output)
            tail = " | ".join(run.output.strip().splitlines()[-8:])
            lacks = f"; first missing file: {missing}" if missing else ""
            raise BuildFailed(
                f'prune = "traced": the traced command \'{" ".join(argv)}\' fails in the pruned image '
                f"(exit {run.exit_code}){lacks}: {tail}",
                hint="no tag was applied; trace a run that reaches it (slimbuild trace -- COMMAND), or set prune = \"default\"",
            )
    return results


def _hook_tar(uid: int) -> bytes:
    """``/slimbuild-trace/boot/sitecustomize.py`` (the hook) and ``/slimbuild-trace/out/`` (the runtime user's)."""
    hook = Path(__file__).with_name("trace_hook.py").read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode, owner in (("slimbuild-trace", 0o755, 0), ("slimbuild-trace/boot", 0o755, 0),
                                  ("slimbuild-trace/out", 0o700, uid)):
            d = tarfile.TarInfo(name)
            d.type, d.mode, d.uid, d.gid = tarfile.DIRTYPE, mode, owner, owner
            tar.addfile(d)
        f = tarfile.TarInfo("slimbuild-trace/boot/sitecustomize.py")
        f.size, f.mode = len(hook), 0o644
        tar.addfile(f, io.BytesIO(hook))
    return buf.getvalue()


def _read_records(collected: bytes) -> list[runtime.Process]:
    """The processes' records from the fetched ``out/`` tar (only its ``*.jsonl`` files, by their base names)."""
    with tempfile.TemporaryDirectory(prefix="slimbuild-trace-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(collected)) as tar:
            for member in tar.getmembers():
                name = posixpath.basename(member.name)
                source = tar.extractfile(member) if member.isfile() and name.endswith(".jsonl") else None
                if source is not None:
                    (Path(tmp) / name).write_bytes(source.read())
        return list(_processes(Path(tmp)))


def _image_env(engine: Engine, image_id: str) -> dict[str, str]:
    env = {}
    for item in (engine.inspect_image(image_id).get("Config") or {}).get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    return env


def _traced_run(engine: Engine, image_id: str, argv: Sequence[str], uid: int) -> Trace:
    """One smoke command run under the hook in a throwaway container of the image: its trace (project /app)."""
    pythonpath = _image_env(engine, image_id).get("PYTHONPATH", "")
    boot = f"{_TRACE_ROOT}/boot"
    env = {"PYTHONPATH": f"{boot}:{pythonpath}" if pythonpath else boot, "PYTHONHASHSEED": "0",
           "SLIMBUILD_TRACE_DIR": f"{_TRACE_ROOT}/out", "SLIMBUILD_TRACE_BOOT": boot}
    run = engine.run(image_id, argv, user=f"{uid}:{uid}", timeout=_RUN_TIMEOUT, read_only=False, env=env,
                     files=_hook_tar(uid), collect=f"{_TRACE_ROOT}/out")
    if run.exit_code != 0:
        tail = " | ".join(run.output.strip().splitlines()[-8:])
        raise BuildFailed(f"--trace-in-image: '{' '.join(argv)}' failed under the trace (exit {run.exit_code}): {tail}",
                          hint="no tag was applied; run the smoke command without --trace-in-image to compare")
    return runtime.from_processes(_read_records(run.collected), "/app", argv, None)


def _listing(engine: Engine, image_id: str, uid: int) -> Mapping[str, int]:
    run = engine.run(image_id, (VENV_PYTHON, "-c", _LISTING), user=f"{uid}:{uid}", timeout=_RUN_TIMEOUT)
    line = next((ln for ln in run.output.splitlines() if ln.startswith("@@SLIMBUILD-LISTING@@")), "")
    if run.exit_code != 0 or not line:
        raise BuildFailed("--trace-in-image: cannot list the image's installed files", hint="no tag was applied")
    doc = json.loads(line.split("@@", 2)[2])
    return {str(k): int(v) for k, v in doc.items()}


def used_files(trace: Trace, installed: Mapping[str, int]) -> set[str]:
    """The installed files (site-packages paths) a trace opened, mapped or imported, with the imported modules'
    bytecode (read in place of their source)."""
    used = {p for p in trace.installed if p in installed}
    for m in trace.modules:
        rel = (m.file or "")[len(SITE):] if (m.file or "").startswith(SITE) else ""
        if not rel or rel.endswith("/"):
            continue
        used.add(rel)
        folder, name = posixpath.split(rel)
        stem = name.split(".")[0]
        prefix = posixpath.join(folder, "__pycache__", stem + ".")
        used.update(p for p in installed if p.startswith(prefix) and p.endswith(".pyc"))
    return used & set(installed)


def trace_in_image(engine: Engine, image_id: str, commands: Sequence[Sequence[str]], uid: int) -> dict[str, Any]:
    """The manifest's ``trace_in_image`` record of the smoke commands traced in the image."""
    traces = [_traced_run(engine, image_id, argv, uid) for argv in commands]
    installed = _listing(engine, image_id, uid)
    used: set[str] = set()
    for t in traces:
        used |= used_files(t, installed)
    opened_bytes = sum(installed[p] for p in used)
    return {
        "commands": [list(c) for c in commands],
        "installed_bytes": sum(installed.values()),
        "installed_files": len(installed),
        "never_opened_bytes": sum(installed.values()) - opened_bytes,
        "never_opened_files": len(installed) - len(used),
        "opened": sorted(used),
        "opened_bytes": opened_bytes,
    }
