#!/usr/bin/env bash
# The whole test suite, every tier, on a fresh machine: creates .venv, installs
# slimbuild with its test extras, lints, type-checks, then runs pytest.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k golden`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "== ruff" >&2
.venv/bin/ruff check slimbuild tests bench
echo "== mypy" >&2
.venv/bin/mypy
echo "== import-linter" >&2
.venv/bin/lint-imports
if [ -d tests/docker ] && ls tests/docker/test_*.py >/dev/null 2>&1; then
    echo "== docker engine" >&2
    bash scripts/docker-up.sh
fi
echo "== pytest (unit, cli, golden, integration, docker)" >&2
exec .venv/bin/python -m pytest "$@"
