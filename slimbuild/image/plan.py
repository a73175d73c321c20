"""The build plan (``BuildPlan``): what goes into the image and how it starts, decided from values; pure.

Also the build context's layout that the templates expect (``CONTEXT_*``).
"""

from __future__ import annotations

import ast
import hashlib
import keyword
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from packaging.utils import canonicalize_name

from slimbuild.errors import ConfigError
from slimbuild.image.context import ContextFile, context_digest
from slimbuild.image.dockerfile import parse_dockerfile
from slimbuild.image.layers import LayerUnit
from slimbuild.locking.lockfile import LockedDist
from slimbuild.models import Analysis

# Build-context layout the templates expect (context.py writes these arcnames).
CONTEXT_WHEELS_DIR = "wheels"
CONTEXT_DEBS_DIR = "debs"  # the system-packages' .deb files, extracted into /stage by the builder (offline)
CONTEXT_LOCK = "requirements.lock"
CONTEXT_BUILD_LOCK = "build-requirements.lock"
CONTEXT_ROOT_DIR = "image"  # the context's image/ holds the app files at the paths they take in the image
CONTEXT_APP_DIR = "image/app"
RUNTIME_UID = 10001  # the numeric uid:gid the bundled templates' runtime stage runs as (USER uid:uid)
CONTEXT_STAGE_SCRIPT = "slimbuild-stage.py"  # slimbuild/stage_venv.py, run in the builder stage
CONTEXT_STAGE_RULES = "stage_prune.py"  # slimbuild/stage_prune.py: the pruning rules it imports (beside it)
CONTEXT_TRACED = "slimbuild-traced.json"  # prune = "traced": the keep spec (image/traced.py)
CONTEXT_PRUNE_SCRIPT = "slimbuild-prune.py"  # slimbuild/image/prune_traced.py, run in the builder stage after it
CONTEXT_LAYERS = "slimbuild-layers.txt"  # the venv's layers (image/layers.py), when it has one per distribution

# Installers that only a build needs; the plan drops an entry when the analysis imports it.
DEFAULT_PRUNE: tuple[str, ...] = (
    "_distutils_hack",
    "distutils-precedence.pth",
    "pip",
    "pip-*.dist-info",
    "pkg_resources",
    "setuptools",
    "setuptools-*.dist-info",
    "wheel",
    "wheel-*.dist-info",
)

# pip runs from its own wheel in the builder stage; the image never keeps it. Pinned by hash.
PIP_WHEEL = LockedDist(
    name="pip",
    version="25.3",
    hashes=("sha256:9655943313a94722b7774661c21049070f6bbb0a1516bf02f7c8d5d9201514cd",),
    line=0,
)
# The build backend for opted-in sdists (allow-sdist), installed hash-checked before them and pruned after.
BUILD_BACKEND = LockedDist(
    name="setuptools",
    version="80.9.0",
    hashes=("sha256:062d34222ad13e0cc312a4c02d73f059e86a4acbfbdea8f8f76b28c99f306922",),
    line=0,
)
VENV_PYTHON = "/opt/venv/bin/python"
APP_DIR = "/app"
# No registry digest and no commit time: the zip epoch, so builds stay reproducible.
DEFAULT_SOURCE_DATE_EPOCH = 315532800
_TAG_SAFE = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True, kw_only=True)
class BuildPlan:
    """Everything the Dockerfile template needs, already decided.

    ``python`` is the interpreter the builder makes the venv with: ``""`` finds
    ``python3`` on the builder's PATH at build time (``/usr/bin/python3`` on Debian,
    ``/usr/local/bin/python3`` on python:*-slim); an absolute path pins it, which
    the distroless template needs because the runtime must have the same path.
    ``runtime_image`` defaults to ``base_image``. ``app_files`` are relative POSIX
    paths copied from ``app/<path>`` in the context to ``/app/<path>``.
    """

    base_image: str
    pip_wheel: str
    wheel_files: tuple[str, ...]
    app_files: tuple[str, ...]
    entrypoint: tuple[str, ...]
    source_date_epoch: int
    python: str = ""
    runtime_image: str = ""
    cmd: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    pyc: bool = False
    strip_sources: bool = False
    sdists: tuple[str, ...] = ()  # distributions built from an sdist in the builder (allow-sdist); needs CONTEXT_BUILD_LOCK
    keep_sources: tuple[str, ...] = ()
    # the default pruning's exceptions (image/stage_prune.py): patterns relative to site-packages, languages
    keep_files: tuple[str, ...] = ()
    keep_locales: tuple[str, ...] = ()
    debs: tuple[str, ...] = ()  # .deb file names under CONTEXT_DEBS_DIR (system-packages), extracted into the image
    uid: int = RUNTIME_UID
    prune: tuple[str, ...] = DEFAULT_PRUNE
    healthcheck: tuple[str, ...] = ()
    template: str = "slim"
    # An image built earlier from this plan's builder and deps stages (``build`` does that in a first
    # step): the Dockerfile then starts from it instead of repeating those stages.
    deps_image: str = ""
    # The venv image committed from a container of the base (image/engine_commit.py, the template's venv.sh.j2): the
    # deps stage then starts from it, with no builder stage and no COPY.
    venv_image: str = ""
    # The venv's layers, one per distribution or group (image/layers.py); () is one layer for the whole venv.
    layers: tuple[LayerUnit, ...] = ()
    # prune = "traced": the builder prunes the staged venv to CONTEXT_TRACED with CONTEXT_PRUNE_SCRIPT
    traced: bool = False


