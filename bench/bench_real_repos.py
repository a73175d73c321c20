#!/usr/bin/env python3
"""``slimbuild check`` on real repositories, this tree side by side with an older commit.

Run from the repository root:

    python3 bench/bench_real_repos.py --baseline REV DIR[::ENTRYPOINT] ...

Each DIR is a local clone of a public repository (no network is used here: clone them yourself). With
``::ENTRYPOINT`` the entrypoint is passed as ``--entrypoint``; without it, ``check`` runs as a new user runs it, with
no configuration. A copy of each repository is checked (so neither tree writes into it), with a fresh
``SLIMBUILD_CACHE`` per run, offline (``PIP_NO_INDEX=1``).

It prints, per repository and tree: the exit code, the error and warning counts by code, the unresolved imports,
and the required distributions; then what changed between the trees (distributions added to or dropped from the
required set, imports that became resolved). The ratio row is errors(this tree) / errors(REV). The required sets
are printed in full so that a false positive can be checked by eye: this bench has no ground truth of its own
(`bench_analyze.py` measures precision and recall against sdists' own metadata).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_analyze import PY, REPO, baseline_tree, slimbuild_env


def run_check(tree: Path, repo: Path, entry: str, cache: Path) -> dict[str, Any]:
    """One ``check --json`` of a copy of ``repo`` with the slimbuild of ``tree``."""
    with tempfile.TemporaryDirectory(prefix="sb-real-") as tmp:
        copy = Path(tmp) / repo.name
        shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(".git"), symlinks=True)
        argv = [PY, "-m", "slimbuild", "check", str(copy), "--json"]
        if entry:
            argv += ["--entrypoint", entry]
        env = slimbuild_env(cache, tree) | {"PIP_NO_INDEX": "1"}
        proc = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, timeout=900, check=False)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        data = {}
    stderr = proc.stderr.strip().splitlines()
    return {"rc": proc.returncode, "json": data, "stderr_tail": stderr[-3:]}


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Counts by code, unresolved imports and the required set of one run."""
    data = result["json"]
    codes: collections.Counter[str] = collections.Counter()
    severities: collections.Counter[str] = collections.Counter()
    required: set[str] = set()
    unresolved: set[str] = set()
    for ep in data.get("entrypoints", []) or [data]:
        for f in ep.get("findings", []):
            codes[f["code"]] += 1
            severities[f["severity"]] += 1
        required.update(r["name"] for r in ep.get("required", []))
        required.update(r["name"] for r in ep.get("missing", []))
        unresolved.update(u.get("module", "") for u in ep.get("unresolved", []))
    return {
        "rc": result["rc"],
        "errors": severities["error"],
        "warnings": severities["warning"],
        "codes": dict(sorted(codes.items())),
        "required": sorted(required),
        "unresolved": sorted(unresolved - {""}),
        "stderr_tail": result["stderr_tail"] if result["rc"] not in (0, 1) else [],
        "error": data.get("error", {}).get("message", "") if isinstance(data.get("error"), dict) else str(data.get("error", "")),
    }


def render(rows: list[dict[str, Any]], baseline: str) -> str:
    out = ["| repository | entrypoint | tree | exit | errors | warnings | by code | unresolved |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for label, s in row["trees"].items():
            codes = ", ".join(f"{k}×{v}" for k, v in s["codes"].items()) or "-"
            out.append(
                f"| {row['repo']} | {row['entry'] or '(none)'} | {label} | {s['rc']} | {s['errors']} | {s['warnings']} "
                f"| {codes} | {len(s['unresolved'])} |"
            )
    out.append("")
    for row in rows:
        now = row["trees"]["this tree"]
        out.append(f"### {row['repo']} ({row['entry'] or 'no configuration'})")
        out.append(f"required now: {', '.join(now['required']) or '-'}")
        out.append(f"unresolved now: {', '.join(now['unresolved']) or '-'}")
        if now["error"]:
            out.append(f"error: {now['error']}")
        if now["stderr_tail"]:
            out.append(f"stderr: {' / '.join(now['stderr_tail'])}")
        if baseline:
            old = row["trees"][f"slimbuild@{baseline}"]
            added = sorted(set(now["required"]) - set(old["required"]))
            dropped = sorted(set(old["required"]) - set(now["required"]))
            fixed = sorted(set(old["unresolved"]) - set(now["unresolved"]))
            out.append(f"required added: {', '.join(added) or '-'}; dropped: {', '.join(dropped) or '-'}")
            out.append(f"now resolved: {', '.join(fixed) or '-'}")
            if old["errors"]:
                out.append(f"errors ratio this tree / {baseline}: {now['errors'] / old['errors']:.2f}")
        out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repos", nargs="+", metavar="DIR[::ENTRYPOINT]")
    ap.add_argument("--baseline", default="", metavar="REV", help="also run slimbuild as of git REV")
    ap.add_argument("--out", type=Path, help="write all results as JSON here")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sb-real-bench-") as tmp:
        work = Path(tmp)
        trees = {"this tree": REPO}
        if args.baseline:
            trees[f"slimbuild@{args.baseline}"] = baseline_tree(args.baseline, work)
        for spec in args.repos:
            path, _, entry = spec.partition("::")
            repo = Path(path).resolve()
            row: dict[str, Any] = {"repo": repo.name, "entry": entry, "trees": {}}
            for label, tree in trees.items():
                cache = work / f"cache-{len(rows)}-{label.replace(' ', '_').replace('@', '_')}"
                print(f"{repo.name} {entry or '(none)'}: {label}", file=sys.stderr)
                row["trees"][label] = summary(run_check(tree, repo, entry, cache))
            rows.append(row)
    print(render(rows, args.baseline))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
