"""IPython's ``%run`` in notebook cells: what it runs, for the trace, and the same run in the image's script.

``%run helper.py ARGS`` runs a script as ``__main__`` (``sys.argv = [script, *ARGS]``, its directory first on
``sys.path``), then copies its names into the notebook's namespace; ``-i`` runs it in that namespace,
``-m mod`` runs a module. Paths are relative to the notebook's directory (Jupyter's working directory).
Pure: a cell's text in, :class:`RunMagic` records out; :data:`RUN_HELPER` is the code the generated script uses.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

_RUN = re.compile(r"^(\s*)%run(?:\s+(.*))?$")
_VALUED = frozenset("NbDlsTm")  # %run options that take a value (IPython's "nidtN:b:pD:l:rs:T:em:G")
_VARIABLE = re.compile(r"\$|\{")  # IPython expands $name and {expr} in a line magic's arguments
# Cell magics whose body is Python (notebook.py parses their body; every other %% cell is skipped).
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "python", "python3", "debug", "pypy"})


@dataclass(frozen=True)
class RunMagic:
    """One ``%run`` line of a cell: its line in the cell, indent, what it runs and how."""

    line: int
    indent: str
    target: str  # a script path as written, or a module (``module``); may hold $name / {expr}
    args: tuple[str, ...] = ()
    module: bool = False
    interactive: bool = False
    error: str = ""  # why the line cannot be read (empty: it can)

    @property
    def variable(self) -> bool:
        """True when the script is named through a variable ($name, {expr}): the trace cannot follow it."""
        return bool(_VARIABLE.search(self.target))


def run_magics(src: str) -> tuple[RunMagic, ...]:
    """The ``%run`` lines of a cell (none in a ``%%`` cell whose body is not Python)."""
    lines = src.splitlines()
    start = 0
    if lines and lines[0].lstrip().startswith("%%"):
        if lines[0].strip()[2:].partition(" ")[0] not in PYTHON_CELL_MAGICS:
            return ()
        start = 1
    out: list[RunMagic] = []
    n = start
    while n < len(lines):
        text, last = _logical(lines, n)
        m = _RUN.match(text)
        if m:
            out.append(_parse(n + 1, m.group(1), m.group(2) or ""))
        n = last + 1
    return tuple(out)


def _logical(lines: list[str], i: int) -> tuple[str, int]:
    """Line ``i`` joined with the lines a trailing backslash continues it onto, and the last line's index."""
    text = lines[i].rstrip()
    while text.endswith("\\") and i + 1 < len(lines):
        i += 1
        text = text[:-1] + " " + lines[i].strip()
    return text.rstrip("\\"), i


def _parse(line: int, indent: str, rest: str) -> RunMagic:
    try:
        words = shlex.split(rest, comments=False, posix=True)
    except ValueError as exc:
        return RunMagic(line, indent, rest.strip(), error=f"cannot read '%run {rest.strip()}' ({exc})")
    interactive = False
    i = 0
    while i < len(words) and words[i].startswith("-") and len(words[i]) > 1:
        flags = words[i][1:]
        i += 1
        for k, flag in enumerate(flags):
            if flag == "i":
                interactive = True
            if flag in _VALUED:
                value = flags[k + 1:]
                if not value and i < len(words):
                    value, i = words[i], i + 1
                if flag == "m":
                    return RunMagic(line, indent, value, tuple(words[i:]), module=True)
                break
    if i >= len(words):
        return RunMagic(line, indent, "", error="'%run' names no script")
    return RunMagic(line, indent, words[i], tuple(words[i + 1:]), interactive=interactive)


def render_call(run: RunMagic) -> str:
    """The line of the generated script that does what the ``%run`` line did."""
    return (
        f"{run.indent}__slimbuild_run({run.target!r}, {list(run.args)!r}, module={run.module}, "
        f"interactive={run.interactive}, ns=globals())"
    )


# Defined once at the top of a generated script whose notebook has %run lines.
RUN_HELPER = '''
def __slimbuild_run(target, args, module=False, interactive=False, ns=None):
    """IPython's %run: the script runs as __main__ (sys.argv = [script, *args], its directory first on sys.path),
    then its names are copied into the notebook's namespace (-i: it runs in that namespace); -m runs a module."""
    import builtins, os, re, runpy, sys

    def expand(text):  # IPython's $name / {expr} expansion of a line magic's arguments ($$ is a dollar)
        def one(m):
            if m.group(0) == "$$":
                return "$"
            return str(ns[m.group(1)] if m.group(1) else eval(m.group(2), ns))
        return re.sub(r"\\$\\$|\\$(\\w+)|\\{([^{}]+)\\}", one, text)

    target, args = expand(target), [expand(a) for a in args]
    saved_argv, saved_path = sys.argv, sys.path[:]
    try:
        if module:
            sys.argv = [target, *args]
            result = runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.path.expanduser(target))
            if not os.path.isfile(path) and not path.endswith(".py") and os.path.isfile(path + ".py"):
                path += ".py"
            sys.argv = [path, *args]
            sys.path.insert(0, os.path.dirname(path))
            with open(path, "rb") as fh:
                code = compile(fh.read(), path, "exec")
            result = ns if interactive else {"__name__": "__main__", "__file__": path, "__builtins__": builtins}
            try:
                exec(code, result)
            except SystemExit as exc:  # %run reports a failing exit and the notebook goes on
                if exc.code not in (None, 0):
                    print(f"%run {target}: SystemExit: {exc.code}", file=sys.stderr)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    if result is not ns:
        result.pop("__name__", None)
        result.pop("__file__", None)  # the notebook keeps its own __file__
        ns.update(result)
'''
