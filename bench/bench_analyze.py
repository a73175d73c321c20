#!/usr/bin/env python3
"""Benchmark ``slimbuild analyze``/``check`` against deptry and fawltydeps, and measure accuracy.

Run from the repository root:

    python3 bench/bench_analyze.py [--out bench/results/analyze.json] [--runs 3] [--warm-runs 5]

What it does (see bench/README.md for the why):

1. Corpus: downloads a pinned sdist of a big real package (default sympy==1.13.3,
   >1,000 .py files) into ``${SLIMBUILD_BENCH_CACHE:-~/.cache/slimbuild-bench}``
   and unpacks it once.  A *copy* of the tree gets ``bench_entry.py``
   (``import sympy``) so slimbuild has a realistic script entrypoint, and a
   ``requirements.txt`` made from the sdist's own Requires-Dist when the tree
   declares nothing deptry can read (same tree for all three tools).
2. Cold run, side by side: ``slimbuild analyze`` (fresh empty SLIMBUILD_CACHE
   every run) vs ``deptry .`` vs ``fawltydeps --code . --deps .``: median wall
   time and peak RSS (``os.wait4`` rusage of each child), files parsed.
3. Warm ``slimbuild check`` (cache warm, nothing changed): median of N runs,
   against the interpreter floor (``python3 -c pass`` / ``import slimbuild.cli``).
4. Accuracy: golden projects (``tests/golden``), plus a few real sdists whose
   PKG-INFO Requires-Dist is the truth.

Only the standard library and ``packaging`` are needed in this interpreter;
deptry and fawltydeps are found on PATH (or ``pip install deptry fawltydeps``).
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable

# (distribution, pinned version, import name) -- the corpus: > 1,000 .py files, unpacks without building.
CORPUS = ("sympy", "1.13.3", "sympy")
# Small-to-medium packages with clear runtime deps; their sdists unpack without building anything.
ACCURACY = [
    ("requests", "2.32.3", "requests"),
    ("rich", "13.9.4", "rich"),
    ("httpx", "0.28.1", "httpx"),
    ("flask", "3.1.0", "flask"),
    ("jinja2", "3.1.4", "jinja2"),
]
DECLARATION_FILES = ("pyproject.toml", "setup.cfg", "requirements.txt", "requirements.in", "requirements")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- corpus


def cache_root() -> Path:
    return Path(os.environ.get("SLIMBUILD_BENCH_CACHE") or Path.home() / ".cache" / "slimbuild-bench")


def _pip_download(name: str, version: str, dest: Path) -> Path | None:
    """pip download of the sdist with the machine's pip config switched off (plain PyPI)."""
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        cmd = [
            PY,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-build-isolation",
            "-q",
            "-d",
            tmp,
            f"{name}=={version}",
        ]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            return None
        got = [p for p in Path(tmp).iterdir() if p.name.endswith((".tar.gz", ".zip"))]
        if proc.returncode != 0 or len(got) != 1:
            log(f"  pip download {name}=={version} failed (rc={proc.returncode}); falling back to PyPI's simple API")
            return None
        final = dest / got[0].name
        shutil.move(str(got[0]), final)
        return final


