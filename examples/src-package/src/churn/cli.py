"""Command line: print the churn curve for N months."""

from __future__ import annotations

import argparse

from churn.model import churn_curve
from churn.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and print one line per month."""
    parser = argparse.ArgumentParser(prog="churn")
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args(argv)
    settings = load_settings()
    curve = churn_curve(settings["monthly_rate"], settings["customers"], args.months)
    for month, remaining in enumerate(curve, start=1):
        print(f"month {month:2d}: {remaining:8.1f}")
    return 0
