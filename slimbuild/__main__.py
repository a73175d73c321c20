"""Allow ``python -m slimbuild``."""

from __future__ import annotations

from slimbuild.cli import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
