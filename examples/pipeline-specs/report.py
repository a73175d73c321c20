"""Stage 3: a short text report of the regions, best first."""

from __future__ import annotations

import json

from stages import input_dir, output_dir


def main() -> None:
    features = json.loads((input_dir("features") / "features.json").read_text(encoding="utf-8"))
    ranked = sorted(features.items(), key=lambda item: -item[1]["total"])
    lines = [f"{region}: total={f['total']:.2f} mean={f['mean']:.2f} n={f['count']}" for region, f in ranked]
    (output_dir() / "report.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"report: best={ranked[0][0] if ranked else '-'}")


if __name__ == "__main__":
    main()
