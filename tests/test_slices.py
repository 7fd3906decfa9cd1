"""Per-group test metrics: group assignment from profiles and training data, metrics, gaps."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from promptrec.metrics.slices import Slicer
from promptrec.tasks import build_task

USERS = pd.DataFrame(
    {"user_id": ["u1", "u2", "u3", "u4"], "age": pd.array([17, 24, 56, 40], "Int64"),
     "gender": ["F", "M", "F", "M"], "occupation": ["student", "writer", "retired", "writer"]}
)  # fmt: skip


def _split():
    rows = []
    for user, n in (("u1", 2), ("u2", 4), ("u3", 6), ("u4", 8)):  # training activity 2 < 4 < 6 < 8
        rows += [(user, f"i{k % 5}", 4.0, k, "train") for k in range(n)]
    rows += [(u, "i9", 3.0, 99, "test") for u in ("u1", "u2", "u3", "u4")]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp", "split"])


def test_groups_come_from_profiles_and_training_activity():
    slicer = Slicer(USERS, _split(), min_examples=1)
    examples = pd.DataFrame(
        {"user_id": ["u1", "u2", "u3", "u4"], "item_id": ["i0", "i4", "i9", "i1"]}
    )
    groups = slicer.groups(examples)
    assert groups.age_band.tolist() == ["<18", "18-24", "56+", "35-44"]
    assert groups.activity.tolist() == ["low", "mid-low", "mid-high", "high"]
    assert groups.gender.tolist() == ["F", "M", "F", "M"]
    # training counts: i0..i3 appear 4 times each, i4 4 times… i9 never → tail
    assert groups.item_popularity.iloc[2] == "tail"
    assert set(groups.item_popularity) <= {"head", "torso", "tail"}


def test_slice_metrics_and_the_largest_gap():
    task = build_task(OmegaConf.create({"name": "preference", "like_threshold": 4.0}))
    users = pd.DataFrame({"user_id": [f"u{i}" for i in range(8)], "age": pd.array([30] * 8, "Int64"),
                          "gender": ["F"] * 4 + ["M"] * 4, "occupation": ["x"] * 8})  # fmt: skip
    split = pd.DataFrame(
        {"user_id": users.user_id, "item_id": "i", "rating": 5.0, "timestamp": 0, "split": "train"}
    )
    examples = pd.DataFrame(
        {"example_id": range(8), "user_id": users.user_id, "item_id": "i", "rating": [5.0, 1.0] * 4,
         "labels": [1.0, 0.0] * 4}
    )  # fmt: skip
    # women: positives scored high (AUC 1); men: positives scored low (AUC 0)
    logits = torch.tensor([[2.0], [-2.0], [2.0], [-2.0], [-2.0], [2.0], [-2.0], [2.0]])
    table, gaps = Slicer(users, split, min_examples=2).evaluate(
        task, "test", logits, examples, "test/auc"
    )
    by_gender = table[table.dimension == "gender"].set_index("group")
    assert by_gender.loc["F", "auc"] == 1.0 and by_gender.loc["M", "auc"] == 0.0
    assert by_gender.loc["F", "n"] == 4
    assert gaps["test/gap/gender"] == pytest.approx(1.0) and gaps["test/max_gap"] == pytest.approx(
        1.0
    )
    assert "test/gap/occupation" not in gaps  # one group only: no gap
    small = Slicer(users, split, min_examples=5).evaluate(
        task, "test", logits, examples, "test/auc"
    )[0]
    assert small[small.dimension == "gender"]["auc"].isna().all()  # 4 < 5 examples: size only
