"""Case A42: guards that make an import optional, beyond ``except ImportError``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimbuild.analysis.imports import parse_source
from slimbuild.errors import SlimbuildError


def _optional(src: str) -> dict[str, bool]:
    return {i.module or "": i.optional for i in parse_source(src, "m.py").imports}


GUARDED = [
    "import contextlib\nwith contextlib.suppress(ImportError):\n    import mod\n",
    "import contextlib\nwith contextlib.suppress(ModuleNotFoundError):\n    import mod\n",
    "import contextlib\nwith contextlib.suppress(Exception):\n    import mod\n",
    "import contextlib\nwith contextlib.suppress(ImportError, AttributeError):\n    import mod\n",
    "import contextlib\nwith contextlib.suppress(AttributeError, ModuleNotFoundError):\n    import mod\n",
    "import contextlib\nwith contextlib.suppress((KeyError, ImportError)):\n    import mod\n",
    "from contextlib import suppress\nwith suppress(ImportError):\n    from mod import x\n",
    "from contextlib import suppress\nwith open('f') as fh, suppress(ImportError):\n    import mod\n",
    "import contextlib\nasync def f():\n    async with contextlib.suppress(ImportError):\n        import mod\n",
    "try:\n    import mod\nexcept Exception:\n    pass\n",
    "try:\n    import mod\nexcept BaseException:\n    pass\n",
    "try:\n    import mod\nexcept:\n    pass\n",
    "try:\n    import mod\nexcept (ValueError, Exception):\n    pass\n",
    "try:\n    import mod\nexcept (OSError, ModuleNotFoundError) as exc:\n    pass\n",
    "try:\n    import mod\nexcept builtins.Exception:\n    pass\n",
    "try:\n    import mod\nexcept ValueError:\n    pass\nexcept Exception:\n    pass\n",
    "try:\n    import mod\nexcept* ImportError:\n    pass\n",
]


@pytest.mark.parametrize("src", GUARDED)
def test_A42_guard_makes_import_optional(src: str) -> None:
    assert _optional(src)["mod"] is True


def test_A42_fallback_in_a_catch_all_handler_is_optional() -> None:
    src = "try:\n    import fast\nexcept:\n    import slow\n"
    assert _optional(src) == {"fast": True, "slow": True}


NOT_GUARDED = [
    "try:\n    import mod\nexcept ValueError:\n    pass\n",
    "try:\n    import mod\nexcept (ValueError, KeyError):\n    pass\n",
    "try:\n    import mod\nfinally:\n    pass\n",
    "import contextlib\nwith contextlib.suppress(ValueError):\n    import mod\n",
    "import contextlib\nwith contextlib.suppress():\n    import mod\n",
    "with suppress_errors(ImportError):\n    import mod\n",
    "with other.suppress(ImportError):\n    import mod\n",
    "with open('f'):\n    import mod\n",
    # only the try block is guarded: its else and finally blocks run after (or whatever) the handler
    "try:\n    pass\nexcept Exception:\n    pass\nelse:\n    import mod\n",
    "try:\n    pass\nexcept:\n    pass\nfinally:\n    import mod\n",
]


@pytest.mark.parametrize("src", NOT_GUARDED)
def test_A42_not_a_guard_keeps_import_required(src: str) -> None:
    assert _optional(src)["mod"] is False


def test_A42_suppress_guards_only_its_own_block() -> None:
    src = "import contextlib\nwith contextlib.suppress(ImportError):\n    import inside\nimport after\n"
    assert _optional(src) == {"contextlib": False, "inside": True, "after": False}


def test_A42_dynamic_import_under_suppress_is_optional() -> None:
    src = "import importlib, contextlib\nwith contextlib.suppress(ImportError):\n    importlib.import_module('plug')\n"
    got = {i.module: (i.optional, i.dynamic) for i in parse_source(src, "m.py").imports}
    assert got["plug"] == (True, True)


_EXCEPTIONS = ["ImportError", "ModuleNotFoundError", "Exception", "BaseException", "ValueError", "KeyError", "OSError"]
_GUARDS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(st.sampled_from(_EXCEPTIONS), min_size=1, max_size=3),
    form=st.sampled_from(["suppress", "contextlib.suppress", "except", "except_tuple", "except_star"]),
)
def test_A42_fuzz_guard_forms(names: list[str], form: str) -> None:
    if form == "suppress":
        src = f"from contextlib import suppress\nwith suppress({', '.join(names)}):\n    import mod\n"
    elif form == "contextlib.suppress":
        src = f"import contextlib\nwith contextlib.suppress({', '.join(names)}):\n    import mod\n"
    elif form == "except_star":
        src = f"try:\n    import mod\nexcept* ({', '.join(names)},):\n    pass\n"
    else:
        handlers = [f"except {n}:" for n in names] if form == "except" else [f"except ({', '.join(names)}):"]
        src = "try:\n    import mod\n" + "".join(f"{h}\n    pass\n" for h in handlers)
    assert _optional(src)["mod"] is bool(_GUARDS & set(names))


@settings(max_examples=300, deadline=None)
@given(
    src=st.lists(
        st.sampled_from(["with ", "suppress", "contextlib.", "(", ")", ":", ",", "\n", "    ", "import m", "try:", "except",
                         " ImportError", " Exception", "*", " as e", "async ", "def f():", "pass", "x"]),
        max_size=40,
    ).map("".join)
)
def test_A42_fuzz_guard_like_text_never_a_traceback(src: str) -> None:
    try:
        parse_source(src, "m.py")
    except SlimbuildError:
        pass


FLAG = "try:\n    import fast\n    HAS_FAST = True\nexcept ImportError:\n    HAS_FAST = False\n"


@pytest.mark.parametrize(
    "tail",
    [
        "if HAS_FAST:\n    from fast import speedup\n",
        "if HAS_FAST and x:\n    from fast import speedup\n",
        "if not HAS_FAST:\n    pass\nelse:\n    from fast import speedup\n",
        "def f():\n    if HAS_FAST:\n        import fast.more\n",
    ],
    ids=["if-flag", "if-flag-and", "if-not-flag-else", "in-function"],
)
def test_A42_import_under_a_flag_set_by_a_guarded_import_is_optional(tail: str) -> None:
    """requests' pattern: `has_simplejson = True` beside a guarded import, then `if has_simplejson: from simplejson ...`."""
    sites = [i for i in parse_source(FLAG + tail, "m.py").imports if (i.module or "").startswith("fast")]
    assert len(sites) == 2 and all(i.optional for i in sites)


@pytest.mark.parametrize(
    "src",
    [
        FLAG + "if not HAS_FAST:\n    import slow\n",  # runs when the guarded import failed: not guarded by it
        "HAS_FAST = True\nif HAS_FAST:\n    import slow\n",  # a flag no guarded import sets
        "try:\n    HAS_FAST = True\nexcept ImportError:\n    pass\nif HAS_FAST:\n    import slow\n",  # no import in the try
        "try:\n    import fast\n    HAS_FAST = True\nexcept ValueError:\n    pass\nif HAS_FAST:\n    import slow\n",
        FLAG + "if OTHER:\n    import slow\n",
    ],
    ids=["not-flag-body", "unguarded-flag", "try-without-import", "not-an-import-guard", "another-name"],
)
def test_A42_import_under_no_import_flag_stays_required(src: str) -> None:
    assert _optional(src)["slow"] is False
