"""One error hierarchy; each error carries its exit code and a hint.

Exit codes (mirrored in README.md and in tests/constants.py):

====  =========================================================================
code  meaning
====  =========================================================================
0     ok
1     findings (``check``, ``diff``)
2     usage or configuration error
3     analysis error (unparseable input, missing entrypoint)
4     resolution or lock failure (unmapped import, resolver conflict, no wheel)
5     integrity failure (hash mismatch, corrupt artifact)
6     container engine unavailable
7     image build or smoke run failed
8     registry or push failure
9     not reproducible (``verify`` mismatch)
10    policy violation (secret needed, symlink escape)
70    internal error
130   interrupted
====  =========================================================================
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Documented process exit codes."""

    OK = 0
    FINDINGS = 1
    USAGE = 2
    ANALYSIS = 3
    RESOLUTION = 4
    INTEGRITY = 5
    ENGINE = 6
    BUILD = 7
    REGISTRY = 8
    NOT_REPRODUCIBLE = 9
    POLICY = 10
    INTERNAL = 70
    INTERRUPTED = 130


class SlimbuildError(Exception):
    """Root of every error slimbuild reports to a user.

    ``message`` names the cause (file, line, distribution ...); ``hint`` says
    what to do about it. Both are one line each.
    """

    exit_code: ExitCode = ExitCode.INTERNAL
    kind: str = "internal"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and the hint on one line."""
        text = self.message.replace("\n", " ")
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class UsageError(SlimbuildError):
    """Bad command line or configuration."""

    exit_code = ExitCode.USAGE
    kind = "usage"


class ConfigError(UsageError):
    """Bad configuration file or environment setting."""

    kind = "config"


class AnalysisError(SlimbuildError):
    """Input that cannot be analysed: unparseable source, missing entrypoint."""

    exit_code = ExitCode.ANALYSIS
    kind = "analysis"


class ResolutionError(SlimbuildError):
    """An import or requirement that cannot be resolved or locked."""

    exit_code = ExitCode.RESOLUTION
    kind = "resolution"


class IntegrityError(SlimbuildError):
    """An artifact whose hash or structure is not what was locked."""

    exit_code = ExitCode.INTEGRITY
    kind = "integrity"


class EngineUnavailable(SlimbuildError):
    """The container engine cannot be reached or is too old."""

    exit_code = ExitCode.ENGINE
    kind = "engine"


class BuildFailed(SlimbuildError):
    """The image build or its smoke run failed."""

    exit_code = ExitCode.BUILD
    kind = "build"


class RegistryError(SlimbuildError):
    """A registry refused or failed a push or a pull."""

    exit_code = ExitCode.REGISTRY
    kind = "registry"


class NotReproducible(SlimbuildError):
    """A rebuild differs from what the manifest records."""

    exit_code = ExitCode.NOT_REPRODUCIBLE
    kind = "not-reproducible"


class PolicyViolation(SlimbuildError):
    """Something slimbuild refuses on principle: a needed secret, a symlink escape."""

    exit_code = ExitCode.POLICY
    kind = "policy"


class Interrupted(SlimbuildError):
    """SIGINT or SIGTERM arrived."""

    exit_code = ExitCode.INTERRUPTED
    kind = "interrupted"


class NoSuchImage(UsageError):
    """An image reference (``inspect``'s target, ``--base-image``) that the engine does not have."""

    kind = "no-such-image"
