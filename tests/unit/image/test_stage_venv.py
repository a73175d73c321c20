"""The builder stage's finisher (slimbuild/stage_venv.py), run on a fake venv as the image runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slimbuild.image import stage_venv

EPOCH = 1_700_000_000
SCRIPT = Path(stage_venv.__file__)
SITE = "lib/python3/site-packages"
FILES = {
    "pkg/__init__.py": "from pkg import mod\n",
    "pkg/mod.py": "VALUE = {'a', 'b', 'c'}\n\ndef f():\n    return sorted(VALUE)\n",
    "pkg/tests/test_mod.py": "def test(): pass\n",
    "pkg/sub/tests/__init__.py": "",
    "pkg/__pycache__/stale.cpython-311.pyc": "junk",
    "pkg/_speedups.c": "int x;\n",
    "pkg/_speedups.h": "int x;\n",
    "pkg/_speedups.pyx": "cdef int x\n",
    "pkg/_speedups.cpython-311-x86_64-linux-gnu.so": "\x7fELF not really",
    "pkg.libs/libopenblas-r0.3.so": "\x7fELF vendored",
    "numba/__init__.py": "import inspect\nSOURCE_NEEDED = True\n",
    "legacy/__init__.py": "",
    "legacy/py2.py": "print 'python 2'\n",
    "pip/__init__.py": "",
    "pip-24.2.dist-info/METADATA": "Name: pip\n",
    "setuptools/__init__.py": "",
    "keepme-1.0.dist-info/RECORD": "pkg/mod.py,,\n",
}


def _venv(root: Path) -> Path:
    venv = root / "venv"
    for rel, text in FILES.items():
        path = venv / SITE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (venv / "bin").mkdir()
    for name in ("python3", "activate", "Activate.ps1", "activate.fish"):
        (venv / "bin" / name).write_text("#!/bin/sh\n", encoding="utf-8")
    (venv / "bin" / "python").symlink_to("python3")
    etc = root / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    (etc / "group").write_text("root:x:0:\n", encoding="utf-8")
    return venv


def _run(root: Path, *extra: str) -> Path:
    venv = root / "venv"
    stage = root / "stage"
    subprocess.run(
        [
            sys.executable, str(SCRIPT), "--venv", str(venv), "--site-packages", str(venv / SITE), "--stage", str(stage),
            "--etc", str(root / "etc"), "--epoch", str(EPOCH), "--uid", "10001", "--prune", "pip",
            "--prune", "pip-*.dist-info", "--prune", "setuptools", *extra,
        ],
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    return stage / str(venv).lstrip("/") / SITE


def test_prunes_tests_caches_sources_and_installers_but_never_libraries(tmp_path: Path) -> None:
    _venv(tmp_path)
    site = _run(tmp_path, "--pyc", "--strip-sources")
    assert not (site / "pkg/tests").exists() and not (site / "pkg/sub/tests").exists()
    assert not list(site.rglob("stale*")) and not list(site.rglob("*.c")) and not list(site.rglob("*.h"))
    assert not list(site.rglob("*.pyx"))
    assert (site / "pkg/_speedups.cpython-311-x86_64-linux-gnu.so").read_text() == "\x7fELF not really"
    assert (site / "pkg.libs/libopenblas-r0.3.so").read_text() == "\x7fELF vendored"
    assert not (site / "pip").exists() and not list(site.glob("pip-*")) and not (site / "setuptools").exists()
    assert (site / "keepme-1.0.dist-info/RECORD").exists()
    bin_dir = site.parents[2] / "bin"
    assert sorted(p.name for p in bin_dir.iterdir()) == ["activate", "python", "python3"]


def test_strip_sources_leaves_unchecked_hash_pyc_that_import(tmp_path: Path) -> None:
    _venv(tmp_path)
    site = _run(tmp_path, "--pyc", "--strip-sources", "--keep-source", "numba")
    assert not (site / "pkg/mod.py").exists()
    header = (site / "pkg/mod.pyc").read_bytes()[:8]
    assert int.from_bytes(header[4:8], "little") == 0b01  # PEP 552: hash-based, not checked against the source
    # keep-source packages keep their source and get __pycache__ bytecode; a module that does not compile keeps its source
    assert (site / "numba/__init__.py").exists() and list((site / "numba/__pycache__").glob("__init__.*.pyc"))
    assert (site / "legacy/py2.py").exists() and not (site / "legacy/py2.pyc").exists()
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); import pkg; print(pkg.mod.f())"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "['a', 'b', 'c']"


def test_pyc_without_strip_keeps_every_source(tmp_path: Path) -> None:
    _venv(tmp_path)
    site = _run(tmp_path, "--pyc")
    assert (site / "pkg/mod.py").exists() and not (site / "pkg/mod.pyc").exists()
    assert list((site / "pkg/__pycache__").glob("mod.*.pyc"))


def test_no_pyc_compiles_nothing(tmp_path: Path) -> None:
    _venv(tmp_path)
    site = _run(tmp_path)
    assert not list(site.rglob("*.pyc")) and (site / "pkg/mod.py").exists()


@pytest.mark.parametrize("mode", ["copy", "minimal"])
def test_passwd_entry_for_the_runtime_uid(tmp_path: Path, mode: str) -> None:
    _venv(tmp_path)
    _run(tmp_path, "--passwd", mode)
    passwd = (tmp_path / "stage/etc/passwd").read_text(encoding="utf-8").splitlines()
    group = (tmp_path / "stage/etc/group").read_text(encoding="utf-8").splitlines()
    assert passwd[-1].startswith("app:x:10001:10001:app:/app:") and group[-1] == "app:x:10001:"
    if mode == "copy":
        assert passwd[0] == "root:x:0:0:root:/root:/bin/bash"
    else:
        assert passwd[0] == "root:x:0:0:root:/root:/sbin/nologin" and len(passwd) == 3


def test_every_mtime_under_the_stage_is_clamped(tmp_path: Path) -> None:
    _venv(tmp_path)
    _run(tmp_path, "--pyc", "--strip-sources")
    stage = tmp_path / "stage"
    entries = [stage, *stage.rglob("*")]
    assert len(entries) > 20
    assert {os.lstat(p).st_mtime for p in entries} == {EPOCH}


def test_G4_two_runs_give_byte_identical_trees(tmp_path: Path) -> None:
    def snapshot() -> dict[str, bytes]:
        stage = tmp_path / "stage"
        return {str(p.relative_to(stage)): p.read_bytes() for p in sorted(stage.rglob("*")) if p.is_file() and not p.is_symlink()}

    _venv(tmp_path)
    _run(tmp_path, "--pyc", "--strip-sources")
    first = snapshot()
    for name in ("stage", "etc"):
        shutil.rmtree(tmp_path / name)
    _venv(tmp_path)
    _run(tmp_path, "--pyc", "--strip-sources")
    assert snapshot() == first
    assert any(name.endswith(".pyc") for name in first)


# ---------------------------------------------------------------- parallel install: the pure parts

LOCK = """\
# slimbuild-target: linux/x86_64 cp311
# slimbuild-inputs-sha256: 0123
alpha==1.0 \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
    # via -r requirements.in
