"""Jupyter notebooks: code cells to Python, IPython syntax neutralised.

Cells are numbered from 1 over all cells (markdown included), as a reader
counts them in the notebook. A cell that cannot be parsed is reported as
``nb.ipynb[cell N]``; the other cells still count.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from slimbuild.analysis.imports import DEFAULT_MAX_BYTES, NOTEBOOK_SIZE_FACTOR, parse_source
from slimbuild.analysis.notebook_run import PYTHON_CELL_MAGICS, RUN_HELPER, RunMagic, render_call, run_magics
from slimbuild.errors import AnalysisError
from slimbuild.models import Finding, Location, ParsedSource, RawImport, Severity

_PYTHON_CELL_MAGICS = PYTHON_CELL_MAGICS  # cell magics whose body is Python: parse the body; other %% cells are skipped
# Line magics whose argument is a Python statement.
_PYTHON_LINE_MAGICS = frozenset({"time", "timeit", "prun"})
_INSTALLERS = re.compile(r"^(?:%|!)\s*(?:(?:python3?|\S*/python3?)\s+-m\s+)?(pip3?|conda|mamba|micromamba)\s+install\b(.*)$")
_ASSIGN_MAGIC = re.compile(r"^(\s*)[\w.,\s\[\]()*]+?=\s*[!%]")
_HELP = re.compile(r"^\s*(\?{1,2}[\w.]+|[\w.\[\]()]+\?{1,2})\s*$")
_RUN_MAGIC = re.compile(r"""get_ipython\(\)\.(?:run_line_magic|magic)\(\s*['"](pip|conda)['"]\s*,\s*['"]install\s+([^'"]*)['"]""")
_SYSTEM_PIP = re.compile(r"""get_ipython\(\)\.system\(\s*['"](?:pip3?|python3?\s+-m\s+pip)\s+install\s+([^'"]*)['"]""")


@dataclass(frozen=True)
class NotebookCell:
    """One code cell: its 1-based position and its Python source after neutralising."""

    index: int
    source: str
    skipped: str = ""
    runs: tuple[RunMagic, ...] = ()  # its %run lines (neutralised to `pass` in ``source``)


@dataclass(frozen=True)
class Notebook:
    """A notebook's code, in cell order."""

    path: str
    language: str
    cells: tuple[NotebookCell, ...]
    pip_hints: tuple[tuple[Location, str], ...]
    written_modules: tuple[str, ...]
    problems: tuple[tuple[int, str], ...] = ()  # (cell, why it cannot be read): SB008 each


def _text(value: object) -> str | None:
    """A cell's source (a string, or a list of strings); None when it is neither."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return None


def _shape(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _language(nb: dict[str, object]) -> str:
    meta = nb.get("metadata")
    if not isinstance(meta, dict):
        return ""
    info = meta.get("language_info")
    if isinstance(info, dict) and isinstance(info.get("name"), str):
        return str(info["name"]).lower()
    spec = meta.get("kernelspec")
    if isinstance(spec, dict):
        if isinstance(spec.get("language"), str):
            return str(spec["language"]).lower()
        name = str(spec.get("name", "")).lower()
        if name.startswith(("python", "py")):
            return "python"
        return name
    if isinstance(meta.get("language"), str):  # nbformat 3 notebooks sometimes
        return str(meta["language"]).lower()
    return ""


def load_notebook(data: bytes, path: str, max_bytes: int = DEFAULT_MAX_BYTES * NOTEBOOK_SIZE_FACTOR) -> Notebook:
    """Read a notebook's JSON (nbformat 3 or 4) into neutralised code cells."""
    if len(data) > max_bytes:
        raise AnalysisError(
            f"{path}: notebook is {len(data):,} bytes, over the {max_bytes:,}-byte limit",
            hint="clear the notebook's outputs (jupyter nbconvert --clear-output), or raise max-source-bytes",
        )
    try:
        nb = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise AnalysisError(f"{path}: notebook is not UTF-8 (byte offset {exc.start})", hint="re-save it from Jupyter") from None
    except json.JSONDecodeError as exc:
        raise AnalysisError(
            f"{path}:{exc.lineno}:{exc.colno}: notebook is not valid JSON ({exc.msg}); truncated?",
            hint="re-save it from Jupyter, or restore it from version control",
        ) from None
    except RecursionError:
        raise AnalysisError(f"{path}: notebook JSON is nested too deeply", hint="re-save it from Jupyter") from None
    if not isinstance(nb, dict):
        raise AnalysisError(f"{path}: not a Jupyter notebook (top level is not an object)", hint="check the file")
    raw_cells, source_key, major = _raw_cells(nb, path)
    language = _language(nb)
    if major == 3 and not language:
        langs = {str(c.get("language", "")).lower() for c in raw_cells if isinstance(c, dict) and c.get("cell_type") == "code"}
        language = "python" if langs <= {"python", ""} and langs else ""
    cells: list[NotebookCell] = []
    hints: list[tuple[Location, str]] = []
    written: list[str] = []
    problems: list[tuple[int, str]] = []
    for i, cell in enumerate(raw_cells, start=1):
        if not isinstance(cell, dict):
            problems.append((i, f"cell is {_shape(cell)}, not an object"))
            continue
        if cell.get("cell_type") != "code":
            continue
        if _raises_on_purpose(cell):
            cells.append(NotebookCell(i, "", RAISES_TAG))  # a teaching cell that fails on purpose never runs
            continue
        src = _text(cell.get(source_key, ""))
        if src is None:
            problems.append((i, f"'{source_key}' is {_shape(cell.get(source_key))} holding non-strings: not code"))
            continue
        code, skipped, cell_hints, cell_written = neutralise_cell(src, Location(path, 0, 0, i))
        hints.extend(cell_hints)
        written.extend(cell_written)
        cells.append(NotebookCell(i, code, skipped, () if skipped else run_magics(src)))
    return Notebook(path, language, tuple(cells), tuple(hints), tuple(written), tuple(problems))


_CONVERT = "convert it to nbformat 4: jupyter nbconvert --to notebook --nbformat 4 --output NEW.ipynb {path}"


def _raw_cells(nb: dict[str, object], path: str) -> tuple[list[object], str, object]:
    """The notebook's cells, the key of a cell's code, and the nbformat; exit 3 for a shape no nbformat has."""
    major = nb.get("nbformat")
    cells = nb.get("cells")
    if major == 4 or (major is None and "worksheets" not in nb and "cells" in nb):
        if cells is None:
            return [], "source", major  # no cells: nothing to trace
        if not isinstance(cells, list):
            raise AnalysisError(
                f"{path}: notebook 'cells' is {_shape(cells)}, not a list", hint="re-save it from Jupyter"
            )
        return cells, "source", major
    if major == 3 or (major is None and "worksheets" in nb):
        # nbformat 3 (IPython 1-2): cells in worksheets, code in "input"; read when well formed, else refused
        worksheets = nb.get("worksheets", [])
        if isinstance(worksheets, list) and all(
            isinstance(w, dict) and isinstance(w.get("cells", []), list) for w in worksheets
        ):
            return [c for w in worksheets for c in w.get("cells", [])], "input", 3
        raise AnalysisError(
            f"{path}: nbformat 3 notebook whose 'worksheets' slimbuild cannot read (nbformat 3 is supported only "
            "as IPython wrote it)",
            hint=_CONVERT.format(path=path),
        )
    raise AnalysisError(f"{path}: unsupported nbformat {major!r}", hint=_CONVERT.format(path=path))


RAISES_TAG = "raises-exception"  # Jupyter's (and nbval's, nbconvert's) tag for a cell that fails on purpose


def _raises_on_purpose(cell: dict[str, object]) -> bool:
    meta = cell.get("metadata")
    tags = meta.get("tags") if isinstance(meta, dict) else None
    return isinstance(tags, list) and RAISES_TAG in tags


def _logical_line(lines: list[str], i: int) -> str:
    """Line ``i`` joined with the lines a trailing backslash continues it onto."""
    text = lines[i].rstrip()
    while text.endswith("\\") and i + 1 < len(lines):
        i += 1
        text = text[:-1] + " " + lines[i].strip()
    return text.rstrip("\\")


_OPTIONS_WITH_VALUE = frozenset(
    {
        "-r", "-c", "-e", "--requirement", "--constraint", "--index-url", "-i", "--extra-index-url", "-f", "--find-links",
        "--target", "-t", "--prefix", "-n", "--name", "--channel",
    }
)


def _pip_targets(args: str) -> list[str]:
    try:
        words = shlex.split(args, comments=True)
    except ValueError:
        words = args.split()
    out: list[str] = []
    skip_next = False
    for w in words:
        if skip_next:
            skip_next = False
            continue
        if w in _OPTIONS_WITH_VALUE:
            skip_next = True
            continue
        if w.startswith("-") or w.startswith("{") or w.startswith("$"):
            continue
        out.append(w)
    return out


def neutralise_cell(src: str, where: Location) -> tuple[str, str, list[tuple[Location, str]], list[str]]:
    """IPython syntax to plain Python, keeping line numbers; returns (code, skipped-magic, pip hints, written modules)."""
    lines = src.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        done = _cell_magic(lines, where)
        if done is not None:
            return done
        lines = ["", *lines[1:]]  # a cell magic whose body is Python: the body counts
    return _neutralise_lines(lines, where)


def _cell_magic(lines: list[str], where: Location) -> tuple[str, str, list[tuple[Location, str]], list[str]] | None:
    """:func:`neutralise_cell` of a cell that starts with a ``%%`` magic; None when its body is Python."""
    hints: list[tuple[Location, str]] = []
    head = lines[0].strip()[2:]
    name, _, rest = head.partition(" ")
    if name in {"writefile", "file"}:  # %%file is IPython's older name of %%writefile
        args = [a for a in rest.split() if not a.startswith("-")]
        written: list[str] = []
        body = "\n".join(lines[1:])
        if args and args[0].endswith(".py"):
            written.append(args[0])
            # The written module's own imports count (parse its body), but the
            # cell is not run as part of the notebook's script.
            return "\n" + body, f"%%writefile {args[0]}", hints, written
        return "", f"%%{name}", hints, written
    if name in _PYTHON_CELL_MAGICS:
        return None
    for n, line in enumerate(lines[1:], start=2):
        m = _INSTALLERS.match("!" + line.strip()) if name in {"bash", "sh", "script"} else None
        if m:
            hints.extend((Location(where.path, n, 0, where.cell), t) for t in _pip_targets(m.group(2)))
    return "", f"%%{name}", hints, []


def _neutralise_lines(lines: list[str], where: Location) -> tuple[str, str, list[tuple[Location, str]], list[str]]:
    """:func:`neutralise_cell` of a cell's lines, line by line: line magics, shell escapes, ``?`` help."""
    hints: list[tuple[Location, str]] = []
    out: list[str] = []
    continuing = False
    for n, line in enumerate(lines, start=1):
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if continuing:
            out.append("")
            continuing = line.rstrip().endswith("\\")
            continue
        loc = Location(where.path, n, 0, where.cell)
        if stripped.startswith(("%", "!")) and not stripped.startswith("!="):
            m = _INSTALLERS.match(_logical_line(lines, n - 1).lstrip())
            if m:
                hints.extend((loc, t) for t in _pip_targets(m.group(2)))
            magic = stripped[1:].split(" ", 1)
            if stripped.startswith("%") and magic[0] in _PYTHON_LINE_MAGICS and len(magic) > 1:
                stmt = re.sub(r"^(?:-\w+\s+(?:\d+\s+)?)*", "", magic[1])
                out.append(indent + stmt)
            else:
                out.append(indent + "pass")
            continuing = line.rstrip().endswith("\\")
            continue
        if _ASSIGN_MAGIC.match(line):
            m = _INSTALLERS.match(_logical_line(lines, n - 1).split("=", 1)[1].strip())
            if m:
                hints.extend((loc, t) for t in _pip_targets(m.group(2)))
            out.append(indent + "pass")
            continuing = line.rstrip().endswith("\\")
            continue
        if _HELP.match(line):
            out.append(indent + "pass")
            continue
        for rx in (_RUN_MAGIC, _SYSTEM_PIP):
            m2 = rx.search(line)
            if m2:
                hints.extend((loc, t) for t in _pip_targets(m2.group(m2.lastindex or 1)))
        out.append(line)
    return "\n".join(out) + ("\n" if out else ""), "", hints, []


def parse_notebook(
    data: bytes, path: str, *, allow_unparseable: bool = False, max_bytes: int = DEFAULT_MAX_BYTES * NOTEBOOK_SIZE_FACTOR
) -> ParsedSource:
    """Imports of a notebook's code cells; one broken cell is a finding, not a failure."""
    nb = load_notebook(data, path, max_bytes)
    broken = [Finding(Location(path, 0, 0, i), "SB008", f"cell skipped: {why}", Severity.ERROR) for i, why in nb.problems]
    if not any(c.source.strip() for c in nb.cells) and not nb.written_modules:
        # no code: nothing to trace, whatever its kernel
        return ParsedSource(path=path, pip_hints=nb.pip_hints, findings=tuple(broken))
    if nb.language and nb.language != "python":
        raise AnalysisError(
            f"{path}: notebook kernel language is {nb.language!r}, not Python",
            hint="slimbuild builds Python analyses only; choose a Python notebook as the entrypoint",
        )
    if not nb.language:
        raise AnalysisError(
            f"{path}: notebook names no kernel language (no metadata.language_info or kernelspec)",
            hint="open and save it once in Jupyter with a Python kernel so its metadata says Python",
        )
    imports: list[RawImport] = []
    dynamic: list[Location] = []
    sys_path: list[str] = []
    findings: list[Finding] = broken
    runtime: list[tuple[Location, str, str]] = []
    runs: list[tuple[Location, str]] = []
    for cell in nb.cells:
        if not cell.source.strip():
            continue
        runs.extend(_runs(cell, path, imports, findings))
        try:
            parsed = parse_source(cell.source, path, cell=cell.index, allow_unparseable=allow_unparseable)
        except AnalysisError as exc:
            reason = exc.message.split(": ", 1)[-1]
            findings.append(Finding(Location(path, 0, 0, cell.index), "SB008", f"cell skipped: {reason}", Severity.ERROR))
            continue
        imports.extend(parsed.imports)
        dynamic.extend(parsed.dynamic_unresolved)
        sys_path.extend(parsed.sys_path_entries)
        findings.extend(parsed.findings)
        runtime.extend(parsed.runtime_hints)
    return ParsedSource(
        path=path,
        imports=tuple(imports),
        dynamic_unresolved=tuple(dynamic),
        sys_path_entries=tuple(dict.fromkeys(sys_path)),
        pip_hints=nb.pip_hints,
        written_modules=nb.written_modules,
        findings=tuple(findings),
        runtime_hints=tuple(runtime),
        run_scripts=tuple(runs),
    )


def _runs(cell: NotebookCell, path: str, imports: list[RawImport], findings: list[Finding]) -> list[tuple[Location, str]]:
    """A cell's %run lines: the scripts to trace (the graph finds them), ``-m`` modules as imports, findings for the rest."""
    scripts: list[tuple[Location, str]] = []
    for run in cell.runs:
        loc = Location(path, run.line, len(run.indent) + 1, cell.index)
        if run.error:
            findings.append(Finding(loc, "SB011", f"{run.error}: nothing is traced for it", Severity.WARNING))
        elif run.variable:
            message = f"'%run {run.target}' names its script through a variable: not traced, its imports do not count"
            findings.append(Finding(loc, "SB004", message, Severity.WARNING))
        elif run.module:
            imports.append(RawImport(loc.line, loc.col, run.target, (), 0, False, False, False, cell.index))
        elif run.target.endswith(".ipynb"):
            message = (
                f"'%run {run.target}' runs a notebook: slimbuild traces and ships only Python scripts run so; "
                "convert it (jupyter nbconvert --to script) and %run the .py"
            )
            findings.append(Finding(loc, "SB011", message, Severity.WARNING))
        else:
            scripts.append((loc, run.target))
    return scripts


def notebook_script(data: bytes, path: str) -> str:
    """The notebook's code cells as one Python script (for running it in an image)."""
    nb = load_notebook(data, path)
    parts = [f"# Generated by slimbuild from {path}: code cells in order, IPython syntax neutralised.\n"]
    if any(c.runs and not c.skipped for c in nb.cells):
        parts.append(RUN_HELPER)
    for cell in nb.cells:
        if cell.source.strip() and not cell.skipped:
            parts.append(f"\n# --- cell {cell.index} ---\n{_with_runs(cell)}")
    return "".join(parts)


def _with_runs(cell: NotebookCell) -> str:
    """A cell's code with each %run line (``pass`` for the trace) doing what IPython does."""
    if not cell.runs:
        return cell.source
    lines = cell.source.split("\n")
    for run in cell.runs:
        if not run.error:
            lines[run.line - 1] = render_call(run)
    return "\n".join(lines)
