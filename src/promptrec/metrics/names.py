"""Metric names (``<stage>/<metric>[@k]``), which way each is better, and the same metric at
another stage. One table for every metric PromptRec reports, so the checkpoint monitor, the
Optuna direction and the summary tables agree (RecBole: metrics know their direction)."""

from __future__ import annotations

import re

DIRECTIONS = {
    # binary preference (binary.py)
    "auc": "max", "gauc": "max", "logloss": "min", "accuracy": "max", "precision": "max",
    "recall": "max", "f1": "max", "ece": "min",
    "accuracy_at_val_threshold": "max", "f1_at_val_threshold": "max",
    # rating
    "rmse": "min", "mae": "min",
    # top-K ranking (ranking.py), each at every cut-off K
    "hr": "max", "ndcg": "max", "mrr": "max", "map": "max", "coverage": "max",
    "popularity": "min", "gini": "min",
    # per-group gaps (slices.py): a smaller gap serves groups more evenly
    "gap": "min", "max_gap": "min",
    # training
    "loss": "min",
    # what a run cost (runtime/costs.py), by full name
    "cost/train_samples_per_s": "max", "cost/epoch_seconds": "min", "cost/peak_rss_mb": "min",
    "cost/peak_gpu_mb": "min", "cost/checkpoint_mb": "min",
}  # fmt: skip
STAGES = ("train", "val", "test")


def base_name(metric: str) -> str:
    """``test/ndcg@10`` → ``ndcg``; ``val/gap/gender`` → ``gap``."""
    name = metric.split("/", 1)[1] if metric.split("/", 1)[0] in STAGES else metric
    return re.sub(r"@\d+$", "", name.split("/", 1)[0])


def direction(metric: str) -> str | None:
    """``"max"``, ``"min"``, or None for a number that is not a score (a count, a size)."""
    return DIRECTIONS.get(metric) or DIRECTIONS.get(base_name(metric))


def at_stage(metric: str, stage: str) -> str:
    """The same metric at another stage: ``at_stage("val/auc", "test") == "test/auc"``."""
    head, _, rest = metric.partition("/")
    return f"{stage}/{rest}" if head in STAGES and rest else metric
