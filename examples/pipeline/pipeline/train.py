"""Stage 3: a least-squares slope of the features, reported as YAML (PyYAML, six)."""

import sys

import six
import yaml


def main() -> int:
    xs = list(six.moves.range(7))
    ys = [x * 2.5 + 1 for x in xs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    print(yaml.safe_dump({"n": len(xs), "slope": round(slope, 3)}).strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
