"""Binary preference metrics: AUC, LogLoss, accuracy, precision, recall, F1.

LogLoss = -mean(y·log p + (1-y)·log(1-p)), computed from logits for numerical stability.
Threshold metrics use p ≥ 0.5. An empty evaluation raises instead of reporting a silent 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
)


class BinaryLogLoss(Metric):
    """Mean binary cross-entropy over all examples; sums and counts add up across DDP ranks."""

    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state(
            "total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        losses = F.binary_cross_entropy_with_logits(
            logits.double(), target.double(), reduction="none"
        )
        self.total += losses.sum()
        self.count += target.numel()

    def compute(self) -> torch.Tensor:
        if self.count == 0:
            raise ValueError(
                "BinaryLogLoss.compute() called with no examples: nothing was evaluated."
            )
        return self.total / self.count


class _OnProbabilities(MetricCollection):
    """Feeds probabilities to torchmetrics' classifiers and raw logits to the log loss."""

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        if target.numel() == 0:
            raise ValueError("binary metrics got an empty batch")
        probs, target_int = torch.sigmoid(logits), target.long()
        for metric in self.values(copy_state=False):
            if isinstance(metric, BinaryLogLoss):
                metric.update(logits, target)
            else:
                metric.update(probs, target_int)


def binary_metrics(prefix: str = "", **kwargs) -> MetricCollection:
    """The preference task's metric set, keyed ``{prefix}auc``, ``{prefix}logloss``, …"""
    return _OnProbabilities(
        {
            "auc": BinaryAUROC(**kwargs),
            "logloss": BinaryLogLoss(**kwargs),
            "accuracy": BinaryAccuracy(**kwargs),
            "precision": BinaryPrecision(**kwargs),
            "recall": BinaryRecall(**kwargs),
            "f1": BinaryF1Score(**kwargs),
        },
        prefix=prefix,
        compute_groups=False,
    )
