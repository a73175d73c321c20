"""Exit codes mirrored from slimbuild.errors (and README.md) for tests to use."""

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
