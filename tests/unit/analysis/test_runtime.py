"""The runtime trace's pure parts: raw records to a trace, merge, the file's schema, reading it into an analysis (L1-L4)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimbuild.analysis import runtime, runtime_feed
from slimbuild.analysis.runtime import Command, Module, Process, Trace
from slimbuild.errors import ConfigError
from slimbuild.models import (
    Analysis,
    Declared,
    Finding,
    ImportGraph,
    ImportSite,
    Location,
    Requirement,
    Resolved,
    Severity,
)
from tests.constants import USAGE

ROOT = "/work/proj"
SITE = "/work/proj/.venv/lib/python3.11/site-packages"
HEADER = {
    "argv": ["python", "main.py"], "cwd": ROOT, "site": [SITE], "stdlib": ["/usr/lib/python3.11"], "prefix": ["/usr"],
}


def _proc(*records: tuple[object, ...], header: dict[str, object] | None = None) -> Process:
    return Process(header or HEADER, tuple(records))


def test_L1_raw_records_become_relative_sorted_paths() -> None:
    main = _proc(
        ("i", "yaml", f"{SITE}/yaml/__init__.py", f"{ROOT}/plugins/y.py", 1),
        ("i", "plugins.y", f"{ROOT}/plugins/y.py", "main.py", 4),  # a relative frame file: against the cwd
        ("i", "json", "/usr/lib/python3.11/json/__init__.py", f"{ROOT}/main.py", 2),
        ("i", "_locale", None, "/usr/lib/python3.11/locale.py", 3),  # built in
        ("i", "__mp_main__", f"{ROOT}/main.py", "", 0),
        ("i", "google", f"{SITE}/google/", f"{ROOT}/main.py", 5),  # a namespace package: its directory
        ("o", "data/in.csv"),
        ("o", f"{ROOT}/plugins/y.py"),  # a module's own file is no data file
        ("o", f"{SITE}/yaml/__pycache__/x.cpython-311.pyc"),
        ("o", "/srv/shared/big.csv"),
        ("o", "/dev/null"),
        ("o", "/usr/lib/python3.11/json/decoder.py"),
        ("d", f"{SITE}/pkg/libz.so"),
        ("d", "libm.so.6"),
        ("p", ["/usr/bin/python3", "-I", "child.py"]),
        ("p", ["/usr/bin/python3", "traced.py"]),
        ("p", ["/bin/sh", "-c", "true"]),
    )
    child = _proc(header={**HEADER, "argv": ["/usr/bin/python3", "traced.py"]})
    trace = runtime.from_processes([main, child], ROOT, ["python", "main.py"], "demo")
    assert trace.commands == (Command(("python", "main.py"), ("python3 -I child.py",)),)
    assert trace.modules == (
        Module("google", "site-packages/google/", ("main.py:5",)),
        Module("plugins.y", "plugins/y.py", ("main.py:4",)),
        Module("yaml", "site-packages/yaml/__init__.py", ("plugins/y.py:1",)),
    )
    assert trace.stdlib == ("_locale", "json")
    assert trace.opened == ("data/in.csv",)
    assert trace.outside == ("/srv/shared/big.csv",)
    assert trace.dlopen == ("libm.so.6", "site-packages/pkg/libz.so")


def test_L1_order_of_processes_and_records_does_not_matter() -> None:
    a = _proc(("i", "yaml", f"{SITE}/yaml/__init__.py", f"{ROOT}/main.py", 1), ("o", "b.txt"), ("o", "a.txt"))
    b = _proc(("o", "c.txt"), ("i", "six", f"{SITE}/six.py", f"{ROOT}/main.py", 2))
    one = runtime.from_processes([a, b], ROOT, ["python", "main.py"], None)
    two = runtime.from_processes([_proc(*reversed(b.records)), _proc(*reversed(a.records))], ROOT, ["python", "main.py"], None)
    assert runtime.dumps(one) == runtime.dumps(two)


_names = st.sampled_from(["a", "b", "c.d", "e_f", "x.y.z"])
_traces = st.builds(
    Trace,
    project=st.sampled_from([None, "demo"]),
    commands=st.lists(st.builds(Command, st.tuples(_names), st.tuples()), max_size=3).map(
        lambda cs: tuple(sorted({c.argv: c for c in cs}.values()))
    ),
    modules=st.lists(st.builds(Module, _names, st.sampled_from([None, "a.py", "site-packages/x.py"]),
                               st.lists(_names, max_size=2).map(lambda x: tuple(sorted(set(x))))), max_size=4).map(
        lambda ms: tuple(sorted({m.name: m for m in ms}.values()))
    ),
    opened=st.lists(_names, max_size=4).map(lambda x: tuple(sorted(set(x)))),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_traces, _traces)
def test_L2_merge_is_a_union_commutative_and_idempotent(a: Trace, b: Trace) -> None:
    ab, ba = runtime.merge(a, b), runtime.merge(b, a)
    assert {m.name for m in ab.modules} == {m.name for m in ba.modules} == {m.name for m in (*a.modules, *b.modules)}
    assert set(ab.opened) == set(a.opened) | set(b.opened)
    assert {c.argv for c in ab.commands} == {c.argv for c in (*a.commands, *b.commands)}
    assert [m.imported_by for m in ab.modules] == [m.imported_by for m in ba.modules]
    assert runtime.merge(ab, b) == ab
    assert runtime.merge(ab, ab) == ab


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_traces)
def test_L2_file_round_trips_sorted_and_stable(trace: Trace) -> None:
    text = runtime.dumps(trace)
    assert text.endswith("\n")
    again = runtime.loads(text)
    assert again == trace
    assert runtime.dumps(again) == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"schema": "slimbuild-trace",\n "version": 1,\n "modules": {,}\n}', "slimbuild.trace.json:3:"),
        ('{"schema": "other", "version": 1}', "not a slimbuild trace"),
        ('{"schema": "slimbuild-trace", "version": 3}', "newer than this slimbuild reads (2)"),
        ('{"schema": "slimbuild-trace", "version": 0}', "unknown trace schema version 0"),
        ('{"schema": "slimbuild-trace", "version": 1, "opened": "a.csv"}', "'opened' must be a list of strings"),
        ('{"schema": "slimbuild-trace", "version": 1, "commands": [{"argv": []}]}', "commands[0].argv"),
        ('[1, 2]', "not a slimbuild trace"),
    ],
)
def test_L3_bad_trace_files_are_exit_2_naming_where(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        runtime.loads(text)
    assert info.value.exit_code == USAGE
    assert says in info.value.one_line()
    assert "slimbuild trace" in info.value.hint


def test_L3_a_trace_of_another_project_is_refused() -> None:
    trace = Trace(project="other", modules=(Module("m", "m.py"),))
    with pytest.raises(ConfigError, match="trace of project 'other', not of 'demo'"):
        runtime.check_project(trace, "demo", lambda f: True)
    with pytest.raises(ConfigError, match="names none of this project's files"):
        runtime.check_project(Trace(modules=(Module("m", "m.py"),)), "demo", lambda f: False)
    runtime.check_project(Trace(modules=(Module("m", "m.py"),)), "demo", lambda f: f == "m.py")  # it is ours


def _graph(**kw: object) -> ImportGraph:
    base = dict(entrypoint="main.py", files=("main.py", "plug.py"), third_party=(), stdlib=(), dynamic_unresolved=(),
                pip_hints=(), runtime_hints=(), findings=())
    return ImportGraph(**{**base, **kw})  # type: ignore[arg-type]


_TRACE = Trace(
    modules=(
        Module("plugins.csvr", "plugins/csvr.py", ("plug.py:3",)),  # loaded by name: dynamic
        Module("yaml", "site-packages/yaml/__init__.py", ("plugins/csvr.py:1",)),
        Module("lazy", "site-packages/lazy/__init__.py", ("main.py:2",)),
        Module("six", "site-packages/six.py", ("site-packages/lazy/__init__.py:9",)),
        Module("tensorflow", "site-packages/tensorflow/__init__.py", ("explore.py:1",)),  # a scratch script's
    ),
    opened=("data/in.csv", "data/kept.csv", "main.py", "site-packages/yaml/x.txt", "slimbuild.lock"),
    outside=("/srv/big.csv",),
)


def test_L4_runtime_imports_reached_from_the_entrypoint_join_its_graph() -> None:
    dyn = Location("plug.py", 3, 11)
    graph = _graph(
        third_party=(ImportSite("lazy", Location("main.py", 2, 1)),), dynamic_unresolved=(dyn,),
        findings=(Finding(dyn, "SB004", "dynamic import with a non-literal name cannot be traced", Severity.WARNING),),
    )
    rv = runtime_feed.view(graph, _TRACE)
    assert rv.sites == (ImportSite("yaml", Location("plugins/csvr.py", 1)),)  # lazy is known statically
    assert rv.files == ("plugins/csvr.py",)
    assert rv.resolved_dynamic == ((dyn, ("plugins.csvr",)),)
    assert "tensorflow" not in {n for n, _ in rv.imported}  # explore.py is not reached from main.py
    fed = runtime_feed.with_view(graph, rv)
    assert fed.dynamic_unresolved == ()
    assert [f.code for f in fed.findings] == ["SB031"]
    assert "plugins.csvr" in fed.findings[0].message
    assert "plugins/csvr.py" in fed.files and ImportSite("yaml", Location("plugins/csvr.py", 1)) in fed.third_party


def test_L4_apply_gives_the_via_keeps_the_declared_and_proposes_data_files() -> None:
    graph = _graph(third_party=(ImportSite("lazy", Location("main.py", 2, 1)),))
    rv = runtime_feed.view(graph, _TRACE)
    six = Declared("six", "", Location("requirements.txt", 3))
    yaml_site = ImportSite("yaml", Location("plugins/csvr.py", 1))
    analysis = Analysis(
        "main", "main.py", "3.11", ("main.py", "plug.py", "plugins/csvr.py"),
        required=(Requirement("pyyaml", (yaml_site,), ("bundled table",), True),),
        missing=(), unused=(six,), optional=(), unresolved=(), dynamic_unresolved=(), type_checking=(), pip_hints=(),
        findings=(Finding(six.source, "SB002", "'six' is declared but the entrypoint does not import it", Severity.WARNING),),
        declared=(six,),
    )
    resolved = {"six": Resolved("six", "six", "bundled table"), "lazy": Resolved("lazy", "lazy", "bundled table")}
    out = runtime_feed.apply(analysis, rv, _TRACE, resolved, include=["data/kept.csv"])
    by = {r.name: r for r in out.required}
    assert runtime_feed.TRACE_VIA in by["pyyaml"].via
    assert by["six"].via == (runtime_feed.TRACE_VIA,) and by["six"].declared
    assert out.unused == ()
    codes = {(f.code, f.location.path) for f in out.findings}
    assert ("SB002", "requirements.txt") not in codes
    kept = next(f for f in out.findings if f.code == "SB030")
    assert "'six'" in kept.message and "site-packages/lazy/__init__.py:9" in kept.message
    proposals = [f.message for f in out.findings if f.code == "SB032"]
    assert len(proposals) == 1 and "data/in.csv" in proposals[0]  # included, sources, own files and site files are not
    (outside,) = [f for f in out.findings if f.code == "SB033"]
    assert "/srv/big.csv" in outside.message and "never copied" in outside.message
    assert outside.severity is Severity.WARNING
