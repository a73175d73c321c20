"""Stage 2: features of the events, weekday and scaled value (python-dateutil, six)."""

import sys

import six
from dateutil.parser import isoparse


def main() -> int:
    days = [f"2024-03-0{i + 1}" for i in six.moves.range(7)]
    print(" ".join(f"{isoparse(d).strftime('%a')}={i * 2.5:g}" for i, d in enumerate(days)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
