"""L36-L40: the builder's default pruning (image/stage_prune.py): which paths are dead, which are never touched,
the languages kept, RECORD rewritten to what remains, and the whole stage script on a fake venv."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimbuild.image import stage_prune, stage_venv
from slimbuild.image.stage_prune import Rules, dead

SITE = "lib/python3/site-packages"
RULES = Rules()


@pytest.mark.parametrize(
    ("rel", "is_dir", "listing"),
    [
        ("numpy/_core/tests", True, ()),
        ("pkg/__pycache__", True, ()),
        ("joblib/test", True, ("joblib/test/__init__.py", "joblib/test/test_memory.py", "joblib/test/data/x.pkl")),
        ("pkg/docs", True, ("pkg/docs/index.rst", "pkg/docs/conf.txt")),
        ("numpy/random/_examples", True, ("numpy/random/_examples/cython/extending.pyx",)),
        ("pkg/benchmarks", True, ("pkg/benchmarks/bench_x.py",)),
        ("pandas/conftest.py", False, ()),
        ("numpy/__init__.pyi", False, ()),
        ("numpy/_core/include/numpy/ndarraytypes.h", False, ()),
        ("sklearn/svm/src/libsvm/svm.cpp", False, ()),
        ("sklearn/_loss/_loss.pyx.tp", False, ()),
        ("sklearn/meson.build", False, ()),
        ("numpy/_core/lib/libnpymath.a", False, ()),
        ("numpy/_core/lib/pkgconfig/numpy.pc", False, ()),
        ("pkg/locale/de/LC_MESSAGES/pkg.mo", False, ()),
        ("pkg/locale/pt_BR/LC_MESSAGES/pkg.po", False, ()),
        ("pkg/locale/pkg.pot", False, ()),
    ],
)
def test_L36_dead_paths_go(rel: str, is_dir: bool, listing: tuple[str, ...]) -> None:
    assert dead(rel, is_dir, RULES, listing)


@pytest.mark.parametrize(
    ("rel", "is_dir", "listing"),
    [
        ("django/test", True, ("django/test/__init__.py", "django/test/client.py", "django/test/utils.py")),
        ("pkg/docs", True, ("pkg/docs/__init__.py", "pkg/docs/render.py")),  # a package: something imports it
        ("pkg/examples", True, ("pkg/examples/_native.cpython-311-x86_64-linux-gnu.so",)),  # holds a shared object
        ("matplotlib/mpl-data", True, ("matplotlib/mpl-data/matplotlibrc",)),
        ("matplotlib/mpl-data/fonts/ttf/DejaVuSans.ttf", False, ()),
        ("sklearn/datasets/data/iris.csv", False, ()),
        ("sklearn/datasets/descr/iris.rst", False, ()),
        ("tzdata/zoneinfo/Europe/Paris", False, ()),
        ("certifi/cacert.pem", False, ()),
        ("numpy/testing", True, ("numpy/testing/__init__.py", "numpy/testing/_private/utils.py")),
        ("pkg/_speedups.cpython-311-x86_64-linux-gnu.so", False, ()),
        ("scipy.libs/libopenblas-r0.3.so", False, ()),
        ("scipy.libs/libgfortran-040039e1.so.5.0.0", False, ()),
        ("pkg-1.0.dist-info/RECORD", False, ()),
        ("pkg-1.0.dist-info/licenses/include/LICENSE.h", False, ()),
        ("pkg-1.0.dist-info/licenses/tests", True, ()),
        ("mypy/typeshed/stdlib/os/__init__.pyi", False, ()),
        ("pkg/locale/en/LC_MESSAGES/pkg.mo", False, ()),
        ("pkg/locale/en_GB/LC_MESSAGES/pkg.mo", False, ()),
        ("pkg/locale/C/LC_MESSAGES/pkg.mo", False, ()),
        ("django/conf/locale/de/formats.py", False, ()),  # only catalogues go, never a module
        ("pkg/translations/de.po", False, ()),  # not gettext's <lang>/LC_MESSAGES layout: unknown, kept
        ("pkg/module.py", False, ()),
        ("pkg/templates/page.html", False, ()),
    ],
)
def test_L36_live_and_protected_paths_stay(rel: str, is_dir: bool, listing: tuple[str, ...]) -> None:
    assert dead(rel, is_dir, RULES, listing) is None


_part = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.-0123456789", min_size=1, max_size=12).filter(
    lambda p: p not in (".", "..")
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_part, min_size=1, max_size=4), _part, st.booleans(), st.sampled_from(["dist-info", "libs", "so", "so.3"]))
def test_L37_dist_info_libs_and_shared_objects_are_never_dead(
    parents: list[str], name: str, is_dir: bool, kind: str
) -> None:
    if kind in ("dist-info", "libs"):
        rel = "/".join([f"{parents[0]}.{kind}", *parents[1:], name])
    else:
        rel = "/".join([*parents, f"{name}.{kind}"])
    for dead_name in ("tests", "test", "docs"):
        assert dead(rel + "/" + dead_name if kind in ("dist-info", "libs") else rel, is_dir, RULES) is None


def test_L37_keep_files_patterns_spare_a_path_or_a_whole_directory() -> None:
    rules = Rules(keep=("numpy/*.pyi", "joblib/test", "pkg/locale/de/*"))
    assert dead("numpy/_core/multiarray.pyi", False, rules) is None  # * crosses /
    assert dead("scipy/__init__.pyi", False, rules) == "type stub"
    assert dead("joblib/test", True, rules, ("joblib/test/test_x.py",)) is None
    assert dead("joblib/test/test_x.py", False, rules) is None
    assert dead("pkg/locale/de/LC_MESSAGES/pkg.mo", False, rules) is None
    assert dead("pkg/__pycache__", True, rules) == "bytecode cache"  # compiled afresh whatever is kept


def test_L37_stub_readers_and_run_time_compilers_keep_what_they_read(tmp_path: Path) -> None:
    assert dead("numpy/__init__.pyi", False, Rules(stubs=True)) is None
    jit = Rules(jit=("torch", "triton"))
    assert dead("torch/include/ATen/ATen.h", False, jit) is None  # inductor and cpp_extension compile against it
    assert dead("triton/backends/nvidia/include/cuda.h", False, jit) is None
    assert dead("torch/tests", True, jit) == "test suite"
    assert dead("numpy/_core/include/numpy/ndarraytypes.h", False, jit)
    (tmp_path / "mypy-1.13.0.dist-info").mkdir()
    assert stage_prune.stub_readers_installed(str(tmp_path))
    assert not stage_prune.stub_readers_installed(str(tmp_path / "mypy-1.13.0.dist-info"))


@pytest.mark.parametrize(
    ("environ", "extra", "kept", "gone"),
    [
        ({"LANG": "C.UTF-8"}, (), ["en", "C", "en_US"], ["de", "fr", "pt_BR"]),
        ({"LANG": "de_DE.UTF-8"}, (), ["de", "de_AT", "en"], ["fr"]),
        ({"LANGUAGE": "fr:pt_BR", "LANG": "C"}, (), ["fr", "pt", "pt_BR"], ["de"]),
        ({"LC_ALL": "sr@latin"}, (), ["sr@latin", "sr"], ["de"]),
        ({}, ("es", "pt_BR"), ["es", "es_MX", "pt"], ["de"]),
    ],
)
def test_L38_translations_stay_for_the_languages_of_the_image(
    environ: dict[str, str], extra: tuple[str, ...], kept: list[str], gone: list[str]
) -> None:
    rules = Rules(locales=[*stage_prune.environment_locales(environ), *extra])
    for lang in kept:
        assert dead(f"pkg/locale/{lang}/LC_MESSAGES/pkg.mo", False, rules) is None, lang
    for lang in gone:
        assert dead(f"pkg/locale/{lang}/LC_MESSAGES/pkg.mo", False, rules), lang


def test_L39_record_lists_what_remains(tmp_path: Path) -> None:
    site = tmp_path / "site"
    for rel in ("pkg/__init__.pyc", "pkg/data.json", "pkg-1.0.dist-info/METADATA", "pkg-1.0.dist-info/RECORD", "bin/tool"):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text("x")
    lines = [
        "pkg/__init__.py,sha256=abc,10",  # stripped: its .pyc remains
        "pkg/data.json,sha256=def,1",
        "pkg/tests/test_x.py,sha256=ghi,5",  # pruned
        "pkg/__init__.pyi,sha256=jkl,7",  # pruned
        '"pkg/odd,name.py",sha256=mno,3',  # gone, quoted: csv-parsed, dropped
        "../site/bin/tool,sha256=pqr,1",  # outside site-packages, present
        "pkg-1.0.dist-info/METADATA,sha256=stu,1",
        "pkg-1.0.dist-info/RECORD,,",
    ]
    (site / "pkg-1.0.dist-info/RECORD").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    assert stage_prune.rewrite_records(str(site)) == 1
    text = (site / "pkg-1.0.dist-info/RECORD").read_bytes().decode()
    assert text == "\r\n".join([
        "pkg/__init__.pyc,,", "pkg/data.json,sha256=def,1", "../site/bin/tool,sha256=pqr,1",
        "pkg-1.0.dist-info/METADATA,sha256=stu,1", "pkg-1.0.dist-info/RECORD,,",
    ]) + "\r\n"  # fmt: skip
    assert stage_prune.rewrite_records(str(site)) == 0  # nothing more to drop: unchanged
    rows = list(csv.reader(text.splitlines()))
    assert all(os.path.lexists(os.path.normpath(site / row[0])) for row in rows)


FAKE = {
    "pkg/__init__.py": "import os\nDATA = open(os.path.join(os.path.dirname(__file__), 'data', 'table.csv')).read()\n",
    "pkg/__init__.pyi": "DATA: str\n",
    "pkg/py.typed": "",
    "pkg/data/table.csv": "a,b\n1,2\n",
    "pkg/_native.cpython-311-x86_64-linux-gnu.so": "\x7fELF",
    "pkg/_native.h": "int x;\n",
    "pkg/_native.cpp": "int x;\n",
    "pkg/conftest.py": "import pytest\n",
    "pkg/test/__init__.py": "",
    "pkg/test/test_pkg.py": "def test(): pass\n",
    "pkg/docs/guide.rst": "Guide\n",
    "pkg/examples/demo.py": "print('demo')\n",
    "pkg/locale/de/LC_MESSAGES/pkg.mo": "de",
    "pkg/locale/en/LC_MESSAGES/pkg.mo": "en",
    "pkg/locale/fr/LC_MESSAGES/pkg.mo": "fr",
    "pkg/locale/pkg.pot": "template",
    "pkg.libs/libfoo-1234.so.1": "\x7fELF vendored",
    "stubbed/__init__.py": "",
    "stubbed/types.pyi": "X: int\n",
}


def _fake_venv(root: Path) -> Path:
    venv = root / "venv"
    site = venv / SITE
    for rel, text in FAKE.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text, encoding="utf-8")
    info = site / "pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n")
    (info / "licenses").mkdir()
    (info / "licenses" / "LICENSE.h").write_text("licence\n")  # a licence is kept whatever its name
    rows = [f"{rel},sha256=x,1" for rel in sorted(FAKE) if not rel.startswith("stubbed/")]
    (info / "RECORD").write_text("\n".join([*rows, "pkg-1.0.dist-info/METADATA,,", "pkg-1.0.dist-info/RECORD,,"]) + "\n")
    (venv / "bin").mkdir()
    (venv / "bin" / "python3").write_text("#!/bin/sh\n")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    return venv


def _stage(root: Path, *extra: str, lang: str = "C.UTF-8") -> Path:
    venv = root / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    subprocess.run(
        [
            sys.executable, stage_venv.__file__, "--venv", str(venv), "--site-packages", str(venv / SITE),
            "--stage", str(root / "stage"), "--etc", str(root / "etc"), "--epoch", "1700000000", "--uid", "10001",
            "--pyc", "--strip-sources", *extra,
        ],
        check=True, env={**env, "PYTHONHASHSEED": "0", "LANG": lang},
    )  # fmt: skip
    return root / "stage" / str(venv).lstrip("/") / SITE


def test_L40_the_stage_script_prunes_the_dead_and_keeps_what_runs(tmp_path: Path) -> None:
    _fake_venv(tmp_path)
    site = _stage(tmp_path, "--keep-file", "stubbed/*.pyi", lang="de_DE.UTF-8")
    left = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    assert left == sorted([
        "pkg/__init__.pyc", "pkg/py.typed", "pkg/data/table.csv", "pkg/_native.cpython-311-x86_64-linux-gnu.so",
        "pkg/locale/de/LC_MESSAGES/pkg.mo", "pkg/locale/en/LC_MESSAGES/pkg.mo", "pkg.libs/libfoo-1234.so.1",
        "stubbed/__init__.pyc", "stubbed/types.pyi",
        "pkg-1.0.dist-info/METADATA", "pkg-1.0.dist-info/RECORD", "pkg-1.0.dist-info/licenses/LICENSE.h",
    ])  # fmt: skip
    assert (site / "pkg.libs/libfoo-1234.so.1").read_text() == "\x7fELF vendored"  # never stripped
    rows = [r[0] for r in csv.reader((site / "pkg-1.0.dist-info/RECORD").read_text().splitlines())]
    assert "pkg/__init__.pyc" in rows and "pkg/__init__.py" not in rows and "pkg/test/test_pkg.py" not in rows
    assert all((site / r).exists() for r in rows)  # RECORD lists what remains, and only that
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); import pkg; print(pkg.DATA)"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout == "a,b\n1,2\n\n"


def test_L40_layered_staging_rewrites_each_distributions_record(tmp_path: Path) -> None:
    from slimbuild.image.layers import LAYOUT_VERSION

    _fake_venv(tmp_path)
    (tmp_path / "layout").write_text(f"{LAYOUT_VERSION}\n{'a' * 16} pkg\n")
    _stage(tmp_path, "--layers", str(tmp_path / "layout"), "--keep-locale", "fr")
    unit_site = tmp_path / "stage" / ("a" * 16) / str(tmp_path / "venv" / SITE).lstrip("/")
    rows = [r[0] for r in csv.reader((unit_site / "pkg-1.0.dist-info/RECORD").read_text().splitlines())]
    assert "pkg/__init__.pyc" in rows and "pkg/locale/fr/LC_MESSAGES/pkg.mo" in rows
    assert "pkg/locale/de/LC_MESSAGES/pkg.mo" not in rows and all((unit_site / r).exists() for r in rows)
