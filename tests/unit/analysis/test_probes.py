"""Cases A57-A58: imports that run only when a probe succeeded are optional (an import flag function, a NameError
probe of the host), as the imports under ``except ImportError`` are."""

from __future__ import annotations

import pytest

from slimbuild.analysis.imports import parse_source

FLAG_FN = (
    "def running_x():\n"
    "    try:\n"
    "        import probe_lib\n"
    "        if probe_lib.current() == 'x':\n"
    "            return True\n"
    "    except ImportError:\n"
    "        pass\n"
    "    return False\n"
)


def _optional(src: str) -> dict[str, bool]:
    return {i.module or "": i.optional for i in parse_source(src, "m.py").imports}


@pytest.mark.parametrize(
    "use",
    [
        "def make():\n    if running_x():\n        import mod\n        return mod.Event()\n",
        "def make():\n    if running_x() and other:\n        import mod\n",
        "def make():\n    if not running_x():\n        pass\n    else:\n        import mod\n",
        "if running_x():\n    import mod\n",
    ],
)
def test_A57_import_under_a_flag_function_is_optional(use: str) -> None:
    for src in (FLAG_FN + use, use + FLAG_FN):  # the def may come after its caller
        assert _optional(src)["mod"] is True, src
        assert _optional(src)["probe_lib"] is True


@pytest.mark.parametrize(
    "fn",
    [
        # a true value returned outside the guarded try: the flag may be true without the import
        "def running_x():\n    try:\n        import probe_lib\n    except ImportError:\n        pass\n    return True\n",
        # the try guards nothing import-like
        "def running_x():\n    try:\n        return check()\n    except ImportError:\n        return False\n",
        # the handler is no ImportError guard
        "def running_x():\n    try:\n        import probe_lib\n        return True\n"
        "    except ValueError:\n        return False\n",
        # never returns a true value: no flag at all
        "def running_x():\n    try:\n        import probe_lib\n    except ImportError:\n        return False\n",
    ],
)
def test_A57_a_function_that_may_be_true_without_the_import_is_no_flag(fn: str) -> None:
    use = "def make():\n    if running_x():\n        import mod\n"
    assert _optional(fn + use)["mod"] is False
    assert _optional(FLAG_FN + use)["mod"] is True  # the same use of a true flag


def test_A57_a_nested_function_returns_do_not_make_the_flag_and_the_not_branch_stays_required() -> None:
    nested = (
        "def running_x():\n    def inner():\n        return True\n"
        "    try:\n        import probe_lib\n        return probe_lib.ok()\n    except ImportError:\n        return False\n"
    )
    assert _optional(nested + "if running_x():\n    import mod\n")["mod"] is True
    assert _optional(FLAG_FN + "if not running_x():\n    import mod\n")["mod"] is False
    assert _optional(FLAG_FN + "if obj.running_x():\n    import mod\n")["mod"] is False  # not the module's function
    twice = FLAG_FN + "def running_x():\n    return True\n"
    assert _optional(twice + "if running_x():\n    import mod\n")["mod"] is False  # which def runs is unknown


PROBE = (
    "def install():\n    try:\n        ip = get_ipython()\n    except NameError:\n        hook()\n"
    "    else:\n        import mod\n"
)


def test_A58_the_else_of_a_NameError_probe_of_a_host_name_is_optional() -> None:
    assert _optional(PROBE)["mod"] is True
    assert _optional(PROBE.replace("get_ipython()", "__IPYTHON__"))["mod"] is True
    assert _optional(PROBE.replace("except NameError:", "except (NameError,):"))["mod"] is True


@pytest.mark.parametrize(
    "src",
    [
        PROBE + "def get_ipython():\n    return None\n",  # the module defines the name itself
        PROBE.replace("get_ipython()", "len"),  # a builtin always exists
        PROBE.replace("except NameError:", "except ValueError:"),  # no name probe
        PROBE.replace("except NameError:", "except (NameError, ValueError):"),  # the else follows other failures too
        "get_ipython = None\n" + PROBE,
        "from host import get_ipython\n" + PROBE,
    ],
)
def test_A58_the_else_stays_required_when_the_name_is_no_host_name(src: str) -> None:
    assert _optional(src)["mod"] is False
    assert _optional(PROBE)["mod"] is True  # the probe of a host name itself
    assert _optional(src.replace("    else:\n        import mod\n", "    import mod\n"))["mod"] is False
