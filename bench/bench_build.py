#!/usr/bin/env python3
"""Benchmark ``slimbuild build`` against the naive image on ``examples/kitchen-sink``.

Run from the repository root (the engine must be up: ``bash scripts/docker-up.sh``):

    python3 bench/bench_build.py [--rebuild-runs N] [--startup-runs 5] [--out bench/results/build.json]
                                 [--md bench/results/build.md] [--keep-images]

Side by side, in one run (see the ``## build`` section of bench/README.md):

* slim  = ``python3 -m slimbuild build PROJECT --base-image BASE --json`` (PYTHONPATH=<repo>,
  SLIMBUILD_CACHE=~/.cache/slimbuild-test-cache unless set), on a temp copy of the example;
* naive = the image users build today: same base, ONE stage, the project copied to /app, then EVERY declared
  requirement installed offline from a host wheelhouse (``pip download --only-binary :all:``) by pip run from
  its own wheel into a ``venv --without-pip``, with pip's defaults (compiles .pyc, keeps tests); built with
  ``DOCKER_BUILDKIT=0 docker build --network none``.

Measured: (1) bytes added over the base, (2) added bytes vs the bytes of the files the analysis opens or maps
when it runs (audit hook + /proc/self/maps inside the slim image: --network none, --read-only, uid 10001),
(3) rebuild after a one-line change to train.py, (4) cold build, (5) start-up (docker run end to end, and
inside the container from interpreter start to train.py's first statement / to main()), (6) --no-pyc.

The slim builds run ``slimbuild.cli.main`` through a thin in-process wrapper (``--_timed-slimbuild``, same
interpreter, same code path as ``python3 -m slimbuild``) that timestamps ``DockerEngine.build`` (the pure
engine build, context upload included), ``DockerEngine.run`` (the smoke run) and the engine's build log lines;
every build's cached steps are parsed from the engine log (a cold build is valid only when no COPY/RUN step
was cached). Needs the ``docker`` CLI and the ``docker`` Python SDK; product code is not changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
EXAMPLE = REPO / "examples" / "kitchen-sink"
BASE = os.environ.get("SLIMBUILD_BENCH_BASE", "slimbuild-test/debian-python:bookworm")
BENCH_CACHE = Path(os.environ.get("SLIMBUILD_BENCH_CACHE", Path.home() / ".cache" / "slimbuild-bench"))
# The image's Python (bookworm: 3.11.2) is older than the host's: the wheelhouse is fetched for the image's
# version, glibc and ABI, or pip would pick wheels whose Requires-Python excludes it (soupsieve needs >= 3.11.5).
TARGET_PY = os.environ.get("SLIMBUILD_BENCH_TARGET_PY", "3.11.2")
WHEELHOUSE = BENCH_CACHE / f"build-wheels-cp{TARGET_PY.replace('.', '')}"
SB_CACHE = os.environ.get("SLIMBUILD_CACHE", str(Path.home() / ".cache" / "slimbuild-test-cache"))
NAIVE_REPO = "slimbuild-bench/naive-kitchen-sink"
PROJECT_NAME = "bench-kitchen-sink"  # the slim image repository is slimbuild/<project dir name>

GOALS = {"default_prune": 1.2, "added": 0.08, "accessed": 1.3, "rebuild": 0.05, "cold": 0.2, "startup": 1.0}

NAIVE_DOCKERFILE = """\
# The naive image: one stage, the whole project, EVERY declared requirement, pip's defaults.
FROM {base}
# Stand-in for the package index (the hermetic wheelhouse); this layer is left out of the naive "added bytes".
COPY wheels/ /wheels/
# = the usual `COPY . /app` from the project root.
COPY app/ /app/
WORKDIR /app
RUN python3 -m venv --without-pip /opt/venv && \\
    /opt/venv/bin/python /wheels/{pip_wheel}/pip install --no-index --find-links /wheels -r requirements.txt
ENV PATH=/opt/venv/bin:$PATH
CMD ["/opt/venv/bin/python", "/app/train.py"]
"""

# Runs inside the slim image: which files does the analysis open (audit hook) or map (.so, /proc/self/maps)?
AUDIT_SCRIPT = r"""
import json, os, runpy, stat, sys
opened = set()
def _hook(event, args):
    if event == "open" and args and not isinstance(args[0], int):
        try:
            p = os.fsdecode(os.fspath(args[0]))
        except Exception:
            return
        opened.add(p if os.path.isabs(p) else os.path.join(os.getcwd(), p))
sys.addaudithook(_hook)

def _report(code):
    with open("/proc/self/maps") as fh:
        mapped = {parts[5].strip() for parts in (line.split(None, 5) for line in fh) if len(parts) == 6}
    roots = ("/opt/venv/", "/app/")
    def regular(paths):
        out = {}
        for p in paths:
            r = os.path.realpath(p)
            if not r.startswith(roots):
                continue
            try:
                st = os.stat(r)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out[r] = st.st_size
        return out
    o, m = regular(opened), regular(mapped)
    accessed = dict(o); accessed.update(m)
    shipped = {}
    for top in ("/opt/venv", "/app"):
        for d, _, files in os.walk(top):
            for f in files:
                p = os.path.join(d, f)
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode):
                    shipped[p] = st.st_size
    sp = [p for p in shipped if "/site-packages/" in p]
    def group(p):
        if p.startswith("/app/"):
            return "/app"
        if "/site-packages/" in p:
            return p.split("/site-packages/", 1)[1].split("/", 1)[0]
        return "/opt/venv (other)"
    def kind(p):
        for suf in (".pyc", ".py", ".so"):
            if p.endswith(suf) or (suf == ".so" and ".so." in os.path.basename(p)):
                return suf
        return "other"
    un_by_group, un_by_kind, acc_by_kind = {}, {}, {}
    for p, s in shipped.items():
        if p in accessed:
            acc_by_kind[kind(p)] = acc_by_kind.get(kind(p), 0) + s
        else:
            un_by_group[group(p)] = un_by_group.get(group(p), 0) + s
            un_by_kind[kind(p)] = un_by_kind.get(kind(p), 0) + s
    print("@@AUDIT@@" + json.dumps({
        "exit_code": code,
        "opened_files": len(o), "opened_bytes": sum(o.values()),
        "mapped_files": len(m), "mapped_bytes": sum(m.values()),
        "accessed_files": len(accessed), "accessed_bytes": sum(accessed.values()),
        "accessed_by_kind": acc_by_kind,
        "shipped_files": len(shipped), "shipped_bytes": sum(shipped.values()),
        "unaccessed_by_kind": un_by_kind,
        "unaccessed_top": sorted(un_by_group.items(), key=lambda kv: -kv[1])[:12],
        "accessed_largest": sorted(accessed.items(), key=lambda kv: -kv[1])[:12],
        "mapped_so": sorted(m),
    }), flush=True)