beta-lib==2.0 \\
    --hash=sha256:cccc
    # via
    #   alpha
Gamma_Pkg==3.0 --hash=sha256:dddd
"""


def _wheel(d: Path, name: str, files: dict[str, int], entry_points: str = "") -> Path:
    import zipfile

    path = d / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for rel, size in files.items():
            zf.writestr(rel, "x" * size)
        zf.writestr(f"{name}-1.0.dist-info/METADATA", "Name: x\n")
        if entry_points:
            zf.writestr(f"{name}-1.0.dist-info/entry_points.txt", entry_points)
    return path


def test_read_lock_joins_continuations_and_drops_comments(tmp_path: Path) -> None:
    (tmp_path / "lock").write_text(LOCK, encoding="utf-8")
    assert stage_venv.read_lock(str(tmp_path / "lock")) == [
        ("alpha", "alpha==1.0 --hash=sha256:aaaa --hash=sha256:bbbb"),
        ("beta-lib", "beta-lib==2.0 --hash=sha256:cccc"),
        ("gamma-pkg", "Gamma_Pkg==3.0 --hash=sha256:dddd"),
    ]


def test_wheel_targets_name_every_path_a_wheel_writes(tmp_path: Path) -> None:
    wheel = _wheel(
        tmp_path,
        "tool",
        {"tool/__init__.py": 1, "tool_helper.py": 1, "tool-1.0.data/purelib/extra/__init__.py": 1,
         "tool-1.0.data/scripts/run-tool": 1, "tool-1.0.data/data/share/tool.txt": 1},
        entry_points="[console_scripts]\ntool = tool:main\n[other]\nnot-a-script = x\n",
    )
    assert stage_venv.wheel_targets(str(wheel)) == {"tool", "tool_helper.py", "extra", "bin/run-tool", "data/share", "bin/tool"}


def test_distributions_writing_a_common_path_install_in_one_group(tmp_path: Path) -> None:
    # big-a and big-b share the top-level "shared": however the costs fall, they never race in two pips
    _wheel(tmp_path, "big_a", {"shared/a.py": 400_000, "big_a/x.so": 5_000_000})
    _wheel(tmp_path, "big_b", {"shared/b.py": 400_000, "big_b/x.so": 5_000_000})
    _wheel(tmp_path, "other", {"other/o.py": 900_000, "other/x.so": 4_000_000})
    entries = [("big-a", "big_a==1.0"), ("big-b", "big_b==1.0"), ("other", "other==1.0")]
    groups = stage_venv.plan_groups(entries, str(tmp_path))
    assert len(groups) == 2
    names = [{n for n, _ in g} for g in groups]
    assert {"big-a", "big-b"} in names and {"other"} in names
    assert stage_venv.plan_groups(entries, str(tmp_path)) == groups  # deterministic


def test_a_split_puts_the_compile_heavy_group_first(tmp_path: Path) -> None:
    # "sources" is mostly .py (compile-heavy), "binary" mostly .so (pip-heavy): the first group installs
    # and compiles while the other still installs, so the source-heavy one goes first
    _wheel(tmp_path, "sources", {"sources/m.py": 6_000_000})
    _wheel(tmp_path, "binary", {"binary/x.so": 150_000_000, "binary/m.py": 100_000})
    groups = stage_venv.plan_groups([("binary", "binary==1.0"), ("sources", "sources==1.0")], str(tmp_path))
    assert [[n for n, _ in g] for g in groups] == [["sources"], ["binary"]]


def test_a_lock_entry_without_a_wheel_keeps_the_lock_whole(tmp_path: Path) -> None:
    _wheel(tmp_path, "present", {"present/__init__.py": 10})
    entries = [("present", "present==1.0"), ("from-sdist", "from-sdist==1.0")]
    assert stage_venv.plan_groups(entries, str(tmp_path)) == [entries]


FAKE_PIP = """
import glob, os, re, sys, zipfile
args = sys.argv[1:]
if os.environ.get("FAKE_PIP_FAIL") and os.environ["FAKE_PIP_FAIL"] in open(args[args.index("-r") + 1]).read():
    sys.exit(3)