@dataclass(frozen=True)
class Launch:
    """How the image starts: exec-form argv, extra PYTHONPATH entries, a generated script if any."""

    argv: tuple[str, ...]
    pythonpath: tuple[str, ...]
    script: str = ""  # relative path of a generated script (notebooks)


def notebook_script_path(notebook: str) -> str:
    """Where a notebook's generated script lives in the project's arc namespace."""
    return str(PurePosixPath(notebook).with_suffix(".py"))


def image_pythonpath(pythonpath: Sequence[str]) -> tuple[str, ...]:
    """The image's directories for the configured project-relative ``pythonpath`` entries ("." is the app dir)."""
    return tuple(dict.fromkeys(APP_DIR if p in {"", "."} else f"{APP_DIR}/{p.strip('/')}" for p in pythonpath))


def plan_launch(
    kind: str, entry_path: str, module: str, function: str, files: Sequence[str], runner: str = "",
    args: Sequence[str] = (), pythonpath: Sequence[str] = (),
) -> Launch:
    """The exec-form command for an entrypoint of the given kind (``runner`` "streamlit": ``streamlit run``).

    ``pythonpath``: the configured project directories, first on PYTHONPATH (the analysis searched them there).
    """
    src = [f"{APP_DIR}/src"] if any(f.startswith("src/") for f in files) else []
    roots = list(dict.fromkeys([*image_pythonpath(pythonpath), *src]))
    if runner == "streamlit":
        return Launch((VENV_PYTHON, "-m", "streamlit", "run", f"{APP_DIR}/{entry_path}", *args), tuple(roots))
    if kind == "notebook":
        script = notebook_script_path(entry_path)
        return Launch((VENV_PYTHON, f"{APP_DIR}/{script}"), tuple(roots), script)
    if kind == "script" and not function:
        return Launch((VENV_PYTHON, f"{APP_DIR}/{entry_path}"), tuple(roots))
    if function:
        if not function.isidentifier():
            raise ConfigError(f"entrypoint function {function!r} is not a Python identifier", hint="use module:function")
        if kind == "script":
            module = PurePosixPath(entry_path).stem
            here = f"{APP_DIR}/{PurePosixPath(entry_path).parent}".rstrip("/.")
            configured = image_pythonpath(pythonpath)
            roots = [*configured, *sorted({*src, here} - {"", *configured})]
        code = f"import sys; from {module} import {function} as f; sys.exit(f())"
        return Launch((VENV_PYTHON, "-c", code), tuple(roots))
    # a package's __main__, or a module: run it as `python -m`
    target = module[: -len(".__main__")] if module.endswith(".__main__") else module
    return Launch((VENV_PYTHON, "-m", target), tuple(roots))


def smoke_imports(a: Analysis) -> tuple[str, ...]:
    """Top-level modules every required distribution must make importable in the image."""
    return tuple(sorted({s.module.split(".")[0] for r in a.required for s in r.imports if not s.optional}))


def smoke_argv(a: Analysis, first_party: FirstParty | None = None) -> tuple[str, ...]:
    """The default smoke command: import every required top-level module, then the project's own (``first_party``)."""
    return smoke_commands(a, (), first_party)[0]