script = sys.argv[1] if len(sys.argv) > 1 else "/app/train.py"  # the image's entrypoint script
sys.argv = [script]
sys.path[0] = os.path.dirname(script)
code = 0
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as exc:
    code = exc.code
_report(code)
sys.exit(code)
"""

# Runs inside any of the images, exec'd by /bin/sh right after `date +%s%N` (the process start).
STARTUP_SCRIPT = r"""
import time
t_first = time.time_ns()
import builtins, contextlib, io, json, sys
t_start = int(sys.argv[1])
sys.argv = ["/app/train.py"]
sys.path[0] = "/app"
with open("/app/train.py", "rb") as fh:
    code = compile(fh.read(), "/app/train.py", "exec")
g = {"__name__": "__bench__", "__file__": "/app/train.py", "__builtins__": builtins}
t_stmt = time.time_ns()
exec(code, g)
t_main = time.time_ns()
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    rc = g["main"]()
t_end = time.time_ns()
print("@@T@@" + json.dumps({"interp_s": (t_first - t_start) / 1e9, "first_stmt_s": (t_stmt - t_start) / 1e9,
      "main_s": (t_main - t_start) / 1e9, "done_s": (t_end - t_start) / 1e9, "rc": rc, "out": buf.getvalue().strip()}))
"""
STARTUP_SH = 'S=$(date +%s%N); exec /opt/venv/bin/python -c "$1" "$S"'


def log(msg: str) -> None:
    print(f"[bench_build {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env_for_tools() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["SLIMBUILD_CACHE"] = SB_CACHE
    env["DOCKER_BUILDKIT"] = "0"
    return env


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 3600) -> dict[str, Any]:
    t0 = time.time()
    p0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return {
        "cmd": cmd,
        "wall_s": round(time.perf_counter() - p0, 3),
        "t0": t0,
        "t1": time.time(),
        "rc": proc.returncode,
        "stdout": proc.stdout,
        "stderr": proc.stderr,
    }


def settle(limit_s: float = 120.0, quiet_bytes: int = 64 << 20) -> float:
    """Flush the page cache's dirty data before a timed build; seconds waited (outside every timing).

    The naive build writes about 3.5 GB. Without this, the kernel writes it back during whichever build runs
    next, and the engine's layer commits wait for it: that build pays for the previous one's I/O.
    """
    t0 = time.perf_counter()
    os.sync()
    while time.perf_counter() - t0 < limit_s:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        pending = sum(int(meminfo.get(k, "0 kB").split()[0]) * 1024 for k in ("Dirty", "Writeback"))
        if pending < quiet_bytes:
            break
        time.sleep(0.2)
    return round(time.perf_counter() - t0, 3)


def med(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def ratio(a: float | None, b: float | None, nd: int = 3) -> float | None:
    return round(a / b, nd) if a is not None and b else None


# --------------------------------------------------------------------------- the in-process slimbuild wrapper


def timed_slimbuild(out: str, args: list[str], nocache: bool) -> int:
    """``python3 -m slimbuild ARGS``, with DockerEngine.build/run timestamped (and nocache forced if asked)."""
    import slimbuild.image.engine as eng
    import slimbuild.pipeline.imaging as building
    from slimbuild import cli

    rec: dict[str, Any] = {"start": time.time(), "events": [], "builds": [], "runs": [], "normalize": [], "context_first": None}
    orig_build, orig_run = eng.DockerEngine.build, eng.DockerEngine.run
    orig_normalize = building.normalize_image

    def normalize(*a: Any, **kw: Any) -> Any:
        t = time.time()
        try:
            return orig_normalize(*a, **kw)
        finally:
            rec["normalize"].append([t, time.time()])

    def build(self: Any, context: Any, **kw: Any) -> Any:
        forward = kw.get("on_progress")

        def tee(ev: Any) -> None:
            if ev.kind == "context":
                rec["context_first"] = rec["context_first"] or time.time()
                rec["context_last"] = time.time()
            else:
                rec["events"].append([time.time(), ev.kind, ev.message])
            if forward is not None:
                forward(ev)

        kw["on_progress"] = tee
        if nocache:
            kw["nocache"] = True
        t = time.time()
        try:
            return orig_build(self, context, **kw)
        finally:
            rec["builds"].append([t, time.time()])

    def run_(self: Any, *a: Any, **kw: Any) -> Any:
        t = time.time()
        try:
            return orig_run(self, *a, **kw)
        finally:
            rec["runs"].append([t, time.time()])

    eng.DockerEngine.build = build  # type: ignore[method-assign]
    eng.DockerEngine.run = run_  # type: ignore[method-assign]
    building.normalize_image = normalize  # type: ignore[assignment]
    rc = 70
    try:
        rc = cli.main(args)
    finally:
        rec["end"] = time.time()
        rec["rc"] = rc
        Path(out).write_text(json.dumps(rec))
    return rc


# --------------------------------------------------------------------------- docker helpers

ID_LINE = re.compile(r"^\s*--->\s+([0-9a-f]{12,64})\s*$")
STEP_LINE = re.compile(r"^Step (\d+)/(\d+) : (\S+)")


def parse_classic_log(lines: list[str]) -> dict[str, Any]:
    """Created image ids (never a FROM's or a cached step's), cache hits, steps, from classic build output."""
    created: list[str] = []
    cached_steps, steps = 0, 0
    instr, cached = "", False
    cached_instr: list[str] = []  # e.g. "4:COPY": steps the engine took from its cache
    for line in lines:
        s = line.rstrip()
        m = STEP_LINE.match(s.strip())
        if m:
            steps, instr, cached = steps + 1, m[3].upper(), False
            continue
        if "Using cache" in s:
            cached, cached_steps = True, cached_steps + 1
            cached_instr.append(f"{steps}:{instr}")
            continue
        m = ID_LINE.match(s)
        if m and instr != "FROM" and not cached:
            created.append(m[1])
    return {"steps": steps, "cached_steps": cached_steps, "cached_instr": cached_instr, "created_ids": created}


class Images:
    """Every image this run creates (final ids, tags, and the intermediates it created), for the cleanup."""

    def __init__(self, base_id: str) -> None:
        self.base_id = base_id
        self.tags: list[str] = []
        self.ids: list[str] = []

    def add(self, ids: list[str] = (), tags: list[str] = ()) -> None:  # type: ignore[assignment]
        self.ids.extend(i for i in ids if i and i not in self.ids)
        self.tags.extend(t for t in tags if t and t not in self.tags)

    def remove_all(self) -> dict[str, Any]:
        removed, kept = 0, []
        for ref in self.tags:
            subprocess.run(["docker", "rmi", ref], capture_output=True, text=True)
        for i in reversed(self.ids):
            if self.base_id.replace("sha256:", "").startswith(i.replace("sha256:", "")):
                continue
            p = subprocess.run(["docker", "rmi", i], capture_output=True, text=True)
            if p.returncode == 0:
                removed += 1
            elif "No such image" not in p.stderr:
                kept.append(f"{i}: {p.stderr.strip()[:160]}")
        self.tags, self.ids = [], [i for i in self.ids if any(k.startswith(i) for k in kept)]
        return {"removed_ids": removed, "not_removed": kept}


def docker_client() -> Any:
    import docker

    return docker.APIClient(version="auto", timeout=600)


def image_sizes(client: Any, ref: str, base_size: int) -> dict[str, Any]:
    info = client.inspect_image(ref)
    hist = client.history(ref)
    layers = [{"created_by": h.get("CreatedBy", "")[:140], "size": int(h.get("Size", 0))} for h in hist]
    return {"id": info["Id"], "size_bytes": int(info["Size"]), "added_bytes": int(info["Size"]) - base_size, "layers": layers}


# --------------------------------------------------------------------------- steps


def ensure_wheelhouse(env: dict[str, str]) -> dict[str, Any]:
    req = (EXAMPLE / "requirements.txt").read_bytes()
    marker = WHEELHOUSE / f".complete-{hashlib.sha256(req).hexdigest()[:16]}"
    info: dict[str, Any] = {"dir": str(WHEELHOUSE)}
    if not marker.exists():
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        log(f"downloading the full declared set's wheels into {WHEELHOUSE} (tensorflow is large)")
        r = run(
            [
                PY,
                "-m",
                "pip",
                "download",
                "--only-binary",
                ":all:",
                "--dest",
                str(WHEELHOUSE),
                "--python-version",
                TARGET_PY,
                "--implementation",
                "cp",
                "--abi",
                "cp311",
                *[a for v in range(36, 16, -1) for a in ("--platform", f"manylinux_2_{v}_x86_64")],
                "--platform",
                "manylinux2014_x86_64",
                "--platform",
                "manylinux2010_x86_64",
                "--platform",
                "manylinux1_x86_64",
                "-r",
                str(EXAMPLE / "requirements.txt"),
                "pip",
            ],
            env=env,
        )
        if r["rc"] != 0:
            sys.exit(f"pip download failed: {r['stderr'][-2000:]}")
        info["download_wall_s"] = r["wall_s"]
        marker.write_text("ok\n")
    else:
        info["download_wall_s"] = None  # cached
    wheels = sorted(p for p in WHEELHOUSE.glob("*.whl"))
    info["wheels"] = len(wheels)
    info["bytes"] = sum(p.stat().st_size for p in wheels)
    info["pip_wheel"] = [p.name for p in wheels if p.name.startswith("pip-")]
    if len(info["pip_wheel"]) != 1:
        sys.exit(f"need exactly one pip wheel in {WHEELHOUSE}, found {info['pip_wheel']}")
    return info


def wheel_versions() -> dict[str, str]:
    out = {}
    for p in WHEELHOUSE.glob("*.whl"):
        name, ver = p.name.split("-")[:2]
        out[re.sub(r"[-_.]+", "-", name).lower()] = ver
    return out


def prepare(work: Path) -> dict[str, Path]:
    ignore = shutil.ignore_patterns("slimbuild.lock", "slimbuild*.json", "__pycache__", ".slimbuild*")
    slim = work / "slim" / PROJECT_NAME
    nopyc = work / "nopyc" / PROJECT_NAME
    naive = work / "naive"
    shutil.copytree(EXAMPLE, slim, ignore=ignore)
    shutil.copytree(EXAMPLE, nopyc, ignore=ignore)
    shutil.copytree(EXAMPLE, naive / "app", ignore=ignore)
    (naive / "wheels").mkdir()
    for whl in WHEELHOUSE.glob("*.whl"):
        try:
            os.link(whl, naive / "wheels" / whl.name)
        except OSError:
            shutil.copy2(whl, naive / "wheels" / whl.name)
    pip_wheel = next(WHEELHOUSE.glob("pip-*.whl")).name
    (naive / "Dockerfile").write_text(NAIVE_DOCKERFILE.format(base=BASE, pip_wheel=pip_wheel))
    return {"slim": slim, "nopyc": nopyc, "naive": naive}


def slim_build(
    env: dict[str, str], project: Path, work: Path, label: str, *, nocache: bool = False, extra: list[str] = ()
) -> dict[str, Any]:  # type: ignore[assignment]
    rec_path = work / f"timing-{label}.json"
    args = ["build", str(project), "--base-image", BASE, "--json", *extra]
    cmd = [PY, str(Path(__file__).resolve()), "--_timed-slimbuild", str(rec_path)]
    cmd += ["--nocache"] if nocache else []
    settled = settle()
    r = run([*cmd, "--", *args], env=env)
    out: dict[str, Any] = {
        "label": label,
        "settle_s": settled,
        "command": f"SLIMBUILD_CACHE={SB_CACHE} PYTHONPATH={REPO} python3 -m slimbuild " + " ".join(args),
        "wall_s": r["wall_s"],
        "rc": r["rc"],
        "nocache_forced": nocache,
    }
    if r["rc"] != 0:
        out["stderr_tail"] = r["stderr"][-3000:]
        log(f"slimbuild build {label} failed rc={r['rc']}: {r['stderr'][-1500:]}")
        return out
    doc = json.loads(r["stdout"])["images"][0]
    out.update({k: doc[k] for k in ("image_id", "tags", "size_bytes", "added_bytes", "warnings")})
    rec = json.loads(rec_path.read_text())
    lines = [m for _, kind, m in rec["events"] if kind in ("step", "log")]
    parsed = parse_classic_log(lines)
    # `slimbuild build` makes the deps image (when the engine has none for this lock) and then the app on it:
    # the engine part runs from the first build's start to the last one's end
    b0, b1 = rec["builds"][0][0], rec["builds"][-1][1]
    runs = rec["runs"]
    out.update(
        {
            "engine_build_s": round(b1 - b0, 3),  # DockerEngine.build calls: context upload + engine build
            "engine_builds": len(rec["builds"]),
            "before_engine_s": round(b0 - r["t0"], 3),  # process start, analysis, lock check, render, context tar
            "smoke_run_s": round(sum(e - s for s, e in runs), 3),
            # the config rewritten to SOURCE_DATE_EPOCH and loaded back (issue 14), part of after_engine_s
            "normalize_s": round(sum(e - s for s, e in rec.get("normalize", [])), 3),
            "after_engine_s": round(r["t1"] - b1, 3),  # smoke run, inspect, tag, manifest, exit
            "context_upload_s": round(rec["context_last"] - rec["context_first"], 3) if rec.get("context_first") else None,
            "steps": parsed["steps"],
            "cached_steps": parsed["cached_steps"],
            "cached_instr": parsed["cached_instr"],
            "created_ids": parsed["created_ids"],
        }
    )
    return out


def naive_build(env: dict[str, str], ctx: Path, tag: str, *, nocache: bool = False) -> dict[str, Any]:
    cmd = ["docker", "build", "--network", "none", "-t", tag, str(ctx)]
    if nocache:
        cmd.insert(2, "--no-cache")
    settled = settle()
    r = run(cmd, env=env)
    parsed = parse_classic_log(r["stdout"].splitlines())
    out = {
        "command": "DOCKER_BUILDKIT=0 " + " ".join(cmd),
        "wall_s": r["wall_s"],
        "rc": r["rc"],
        "tag": tag,
        "settle_s": settled,
        **parsed,
    }
    if r["rc"] != 0:
        out["stderr_tail"] = (r["stdout"] + r["stderr"])[-3000:]
        log(f"naive build failed: {out['stderr_tail']}")
    return out


def edit_train(path: Path, digits: int) -> str:
    """The one-line change: the score's printed precision (a real statement, so the analysis re-traces it)."""
    text = path.read_text()
    new = re.sub(r"r2=\{score:\.\d+f\}", f"r2={{score:.{digits}f}}", text, count=1)
    assert new != text, "train.py print line not found"
    path.write_text(new)
    return f"r2={{score:.{digits}f}}"


