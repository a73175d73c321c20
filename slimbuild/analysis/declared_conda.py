"""conda ``environment.yml``: its conda packages under their PyPI names, and the lines of its ``pip:`` section.

Pure: parsed with PyYAML's safe loader (nodes keep their line numbers). ``python`` and ``pip`` are not distributions;
a conda package with no PyPI counterpart gets an SB015 warning rather than disappearing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from slimbuild.errors import ConfigError
from slimbuild.models import Declared, Finding, Location, Severity

if TYPE_CHECKING:
    import yaml  # imported when an environment file is read: most projects have none

# conda-forge / defaults names whose PyPI distribution has another name
CONDA_TO_PYPI: dict[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "matplotlib-base": "matplotlib",
    "tensorflow-base": "tensorflow",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "pytables": "tables",
    "pyqt": "pyqt5",
    "msgpack-python": "msgpack",
    "python-graphviz": "graphviz",
    "python-kaleido": "kaleido",
    "ruamel_yaml": "ruamel-yaml",
    "py-lief": "lief",
    "pybind11-global": "pybind11",
    "lightgbm-cpu": "lightgbm",
    "jupyterlab-server": "jupyterlab-server",
    "pyarrow-core": "pyarrow",
}
# the interpreter and the installer: not distributions of the image's environment
NOT_DISTRIBUTIONS = frozenset({"python", "pip"})
# conda packages that are not Python distributions (libraries, toolchains, CUDA, R): no PyPI counterpart
CONDA_ONLY = frozenset(
    {
        "blas", "bzip2", "ca-certificates", "cairo", "compilers", "cpuonly", "cudatoolkit", "cudnn", "cuda-toolkit",
        "cuda-version", "cuda-nvcc", "cuda-runtime", "curl", "cxx-compiler", "c-compiler", "ffmpeg", "fortran-compiler",
        "freetype", "gcc", "gcc_linux-64", "gdal-bin", "geos", "gfortran", "git", "graphviz", "gxx", "gxx_linux-64",
        "hdf5", "icu", "intel-openmp", "jpeg", "krb5", "ld_impl_linux-64", "libblas", "libcblas", "libffi", "libgcc",
        "libgcc-ng", "libgfortran-ng", "libgomp", "liblapack", "libopenblas", "libopencv", "libpng", "libprotobuf",
        "libstdcxx-ng", "libtiff", "libuuid", "libxml2", "libzlib", "lz4-c", "make", "mkl", "mkl-service", "mamba",
        "conda", "nccl", "ncurses", "nodejs", "openblas", "openjdk", "openmp", "openssl", "pandoc", "pkg-config", "proj",
        "pytorch-cuda", "pytorch-mutex", "readline", "sqlite", "tbb", "tk", "tzdata", "ucrt", "vc", "vs2015_runtime",
        "xz", "yaml", "zeromq", "zlib", "zstd", "arrow-cpp", "libarrow", "r-base", "rust", "go", "cmake-format",
    }
)
_CHANNEL = re.compile(r"^[^:\s]+::")
_NAME = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*(.*)$")
_MAX_ALIAS_ITEMS = 10_000


def pypi_name(conda_name: str) -> str | None:
    """The PyPI distribution of a conda package ('' for python/pip, None when it has no PyPI counterpart)."""
    name = conda_name.lower()
    if name in NOT_DISTRIBUTIONS:
        return ""
    if name in CONDA_ONLY or name.startswith(("r-", "_")) or name.endswith("-ng"):
        return None
    return canonicalize_name(CONDA_TO_PYPI.get(name, name))


def conda_specifier(version: str) -> str:
    """A conda match-spec version as a PEP 440 specifier: ``=1.2`` is ``==1.2.*``, ``==1.2`` exact, ``1.2*`` a prefix.

    A ``|`` alternative has no single PEP 440 form, so it leaves the version to the resolver (''). The build string
    (``=1.2=py39_0``, ``1.2 py39_0``) is dropped. Raises ValueError when the version is not PEP 440.
    """
    text = version.strip()
    if text.startswith("[") and text.endswith("]"):
        m = re.search(r"""version\s*=\s*['"]?([^'",\]]+(?:,[^'",\]]+)*)""", text)
        text = m.group(1) if m else ""
    if not text or "|" in text:
        return ""
    if text[0] in "<>!~":
        spec = text.split()[0]
    else:
        # one '=' is a prefix match (=1.2 is 1.2.*), unless a build string follows (=1.2=py39_0: exactly 1.2)
        fuzzy = text.startswith("=") and not text.startswith("==") and "=" not in text[1:]
        words = text.lstrip("=").split("=")[0].split()
        text = words[0] if words else ""
        if text.endswith("*"):
            text, fuzzy = text.rstrip("*").rstrip("."), True
        if not text:
            return ""
        spec = f"=={text}.*" if fuzzy else f"=={text}"
    try:
        return str(SpecifierSet(spec))
    except InvalidSpecifier:
        raise ValueError(f"conda version {version.strip()!r} is not a PEP 440 version") from None


def _conda_entry(spec: str, where: Location) -> tuple[Declared | None, Finding | None]:
    m = _NAME.match(_CHANNEL.sub("", spec.strip()))
    if not m:
        raise ConfigError(f"{where}: {spec!r} is not a conda package spec", hint="e.g. numpy=1.26 or pandas>=2")
    name, version = m.group(1), m.group(2)
    dist = pypi_name(name)
    if dist == "":
        return None, None
    if dist is None:
        message = (
            f"conda package '{name}' has no PyPI counterpart: it is not installed in the image "
            "(add its PyPI name to the pip: section, or a system package to the base image)"
        )
        return None, Finding(where, "SB015", message, Severity.WARNING)
    try:
        specifier = conda_specifier(version)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}", hint="write the version the PyPI way in the pip: section") from None
    return Declared(dist, specifier, where), None


def _load(text: str, rel: str) -> yaml.Node | None:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{rel}:{mark.line + 1}" if mark is not None else rel
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc.context}", hint="fix the file's syntax") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"{rel}: invalid YAML: {exc}", hint="fix the file's syntax") from None


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _dependencies(root: yaml.Node | None, rel: str) -> yaml.SequenceNode | None:
    import yaml

    if root is None:
        return None
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{rel}:{_line(root)}: an environment file is a mapping", hint="see conda's environment.yml docs")
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "dependencies":
            if isinstance(value, yaml.ScalarNode) and value.value in {"", "~", "null"}:
                return None
            if not isinstance(value, yaml.SequenceNode):
                raise ConfigError(f"{rel}:{_line(value)}: 'dependencies' must be a list", hint="e.g. - numpy=1.26")
            return value
    return None


def _pip_lines(node: yaml.Node, rel: str) -> list[tuple[int, str]]:
    import yaml

    if not isinstance(node, yaml.SequenceNode):
        raise ConfigError(f"{rel}:{_line(node)}: 'pip' must be a list", hint="e.g. - pip:\n    - requests>=2")
    out = []
    for item in node.value[:_MAX_ALIAS_ITEMS]:
        if not isinstance(item, yaml.ScalarNode):
            raise ConfigError(f"{rel}:{_line(item)}: a pip: entry must be a string", hint="e.g. - requests>=2")
        out.append((_line(item), str(item.value)))
    return out


def read_environment(text: str, rel: str) -> tuple[list[Declared], list[Finding], list[tuple[int, str]]]:
    """An environment file's conda packages as declarations, SB015 findings, and its ``pip:`` lines with their lines."""
    import yaml

    deps = _dependencies(_load(text, rel), rel)
    decls: list[Declared] = []
    findings: list[Finding] = []
    pip: list[tuple[int, str]] = []
    for item in deps.value[:_MAX_ALIAS_ITEMS] if deps is not None else ():
        where = Location(rel, _line(item))
        if isinstance(item, yaml.ScalarNode):
            decl, finding = _conda_entry(str(item.value), where)
            decls += [decl] if decl else []
            findings += [finding] if finding else []
        elif isinstance(item, yaml.MappingNode):
            for key, value in item.value:
                if isinstance(key, yaml.ScalarNode) and key.value == "pip":
                    pip.extend(_pip_lines(value, rel))
        else:
            raise ConfigError(f"{where}: a dependency must be a string or a 'pip:' list", hint="e.g. - numpy=1.26")
    return decls, findings, pip
