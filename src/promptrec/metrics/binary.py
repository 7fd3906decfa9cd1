"""Binary preference metrics: AUC, GAUC, LogLoss, ECE, accuracy, precision, recall, F1.

LogLoss = -mean(y·log p + (1-y)·log(1-p)), computed from logits for numerical stability.
ECE = Σ_b (n_b / n)·|mean p_b − mean y_b| over 10 equal-width probability bins.
GAUC = Σ_u n_u·AUC_u / Σ_u n_u over users u whose examples hold both classes (others have no AUC).
AUC ranks the logits in float64 (Mann-Whitney, ties counted half): probabilities in float32 would
tie every logit above ~17 at 1.0. With one class only it is NaN (undefined), never 0.
Threshold metrics predict "like" where p > 0.5 (logit > 0), as torchmetrics does; ``best_f1_threshold``
picks another cut-off on validation. An empty evaluation raises instead of reporting a silent 0.
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryCalibrationError,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
)
from torchmetrics.utilities import dim_zero_cat


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


def rank_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """P(score of a random positive > score of a random negative), ties counting ½, from the
    scores' ranks in float64; NaN when one class is absent (AUC is undefined there)."""
    scores, labels = scores.double().flatten(), labels.flatten().bool()
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    _, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    counts = counts.double()
    first = torch.cumsum(counts, 0) - counts  # 0-based rank of each distinct value's first copy
    ranks = (first + (counts + 1) / 2.0)[inverse]  # 1-based average ranks
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


class BinaryRankAUC(Metric):
    """AUC from the logits themselves (``rank_auc``); the scores of all ranks are gathered."""

    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        self.scores.append(logits.double().flatten())
        self.labels.append(target.flatten())

    def compute(self) -> torch.Tensor:
        scores, labels = dim_zero_cat(self.scores), dim_zero_cat(self.labels)
        if scores.numel() == 0:
            raise ValueError(
                "BinaryRankAUC.compute() called with no examples: nothing was evaluated."
            )
        return torch.tensor(rank_auc(scores, labels), dtype=torch.float64)


class _OnProbabilities(MetricCollection):
    """Feeds probabilities to torchmetrics' classifiers and raw logits to the AUC and log loss."""

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        if target.numel() == 0:
            raise ValueError("binary metrics got an empty batch")
        probs, target_int = torch.sigmoid(logits), target.long()
        for metric in self.values(copy_state=False):
            if isinstance(metric, (BinaryLogLoss, BinaryRankAUC)):
                metric.update(logits, target)
            else:
                metric.update(probs, target_int)


def binary_metrics(prefix: str = "", **kwargs) -> MetricCollection:
    """The preference task's metric set, keyed ``{prefix}auc``, ``{prefix}logloss``, …"""
    return _OnProbabilities(
        {
            "auc": BinaryRankAUC(**kwargs),
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
            total += rank_auc(scores[rows], y) * len(rows)
            weight += len(rows)
            used += 1
    return (total / weight if used else None), used


def best_f1_threshold(logits: torch.Tensor, labels: torch.Tensor) -> float | None:
    """The logit cut-off (predict "like" where logit > it) with the best F1 on these examples,
    for reporting test accuracy and F1 at a threshold chosen on validation; None with one class.
    The cut-off is the midpoint between neighbouring distinct logits, so it transfers to new ones."""
    labels = labels.flatten().bool()
    if labels.all() or not labels.any():
        return None
    values = torch.unique(logits.double().flatten())  # ascending; cut below the first too
    cuts = torch.cat([values[:1] - 1.0, (values[1:] + values[:-1]) / 2])
    predicted = logits.double().flatten()[None, :] > cuts[:, None]  # (cuts, examples)
    true_positives = (predicted & labels).sum(1).double()
    f1 = 2 * true_positives / (predicted.sum(1) + labels.sum())
    return float(cuts[int(torch.argmax(f1))])
