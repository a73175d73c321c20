"""The whole-graph cache: a warm run with nothing changed does not trace; any change that matters does."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimbuild.analysis import graph as trace_mod
from slimbuild.analysis import parsing as parsing_mod
from slimbuild.cache import evidence as evidence_mod
from slimbuild.cache.evidence import TraceEvidence
from slimbuild.config import load_settings
from slimbuild.paths import cache_dir
from slimbuild.pipeline.analyzing import analyze

Project = Callable[[dict[str, str | bytes]], Path]

BASE: dict[str, str | bytes] = {
    "main.py": "import helper\nimport numpy\n",
    "helper.py": "import pandas\n",
    "requirements.txt": "numpy\npandas\nscipy\n",
}


def _analyze(root: Path) -> dict[str, Any]:
    (a,) = analyze(load_settings(root, {}), "main.py")
    return {
        "files": list(a.files),
        "required": sorted(r.name for r in a.required),
        "missing": sorted(m.name for m in a.missing),
        "unused": sorted(u.name for u in a.unused),
    }


@pytest.fixture
def traces(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts real traces (cache misses) by entrypoint path."""
    calls: list[str] = []
    real = trace_mod.trace

    def counting(root: Path, entry: trace_mod.Entrypoint, **kw: Any) -> Any:
        calls.append(entry.path)
        return real(root, entry, **kw)

    monkeypatch.setattr(trace_mod, "trace", counting)
    return calls


def _forbid_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object, **_k: object) -> Any:
        raise AssertionError("parsed on a graph-cache hit")

    monkeypatch.setattr(parsing_mod, "_parse_job", boom)
    monkeypatch.setattr(parsing_mod, "parse_file_bytes", boom)
    monkeypatch.setattr(trace_mod, "trace", boom)


def _graph_files() -> list[Path]:
    return sorted((cache_dir() / "analysis").glob("graph-*.pickle"))


