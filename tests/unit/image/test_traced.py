"""prune = "traced": the keep spec from a trace and the wheels, the builder's prune step, a failed proof's missing
file (L19-L21)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from slimbuild.analysis.runtime import Module, Trace
from slimbuild.image import prune_traced
from slimbuild.image.traced import WheelFiles, first_missing, keep_spec, proof_argv, site_members

NP = WheelFiles(
    "numpy",
    site_members([
        "numpy/__init__.py", "numpy/version.py", "numpy/core/__init__.py", "numpy/core/_umath.cpython-311-x86_64-linux-gnu.so",
        "numpy/core/_unused.cpython-311-x86_64-linux-gnu.so", "numpy/core/data.txt", "numpy/f2py/__init__.py",
        "numpy/tests/test_x.py", "numpy.libs/libopenblas-ab12.so", "numpy.libs/libgfortran-cd34.so.5.0.0",
        "numpy.libs/libquadmath-ef56.so.0.0.0", "numpy.libs/libnever.so", "numpy-1.0.data/scripts/f2py",
        "numpy-1.0.data/purelib/numpy/extra.py", "numpy-1.0.dist-info/RECORD",
    ]),
    (("libopenblas-ab12.so", "numpy/core/_umath.cpython-311-x86_64-linux-gnu.so"),
     ("libgfortran-cd34.so.5.0.0", "numpy.libs/libopenblas-ab12.so"),
     ("libquadmath-ef56.so.0", "numpy.libs/libgfortran-cd34.so.5.0.0"),  # a soname shorter than the file's name
     ("libnever.so", "numpy/f2py/never.so"),
     ("libc.so.6", "numpy.libs/libopenblas-ab12.so")),
)
SIX = WheelFiles("six", ("six.py", "six-1.0.dist-info/METADATA"))
TRACE = Trace(
    modules=(Module("numpy", "site-packages/numpy/__init__.py"), Module("numpy.core", "site-packages/numpy/core/__init__.py"),
             Module("six", "site-packages/six.py"), Module("plugin", "plugin.py")),
    installed=("numpy/core/data.txt",),
)


def test_L19_the_keep_spec_keeps_imported_packages_modules_opened_files_and_the_libraries_closure() -> None:
    assert "numpy/extra.py" in NP.members and not any(m.startswith("numpy-1.0.data/") for m in NP.members)
    spec = keep_spec(TRACE, [NP, SIX])
    assert spec.packages == ("numpy/", "numpy/core/")  # a package is one directory: numpy/f2py/, numpy/tests/ are not
    assert spec.modules == ("six",)
    # the unused extension of an imported package is a module of it: kept, with what it needs (here nothing more)
    assert spec.files == (
        "numpy.libs/libgfortran-cd34.so.5.0.0", "numpy.libs/libopenblas-ab12.so", "numpy.libs/libquadmath-ef56.so.0.0.0",
        "numpy/core/data.txt",
    )
    assert json.loads(spec.dumps()) == {"files": list(spec.files), "format": 1, "modules": ["six"],
                                        "packages": ["numpy/", "numpy/core/"]}


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_L20_the_builder_step_prunes_to_the_spec_rewrites_record_and_keeps_the_mtimes(tmp_path: Path) -> None:
    site = tmp_path / "stage" / "opt" / "venv" / "lib" / "python3.11" / "site-packages"
    dist = "numpy-1.0.dist-info"
    _tree(site, {
        "numpy/__init__.pyc": "", "numpy/version.pyc": "", "numpy/core/__init__.pyc": "", "numpy/core/data.txt": "d",
        "numpy/core/other.txt": "o" * 1000, "numpy/core/_umath.so": "", "numpy/f2py/__init__.pyc": "",
        "numpy/keep/__init__.py": "", "numpy/keep/__pycache__/__init__.cpython-311.pyc": "",
        "numpy/keep/__pycache__/gone.cpython-311.pyc": "",
        "numpy.libs/libopenblas.so": "", "numpy.libs/libnever.so": "", "six.pyc": "", "seven.py": "",
        "hook.pth": "import _hookmod\n", "_hookmod.py": "",
        f"{dist}/METADATA": "m", f"{dist}/LICENSE.txt": "l", f"{dist}/WHEEL": "w",
        f"{dist}/RECORD": "numpy/__init__.py,sha256=x,1\nnumpy/f2py/__init__.py,sha256=y,1\nnumpy/core/data.txt,sha256=z,1\n"
                          f"../../../bin/f2py,sha256=b,1\n{dist}/RECORD,,\n",
    })
    _tree(tmp_path / "stage", {"opt/venv/bin/f2py": ""})
    spec = {"format": 1, "packages": ["numpy/", "numpy/core/"], "modules": ["six"],
            "files": ["numpy.libs/libopenblas.so", "numpy/core/data.txt", "numpy/keep/__init__.py"]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    for d, dirs, files in os.walk(tmp_path / "stage"):
        for name in (*dirs, *files):
            os.utime(os.path.join(d, name), (1000, 1000), follow_symlinks=False)
    before = {p: p.stat().st_mtime for p in (site / "numpy", site / "numpy" / "core", site / dist / "RECORD")}
    out = subprocess.run([sys.executable, prune_traced.__file__, "--keep", str(tmp_path / "spec.json"), str(tmp_path / "stage")],
                         capture_output=True, text=True, check=True)  # as the builder runs it: the file alone
    assert "removed 5 files (1000 bytes)" in out.stdout, out.stdout
    left = {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()}
    assert left == {
        "numpy/__init__.pyc", "numpy/version.pyc", "numpy/core/__init__.pyc", "numpy/core/data.txt", "numpy/core/_umath.so",
        "numpy/keep/__init__.py", "numpy/keep/__pycache__/__init__.cpython-311.pyc", "numpy.libs/libopenblas.so",
        "six.pyc", "hook.pth", "_hookmod.py", f"{dist}/METADATA", f"{dist}/LICENSE.txt", f"{dist}/WHEEL", f"{dist}/RECORD",
    }
    assert not (site / "numpy" / "f2py").exists() and (tmp_path / "stage" / "opt" / "venv" / "bin" / "f2py").exists()
    rows = list(csv.reader((site / dist / "RECORD").read_text().splitlines()))
    assert rows == [["numpy/__init__.pyc", "", ""], ["numpy/core/data.txt", "sha256=z", "1"],
                    ["../../../bin/f2py", "sha256=b", "1"], [f"{dist}/RECORD", "", ""]]
    assert {p: p.stat().st_mtime for p in before} == before  # the clamped times stay: reproducible layers


def test_L21_a_failed_proof_names_the_first_missing_file_and_traced_commands_run_the_venv_python() -> None:
    out = ("Traceback (most recent call last):\n  File \"/app/main.py\", line 3\n"
           "FileNotFoundError: [Errno 2] No such file or directory: '/opt/venv/lib/python3.11/site-packages/pkg/a.json'\n"
           "ModuleNotFoundError: No module named 'pkg.sub'\n")
    assert first_missing(out) == "/opt/venv/lib/python3.11/site-packages/pkg/a.json"
    assert first_missing("ModuleNotFoundError: No module named 'pkg.sub'\n") == "module pkg.sub"
    lib = "ImportError: libgfortran-1a2b.so.5.0.0: cannot open shared object file: No such file or directory"
    assert first_missing(lib) == "libgfortran-1a2b.so.5.0.0"
    assert first_missing("ValueError: bad\n") == ""
    assert proof_argv(["/home/u/.venv/bin/python3.11", "train.py", "-n", "2"], "/opt/venv/bin/python") == (
        "/opt/venv/bin/python", "train.py", "-n", "2")
    assert proof_argv(["make", "run"], "/opt/venv/bin/python") == ("make", "run")
