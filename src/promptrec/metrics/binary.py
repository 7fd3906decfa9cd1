"""Binary preference metrics: AUC, GAUC, LogLoss, ECE, accuracy, precision, recall, F1.

LogLoss = -mean(y·log p + (1-y)·log(1-p)), computed from logits for numerical stability.
ECE = Σ_b (n_b / n)·|mean p_b − mean y_b| over 10 equal-width probability bins.
GAUC = Σ_u n_u·AUC_u / Σ_u n_u over users u whose examples hold both classes (others have no AUC).
Threshold metrics use p ≥ 0.5. An empty evaluation raises instead of reporting a silent 0.
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryCalibrationError,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
)
from torchmetrics.functional.classification import binary_auroc


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
            "ece": BinaryCalibrationError(n_bins=10, norm="l1", **kwargs),
            "accuracy": BinaryAccuracy(**kwargs),
            "precision": BinaryPrecision(**kwargs),
            "recall": BinaryRecall(**kwargs),
            "f1": BinaryF1Score(**kwargs),
        },
        prefix=prefix,
        compute_groups=False,
    )


def grouped_auc(scores: torch.Tensor, labels: torch.Tensor, groups) -> tuple[float | None, int]:
    """GAUC and the number of groups it averages; (None, 0) when no group holds both classes.

    Leave-one-out gives each user a single test example, so GAUC is undefined there and is not
    reported; it becomes meaningful with several test examples per user.
    """
    total, weight, used = 0.0, 0, 0
    for rows in pd.Series(list(groups)).groupby(list(groups), sort=False).indices.values():
        y = labels[rows]
        if 0 < int(y.sum()) < len(rows):
            total += float(binary_auroc(scores[rows], y.long())) * len(rows)
            weight += len(rows)
            used += 1
    return (total / weight if used else None), used