def test_hit_does_not_trace_or_parse(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(dict(BASE))
    first = _analyze(root)
    assert first["required"] == ["numpy", "pandas"]
    assert len(_graph_files()) == 1
    _forbid_parsing(monkeypatch)
    assert _analyze(root) == first


def test_hit_does_not_even_load_the_parse_cache(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(dict(BASE))
    first = _analyze(root)

    def no_load(_path: Path) -> dict[Any, Any]:
        raise AssertionError("parse cache loaded on a graph-cache hit")

    monkeypatch.setattr("slimbuild.cache.parsecache.load", no_load)
    assert _analyze(root) == first


def test_new_local_module_shadowing_a_third_party_name_invalidates(project: Project, traces: list[str]) -> None:
    root = project(dict(BASE))
    assert "numpy" in _analyze(root)["required"]
    (root / "numpy.py").write_text("import scipy\n", encoding="utf-8")
    after = _analyze(root)
    assert traces == ["main.py", "main.py"]
    assert "numpy.py" in after["files"]
    assert after["required"] == ["pandas", "scipy"]
    assert after["unused"] == ["numpy"]


def test_new_namespace_directory_named_like_a_declared_distribution_invalidates(project: Project, traces: list[str]) -> None:
    """A directory without __init__.py is a namespace portion (PEP 420): that listing is evidence too, and the declared
    distribution's regular package wins over it (A49), so the trace runs again with the name shadowed."""
    root = project(dict(BASE))
    assert "numpy" in _analyze(root)["required"]
    (root / "numpy" / "sub").mkdir(parents=True)
    (root / "numpy" / "sub" / "mod.py").write_text("", encoding="utf-8")
    after = _analyze(root)
    assert traces == ["main.py", "main.py", "main.py"]
    assert after["required"] == ["numpy", "pandas"]
    assert _analyze(root) == after and len(traces) == 3  # both graphs are cached


def test_editing_a_reached_file_invalidates(project: Project, traces: list[str]) -> None:
    root = project(dict(BASE))
    assert _analyze(root)["required"] == ["numpy", "pandas"]
    (root / "helper.py").write_text("import scipy\n", encoding="utf-8")
    after = _analyze(root)
    assert traces == ["main.py", "main.py"]
    assert after["required"] == ["numpy", "scipy"]


def test_same_size_edit_with_mtime_restored_invalidates(
    project: Project, traces: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stat fast path trusts no stat it cannot vouch for: ctime cannot be set back."""
    monkeypatch.setattr(evidence_mod, "RACY_NS", 0)  # trust the stat of a file written a moment ago
    root = project(dict(BASE))
    helper = root / "helper.py"
    st = helper.stat()
    assert _analyze(root)["required"] == ["numpy", "pandas"]
    helper.write_text("import xarray\n", encoding="utf-8")  # as long as "import pandas\n"
    os.utime(helper, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert helper.stat().st_size == st.st_size and helper.stat().st_mtime_ns == st.st_mtime_ns
    after = _analyze(root)
    assert traces == ["main.py", "main.py"]
    assert after["missing"] == ["xarray"]


def test_deleting_a_reached_file_invalidates(project: Project, traces: list[str]) -> None:
    root = project(dict(BASE))
    assert "helper.py" in _analyze(root)["files"]
    (root / "helper.py").unlink()
    after = _analyze(root)
    assert traces == ["main.py", "main.py"]
    assert after["files"] == ["main.py"]
    assert "pandas" not in after["required"]


def test_unchanged_but_touched_files_still_hit(project: Project, traces: list[str]) -> None:
    root = project(dict(BASE))
    first = _analyze(root)
    os.utime(root / "helper.py")  # a new stat, the same content: re-hashed, and equal
    (root / "notes.txt").write_text("not Python", encoding="utf-8")  # the root listing changes...
    assert _analyze(root) == first
    assert traces == ["main.py", "main.py"]  # ...so that one is a miss
    assert _analyze(root) == first
    assert traces == ["main.py", "main.py"]  # and then a hit again


@pytest.mark.parametrize("garbage", [b"", b"not a pickle", b"\x80\x05K\x01."])
def test_corrupt_cache_is_a_miss(project: Project, traces: list[str], garbage: bytes) -> None:
    root = project(dict(BASE))
    first = _analyze(root)
    (graph,) = _graph_files()
    graph.write_bytes(garbage)
    assert _analyze(root) == first
    assert traces == ["main.py", "main.py"]


def test_unreadable_cache_is_a_miss(project: Project, traces: list[str]) -> None:
    root = project(dict(BASE))
    first = _analyze(root)
    (graph,) = _graph_files()
    graph.unlink()
    graph.mkdir()  # open() fails with IsADirectoryError; the write fails too, and is ignored
    assert _analyze(root) == first
    assert _analyze(root) == first
    assert traces == ["main.py", "main.py", "main.py"]


def test_cache_is_never_written_into_the_project(project: Project) -> None:
    root = project(dict(BASE))
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    _analyze(root)
    _analyze(root)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before
    assert _graph_files() and all(root not in p.parents for p in _graph_files())


def test_options_have_their_own_graphs(project: Project, run_cli: Callable[..., Any]) -> None:
    root = project(dict(BASE))
    for target in ("3.11", "3.12", "3.11"):
        run = run_cli("analyze", str(root), "--entrypoint", "main.py", "--target-python", target, "--json")
        assert json.loads(run.out)["entrypoints"][0]["target_python"] == target
    assert len(_graph_files()) == 2


def test_evidence_records_listings_files_and_roots(project: Project) -> None:
    root = project(dict(BASE))
    _analyze(root)
    import pickle

    (graph,) = _graph_files()
    _header, _g, evidence = pickle.loads(graph.read_bytes())
    assert isinstance(evidence, TraceEvidence)
    resolved = root.resolve()
    assert set(evidence.files) == {str(resolved / "main.py"), str(resolved / "helper.py")}
    assert str(resolved) in evidence.dirs
    assert str(resolved / "src") in evidence.roots and evidence.roots[str(resolved / "src")][1] is False


@pytest.mark.parametrize("n_modules", [1, 20])  # parsed here, and (past _PARALLEL_MIN misses) in worker processes
def test_cold_trace_hashes_in_the_parser_what_digest_file_gives(project: Project, n_modules: int) -> None:
    """With an empty parse cache the file is hashed where it is read for parsing; the digests are the usual ones."""
    from slimbuild.cache.evidence import digest_file

    files: dict[str, str | bytes] = {f"m{i}.py": f"import os\nX = {i}\n" for i in range(n_modules)}
    files["main.py"] = "".join(f"import m{i}\n" for i in range(n_modules)) + "import numpy\n"
    files["requirements.txt"] = "numpy\n"
    root = project(files)
    assert _analyze(root)["files"] == sorted(files.keys() - {"requirements.txt"})
    import pickle

    (graph,) = _graph_files()
    _header, _g, evidence = pickle.loads(graph.read_bytes())
    assert len(evidence.files) == n_modules + 1
    assert evidence.files == {f: digest_file(Path(f)) for f in evidence.files}
    # and the per-file parse cache is keyed by them: a retrace after an unrelated edit parses only that file
    (root / "main.py").write_text((root / "main.py").read_text() + "\n", encoding="utf-8")
    from slimbuild.analysis import parsing as t

    parsed: list[str] = []
    real = t._parse_job

    def counting(abs_path: str, rel: str, *a: Any) -> Any:
        parsed.append(rel)
        return real(abs_path, rel, *a)

    mp = pytest.MonkeyPatch()
    mp.setattr(t, "_parse_job", counting)
    try:
        _analyze(root)
    finally:
        mp.undo()
    assert parsed == ["main.py"]
