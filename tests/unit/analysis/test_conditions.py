"""Checks of the running Python (sys.version_info, sys.platform, os.name) decided for the image's target."""

from __future__ import annotations

import ast
import pickle

import pytest

from slimbuild.analysis.conditions import from_test, holds, never_runs, version_of
from slimbuild.analysis.imports import parse_source

PY311 = version_of("3.11")
PY37 = version_of("3.7")

# (test expression, on Python 3.11 / Linux, on Python 3.7 / Linux); None: cannot be told, so the block may run
CASES = [
    ("sys.version_info >= (3, 8)", True, False),
    ("sys.version_info < (3, 11)", False, True),
    ("sys.version_info >= (3, 11)", True, False),
    ("sys.version_info > (3, 11)", True, False),  # (3, 11, 0, ...) > (3, 11)
    ("sys.version_info == (3, 11)", False, False),  # a 5-tuple never equals a 2-tuple
    ("sys.version_info >= (3,)", True, True),
    ("sys.version_info >= (3, 11, 2)", None, False),  # the micro version decides
    ("(3, 8) <= sys.version_info", True, False),
    ("sys.version_info[0] == 2", False, False),
    ("sys.version_info[0] >= 3", True, True),
    ("sys.version_info.major == 3", True, True),
    ("sys.version_info.minor >= 10", True, False),
    ("sys.version_info[:2] < (3, 10)", False, True),
    ("sys.version_info[:2] == (3, 11)", True, False),
    ("sys.version_info[2] >= 5", None, None),
    ("sys.version_info > threshold", None, None),
    ("sys.platform == 'win32'", False, False),
    ("sys.platform != 'win32'", True, True),
    ("'darwin' == sys.platform", False, False),
    ("sys.platform == 'linux'", True, True),
    ("sys.platform.startswith('win')", False, False),
    ("sys.platform.startswith(('linux', 'darwin'))", True, True),
    ("sys.platform in ('win32', 'cygwin')", False, False),
    ("sys.platform not in {'win32', 'cygwin'}", True, True),
    ("os.name == 'nt'", False, False),
    ("os.name == 'posix'", True, True),
    ("platform.system() == 'Windows'", False, False),
    ("platform.system() in ('Linux', 'Darwin')", True, True),
    ("not sys.platform == 'win32'", True, True),
    ("sys.version_info < (3, 8) and flag", False, None),
    ("sys.version_info < (3, 8) or flag", None, True),
    ("sys.platform == 'win32' or sys.version_info < (3, 8)", False, True),
    ("sys.platform.startswith(prefix)", None, None),
]


@pytest.mark.parametrize(("src", "on_311", "on_37"), CASES)
def test_condition_is_decided_for_the_target(src: str, on_311: bool | None, on_37: bool | None) -> None:
    cond = from_test(ast.parse(src, mode="eval").body)
    assert cond is not None
    assert holds(cond, PY311) is on_311
    assert holds(cond, PY37) is on_37


@pytest.mark.parametrize(
    "src",
    ["flag", "TYPE_CHECKING", "PY2", "os.path.exists('x')", "platform.machine() == 'x86_64'", "platform.system(x) == 'Windows'"],
)
def test_tests_that_check_nothing_about_the_target_give_no_condition(src: str) -> None:
    assert from_test(ast.parse(src, mode="eval").body) is None


def test_the_platform_is_a_parameter_linux_by_default() -> None:
    cond = from_test(ast.parse("sys.platform.startswith('win') and os.name == 'nt'", mode="eval").body)
    assert cond is not None
    assert holds(cond, PY311) is False
    assert holds(cond, PY311, ("win32", "nt", "Windows")) is True


@pytest.mark.parametrize(
    ("src", "in_main", "in_imported"),
    [("__name__ == '__main__'", True, False), ("'__main__' == __name__", True, False), ("__name__ != '__main__'", False, True)],
)
def test_main_checks_depend_on_the_file_running_as_main(src: str, in_main: bool, in_imported: bool) -> None:
    cond = from_test(ast.parse(src, mode="eval").body)
    assert cond is not None
    assert holds(cond, PY311, is_main=True) is in_main
    assert holds(cond, PY311, is_main=False) is in_imported
    assert holds(cond, PY311) is None  # not known: may run


def test_only_a_surely_false_condition_means_never_runs() -> None:
    undecided = from_test(ast.parse("sys.version_info >= (3, 11, 2)", mode="eval").body)
    false = from_test(ast.parse("sys.version_info < (3, 8)", mode="eval").body)
    assert undecided is not None and false is not None
    assert not never_runs((undecided,), PY311)
    assert never_runs((undecided, false), PY311)
    assert not never_runs((), PY311)


SRC = """\
import sys, os
if sys.version_info >= (3, 8):
    from importlib import metadata
elif sys.version_info >= (3, 6):
    import importlib_metadata as metadata
else:
    import pkg_resources
if sys.platform == "win32":
    import colorama
    def f():
        import pywintypes
if flag:
    import yaml
if os.name != "nt" and flag:
    import uvloop
"""


def test_visitor_records_the_checks_around_each_import_and_the_else_branches_negated() -> None:
    parsed = parse_source(SRC, "m.py")
    by_module = {i.module: i.conditions for i in parsed.imports}
    assert by_module["sys"] == () and by_module["yaml"] == ()
    first = from_test(ast.parse("sys.version_info >= (3, 8)", mode="eval").body)
    second = from_test(ast.parse("sys.version_info >= (3, 6)", mode="eval").body)
    assert by_module["importlib"] == (first,)
    assert by_module["importlib_metadata"] == (("not", first), second)
    assert by_module["pkg_resources"] == (("not", first), ("not", second))
    assert by_module["pywintypes"] == by_module["colorama"]  # a def inside the block is under the same check
    runs_311 = {m for m, c in by_module.items() if not never_runs(c, PY311)}
    assert runs_311 == {"sys", "os", "importlib", "yaml", "uvloop"}
    runs_37 = {m for m, c in by_module.items() if not never_runs(c, PY37)}
    assert runs_37 == {"sys", "os", "importlib_metadata", "yaml", "uvloop"}


def test_conditions_survive_the_parse_cache_and_take_no_part_in_equality() -> None:
    parsed = parse_source(SRC, "m.py")
    assert pickle.loads(pickle.dumps(parsed)) == parsed
    imp = next(i for i in parsed.imports if i.module == "colorama")
    assert imp.conditions and imp == type(imp)(imp.line, imp.col, imp.module)
