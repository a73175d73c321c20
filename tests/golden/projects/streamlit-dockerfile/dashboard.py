"""A Streamlit dashboard, started by the Dockerfile's CMD (no slimbuild configuration)."""

import streamlit as st

from charts import sales_chart

st.title("Sales")
st.altair_chart(sales_chart())
