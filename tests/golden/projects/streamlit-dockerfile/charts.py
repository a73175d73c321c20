import altair as alt
import pandas as pd


def sales_chart() -> alt.Chart:
    df = pd.DataFrame({"month": [1, 2, 3], "sales": [10, 12, 9]})
    return alt.Chart(df).mark_line().encode(x="month", y="sales")


if __name__ == "__main__":
    import matplotlib  # a demo block: not run when the dashboard imports this module

    matplotlib.use("Agg")