_PYTHON_EXE = re.compile(r"python(3(\.\d+)?)?")
SMOKE_RUN_NAME = "__slimbuild_smoke__"  # the entrypoint's module name when the smoke run loads it: never "__main__"


@dataclass(frozen=True)
class FirstParty:
    """What the default smoke run imports of the project's own code, on the sys.path the entrypoint runs with.

    ``path0`` is that sys.path[0] (``""``: the working directory, /app); ``modules`` are imported by name, in the
    order a run first imports them; ``load`` is the entrypoint's own file or module, run under another name than
    ``__main__`` so its ``if __name__ == "__main__":`` block is skipped (``""``: not loaded: its top level is the
    program itself, or a runner serves it).
    """

    path0: str = ""
    modules: tuple[str, ...] = ()
    load_path: str = ""
    load_module: str = ""


def has_main_guard(source: bytes) -> bool:
    """Whether a module's top level has an ``if __name__ == "__main__":`` block (what an import does not run)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False  # a grammar this interpreter lacks: the entrypoint is not loaded, its modules still are
    return any(isinstance(node, ast.If) and _is_main_test(node.test) for node in tree.body)


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = (test.left, test.comparators[0])
    return any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides) and any(
        isinstance(x, ast.Constant) and x.value == "__main__" for x in sides
    )


def _importable_name(path: str, module: str, roots: Sequence[str]) -> bool:
    """Whether ``module`` is ``path``'s name below one of ``roots`` (relative to /app, ``""`` for /app itself)."""
    parts = module.split(".")
    if not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts) or parts[-1] == "__main__":
        return False
    stem = PurePosixPath(path).with_suffix("").parts
    if stem and stem[-1] == "__init__":
        stem = stem[:-1]
    if len(stem) < len(parts) or tuple(stem[len(stem) - len(parts) :]) != tuple(parts):
        return False
    return "/".join(stem[: len(stem) - len(parts)]) in roots


def first_party_smoke(a: Analysis, launch: Launch, entry_guarded: bool) -> FirstParty:
    """The first-party part of the default smoke run: the modules the analysis reached that the image's sys.path
    finds by name (one found only through a ``sys.path`` edit is imported by the module that makes the edit), and
    the entrypoint loaded without its ``__main__`` block when it has one."""
    entry = a.entry
    if entry is None:
        return FirstParty()
    as_main = entry.kind == "notebook" or not entry.function  # the file the image runs as __main__
    runs_path = entry.runner != "" or (as_main and entry.kind in {"script", "notebook"})
    folder = PurePosixPath(entry.path).parent.as_posix()
    folder = "" if folder == "." else folder
    roots = [folder if runs_path else ""]
    roots += [p.removeprefix(APP_DIR).lstrip("/") for p in launch.pythonpath if p == APP_DIR or p.startswith(f"{APP_DIR}/")]
    modules = tuple(
        m for f, m in a.modules
        if f.endswith(".py") and not (as_main and f == entry.path) and _importable_name(f, m, roots)
    )  # fmt: skip
    path0 = f"{APP_DIR}/{folder}".rstrip("/") if runs_path else ""
    loadable = as_main and entry_guarded and not entry.runner and entry.kind != "notebook"
    if loadable and entry.kind == "script":
        return FirstParty(path0, modules, load_path=f"{APP_DIR}/{entry.path}")
    if loadable:
        return FirstParty(path0, modules, load_module=entry.module)
    return FirstParty(path0, modules)


def _first_party_lines(fp: FirstParty) -> list[str]:
    lines = []
    if fp.load_path:
        lines.append(f"sys.argv = [{fp.load_path!r}]; runpy.run_path({fp.load_path!r}, run_name={SMOKE_RUN_NAME!r})")
    if fp.load_module:
        lines.append(f"runpy.run_module({fp.load_module!r}, run_name={SMOKE_RUN_NAME!r})")
    if fp.modules:
        lines.append("import " + ", ".join(fp.modules))
    return lines


