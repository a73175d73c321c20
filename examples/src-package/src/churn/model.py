"""A geometric churn model."""

from __future__ import annotations

import numpy as np


def churn_curve(rate: float, customers: int, months: int) -> list[float]:
    """Customers remaining after each month."""
    return list(customers * np.power(1.0 - rate, np.arange(1, months + 1)))
