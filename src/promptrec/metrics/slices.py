"""Test metrics per user group and per item-popularity bucket: who does the model serve well?

Groups (all from data the model was allowed to see: profiles and the *training* split):
  gender; age band (<18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+, as MovieLens-1M bands them);
  occupation; activity (quartile of the user's training interactions: low, mid-low, mid-high, high);
  item popularity of the example's target (head = the 20% most-interacted training items,
  torso = the next 30%, tail = the rest, including items never seen in training).
Each group's metrics are the task's own metrics on its examples. The gap of a dimension is the
largest minus the smallest value of the monitored metric among its groups with at least
``min_examples`` examples; ``max_gap`` is the largest over dimensions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

AGE_BANDS = (
    [0, 18, 25, 35, 45, 50, 56, 200],
    ["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"],
)
DIMENSIONS = ("gender", "age_band", "occupation", "activity", "item_popularity")


class Slicer:
    def __init__(self, users: pd.DataFrame, split: pd.DataFrame, min_examples: int = 20):
        self.min_examples = min_examples
        train = split[split["split"] == "train"]
        activity = train.groupby("user_id").size()
        quartile = pd.qcut(
            activity.rank(method="first"), 4, labels=["low", "mid-low", "mid-high", "high"]
        )
        profile = users.set_index("user_id")
        self.user_groups = pd.DataFrame(
            {
                "gender": profile["gender"].replace("", "unknown"),
                "age_band": pd.cut(profile["age"].astype("float"), AGE_BANDS[0], right=False, labels=AGE_BANDS[1]).astype(str),
                "occupation": profile["occupation"].replace("", "unknown"),
            }
        ).join(quartile.rename("activity").astype(str), how="outer").fillna("unknown")  # fmt: skip
        counts = train["item_id"].value_counts()  # most popular first
        rank = np.arange(len(counts)) / max(len(counts), 1)
        self.item_bucket = pd.Series(
            np.where(rank < 0.2, "head", np.where(rank < 0.5, "torso", "tail")), index=counts.index
        )

    def groups(self, examples: pd.DataFrame) -> pd.DataFrame:
        """One row per example: its group in every dimension."""
        frame = (
            self.user_groups.reindex(examples["user_id"]).fillna("unknown").reset_index(drop=True)
        )
        frame["item_popularity"] = (
            examples["item_id"].map(self.item_bucket).fillna("tail").to_numpy()
        )
        return frame

    def evaluate(
        self, task, stage: str, outputs: torch.Tensor, examples: pd.DataFrame, monitor: str
    ) -> tuple[pd.DataFrame, dict]:
        """(table: dimension, group, n, metrics…; gaps: {stage}/gap/<dimension> and {stage}/max_gap)."""
        groups, rows, gaps = self.groups(examples), [], {}
        for dimension in DIMENSIONS:
            values = {}
            for group, index in groups.groupby(dimension).indices.items():
                row = {"dimension": dimension, "group": group, "n": len(index)}
                if len(index) >= self.min_examples:
                    subset = examples.iloc[index].reset_index(drop=True)
                    try:
                        metrics, _ = task.evaluate(stage, outputs[torch.as_tensor(index)], subset)
                    except ValueError:  # e.g. a metric that needs more than one example
                        metrics = {}
                    row.update({k.removeprefix(f"{stage}/"): v for k, v in metrics.items()})
                    if monitor in metrics and np.isfinite(metrics[monitor]):
                        values[group] = metrics[monitor]
                rows.append(row)
            if len(values) >= 2:
                gaps[f"{stage}/gap/{dimension}"] = max(values.values()) - min(values.values())
        if gaps:
            gaps[f"{stage}/max_gap"] = max(gaps.values())
        return pd.DataFrame(rows), gaps
