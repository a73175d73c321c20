"""Stage 1: the raw events, one per day from the configured start (PyYAML, python-dateutil)."""

import datetime as dt
import json
import sys

import yaml
from dateutil.relativedelta import relativedelta

CONFIG = yaml.safe_load("days: 7\nstart: 2024-03-01\n")


def main() -> int:
    start = CONFIG["start"]
    assert isinstance(start, dt.date)
    events = [{"day": (start + relativedelta(days=i)).isoformat(), "value": i * i} for i in range(CONFIG["days"])]
    print(json.dumps(events))
    return 0


if __name__ == "__main__":
    sys.exit(main())
