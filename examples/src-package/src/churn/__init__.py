"""Monthly churn estimates for a subscription business."""

__version__ = "0.3.0"
