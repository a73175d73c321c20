"""Parsing files for imports: through the content-hash parse cache, in a pool of worker processes on a cold run."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from slimbuild.cache.evidence import digest_bytes
from slimbuild.errors import AnalysisError
from slimbuild.models import ParsedSource

if TYPE_CHECKING:  # the parser's pool is imported only when a cold run needs one
    import concurrent.futures as cf

    from slimbuild.analysis.grammar import Grammar, TargetParser

_PARALLEL_MIN = 2  # cache misses parsed inline before worker processes start
_BATCH_MAX = 8  # files per round trip to a worker
_WORKER_KEEP_CHARS = 4 << 20  # source a worker keeps parsed trees for: about 35 bytes of tree a character, ~150 MB


Job = tuple[str, str]  # (absolute path, relative path)
# A parse result, or an error's (message, hint, whether the target's grammar may parse the file); with the
# content digest of the bytes parsed when asked for (also for a file the target's grammar is to parse).
JobResult = tuple[ParsedSource | tuple[str, str, bool], str]


class NeedsTargetGrammar(AnalysisError):
    """The host's parser rejected a file that an interpreter of the (newer) target is to parse again."""


def _parse_job(
    abs_path: str, rel: str, allow_unparseable: bool, max_bytes: int, digest: bool = False, grammar: Grammar | None = None,
    feature_version: tuple[int, int] | None = None,
) -> JobResult:
    """Read and parse one file; errors come back as (message, hint, retry). ``digest``: also hash what was read.

    ``grammar``: the target is newer than this interpreter (see analysis/grammar.py); ``feature_version``: older.
    """
    import gc

    from slimbuild.analysis.imports import NOTEBOOK_SIZE_FACTOR, check_size

    collecting = gc.isenabled()
    gc.disable()  # an AST is a tree: collecting while it is built (or freed) finds nothing and costs a quarter of the parse
    try:
        limit = max_bytes * NOTEBOOK_SIZE_FACTOR if rel.endswith(".ipynb") else max_bytes
        with open(abs_path, "rb") as fh:
            data = fh.read(limit + 1)  # bounded memory: never read more than the limit
            if len(data) > limit:
                check_size(os.fstat(fh.fileno()).st_size, rel, limit, "a notebook" if rel.endswith(".ipynb") else "Python source")
        # the digest cache.evidence.digest_file gives: the whole file was read, being within the limit
        sha = digest_bytes(data) if digest else ""
        try:
            parsed = parse_file_bytes(
                data, rel, allow_unparseable=allow_unparseable, max_bytes=max_bytes, grammar=grammar,
                feature_version=feature_version,
            )
            return parsed, sha
        except NeedsTargetGrammar as exc:
            return (exc.message, exc.hint, True), sha
    except AnalysisError as exc:
        return (exc.message, exc.hint, False), ""
    except OSError as exc:
        return (f"{rel}: cannot read ({exc.strerror})", "check the file's permissions", False), ""
    finally:
        if collecting:
            gc.enable()


def _parse_batch(
    jobs: list[Job], allow_unparseable: bool, max_bytes: int, digest: bool, grammar: Grammar | None = None,
    feature_version: tuple[int, int] | None = None,
) -> list[JobResult]:
    """Worker: parse several files (one round trip for a batch)."""
    return [
        _parse_job(abs_path, rel, allow_unparseable, max_bytes, digest, grammar, feature_version) for abs_path, rel in jobs
    ]


def _worker_init(keep_chars: int) -> None:
    import gc

    from slimbuild.analysis.imports import keep_trees

    gc.disable()  # a short-lived parser makes no reference cycles worth collecting; ASTs are trees
    keep_trees(keep_chars)


