"""The model: a cross-validated linear regression."""

from __future__ import annotations

from sklearn.linear_model import LinearRegression
from sklearn.model_selection import cross_val_score


def fit_and_score(X, y) -> float:  # type: ignore[no-untyped-def]
    """Mean R^2 over 3 folds."""
    return float(cross_val_score(LinearRegression(), X, y, cv=3).mean())
