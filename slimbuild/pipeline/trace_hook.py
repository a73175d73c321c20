"""The bootstrap `slimbuild trace` puts into every Python process of a traced run; standard library only.

pipeline/tracing.py copies this file as ``sitecustomize.py`` into a private temporary directory and puts that directory
first on ``PYTHONPATH``: Python imports ``sitecustomize`` at start-up (after ``site`` has read the ``.pth`` files), the
environment carries it into every child (``subprocess``, multiprocessing's spawn and forkserver), and a forked child
keeps the hook installed. No ``-X`` option runs code at start-up, so this is the one way in that needs no change to
the user's interpreter, environment or files. It then takes its directory off ``sys.path`` (the program sees the
``sys.path`` of an untraced run) and imports the ``sitecustomize`` it shadows, if any, so the environment's own still
runs.

It installs a PEP 578 audit hook that appends one JSON line per new fact to ``$SLIMBUILD_TRACE_DIR/<pid>.jsonl``, as
it happens (a child ending in ``os._exit`` loses nothing):

* ``["h", header]``: the process's argv, executable, cwd, site-packages and standard-library directories;
* ``["i", module, file, importer, line]``: a module loaded (found new in ``sys.modules``; who asked for it from the
  ``import`` audit event's frame, the first outside importlib: its file and line; importlib's own Python raises no
  event, so ``importlib.import_module`` is wrapped to know its caller);
* ``["o", path]``: a file opened for reading (the ``open`` audit event);
* ``["d", name]``: a library loaded with ``ctypes`` (the ``ctypes.dlopen`` audit event);
* ``["m", path]``: a file the process has mapped as it ends (``/proc/self/maps``, where there is one): what the
  dynamic loader loaded, which no audit event shows;
* ``["p", argv]``: a process started (``subprocess.Popen``, ``os.posix_spawn``, ``os.exec``).

It must run on any Python the user's project uses (3.8 and later), so it imports nothing of slimbuild.
"""

from __future__ import annotations

import json
import os
import sys

_DIR_ENV = "SLIMBUILD_TRACE_DIR"
_BOOT_ENV = "SLIMBUILD_TRACE_BOOT"


class _Tracer:
    """One process's trace: what it has written already, and the importers asked for each module name."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.fd = -1
        self.seen: set[object] = set()
        self.known: set[str] = set(sys.modules)  # loaded before the hook: the interpreter's own start-up
        self.asked: dict[str, tuple[str, int]] = {}
        self.dynamic: list[tuple[str, int]] = []  # callers of importlib.import_module, innermost last
        self.open_file()

    def open_file(self) -> None:
        """Start this process's file (again in a forked child: its own pid, its own file)."""
        self.fd = os.open(os.path.join(self.out_dir, f"{os.getpid()}.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.emit(["h", _header()])

    def emit(self, record: list[object]) -> None:
        try:
            os.write(self.fd, (json.dumps(record) + "\n").encode("utf-8", "surrogateescape"))
        except (OSError, ValueError):
            pass  # a full disk must not break the user's run; the trace is then incomplete, not wrong

    def sync(self) -> None:
        """Write the modules new in ``sys.modules`` (a failed import never gets there), each with who asked for it."""
        try:
            new = sys.modules.keys() - self.known
        except RuntimeError:  # another thread changed sys.modules meanwhile: the next sync sees it
            return
        if not new:
            return
        self.known |= new
        outer = self.dynamic[-1] if self.dynamic else ("", 0)
        for name in sorted(new):
            module = sys.modules.get(name)
            file = getattr(module, "__file__", None)
            if file is None:  # a namespace package: its first directory; a built-in module has neither
                file = next((f"{p}/" for p in getattr(module, "__path__", ()) or () if isinstance(p, str)), None)
            importer, line = self.asked.get(name) or outer
            self.emit(["i", name, file if isinstance(file, str) else None, importer, line])

    def finish(self) -> None:
        """At the process's end: the modules still unwritten, and the files mapped (the loader's own loads)."""
        self.sync()
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as fh:
                lines = fh.read().splitlines()
        except OSError:
            return
        for line in lines:
            parts = line.split(None, 5)
            path = parts[5] if len(parts) == 6 else ""
            if path.startswith("/") and not path.endswith(" (deleted)") and ("m", path) not in self.seen:
                self.seen.add(("m", path))
                self.emit(["m", path])

    def on_import(self, name: str) -> None:
        self.sync()
        if name not in self.asked:
            self.asked[name] = _importer()

    def wrap_builtin_import(self) -> None:
        """Write the modules an ``import`` statement loaded as soon as it returns: a process that is killed next
        (multiprocessing's ``Pool.terminate`` ends its workers with SIGTERM) loses nothing it imported, and a failed
        import, which raises, is never written."""
        import builtins

        real = builtins.__import__
        tracer = self

        def __import__(name: str, globals: object = None, locals: object = None, fromlist: object = (), level: int = 0) -> object:
            module = real(name, globals, locals, fromlist, level)  # type: ignore[arg-type]
            if len(sys.modules) != len(tracer.known):
                tracer.sync()
            return module

        __import__.__doc__ = real.__doc__
        builtins.__import__ = __import__  # type: ignore[assignment]

    def wrap_import_module(self) -> None:
        """Know who calls ``importlib.import_module`` (importlib's own Python raises no ``import`` event)."""
        import importlib

        real = importlib.import_module
        tracer = self

        def import_module(name: str, package: str | None = None) -> object:
            tracer.sync()
            tracer.dynamic.append(_importer())
            try:
                return real(name, package)
            finally:
                tracer.sync()
                tracer.dynamic.pop()

        import_module.__doc__ = real.__doc__
        import_module.__wrapped__ = real  # type: ignore[attr-defined]
        importlib.import_module = import_module  # type: ignore[assignment]

    def on_open(self, args: tuple[object, ...]) -> None:
        path, mode, flags = args[0], args[1], args[2]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str) or path.endswith(".pyc"):
            return
        if isinstance(mode, str):
            if "w" in mode or "a" in mode or "x" in mode:
                return
        elif isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR):
            return
        if not os.path.isabs(path):
            path = os.path.join(os.getcwd(), path)
        if path in self.seen:
            return
        self.seen.add(path)
        self.emit(["o", path])

    def on_event(self, event: str, args: tuple[object, ...]) -> None:
        try:
            self.dispatch(event, args)
        except Exception:  # noqa: BLE001 - the hook must never change how the program runs
            pass

    def dispatch(self, event: str, args: tuple[object, ...]) -> None:
        if event == "open":
            self.on_open(args)
        elif event == "import":
            if isinstance(args[0], str):
                self.on_import(args[0])
        elif event == "ctypes.dlopen":
            name = args[0]
            if isinstance(name, str) and ("d", name) not in self.seen:
                self.seen.add(("d", name))
                self.emit(["d", name])
        elif event == "subprocess.Popen":
            self.on_process(args[1], args[0])
        elif event in ("os.posix_spawn", "os.exec"):
            self.on_process(args[1], args[0])

    def on_process(self, argv: object, executable: object) -> None:
        items = [argv] if isinstance(argv, (str, bytes, os.PathLike)) else argv
        if not isinstance(items, (list, tuple)):
            return
        words = [os.fsdecode(a) if isinstance(a, (str, bytes, os.PathLike)) else str(a) for a in items]
        if not words and isinstance(executable, (str, bytes, os.PathLike)):
            words = [os.fsdecode(executable)]
        self.emit(["p", words])


