#!/usr/bin/env python3
"""Benchmark ``prune = "traced"`` against the default build and the physical limit (issue 15).

Run from the repository root with the project's venv (the engine must be up: ``bash scripts/docker-up.sh``):

    .venv/bin/python bench/bench_prune.py [--examples kitchen-sink,notebook] [--out bench/results/prune.json]
                                          [--md bench/results/prune.md] [--keep-images]

Side by side, in one run, for each example (a temp copy; its ``slimbuild.lock`` kept when it has one):

1. **default** = ``python3 -m slimbuild build DIR --base-image BASE --json --trace-in-image``;
2. **trace**: the example's command (kitchen-sink: ``python train.py``; the notebook: ``python weekly_sales.py``, the
   script the image runs) traced *inside* the default image with slimbuild's own hook (``pipeline/pruning.py``'s
   traced run: the same records as ``slimbuild trace`` on the host, paths relative to /app and site-packages,
   no host venv to install) and written as the copy's ``slimbuild.trace.json``;
3. **traced** = the same build with ``prune = "traced"``: pruned to that trace, every traced command proven in the
   image (the build fails otherwise), ``--trace-in-image`` again;
4. **limit**: the bytes of the files the command opens (audit hook) or maps (``/proc/self/maps``) under /opt/venv
   and /app, in the default image (bench/bench_build.py's ``AUDIT_SCRIPT``, read-only, uid 10001, no network),
   and again in the traced image (the command must still pass there).

Reported: bytes added over the base (image size minus base size) for both builds, and each over the limit.
Goal (issue 15): traced <= 1.1x the limit, with every traced command passing in the image; default <= 1.2x.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_build as bb  # beside this file

GOALS = {"traced": 1.1, "default": 1.2}
EXAMPLES: dict[str, dict[str, Any]] = {
    "kitchen-sink": {"config": "pyproject.toml", "script": "/app/train.py", "argv": ["python", "train.py"]},
    # the script the image runs, generated from the notebook; copied into the project copy (as `jupyter nbconvert
    # --to script` would make it) so that the trace names a file of the project and the proof can run it
    "notebook": {"config": "slimbuild.toml", "script": "/app/weekly_sales.py", "argv": ["python", "weekly_sales.py"],
                 "generated": "weekly_sales.py"},
}


def log(msg: str) -> None:
    print(f"[bench_prune {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build(env: dict[str, str], project: Path) -> dict[str, Any]:
    args = ["build", str(project), "--base-image", bb.BASE, "--json", "--trace-in-image"]
    r = bb.run([bb.PY, "-m", "slimbuild", *args], env=env)
    out: dict[str, Any] = {"command": f"SLIMBUILD_CACHE={bb.SB_CACHE} python3 -m slimbuild " + " ".join(args),
                           "rc": r["rc"], "wall_s": r["wall_s"]}
    if r["rc"] != 0:
        out["stderr_tail"] = r["stderr"][-3000:]
        log(f"build failed rc={r['rc']}: {r['stderr'][-1500:]}")
        return out
    doc = json.loads(r["stdout"])["images"][0]
    manifest = json.loads(Path(doc["manifest"]).read_text())
    out.update({k: doc[k] for k in ("image_id", "tags", "size_bytes", "added_bytes")})
    out["trace_in_image"] = {k: v for k, v in manifest.get("trace_in_image", {}).items() if k != "opened"}
    out["pruned"] = manifest.get("pruned")
    return out


def trace_in_default(image_id: str, argv: list[str], project: str) -> str:
    """The command traced inside the default image (pipeline/pruning.py's traced run): the trace file's text."""
    from slimbuild.analysis import runtime
    from slimbuild.image.engine import connect
    from slimbuild.image.plan import RUNTIME_UID, VENV_PYTHON
    from slimbuild.pipeline import pruning

    engine = connect()
    try:
        trace = pruning._traced_run(engine, image_id, [VENV_PYTHON, *argv[1:]], RUNTIME_UID)
    finally:
        engine.close()
    cmd = runtime.Command(tuple(argv), trace.commands[0].untraced)
    return runtime.dumps(replace(trace, project=project, commands=(cmd,)))


def audit(image: str, script: str) -> dict[str, Any]:
    flags = ["--network", "none", "--read-only", "--tmpfs", "/tmp", "--user", "10001:10001"]
    code = bb.AUDIT_SCRIPT.replace("/app/train.py", script)
    cmd = ["docker", "run", "--rm", *flags, "--entrypoint", "/opt/venv/bin/python", image, "-c", code]
    r = bb.run(cmd)
    for line in r["stdout"].splitlines():
        if line.startswith("@@AUDIT@@"):
            doc = json.loads(line[len("@@AUDIT@@"):])
            keep = ("exit_code", "opened_bytes", "mapped_bytes", "accessed_files", "accessed_bytes", "shipped_bytes",
                    "unaccessed_by_kind", "unaccessed_top")
            return {k: doc[k] for k in keep}
    return {"error": (r["stdout"] + r["stderr"])[-2000:], "rc": r["rc"]}


def set_traced(config: Path) -> None:
    text = config.read_text()
    marker = "[tool.slimbuild]\n" if config.name == "pyproject.toml" else ""
    config.write_text(text.replace(marker, marker + 'prune = "traced"\n', 1) if marker else 'prune = "traced"\n' + text)


def one(name: str, work: Path, env: dict[str, str], base_size: int, keep: bool) -> dict[str, Any]:
    spec = EXAMPLES[name]
    project = work / f"bench-prune-{name}"
    ignore = shutil.ignore_patterns("slimbuild*.json", "__pycache__", ".slimbuild*")
    shutil.copytree(bb.REPO / "examples" / name, project, ignore=ignore)
    res: dict[str, Any] = {"example": name}
    log(f"{name}: default build")
    res["default"] = build(env, project)
    if res["default"]["rc"] != 0:
        return res
    default_id = res["default"]["image_id"]
    res["limit"] = audit(default_id, spec["script"])
    if spec.get("generated"):
        cat = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "/bin/cat", default_id, spec["script"]]
        (project / spec["generated"]).write_text(subprocess.run(cat, capture_output=True, text=True, check=True).stdout)
    log(f"{name}: trace {' '.join(spec['argv'])} in the default image")
    (project / "slimbuild.trace.json").write_text(trace_in_default(default_id, spec["argv"], f"bench-prune-{name}"))
    set_traced(project / spec["config"])
    (project / "slimbuild.manifest.json").unlink(missing_ok=True)
    log(f"{name}: prune = \"traced\" build")
    res["traced"] = build(env, project)
    if res["traced"]["rc"] == 0:
        res["audit_traced"] = audit(res["traced"]["image_id"], spec["script"])
    limit = res["limit"].get("accessed_bytes")
    for kind in ("default", "traced"):
        added = res[kind].get("added_bytes")
        res[f"ratio_{kind}"] = round(added / limit, 3) if added and limit else None
    res["proven"] = bool(res["traced"].get("pruned")) and all(p["ok"] for p in res["traced"]["pruned"]["proven"])
    if not keep:
        for kind in ("default", "traced"):
            for tag in res[kind].get("tags", ()):
                subprocess.run(["docker", "rmi", tag], capture_output=True)
    return res


def mb(n: Any) -> str:
    return f"{n / 1e6:.1f} MB" if isinstance(n, (int, float)) else "n/a"


def markdown(results: list[dict[str, Any]]) -> str:
    rows = ["| example | default added | traced added | limit (opened or mapped) | default / limit | traced / limit "
            "| traced commands pass in the image |", "|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append(
            f"| {r['example']} | {mb(r['default'].get('added_bytes'))} | {mb(r.get('traced', {}).get('added_bytes'))} "
            f"| {mb(r.get('limit', {}).get('accessed_bytes'))} | {r.get('ratio_default')}x (goal <= {GOALS['default']}x) "
            f"| {r.get('ratio_traced')}x (goal <= {GOALS['traced']}x) | {r.get('proven')} |"
        )
    return "\n".join(rows) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", default="kitchen-sink,notebook")
    ap.add_argument("--out", default=str(bb.REPO / "bench" / "results" / "prune.json"))
    ap.add_argument("--md", default=str(bb.REPO / "bench" / "results" / "prune.md"))
    ap.add_argument("--keep-images", action="store_true")
    opts = ap.parse_args()
    env = bb.env_for_tools()
    base_size = int(bb.docker_client().inspect_image(bb.BASE)["Size"])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-prune-") as tmp:
        results = [one(n, Path(tmp), env, base_size, opts.keep_images) for n in opts.examples.split(",")]
    doc = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "base": bb.BASE, "base_size": base_size, "goals": GOALS,
           "command": "python3 bench/bench_prune.py " + " ".join(sys.argv[1:]), "wall_s": round(time.perf_counter() - t0, 1),
           "results": results}
    Path(opts.out).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    text = markdown(results)
    Path(opts.md).write_text(f"# prune = \"traced\" ({doc['when']})\n\n{text}")
    print(text)
    return 0 if all(r.get("proven") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
