#!/usr/bin/env python3
"""Benchmark ``slimbuild lock`` against pip-compile (and uv) on ``examples/kitchen-sink``.

Run from the repository root:

    python3 bench/bench_lock.py [--runs N] [--warm-runs 5] [--out bench/results/lock.json] [--uv PATH]

Side by side, in one run (see the ``## lock`` section of bench/README.md):

1. Cold ``slimbuild lock`` (the example copied to a fresh temp dir, a fresh empty
   ``SLIMBUILD_CACHE`` each run) vs ``pip-compile --generate-hashes --allow-unsafe``
   on the full declared ``requirements.txt`` (the kitchen sink), interleaved run by
   run: median wall time of N, distributions pinned, ratio slimbuild / pip-compile.
2. Warm ``slimbuild lock`` (nothing changed; must report "no resolution"): median of
   ``--warm-runs``, against the floor ``python3 -c "import slimbuild.cli"``.
3. ``uv pip compile --generate-hashes`` on both sets (the full requirements.txt and
   the slim set slimbuild kept) when ``uv`` is found (``--uv`` or ``command -v uv``);
   otherwise it is reported as "uv not installed".

Environment: every tool runs with this machine's environment unchanged (pip config
files, PIP_* variables: find-links, extra indexes, constraints) plus PYTHONPATH=<repo>
so ``python -m slimbuild`` works uninstalled. pip's HTTP cache is the machine's default
one, shared by pip-compile and slimbuild's pip-compile; its size is recorded before and
after. uv reads no pip config, so the same sources are handed to it as flags (read from
``pip config list`` at run time), with ``--index-strategy unsafe-best-match`` (pip's
semantics) and a fresh empty ``UV_CACHE_DIR`` per run (cold).

Only the standard library is needed in this interpreter.
"""

from __future__ import annotations

import argparse
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
PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==\S+", re.M)
NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def tool_env() -> dict[str, str]:
    """The machine's environment, plus PYTHONPATH so the repo's slimbuild is importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 1800) -> dict[str, Any]:
    """Run one command; wall time from fork to exit, output kept for parsing."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 3), "rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def version_of(cmd: list[str], env: dict[str, str]) -> str:
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unavailable"


def pip_config(env: dict[str, str]) -> dict[str, list[str]]:
    """Effective pip settings (config files + PIP_* env), as pip itself reports them."""
    out = subprocess.run([PY, "-m", "pip", "config", "list"], env=env, capture_output=True, text=True).stdout
    conf: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        key = key.split(".", 1)[-1].strip()
        conf.setdefault(key, []).extend(value.strip().strip("'\"").split())
    # Later sources win in pip; for list-valued options keep the union, de-duplicated.
    return {k: list(dict.fromkeys(v)) for k, v in conf.items()}


def pip_cache_files(env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run([PY, "-m", "pip", "cache", "info"], env=env, capture_output=True, text=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def count_pins(text: str) -> int:
    return len({canon(m.group(1)) for m in PIN_RE.finditer(text)})


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


# --------------------------------------------------------------------------- tools


def slimbuild_cold(env: dict[str, str], work: Path) -> dict[str, Any]:
    proj = work / "kitchen-sink"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns("slimbuild.lock", "__pycache__", ".slimbuild*"))
    cache = work / "slimbuild-cache"
    cache.mkdir()
    e = dict(env, SLIMBUILD_CACHE=str(cache))
    r = run([PY, "-m", "slimbuild", "lock", str(proj), "--json"], proj, e)
    r.update(parse_slimbuild(r))
    r["project"], r["cache"] = str(proj), str(cache)
    return r


def parse_slimbuild(r: dict[str, Any]) -> dict[str, Any]:
    try:
        lock = json.loads(r["stdout"])["locks"][0]
    except (ValueError, KeyError, IndexError):
        return {"ok": False}
    return {
        "ok": r["rc"] == 0,
        "distributions": len(lock["distributions"]),
        "resolved": lock["resolved"],
        "pinned": sorted(d["name"] for d in lock["distributions"]),
        "warnings": lock.get("warnings", []),
    }


def slim_requirements(project: Path) -> list[str]:
    """The declared lines of requirements.txt that slimbuild kept (its lock's direct pins)."""
    text = (project / "slimbuild.lock").read_text()
    direct: set[str] = set()
    current = None
    for line in text.splitlines():
        m = PIN_RE.match(line)
        if m:
            current = canon(m.group(1))
        elif current and re.search(r"#\s+(via\s+)?-r ", line):
            direct.add(current)
    keep = []
    for line in (EXAMPLE / "requirements.txt").read_text().splitlines():
        m = NAME_RE.match(line)
        if m and not line.lstrip().startswith("#") and canon(m.group(1)) in direct:
            keep.append(line.strip())
            direct.discard(canon(m.group(1)))
    return keep + sorted(direct)


def pip_compile(env: dict[str, str], work: Path, req_lines: list[str]) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "requirements.txt").write_text("\n".join(req_lines) + "\n")
    cmd = ["pip-compile", "--generate-hashes", "--allow-unsafe", "--quiet", "--strip-extras", "-o", "out.txt", "requirements.txt"]
    r = run(cmd, work, env)
    out = work / "out.txt"
    r["ok"] = r["rc"] == 0 and out.exists()
    r["distributions"] = count_pins(out.read_text()) if out.exists() else None
    return r