site, wheels = os.environ["FAKE_SITE"], os.environ["FAKE_WHEELS"]
for line in open(args[args.index("-r") + 1]):
    name = re.match(r"[A-Za-z0-9._-]+", line).group(0).split("==")[0]
    (whl,) = [w for w in glob.glob(wheels + "/*.whl") if os.path.basename(w).split("-")[0] == name.replace("-", "_")]
    with zipfile.ZipFile(whl) as zf:
        zf.extractall(site)
        names = zf.namelist()
    dist = next(n for n in names if n.endswith(".dist-info/METADATA")).split("/")[0]
    with open(os.path.join(site, dist, "RECORD"), "w") as fh:
        fh.write("".join(n + ",,\\n" for n in names))
"""


def _install_fixture(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "heavy_src", {"heavy_src/__init__.py": 10, "heavy_src/core.py": 3_000_000, "heavy_src/tests/t.py": 10})
    _wheel(wheels, "heavy_bin", {"heavy_bin/__init__.py": 10, "heavy_bin/x.so": 120_000_000})
    venv = tmp_path / "venv"
    site = venv / SITE
    site.mkdir(parents=True)
    (venv / "bin").mkdir()
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n", encoding="utf-8")
    (etc / "group").write_text("root:x:0:\n", encoding="utf-8")
    lock = tmp_path / "requirements.lock"
    lock.write_text("heavy-bin==1.0 \\\n    --hash=sha256:00\nheavy-src==1.0 \\\n    --hash=sha256:11\n", encoding="utf-8")
    pip = tmp_path / "fake_pip.py"
    pip.write_text(FAKE_PIP, encoding="utf-8")
    return venv, site, lock, pip


def _install(tmp_path: Path, venv: Path, site: Path, lock: Path, pip: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, str(SCRIPT), "--venv", str(venv), "--site-packages", str(site), "--stage", str(tmp_path / "stage"),
            "--etc", str(tmp_path / "etc"), "--epoch", str(EPOCH), "--uid", "10001", "--pyc", "--strip-sources",
            "--install", str(lock), "--wheels", str(tmp_path / "wheels"), "--", str(pip), "install", "--no-deps",
        ],
        env={**os.environ, "PYTHONHASHSEED": "0", "FAKE_SITE": str(site), "FAKE_WHEELS": str(tmp_path / "wheels"), **env},
        capture_output=True,
        text=True,
    )


def test_install_runs_one_pip_per_group_then_prunes_and_compiles_each(tmp_path: Path) -> None:
    venv, site, lock, pip = _install_fixture(tmp_path)
    done = _install(tmp_path, venv, site, lock, pip)
    assert done.returncode == 0, done.stderr
    assert "group 1/2 installed" in done.stderr and "group 2/2 installed" in done.stderr
    assert "compile jobs done" in done.stderr
    staged = tmp_path / "stage" / str(site).lstrip("/")
    assert (staged / "heavy_src/core.pyc").exists() and not (staged / "heavy_src/core.py").exists()
    assert (staged / "heavy_bin/__init__.pyc").exists() and (staged / "heavy_bin/x.so").exists()
    assert not (staged / "heavy_src/tests").exists()


def test_install_fails_naming_the_group_pip_could_not_install(tmp_path: Path) -> None:
    venv, site, lock, pip = _install_fixture(tmp_path)
    done = _install(tmp_path, venv, site, lock, pip, FAKE_PIP_FAIL="heavy-bin")
    assert done.returncode != 0
    assert "pip failed (exit 3) installing heavy-bin" in done.stderr
    assert not (tmp_path / "stage").exists()  # nothing staged from a failed install


def test_G19_compile_jobs_split_by_source_bytes_deterministically(tmp_path: Path) -> None:
    """The last group compiles in two fresh interpreters: the split depends only on the installed files."""
    site = tmp_path / "site"
    for top, size in (("big", 9000), ("mid", 5000), ("small", 3000), ("tiny", 100)):
        (site / top).mkdir(parents=True)
        (site / top / "m.py").write_text("x = 1\n" + "#" * size, encoding="utf-8")
    (site / "alone.py").write_text("y = 2\n", encoding="utf-8")
    tops = ["tiny", "alone.py", "small", "mid", "big"]
    jobs = stage_venv.split_tops(str(site), tops, 2)
    assert jobs == [["big"], ["alone.py", "mid", "small", "tiny"]]
    assert stage_venv.split_tops(str(site), list(reversed(tops)), 2) == jobs  # the order given does not matter
    assert stage_venv.split_tops(str(site), tops, 1) == [sorted(tops)]


def test_G19_bytecode_is_the_same_however_the_jobs_run(tmp_path: Path) -> None:
    """Each job is a fresh interpreter over sorted entries: two installs give byte-identical .pyc."""
    digests = []
    root = tmp_path / "root"
    for _run in ("a", "b"):
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()  # the same paths each time: bytecode names its source
        venv, site, lock, pip = _install_fixture(root)
        done = _install(root, venv, site, lock, pip)
        assert done.returncode == 0, done.stderr
        staged = root / "stage" / str(site).lstrip("/")
        digests.append(
            {p.relative_to(staged).as_posix(): p.read_bytes() for p in sorted(staged.rglob("*.pyc"))}
        )
    assert digests[0] and digests[0] == digests[1]
