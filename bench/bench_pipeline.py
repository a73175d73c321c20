#!/usr/bin/env python3
"""Benchmark stages that share layers (issue 17) on ``examples/pipeline`` (ingest, features, train).

Run from the repository root (the engine up, Debian's docker-registry installed: ``bash scripts/docker-up.sh``):

    .venv/bin/python bench/bench_pipeline.py [--startup-runs 20] [--out bench/results/pipeline.json]
                                             [--md bench/results/pipeline.md]

Side by side, on two temp copies of the example built the same way (in-process ``building.build``, the test base
image, SOURCE_DATE_EPOCH fixed, wheels from the shared test cache):

* before = ``venv-layers = "single"``: today's venv in one layer, so three independent venv layers;
* after  = the default for a project with several entrypoints: one layer per distribution.

Measured: (1) the bytes the engine stores for the three images: the sum of the unique layers' sizes (by diff id,
as a registry and ``docker save`` count them; and by chain id, the overlay2 directories the engine really keeps,
which are shared only below the first differing layer), with the base's layers and without; (2) the bytes pushed to
a registry on 127.0.0.1 (tests/docker/conftest.py's ``registry_server``): the sum of the unique blobs of the three
manifests (layers and configs), with and without the base's; (3) the pipeline's cold build (no engine cache, no
recorded deps image) and warm build (every stage's entrypoint edited, caches kept); (4) start-up of each stage's
entrypoint inside its image: the median of N runs, in 5 rounds of one container each that alternate between the
two layouts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from slimbuild.config import load_settings  # noqa: E402
from slimbuild.image.engine import DockerEngine, connect  # noqa: E402
from slimbuild.image.normalize import makes_layer  # noqa: E402
from slimbuild.pipeline import building  # noqa: E402

BASE_IMAGE = os.environ.get("SLIMBUILD_BASE_IMAGE", "slimbuild-test/debian-python:bookworm")
SHARED_CACHE = Path(os.environ.get("SLIMBUILD_TEST_CACHE", "~/.cache/slimbuild-test-cache")).expanduser()
EPOCH = "1700000000"
MODES = {"before": "single", "after": "distribution"}
STAGES = ("ingest", "features", "train")
_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


class NoCache:
    """The engine with its build cache bypassed (a cold build)."""

    def __init__(self, engine: DockerEngine) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def build(self, context: Any, **kwargs: Any) -> Any:
        return self._engine.build(context, **{**kwargs, "nocache": True})


@contextmanager
def bench_cache(tmp: Path) -> Iterator[Path]:
    """A cache dir of its own (no recorded deps image), reading the shared test cache's wheels."""
    cache = tmp / "cache"
    cache.mkdir(parents=True)
    (cache / "wheels").symlink_to(SHARED_CACHE / "wheels")
    for name in ("base-python", "base-config"):  # what the base is: read once, as any warm cache has it
        if (SHARED_CACHE / name).is_dir():
            shutil.copytree(SHARED_CACHE / name, cache / name)
    yield cache


def project(tmp: Path, mode: str) -> Path:
    root = tmp / mode / "pipeline"
    shutil.copytree(REPO / "examples" / "pipeline", root)
    with (root / "pyproject.toml").open("a", encoding="utf-8") as fh:
        fh.write(f'\n[tool.slimbuild]\nvenv-layers = "{MODES[mode]}"\n')
    return root


def build(engine: Any, root: Path) -> tuple[float, dict[str, str]]:
    """Seconds for ``build`` of the three stages, and {stage: image id}."""
    start = time.monotonic()
    results = building.build(load_settings(root), engine=engine, base_image=BASE_IMAGE)
    seconds = time.monotonic() - start
    ids = {}
    for result in results:
        stage = next(s for s in STAGES if any(f"-{s}:" in t for t in result.tags))
        ids[stage] = result.image_id
    return seconds, ids


def layer_sizes(engine: DockerEngine, image_id: str) -> list[tuple[str, str, int]]:
    """(diff id, chain id, bytes) per layer, bottom up (sizes from the history entries that made a layer)."""
    diffs = [str(x) for x in engine.inspect_image(image_id)["RootFS"]["Layers"]]
    sizes = [int(h.get("Size") or 0) for h in reversed(engine.history(image_id)) if makes_layer(str(h.get("CreatedBy") or ""))]
    if len(sizes) != len(diffs):  # the base's history may be squashed: its sizes then come from its own image
        sizes = [0] * (len(diffs) - len(sizes)) + sizes
    chain, out = "", []
    for diff, size in zip(diffs, sizes, strict=True):
        chain = diff if not chain else "sha256:" + hashlib.sha256(f"{chain} {diff}".encode()).hexdigest()
        out.append((diff, chain, size))
    return out