def _json_download(name: str, version: str, dest: Path) -> Path:
    """Fallback: the sdist URL from PyPI's simple API (PEP 691 JSON; the index pip uses without config), sha256-checked."""
    from pip._internal.models.index import PyPI  # pip's own default index, not a hard-coded host

    index = os.environ.get("SLIMBUILD_BENCH_INDEX", PyPI.simple_url).rstrip("/")
    req = urllib.request.Request(
        f"{index}/{canonicalize_name(name)}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        meta = json.load(resp)
    prefix = f"{name.replace('-', '_')}-{version}.tar.gz".lower()
    sdists = [f for f in meta["files"] if f["filename"].lower() in {prefix, f"{name}-{version}.tar.gz".lower()}]
    if not sdists:
        raise SystemExit(f"{name}=={version}: no sdist on PyPI")
    u = sdists[0]
    final = dest / u["filename"]
    with urllib.request.urlopen(u["url"], timeout=120) as resp:
        data = resp.read()
    if hashlib.sha256(data).hexdigest() != u["hashes"]["sha256"]:
        raise SystemExit(f"{name}=={version}: sha256 mismatch")
    final.write_bytes(data)
    return final


def fetch_sdist(name: str, version: str) -> tuple[Path, str]:
    """Unpacked sdist root (cached) and how it was obtained."""
    root = cache_root()
    sdir = root / "sdists"
    sdir.mkdir(parents=True, exist_ok=True)
    unpacked = root / "src" / f"{canonicalize_name(name)}-{version}"
    marker = unpacked / ".bench-complete"
    if marker.exists():
        return next(p for p in unpacked.iterdir() if p.is_dir()), marker.read_text().strip()
    archives = [
        p
        for p in sdir.iterdir()
        if canonicalize_name(re.split(r"-\d", p.name, maxsplit=1)[0]) == canonicalize_name(name) and f"-{version}." in p.name
    ]
    how = "cached"
    if archives:
        archive = archives[0]
    else:
        log(f"  downloading {name}=={version} sdist ...")
        got = _pip_download(name, version, sdir)
        how = "pip download"
        if got is None:
            got = _json_download(name, version, sdir)
            how = "PyPI simple API (PEP 691)"
        archive = got
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    if unpacked.exists():
        shutil.rmtree(unpacked)
    unpacked.mkdir(parents=True)
    with tarfile.open(archive) as tf:
        tf.extractall(unpacked, filter="data")
    marker.write_text(f"{how}; {archive.name}; sha256={sha}")
    return next(p for p in unpacked.iterdir() if p.is_dir()), marker.read_text().strip()


def truth_requirements(sdist_root: Path, self_name: str) -> list[str]:
    """Runtime Requires-Dist of the sdist (no extras; markers evaluated for this interpreter/platform)."""
    pkg_info = sdist_root / "PKG-INFO"
    msg = email.parser.Parser().parsestr(pkg_info.read_text(encoding="utf-8", errors="replace"))
    out: set[str] = set()
    for line in msg.get_all("Requires-Dist") or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name != canonicalize_name(self_name):
            out.add(name)
    return sorted(out)


def raw_requires(sdist_root: Path) -> list[str]:
    msg = email.parser.Parser().parsestr((sdist_root / "PKG-INFO").read_text(encoding="utf-8", errors="replace"))
    return [str(Requirement(r)) for r in msg.get_all("Requires-Dist") or [] if "extra ==" not in r]


def count_py(tree: Path) -> int:
    return sum(1 for _ in tree.rglob("*.py"))


def make_tree(src: Path, dest: Path, import_name: str, *, blind: bool = False, requirements: list[str] | None = None) -> Path:
    """A copy of the sdist with bench_entry.py (and, if asked, without any declaration files)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, symlinks=True)
    (dest / "bench_entry.py").write_text(f"import {import_name}\n", encoding="utf-8")
    if blind:
        for n in DECLARATION_FILES:
            p = dest / n
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    if requirements is not None:
        (dest / "requirements.txt").write_text("".join(r + "\n" for r in requirements), encoding="utf-8")
    return dest


def declares_for_deptry(tree: Path) -> bool:
    if (tree / "requirements.txt").is_file():
        return True
    p = tree / "pyproject.toml"
    if p.is_file():
        data = tomllib.loads(p.read_text(encoding="utf-8"))
        if data.get("project", {}).get("dependencies") is not None:
            return True
        if "poetry" in data.get("tool", {}) or "pdm" in data.get("tool", {}):
            return True
    return False


# --------------------------------------------------------------------------- measuring


def measure(
    cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)
) -> dict[str, Any]:
    """Wall time (perf_counter around spawn+wait) and peak RSS (wait4 rusage) of one child process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{stderr[-2000:]}")
    # ru_maxrss is KiB on Linux; it covers the child and the descendants it waited for.
    return {
        "wall_s": wall,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "rss_mib": ru.ru_maxrss / 1024,
        "rc": proc.returncode,
        "stdout": stdout,
        "stderr": stderr,
    }


def slimbuild_env(cache: Path, tree: Path = REPO) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "SLIMBUILD_DEBUG"}}
    env["SLIMBUILD_CACHE"] = str(cache)
    env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def baseline_tree(rev: str, work: Path) -> Path:
    """The slimbuild sources of REV (``git archive``), byte-compiled like the checkout; run with cwd = the tree."""
    dest = work / "baseline"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "slimbuild", "templates"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    subprocess.run([PY, "-m", "compileall", "-q", str(dest / "slimbuild")], check=True)
    probe = subprocess.run(
        [PY, "-c", "import slimbuild; print(slimbuild.__file__)"], cwd=dest, env=slimbuild_env(work, dest), capture_output=True, text=True
    )
    if not probe.stdout.startswith(str(dest)):
        raise SystemExit(f"baseline {rev}: slimbuild loads from {probe.stdout.strip() or probe.stderr.strip()}, not {dest}")
    return dest