def parse_file_bytes(
    data: bytes, rel: str, *, allow_unparseable: bool, max_bytes: int, grammar: Grammar | None = None,
    feature_version: tuple[int, int] | None = None,
) -> ParsedSource:
    """Parse a ``.py`` or ``.ipynb`` file's bytes, applying the unparseable policy.

    ``grammar`` (a target newer than this interpreter): a file this interpreter cannot parse raises
    :class:`NeedsTargetGrammar` when an interpreter of the target is to parse it, else fails naming the target
    (or, with ``allow_unparseable``, falls back as any unparseable file does). ``feature_version`` (a target
    older than this interpreter): a ``.py`` file must fit its grammar too (notebook cells are not held to it).
    """
    from slimbuild.analysis.imports import NOTEBOOK_SIZE_FACTOR, SourceSyntaxError, decode_source, parse_source, scan_tokens

    if rel.endswith(".ipynb"):
        from slimbuild.analysis.notebook import parse_notebook

        parsed = parse_notebook(data, rel, allow_unparseable=allow_unparseable, max_bytes=max_bytes * NOTEBOOK_SIZE_FACTOR)
        if grammar is not None:
            broken = next((f for f in parsed.findings if f.code == "SB008" and "syntax error" in f.message), None)
            if broken is not None and (grammar.interpreter or not allow_unparseable):
                message = f"{broken.location}: {broken.message}"
                if grammar.interpreter:
                    raise NeedsTargetGrammar(message)
                raise grammar.missing(message)
        return parsed
    try:
        text = decode_source(data, rel, max_bytes)
    except AnalysisError as exc:
        if not allow_unparseable or len(data) > max_bytes:
            raise
        return scan_tokens(data.decode("latin-1"), rel, reason=exc.message)
    if grammar is None:
        return parse_source(text, rel, allow_unparseable=allow_unparseable, feature_version=feature_version)
    try:
        return parse_source(text, rel)
    except SourceSyntaxError as exc:
        if grammar.interpreter:
            raise NeedsTargetGrammar(exc.message, exc.hint) from None
        if allow_unparseable:
            return scan_tokens(text, rel, reason=f"{exc.message}; no Python {grammar.target} to parse it with")
        raise grammar.missing(exc.message) from None


