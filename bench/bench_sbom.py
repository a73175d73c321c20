#!/usr/bin/env python3
"""Time ``slimbuild sbom`` on the ``examples/kitchen-sink`` image (issue 16).

Run from the repository root (the engine must be up: ``bash scripts/docker-up.sh``):

    python3 bench/bench_sbom.py [--runs 5] [--out bench/results/sbom.json] [--keep-image]

It builds a temp copy of the example once (``python3 -m slimbuild build COPY --base-image BASE --json``,
PYTHONPATH=<repo>, SLIMBUILD_CACHE=~/.cache/slimbuild-test-cache unless set), saves it with ``docker save`` for
the tar form, then times each form end to end as a user runs it, one process per run (interpreter start-up
included): ``sbom IMAGE`` (CycloneDX and SPDX: a ``docker save`` streamed and scanned), ``sbom SAVED.tar``
and ``sbom MANIFEST``; and ``docker save`` alone, the image form's floor. Each form's runs must give byte-identical documents. Prints a markdown table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "kitchen-sink"
BASE = os.environ.get("SLIMBUILD_BENCH_BASE", "slimbuild-test/debian-python:bookworm")
SB_CACHE = os.environ.get("SLIMBUILD_CACHE", str(Path.home() / ".cache" / "slimbuild-test-cache"))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "SLIMBUILD_CACHE": SB_CACHE, "SOURCE_DATE_EPOCH": "1700000000"}


def _slimbuild(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "slimbuild", *args], env=_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"slimbuild {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def _time(args: list[str], out: Path, runs: int) -> dict[str, Any]:
    samples, docs = [], set()
    for _ in range(runs):
        start = time.perf_counter()
        _slimbuild(*args, "-o", str(out))
        samples.append(time.perf_counter() - start)
        docs.add(out.read_bytes())
    (doc,) = docs  # byte-identical across runs, or this fails
    parsed = json.loads(doc)
    count = len(parsed.get("components") or parsed.get("packages") or [])
    return {"median_s": statistics.median(samples), "min_s": min(samples), "samples_s": samples, "bytes": len(doc),
            "packages": count, "identical": True}  # fmt: skip


def _time_save(image_id: str, runs: int) -> dict[str, Any]:
    """The engine's ``docker save`` of the image to /dev/null: what the image form spends before slimbuild reads."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(["docker", "save", image_id], stdout=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - start)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "samples_s": samples, "bytes": 0, "packages": 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "sbom.json")
    parser.add_argument("--keep-image", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sbom-") as tmp:
        root = Path(tmp) / "kitchen-sink"
        shutil.copytree(EXAMPLE, root)
        start = time.perf_counter()
        (image,) = json.loads(_slimbuild("build", str(root), "--base-image", BASE, "--json").stdout)["images"]
        print(f"built {image['tags'][0]} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
        try:
            tag, saved = image["tags"][0], Path(tmp) / "image.tar"
            subprocess.run(["docker", "save", "-o", str(saved), image["image_id"]], check=True)
            forms = {
                "image, cyclonedx": ["sbom", tag],
                "image, spdx": ["sbom", tag, "--format", "spdx"],
                "saved tar, cyclonedx": ["sbom", str(saved)],
                "manifest, cyclonedx": ["sbom", image["manifest"]],
            }
            results = {name: _time(argv, Path(tmp) / "sbom.json", args.runs) for name, argv in forms.items()}
            results["docker save alone (baseline)"] = _time_save(image["image_id"], args.runs)
        finally:
            if not args.keep_image:
                for t in image["tags"]:
                    subprocess.run(["docker", "rmi", t], capture_output=True, check=False)
        report = {"image": image["image_id"], "image_bytes": image.get("size_bytes"), "tar_bytes": saved.stat().st_size,
                  "runs": args.runs, "cpus": os.cpu_count(), "results": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print("| form | median s | min s | packages | document bytes |\n|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['packages']} | {r['bytes']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