def stored(engine: DockerEngine, ids: Sequence[str], base_layers: int) -> dict[str, int]:
    by_diff: dict[str, int] = {}
    by_chain: dict[str, int] = {}
    by_diff_own: dict[str, int] = {}
    for image_id in ids:
        for i, (diff, chain, size) in enumerate(layer_sizes(engine, image_id)):
            by_diff[diff] = size
            by_chain[chain] = size
            if i >= base_layers:
                by_diff_own[diff] = size
    own_chain = {c: s for image_id in ids for i, (_, c, s) in enumerate(layer_sizes(engine, image_id)) if i >= base_layers}
    return {
        "unique_layers": len(by_diff),
        "by_diff_id": sum(by_diff.values()),
        "by_diff_id_without_base": sum(by_diff_own.values()),
        "by_chain_id": sum(by_chain.values()),
        "by_chain_id_without_base": sum(own_chain.values()),
    }


def pushed(engine: DockerEngine, registry: str, mode: str, ids: dict[str, str], base_layers: int) -> dict[str, int]:
    """Push the three images; the unique blobs their manifests name (and those above the base's layers)."""
    blobs: dict[str, int] = {}
    own: dict[str, int] = {}
    for stage, image_id in ids.items():
        repo = f"{registry}/bench-{mode}-{stage}"
        engine.client.tag(image_id, repo, "bench")
        try:
            for line in engine.client.push(repo, "bench", stream=True, decode=True):
                if "error" in line:
                    raise SystemExit(f"push of {repo}: {line['error']}")
            request = urllib.request.Request(f"http://{registry}/v2/bench-{mode}-{stage}/manifests/bench", headers={"Accept": _MANIFEST_V2})
            with urllib.request.urlopen(request, timeout=30) as response:
                doc = json.loads(response.read())
        finally:
            engine.client.remove_image(f"{repo}:bench")
        blobs[doc["config"]["digest"]] = own[doc["config"]["digest"]] = int(doc["config"]["size"])
        for i, layer in enumerate(doc["layers"]):
            blobs[layer["digest"]] = int(layer["size"])
            if i >= base_layers:
                own[layer["digest"]] = int(layer["size"])
    return {"unique_blobs": len(blobs), "bytes": sum(blobs.values()), "bytes_without_base": sum(own.values())}


STARTUP = """
import statistics, subprocess, sys, time
argv = {argv!r}
times = []
for _ in range({runs}):
    t = time.perf_counter(); subprocess.run(argv, check=True, stdout=subprocess.DEVNULL); times.append(time.perf_counter() - t)
print(" ".join(str(round(t * 1000, 2)) for t in times))
"""


def startup_times(engine: DockerEngine, image_id: str, runs: int) -> list[float]:
    """Milliseconds of each of ``runs`` runs of the image's entrypoint, in one container."""
    argv = list(engine.inspect_image(image_id)["Config"]["Entrypoint"])
    run = engine.run(image_id, ["/opt/venv/bin/python", "-c", STARTUP.format(argv=argv, runs=runs)], user="10001:10001", timeout=600)
    if run.exit_code != 0:
        raise SystemExit(f"start-up run failed: {run.output}")
    return [float(t) for t in run.output.strip().splitlines()[-1].split()]


