"""Train a model on the sample data and print its score."""

from __future__ import annotations

import sys
from pathlib import Path

from analysis.features import build_features
from analysis.model import fit_and_score

DATA = Path(__file__).resolve().parent / "data" / "sample.csv"


def main() -> int:
    import pandas as pd

    frame = pd.read_csv(DATA)
    X, y = build_features(frame)
    score = fit_and_score(X, y)
    print(f"rows={len(frame)} r2={score:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
