"""Frozen value types passed between the pipeline's stages."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class Location:
    """Where something was found: a relative POSIX path, a line, maybe a notebook cell."""

    path: str
    line: int = 0
    col: int = 0
    cell: int | None = None

    def __str__(self) -> str:
        where = self.path if self.cell is None else f"{self.path}[cell {self.cell}]"
        if self.line:
            where = f"{where}:{self.line}"
            if self.col:
                where = f"{where}:{self.col}"
        return where


class Severity(str, enum.Enum):
    """How much a finding matters: errors fail ``check``."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, order=True)
class Finding:
    """Something reported to a user, lint-style: ``path:line: SB0xx message``."""

    location: Location
    code: str
    message: str
    severity: Severity = Severity.ERROR

    def render(self) -> str:
        """The lint-style line."""
        return f"{self.location}: {self.code} {self.message}"


@dataclass(frozen=True, order=True)
class RawImport:
    """One import statement (or literal dynamic import) as written in a file.

    ``module`` is the dotted name after ``from``/``import`` (``None`` for
    ``from . import x``); ``names`` are the names imported by a ``from`` form;
    ``level`` counts leading dots. ``conditions`` are the checks (``sys.version_info``,
    ``sys.platform``, ``os.name``, ``__name__ == "__main__"``) the statement runs under, as
    :mod:`slimbuild.analysis.conditions` records them: one statement has one set, so they take no part in comparisons.
    """

    line: int
    col: int
    module: str | None
    names: tuple[str, ...] = ()
    level: int = 0
    optional: bool = False
    type_checking: bool = False
    dynamic: bool = False
    cell: int | None = None
    conditions: tuple[tuple[Any, ...], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class ParsedSource:
    """What one source file (or notebook) says about imports."""

    path: str
    imports: tuple[RawImport, ...] = ()
    dynamic_unresolved: tuple[Location, ...] = ()
    sys_path_entries: tuple[str, ...] = ()
    pip_hints: tuple[tuple[Location, str], ...] = ()
    written_modules: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    runtime_hints: tuple[tuple[Location, str, str], ...] = ()
    fallback: bool = False
    run_scripts: tuple[tuple[Location, str], ...] = ()  # a notebook's `%run SCRIPT`: where, and SCRIPT as written


@dataclass(frozen=True, order=True)
class ImportSite:
    """A third-party import as seen at one location."""

    module: str
    location: Location
    optional: bool = False
    type_checking: bool = False


@dataclass(frozen=True)
class ImportGraph:
    """What an entrypoint reaches: first-party files and third-party import sites."""

    entrypoint: str
    files: tuple[str, ...]
    third_party: tuple[ImportSite, ...]
    stdlib: tuple[str, ...]
    dynamic_unresolved: tuple[Location, ...]
    pip_hints: tuple[tuple[Location, str], ...]
    runtime_hints: tuple[tuple[Location, str, str], ...]
    findings: tuple[Finding, ...]
    unparsed: tuple[str, ...] = ()
    never_run: tuple[ImportSite, ...] = ()  # third-party imports the image never runs (see slimbuild.analysis.conditions)
    # (file, dotted module name) of every first-party file reached, in the order a run first imports them
    modules: tuple[tuple[str, str], ...] = ()
    namespaces: tuple[str, ...] = ()  # top-level names traced as namespace portions (directories without __init__.py)


@dataclass(frozen=True, order=True)
class Resolved:
    """How one top-level import name maps to a distribution, and why.

    ``candidates`` lists, most downloaded first, every distribution known to provide an import that
    several provide; ``distribution`` is then the declared one, or None when none is declared.
    """

    module: str
    distribution: str | None
    via: str
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Requirement:
    """A distribution the image needs, with the import sites that need it."""

    name: str
    imports: tuple[ImportSite, ...]
    via: tuple[str, ...]
    declared: bool
    specifier: str = ""
    optional_only: bool = False
    # not declared, but declared distributions the image installs depend on it (SB020): it comes through them
    through: tuple[str, ...] = ()


@dataclass(frozen=True)
class Declared:
    """One declared requirement, from requirements files, pyproject or setup.cfg."""

    name: str
    specifier: str
    source: Location
    marker: str = ""
    # the user's own ``--hash`` pins on that line (``sha256:HEX``, lower case); the lock must honour them
    hashes: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, order=True)
class IndexOption:
    """An index option a requirements file gives pip (``--index-url``, ``--extra-index-url``, ``--find-links``,
    ``--no-index``, ``--trusted-host``), where it is written; ``value`` may hold credentials: print it masked."""

    option: str  # the long form: "--index-url", ...
    value: str  # "" for --no-index
    source: Location


@dataclass(frozen=True)
class Entrypoint:
    """A resolved entrypoint: the file that runs first and how it is run."""

    name: str
    spec: str
    kind: str  # "script" | "package" | "module" | "notebook"
    path: str  # relative POSIX path of the first file
    module: str  # dotted module name ("__main__" for scripts and notebooks)
    package: str | None  # package for relative imports
    function: str = ""
    runner: str = ""  # "streamlit": the script is served by `streamlit run` (spec "streamlit run app.py [ARGS]")
    args: tuple[str, ...] = ()  # the runner's arguments after the script
    # how it was found when nothing configured it (SB016, analysis/discover.py); no part of what is traced
    notes: tuple[Finding, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Analysis:
    """The result of analysing one entrypoint."""

    entrypoint_name: str
    entrypoint: str
    target_python: str
    files: tuple[str, ...]
    required: tuple[Requirement, ...]
    missing: tuple[Requirement, ...]
    unused: tuple[Declared, ...]
    optional: tuple[Requirement, ...]
    unresolved: tuple[ImportSite, ...]
    dynamic_unresolved: tuple[Location, ...]
    type_checking: tuple[ImportSite, ...]
    pip_hints: tuple[tuple[Location, str], ...]
    findings: tuple[Finding, ...]
    declared: tuple[Declared, ...] = field(default=())
    unparsed: tuple[str, ...] = ()
    stdlib: tuple[str, ...] = ()
    never_run: tuple[ImportSite, ...] = ()
    entry: Entrypoint | None = None  # the resolved entrypoint, carried so that the build does not resolve it again
    constraints: tuple[Declared, ...] = ()  # the `-c` constraints that apply to this entrypoint (they bound its lock)
    modules: tuple[tuple[str, str], ...] = ()  # ImportGraph.modules: first-party (file, module), in import order
    index_options: tuple[IndexOption, ...] = ()  # index options its requirements files give (they steer its lock)
