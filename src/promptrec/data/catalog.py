"""Integer ids for users and items, and item popularity, shared by tasks and ID-based models."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch


@dataclass
class Catalog:
    # index → item id: every item of the item file, then any only in interactions
    item_ids: list[str]
    item_index: dict[str, int]
    user_ids: list[str]
    user_index: dict[str, int]
    popularity: torch.Tensor  # training interactions per item (float64): never val/test

    @classmethod
    def build(cls, items: pd.DataFrame, split: pd.DataFrame) -> Catalog:
        extra = sorted(set(split["item_id"].unique()) - set(items["item_id"]))
        item_ids = list(items["item_id"]) + extra
        item_index = {item: i for i, item in enumerate(item_ids)}
        user_ids = list(pd.unique(split["user_id"]))
        train_items = split.loc[split["split"] == "train", "item_id"]
        counts = pd.Series(pd.Index(item_ids).get_indexer(train_items)).value_counts()
        popularity = torch.zeros(len(item_ids), dtype=torch.float64)
        popularity[torch.tensor(counts.index.to_numpy())] = torch.tensor(
            counts.to_numpy(), dtype=torch.float64
        )
        return cls(
            item_ids, item_index, user_ids, {u: i for i, u in enumerate(user_ids)}, popularity
        )

    def training_matrix(self, split: pd.DataFrame) -> torch.Tensor:
        """Users × items, 1 where the user has a training interaction (never val/test): what
        BPR must not draw as a negative and what ItemKNN's similarities are computed from."""
        train = split[split["split"] == "train"]
        users = torch.as_tensor(train["user_id"].map(self.user_index).to_numpy(), dtype=torch.long)
        items = torch.as_tensor(
            pd.Index(self.item_ids).get_indexer(train["item_id"]), dtype=torch.long
        )
        matrix = torch.zeros(len(self.user_ids), len(self.item_ids))
        matrix[users, items] = 1.0
        return matrix
