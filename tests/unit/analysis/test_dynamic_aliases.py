"""A51: dynamic imports through other names of importlib, import_module and __import__."""

from __future__ import annotations

import keyword
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from slimbuild.analysis.imports import parse_source

IDENT = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s) and s not in {"importlib", "import_module", "builtins", "os", "f", "g", "x", "y"}
)
MODULE = st.sampled_from(["toml", "attr", "yaml", "requests.adapters", "numpy"])


def _dynamic(text: str) -> set[str | None]:
    return {i.module for i in parse_source(text, "m.py").imports if i.dynamic}


def test_A51_issue_forms_are_dynamic_imports() -> None:
    text = 'import importlib as il\nfrom importlib import import_module as im\nil.import_module("toml")\nim("attr")\n'
    assert _dynamic(text) == {"toml", "attr"}


def test_A51_assignment_chains_and_builtins_and_nothing_else() -> None:
    text = textwrap.dedent(
        """
        import importlib
        import builtins
        load = importlib.import_module
        again = load
        imp = __import__
        bimp = builtins.__import__
        mod = importlib
        a, b = mod.import_module, imp

        def later():
            return late("late_mod")

        late = again
        again("one")
        imp("two")
        bimp("three")
        mod.import_module("four")
        b("five")
        printer = print
        other = importlib.util
        printer("not_a_module")
        other("nor_this")
        """
    )
    assert _dynamic(text) == {"one", "two", "three", "four", "five", "late_mod"}


def test_A51_non_literal_alias_call_is_sb004_material() -> None:
    parsed = parse_source("from importlib import import_module as im\nname = 'x'\nim(name)\n", "m.py")
    assert [loc.line for loc in parsed.dynamic_unresolved] == [3]


@st.composite
def _alias_program(draw: st.DrawFn) -> tuple[str, str]:
    """A module binding an alias of a dynamic-import function in one of the ways code does, then calling it."""
    names = draw(st.lists(IDENT, min_size=4, max_size=4, unique=True))
    mod_alias, fn_alias, chain1, chain2 = names
    target = draw(MODULE)
    binding = draw(
        st.sampled_from(
            [
                f"import importlib as {mod_alias}\n{fn_alias} = {mod_alias}.import_module\n",
                f"from importlib import import_module as {fn_alias}\n",
                f"import importlib\n{fn_alias} = importlib.import_module\n",
                f"{fn_alias} = __import__\n",
                f"from builtins import __import__ as {fn_alias}\n",
                f"import os, importlib as {mod_alias}\n{fn_alias} = {mod_alias}.import_module  # alias\n",
                f"from importlib import import_module\n{fn_alias}, _z = import_module, 1\n",
            ]
        )
    )
    depth = draw(st.integers(0, 2))
    last = fn_alias
    for nxt in (chain1, chain2)[:depth]:
        binding += f"{nxt} = {last}\n"
        last = nxt
    call = f"{last}({target!r})"
    site = draw(
        st.sampled_from(
            [
                f"{call}\n",
                f"x = [{call}]\n",
                f"def f():\n    return {call}\n",
                f"class C:\n    def m(self):\n        if True:\n            y = {call}.x\n",
                f"try:\n    {call}\nexcept ImportError:\n    pass\n",
            ]
        )
    )
    filler = draw(st.sampled_from(["", "x = 1\n" * 30, "def g():\n    return 2\n\n"]))
    before = draw(st.booleans())  # the call may come before the binding (a function body, run later)
    if before and site.startswith("def"):
        return filler + site + filler + binding, target
    return binding + filler + site, target


@settings(max_examples=300, deadline=None)
@given(_alias_program())
def test_A51_generated_alias_forms_are_found(program: tuple[str, str]) -> None:
    text, target = program
    assert target in _dynamic(text), text
