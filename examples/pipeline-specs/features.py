"""Stage 2: the rows of ingest aggregated per region: count, total, mean."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict

from stages import input_dir, output_dir


def main() -> None:
    amounts: dict[str, list[float]] = defaultdict(list)
    for line in (input_dir("ingest") / "rows.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        amounts[row["region"]].append(row["amount"])
    features = {
        region: {"count": len(values), "total": round(sum(values), 2), "mean": round(statistics.fmean(values), 2)}
        for region, values in sorted(amounts.items())
    }
    (output_dir() / "features.json").write_text(json.dumps(features, indent=2, sort_keys=True), encoding="utf-8")
    print(f"features: regions={len(features)}")


if __name__ == "__main__":
    main()
