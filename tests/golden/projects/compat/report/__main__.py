import pandas as pd

from report._compat import tomllib, version


def main() -> None:
    with open("report.toml", "rb") as fh:
        config = tomllib.load(fh)
    frame = pd.read_csv(config["input"])
    print(version("pandas"), frame.describe())


if __name__ == "__main__":
    main()
