"""``slimbuild trace``: run the user's command under the audit hook, then write ``slimbuild.trace.json`` (all or nothing).

The command runs as the user runs it, in the project's directory, its output and exit code passed through; a
leading ``python`` is the project's interpreter (``--python``, ``$VIRTUAL_ENV``, ``.venv``). Every Python process
of the run (children included, through the environment) loads pipeline/trace_hook.py as ``sitecustomize`` from a
private temporary directory and writes its raw records there; this module reads them, adds the ``DT_NEEDED``
closure of every extension module imported (read with pyelftools: the dynamic loader's own loads are invisible to
audit hooks), merges the result into the existing trace (unless ``--replace``) and writes it atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from slimbuild.analysis import runtime
from slimbuild.analysis.runtime import SITE, TRACE_FILE, Process, Trace
from slimbuild.cache import replay
from slimbuild.config import Settings
from slimbuild.errors import AnalysisError, ConfigError, SlimbuildError, UsageError
from slimbuild.paths import atomic_write, cache_dir

_PYTHON = re.compile(r"python(3(\.[0-9]+)?)?$")
_MAX_RECORD_BYTES = 64 << 20  # one process's records; a larger file is a runaway, not a trace
_MEMO_FORMAT = 1


@dataclass(frozen=True)
class TraceOutcome:
    """What a traced run gave: its exit code, and (when it succeeded) the trace written and the warnings."""

    exit_code: int
    path: Path
    trace: Trace | None = None
    command: runtime.Command | None = None
    warnings: tuple[str, ...] = ()
    processes: int = 0  # the Python processes traced (a pool's workers vary: not part of the trace)


def trace_path(settings: Settings) -> Path:
    """Where the project's trace lives (read by analyze, lock and build)."""
    return settings.root / TRACE_FILE


def read_trace(settings: Settings) -> Trace | None:
    """The project's trace, checked to be this project's (exit 2 otherwise); None when there is none."""
    path = trace_path(settings)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{TRACE_FILE}: cannot read it: {exc.strerror}", hint="fix its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{TRACE_FILE}:{line}: not UTF-8", hint="trace again with 'slimbuild trace --replace'") from None
    trace = runtime.loads(text, TRACE_FILE)
    name = settings.project.get("name")
    runtime.check_project(trace, str(name) if name else None, lambda f: (settings.root / f).exists(), TRACE_FILE)
    return trace


