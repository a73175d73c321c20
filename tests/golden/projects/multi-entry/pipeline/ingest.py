import requests
import pandas as pd
from pipeline import common

def run():
    pd.DataFrame(requests.get("https://example.invalid").json()).to_parquet("raw.parquet")
