"""Lock: the target platform, pip-tools behind a small interface, the lock file, the wheelhouse and the audit."""