def _header() -> dict[str, object]:
    import site
    import sysconfig

    try:
        sites = [*site.getsitepackages(), site.getusersitepackages()]
    except AttributeError:  # an old virtualenv's site module
        sites = []
    paths = sysconfig.get_paths()
    sites += [paths.get("purelib", ""), paths.get("platlib", "")]
    stdlib = [paths.get("stdlib", ""), paths.get("platstdlib", "")]
    return {
        "argv": list(getattr(sys, "orig_argv", sys.argv)),
        "executable": sys.executable,
        "cwd": os.getcwd(),
        "site": sorted({os.path.realpath(p) for p in sites if p} | {p for p in sites if p}),
        "stdlib": sorted({os.path.realpath(p) for p in stdlib if p} | {p for p in stdlib if p}),
        "prefix": sorted({sys.prefix, sys.base_prefix, sys.exec_prefix}),
    }


def _importer() -> tuple[str, int]:
    """The file whose code asked for the import, and the line: the first frame outside this file and importlib."""
    frame = sys._getframe(1)
    mine = globals()
    while frame is not None:
        file = frame.f_code.co_filename
        if frame.f_globals is not mine and not (
            file.startswith("<frozen importlib") or file.endswith(("importlib/__init__.py", "importlib/_bootstrap.py"))
        ):
            return file, frame.f_lineno or 0
        frame = frame.f_back  # type: ignore[assignment]
    return "", 0


def install() -> None:
    """Install the hook (once a process), then hand over to the ``sitecustomize`` this one shadows."""
    out_dir = os.environ.get(_DIR_ENV)
    boot = os.environ.get(_BOOT_ENV)
    if boot and boot in sys.path:
        sys.path[:] = [p for p in sys.path if p != boot]
    import atexit

    traceable = hasattr(sys, "addaudithook")  # Python 3.8 and later; an older one is reported as not traced
    if traceable and out_dir and os.path.isdir(out_dir) and not getattr(sys, "_slimbuild_tracer", None):
        tracer = _Tracer(out_dir)
        sys._slimbuild_tracer = tracer  # type: ignore[attr-defined]
        tracer.wrap_import_module()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=tracer.open_file)
        real_exit = os._exit

        def _exit(code: int) -> None:  # multiprocessing's forked children end here, past atexit
            tracer.finish()
            real_exit(code)

        os._exit = _exit  # type: ignore[assignment]
        atexit.register(tracer.finish)
        tracer.wrap_builtin_import()
        tracer.known = set(sys.modules)
        sys.addaudithook(tracer.on_event)
    _chain(boot)


def _chain(boot: str | None) -> None:
    """Import the next ``sitecustomize`` on ``sys.path`` (the environment's own), as Python would have."""
    import importlib.machinery
    import importlib.util

    mine = sys.modules.get("sitecustomize")
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", [p for p in sys.path if p != boot])
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except Exception:  # noqa: BLE001 - as site.py does: a broken sitecustomize is reported, not fatal
        sys.modules["sitecustomize"] = mine  # type: ignore[assignment]
        import traceback

        sys.stderr.write("Error in sitecustomize; set PYTHONVERBOSE for traceback:\n")
        traceback.print_exc(limit=1)


if __name__ == "sitecustomize":
    install()
