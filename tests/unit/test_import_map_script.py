"""scripts/import_map_from_wheels.py: checks and grows the bundled table from wheels' file lists (A41 for bad input)."""

from __future__ import annotations

import ensurepip
import importlib.util
import shutil
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import slimbuild

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

REPO = Path(slimbuild.__file__).resolve().parents[1]
TABLE = REPO / "slimbuild" / "analysis" / "data" / "import_map.toml"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_map_from_wheels", REPO / "scripts" / "import_map_from_wheels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()


def _setuptools_wheel() -> Path:
    """A real wheel that is on every machine with this interpreter: the one ensurepip bundles."""
    found = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("setuptools-*.whl"))
    if not found:
        pytest.skip("this interpreter bundles no setuptools wheel")
    return found[-1]


def _table_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "import_map.toml"
    shutil.copyfile(TABLE, copy)
    return copy


def _wheel(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def test_real_wheel_confirms_entries_and_writes_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wheel = _setuptools_wheel()
    table = _table_copy(tmp_path)
    assert SCRIPT.main([str(wheel), "--table", str(table)]) == 0
    out = capsys.readouterr().out
    assert f"confirm   pkg_resources = setuptools  ({wheel.name})" in out
    assert table.read_bytes() == TABLE.read_bytes()  # a report changes nothing
    assert SCRIPT.main([str(wheel), "--table", str(table), "--write"]) == 0
    data = tomllib.loads(table.read_text(encoding="utf-8"))
    assert data["sources"]["pkg_resources"] == f"wheel {wheel.name}"
    assert data["namespaces"] == tomllib.loads(TABLE.read_text(encoding="utf-8"))["namespaces"]
    keys = list(data["modules"])
    assert keys == sorted(keys, key=str.lower)
    added = {k for k in keys if "add       " + k + " = setuptools" in out}
    assert all(data["modules"][k] == "setuptools" for k in added)
    assert SCRIPT.main([str(wheel), "--table", str(table), "--write"]) == 0  # a second run changes nothing
    assert tomllib.loads(table.read_text(encoding="utf-8")) == data


def test_wheel_with_another_provider_is_added_to_the_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _table_copy(tmp_path)
    wheel = _wheel(tmp_path / "opencv_python_fork-1.0-py3-none-any.whl", {"cv2/__init__.py": ""})
    assert SCRIPT.main([str(wheel), "--table", str(table), "--write"]) == 0
    assert "provider  cv2 = opencv-python-fork" in capsys.readouterr().out
    data = tomllib.loads(table.read_text(encoding="utf-8"))
    assert data["modules"]["cv2"][-1] == "opencv-python-fork"
    assert f"wheel {wheel.name}" in data["sources"]["cv2"]


def test_A41_wheel_contradicting_an_entry_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _table_copy(tmp_path)
    wheel = _wheel(tmp_path / "pyjwt-9.9-py3-none-any.whl", {"not_jwt/__init__.py": ""})
    assert SCRIPT.main([str(wheel), "--table", str(table)]) == 1
    assert "wrong     jwt = pyjwt" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("not-a-wheel.zip", b"x", "not a wheel file name"),
        ("broken-1.0-py3-none-any.whl", b"this is not a zip", "unreadable wheel"),
        ("missing-1.0-py3-none-any.whl", None, "unreadable wheel"),
    ],
)
def test_A41_bad_wheel_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes | None, needle: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    table = _table_copy(tmp_path)
    assert SCRIPT.main([str(path), "--table", str(table)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and name in err[0]
    assert table.read_bytes() == TABLE.read_bytes()


def test_A41_no_wheels_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert SCRIPT.main(["--table", str(_table_copy(tmp_path))]) == 2
    assert "no wheels" in capsys.readouterr().err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=2048), members=st.dictionaries(st.text(min_size=1, max_size=40), st.text(max_size=20),
                                                                 max_size=5))
def test_A41_fuzzed_wheels_never_traceback(tmp_path: Path, content: bytes, members: dict[str, str]) -> None:
    raw = tmp_path / "fuzz_raw-1.0-py3-none-any.whl"
    raw.write_bytes(content)
    try:
        zipped = _wheel(tmp_path / "fuzz_zip-1.0-py3-none-any.whl", members)
    except (ValueError, IndexError, OSError):
        assume(False)  # zipfile cannot write such a member name: no wheel to read
    for path in (raw, zipped):
        try:
            wheel = SCRIPT.read_wheel(path)
        except SCRIPT.ScriptError:
            continue
        assert all(all(p.isidentifier() for p in m.split(".")) for m in wheel.modules)


def test_A64_private_top_level_names_are_never_added(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``_distutils_hack`` (setuptools) or pynacl's ``_sodium`` are nobody's import name: no entry for them."""
    table = _table_copy(tmp_path)
    wheel = _wheel(
        tmp_path / "acme_tools-1.0-py3-none-any.whl",
        {"acmelib/__init__.py": "", "_acme_hack/__init__.py": "", "_sodiumish.abi3.so": ""},
    )
    assert SCRIPT.main([str(wheel), "--table", str(table), "--write"]) == 0
    out = capsys.readouterr().out
    assert "add       acmelib = acme-tools" in out and "_acme_hack" not in out and "_sodiumish" not in out
    modules = tomllib.loads(table.read_text(encoding="utf-8"))["modules"]
    assert modules["acmelib"] == "acme-tools" and "_acme_hack" not in modules and "_sodiumish" not in modules
