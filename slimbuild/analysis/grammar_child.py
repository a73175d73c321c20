"""Run by an interpreter of the target's version (see analysis/grammar.py): parse the files it is sent, with its grammar.

Started as ``python3.X -I -S <dir>/slimbuild/analysis/grammar_child.py`` where ``<dir>`` holds the copy of
slimbuild's parser listed in ``grammar.SHIPPED`` (standard library only: no third-party package is needed).
Requests and answers are length-prefixed pickles on stdin and stdout: first a hello naming this Python's
version, then for each request ``(absolute path, relative path, allow_unparseable, max_bytes)`` the
``(ParsedSource or an error's (message, hint, ...), digest of the bytes read)`` the in-process parser gives.
"""

from __future__ import annotations

import os
import pickle
import sys

_PROTOCOL = 4


def _write(out: object, value: object) -> None:
    data = pickle.dumps(value, protocol=_PROTOCOL)
    out.write(len(data).to_bytes(8, "big") + data)  # type: ignore[attr-defined]
    out.flush()  # type: ignore[attr-defined]


def main() -> int:
    """Serve parse requests until stdin closes."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from slimbuild.analysis.parsing import _parse_job

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _write(stdout, ("slimbuild-grammar", f"{sys.version_info.major}.{sys.version_info.minor}"))
    while True:
        head = stdin.read(8)
        if len(head) != 8:
            return 0
        abs_path, rel, allow_unparseable, max_bytes = pickle.loads(stdin.read(int.from_bytes(head, "big")))
        _write(stdout, _parse_job(abs_path, rel, allow_unparseable, max_bytes, True))


if __name__ == "__main__":
    sys.exit(main())