def startup_ms(engine: DockerEngine, images: dict[str, dict[str, str]], runs: int, rounds: int = 5) -> dict[str, dict[str, float]]:
    """Median start-up per mode and stage; the modes' containers alternate, round by round (a loaded machine's
    drift then falls on both alike)."""
    times: dict[str, dict[str, list[float]]] = {m: {s: [] for s in STAGES} for m in images}
    for _ in range(rounds):
        for stage in STAGES:
            for mode, ids in images.items():
                times[mode][stage] += startup_times(engine, ids[stage], max(1, runs // rounds))
    return {m: {s: round(statistics.median(t), 1) for s, t in by.items()} for m, by in times.items()}


def edit_entrypoints(root: Path) -> None:
    for stage in STAGES:
        with (root / "pipeline" / f"{stage}.py").open("a", encoding="utf-8") as fh:
            fh.write("# edited\n")


def _ratio(after: float, before: float) -> float:
    return round(after / before, 3) if before else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--startup-runs", type=int, default=40, help="runs per stage and mode, in 5 alternating rounds")
    ap.add_argument("--out", default=str(REPO / "bench/results/pipeline.json"))
    ap.add_argument("--md", default=str(REPO / "bench/results/pipeline.md"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.docker.conftest import registry_server

    engine = connect()
    base_layers = len(engine.inspect_image(BASE_IMAGE)["RootFS"]["Layers"])
    results: dict[str, Any] = {"base_image": BASE_IMAGE, "base_layers": base_layers, "startup_runs": args.startup_runs}
    made: list[str] = []
    images: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["SOURCE_DATE_EPOCH"] = EPOCH
        try:
            with registry_server(tmp / "registry") as registry:
                for mode in MODES:
                    with bench_cache(tmp / mode) as cache:
                        os.environ["SLIMBUILD_CACHE"] = str(cache)
                        root = project(tmp, mode)
                        cold, cold_ids = build(NoCache(engine), root)
                        edit_entrypoints(root)
                        warm, ids = build(engine, root)
                        made.extend([*cold_ids.values(), *ids.values()])
                        made.extend(json.loads(p.read_text())["image_id"] for p in (cache / "deps").glob("*.json"))
                        results[mode] = {
                            "cold_build_s": round(cold, 1),
                            "warm_build_s": round(warm, 1),
                            "stored": stored(engine, list(ids.values()), base_layers),
                            "pushed": pushed(engine, registry, mode, ids, base_layers),
                        }
                        images[mode] = ids
                        print(mode, json.dumps(results[mode]), file=sys.stderr, flush=True)
            for mode, by_stage in startup_ms(engine, images, args.startup_runs).items():
                results[mode]["startup_ms"] = by_stage
        finally:
            for image_id in made:
                try:
                    engine.client.remove_image(image_id, force=True)
                except Exception:  # noqa: BLE001 - cleanup only
                    pass
    b, a = results["before"], results["after"]
    results["ratios"] = {
        "stored_by_diff_id_without_base": _ratio(a["stored"]["by_diff_id_without_base"], b["stored"]["by_diff_id_without_base"]),
        "stored_by_diff_id": _ratio(a["stored"]["by_diff_id"], b["stored"]["by_diff_id"]),
        "stored_by_chain_id_without_base": _ratio(a["stored"]["by_chain_id_without_base"], b["stored"]["by_chain_id_without_base"]),
        "pushed_without_base": _ratio(a["pushed"]["bytes_without_base"], b["pushed"]["bytes_without_base"]),
        "pushed": _ratio(a["pushed"]["bytes"], b["pushed"]["bytes"]),
        "cold_build": _ratio(a["cold_build_s"], b["cold_build_s"]),
        "warm_build": _ratio(a["warm_build_s"], b["warm_build_s"]),
        "startup": {s: _ratio(a["startup_ms"][s], b["startup_ms"][s]) for s in STAGES},
    }
    Path(args.out).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    Path(args.md).write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


def markdown(r: dict[str, Any]) -> str:
    b, a, q = r["before"], r["after"], r["ratios"]
    rows = [
        ("stored, unique layers by diff id, without the base (bytes)", b["stored"]["by_diff_id_without_base"], a["stored"]["by_diff_id_without_base"], q["stored_by_diff_id_without_base"]),
        ("stored, unique layers by diff id, with the base (bytes)", b["stored"]["by_diff_id"], a["stored"]["by_diff_id"], q["stored_by_diff_id"]),
        ("stored, overlay2 layers by chain id, without the base (bytes)", b["stored"]["by_chain_id_without_base"], a["stored"]["by_chain_id_without_base"], q["stored_by_chain_id_without_base"]),
        ("pushed, unique blobs without the base's (bytes, gzip)", b["pushed"]["bytes_without_base"], a["pushed"]["bytes_without_base"], q["pushed_without_base"]),
        ("pushed, unique blobs with the base's (bytes, gzip)", b["pushed"]["bytes"], a["pushed"]["bytes"], q["pushed"]),
        ("cold build of the 3 stages (s)", b["cold_build_s"], a["cold_build_s"], q["cold_build"]),
        ("warm build, 3 entrypoints edited (s)", b["warm_build_s"], a["warm_build_s"], q["warm_build"]),
        *((f"start-up of {s}, median of {r['startup_runs']} (ms)", b["startup_ms"][s], a["startup_ms"][s], q["startup"][s]) for s in STAGES),
    ]  # fmt: skip
    lines = [
        "# examples/pipeline: three stages, one venv layer vs one layer per distribution",
        "",
        f"Base `{r['base_image']}` ({r['base_layers']} layers). `bench/bench_pipeline.py`.",
        "",
        "| measure | before (single) | after (per distribution) | after / before |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {x} | {y} | {z} |" for name, x, y, z in rows),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
