"""The grammar sources are parsed with: the host's, or the target's when the target is newer than the host.

``ast`` parses with the grammar of the interpreter running slimbuild (the host). A target older than the host, or
equal to it, is served by it. A newer target may accept what the host rejects (``except A, B:`` is Python 3.14's,
PEP 758): files the host rejects are parsed again by an interpreter of the target's version, in a subprocess that
runs the same extraction (:mod:`slimbuild.analysis.grammar_child`) and returns the same values. Without one, the
first such file fails the analysis once, saying how to get one.

The choice of interpreter (:func:`select_interpreter`) is pure; :func:`find_grammar` looks on ``PATH`` and asks
the candidates their version; :class:`TargetParser` runs the subprocess (called by analysis/parsing.py).
"""

from __future__ import annotations

import os
import pickle
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from slimbuild.errors import AnalysisError

HOST = f"{sys.version_info.major}.{sys.version_info.minor}"
_PROBE = "import sys; print('%d.%d' % sys.version_info[:2])"
_PROBE_TIMEOUT = 30.0
ANSWER_TIMEOUT = 120.0  # seconds the child may take to start, or to parse one file (a 10 MB one takes about 2)
# What the child imports: slimbuild's parser and the value types it returns (standard library only).
SHIPPED = (
    "__init__.py", "errors.py", "models.py", "cache/__init__.py", "cache/evidence.py", "analysis/__init__.py",
    "analysis/aliases.py", "analysis/conditions.py", "analysis/imports.py", "analysis/notebook.py",
    "analysis/notebook_run.py", "analysis/parsing.py", "analysis/token_scan.py",
    "analysis/grammar_child.py",
)
_PICKLE_PROTOCOL = 4  # read by every Python slimbuild targets (3.8+)


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def newer_than_host(target: str, host: str = HOST) -> bool:
    """Whether the target's grammar may accept what the host's rejects."""
    return _version(target) > _version(host)


@dataclass(frozen=True)
class Grammar:
    """A target newer than the host, and the interpreter of its version that parses for it ('' when none)."""

    target: str
    interpreter: str = ""

    @property
    def salt(self) -> str:
        """What it adds to a parse-cache key: results differ with the interpreter that parsed."""
        return f"{self.target}:{self.interpreter or '-'}"

    def missing(self, message: str) -> AnalysisError:
        """The error for a file the host cannot parse when no interpreter of the target was found."""
        return AnalysisError(
            f"{message} (for Python {HOST}, which runs slimbuild); the target, Python {self.target}, may accept it, "
            f"but no Python {self.target} interpreter was found",
            hint=f"install Python {self.target} so that python{self.target} is on PATH, or pass --python "
            f"/path/to/python{self.target}; or set --target-python to the version the code is written for",
        )


def select_interpreter(target: str, candidates: Iterable[tuple[str, str | None]]) -> str:
    """The first candidate (path, its "X.Y" version or None when it could not tell) of the target's version; ''."""
    for path, version in candidates:
        if version == target:
            return path
    return ""


def probe_version(python: str) -> str | None:
    """An interpreter's "X.Y", or None when it cannot be run."""
    try:
        done = subprocess.run(
            [python, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out.count(".") == 1 else None


def find_grammar(
    target: str,
    project_python: str = "",
    *,
    which: Callable[[str], str | None] = shutil.which,
    probe: Callable[[str], str | None] = probe_version,
) -> Grammar | None:
    """None when the host's grammar serves the target; else the target and an interpreter of it, if one is found:
    the project's (``--python``, the active or ``./.venv`` one) when its version is the target's, else
    ``python3.X`` on PATH."""
    if not newer_than_host(target):
        return None
    candidates: list[tuple[str, str | None]] = []
    if project_python:
        candidates.append((project_python, probe(project_python)))
    on_path = which(f"python{target}")
    if on_path:
        candidates.append((on_path, probe(on_path)))
    return Grammar(target, select_interpreter(target, candidates))


# Parse result: a ParsedSource or an error's (message, hint, ...), with the digest of the bytes parsed.
Result = tuple[Any, str]


class TargetParser:
    """An interpreter of the target's version, parsing files one request at a time (started on the first)."""

    def __init__(self, grammar: Grammar) -> None:
        self.grammar = grammar
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._stderr: IO[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        import slimbuild

        self._dir = tempfile.TemporaryDirectory(prefix="slimbuild-grammar-")
        package = Path(slimbuild.__file__).parent
        for rel in SHIPPED:
            dest = Path(self._dir.name, "slimbuild", rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(package / rel, dest)
        self._stderr = open(os.path.join(self._dir.name, "stderr"), "w+b")  # closed in close()
        script = os.path.join(self._dir.name, "slimbuild", "analysis", "grammar_child.py")
        try:
            proc = subprocess.Popen(
                [self.grammar.interpreter, "-I", "-S", "-B", script],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            )
        except OSError as exc:
            raise self._failed(f"cannot start ({exc.strerror})") from None
        self._proc = proc
        hello = self._read()
        if hello != ("slimbuild-grammar", self.grammar.target):
            raise self._failed(f"is not Python {self.grammar.target} (it says {hello!r})")
        return proc

    def _failed(self, what: str) -> AnalysisError:
        detail = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            detail = f": {lines[-1]}" if lines else ""
        if self._proc is not None:
            self._proc.kill()  # hung or broken: no use waiting for it
        self.close()
        return AnalysisError(
            f"the Python {self.grammar.target} parser ({self.grammar.interpreter}) {what}{detail}",
            hint=f"check that {self.grammar.interpreter} runs, or set --target-python to the code's version",
        )

    def _read_exactly(self, size: int) -> bytes:
        """``size`` bytes from the child, waiting at most ``ANSWER_TIMEOUT`` for each piece; fewer when it exits."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        chunks: list[bytes] = []
        got = 0
        while got < size:
            ready, _, _ = select.select([fd], [], [], ANSWER_TIMEOUT)
            if not ready:
                raise self._failed(f"did not answer within {ANSWER_TIMEOUT:.0f} s")
            chunk = os.read(fd, min(size - got, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _read(self) -> Any:
        head = self._read_exactly(8)
        size = int.from_bytes(head, "big") if len(head) == 8 else -1
        body = self._read_exactly(size) if size >= 0 else b""
        if size < 0 or len(body) != size:
            raise self._failed("exited")
        try:
            return pickle.loads(body)  # written by our own code, in an interpreter the user chose
        except Exception:  # noqa: BLE001 - any garbage is the child's failure
            raise self._failed("answered garbage") from None

    def parse(self, abs_path: str, rel: str, allow_unparseable: bool, max_bytes: int) -> Result:
        """Read and parse one file there: (ParsedSource or an error's (message, hint, ...), digest of its bytes)."""
        proc = self._proc or self._start()
        assert proc.stdin is not None
        data = pickle.dumps((abs_path, rel, allow_unparseable, max_bytes), protocol=_PICKLE_PROTOCOL)
        try:
            proc.stdin.write(len(data).to_bytes(8, "big") + data)
            proc.stdin.flush()
        except OSError:
            raise self._failed("exited") from None
        result = self._read()
        if not (isinstance(result, tuple) and len(result) == 2):
            raise self._failed("answered garbage")
        return result[0], str(result[1])

    def close(self) -> None:
        """Stop the child and remove what was shipped to it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
