"""Third-party code as evidence to keep a declared distribution (SB017), never to add one (analysis/thirdparty.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimbuild.analysis.thirdparty import MAX_DEPTH, WheelReader, imported_names, scan
from slimbuild.config import load_settings
from slimbuild.pipeline.analyzing import analyze
from slimbuild.report import analysis_dict


def make_wheel(folder: Path, dist: str, files: Mapping[str, str | bytes], version: str = "1.0") -> Path:
    """A real wheel (METADATA, WHEEL, RECORD) holding ``files``."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{dist}-{version}.dist-info"
    members: dict[str, bytes] = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode()
    members[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for name, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    members[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(members):
            zf.writestr(name, members[name])
    return path


def stock(cache: Path, wheel: Path) -> str:
    """Put ``wheel`` in the content-addressed wheelhouse, as fetch_wheels does; its lock line."""
    hexdigest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    folder = cache / "wheels" / "sha256" / hexdigest
    folder.mkdir(parents=True, exist_ok=True)
    (folder / wheel.name).write_bytes(wheel.read_bytes())
    name, version = wheel.name.split("-")[:2]
    return f"{name}=={version} --hash=sha256:{hexdigest}"


# libx (what the project imports) reaches liby at depth 1 through import_optional_dependency, libz at depth
# MAX_DEPTH + 1, and the undeclared libu at depth 0.
LIBX = {
    "libx/__init__.py": "from libx import io\nimport libu\nfrom typing import TYPE_CHECKING\n"
    "if TYPE_CHECKING:\n    import libt\n",
    "libx/io.py": "from .chain1 import f\n\ndef read():\n    return import_optional_dependency('liby')\n",
    "libx/chain1.py": "from libx import chain2\n",
    "libx/chain2.py": "from libx import chain3\n",
    "libx/chain3.py": "import libz\n",
}


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    root, cache = tmp_path / "proj", tmp_path / "cache"
    root.mkdir()
    (root / "main.py").write_text("import libx\n")
    (root / "requirements.txt").write_text("libx\nliby\nlibz\nlibt\n")
    (root / "pyproject.toml").write_text('[tool.slimbuild.entrypoints]\nmain = "main.py"\n')
    lines = [stock(cache, make_wheel(tmp_path / "build", "libx", LIBX))]
    (root / "slimbuild.lock").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("SLIMBUILD_CACHE", str(cache))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    return root, cache


def _run(root: Path, cache: Path) -> dict[str, object]:
    (a,) = analyze(load_settings(root, {}), env={"SLIMBUILD_CACHE": str(cache)})
    return analysis_dict(a)


def _codes(d: Mapping[str, object], code: str) -> list[str]:
    return [str(f["message"]) for f in d["findings"] if f["code"] == code]  # type: ignore[attr-defined,index]


def test_declared_distribution_imported_by_third_party_is_kept_with_SB017(project: tuple[Path, Path]) -> None:
    d = _run(*project)
    required = {r["name"]: r for r in d["required"]}  # type: ignore[attr-defined,index]
    assert "liby" in required and required["liby"]["via"] == ["imported by libx.io"]
    assert required["liby"]["declared"] is True
    kept = _codes(d, "SB017")
    assert len(kept) == 1 and "'liby'" in kept[0] and "libx.io" in kept[0] and ":4" in kept[0]
    assert not any("'liby'" in m for m in _codes(d, "SB002"))
    assert "liby" not in {u["name"] for u in d["unused"]}  # type: ignore[attr-defined,index]


def test_A46_reachable_only_beyond_the_depth_bound_is_not_kept(project: tuple[Path, Path]) -> None:
    d = _run(*project)
    names = {r["name"] for r in d["required"]}  # type: ignore[attr-defined,index]
    assert "libz" not in names  # libx -> io -> chain1 -> chain2 -> chain3: depth 4 > MAX_DEPTH
    assert any("'libz'" in m for m in _codes(d, "SB002"))


def test_A46_one_step_more_depth_would_reach_it(tmp_path: Path) -> None:
    reader = WheelReader({"libx": make_wheel(tmp_path, "libx", LIBX)})
    owner = {"libz": "libz"}.get
    try:
        assert scan(["libx"], ["libz"], owner, reader).kept == ()
        (kept,) = scan(["libx"], ["libz"], owner, reader, max_depth=MAX_DEPTH + 1).kept
    finally:
        reader.close()
    assert (kept.distribution, kept.importer) == ("libz", "libx.chain3")


def test_A46_undeclared_distribution_imported_by_third_party_is_never_added(project: tuple[Path, Path]) -> None:
    d = _run(*project)
    names = {r["name"] for r in d["required"]}  # type: ignore[attr-defined,index]
    assert "libu" not in names and not any("libu" in m for m in _codes(d, "SB001"))
    assert not any("libu" in m for m in _codes(d, "SB017"))


def test_import_under_TYPE_CHECKING_in_third_party_code_is_no_evidence(project: tuple[Path, Path]) -> None:
    d = _run(*project)
    assert "libt" not in {r["name"] for r in d["required"]}  # type: ignore[attr-defined,index]
    assert any("'libt'" in m for m in _codes(d, "SB002"))


def test_without_a_lock_there_is_no_evidence(project: tuple[Path, Path]) -> None:
    root, cache = project
    (root / "slimbuild.lock").unlink()
    d = _run(root, cache)
    assert not _codes(d, "SB017") and any("'liby'" in m for m in _codes(d, "SB002"))


def test_third_party_evidence_is_deterministic(project: tuple[Path, Path]) -> None:
    first = json.dumps(_run(*project), sort_keys=True)
    assert all(json.dumps(_run(*project), sort_keys=True) == first for _ in range(3))


def test_import_optional_dependency_and_import_module_literals() -> None:
    src = (
        "import importlib\n"
        "def f():\n    import_optional_dependency('openpyxl')\n"
        "def g():\n    importlib.import_module('xlrd')\n"
        "def h(name):\n    importlib.import_module(name)\n"
        "from .sub import x\n"
    )
    names = [n for _, n in imported_names(src, "pandas.io.excel", is_package=True)]
    assert names == ["importlib", "openpyxl", "xlrd", "pandas.io.excel.sub", "pandas.io.excel.sub.x"]


def test_a_plain_import_in_a_function_is_no_evidence_but_module_and_class_level_are() -> None:
    src = (
        "try:\n    import hyperopt\nexcept ImportError:\n    hyperopt = None\n"
        "class C:\n    import yaml\n"
        "def plot():\n    import matplotlib.pyplot as plt\n"
        "async def g():\n    from lxml import etree\n"
    )
    assert [n for _, n in imported_names(src, "ray.tune.search.hyperopt", is_package=True)] == ["hyperopt", "yaml"]


def test_scan_follows_only_the_same_distribution(tmp_path: Path) -> None:
    a = make_wheel(tmp_path, "alib", {"alib/__init__.py": "import blib\n"})
    b = make_wheel(tmp_path, "blib", {"blib/__init__.py": "import clib\n"})
    reader = WheelReader({"alib": a, "blib": b})
    owner = {"alib": "alib", "blib": "blib", "clib": "clib"}.get
    result = scan(["alib"], ["clib"], owner, reader)
    reader.close()
    assert result.kept == ()  # blib is another distribution: evidence, not followed


def test_scan_file_cap_truncates(tmp_path: Path) -> None:
    files = {f"big/m{i}.py": f"import big.m{i + 1}\n" for i in range(5)}
    files["big/__init__.py"] = "import big.m0\n"
    w = make_wheel(tmp_path, "big", files)
    reader = WheelReader({"big": w})
    result = scan(["big"], ["never"], lambda m: "big" if m.startswith("big") else None, reader, max_depth=10, max_files=3)
    reader.close()
    assert result.truncated and result.files_read == 3


def test_A45_unreadable_wheel_contents_are_skipped(tmp_path: Path, project: tuple[Path, Path]) -> None:
    root, cache = project
    bad = tmp_path / "bad" / "libw-1.0-py3-none-any.whl"
    bad.parent.mkdir()
    bad.write_bytes(b"not a zip at all")
    odd = make_wheel(
        tmp_path / "odd", "libv",
        {"libv/__init__.py": b"\xff\xfe\x00 not utf-8 \x00", "libv/broken.py": "def (:\n", "libv/huge.py": "#" * 4096},
    )
    lines = [*(root / "slimbuild.lock").read_text().splitlines(), stock(cache, bad), stock(cache, odd)]
    (root / "slimbuild.lock").write_text("\n".join(lines) + "\n")
    (root / "main.py").write_text("import libx\nimport libv\nimport libv.broken\nimport libv.huge\nimport libw\n")
    (root / "requirements.txt").write_text("libx\nliby\nlibv\nlibw\n")
    d = _run(root, cache)  # no traceback: what cannot be read is evidence of nothing
    assert any("'liby'" in m for m in _codes(d, "SB017"))
    reader = WheelReader({"libv": odd}, max_bytes=1000)
    try:
        assert reader.read("libv.huge") is None and reader.distribution("libv.huge") == "libv"  # over the limit: unread
    finally:
        reader.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_A45_imported_names_never_raises(source: str) -> None:
    out = imported_names(source, "pkg.mod", is_package=False)
    assert all(isinstance(line, int) and isinstance(name, str) for line, name in out)


def test_warm_check_replays_until_the_wheelhouse_changes(
    project: tuple[Path, Path], run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import slimbuild.cli as cli
    from slimbuild.cache import evidence as evidence_mod
    from slimbuild.cache import replay

    monkeypatch.setattr(evidence_mod, "RACY_NS", 0)  # files a test wrote are seconds old: trust their stamps
    monkeypatch.setattr(replay, "RACY_NS", 0)
    computed: list[str] = []
    real = cli._output
    monkeypatch.setattr(cli, "_output", lambda command, *a, **k: computed.append(command) or real(command, *a, **k))
    root, cache = project
    first = run_cli("check", str(root), "--json")
    second = run_cli("check", str(root), "--json")
    assert "SB017" in first.out and second.out == first.out and computed == ["check"]
    (wheel,) = (cache / "wheels").rglob("*.whl")
    wheel.unlink()  # the wheelhouse lost the wheel the evidence came from
    third = run_cli("check", str(root), "--json")
    assert computed == ["check", "check"] and "SB017" not in third.out


def test_imports_read_from_wheels_are_remembered_and_a_damaged_memo_is_read_again(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import slimbuild.analysis.thirdparty as tp

    root, cache = project
    first = _run(root, cache)
    (memo,) = (cache / "thirdparty").glob("*.json")
    assert "libx/io.py" in memo.read_text()
    parsed: list[str] = []
    real = tp.imported_names
    monkeypatch.setattr(tp, "imported_names", lambda src, m, p: parsed.append(m) or real(src, m, p))
    assert _run(root, cache) == first and parsed == []  # every module's imports came from the memo
    memo.write_text("{not json")
    assert _run(root, cache) == first and "libx.io" in parsed
