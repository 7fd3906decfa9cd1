"""Metrics: torchmetrics where it has them, small ``Metric`` subclasses where it does not."""

from promptrec.metrics.binary import BinaryLogLoss, binary_metrics, grouped_auc

__all__ = ["BinaryLogLoss", "binary_metrics", "grouped_auc"]