def sb_cmd(*args: str) -> list[str]:
    return [PY, "-m", "slimbuild", *args]


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [s["wall_s"] for s in samples]
    return {
        "wall_s_median": statistics.median(walls),
        "wall_s_min": min(walls),
        "wall_s_all": [round(w, 4) for w in walls],
        "cpu_s_median": statistics.median(s["cpu_s"] for s in samples),
        "rss_mib_max": max(s["rss_mib"] for s in samples),
        "runs": len(samples),
    }


def tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    cand = Path(PY).parent / name
    return str(cand) if cand.exists() else None


def tool_version(exe: str) -> str:
    try:
        return subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    except OSError:
        return "?"


# --------------------------------------------------------------------------- benchmarks


def bench_speed(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    name, version, import_name = args.corpus_spec
    src, how = fetch_sdist(name, version)
    truth = truth_requirements(src, name)
    tree = work / "corpus"
    reqs = None
    make_tree(src, tree, import_name)
    if not declares_for_deptry(tree):
        reqs = raw_requires(src)
        make_tree(src, tree, import_name, requirements=reqs)
    n_py = count_py(tree)
    log(f"corpus: {name}=={version} ({how}); {n_py} .py files in the tree (incl. bench_entry.py)")
    if n_py <= 1000:
        log("  WARNING: corpus has <= 1,000 .py files")

    deptry, fawlty = tool("deptry"), tool("fawltydeps")
    tools: dict[str, list[dict[str, Any]]] = {"slimbuild": []}
    base = f"slimbuild@{args.baseline}" if args.baseline else ""
    base_tree = baseline_tree(args.baseline, work) if args.baseline else None
    if base:
        tools[base] = []
    if deptry:
        tools["deptry"] = []
    if fawlty and not args.no_fawltydeps:
        tools["fawltydeps"] = []
    files: dict[str, int | None] = {}
    sb_json: dict[str, Any] = {}
    for i in range(args.runs):
        # interleaved, so drift on the machine hits every tool alike
        cache = work / f"sbcache-cold-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        r = measure(sb_cmd("analyze", str(tree), "--entrypoint", "bench_entry.py", "--json"), cwd=REPO, env=slimbuild_env(cache))
        sb_json = json.loads(r["stdout"])
        files["slimbuild"] = len(sb_json["files"])
        tools["slimbuild"].append(r)
        if base_tree is not None:
            shutil.rmtree(cache, ignore_errors=True)
            args_ = ("analyze", str(tree), "--entrypoint", "bench_entry.py", "--json")
            r = measure(sb_cmd(*args_), cwd=base_tree, env=slimbuild_env(cache, base_tree))
            files[base] = len(json.loads(r["stdout"])["files"])
            tools[base].append(r)
        if deptry:
            r = measure([deptry, "."], cwd=tree, ok=(0, 1))
            m = re.search(r"Scanning (\d+) files", r["stdout"] + r["stderr"])
            files["deptry"] = int(m.group(1)) if m else None
            tools["deptry"].append(r)
        if "fawltydeps" in tools:
            r = measure([fawlty, "--code", ".", "--deps", "."], cwd=tree, ok=(0, 3))
            tools["fawltydeps"].append(r)
        log(f"  cold run {i + 1}/{args.runs}: " + ", ".join(f"{t} {v[-1]['wall_s']:.2f}s" for t, v in tools.items()))
        shutil.rmtree(cache, ignore_errors=True)
    if "fawltydeps" in tools:
        r = measure([fawlty, "--list-sources", "--code", ".", "--deps", "."], cwd=tree, ok=(0, 3))
        files["fawltydeps"] = sum(1 for ln in r["stdout"].splitlines() if ln.strip().endswith((".py", ".ipynb")))

    cold = {t: {**summarise(v), "files_parsed": files.get(t)} for t, v in tools.items()}
    for t in cold:
        cold[t]["per_file_ms"] = 1000 * cold[t]["wall_s_median"] / cold[t]["files_parsed"] if cold[t]["files_parsed"] else None
    ratios = {}
    for other in (*([base] if base else []), "deptry", "fawltydeps"):
        if other in cold:
            ratios[f"slimbuild/{other}"] = {
                "wall": cold["slimbuild"]["wall_s_median"] / cold[other]["wall_s_median"],
                "rss": cold["slimbuild"]["rss_mib_max"] / cold[other]["rss_mib_max"],
                "cpu": cold["slimbuild"]["cpu_s_median"] / cold[other]["cpu_s_median"],
                "per_file_wall": (
                    cold["slimbuild"]["per_file_ms"] / cold[other]["per_file_ms"] if cold[other].get("per_file_ms") else None
                ),
            }

    # warm: one analyze fills the cache, then check (and analyze) with nothing changed
    warm_cache = work / "sbcache-warm"
    shutil.rmtree(warm_cache, ignore_errors=True)
    env = slimbuild_env(warm_cache)
    measure(sb_cmd("analyze", str(tree), "--entrypoint", "bench_entry.py", "--json"), cwd=REPO, env=env)
    measure(sb_cmd("check", str(tree), "--entrypoint", "bench_entry.py"), cwd=REPO, env=env, ok=(0, 1))  # warm-up
    warm_check = [
        measure(sb_cmd("check", str(tree), "--entrypoint", "bench_entry.py"), cwd=REPO, env=env, ok=(0, 1))
        for _ in range(args.warm_runs)
    ]
    warm_analyze = [
        measure(sb_cmd("analyze", str(tree), "--entrypoint", "bench_entry.py", "--json"), cwd=REPO, env=env)
        for _ in range(args.warm_runs)
    ]
    floor_pass = [measure([PY, "-c", "pass"]) for _ in range(args.warm_runs)]
    floor_cli = [measure([PY, "-c", "import slimbuild.cli"], env=env) for _ in range(args.warm_runs)]
    warm = {
        "check": {**summarise(warm_check), "exit_code": warm_check[-1]["rc"], "goal_s": 0.2},
        "analyze": summarise(warm_analyze),
        "python -c pass": summarise(floor_pass),
        "python -c 'import slimbuild.cli'": summarise(floor_cli),
    }
    if base_tree is not None:
        # the same warm protocol for the baseline tree, its own cache, interleaved run by run with a fresh current one
        base_cache = work / "sbcache-warm-base"
        shutil.rmtree(base_cache, ignore_errors=True)
        base_env = slimbuild_env(base_cache, base_tree)
        check = sb_cmd("check", str(tree), "--entrypoint", "bench_entry.py")
        measure(sb_cmd("analyze", str(tree), "--entrypoint", "bench_entry.py", "--json"), cwd=base_tree, env=base_env)
        measure(check, cwd=base_tree, env=base_env, ok=(0, 1))
        side: dict[str, list[dict[str, Any]]] = {"slimbuild": [], base: []}
        for _ in range(args.warm_runs):
            side["slimbuild"].append(measure(check, cwd=REPO, env=env, ok=(0, 1)))
            side[base].append(measure(check, cwd=base_tree, env=base_env, ok=(0, 1)))
        warm["check side by side"] = {t: summarise(v) for t, v in side.items()}
        warm["check side by side"]["ratio"] = (
            warm["check side by side"]["slimbuild"]["wall_s_median"] / warm["check side by side"][base]["wall_s_median"]
        )
    log(f"  warm check median {warm['check']['wall_s_median']:.3f}s")

    profile = None
    if args.profile:
        profile = profile_cold(tree, work)

    ent = sb_json["entrypoints"][0]
    return {
        "corpus": {
            "name": name,
            "version": version,
            "obtained": how,
            "py_files": n_py,
            "entrypoint": f"bench_entry.py: import {import_name}",
            "requirements_txt_added": reqs,
            "truth": truth,
        },
        "tools": {"deptry": tool_version(deptry) if deptry else None, "fawltydeps": tool_version(fawlty) if fawlty else None},
        "cold": cold,
        "ratios": ratios,
        "warm": warm,
        "profile_top": profile,
        "corpus_prediction": {
            "required": [r["name"] for r in sb_json["required"]],
            "optional": [r["name"] for r in sb_json.get("optional", [])],
            "unresolved_tops": sorted({u["module"].split(".")[0] for u in ent["unresolved"]}),
        },
    }


def profile_cold(tree: Path, work: Path) -> list[str]:
    """cProfile of one cold analyze (parsing happens in this process when the pool is not used)."""
    import pstats

    cache = work / "sbcache-prof"
    shutil.rmtree(cache, ignore_errors=True)
    prof = work / "cold.prof"
    measure(
        [
            PY,
            "-m",
            "cProfile",
            "-o",
            str(prof),
            "-m",
            "slimbuild",
            "analyze",
            str(tree),
            "--entrypoint",
            "bench_entry.py",
            "--json",
        ],
        cwd=REPO,
        env=slimbuild_env(cache),
    )
    st = pstats.Stats(str(prof))
    rows = []
    for (fn, line, func), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        if "slimbuild" in fn or func in {"<built-in method builtins.compile>"} or "ast.py" in fn or "pathlib" in fn:
            rows.append((ct, tt, nc, f"{Path(fn).name}:{line}({func})"))
    rows.sort(reverse=True)
    out = [f"{ct:8.2f}s cum {tt:7.2f}s self {nc:8d} calls  {where}" for ct, tt, nc, where in rows[:20]]
    return out


def score(pred: set[str], truth: set[str]) -> dict[str, Any]:
    tp = len(pred & truth)
    return {
        "tp": tp,
        "n_pred": len(pred),
        "n_truth": len(truth),
        "recall": tp / len(truth) if truth else None,
        "precision": tp / len(pred) if pred else None,
        "missed": sorted(truth - pred),
        "extra": sorted(pred - truth),
    }


def bench_golden(work: Path) -> dict[str, Any]:
    here = REPO / "tests" / "golden"
    cases = [(p.name, p, p / "expected.toml") for p in sorted((here / "projects").glob("*")) if (p / "expected.toml").is_file()]
    cases += [(f.stem, REPO / "examples" / f.stem, f) for f in sorted((here / "expected").glob("*.toml"))]
    if not cases:
        return {"skipped": "no tests/golden/projects/*/expected.toml yet"}
    rows = []
    for name, root, exp_file in cases:
        try:
            expected = tomllib.loads(exp_file.read_text())["entrypoints"]
        except (KeyError, tomllib.TOMLDecodeError) as exc:
            rows.append({"case": name, "error": f"unreadable expected file: {exc}"})
            continue
        if not root.is_dir():
            rows.append({"case": name, "error": f"{root} missing"})
            continue
        r = measure(
            sb_cmd("analyze", str(root), "--json"), cwd=REPO, env=slimbuild_env(work / "sbcache-golden"), ok=tuple(range(256))
        )
        try:
            got = {e["name"]: e for e in json.loads(r["stdout"])["entrypoints"]}
        except (ValueError, KeyError):
            rows.append({"case": name, "error": f"analyze exit {r['rc']}: {r['stderr'].strip()[-300:]}"})
            continue
        for entry, want in expected.items():
            e = got.get(entry)
            if e is None:
                rows.append({"case": f"{name}:{entry}", "error": "entrypoint missing from output"})
                continue
            fields = {
                "files": (e["files"], want.get("files")),
                "required": ([x["name"] for x in e["required"]], want.get("required")),
                "missing": ([x["name"] for x in e["missing"]], want.get("missing")),
                "unused": ([x["name"] for x in e["unused"]], want.get("unused")),
                "unresolved": ([x["module"] for x in e["unresolved"]], want.get("unresolved")),
            }
            rows.append(
                {
                    "case": f"{name}:{entry}",
                    "exact": {k: g == w for k, (g, w) in fields.items() if w is not None},
                    "required": score(set(fields["required"][0]), set(want.get("required", []))),
                }
            )
    ok = [r for r in rows if "exact" in r]
    return {
        "cases": rows,
        "all_fields_exact": sum(all(r["exact"].values()) for r in ok),
        "n": len(rows),
        "required": _micro([r["required"] for r in ok]),
    }


def _micro(scores: list[dict[str, Any]]) -> dict[str, Any]:
    tp = sum(s["tp"] for s in scores)
    npred = sum(s["n_pred"] for s in scores)
    ntruth = sum(s["n_truth"] for s in scores)
    return {
        "tp": tp,
        "n_pred": npred,
        "n_truth": ntruth,
        "recall": tp / ntruth if ntruth else None,
        "precision": tp / npred if npred else None,
    }


MODES = ("as-shipped", "as-shipped+venv", "blind")


def project_venv(src: Path, name: str, version: str) -> Path:
    """The environment a user of the sdist would have: a venv (cached) with its runtime Requires-Dist installed
    by pip, as ``pip install -r`` of them would; its interpreter."""
    venv = cache_root() / "venvs" / f"{canonicalize_name(name)}-{version}"
    python = venv / "bin" / "python"
    if (venv / ".bench-complete").exists():
        return python
    if venv.exists():
        shutil.rmtree(venv)
    log(f"  making the venv of {name}=={version} (its runtime requirements) ...")
    subprocess.run([PY, "-m", "venv", str(venv)], check=True)
    reqs = raw_requires(src)
    if reqs:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs],
            check=True, capture_output=True, timeout=600,
        )
    (venv / ".bench-complete").write_text("\n".join(reqs))
    return python