def uv_compile(uv: str, env: dict[str, str], work: Path, req_lines: list[str], conf: dict[str, list[str]]) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "requirements.txt").write_text("\n".join(req_lines) + "\n")
    cache = work / "uv-cache"
    cmd = [
        uv,
        "pip",
        "compile",
        "--generate-hashes",
        "--quiet",
        "--index-strategy",
        "unsafe-best-match",
        "--python",
        PY,
        "-o",
        "out.txt",
        "requirements.txt",
    ]
    for url in conf.get("index-url", []):
        cmd += ["--index-url", url]
    for url in conf.get("extra-index-url", []):
        cmd += ["--extra-index-url", url]
    for loc in conf.get("find-links", []):
        cmd += ["--find-links", loc]
    for c in conf.get("constraint", []):
        cmd += ["--constraint", c]
    r = run(cmd, work, dict(env, UV_CACHE_DIR=str(cache)))
    out = work / "out.txt"
    r["ok"] = r["rc"] == 0 and out.exists()
    r["distributions"] = count_pins(out.read_text()) if out.exists() else None
    shutil.rmtree(cache, ignore_errors=True)
    return r


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if r.get("ok")]
    dists = sorted({r["distributions"] for r in ok if r.get("distributions") is not None})
    return {
        "median_s": median([r["wall_s"] for r in ok]),
        "runs_s": [r["wall_s"] for r in runs],
        "ok_runs": len(ok),
        "distributions": dists[0] if len(dists) == 1 else dists,
        "errors": [r["stderr"][-2000:] for r in runs if not r.get("ok")],
    }


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="cold runs of each tool (default 3)")
    ap.add_argument("--warm-runs", type=int, default=5, help="warm slimbuild lock runs (default 5)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "lock.json")
    ap.add_argument("--uv", default=None, help="uv binary (default: command -v uv)")
    args = ap.parse_args()

    env = tool_env()
    conf = pip_config(env)
    uv = args.uv or shutil.which("uv")
    meta = {
        "python": platform.python_version(),
        "platform": f"{platform.system()}/{platform.machine()}",
        "cpus": os.cpu_count(),
        "pip": version_of([PY, "-m", "pip", "--version"], env),
        "pip_compile": version_of(["pip-compile", "--version"], env),
        "uv": version_of([uv, "--version"], env) if uv else "uv not installed",
        "pip_config": conf,
        "pip_http_cache_before": pip_cache_files(env),
        "runs": args.runs,
        "warm_runs": args.warm_runs,
        "cache_policy": (
            "fresh SLIMBUILD_CACHE per cold slimbuild run; pip's default HTTP cache shared by "
            "pip-compile and slimbuild (state recorded before/after); fresh UV_CACHE_DIR per uv run"
        ),
    }
    full_reqs = [
        ln.strip()
        for ln in (EXAMPLE / "requirements.txt").read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    log(f"bench_lock: {args.runs} cold run(s) per tool; uv: {meta['uv']}")

    results: dict[str, list[dict[str, Any]]] = {"slimbuild_cold": [], "pip_compile_full": [], "uv_full": [], "uv_slim": []}
    slim_reqs: list[str] = []
    keep_dir: Path | None = None
    root = Path(tempfile.mkdtemp(prefix="slimbuild-bench-lock-"))
    try:
        for i in range(args.runs):
            run_dir = root / f"run{i}"
            run_dir.mkdir()
            r = slimbuild_cold(env, run_dir / "slimbuild")
            results["slimbuild_cold"].append(r)
            log(f"  run {i + 1}: slimbuild lock (cold)        {r['wall_s']:8.2f} s  rc={r['rc']} dists={r.get('distributions')}")
            if r.get("ok"):
                keep_dir = Path(r["project"])
                if not slim_reqs:
                    slim_reqs = slim_requirements(keep_dir)
            p = pip_compile(env, run_dir / "pip-compile-full", full_reqs)
            results["pip_compile_full"].append(p)
            log(f"  run {i + 1}: pip-compile full             {p['wall_s']:8.2f} s  rc={p['rc']} dists={p['distributions']}")
            if uv:
                u = uv_compile(uv, env, run_dir / "uv-full", full_reqs, conf)
                results["uv_full"].append(u)
                log(f"  run {i + 1}: uv pip compile full          {u['wall_s']:8.2f} s  rc={u['rc']} dists={u['distributions']}")
                if slim_reqs:
                    u = uv_compile(uv, env, run_dir / "uv-slim", slim_reqs, conf)
                    results["uv_slim"].append(u)
                    log(
                        f"  run {i + 1}: uv pip compile slim set      {u['wall_s']:8.2f} s  rc={u['rc']} "
                        f"dists={u['distributions']}"
                    )

        # Warm: the last successful cold project + its cache, nothing changed.
        warm: list[dict[str, Any]] = []
        if keep_dir is not None:
            e = dict(env, SLIMBUILD_CACHE=str(keep_dir.parent / "slimbuild-cache"))
            for _ in range(args.warm_runs):
                r = run([PY, "-m", "slimbuild", "lock", str(keep_dir), "--json"], keep_dir, e)
                r.update(parse_slimbuild(r))
                r["ok"] = r.get("ok") and r.get("resolved") is False
                warm.append(r)
        floor = [run([PY, "-c", "import slimbuild.cli"], REPO, env) for _ in range(args.warm_runs)]
        for r in floor:
            r["ok"] = r["rc"] == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)

    meta["pip_http_cache_after"] = pip_cache_files(env)
    cold_warnings = sorted({w for r in results["slimbuild_cold"] for w in r.get("warnings", [])})
    summary = {k: summarize(v) for k, v in results.items()}
    summary["slimbuild_warm"] = summarize(warm)
    summary["slimbuild_warm"]["no_resolution"] = all(r.get("resolved") is False for r in warm) if warm else None
    summary["import_floor"] = summarize(floor)

    def ratio(a: str, b: str) -> float | None:
        x, y = summary[a]["median_s"], summary[b]["median_s"]
        return round(x / y, 3) if x is not None and y else None

    ratios = {
        "slimbuild_cold/pip_compile_full": ratio("slimbuild_cold", "pip_compile_full"),
        "uv_full/pip_compile_full": ratio("uv_full", "pip_compile_full"),
        "uv_slim/pip_compile_full": ratio("uv_slim", "pip_compile_full"),
        "slimbuild_cold/uv_slim": ratio("slimbuild_cold", "uv_slim"),
        "slimbuild_warm/import_floor": ratio("slimbuild_warm", "import_floor"),
    }
    pinned = results["slimbuild_cold"][0].get("pinned") if results["slimbuild_cold"] else None
    doc = {
        "meta": meta,
        "slim_requirements": slim_reqs,
        "full_requirements": full_reqs,
        "slimbuild_pinned": pinned,
        "slimbuild_warnings": cold_warnings,
        "summary": summary,
        "ratios": ratios,
        "warm_goal_s": 0.3,
        "warm_goal_met": (summary["slimbuild_warm"]["median_s"] or 99) <= 0.3,
        "runs": {
            k: [{kk: vv for kk, vv in r.items() if kk not in ("stdout",)} | {"stderr": r["stderr"][-2000:]} for r in v]
            for k, v in results.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")

    def row(label: str, inp: str, key: str, ratio_key: str | None) -> str:
        s = summary[key]
        med = (
            f"{s['median_s']:.2f}"
            if s["median_s"] is not None
            else ("uv not installed" if key.startswith("uv") and not uv else "failed")
        )
        r = ratios.get(ratio_key) if ratio_key else None
        ratio = r if r is not None else "-"
        return f"| {label} | {inp} | {med} | {s['ok_runs']}/{len(s['runs_s'])} | {s['distributions'] or '-'} | {ratio} |"

    n = len(full_reqs)
    print(
        f"\n## lock benchmark ({meta['python']}, {meta['platform']}, {meta['cpus']} CPUs; {meta['pip_compile']}; {meta['uv']})\n"
    )
    print("| tool | input | median wall s | ok runs | distributions pinned | ratio vs pip-compile full |")
    print("|---|---|---|---|---|---|")
    print(
        row(
            "`slimbuild lock` (cold)",
            f"train.py -> {len(slim_reqs)} of {n} declared",
            "slimbuild_cold",
            "slimbuild_cold/pip_compile_full",
        )
    )
    print(row("`pip-compile --generate-hashes --allow-unsafe`", f"requirements.txt ({n} declared)", "pip_compile_full", None))
    print(row("`uv pip compile --generate-hashes`", f"requirements.txt ({n} declared)", "uv_full", "uv_full/pip_compile_full"))
    print(
        row(
            "`uv pip compile --generate-hashes`",
            f"slim set ({', '.join(slim_reqs) or '-'})",
            "uv_slim",
            "uv_slim/pip_compile_full",
        )
    )
    w, f = summary["slimbuild_warm"], summary["import_floor"]
    print(
        f"\nwarm `slimbuild lock` (nothing changed, no resolution={w['no_resolution']}): median "
        f"{w['median_s']} s of {len(w['runs_s'])} {w['runs_s']}; goal <= 0.3 s: "
        f"{'met' if doc['warm_goal_met'] else 'NOT met'}"
    )
    print(
        f'floor `python3 -c "import slimbuild.cli"`: median {f["median_s"]} s {f["runs_s"]}; '
        f"warm/floor {ratios['slimbuild_warm/import_floor']}"
    )
    if cold_warnings:
        print("\nslimbuild warnings: " + " | ".join(cold_warnings))
    print(
        f"pip HTTP cache before/after: {meta['pip_http_cache_before'].get('Number of HTTP files')} / "
        f"{meta['pip_http_cache_after'].get('Number of HTTP files')} files"
    )
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
