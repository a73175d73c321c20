"""Feature engineering and modelling for the sample analysis."""
