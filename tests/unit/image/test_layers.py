"""The venv in layers (issue 17): the grouping (image/layers.py), the Dockerfile it renders and the builder's
staging of each distribution under its own root (stage_venv.py --layers), run on fake venvs."""

from __future__ import annotations

import hashlib
import marshal
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slimbuild.errors import ConfigError
from slimbuild.image import stage_venv
from slimbuild.image.layers import (
    BUCKETS,
    ENGINE_LAYER_LIMIT,
    MAX_LAYERS,
    LayerUnit,
    WheelInfo,
    group_layers,
    layer_budget,
    layer_steps,
    layered,
    layout_text,
    unit_key,
    wheel_name,
)
from slimbuild.image.plan import BuildPlan
from slimbuild.image.render import render_dockerfile

SCRIPT = Path(stage_venv.__file__)
SITE = "lib/python3.11/site-packages"
BASE = "python:3.11-slim@sha256:" + "a" * 64


def _wheel(name: str, size: int) -> WheelInfo:
    return WheelInfo(name, hashlib.sha256(f"{name}-1.0".encode()).hexdigest(), size)


# ---------------------------------------------------------------- grouping


def test_M1_each_distribution_is_one_layer_keyed_by_its_wheel_only() -> None:
    small = [_wheel("six", 11_000), _wheel("pyyaml", 828_000)]
    big = [*small, _wheel("numpy", 16_900_000), _wheel("tzdata", 348_000)]
    for lock in (small, big):
        units = group_layers(lock)
        assert [u.names for u in units] == [(w.name,) for w in sorted(lock, key=lambda w: -w.size)]  # largest first
    # the same wheel gives the same key whatever else the lock holds
    key = {u.names: u.key for u in group_layers(small)}
    assert all(key[u.names] == u.key for u in group_layers(big) if u.names in key)
    assert unit_key([_wheel("six", 1)]) != unit_key([WheelInfo("six", "0" * 64, 1)])  # another wheel, another key


def test_M1_a_lock_of_130_distributions_stays_within_the_engines_layer_limit_deterministically() -> None:
    rng = random.Random(17)
    lock = [_wheel(f"dist-{i:03d}", rng.randrange(1_000, 5_000_000)) for i in range(130)]
    units = group_layers(lock)
    assert len(units) <= MAX_LAYERS
    names = [n for u in units for n in u.names]
    assert sorted(names) == sorted(w.name for w in lock)  # each distribution in exactly one layer
    shuffled = lock[:]
    rng.shuffle(shuffled)
    assert group_layers(shuffled) == units  # not the lock's order
    largest = sorted(lock, key=lambda w: -w.size)[: MAX_LAYERS - BUCKETS]
    assert all(LayerUnit(unit_key([w]), (w.name,)) in units for w in largest)  # the largest alone
    # one more small distribution moves no other distribution out of its group but the one it joins
    grown = group_layers([*lock, _wheel("dist-new", 1_000)])
    joined = next(u for u in grown if "dist-new" in u.names)
    assert {u for u in grown if u is not joined} - set(units) == set()

    plan = BuildPlan(
        base_image=BASE, pip_wheel="pip-25.3-py3-none-any.whl", wheel_files=(), app_files=("a.py",),
        entrypoint=("/opt/venv/bin/python", "/app/a.py"), source_date_epoch=1_700_000_000, layers=units,
    )  # fmt: skip
    dockerfile = render_dockerfile(plan)
    deps = dockerfile.split("AS deps", 1)[1].split("AS runtime", 1)[0]
    copies = [line for line in deps.splitlines() if line.startswith("COPY --from=builder")]
    assert copies == [f"COPY --from=builder /stage/{u.key}/ /" for u in units] + ["COPY --from=builder /stage/skel/ /"]
    assert len(copies) + 2 + 57 <= ENGINE_LAYER_LIMIT  # WORKDIR, the app, a base of 57 layers (deeper: M18)
    assert "--layers /tmp/slimbuild-layers.txt" in dockerfile
    assert layout_text(units).decode().splitlines()[1:] == [f"{u.key} {' '.join(u.names)}" for u in units]


def test_M1_venv_layers_default_and_bad_values() -> None:
    assert layered("", 3) and not layered("", 1)
    assert layered("distribution", 1) and not layered("single", 3)
    with pytest.raises(ConfigError, match="venv-layers = 'per-dist' is not one of single, distribution"):
        layered("per-dist", 1)
    assert wheel_name("PyYAML-6.0.4-cp311-cp311-manylinux2014_x86_64.whl") == "pyyaml"
    assert wheel_name("My_Lib-1.0.tar.gz") == "my-lib"


