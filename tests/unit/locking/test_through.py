"""Case C29: the pure decision of a first lock (slimbuild.locking.through): which SB001s a resolution of the declared
set turns into SB020 from its ``# via`` graph, when that resolution is needed, and when it is the lock."""

from __future__ import annotations

from dataclasses import replace

from slimbuild.locking.lockfile import inputs_digest, parse_lock, render_lock_text
from slimbuild.locking.target import Target
from slimbuild.locking.through import brought, declared_inputs, graph_unknown, restamped, satisfies
from slimbuild.models import Analysis, Declared, Finding, ImportSite, Location, Requirement, Severity

H = "    --hash=sha256:" + "a" * 64
TARGET = Target(python_version="3.11", machine="x86_64")
# what pip-compile writes for "streamlit" alone: pandas and numpy come through it
FIRST = "\n".join([
    "numpy==2.1.3 \\", H, "    # via", "    #   pandas", "    #   pydeck",
    "pandas==2.2.3 \\", H, "    # via streamlit",
    "pydeck==0.9.1 \\", H, "    # via streamlit",
    "streamlit==1.40.0 \\", H, "    # via -r requirements.in", "",
])


def _req(name: str, line: int, declared: bool) -> Requirement:
    return Requirement(name, (ImportSite(name, Location("app.py", line, 1)),), ("bundled table",), declared)


def _sb001(r: Requirement) -> Finding:
    message = f"'{r.name}' needs distribution '{r.name}', which the project does not declare"
    return Finding(r.imports[0].location, "SB001", message)


def _analysis() -> Analysis:
    required = (_req("leftpad", 4, False), _req("numpy", 2, False), _req("pandas", 3, False), _req("streamlit", 1, True))
    missing = required[:3]
    return Analysis(
        "app", "app.py", "3.11", ("app.py",), required, missing, (), (), (), (), (), (), tuple(_sb001(r) for r in missing),
        declared=(Declared("streamlit", "==1.40.0", Location("requirements.txt", 1)),),
    )


def test_C29_the_declared_resolutions_via_graph_moves_what_it_pins_through_a_declared_one_and_only_that() -> None:
    a = _analysis()
    assert graph_unknown(a, set())  # nothing shows what streamlit brings: resolve it
    assert not graph_unknown(a, {"streamlit"})  # the environment or the lock has it: its graph was already read
    assert not graph_unknown(replace(a, missing=()), set())  # nothing undeclared: nothing to resolve for
    assert declared_inputs(a) == ("streamlit",)  # only the declared distributions are resolved
    after = brought(a, parse_lock(FIRST))
    assert [r.name for r in after.missing] == ["leftpad"]  # not in the graph: stays undeclared
    assert [(f.code, f.location.line) for f in after.findings] == [("SB020", 2), ("SB020", 3), ("SB001", 4)]
    assert all(f.severity is Severity.WARNING for f in after.findings if f.code == "SB020")
    through = {r.name: r.through for r in after.required}
    assert through["numpy"] == ("streamlit",) and through["pandas"] == ("streamlit",)  # numpy: via pandas, pydeck
    assert through["leftpad"] == () and through["streamlit"] == ()
    assert {r.name for r in after.required} == {r.name for r in a.required}  # everything stays in the image


def test_C29_the_first_resolution_is_the_lock_only_when_it_admits_every_input() -> None:
    first = parse_lock(FIRST)
    inputs = ("numpy", "pandas", "streamlit==1.40.0")
    assert satisfies(first, inputs)
    assert not satisfies(first, ("numpy<2", "pandas", "streamlit==1.40.0"))  # a constraint it did not see
    assert not satisfies(first, ("leftpad", "streamlit"))  # not pinned at all
    lock = restamped(first, inputs, TARGET, (), (), None)
    assert lock.inputs_sha256 == inputs_digest(inputs, TARGET)  # fresh for the whole required set
    assert [(d.name, d.version) for d in lock.dists] == [(d.name, d.version) for d in first.dists]
    assert lock.text == render_lock_text(FIRST, TARGET, inputs_digest(inputs, TARGET))
