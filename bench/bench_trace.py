#!/usr/bin/env python3
"""Trace overhead on ``examples/kitchen-sink``: the untraced run against the traced one, side by side in one run.

    python3 bench/bench_trace.py --python /tmp/ks-venv/bin/python [--runs 5] [--out bench/results/trace.json]
    python3 bench/bench_trace.py --make-venv /tmp/ks-venv          # first make the venv from the wheel cache

Three commands, interleaved per run (so load drift hits them alike), on a copy of the example (the trace file is
written there, never into the repository):

* ``untraced``: ``PYTHON train.py``, as the user runs it;
* ``hook``: the same with only the audit hook loaded (pipeline/trace_hook.py as ``sitecustomize``), the cost the
  hook adds to the user's process;
* ``slimbuild trace``: ``python -m slimbuild trace --python PYTHON --replace -- python train.py``, end to end
  (slimbuild's start-up, the run, the DT_NEEDED closure read with pyelftools, the merge and the atomic write).

It prints the medians (wall time, and CPU time from ``wait4``, steadier on a loaded machine) and the ratios over
``untraced`` (goal: ``slimbuild trace`` <= 1.5x), and checks that the
traces of all runs are byte-identical. Needs this interpreter with slimbuild installed (``pip install -e .``).
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

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "kitchen-sink"
HOOK = REPO / "slimbuild" / "pipeline" / "trace_hook.py"
WHEEL_CACHES = (Path("~/.cache/slimbuild-test-cache/wheels").expanduser(), Path("~/.cache/slimbuild-test-wheels").expanduser())


def make_venv(dest: Path) -> None:
    """A venv with the example's requirements (pandas, scikit-learn, numpy), from the local wheel caches only."""
    subprocess.run([sys.executable, "-m", "venv", str(dest)], check=True)
    links = sorted({str(w.parent) for c in WHEEL_CACHES if c.is_dir() for w in c.rglob("*.whl")})
    args = [a for d in links for a in ("--find-links", d)]
    subprocess.run([str(dest / "bin" / "pip"), "install", "-q", "--no-index", *args, "pandas", "scikit-learn", "numpy"],
                   check=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall time, and CPU time (user + sys of the process and the children it waited for: steadier under load)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{argv} exited with {proc.returncode}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", help="the interpreter of a venv holding the example's requirements")
    parser.add_argument("--make-venv", metavar="DIR", help="make that venv from the wheel caches, then exit")
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "5")))
    parser.add_argument("--out", type=Path, help="write the samples as JSON here")
    args = parser.parse_args()
    if args.make_venv:
        make_venv(Path(args.make_venv))
        return 0
    if not args.python:
        parser.error("--python is required (make one with --make-venv DIR)")
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as tmp:
        project = Path(tmp) / "kitchen-sink"
        shutil.copytree(EXAMPLE, project)
        boot, out = Path(tmp) / "boot", Path(tmp) / "out"
        boot.mkdir()
        shutil.copyfile(HOOK, boot / "sitecustomize.py")
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        hook_env = {**env, "PYTHONPATH": str(boot), "SLIMBUILD_TRACE_DIR": str(out), "SLIMBUILD_TRACE_BOOT": str(boot)}
        commands = {
            "untraced": ([args.python, "train.py"], env),
            "hook": ([args.python, "train.py"], hook_env),
            "slimbuild trace": ([sys.executable, "-m", "slimbuild", "trace", str(project), "--python", args.python,
                                 "--replace", "--", "python", "train.py"], env),
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        traces: list[bytes] = []
        timed([args.python, "train.py"], project, env)  # warm the page cache and the .pyc files once
        for i in range(args.runs):
            for name, (argv, run_env) in commands.items():
                if name == "hook":
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir()
                wall, used = timed(argv, project, run_env)
                samples[name].append(wall)
                cpu[name].append(used)
            traces.append((project / "slimbuild.trace.json").read_bytes())
            print(f"run {i + 1}/{args.runs}: " + ", ".join(f"{n} {s[-1]:.2f}s" for n, s in samples.items()), file=sys.stderr)
        doc = json.loads(traces[0]) if len(set(traces)) == 1 else None
        if doc is None and args.out:
            for i, t in enumerate(traces):
                args.out.with_suffix(f".{i + 1}.trace.json").write_bytes(t)
    base = statistics.median(samples["untraced"])
    base_cpu = statistics.median(cpu["untraced"])
    print(f"| command ({args.runs} runs, interleaved) | wall median | wall min | ratio | CPU median | CPU ratio |")
    print("|---|---|---|---|---|---|")
    for name, s in samples.items():
        c = statistics.median(cpu[name])
        print(f"| {name} | {statistics.median(s):.2f} s | {min(s):.2f} s | {statistics.median(s) / base:.2f}x "
              f"| {c:.2f} s | {c / base_cpu:.2f}x |")
    same = doc is not None
    print(f"\ntraces of the {args.runs} runs identical: {'yes' if same else 'NO'}"
          + (f" ({len(doc['modules'])} modules, {len(doc['libraries']['needed'])} extension modules)" if doc else ""))
    if args.out:
        args.out.write_text(json.dumps({"runs": args.runs, "samples": samples, "cpu": cpu, "identical": same}, indent=1) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
