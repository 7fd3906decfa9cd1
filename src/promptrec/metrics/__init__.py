"""Metrics: torchmetrics where it has them, small ``Metric`` subclasses where it does not."""

from promptrec.metrics.binary import (
    BinaryLogLoss,
    best_f1_threshold,
    binary_metrics,
    grouped_auc,
    rank_auc,
)

__all__ = ["BinaryLogLoss", "best_f1_threshold", "binary_metrics", "grouped_auc", "rank_auc"]
