#!/usr/bin/env python3
"""Bytes a ``build --push`` uploads after a one-line change to a first-party file, against the whole image.

Run from the repository root (the engine must be up, and Debian's ``docker-registry`` installed:
``bash scripts/docker-up.sh``):

    python3 bench/bench_push.py [--example kitchen-sink] [--out bench/results/push.json]

Side by side, on a temp copy of ``examples/<example>`` (see the ``## push`` section of bench/README.md):

* first  = ``slimbuild build COPY --base-image BASE --push -t PROXY/bench/app:first`` to an empty registry:
  every layer goes up (the local-only test base too), i.e. the whole image;
* second = the same after a one-line change to train.py (its printed precision; edit_train of bench_build.py),
  pushed as ``:second`` to the same registry.

Measured two ways: the request bodies a counting proxy on 127.0.0.1 saw (tests/docker/registry_proxy.py, in
front of the registry of tests/docker/conftest.py's ``registry_server``), and the growth of the registry's
storage directory. Ratio = second / first. The time is the whole ``build --push`` run (build cached or not).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_build import BASE, SB_CACHE, edit_train  # noqa: E402
from tests.docker.conftest import registry_server  # noqa: E402
from tests.docker.registry_proxy import registry_proxy  # noqa: E402


def _storage(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _push(project: Path, ref: str) -> dict[str, Any]:
    """One in-process ``slimbuild build --push``: exit code, seconds, and the image it pushed."""
    from slimbuild.cli import main

    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["build", str(project), "--base-image", BASE, "--push", "-t", ref, "--json"])
    seconds = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"build --push {ref} failed ({code}): {err.getvalue()[-2000:]}")
    (image,) = json.loads(out.getvalue())["images"]
    layers = [line for line in err.getvalue().splitlines() if line.startswith(f"slimbuild: {ref}: layer ")]  # this ref's
    return {"seconds": round(seconds, 1), "image_id": image["image_id"], "pushed": image["pushed"],
            "size_bytes": image["size_bytes"], "tags": image["tags"],
            "layers_pushed": sum(line.endswith(": pushed") for line in layers),
            "layers_already_there": sum(line.endswith("already exists") for line in layers)}  # fmt: skip


def measure(example: str) -> dict[str, Any]:
    """Push the example, change one line, push again: bytes through the proxy and registry growth, each time."""
    os.environ.setdefault("SLIMBUILD_CACHE", SB_CACHE)
    os.environ.setdefault("SOURCE_DATE_EPOCH", "1700000000")
    results: dict[str, Any] = {"example": example, "base": BASE}
    with tempfile.TemporaryDirectory(prefix="slimbuild-bench-push-") as tmp:
        project = Path(tmp) / "bench-push"
        shutil.copytree(REPO / "examples" / example, project)
        reg_dir = Path(tmp) / "registry"
        made: list[str] = []
        try:
            with registry_server(reg_dir) as upstream, registry_proxy(upstream) as (address, state):
                for step in ("first", "second"):
                    if step == "second":
                        edit_train(project / "train.py", 4)
                    sent, stored = state.uploaded_bytes, _storage(reg_dir / "data")
                    run = _push(project, f"{address}/bench/app:{step}")
                    made.extend(run["tags"])
                    run["uploaded_bytes"] = state.uploaded_bytes - sent
                    run["storage_growth_bytes"] = _storage(reg_dir / "data") - stored
                    results[step] = run
        finally:
            _untag(made)
    first, second = results["first"], results["second"]
    results["ratio_uploaded"] = round(second["uploaded_bytes"] / first["uploaded_bytes"], 5)
    results["ratio_storage"] = round(second["storage_growth_bytes"] / first["storage_growth_bytes"], 5)
    return results


def _untag(refs: list[str]) -> None:
    import docker

    client = docker.APIClient(version="auto")
    for ref in refs:
        with contextlib.suppress(Exception):
            client.remove_image(ref)


def report(r: dict[str, Any]) -> str:
    mb = 1e6
    rows = [
        "| push | uploaded (proxy) | registry growth | layers pushed / already there | time |",
        "|---|---|---|---|---|",
    ]
    for step, what in (("first", "first push (whole image)"), ("second", "after a one-line change to train.py")):
        s = r[step]
        rows.append(
            f"| {what} | {s['uploaded_bytes'] / mb:.3f} MB | {s['storage_growth_bytes'] / mb:.3f} MB | "
            f"{s['layers_pushed']} / {s['layers_already_there']} | {s['seconds']:.1f} s |"
        )
    rows.append(f"| **ratio** second / first | **{r['ratio_uploaded']:.5f}** | **{r['ratio_storage']:.5f}** | | |")
    return f"## push ({r['example']}, base {r['base']})\n\n" + "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default="kitchen-sink")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--md", type=Path, default=None, help="also write the markdown table here")
    args = parser.parse_args()
    results = measure(args.example)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if args.md is not None:
        args.md.write_text(report(results), encoding="utf-8")
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