def test_M1_single_layer_renders_todays_dockerfile() -> None:
    plan = BuildPlan(
        base_image=BASE, pip_wheel="pip-25.3-py3-none-any.whl", wheel_files=(), app_files=("a.py",),
        entrypoint=("/opt/venv/bin/python", "/app/a.py"), source_date_epoch=1_700_000_000,
    )  # fmt: skip
    dockerfile = render_dockerfile(plan)
    assert "COPY --from=builder /stage/ /" in dockerfile and "--layers" not in dockerfile and "/stage/skel/" not in dockerfile


def _layered_dockerfile(units: tuple[LayerUnit, ...]) -> str:
    plan = BuildPlan(
        base_image=BASE, pip_wheel="pip-25.3-py3-none-any.whl", wheel_files=(), app_files=("a.py",),
        entrypoint=("/opt/venv/bin/python", "/app/a.py"), source_date_epoch=1_700_000_000, layers=units,
    )  # fmt: skip
    return render_dockerfile(plan)


@pytest.mark.parametrize("base_layers", [1, 60, 100, 118])
def test_M18_the_venv_budget_leaves_room_for_a_deep_base_and_the_templates_other_layers(base_layers: int) -> None:
    rng = random.Random(base_layers)
    lock = [_wheel(f"dist-{i:03d}", rng.randrange(1_000, 5_000_000)) for i in range(90)]
    first = group_layers(lock)  # the default budget, as the first render has it
    root, steps = layer_steps(_layered_dockerfile(first))
    assert root == BASE and steps == len(first) + 3  # the venv's COPYs, then the skeleton, WORKDIR /app and the app
    budget = layer_budget(base_layers, steps - len(first))
    units = group_layers(lock, budget)
    _, total = layer_steps(_layered_dockerfile(units))
    assert base_layers + total <= ENGINE_LAYER_LIMIT and len(units) <= budget <= MAX_LAYERS  # empty buckets are dropped
    assert budget == min(MAX_LAYERS, ENGINE_LAYER_LIMIT - base_layers - 3)
    assert sorted(n for u in units for n in u.names) == sorted(w.name for w in lock)  # each distribution once
    shuffled = lock[:]
    rng.shuffle(shuffled)
    assert group_layers(shuffled, budget) == units  # deterministic: not the lock's order
    if budget < len(lock):  # the largest keep their own layer, the rest share the buckets
        solo = [u for u in units if len(u.names) == 1]
        biggest = sorted(lock, key=lambda w: -w.size)[: budget - min(BUCKETS, max(1, budget // 4))]
        assert all(LayerUnit(unit_key([w]), (w.name,)) in solo for w in biggest)


def test_M18_a_base_too_deep_for_any_venv_layer_is_exit_2_and_tiny_budgets_still_group() -> None:
    with pytest.raises(ConfigError, match="the base image has 121 layers: with the 3 more") as info:
        layer_budget(121, 3)
    assert "124 layers" in info.value.message and "fewer layers" in (info.value.hint or "")
    assert layer_budget(120, 3) == 1
    lock = [_wheel(f"d{i}", 10 + i) for i in range(9)]
    (one,) = group_layers(lock, 1)
    assert sorted(one.names) == sorted(w.name for w in lock)
    assert len(group_layers(lock, 5)) <= 5 and len(group_layers(lock, 9)) == 9
    # a FROM chain through named stages, a --platform flag, and a stage named by index
    text = "FROM --platform=linux/amd64 img:1 AS a\nRUN x\nFROM a AS b\nCOPY y /\nWORKDIR /w\n"
    text += "FROM other AS c\nRUN z\nFROM 1\nADD q /\n"
    assert layer_steps(text) == ("img:1", 4)


# ---------------------------------------------------------------- staging


DISTS = {
    "alpha": {"alpha/__init__.py": "from alpha import core\n", "alpha/core.py": "X = {'a': 1}\n", "ns/alpha_part.py": "A = 1\n"},
    "beta": {"beta/__init__.py": "B = 2\n"},
    "gamma": {"gamma.py": "G = 3\n", "ns/gamma_part.py": "C = 3\n"},
}


def _install(venv: Path, dists: list[str]) -> None:
    """A venv as pip leaves it: each distribution's files, its .dist-info with METADATA, INSTALLER and RECORD
    (a console script in bin/ included), the venv's own pyvenv.cfg and bin/python."""
    site = venv / SITE
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to("/usr/bin/python3")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    site.mkdir(parents=True)
    for name in dists:
        info = f"{name}-1.0.dist-info"
        files = {**DISTS[name], f"{info}/METADATA": f"Name: {name}\nVersion: 1.0\n", f"{info}/INSTALLER": "pip\n"}
        for rel, text in files.items():
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_text(text, encoding="utf-8")
        script = venv / "bin" / f"{name}-cli"
        script.write_text(f"#!{venv}/bin/python\nimport {name}\n", encoding="utf-8")
        script.chmod(0o755)
        record = [*files, f"../../../bin/{name}-cli", f"{info}/RECORD"]
        (site / info / "RECORD").write_text("".join(f"{r},,\n" for r in record), encoding="utf-8")


def _stage(root: Path, dists: list[str], *extra: str) -> tuple[Path, list[LayerUnit]]:
    venv, stage = root / "venv", root / "stage"
    for path in (venv, stage, root / "etc"):
        shutil.rmtree(path, ignore_errors=True)
    _install(venv, dists)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n", encoding="utf-8")
    (root / "etc" / "group").write_text("root:x:0:\n", encoding="utf-8")
    units = list(group_layers([_wheel(n, 100) for n in dists]))
    (root / "layers.txt").write_bytes(layout_text(units))
    subprocess.run(
        [
            sys.executable, str(SCRIPT), "--venv", str(venv), "--site-packages", str(venv / SITE), "--stage", str(stage),
            "--etc", str(root / "etc"), "--epoch", "1700000000", "--uid", "10001", "--layers", str(root / "layers.txt"),
            *extra,
        ],
        check=True, env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip
    return stage, units


def _snapshot(top: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every entry below top (directories included): mode, mtime and content (a link's target)."""
    out = {}
    for path in sorted(top.rglob("*")):
        st = path.lstat()
        data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes() if path.is_file() else b""
        out[path.relative_to(top).as_posix()] = (st.st_mode, int(st.st_mtime), data)
    return out


def test_M2_each_distribution_is_staged_under_its_own_root_with_its_dist_info_and_scripts(tmp_path: Path) -> None:
    stage, units = _stage(tmp_path, ["alpha", "beta"], "--pyc", "--strip-sources")
    venv = str(tmp_path / "venv").lstrip("/")
    key = {u.names[0]: u.key for u in units}
    alpha = stage / key["alpha"] / venv
    assert sorted(p.relative_to(alpha).as_posix() for p in alpha.rglob("*") if p.is_file()) == [
        "bin/alpha-cli",
        f"{SITE}/alpha-1.0.dist-info/INSTALLER",
        f"{SITE}/alpha-1.0.dist-info/METADATA",
        f"{SITE}/alpha-1.0.dist-info/RECORD",
        f"{SITE}/alpha/__init__.pyc",
        f"{SITE}/alpha/core.pyc",
        f"{SITE}/ns/alpha_part.pyc",
    ]
    # the bytecode names the source where the image has it, not where the builder staged it
    code = marshal.loads((alpha / SITE / "alpha/core.pyc").read_bytes()[16:])
    assert code.co_filename == f"/{venv}/{SITE}/alpha/core.py"
    skeleton = stage / "skel" / venv
    assert sorted(p.relative_to(skeleton).as_posix() for p in skeleton.rglob("*") if not p.is_dir()) == [
        "bin/python", "pyvenv.cfg"
    ]  # fmt: skip
    assert (stage / "skel/etc/passwd").read_text().endswith("app:x:10001:10001:app:/app:/usr/sbin/nologin\n")
    for unit in units:  # every directory 0755 and every entry at the fixed time, whatever the project's epoch
        assert {(m & 0o7777 if (m >> 12) == 4 else 0, t) for m, t, _ in _snapshot(stage / unit.key).values()} <= {
            (0o755, stage_venv.UNIT_EPOCH), (0, stage_venv.UNIT_EPOCH)
        }  # fmt: skip
    assert {t for _, t, _ in _snapshot(stage / "skel").values()} == {1_700_000_000}


def test_M2_a_distributions_layer_does_not_depend_on_the_other_distributions(tmp_path: Path) -> None:
    """alpha next to beta, and alpha next to gamma (which shares alpha's ns/ directory): the same tree, byte
    for byte, with the same directory entries (site-packages/, bin/, ns/ ...), modes and times."""
    trees = []
    for others in (["beta"], ["gamma"], ["beta", "gamma"]):
        stage, units = _stage(tmp_path, sorted(["alpha", *others]), "--pyc")
        (key,) = [u.key for u in units if u.names == ("alpha",)]
        trees.append(_snapshot(stage / key))
    assert trees[0] == trees[1] == trees[2]
    assert any(name.endswith(f"{SITE}/ns") for name in trees[0])