def bench_accuracy(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rows = []
    for name, version, import_name in args.accuracy_spec:
        src, how = fetch_sdist(name, version)
        truth = set(truth_requirements(src, name))
        for mode in MODES:
            tree = make_tree(src, work / f"acc-{name}-{mode}", import_name, blind=(mode == "blind"))
            python = ("--python", str(project_venv(src, name, version))) if mode.endswith("+venv") else ()
            r = measure(
                sb_cmd("analyze", str(tree), "--entrypoint", "bench_entry.py", "--json", *python),
                cwd=REPO,
                env=slimbuild_env(work / "sbcache-acc"),
                ok=tuple(range(256)),
            )
            if r["rc"] != 0:
                rows.append({"package": f"{name}=={version}", "mode": mode, "error": r["stderr"].strip()[-400:]})
                continue
            doc = json.loads(r["stdout"])
            ent = doc["entrypoints"][0]
            # what the project must declare itself: required, less what declared distributions bring (SB020)
            pred = {canonicalize_name(x["name"]) for x in doc["required"] if not x.get("through")}
            rows.append(
                {
                    "package": f"{name}=={version}",
                    "mode": mode,
                    "obtained": how,
                    "files": len(doc["files"]),
                    "truth": sorted(truth),
                    "required": sorted(pred),
                    "via": {x["name"]: x["via"] for x in doc["required"]},
                    "through": {x["name"]: x["through"] for x in doc["required"] if x.get("through")},
                    "optional": sorted(canonicalize_name(x["name"]) for x in doc.get("optional", [])),
                    "unresolved_tops": sorted({u["module"].split(".")[0] for u in ent["unresolved"]}),
                    **score(pred, truth),
                }
            )
            log(f"  accuracy {name} [{mode}]: recall {rows[-1]['recall']} precision {rows[-1]['precision']}")
    overall = {m: _micro([r for r in rows if r.get("mode") == m and "tp" in r]) for m in MODES}
    return {"packages": rows, "overall": overall}


# --------------------------------------------------------------------------- report


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def render(res: dict[str, Any]) -> str:
    out = []
    sp = res.get("speed")
    if sp:
        c = sp["corpus"]
        out.append(
            f"### Cold analysis: {c['name']}=={c['version']} sdist, {c['py_files']} .py files "
            f"(slimbuild entrypoint: {c['entrypoint']})\n"
        )
        out.append("| tool | median wall (s) | min (s) | median CPU (s) | peak RSS (MiB) | files parsed | ms/file |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for t, v in sp["cold"].items():
            out.append(
                f"| {t} | {v['wall_s_median']:.2f} | {v['wall_s_min']:.2f} | {v['cpu_s_median']:.2f} | {v['rss_mib_max']:.0f} | "
                f"{v['files_parsed'] if v['files_parsed'] is not None else 'n/a'} | {_f(v['per_file_ms'])} |"
            )
        out.append("")
        out.append("| ratio | wall | CPU | peak RSS | wall per file parsed |")
        out.append("|---|---:|---:|---:|---:|")
        for k, v in sp["ratios"].items():
            goal = " (goal <= 1.0)" if k == "slimbuild/deptry" else ""
            out.append(f"| {k}{goal} | {v['wall']:.2f} | {v['cpu']:.2f} | {v['rss']:.2f} | {_f(v['per_file_wall'])} |")
        out.append("")
        out.append("### Warm (cache warm, nothing changed)\n")
        out.append("| command | median wall (s) | min (s) | median CPU (s) | peak RSS (MiB) |")
        out.append("|---|---:|---:|---:|---:|")
        for k, v in sp["warm"].items():
            if k == "check side by side":
                continue
            label = "slimbuild check (goal <= 0.2 s)" if k == "check" else ("slimbuild analyze --json" if k == "analyze" else k)
            out.append(
                f"| {label} | {v['wall_s_median']:.3f} | {v['wall_s_min']:.3f} "
                f"| {v['cpu_s_median']:.3f} | {v['rss_mib_max']:.0f} |"
            )
        out.append("")
        side = sp["warm"].get("check side by side")
        if side:
            out.append("Warm `check`, interleaved with the baseline:\n")
            out.append("| tree | median wall (s) | min (s) |")
            out.append("|---|---:|---:|")
            for t, v in side.items():
                if t != "ratio":
                    out.append(f"| {t} | {v['wall_s_median']:.3f} | {v['wall_s_min']:.3f} |")
            out.append(f"\nratio current / baseline: {side['ratio']:.2f}\n")
    g = res.get("golden")
    if g:
        out.append("### Accuracy: golden projects\n")
        if "skipped" in g:
            out.append(f"skipped: {g['skipped']}\n")
        else:
            out.append("| case | all fields exact | required recall | required precision | notes |")
            out.append("|---|---|---:|---:|---|")
            for r in g["cases"]:
                if "error" in r:
                    out.append(f"| {r['case']} | error | | | {r['error'][:80]} |")
                    continue
                bad = [k for k, v in r["exact"].items() if not v]
                s = r["required"]
                out.append(
                    f"| {r['case']} | {'yes' if not bad else 'no'} | {_f(s['recall'])} | {_f(s['precision'])} | "
                    f"{'differs: ' + ', '.join(bad) if bad else ''} |"
                )
            out.append(
                f"\n{g['all_fields_exact']}/{g['n']} entrypoints match on every field; required: "
                f"recall {_f(g['required']['recall'])}, precision {_f(g['required']['precision'])}\n"
            )
    a = res.get("accuracy")
    if a:
        out.append("### Accuracy: real sdists (truth = PKG-INFO Requires-Dist, no extras)\n")
        out.append("| package | mode | files traced | recall | precision | missed | extra | unresolved imports |")
        out.append("|---|---|---:|---:|---:|---|---|---|")
        for r in a["packages"]:
            if "error" in r:
                out.append(f"| {r['package']} | {r['mode']} | error | | | | | {r['error'][:60]} |")
                continue
            out.append(
                f"| {r['package']} | {r['mode']} | {r['files']} | {_f(r['recall'])} | {_f(r['precision'])} | "
                f"{', '.join(r['missed'])} | {', '.join(r['extra'])} | {', '.join(r['unresolved_tops'])} |"
            )
        for m, o in a["overall"].items():
            out.append(
                f"| **overall** | {m} | | {_f(o['recall'])} | {_f(o['precision'])} | "
                f"{o['n_truth'] - o['tp']} of {o['n_truth']} | {o['n_pred'] - o['tp']} of {o['n_pred']} | |"
            )
        if sp:
            cp = sp["corpus_prediction"]
            s = score(set(cp["required"]), set(sp["corpus"]["truth"]))
            out.append(
                f"| {sp['corpus']['name']} (corpus, not in overall) | as-shipped+requirements.txt | "
                f"{sp['cold']['slimbuild']['files_parsed']} | {_f(s['recall'])} | {_f(s['precision'])} | "
                f"{', '.join(s['missed'])} | {', '.join(s['extra'])} | {', '.join(cp['unresolved_tops'])} |"
            )
        out.append("")
    if sp and sp.get("profile_top"):
        out.append("### cProfile of one cold analyze (top by cumulative time)\n")
        out.append("```")
        out.extend(sp["profile_top"])
        out.append("```")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "analyze.json"))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 3)), help="cold runs per tool (median)")
    ap.add_argument("--warm-runs", type=int, default=5, help="warm check runs (median)")
    ap.add_argument(
        "--corpus",
        default="==".join(CORPUS[:2]) + ":" + CORPUS[2],
        help="NAME==VERSION:IMPORT of the big sdist (default %(default)s)",
    )
    ap.add_argument(
        "--accuracy", default=",".join(f"{n}=={v}:{i}" for n, v, i in ACCURACY), help="comma-separated NAME==VERSION:IMPORT list"
    )
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--no-fawltydeps", action="store_true", help="leave out fawltydeps (the slowest tool)")
    ap.add_argument("--profile", action="store_true", help="also cProfile one cold analyze and print the top entries")
    ap.add_argument(
        "--baseline", default="", metavar="REV", help="also run slimbuild as of git REV, interleaved (cold analyze and warm check)"
    )
    args = ap.parse_args()

    def spec(s: str) -> tuple[str, str, str]:
        nv, _, imp = s.partition(":")
        n, _, v = nv.partition("==")
        return n, v, imp or n.replace("-", "_")

    args.corpus_spec = spec(args.corpus)
    args.accuracy_spec = [spec(s) for s in args.accuracy.split(",") if s]

    # An installed slimbuild has its bytecode compiled by pip; a checkout run with
    # PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module from source on every run.
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "slimbuild")], check=True)
    t0 = time.perf_counter()
    res: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_at_start": os.getloadavg(),
        },
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with tempfile.TemporaryDirectory(prefix="slimbuild-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_speed:
            res["speed"] = bench_speed(args, work)
        if not args.skip_accuracy:
            log("golden projects ...")
            res["golden"] = bench_golden(work)
            log("real sdists ...")
            res["accuracy"] = bench_accuracy(args, work)
    res["elapsed_s"] = time.perf_counter() - t0
    res["machine"]["loadavg_at_end"] = os.getloadavg()
    for part in (res.get("speed") or {}).get("cold", {}).values():
        part.pop("stdout", None)
    table = render(res)
    print(table)
    m = res["machine"]
    print(
        f"\n(total bench time {res['elapsed_s']:.0f} s; python {m['python']}, {m['cpus']} CPUs, load average "
        f"{m['loadavg_at_start'][0]:.2f} at start, {m['loadavg_at_end'][0]:.2f} at end)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
