"""Stage 1: every raw CSV file (date, region, amount) to one JSON line per valid row."""

from __future__ import annotations

import csv
import json

from stages import input_dir, output_dir


def main() -> None:
    rows = 0
    with (output_dir() / "rows.jsonl").open("w", encoding="utf-8") as out:
        for path in sorted(input_dir("sales-raw").glob("*.csv")):
            with path.open(newline="", encoding="utf-8") as fh:
                for record in csv.DictReader(fh):
                    try:
                        amount = float(record["amount"])
                    except (KeyError, ValueError):
                        continue
                    out.write(json.dumps({"date": record["date"], "region": record["region"], "amount": amount}) + "\n")
                    rows += 1
    print(f"ingest: rows={rows}")


if __name__ == "__main__":
    main()