def smoke_commands(
    a: Analysis, user: Sequence[str], first_party: FirstParty | None = None
) -> tuple[tuple[str, ...], ...]:
    """The smoke run: the import check and, in the same interpreter when it is Python, the config's command.

    One container and one import of the heavy modules instead of two: a ``python SCRIPT ...`` or
    ``python -m MODULE ...`` smoke command runs through runpy after the imports; anything else runs
    in a second container. With no command configured, the check also imports the project's own modules
    (``first_party``), so an image whose code fails at import is never tagged.
    """
    mods = smoke_imports(a)
    lines = ["import runpy, sys"]
    fp = first_party if first_party is not None and not user else FirstParty()
    if fp.path0:
        lines.append(f"sys.path[0] = {fp.path0!r}")
    if mods:
        lines.append("import " + ", ".join(mods))
    lines.extend(_first_party_lines(fp))
    lines.append("print('slimbuild smoke: ok', flush=True)")
    if not user:
        return ((VENV_PYTHON, "-c", "; ".join(lines)),)
    exe = PurePosixPath(user[0]).name
    if _PYTHON_EXE.fullmatch(exe) and len(user) >= 3 and user[1] == "-m":
        lines.append(f"sys.argv = {list(user[2:])!r}; runpy.run_module({user[2]!r}, run_name='__main__', alter_sys=True)")
        return ((VENV_PYTHON, "-c", "; ".join(lines)),)
    if _PYTHON_EXE.fullmatch(exe) and len(user) >= 2 and not user[1].startswith("-"):
        script = user[1]
        lines.append(
            f"sys.argv = {list(user[1:])!r}; sys.path[0] = {str(PurePosixPath(script).parent)!r}; "
            f"runpy.run_path({script!r}, run_name='__main__')"
        )
        return ((VENV_PYTHON, "-c", "; ".join(lines)),)
    return ((VENV_PYTHON, "-c", "; ".join(lines)), tuple(user))


def rfc3339(epoch: int) -> str:
    """UTC timestamp for OCI labels."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def parse_source_date_epoch(value: str, source: str) -> int:
    """SOURCE_DATE_EPOCH as an int; invalid or future values are errors (E16)."""
    try:
        epoch = int(value.strip())
    except ValueError:
        raise ConfigError(
            f"{source} SOURCE_DATE_EPOCH={value!r} is not an integer", hint="unset it or give seconds since 1970"
        ) from None
    if epoch < 0 or epoch > int(time.time()) + 86400:
        raise ConfigError(f"{source} SOURCE_DATE_EPOCH={epoch} is negative or in the future", hint="check the clock or the value")
    return epoch


def content_tag(parts: Iterable[bytes]) -> str:
    """A tag derived from the inputs' hash: lock, files, template, base."""
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


def repository_name(project: str, entry: str, several: bool) -> str:
    """A valid image repository name for a project (and entrypoint)."""
    base = _TAG_SAFE.sub("-", project.lower()).strip("-._") or "app"
    if several:
        base = f"{base}-{_TAG_SAFE.sub('-', entry.lower()).strip('-._')}"
    return f"slimbuild/{base}"


def make_plan(
    *,
    base_image: str,
    pip_wheel: str,
    wheel_files: Sequence[str],
    app_files: Sequence[str],
    launch: Launch,
    source_date_epoch: int,
    labels: Mapping[str, str],
    pyc: bool,
    template: str,
    needed: Iterable[str],
    healthcheck: Sequence[str] = (),
    strip_sources: bool = False,
    keep_sources: Sequence[str] = (),
    keep_files: Sequence[str] = (),
    keep_locales: Sequence[str] = (),
    sdists: Sequence[str] = (),
    debs: Sequence[str] = (),
    layers: Sequence[LayerUnit] = (),
    traced: bool = False,
) -> BuildPlan:
    """The BuildPlan the template renders; pip/setuptools/wheel are pruned unless the analysis needs them."""
    keep = {n.lower() for n in needed}
    prune = tuple(p for p in DEFAULT_PRUNE if not any(p.lower().startswith(k) for k in keep))
    env = (("PYTHONPATH", ":".join(launch.pythonpath)),) if launch.pythonpath else ()
    return BuildPlan(
        base_image=base_image,
        pip_wheel=pip_wheel,
        wheel_files=tuple(sorted(wheel_files)),
        app_files=tuple(sorted(app_files)),
        entrypoint=launch.argv,
        source_date_epoch=source_date_epoch,
        labels=tuple(sorted(labels.items())),
        env=env,
        pyc=pyc,
        prune=prune,
        template=template,
        healthcheck=tuple(healthcheck),
        strip_sources=strip_sources and pyc,
        keep_sources=tuple(sorted(keep_sources)),
        keep_files=tuple(sorted(set(keep_files), key=str.encode)),
        keep_locales=tuple(sorted(set(keep_locales))),
        sdists=tuple(sorted(sdists)),
        debs=tuple(sorted(debs)),
        layers=tuple(layers),
        traced=traced,
    )


