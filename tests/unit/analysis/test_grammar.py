"""Case A43: sources parsed with the target's grammar when the target is newer than the interpreter running slimbuild.

The host here is Python 3.11. The subprocess path is checked for real twice: with /usr/bin/python3.11 (the
extraction run there gives exactly what the in-process parser gives, on the golden projects and the examples),
and with any Python 3.12+ this machine has (3.12 syntax the host rejects); Python 3.14's own syntax (PEP 758)
can be parsed only where a 3.14 exists.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimbuild.analysis.grammar import HOST, SHIPPED, Grammar, TargetParser, find_grammar, probe_version, select_interpreter
from slimbuild.analysis.parsing import NeedsTargetGrammar, Parser, _parse_job, parse_file_bytes
from slimbuild.cache import parsecache
from slimbuild.errors import AnalysisError, SlimbuildError

REPO = Path(__file__).resolve().parents[3]
PEP758 = b"try:\n    import json\nexcept ValueError, TypeError:\n    pass\n"
PY312 = b"type Alias = list[int]\nimport json\ndef first[T](xs: list[T]) -> T:\n    from os import path\n    return xs[0]\n"
MAX = 10 * 1024 * 1024
SYSTEM_311 = "/usr/bin/python3.11"


def _newer_python() -> tuple[str, str] | None:
    """(path, "3.X") of a runnable Python newer than the host, or None."""
    found = [shutil.which(f"python3.{m}") for m in range(12, 16)]
    found += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python3.1[2-9]")))
    for path in filter(None, found):
        version = probe_version(path)
        if version is not None and tuple(map(int, version.split("."))) > sys.version_info[:2]:
            return path, version
    return None


NEWER = _newer_python()
needs_311 = pytest.mark.skipif(HOST != "3.11" or probe_version(SYSTEM_311) != "3.11", reason="needs /usr/bin/python3.11")


# ---------------------------------------------------------------------------------------------- choosing the interpreter


def test_A43_select_interpreter_takes_the_first_of_the_target_version() -> None:
    assert select_interpreter("3.14", [("/venv/bin/python", "3.14"), ("/usr/bin/python3.14", "3.14")]) == "/venv/bin/python"
    assert select_interpreter("3.14", [("/venv/bin/python", "3.12"), ("/usr/bin/python3.14", "3.14")]) == "/usr/bin/python3.14"
    assert select_interpreter("3.14", [("/venv/bin/python", None), ("/shim/python3.14", None)]) == ""
    assert select_interpreter("3.14", []) == ""


def test_A43_find_grammar_is_none_when_the_host_serves_the_target() -> None:
    def fail(_: str) -> str:
        raise AssertionError("nothing is looked up for an older or equal target")

    for target in ("3.8", "3.10", HOST):
        assert find_grammar(target, "/venv/bin/python", which=fail, probe=fail) is None


def test_A43_find_grammar_prefers_the_project_python_of_the_target_version() -> None:
    versions = {"/venv/bin/python": "3.14", "/usr/bin/python3.14": "3.14", "/old/bin/python": "3.12"}
    on_path = {"python3.14": "/usr/bin/python3.14"}.get
    assert find_grammar("3.14", "/venv/bin/python", which=on_path, probe=versions.get) == Grammar("3.14", "/venv/bin/python")
    assert find_grammar("3.14", "/old/bin/python", which=on_path, probe=versions.get) == Grammar("3.14", "/usr/bin/python3.14")
    assert find_grammar("3.14", "", which=lambda _: None, probe=versions.get) == Grammar("3.14", "")


def test_A43_probe_version_of_a_broken_interpreter_is_none(tmp_path: Path) -> None:
    shim = tmp_path / "python3.14"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.14: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    assert probe_version(str(shim)) is None
    assert probe_version(str(tmp_path / "absent")) is None
    assert probe_version(sys.executable) == HOST


# ---------------------------------------------------------------------------------------------- no such interpreter


def test_A43_no_target_interpreter_fails_naming_target_file_and_remedy() -> None:
    with pytest.raises(AnalysisError) as err:
        parse_file_bytes(PEP758, "pkg/new.py", allow_unparseable=False, max_bytes=MAX, grammar=Grammar("3.14"))
    text = err.value.one_line()
    assert "\n" not in text
    assert err.value.message.startswith("pkg/new.py:3:")
    assert "Python 3.14" in text and f"Python {HOST}" in text
    assert "python3.14 is on PATH" in err.value.hint and "--python" in err.value.hint
    assert "Python 2" not in text


def test_A43_older_or_equal_target_keeps_the_python2_hint() -> None:
    with pytest.raises(AnalysisError) as err:
        parse_file_bytes(PEP758, "old.py", allow_unparseable=False, max_bytes=MAX)
    assert "Python 2 source?" in err.value.hint


def test_A43_no_target_interpreter_with_allow_unparseable_scans_tokens_and_says_why() -> None:
    parsed = parse_file_bytes(PEP758, "new.py", allow_unparseable=True, max_bytes=MAX, grammar=Grammar("3.14"))
    assert parsed.fallback
    assert [i.module for i in parsed.imports] == ["json"]
    assert "no Python 3.14" in parsed.findings[0].message


def test_A43_file_the_host_parses_needs_no_target_interpreter() -> None:
    parsed = parse_file_bytes(b"import json\n", "ok.py", allow_unparseable=False, max_bytes=MAX, grammar=Grammar("3.14"))
    assert [i.module for i in parsed.imports] == ["json"] and not parsed.fallback


def test_A43_notebook_cell_in_newer_syntax_needs_the_target() -> None:
    import json

    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "source": PEP758.decode()}
    nb = json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {"language_info": {"name": "python"}}, "cells": [cell]})
    with pytest.raises(AnalysisError) as err:
        parse_file_bytes(nb.encode(), "a.ipynb", allow_unparseable=False, max_bytes=MAX, grammar=Grammar("3.14"))
    assert "a.ipynb" in err.value.message and "Python 3.14" in err.value.message
    with pytest.raises(NeedsTargetGrammar):
        parse_file_bytes(nb.encode(), "a.ipynb", allow_unparseable=False, max_bytes=MAX, grammar=Grammar("3.14", "/x"))


def test_A43_host_rejection_is_handed_to_the_target_interpreter() -> None:
    with pytest.raises(NeedsTargetGrammar):
        parse_file_bytes(PEP758, "new.py", allow_unparseable=True, max_bytes=MAX, grammar=Grammar("3.14", "/opt/python3.14"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_A43_fuzz_newer_target_never_a_traceback(data: bytes) -> None:
    for grammar in (Grammar("3.14"), Grammar("3.14", "/opt/python3.14")):
        for allow in (False, True):
            try:
                parse_file_bytes(data, "f.py", allow_unparseable=allow, max_bytes=MAX, grammar=grammar)
            except SlimbuildError:
                pass


def test_A43_parse_and_graph_cache_keys_name_the_grammar() -> None:
    salts = {
        Parser(None, allow_unparseable=False, max_bytes=MAX, grammar=g).key_salt
        for g in (None, Grammar("3.14"), Grammar("3.14", "/usr/bin/python3.14"), Grammar("3.13", "/usr/bin/python3.13"))
    }
    assert len(salts) == 4
    keys = {parsecache.graph_key(REPO, "e", "3.14", False, MAX, g) for g in ("", Grammar("3.14").salt)}
    assert len(keys) == 2


# ---------------------------------------------------------------------------------------------- the subprocess, for real


def _sources() -> list[Path]:
    roots = [REPO / "tests" / "golden" / "projects", REPO / "examples"]
    return sorted(p for r in roots for p in r.rglob("*") if p.suffix in {".py", ".ipynb"} and p.is_file())


@needs_311
def test_A43_subprocess_extraction_equals_in_process_parser(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_bytes(b"import os\n" + PEP758)
    binary = tmp_path / "binary.py"
    binary.write_bytes(b"import os\x00\n")
    undecodable = tmp_path / "latin.py"
    undecodable.write_bytes(b"import os\nname = '\xe9t\xe9'\n")
    huge = tmp_path / "huge.py"
    huge.write_bytes(b"import os\n" + b"x = 1\n" * 400)
    files = [*_sources(), broken, binary, undecodable, huge]
    assert len(files) > 10
    child = TargetParser(Grammar("3.11", SYSTEM_311))
    try:
        for path in files:
            for allow in (False, True):
                for limit in (MAX, 1000):
                    mine = _parse_job(str(path), path.name, allow, limit, True)
                    theirs = child.parse(str(path), path.name, allow, limit)
                    assert theirs == mine, path
    finally:
        child.close()


@needs_311
def test_A43_child_needs_only_what_is_shipped() -> None:
    # the child runs with -I -S from a directory holding SHIPPED only: no site-packages, no slimbuild install
    assert "analysis/grammar_child.py" in SHIPPED
    child = TargetParser(Grammar("3.11", SYSTEM_311))
    try:
        parsed, digest = child.parse(str(REPO / "slimbuild" / "analysis" / "imports.py"), "imports.py", False, MAX)
    finally:
        child.close()
    assert digest and {"ast", "tokenize"} <= {i.module for i in parsed.imports}


@needs_311
def test_A43_parser_reparses_host_rejections_in_the_target_interpreter(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"import os\n" + PEP758)
    parser = Parser(None, allow_unparseable=True, max_bytes=MAX, grammar=Grammar("3.11", SYSTEM_311))
    parser.submit(bad, "bad.py", None)
    got = list(parser.results())
    parser.close()
    # python3.11 rejects it too: its own token-scan fallback came back, as the in-process one would be
    assert got == [_parse_job(str(bad), "bad.py", True, MAX)[0]]
    assert parser.digests[str(bad)]
    strict = Parser(None, allow_unparseable=False, max_bytes=MAX, grammar=Grammar("3.11", SYSTEM_311))
    with pytest.raises(AnalysisError, match=r"bad\.py:4:.*syntax error"):
        strict.submit(bad, "bad.py", None)
        list(strict.results())


@needs_311
def test_A43_interpreter_of_another_version_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "a.py"
    src.write_bytes(PEP758)
    child = TargetParser(Grammar("3.14", SYSTEM_311))
    with pytest.raises(AnalysisError, match=r"is not Python 3\.14"):
        child.parse(str(src), "a.py", False, MAX)


def test_A43_interpreter_that_hangs_or_dies_is_one_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import slimbuild.analysis.grammar as grammar

    monkeypatch.setattr(grammar, "ANSWER_TIMEOUT", 0.5)
    src = tmp_path / "a.py"
    src.write_bytes(PEP758)
    for body, what in (("sleep 5", "did not answer within"), ("echo 'Fatal Python error: boom' >&2; exit 1", "exited: Fatal")):
        fake = tmp_path / "python3.14"
        fake.write_text(f"#!/bin/sh\n{body}\n")
        fake.chmod(0o755)
        child = TargetParser(Grammar("3.14", str(fake)))
        with pytest.raises(AnalysisError, match=what) as err:
            child.parse(str(src), "a.py", False, MAX)
        assert str(fake) in err.value.message and "\n" not in err.value.one_line()


def test_A43_interpreter_that_cannot_start_is_one_error(tmp_path: Path) -> None:
    src = tmp_path / "a.py"
    src.write_bytes(PEP758)
    child = TargetParser(Grammar("3.14", str(tmp_path / "python3.14")))
    with pytest.raises(AnalysisError, match=r"cannot start"):
        child.parse(str(src), "a.py", False, MAX)


@pytest.mark.skipif(NEWER is None, reason="no Python newer than the host on this machine")
def test_A43_real_newer_interpreter_parses_syntax_the_host_rejects(tmp_path: Path) -> None:
    assert NEWER is not None
    path, version = NEWER
    src = tmp_path / "new.py"
    src.write_bytes(PY312)
    with pytest.raises(AnalysisError):
        parse_file_bytes(PY312, "new.py", allow_unparseable=False, max_bytes=MAX)  # the host's grammar rejects it
    parser = Parser(None, allow_unparseable=False, max_bytes=MAX, grammar=Grammar(version, path))
    parser.submit(src, "new.py", None)
    (parsed,) = list(parser.results())
    parser.close()
    assert not parsed.fallback
    assert [(i.module, i.line) for i in parsed.imports] == [("json", 2), ("os", 4)]


# ---------------------------------------------------------------------------------------------- an older target

MATCH = b"import json\nmatch json:\n    case _:\n        import os\n"


def test_A43_older_target_rejects_syntax_it_does_not_have() -> None:
    with pytest.raises(AnalysisError) as err:
        parse_file_bytes(MATCH, "m.py", allow_unparseable=False, max_bytes=MAX, feature_version=(3, 9))
    assert err.value.message.startswith("m.py:") and "for the target, Python 3.9" in err.value.message
    assert "--target-python" in err.value.hint and "Python 2" not in err.value.one_line()
    parsed = parse_file_bytes(MATCH, "m.py", allow_unparseable=True, max_bytes=MAX, feature_version=(3, 9))
    assert parsed.fallback and "Python 3.9" in parsed.findings[0].message
    ok = parse_file_bytes(MATCH, "m.py", allow_unparseable=False, max_bytes=MAX, feature_version=(3, 10))
    assert [i.module for i in ok.imports] == ["json", "os"]


def test_A43_older_target_keeps_today_s_error_for_broken_code() -> None:
    with pytest.raises(AnalysisError) as err:
        parse_file_bytes(PEP758, "old.py", allow_unparseable=False, max_bytes=MAX, feature_version=(3, 9))
    assert "Python 2 source?" in err.value.hint and "for the target" not in err.value.message


def test_A43_parse_cache_key_names_an_older_target() -> None:
    salts = {Parser(None, allow_unparseable=False, max_bytes=MAX, feature_version=v).key_salt for v in (None, (3, 9), (3, 10))}
    assert len(salts) == 3


def test_A63_the_parser_copy_shipped_to_the_target_interpreter_holds_every_slimbuild_module_it_imports() -> None:
    """What the shipped modules import of slimbuild is shipped too (the host-side grammar module excepted: parsing.py
    imports it only to start the child, which never does that)."""
    import ast

    from slimbuild.analysis.grammar import SHIPPED

    package = Path(__file__).resolve().parents[3] / "slimbuild"
    shipped = set(SHIPPED)
    todo, seen, absent = list(SHIPPED), set(), []
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        tree = ast.parse((package / rel).read_text(encoding="utf-8"))
        typing_only = {  # imports under `if TYPE_CHECKING:` never run
            id(n) for i in ast.walk(tree) if isinstance(i, ast.If) and ast.unparse(i.test) == "TYPE_CHECKING"
            for stmt in i.body for n in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if not name.startswith("slimbuild.") or name == "slimbuild.analysis.grammar":
                    continue
                parts = name.split(".")[1:]
                rel_mod = "/".join(parts) + ".py"
                rel_pkg = "/".join(parts) + "/__init__.py"
                target = rel_mod if (package / rel_mod).exists() else rel_pkg
                if not (package / target).exists():
                    continue
                if target not in shipped:
                    absent.append(f"{rel} imports {name}")
                todo.append(target)
    assert not absent, absent
