"""The pruned walk finds exactly what the full walk finds.

``parse_source`` skips every statement and expression that spans no line naming a trigger word
(``import``, ``sys``, ``engine``, the pandas readers ...). These tests hold the pruned walk to the
full one (every statement, every expression) on real code and on shapes chosen to trip it up.
"""

from __future__ import annotations

import ast
import sysconfig
import textwrap
from pathlib import Path

import pytest

from slimbuild.analysis.imports import _Visitor, parse_source, scan_triggers

CASES = {
    "semicolons": "import a; import b\nx = 1; import c\n",
    "decorated_def_with_import_in_decorator": textwrap.dedent(
        """
        @__import__("deco").wrap
        def f():
            return 1


        @register
        class C:
            def m(self):
                import inside_method
        """
    ),
    "import_after_long_irrelevant_tail": "x = 1\n" * 50 + "def f():\n    pass\n" * 20 + "import late\n",
    "nested_try_in_class_in_function": textwrap.dedent(
        """
        def outer():
            class K:
                try:
                    import optional_mod
                except ImportError:
                    optional_mod = None
            return K
        """
    ),
    "type_checking_then_runtime": textwrap.dedent(
        """
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import only_types
        else:
            import at_runtime
        """
    ),
    "match_case_guard_and_body": textwrap.dedent(
        """
        match command:
            case "a" if __import__("guarded"):
                import in_case
            case _:
                pass
        """
    ),
    "dynamic_imports_in_expressions": textwrap.dedent(
        """
        import importlib
        handlers = {name: importlib.import_module(f"pkg.{name}") for name in names}
        lazy = lambda: __import__("lazy_mod")
        m = importlib.import_module("literal_mod")
        """
    ),
    "sys_path_edits_and_runtime_hints": textwrap.dedent(
        """
        import sys
        sys.path.append("lib")
        sys.path.insert(0, "vendor")
        frame = pd.read_parquet(
            "data.parquet",
            engine="pyarrow",
        )
        frame.to_excel("out.xlsx")
        """
    ),
    "multiline_fstring_hiding_a_call": 'x = f"""{\n__import__("in_fstring")\n}"""\n',
    "no_trigger_word_at_all": "x = 1\ndef f():\n    return x\n",
    "dunder_import_first_in_file_and_list_appends": '__import__("first")\nxs = []\nxs.append(1)\n',
    "import_module_as_the_only_dynamic_word": 'from importlib import import_module\nm = import_module("late")\n',
    "non_ascii_text_is_walked_in_full": '# caf\u00e9\nimport sys\nsys.path.append("lib")\n',
    "docstring_naming_import_before_a_real_one": 'def f():\n    """from x import y"""\n    import z\n',
    "engine_keyword_without_sys": 'import pandas as pd\npd.read_csv("a", engine="pyarrow")\n',
    "trigger_only_in_comments_and_strings": '# import nothing\ns = "import nope"\ny = 2\n',
}


def _full(text: str, path: str) -> object:
    return _Visitor(path, None, scan_exprs=True, lines=None).run(ast.parse(text, filename=path))


def _pruned(text: str, path: str) -> object:
    lines, exprs = scan_triggers(text)
    return _Visitor(path, None, scan_exprs=exprs, lines=lines).run(ast.parse(text, filename=path))


@pytest.mark.parametrize("name", sorted(CASES))
def test_pruned_walk_equals_full_walk_on_tricky_shapes(name: str) -> None:
    text = CASES[name]
    assert _pruned(text, f"{name}.py") == _full(text, f"{name}.py")
    assert parse_source(text, f"{name}.py") == _full(text, f"{name}.py")


def _stdlib_sample(limit: int = 400) -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and "test" not in p.parts)
    step = max(1, len(files) // limit)
    return files[::step][:limit]


def test_pruned_walk_equals_full_walk_on_the_standard_library() -> None:
    checked = 0
    for path in _stdlib_sample():
        try:
            text = path.read_text(encoding="utf-8")
            ast.parse(text)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # lib2to3 fixtures and the like: not what this test is about
        rel = path.name
        assert _pruned(text, rel) == _full(text, rel), path
        checked += 1
    assert checked > 200