def command_argv(settings: Settings, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """What runs: the command as given, a leading ``python`` being the project's interpreter when it has one."""
    if not argv:
        raise UsageError("no command to trace", hint="give it after '--', e.g. slimbuild trace -- python analysis.py")
    if _PYTHON.match(argv[0]):
        python = replay.environment_python(settings.python, settings.root, env)
        if python:
            if not Path(python).exists():
                raise ConfigError(f"--python {python}: no such interpreter", hint="pass the path of the project's python")
            return [python, *argv[1:]]
    return list(argv)


def trace(
    settings: Settings, argv: Sequence[str], *, replace: bool = False, env: Mapping[str, str] | None = None,
) -> TraceOutcome:
    """Run ``argv`` traced; on success merge its trace into the project's file (or replace it) and write it."""
    env = dict(os.environ if env is None else env)
    path = trace_path(settings)
    command = command_argv(settings, argv, env)
    old = None if replace else read_trace(settings)  # a broken or foreign trace fails before the run, not after
    name = settings.project.get("name")
    with _workspace() as (boot, out), ThreadPoolExecutor(1) as pool:
        entries = pool.submit(_entry_paths, settings)  # meanwhile: the entrypoints the run should reach
        code = _run(command, settings.root, _traced_env(env, boot, out))
        if code != 0:
            return TraceOutcome(code, path)
        processes = list(_processes(out))
        entry_paths = entries.result()
    if not processes:
        raise ConfigError(
            f"'{' '.join(argv)}' ran no traced Python process: nothing to record",
            hint="run Python without -I or -E, and without clearing PYTHONPATH, so the hook can load",
        )
    new = runtime.from_processes(processes, str(settings.root), argv, str(name) if name else None, is_file=os.path.isfile)
    memo = cache_dir(env) / "elf" / "needed.json"
    new = runtime.with_needed(new, needed_closure(new, settings.root, _site_dirs(processes), memo))
    merged = new if old is None else runtime.merge(old, new)
    try:
        atomic_write(path, runtime.dumps(merged).encode("utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path}: {exc.strerror or exc}", hint="make the project directory writable, then trace again",
        ) from None
    cmd = new.commands[0]
    return TraceOutcome(0, path, merged, cmd, _warnings(entry_paths, new, cmd), len(processes))


@contextlib.contextmanager
def _workspace() -> Iterator[tuple[Path, Path]]:
    """A private temporary directory: ``boot/sitecustomize.py`` (the hook) and ``out/`` (one file a process); removed
    after the run, whatever happens."""
    tmp = Path(tempfile.mkdtemp(prefix="slimbuild-trace-"))  # 0700
    try:
        boot, out = tmp / "boot", tmp / "out"
        boot.mkdir()
        out.mkdir()
        shutil.copyfile(Path(__file__).with_name("trace_hook.py"), boot / "sitecustomize.py")
        yield boot, out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _traced_env(env: Mapping[str, str], boot: Path, out: Path) -> dict[str, str]:
    """The user's environment, with the hook's directory first on PYTHONPATH and where to write, and a fixed hash
    seed unless the user chose one (a library iterating a set of names imports in an order that follows it)."""
    pythonpath = env.get("PYTHONPATH", "")
    return {
        "PYTHONHASHSEED": "0",  # unless the user sets one: the same run imports in the same order (sets of names)
        **env,
        "PYTHONPATH": f"{boot}{os.pathsep}{pythonpath}" if pythonpath else str(boot),
        "SLIMBUILD_TRACE_DIR": str(out),
        "SLIMBUILD_TRACE_BOOT": str(boot),
    }


def _run(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> int:
    """Run the command with the terminal's streams; its exit code (128+N for a signal, as a shell reports it)."""
    try:
        proc = subprocess.Popen(list(command), cwd=cwd, env=dict(env))
    except FileNotFoundError:
        raise ConfigError(f"cannot run '{command[0]}': no such program", hint="check the command after '--'") from None
    except PermissionError:
        raise ConfigError(f"cannot run '{command[0]}': permission denied", hint="check the command after '--'") from None
    try:
        code = proc.wait()
    except BaseException:  # Ctrl-C reached the child too (one process group): let it end, then report
        proc.send_signal(signal.SIGINT)
        proc.wait()
        raise
    return 128 - code if code < 0 else code


def _processes(out: Path) -> Iterator[Process]:
    """Each process's records, in pid order; a line cut short (a killed child) is dropped."""
    for file in sorted(out.glob("*.jsonl"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0):
        if file.stat().st_size > _MAX_RECORD_BYTES:
            raise AnalysisError(
                f"the trace records of process {file.stem} exceed {_MAX_RECORD_BYTES >> 20} MiB",
                hint="trace a smaller run (the hook writes one line per new module or file)",
            )
        header: dict[str, object] = {}
        records = []
        for line in file.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, list) and rec and rec[0] == "h" and len(rec) > 1 and isinstance(rec[1], dict):
                if header:  # a forked child's file starts with its own header: one process a file
                    continue
                header = rec[1]
            elif isinstance(rec, list) and rec:
                records.append(tuple(rec))
        if header:
            yield Process(header, tuple(records))


def _site_dirs(processes: Sequence[Process]) -> list[Path]:
    dirs = {str(d) for p in processes for d in p.header.get("site", ()) if isinstance(d, str)}  # type: ignore[attr-defined]
    return sorted((Path(d) for d in dirs if Path(d).is_dir()), key=lambda p: len(str(p)), reverse=True)


def _absolute(rel: str, root: Path, sites: Sequence[Path]) -> Path | None:
    if rel.startswith(SITE):
        return next((s / rel[len(SITE):] for s in sites if (s / rel[len(SITE):]).exists()), None)
    return root / rel if not rel.startswith("/") else Path(rel)


def _relative(path: Path, root: Path, sites: Sequence[Path]) -> str | None:
    for s in sites:
        if path.is_relative_to(s):
            return SITE + path.relative_to(s).as_posix()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else None


def _dynamic(path: Path) -> tuple[list[str], list[str]]:
    """An ELF file's ``DT_NEEDED`` names and its search directories (``DT_RUNPATH``, else ``DT_RPATH``)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    needed: list[str] = []
    runpath: list[str] = []
    rpath: list[str] = []
    try:
        with path.open("rb") as fh:
            for section in ELFFile(fh).iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        kind = tag.entry.d_tag
                        if kind == "DT_NEEDED":
                            needed.append(str(getattr(tag, "needed", "")))
                        elif kind == "DT_RUNPATH":
                            runpath += str(getattr(tag, "runpath", "")).split(":")
                        elif kind == "DT_RPATH":
                            rpath += str(getattr(tag, "rpath", "")).split(":")
    except (OSError, ELFError, ValueError):
        return [], []
    origin = str(path.parent)
    dirs = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in (runpath or rpath) if d]
    return needed, dirs


def _load_memo(path: Path | None) -> dict[str, list[list[str]]]:
    try:
        doc = json.loads(path.read_text()) if path is not None else {}
        return doc["entries"] if doc.get("format") == _MEMO_FORMAT and isinstance(doc.get("entries"), dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def _dynamic_memo(lib: Path, memo: dict[str, list[list[str]]]) -> tuple[list[str], list[str]]:
    """:func:`_dynamic`, remembered by path, size and mtime (an installed library does not change in place)."""
    try:
        st = lib.stat()
    except OSError:
        return [], []
    key = f"{lib}:{st.st_size}:{st.st_mtime_ns}"
    hit = memo.get(key)
    if not (isinstance(hit, list) and len(hit) == 2):
        names, dirs = _dynamic(lib)
        memo[key] = hit = [names, [d.replace(str(lib.parent), "$ORIGIN") for d in dirs]]
    return list(hit[0]), [d.replace("$ORIGIN", str(lib.parent)) for d in hit[1]]


def needed_closure(
    trace: Trace, root: Path, sites: Sequence[Path], memo_file: Path | None = None
) -> dict[str, list[str]]:
    """For each extension module imported: every library it needs, transitively through the libraries found beside
    it (a wheel's ``*.libs/``, by its RUNPATH), as relative paths; a name not found there is a system library's.
    ``memo_file`` (in the cache) keeps what each file's dynamic section says."""
    closure: dict[str, list[str]] = {}
    memo: dict[Path, tuple[list[str], list[str]]] = {}
    elf_memo = _load_memo(memo_file)
    before = len(elf_memo)
    for rel in trace.extension_files():
        start = _absolute(rel, root, sites)
        if start is None or not start.is_file():
            continue
        found: set[str] = set()
        todo, done = [start], set()
        while todo:
            lib = todo.pop()
            if lib in done:
                continue
            done.add(lib)
            if lib not in memo:
                memo[lib] = _dynamic_memo(lib, elf_memo)
            names, dirs = memo[lib]
            for name in names:
                hit = next((Path(d, name).resolve() for d in dirs if Path(d, name).is_file()), None)
                where = _relative(hit, root, sites) if hit is not None else None
                if hit is not None and where is not None:
                    found.add(where)
                    todo.append(hit)
                else:
                    found.add(name)
        closure[rel] = sorted(found)
    if memo_file is not None and len(elf_memo) != before:
        try:
            atomic_write(memo_file, json.dumps({"format": _MEMO_FORMAT, "entries": elf_memo}, sort_keys=True).encode(),
                         durable=False)
        except OSError:
            pass  # a read-only cache only costs speed
    return closure


def _warnings(entries: set[str], new: Trace, command: runtime.Command) -> tuple[str, ...]:
    """The untraced Python children, and an entrypoint the command never ran."""
    warnings = [
        f"a Python child process was not traced (it ignored PYTHONPATH, e.g. -I or -E, or a cleared environment): {c}"
        for c in command.untraced
    ]
    ran = {m.file for m in new.modules if m.file} | set(new.opened)
    if entries and not entries & ran:
        warnings.append(
            f"'{' '.join(command.argv)}' never imported the entrypoint ({', '.join(sorted(entries))}): "
            "the trace may not describe what the image runs"
        )
    return tuple(warnings)


def _entry_paths(settings: Settings) -> set[str]:
    """The entrypoints' files, as analyze finds them (none when it cannot tell: then nothing is checked)."""
    from slimbuild.pipeline.analyzing import selected_entrypoints

    try:
        return {e.path for e in selected_entrypoints(settings)}
    except (SlimbuildError, OSError):
        return set()
