import joblib
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from pipeline import common

def run():
    joblib.dump(RandomForestRegressor().fit(pd.read_parquet("raw.parquet"), [0]), "m.joblib")