def audit(image: str, hardened: bool = True, script: str = "/app/train.py") -> dict[str, Any]:
    flags = ["--network", "none"]
    if hardened:
        flags += ["--read-only", "--tmpfs", "/tmp", "--user", "10001:10001"]
    cmd = ["docker", "run", "--rm", *flags, "--entrypoint", "/opt/venv/bin/python", image, "-c", AUDIT_SCRIPT, script]
    r = run(cmd)
    for line in r["stdout"].splitlines():
        if line.startswith("@@AUDIT@@"):
            doc = json.loads(line[len("@@AUDIT@@") :])
            doc["train_output"] = [x for x in r["stdout"].splitlines() if not x.startswith("@@")]
            doc["command"] = " ".join(cmd[:-2]) + f' "<AUDIT_SCRIPT>" {script}'
            return doc
    return {"error": (r["stdout"] + r["stderr"])[-2000:], "rc": r["rc"]}


def startup(images: dict[str, str], runs: int) -> dict[str, Any]:
    """Interleaved: docker run end to end, then in-container timestamps, `runs` times each."""
    res: dict[str, Any] = {k: {"e2e": [], "inner": [], "e2e_rc": []} for k in images}
    for i in range(runs):
        for name, ref in images.items():
            r = run(["docker", "run", "--rm", "--network", "none", ref])
            res[name]["e2e"].append(r["wall_s"])
            res[name]["e2e_rc"].append(r["rc"])
            if i == 0:
                res[name]["e2e_output"] = (r["stdout"] + r["stderr"]).strip()[-300:]
        for name, ref in images.items():
            r = run(
                [
                    "docker",
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "--entrypoint",
                    "/bin/sh",
                    ref,
                    "-c",
                    STARTUP_SH,
                    "sh",
                    STARTUP_SCRIPT,
                ]
            )
            for line in r["stdout"].splitlines():
                if line.startswith("@@T@@"):
                    res[name]["inner"].append(json.loads(line[5:]))
                    break
            else:
                res[name].setdefault("inner_errors", []).append((r["stdout"] + r["stderr"])[-500:])
    summary: dict[str, Any] = {}
    for name, d in res.items():
        inner = d["inner"]
        summary[name] = {
            "e2e_median_s": med(d["e2e"]),
            "e2e_s": d["e2e"],
            "e2e_rc": d["e2e_rc"],
            "e2e_output": d.get("e2e_output"),
            "interp_median_s": med([x["interp_s"] for x in inner]),
            "first_stmt_median_s": med([x["first_stmt_s"] for x in inner]),
            "first_stmt_s": [round(x["first_stmt_s"], 3) for x in inner],
            "main_median_s": med([x["main_s"] for x in inner]),
            "main_s": [round(x["main_s"], 3) for x in inner],
            "done_median_s": med([x["done_s"] for x in inner]),
            "inner_output": inner[0]["out"] if inner else None,
            "inner_errors": d.get("inner_errors", []),
        }
    return summary


