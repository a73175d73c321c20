#!/usr/bin/env python3
"""Benchmark what reproducible images cost on ``examples/kitchen-sink`` (issue 14), side by side in one run.

Run from the repository root with the project's venv (the engine must be up: ``bash scripts/docker-up.sh``):

    .venv/bin/python bench/bench_reproducible.py [--runs 3] [--out bench/results/reproducible.json]

Each build is ``python3 -m slimbuild build`` through bench_build.py's timed wrapper, which timestamps
``DockerEngine.build``, the smoke run and the normalisation step (``normalize_image``: the config rewritten to
SOURCE_DATE_EPOCH and loaded back). The project is a git clone of the example, committed, so that ``verify``
accepts it. Measured, interleaved per round:

1. **cold** builds (no engine cache: ``--nocache`` forced, no recorded deps image): the normalisation's seconds
   (goal: at most 2 s), and its share of the build;
2. **warm** rebuilds after a one-line change to train.py: the normalisation's share of the build (goal <= 10%);
3. **verify** of the last build's manifest against a plain cold build of the same commit: verify / build
   (goal <= 1.2x); verify must answer "reproduced" (exit 0).

Prints a markdown table on stdout, progress on stderr; writes the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_build as bb  # the timed wrapper, the wheelhouse and the helpers of the build bench

REPO = bb.REPO


def _git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_DATE": "2024-03-01T12:00:00+00:00", "GIT_COMMITTER_DATE": "2024-03-01T12:00:00+00:00"}
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@example.com", *args], cwd=cwd, env=env, check=True,
                   capture_output=True)  # fmt: skip


def _project(work: Path) -> Path:
    root = work / "kitchen-sink"
    shutil.copytree(bb.EXAMPLE, root)
    (root / ".gitignore").write_text("slimbuild.manifest.json\nslimbuild.verify.diffoscope.txt\n", encoding="utf-8")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "bench")
    return root


def _commit(root: Path, message: str) -> None:
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "--allow-empty", "-m", message)


def _verify(env: dict[str, str], manifest: str) -> dict[str, Any]:
    r = bb.run([bb.PY, "-m", "slimbuild", "verify", manifest, "--json"], env=env)
    out: dict[str, Any] = {"wall_s": r["wall_s"], "rc": r["rc"]}
    if r["rc"] == 0:
        doc = json.loads(r["stdout"])
        out.update({"same": doc["same"], "rebuilt_id": doc["rebuilt_id"]})
    else:
        out["stderr_tail"] = r["stderr"][-2000:]
    return out


def _med(values: list[float | None]) -> float | None:
    return bb.med([v for v in values if v is not None])


def _share(build: dict[str, Any]) -> float | None:
    return bb.ratio(build.get("normalize_s"), build.get("wall_s"), 3)


# long: the rounds, interleaved (cold, warm, verify against a cold build), then the summary
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "reproducible.json"))
    opts = ap.parse_args()
    env = bb.env_for_tools()
    env.pop("SOURCE_DATE_EPOCH", None)  # the commit's time, as in CI
    work = Path(tempfile.mkdtemp(prefix="bench-repro-"))
    root = _project(work)
    res: dict[str, Any] = {
        "meta": {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                 "loadavg_start": os.getloadavg(), "command": "bench/bench_reproducible.py " + " ".join(sys.argv[1:])},
        "rounds": [],
    }  # fmt: skip
    tags: list[str] = []
    try:
        lk = bb.run([bb.PY, "-m", "slimbuild", "lock", str(root)], env=env)
        if lk["rc"] != 0:
            sys.exit(f"lock failed: {lk['stderr'][-2000:]}")
        _commit(root, "lock")
        for i in range(opts.runs):
            shutil.rmtree(Path(bb.SB_CACHE) / "deps", ignore_errors=True)
            cold = bb.slim_build(env, root, work, f"cold{i}", nocache=True)
            bb.log(f"round {i + 1}: cold {cold['wall_s']} s, normalise {cold.get('normalize_s')} s")
            bb.edit_train(root / "train.py", 4 + i)
            _commit(root, f"edit {i}")
            warm = bb.slim_build(env, root, work, f"warm{i}")
            bb.log(f"round {i + 1}: warm {warm['wall_s']} s, normalise {warm.get('normalize_s')} s")
            tags.extend([*cold.get("tags", []), *warm.get("tags", [])])
            shutil.rmtree(Path(bb.SB_CACHE) / "deps", ignore_errors=True)
            plain = bb.slim_build(env, root, work, f"plain{i}", nocache=True)  # the cold build verify is measured against
            tags.extend(plain.get("tags", []))
            ver = _verify(env, str(root / "slimbuild.manifest.json"))
            bb.log(f"round {i + 1}: plain cold build {plain['wall_s']} s, verify {ver['wall_s']} s (rc {ver['rc']})")
            res["rounds"].append({"cold": cold, "warm": warm, "plain": plain, "verify": ver})
    finally:
        client = bb.docker_client()
        for tag in tags:
            try:
                client.remove_image(tag, force=True)
            except Exception:  # noqa: BLE001 - cleanup only
                pass
        shutil.rmtree(work, ignore_errors=True)
    rounds = res["rounds"]
    summary = {
        "cold_normalize_s": _med([r["cold"].get("normalize_s") for r in rounds]),
        "cold_wall_s": _med([r["cold"]["wall_s"] for r in rounds]),
        "cold_share": _med([_share(r["cold"]) for r in rounds]),
        "warm_normalize_s": _med([r["warm"].get("normalize_s") for r in rounds]),
        "warm_wall_s": _med([r["warm"]["wall_s"] for r in rounds]),
        "warm_share": _med([_share(r["warm"]) for r in rounds]),
        "verify_s": _med([r["verify"]["wall_s"] for r in rounds]),
        "plain_cold_s": _med([r["plain"]["wall_s"] for r in rounds]),
        "verify_over_build": _med([bb.ratio(r["verify"]["wall_s"], r["plain"]["wall_s"], 3) for r in rounds]),
        "verify_reproduced": [r["verify"].get("same") for r in rounds],
    }
    res["summary"] = summary
    res["meta"]["loadavg_end"] = os.getloadavg()
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(res, indent=2, default=str) + "\n")
    s = summary
    print(f"### reproducible images ({res['meta']['date']}, {res['meta']['cpus']} CPUs, load {res['meta']['loadavg_start']})\n")
    print(f"`{res['meta']['command']}`, {len(rounds)} rounds, medians\n")
    print("| measure | value | goal | |\n|---|---:|---:|---|")
    print(f"| normalisation in a cold build | {s['cold_normalize_s']} s of {s['cold_wall_s']} s | <= 2 s | {bb.verdict(s['cold_normalize_s'], 2.0)} |")
    print(f"| normalisation share of a warm rebuild | {s['warm_share']} ({s['warm_normalize_s']} s of {s['warm_wall_s']} s) | <= 0.10 | {bb.verdict(s['warm_share'], 0.10)} |")
    print(f"| verify / plain cold build | {s['verify_over_build']} ({s['verify_s']} s / {s['plain_cold_s']} s) | <= 1.2 | {bb.verdict(s['verify_over_build'], 1.2)} |")
    print(f"| verify said reproduced | {s['verify_reproduced']} | all true | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
