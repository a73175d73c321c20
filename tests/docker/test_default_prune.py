"""L42: the default build prunes what no run reads from a dependency (test suites, docs, examples, stubs, headers,
C sources, pytest's conftest, translations of unused languages), keeps what it reads at run time (its data file,
the English catalogue it loads), keeps a ``keep-files`` pattern and a ``keep-locales`` language, rewrites RECORD
to list what remains, and the smoke run passes on the pruned image.

The wheel is made here under a name nobody publishes; its ``.mo`` catalogues are written in gettext's format.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from slimbuild.image.engine import DockerEngine
from tests.conftest import Run
from tests.constants import OK
from tests.docker.conftest import BASE_IMAGE, record_line
from tests.docker.test_build_examples import SHARED_CACHE

pytestmark = pytest.mark.docker

DIST = "sbtest_prunedemo_zq"
INIT = """import gettext, os
_here = os.path.dirname(__file__)
with open(os.path.join(_here, "data", "table.csv"), encoding="utf-8") as _fh:
    TABLE = _fh.read().split()
GREETING = gettext.translation("demo", os.path.join(_here, "locale"), languages=["en"]).gettext("hello")
"""
LISTING = """import csv, os, sys, sysconfig
site = sysconfig.get_path("purelib")
files = sorted(os.path.relpath(os.path.join(d, f), site) for d, _, fs in os.walk(site) for f in fs
               if os.path.relpath(d, site).split(os.sep)[0].startswith("sbtest_prunedemo_zq"))
info = [f for f in os.listdir(site) if f.startswith("sbtest_prunedemo_zq") and f.endswith(".dist-info")][0]
with open(os.path.join(site, info, "RECORD"), newline="") as fh:
    rows = [r[0] for r in csv.reader(fh) if r]
print(json.dumps({"files": files, "record": rows, "missing": [r for r in rows if not os.path.exists(os.path.join(site, r))]}))
""".replace("import csv,", "import csv, json,")


def _mo(messages: dict[str, str]) -> bytes:
    """A GNU gettext catalogue (no hash table), as msgfmt writes it."""
    keys = sorted(messages)
    ids = [k.encode() for k in keys]
    strs = [messages[k].encode() for k in keys]
    n = len(keys)
    pos = 28 + 16 * n
    table = []
    for blob in (*ids, *strs):
        table += [len(blob), pos]
        pos += len(blob) + 1
    head = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    return head + struct.pack(f"<{4 * n}I", *table) + b"".join(b + b"\0" for b in (*ids, *strs))


def _catalogue(text: str) -> bytes:
    return _mo({"": "Content-Type: text/plain; charset=UTF-8\n", "hello": text})


@pytest.fixture(scope="module")
def links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    info = f"{DIST}-1.0.dist-info"
    pkg = DIST
    files = {
        f"{pkg}/__init__.py": INIT.encode(),
        f"{pkg}/__init__.pyi": b"TABLE: list[str]\nGREETING: str\n",
        f"{pkg}/py.typed": b"",
        f"{pkg}/data/table.csv": b"a,b\n1,2\n",
        f"{pkg}/conftest.py": b"import pytest\n",
        f"{pkg}/tests/__init__.py": b"",
        f"{pkg}/tests/test_table.py": b"def test_table():\n    assert True\n",
        f"{pkg}/test/test_more.py": b"def test_more():\n    assert True\n",
        f"{pkg}/docs/index.rst": b"Demo\n====\n",
        f"{pkg}/guide/index.rst": b"kept by keep-files\n",
        f"{pkg}/examples/demo.py": b"print('an example')\n",
        f"{pkg}/include/demo.h": b"int demo(void);\n",
        f"{pkg}/_speedups.c": b"int demo(void) { return 1; }\n",
        f"{pkg}/_speedups.pyx": b"cdef int x = 1\n",
        f"{pkg}/locale/demo.pot": b'msgid "hello"\nmsgstr ""\n',
        f"{pkg}/locale/en/LC_MESSAGES/demo.mo": _catalogue("hello from the English catalogue"),
        f"{pkg}/locale/de/LC_MESSAGES/demo.mo": _catalogue("hallo"),
        f"{pkg}/locale/de/LC_MESSAGES/demo.po": b'msgid "hello"\nmsgstr "hallo"\n',
        f"{pkg}/locale/fr/LC_MESSAGES/demo.mo": _catalogue("bonjour"),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {DIST.replace('_', '-')}\nVersion: 1.0\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/licenses/LICENSE": b"MIT\n",
    }
    record = "\n".join([*(record_line(n, d) for n, d in files.items()), f"{info}/RECORD,,"]) + "\n"
    out = tmp_path_factory.mktemp("prune") / "links"
    out.mkdir()
    with zipfile.ZipFile(out / f"{DIST}-1.0-py3-none-any.whl", "w") as zf:
        for name, data in [*files.items(), (f"{info}/RECORD", record.encode())]:
            zf.writestr(name, data)
    return out


def test_L42_default_build_prunes_the_dead_files_of_a_dependency_and_its_smoke_run_passes(
    links: Path, engine: DockerEngine, tmp_path: Path, run_cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    root = tmp_path / "prunedemo"
    root.mkdir()
    (root / "main.py").write_text(f"import {DIST} as d\nprint(d.GREETING, d.TABLE)\n")
    (root / "requirements.txt").write_text(f"{DIST.replace('_', '-')}\n")
    (root / "pyproject.toml").write_text(
        '[tool.slimbuild]\nentrypoint = "main.py"\nsmoke = ["python", "/app/main.py"]\n'
        f'keep-files = ["{DIST}/guide"]\nkeep-locales = ["fr"]\n'
    )
    run = run_cli("build", str(root), "--base-image", BASE_IMAGE, "--json")
    assert run.code == OK, run.err
    (image,) = json.loads(run.out)["images"]
    try:
        manifest = json.loads(Path(image["manifest"]).read_text())
        assert manifest["smoke"] and all(s["ok"] for s in manifest["smoke"])  # the proof, on the pruned image
        out = engine.run(image["image_id"], ["/opt/venv/bin/python", "/app/main.py"], user="10001:10001", timeout=120)
        assert out.exit_code == 0 and "hello from the English catalogue ['a,b', '1,2']" in out.output, out.output
        listed = engine.run(image["image_id"], ["/opt/venv/bin/python", "-c", LISTING], user="10001:10001", timeout=120)
        assert listed.exit_code == 0, listed.output
        doc = json.loads(listed.output.strip().splitlines()[-1])
        pkg, info = DIST, f"{DIST}-1.0.dist-info"
        assert sorted(doc["files"]) == sorted([
            f"{pkg}/__init__.pyc", f"{pkg}/py.typed", f"{pkg}/data/table.csv", f"{pkg}/guide/index.rst",
            f"{pkg}/locale/en/LC_MESSAGES/demo.mo", f"{pkg}/locale/fr/LC_MESSAGES/demo.mo",
            f"{info}/METADATA", f"{info}/WHEEL", f"{info}/licenses/LICENSE", f"{info}/RECORD", f"{info}/INSTALLER",
            f"{info}/REQUESTED",
        ]), doc["files"]  # fmt: skip
        assert doc["missing"] == [] and f"{pkg}/__init__.pyc" in doc["record"]  # RECORD lists what remains
        assert f"{pkg}/tests/test_table.py" not in doc["record"] and f"{pkg}/__init__.pyi" not in doc["record"]
    finally:
        for tag in image["tags"]:
            engine.client.remove_image(tag, force=True)