class Parser:
    """Parses files through a content-hash cache; on a big cold run, in a pool of worker processes.

    Cache misses are parsed here until there are a few; then a process pool (one worker a core)
    starts and is kept fed with small batches from a backlog, while this process only classifies
    what comes back and finds the next files. Measured on sympy: this process parsing too (and
    freeing its trees, which forked workers need not do) left the workers less of the machine.

    With an empty cache nothing can hit, so this process does not read files at all: ``submit``
    takes no digest, and the worker that reads a file to parse it hashes it too (``digests``).
    """

    def __init__(
        self,
        cache: dict[tuple[str, str], ParsedSource] | None,
        *,
        allow_unparseable: bool,
        max_bytes: int,
        grammar: Grammar | None = None,
        feature_version: tuple[int, int] | None = None,
    ) -> None:
        self.cache = cache if cache is not None else {}
        self.used: dict[tuple[str, str], ParsedSource] = {}
        self.allow = allow_unparseable
        self.max_bytes = max_bytes
        self._pool: cf.ProcessPoolExecutor | None = None
        self._workers = 0
        self._pending: dict[cf.Future[list[JobResult]], list[Job]] = {}
        self._backlog: deque[Job] = deque()
        self._ready: list[ParsedSource] = []
        self.grammar = grammar  # a target newer than this interpreter: see analysis/grammar.py
        self._target: TargetParser | None = None
        self.feature_version = feature_version  # a target older than this interpreter: its grammar
        self.key_salt = f"{int(allow_unparseable)}:{max_bytes}" + (f":{grammar.salt}" if grammar is not None else "")
        if feature_version is not None:
            self.key_salt += f":{feature_version[0]}.{feature_version[1]}"
        self._misses = 0
        self.digests: dict[str, str] = {}  # absolute path -> digest, for files submitted without one

    @property
    def needs_digests(self) -> bool:
        """Whether ``submit`` needs a file's digest (to look it up); with an empty cache the worker hashes."""
        return bool(self.cache)

    def submit(self, abs_path: Path | str, rel: str, digest: str | None) -> None:
        """Queue a file for parsing; cached results are ready at once."""
        if digest is not None:
            self.digests[str(abs_path)] = digest
            hit = self.cache.get((rel, f"{digest}:{self.key_salt}"))
            if hit is not None:
                self.used[(rel, f"{digest}:{self.key_salt}")] = hit
                self._ready.append(hit)
                return
        self._misses += 1
        if self._pool is None and self._misses >= _PARALLEL_MIN and (os.cpu_count() or 1) > 1:
            import concurrent.futures as cf
            import multiprocessing
            import sys

            ctx = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else None
            self._workers = min(os.cpu_count() or 2, 8)
            # A forked worker ends with os._exit and frees nothing: it keeps its trees (up to a budget) rather
            # than spend a sixth of each parse freeing them. A spawned one exits through sys.exit: it frees.
            keep = _WORKER_KEEP_CHARS if ctx is not None else 0
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self._workers, mp_context=ctx, initializer=_worker_init, initargs=(keep,)
            )
        if self._pool is None:
            job = (str(abs_path), rel)
            self._accept(_parse_job(*job, self.allow, self.max_bytes, digest is None, self.grammar, self.feature_version), job)
            return
        self._backlog.append((str(abs_path), rel))
        self._feed()

    def _feed(self) -> None:
        """Keep every worker busy with a batch in hand and one queued, leaving the rest of the backlog here."""
        assert self._pool is not None
        backlog = self._backlog
        while backlog and len(self._pending) < 2 * self._workers:
            size = max(1, min(_BATCH_MAX, len(backlog) // (3 * self._workers)))
            batch = [backlog.popleft() for _ in range(size)]
            fut = self._pool.submit(
                _parse_batch, batch, self.allow, self.max_bytes, not self.needs_digests, self.grammar, self.feature_version
            )
            self._pending[fut] = batch

    def _accept(self, result: JobResult, job: Job) -> None:
        parsed, digest = result
        if isinstance(parsed, tuple) and parsed[2] and self.grammar is not None and self.grammar.interpreter:
            parsed, digest = self._parse_with_target(job)
        if isinstance(parsed, tuple):
            self.close()
            raise AnalysisError(parsed[0], parsed[1])
        if digest:
            self.digests[job[0]] = digest
        self.used[(job[1], f"{self.digests[job[0]]}:{self.key_salt}")] = parsed
        self._ready.append(parsed)

    def _collect(self, done: Iterable[cf.Future[list[JobResult]]]) -> None:
        for fut in sorted(done, key=lambda f: self._pending[f]):
            jobs = self._pending.pop(fut)
            for result, job in zip(fut.result(), jobs):
                self._accept(result, job)
        if self._pool is not None:
            self._feed()

    def results(self) -> Iterable[ParsedSource]:
        """Yield parsed files as they complete, until nothing is queued."""
        while self._ready or self._pending or self._backlog:
            while self._ready:
                yield self._ready.pop()
            done = [f for f in self._pending if f.done()]
            if done:
                self._collect(done)
            elif self._pending:
                import concurrent.futures as cf

                finished, _ = cf.wait(list(self._pending), return_when=cf.FIRST_COMPLETED)
                self._collect(finished)
            elif self._backlog:
                self._feed()  # a backlog with nothing in flight: hand it to the workers

    def _parse_with_target(self, job: Job) -> JobResult:
        """Parse a file the host rejected with the target's interpreter (started on the first such file)."""
        from slimbuild.analysis.grammar import TargetParser

        assert self.grammar is not None
        if self._target is None:
            self._target = TargetParser(self.grammar)
        try:
            parsed, digest = self._target.parse(job[0], job[1], self.allow, self.max_bytes)
        except AnalysisError:
            self.close()
            raise
        if isinstance(parsed, ParsedSource):
            return parsed, digest
        if isinstance(parsed, tuple) and len(parsed) >= 2:
            return (str(parsed[0]), str(parsed[1]), False), ""
        self.close()
        raise AnalysisError(f"{job[1]}: the Python {self.grammar.target} parser answered {type(parsed).__name__}")

    def close(self) -> None:
        """Stop worker processes (and the target's parser)."""
        if self._target is not None:
            self._target.close()
            self._target = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._backlog.clear()