def count_dists(image: str) -> int | None:
    r = run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "/bin/sh",
            image,
            "-c",
            "ls -d /opt/venv/lib/python3*/site-packages/*.dist-info | wc -l",
        ]
    )
    try:
        return int(r["stdout"].strip())
    except ValueError:
        return None


# --------------------------------------------------------------------------- --only size


SIZE_EXAMPLES = ("kitchen-sink", "notebook")


def entry_script(client: Any, image: str) -> str:
    """The Python file the image's entrypoint runs (``/app/train.py``; a notebook's generated script)."""
    config = client.inspect_image(image)["Config"]
    argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    return next((a for a in argv if a.endswith(".py")), "/app/train.py")


def size_only(env: dict[str, str], client: Any, base_size: int, images: Images) -> dict[str, Any]:
    """Row 2 alone, for each example: one default build (no builder prune, the engine's cache as it is: the
    smoke run is the build's), its bytes added over the base, and the read-only audit run of its entrypoint."""
    out: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="bench-size-"))
    ignore = shutil.ignore_patterns("slimbuild.lock", "slimbuild*.json", "__pycache__", ".slimbuild*")
    try:
        for name in SIZE_EXAMPLES:
            project = work / f"bench-{name}"
            shutil.copytree(REPO / "examples" / name, project, ignore=ignore)
            lk = run([PY, "-m", "slimbuild", "lock", str(project), "--json"], env=env)
            if lk["rc"] != 0:
                out[name] = {"error": "lock failed", "stderr_tail": lk["stderr"][-2000:]}
                continue
            log(f"size: {name}: slimbuild build")
            b = slim_build(env, project, work, f"size-{name}")
            images.add(b.get("created_ids", []), b.get("tags", []))
            if b["rc"] != 0:
                out[name] = {"error": "build failed", "stderr_tail": b.get("stderr_tail")}
                continue
            sizes = image_sizes(client, b["image_id"], base_size)
            script = entry_script(client, b["image_id"])
            log(f"size: {name}: audit run of {script}")
            a = audit(b["image_id"], script=script)
            out[name] = {
                "command": b["command"],
                "added_bytes": sizes["added_bytes"],
                "accessed_bytes": a.get("accessed_bytes"),
                "ratio": ratio(sizes["added_bytes"], a.get("accessed_bytes"), 3),
                "audit_exit_code": a.get("exit_code", a.get("rc")),
                "audit": a,
                "build": {k: b.get(k) for k in ("wall_s", "image_id", "warnings")},
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def size_markdown(res: dict[str, Any]) -> str:
    lines = [
        f"### build size benchmark ({res['meta']['date']}, base `{BASE}`): `{res['meta']['command']}`",
        "",
        "| example | bytes added over the base | bytes the run opens or maps | ratio | goal | audit exit |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in res["size"].items():
        if "error" in r:
            lines.append(f"| {name} | {r['error']} | | | | |")
            continue
        lines.append(
            f"| {name} | {fmt_mb(r['added_bytes'])} | {fmt_mb(r['accessed_bytes'])} | {r['ratio']}x | <= {GOALS['default_prune']}x "
            f"({verdict(r['ratio'], GOALS['default_prune'])}) | {r['audit_exit_code']} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- report


def fmt_mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.1f} MB"


def verdict(value: float | None, goal: float) -> str:
    if value is None:
        return "n/a"
    return "met" if value <= goal else "**missed**"


def markdown(res: dict[str, Any]) -> str:
    s, n, a = res["sizes"]["slim"], res["sizes"]["naive"], res["audit_slim"]
    rb, cold, st = res["rebuild"], res["cold"], res["startup"]
    np_ = res["sizes"].get("slim_nopyc") or {}
    r = res["ratios"]
    lines = [
        f"### build benchmark ({res['meta']['date']}, {res['meta']['cpus']} CPUs, engine {res['meta']['engine']}, base `{BASE}`)",
        "",
        f"`{res['meta']['command']}` (total {res['meta']['total_s']:.0f} s)",
        "",
        "| # | measure | slim | naive | ratio slim/naive | goal | |",
        "|---|---|---:|---:|---:|---:|---|",
        f"| 1 | bytes added over the base | {fmt_mb(s['added_bytes'])} | {fmt_mb(n['added_bytes_excl_wheelhouse'])} | {r['added']} | <= {GOALS['added']} | {verdict(r['added'], GOALS['added'])} |",
        f"| 2 | added bytes / bytes the analysis opens or maps (slim image) | {fmt_mb(s['added_bytes'])} / {fmt_mb(a.get('accessed_bytes'))} | {fmt_mb(n['added_bytes_excl_wheelhouse'])} / {fmt_mb(res.get('audit_naive', {}).get('accessed_bytes'))} | {r['accessed']}x (naive {r.get('accessed_naive')}x) | <= {GOALS['accessed']}x | {verdict(r['accessed'], GOALS['accessed'])} |",
        f"| 3 | rebuild after a one-line train.py change, wall s (median of {len(rb['slim'])}) | {rb['slim_median_s']} | {rb['naive_median_s']} | {r['rebuild']} | <= {GOALS['rebuild']} | {verdict(r['rebuild'], GOALS['rebuild'])} |",
        f"| 3b | same, slim pure engine build (DockerEngine.build) vs naive docker build | {rb['slim_engine_median_s']} | {rb['naive_median_s']} | {r['rebuild_engine']} | <= {GOALS['rebuild']} | {verdict(r['rebuild_engine'], GOALS['rebuild'])} |",
        f"| 4 | cold build (no engine cache; wheels cached on the host), wall s (median of {len(cold['pairs'])}; per pair {[p['ratio'] for p in cold['pairs']]}) | {cold['slim_median_s']} | {cold['naive_median_s']} | {r['cold']} | <= {GOALS['cold']} | {verdict(r['cold'], GOALS['cold'])} |",
        f"| 4b | same, slim pure engine build | {cold['slim_engine_median_s']} | {cold['naive_median_s']} | {r['cold_engine']} | <= {GOALS['cold']} | {verdict(r['cold_engine'], GOALS['cold'])} |",
        f"| 5 | start-up: `docker run --rm --network none IMAGE` end to end, median of {len(st['slim']['e2e_s'])} s | {st['slim']['e2e_median_s']} | {st['naive']['e2e_median_s']} | {r['startup_e2e']} | <= {GOALS['startup']} | {verdict(r['startup_e2e'], GOALS['startup'])} |",
        f"| 5b | start-up inside: interpreter start to train.py's first statement, median s | {st['slim']['first_stmt_median_s']} | {st['naive']['first_stmt_median_s']} | {r['startup_first_stmt']} | <= {GOALS['startup']} | {verdict(r['startup_first_stmt'], GOALS['startup'])} |",
        f"| 5c | start-up inside: interpreter start to main()'s first line (train.py's imports done), median s | {st['slim']['main_median_s']} | {st['naive']['main_median_s']} | {r['startup_main']} | <= {GOALS['startup']} | {verdict(r['startup_main'], GOALS['startup'])} |",
        "",
        "| 6: pyc trade-off (slim) | default (`--pyc`) | `--no-pyc` | no-pyc/pyc |",
        "|---|---:|---:|---:|",
        f"| bytes added over the base | {fmt_mb(s['added_bytes'])} | {fmt_mb(np_.get('added_bytes'))} | {ratio(np_.get('added_bytes'), s['added_bytes'])} |",
        f"| image size | {fmt_mb(s['size_bytes'])} | {fmt_mb(np_.get('size_bytes'))} | {ratio(np_.get('size_bytes'), s['size_bytes'])} |",
        f"| docker run end to end, median s | {st['slim']['e2e_median_s']} | {st.get('slim_nopyc', {}).get('e2e_median_s')} | {ratio(st.get('slim_nopyc', {}).get('e2e_median_s'), st['slim']['e2e_median_s'])} |",
        f"| interpreter start to main()'s first line, median s | {st['slim']['main_median_s']} | {st.get('slim_nopyc', {}).get('main_median_s')} | {ratio(st.get('slim_nopyc', {}).get('main_median_s'), st['slim']['main_median_s'])} |",
        f"| build wall s (engine cache warm for the wheels layer) | - | {res.get('nopyc_build', {}).get('wall_s')} | |",
        "",
        f"Sizes: slim image {fmt_mb(s['size_bytes'])} ({res['dists']['slim']} distributions), naive image {fmt_mb(n['size_bytes'])} "
        f"({res['dists']['naive']} distributions) of which {fmt_mb(n['wheelhouse_layer_bytes'])} is the wheelhouse layer "
        f"(left out: naive added {fmt_mb(n['added_bytes_excl_wheelhouse'])}, raw {fmt_mb(n['added_bytes'])}); base {fmt_mb(res['sizes']['base_size_bytes'])}.",
        f"Audit (slim, read-only, uid 10001, no network): {a.get('accessed_files')} files accessed under /opt/venv and /app "
        f"({a.get('opened_files')} opened, {fmt_mb(a.get('opened_bytes'))}; {a.get('mapped_files')} mapped, {fmt_mb(a.get('mapped_bytes'))}); "
        f"{fmt_mb(a.get('shipped_bytes'))} of regular files shipped there.",
        f"Rebuild phases (slim, median): before the engine {rb['slim_before_engine_median_s']} s (process start, analysis, lock check, "
        f"context), engine {rb['slim_engine_median_s']} s, after {rb['slim_after_engine_median_s']} s (smoke run {rb['slim_smoke_median_s']} s, tag, manifest); "
        f"cached steps slim {[x.get('cached_instr') for x in rb['slim']]}, naive {[x.get('cached_instr') for x in rb['naive']]}.",
        f"Cold: steps from the engine cache slim {cold['slim'].get('cached_instr')}, naive {cold['naive'].get('cached_instr')} (no COPY/RUN allowed); slim phases: before the engine "
        f"{cold['slim'].get('before_engine_s')} s, engine {cold['slim'].get('engine_build_s')} s, after {cold['slim'].get('after_engine_s')} s.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _main_size(opts: argparse.Namespace) -> int:
    env = env_for_tools()
    client = docker_client()
    base_info = client.inspect_image(BASE)
    images = Images(base_info["Id"])
    res: dict[str, Any] = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python3 bench/bench_build.py " + " ".join(sys.argv[1:]),
            "base": BASE,
            "base_id": base_info["Id"],
            "slimbuild_cache": SB_CACHE,
        }
    }
    try:
        res["size"] = size_only(env, client, int(base_info["Size"]), images)
    finally:
        if not opts.keep_images:
            res["cleanup"] = images.remove_all()
    default_out = str(REPO / "bench" / "results" / "build.json")
    out = Path(opts.out if opts.out != default_out else REPO / "bench" / "results" / "build-size.json")
    md_path = Path(opts.md if opts.md != str(REPO / "bench" / "results" / "build.md") else out.with_suffix(".md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    md = size_markdown(res)
    md_path.write_text(md)
    print(md)
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--_timed-slimbuild":
        rest = sys.argv[2:]
        out = rest.pop(0)
        nocache = bool(rest) and rest[0] == "--nocache"
        if nocache:
            rest.pop(0)
        assert rest and rest[0] == "--"
        return timed_slimbuild(out, rest[1:], nocache)

    missing = [m for m in ("docker", "jinja2", "stdlib_list", "packaging", "click") if not _importable(m)]
    if missing:
        print(
            f"bench_build: this interpreter ({PY}) lacks slimbuild's dependencies ({', '.join(missing)}); "
            "run it with the project's venv (python3 -m venv .venv && .venv/bin/pip install -e '.[test]'): .venv/bin/python bench/bench_build.py",
            file=sys.stderr,
        )
        return 2
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rebuild-runs", type=int, default=int(os.environ.get("BENCH_RUNS", "1")))
    ap.add_argument("--startup-runs", type=int, default=5)
    ap.add_argument("--cold-runs", type=int, default=1, help="cold pairs (naive and slim, alternating order); median")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "build.json"))
    ap.add_argument("--md", default=str(REPO / "bench" / "results" / "build.md"))
    ap.add_argument("--keep-images", action="store_true", help="do not remove the images this run created")
    ap.add_argument(
        "--only", choices=("size",),
        help="size: only row 2 (added bytes / bytes opened or mapped) for kitchen-sink and notebook; no naive build, "
        "no builder prune (writes bench/results/build-size.json and .md unless --out/--md)",
    )
    opts = ap.parse_args()
    if opts.only == "size":
        return _main_size(opts)

    t_all = time.perf_counter()
    env = env_for_tools()
    df = subprocess.run(["df", "-h", "/"], capture_output=True, text=True).stdout
    free = shutil.disk_usage("/").free
    log(f"disk: {free / 1e9:.1f} GB free on /")
    if free < 20e9:
        sys.exit("need > 20 GB free on / (tensorflow wheels + naive images)")
    ver = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
    if ver.returncode != 0:
        sys.exit("docker engine not answering: run `bash scripts/docker-up.sh`")
    client = docker_client()
    base_info = client.inspect_image(BASE)
    base_size = int(base_info["Size"])
    images = Images(base_info["Id"])

    res: dict[str, Any] = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python3 bench/bench_build.py " + " ".join(sys.argv[1:]),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "engine": ver.stdout.strip(),
            "storage_driver": client.info().get("Driver"),
            "base": BASE,
            "base_id": base_info["Id"],
            "slimbuild_cache": SB_CACHE,
            "df": df,
            "loadavg_start": os.getloadavg(),
        }
    }
    res["wheelhouse"] = ensure_wheelhouse(env)
    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    log(f"work dir {work}")
    try:
        paths = prepare(
            work,
        )
        # The lock is part of the project (committed in real life): make it once, outside every timing.
        lk = run([PY, "-m", "slimbuild", "lock", str(paths["slim"]), "--json"], env=env)
        res["lock"] = {"wall_s": lk["wall_s"], "rc": lk["rc"]}
        if lk["rc"] != 0:
            sys.exit(f"slimbuild lock failed: {lk['stderr'][-2000:]}")
        shutil.copy2(paths["slim"] / "slimbuild.lock", paths["nopyc"] / "slimbuild.lock")
        locked = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", (paths["slim"] / "slimbuild.lock").read_text(), re.M))
        wv = wheel_versions()
        res["versions"] = {
            k: {"slim_lock": v, "naive_wheelhouse": wv.get(re.sub(r"[-_.]+", "-", k).lower())} for k, v in locked.items()
        }

        # ---- 4. cold: no image of ours in the engine, builder cache pruned. No --no-cache: a forced no-cache build
        # leaves duplicate SHELL/ARG siblings on the base, and the classic builder then follows the newest one
        # (the app stage's) in the next build, missing the builder stage. Instead the cached steps are listed
        # and a cold build is valid only if no COPY/RUN step came from the cache.
        # slimbuild records the deps image it built per lock (SLIMBUILD_CACHE/deps): a cold build must not find one.
        # Each pair starts from an engine holding only the base; pairs alternate which build goes first, and
        # every build starts after the previous one's writes are flushed (settle()). The last pair's images stay
        # for the measures below.
        pairs: list[dict[str, Any]] = []
        for i in range(opts.cold_runs):
            if i:
                res.setdefault("cold_cleanup", []).append(images.remove_all())
            shutil.rmtree(Path(SB_CACHE) / "deps", ignore_errors=True)
            log(f"cold {i + 1}: docker builder prune -af")
            prune = run(["docker", "builder", "prune", "-af"])
            res["cold_prune"] = prune["stdout"].strip().splitlines()[-1:] if prune["stdout"] else prune["stderr"][-200:]
            pair: dict[str, Any] = {"order": ["naive", "slim"] if i % 2 == 0 else ["slim", "naive"]}
            for which in pair["order"]:
                log(f"cold {i + 1}: {which} build")
                if which == "naive":
                    nc = naive_build(env, paths["naive"], f"{NAIVE_REPO}:cold")
                    images.add(nc["created_ids"], [nc["tag"]])
                    if nc["rc"] != 0:
                        sys.exit("naive cold build failed")
                    pair["naive"] = nc
                else:
                    sc = slim_build(env, paths["slim"], work, f"cold{i + 1}")
                    images.add(sc.get("created_ids", []), sc.get("tags", []))
                    if sc["rc"] != 0:
                        sys.exit("slim cold build failed")
                    pair["slim"] = sc
                log(f"cold {i + 1}: {which} {pair[which]['wall_s']} s")
            pair["ratio"] = ratio(pair["slim"]["wall_s"], pair["naive"]["wall_s"], 3)
            pairs.append(pair)
        res["cold"] = {
            "naive": nc,
            "slim": sc,
            "pairs": pairs,
            "slim_median_s": med([p["slim"]["wall_s"] for p in pairs]),
            "slim_engine_median_s": med([p["slim"]["engine_build_s"] for p in pairs]),
            "naive_median_s": med([p["naive"]["wall_s"] for p in pairs]),
        }
        slim_img, naive_img = sc["image_id"], f"{NAIVE_REPO}:cold"

        # ---- 1. sizes
        n_sz = image_sizes(client, naive_img, base_size)
        wh = [layer["size"] for layer in n_sz["layers"] if "COPY dir:" in layer["created_by"] and layer["size"] > 100e6]
        n_sz["wheelhouse_layer_bytes"] = wh[0] if wh else 0
        n_sz["added_bytes_excl_wheelhouse"] = n_sz["added_bytes"] - n_sz["wheelhouse_layer_bytes"]
        s_sz = image_sizes(client, slim_img, base_size)
        res["sizes"] = {"base_size_bytes": base_size, "slim": s_sz, "naive": n_sz}
        res["dists"] = {"slim": count_dists(slim_img), "naive": count_dists(naive_img)}

        # ---- 2. what the analysis opens / maps
        log("audit: slim (read-only, uid 10001, no network), then naive for reference")
        res["audit_slim"] = audit(slim_img)
        res["audit_naive"] = audit(naive_img)

        # ---- 3. rebuild after a one-line change
        rb: dict[str, Any] = {"slim": [], "naive": []}
        for i in range(opts.rebuild_runs):
            change = edit_train(paths["slim"] / "train.py", 4 + i)
            edit_train(paths["naive"] / "app" / "train.py", 4 + i)
            log(f"rebuild {i + 1}: {change}; slim")
            s = slim_build(env, paths["slim"], work, f"rebuild{i + 1}")
            images.add(s.get("created_ids", []), s.get("tags", []))
            s["change"] = change
            rb["slim"].append(s)
            log(f"rebuild {i + 1}: slim {s['wall_s']} s (engine {s.get('engine_build_s')} s); naive")
            nb = naive_build(env, paths["naive"], f"{NAIVE_REPO}:rebuild{i + 1}")
            images.add(nb["created_ids"], [nb["tag"]])
            nb["change"] = change
            rb["naive"].append(nb)
            log(f"rebuild {i + 1}: naive {nb['wall_s']} s")
        ok_s = [x for x in rb["slim"] if x["rc"] == 0]
        rb.update(
            {
                "slim_median_s": med([x["wall_s"] for x in ok_s]),
                "slim_engine_median_s": med([x["engine_build_s"] for x in ok_s]),
                "slim_before_engine_median_s": med([x["before_engine_s"] for x in ok_s]),
                "slim_after_engine_median_s": med([x["after_engine_s"] for x in ok_s]),
                "slim_smoke_median_s": med([x["smoke_run_s"] for x in ok_s]),
                "naive_median_s": med([x["wall_s"] for x in rb["naive"] if x["rc"] == 0]),
            }
        )
        res["rebuild"] = rb

        # ---- 6. --no-pyc
        log("no-pyc: slim build --no-pyc")
        npb = slim_build(env, paths["nopyc"], work, "nopyc", extra=["--no-pyc"])
        images.add(npb.get("created_ids", []), npb.get("tags", []))
        res["nopyc_build"] = npb
        run_images = {"slim": slim_img, "naive": naive_img}
        if npb["rc"] == 0:
            res["sizes"]["slim_nopyc"] = image_sizes(client, npb["image_id"], base_size)
            run_images["slim_nopyc"] = npb["image_id"]

        # ---- 5. start-up, interleaved
        log(f"start-up: {opts.startup_runs} rounds over {list(run_images)}")
        res["startup"] = startup(run_images, opts.startup_runs)

        st = res["startup"]
        res["ratios"] = {
            "added": ratio(s_sz["added_bytes"], n_sz["added_bytes_excl_wheelhouse"], 4),
            "added_raw_naive": ratio(s_sz["added_bytes"], n_sz["added_bytes"], 4),
            "accessed": ratio(s_sz["added_bytes"], res["audit_slim"].get("accessed_bytes"), 2),
            "accessed_naive": ratio(n_sz["added_bytes_excl_wheelhouse"], res["audit_naive"].get("accessed_bytes"), 2),
            "rebuild": ratio(rb["slim_median_s"], rb["naive_median_s"], 4),
            "rebuild_engine": ratio(rb["slim_engine_median_s"], rb["naive_median_s"], 4),
            "cold": ratio(res["cold"]["slim_median_s"], res["cold"]["naive_median_s"], 3),
            "cold_engine": ratio(res["cold"]["slim_engine_median_s"], res["cold"]["naive_median_s"], 3),
            "startup_e2e": ratio(st["slim"]["e2e_median_s"], st["naive"]["e2e_median_s"], 3),
            "startup_first_stmt": ratio(st["slim"]["first_stmt_median_s"], st["naive"]["first_stmt_median_s"], 3),
            "startup_main": ratio(st["slim"]["main_median_s"], st["naive"]["main_median_s"], 3),
        }
    finally:
        if not opts.keep_images:
            log("cleanup: removing the images this run created")
            res["cleanup"] = images.remove_all()
        else:
            res["kept_images"] = {"tags": images.tags, "ids": images.ids}
        shutil.rmtree(work, ignore_errors=True)
        res["meta"]["total_s"] = round(time.perf_counter() - t_all, 1)
        res["meta"]["loadavg_end"] = os.getloadavg()
        Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.out).write_text(json.dumps(res, indent=2, default=str) + "\n")
        log(f"wrote {opts.out}")
    md = markdown(res)
    Path(opts.md).write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