APP_PREFIX = f"{CONTEXT_APP_DIR}/"  # where the app files lie in the build context
DEPS_STAGE = "deps"


def oci_labels(*, epoch: int, title: str, lock_text: bytes, version: str, git: Mapping[str, object] | None) -> dict[str, str]:
    """The image's OCI labels: creation time, title, lock digest, and version and git revision when known."""
    labels = {
        "org.opencontainers.image.created": rfc3339(epoch),
        "org.opencontainers.image.title": title,
        "io.slimbuild.lock-sha256": hashlib.sha256(lock_text).hexdigest(),
    }
    if version:
        labels["org.opencontainers.image.version"] = version
    if git:
        labels["org.opencontainers.image.revision"] = str(git["commit"])
        if git.get("remote"):
            labels["org.opencontainers.image.source"] = str(git["remote"])
    return labels


def app_file_list(files: Iterable[ContextFile], embedded_manifest: str) -> list[str]:
    """The app files the Dockerfile copies (paths below the app dir), with the manifest embedded later."""
    return sorted({embedded_manifest, *(f.arcname[len(APP_PREFIX) :] for f in files)})


def user_template_dir(template: str, root: Path) -> Path | None:
    """A user's template directory named by ``template`` (a path, relative to the project), or None for a bundled one."""
    template_dir = Path(template) if ("/" in template or template.startswith(".")) else None
    if template_dir is not None and not template_dir.is_absolute():
        template_dir = root / template_dir
    return template_dir


def sdist_names(wheels: Iterable[PurePath]) -> list[str]:
    """The canonical names of the opted-in sdists among the fetched distribution files."""
    return sorted(canonicalize_name(p.name.rsplit("-", 1)[0]) for p in wheels if not p.name.endswith(".whl"))


def backend_lock_line() -> bytes:
    """The hash-checked requirement line of the build backend installed before the sdists."""
    return f"{BUILD_BACKEND.name}=={BUILD_BACKEND.version} --hash={BUILD_BACKEND.hashes[0]}\n".encode()


def context_content_tag(lock_text: bytes, dockerfile: str, base_reference: str, files: Iterable[ContextFile]) -> str:
    """The content tag of a build: lock, Dockerfile, base, and every context file's name and bytes or digest."""
    return content_tag(
        [lock_text, dockerfile.encode(), base_reference.encode()]
        + [
            f"{f.arcname}\0".encode() + (f.data if f.data is not None else bytes.fromhex(context_digest(f)))
            for f in sorted(files, key=lambda f: f.arcname)
        ]
    )


def image_refs(repository: str, tag: str, git: Mapping[str, object] | None, user_tags: Sequence[str]) -> list[str]:
    """Every ref the built image gets: the content tag, ``git-<sha>`` in a clean repository, then the user's tags."""
    refs = [f"{repository}:{tag}"]
    if git and not git.get("dirty"):
        refs.append(f"{repository}:git-{str(git['commit'])[:7]}")
    refs.extend(user_tags)
    return refs


def deps_key(dockerfile: str, files: Sequence[ContextFile]) -> str | None:
    """What the image of the Dockerfile's stages up to ``deps`` depends on: their instructions and the
    context files they can read (everything but the app files); None when there is no deps stage."""
    h = hashlib.sha256(b"slimbuild deps image v1\0")
    found = False
    for ins in parse_dockerfile(dockerfile):
        if ins.keyword == "FROM":
            if found:
                break
            words = ins.value.split()
            found = len(words) == 3 and words[1].upper() == "AS" and words[2] == DEPS_STAGE
        h.update(f"{ins.keyword} {ins.value}\0".encode())
    if not found:
        return None
    for f in sorted(files, key=lambda f: f.arcname):
        if f.arcname.startswith(APP_PREFIX) or f.arcname == "Dockerfile":
            continue
        h.update(f"{f.arcname}\0{f.mode:o}\0{context_digest(f)}\0".encode())
    return h.hexdigest()
