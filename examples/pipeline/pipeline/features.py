"""Stage 2: features of the events, weekday and scaled value (PyYAML, python-dateutil, six)."""

import sys

import six
import yaml
from dateutil.parser import isoparse

CONFIG = yaml.safe_load("days: 7\nscale: 2.5\n")


def main() -> int:
    days = [f"2024-03-0{i + 1}" for i in six.moves.range(CONFIG["days"])]
    print(" ".join(f"{isoparse(d).strftime('%a')}={i * CONFIG['scale']:g}" for i, d in enumerate(days)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
