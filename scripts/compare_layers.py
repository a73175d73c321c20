"""Prove that two source trees of slimbuild build the same images: the same layer diff ids for the same inputs.

For each example (``examples/*``), both trees run ``slimbuild build --json`` on one copy of the example at a
fixed path, with the same base image, wheel cache and ``SOURCE_DATE_EPOCH``, on the same engine; the script
then compares the two images' ``RootFS.Layers`` (the diff ids) and the rendered Dockerfiles. The engine's
build cache stays on: a step whose instruction and context files are identical is reused, so equal diff ids
mean every step got the same inputs (a changed Dockerfile or context would rebuild the step, and the classic
builder's wall-clock timestamps would then change its diff id).

Run it (needs a running engine and the test base image, see scripts/docker-up.sh)::

    .venv/bin/python scripts/compare_layers.py --before 155cc69           # REV's tree against this checkout
    .venv/bin/python scripts/compare_layers.py --before /work/wt-base     # or a directory holding a tree

Exit 0 when every example matches, 1 when one differs, 2 on a usage or build error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE_IMAGE = os.environ.get("SLIMBUILD_BASE_IMAGE", "slimbuild-test/debian-python:bookworm")
CACHE = Path(os.environ.get("SLIMBUILD_TEST_CACHE", "~/.cache/slimbuild-test-cache")).expanduser()
WORK = Path("/tmp/slimbuild-compare-layers")  # the same project path for both trees: it is part of no layer


def tree_of(before: str, tmp: Path) -> Path:
    if Path(before).is_dir():
        return Path(before).resolve()
    dest = tmp / "before"
    dest.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", before, "slimbuild", "templates"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def build(tree: Path, example: str) -> dict[str, object]:
    """Build one example with the slimbuild of TREE; the image id, its diff ids and the Dockerfile."""
    project = WORK / example
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(REPO / "examples" / example, project)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIMBUILD_") and k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env.update(SLIMBUILD_CACHE=str(CACHE), SOURCE_DATE_EPOCH="1700000000", PYTHONPATH=str(tree), PYTHONHASHSEED="0")
    loads = subprocess.run(
        [sys.executable, "-c", "import slimbuild; print(slimbuild.__file__)"], cwd=tree, env=env, capture_output=True, text=True
    )
    if not loads.stdout.startswith(str(tree)):
        raise SystemExit(f"compare_layers: slimbuild loads from {loads.stdout.strip() or loads.stderr.strip()}, not {tree}")
    run = subprocess.run(
        [sys.executable, "-m", "slimbuild", "build", str(project), "--base-image", BASE_IMAGE, "--json"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        print(f"compare_layers: {example} with {tree}: exit {run.returncode}: {run.stderr.strip()}", file=sys.stderr)
        raise SystemExit(2)
    (image,) = json.loads(run.stdout)["images"]
    inspect = subprocess.run(["docker", "image", "inspect", image["image_id"]], capture_output=True, text=True, check=True)
    layers = json.loads(inspect.stdout)[0]["RootFS"]["Layers"]
    dockerfile = subprocess.run(
        [sys.executable, "-m", "slimbuild", "dockerfile", str(project), "--base-image", BASE_IMAGE],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    return {"id": image["image_id"], "layers": layers, "dockerfile": dockerfile}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="a git revision of this repository, or a directory holding a tree")
    ap.add_argument("--after", default=str(REPO), help="the tree to compare (default: this checkout)")
    ap.add_argument("examples", nargs="*", help="example names (default: every directory in examples/)")
    args = ap.parse_args()
    examples = args.examples or sorted(p.name for p in (REPO / "examples").iterdir() if p.is_dir())
    differ = 0
    with tempfile.TemporaryDirectory(prefix="slimbuild-layers-") as tmp:
        before, after = tree_of(args.before, Path(tmp)), Path(args.after).resolve()
        for example in examples:
            a, b = build(before, example), build(after, example)
            same = a["layers"] == b["layers"]
            differ += not same
            layers = a["layers"]
            assert isinstance(layers, list)
            ids = f"{str(a['id'])[7:19]} / {str(b['id'])[7:19]}"
            print(
                f"{'same' if same else 'DIFFER'}  {example}: {len(layers)} layers; images {ids}; "
                f"Dockerfile {'identical' if a['dockerfile'] == b['dockerfile'] else 'differs'}"
            )
            if not same:
                for x, y in zip(a["layers"], b["layers"]):  # type: ignore[call-overload]
                    print(f"    {x} {'==' if x == y else '!='} {y}")
    shutil.rmtree(WORK, ignore_errors=True)
    print(f"{len(examples)} examples, {len(examples) - differ} with identical layer diff ids, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
