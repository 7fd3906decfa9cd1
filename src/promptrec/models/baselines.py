"""Classical baselines on user/item ids, scored by the same tasks, splits and metrics as the LMs.

- ``Popularity``: every user gets the items with the most training interactions (no training).
- ``MatrixFactorization``: biased MF, score = b + b_u + b_i + p_u·q_i. Trained with the task's own
  loss (BCE for preference, MSE for rating, softmax over the catalogue for next-item), or with
  BPR for next-item (``model.objective=bpr``): −log σ(s(u, i⁺) − s(u, i⁻)), one uniformly
  sampled negative per positive.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Popularity(nn.Module):
    def __init__(self, popularity: torch.Tensor):
        super().__init__()
        self.register_buffer("scores", torch.log1p(popularity.float()))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.scores.expand(len(batch["user_idx"]), -1)


class MatrixFactorization(nn.Module):
    def __init__(
        self, n_users: int, n_items: int, dim: int, catalog_output: bool, objective: str = "task"
    ):
        super().__init__()
        self.catalog_output, self.objective = catalog_output, objective
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.bias = nn.Parameter(torch.zeros(1))
        for table in (self.user, self.item):
            nn.init.normal_(table.weight, std=0.05)
        for table in (self.user_bias, self.item_bias):
            nn.init.zeros_(table.weight)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs, any matching shapes."""
        dot = (self.user(users) * self.item(items)).sum(-1)
        return (
            self.bias + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1) + dot
        )

    def forward(self, batch: dict) -> torch.Tensor:
        users = batch["user_idx"]
        if self.catalog_output:  # (batch, n_items): every item for each user
            return self.item_bias.weight.T + self.user(users) @ self.item.weight.T + self.bias
        return self.score(users, batch["item_idx"])[:, None]

    def training_loss(self, batch: dict) -> torch.Tensor | None:
        """BPR's pairwise loss; None means: use the task's loss on ``forward``'s outputs."""
        if self.objective != "bpr":
            return None
        users, positives = batch["user_idx"], batch["item_idx"]
        negatives = torch.randint(
            0, self.item.num_embeddings, positives.shape, device=positives.device
        )
        return -F.logsigmoid(self.score(users, positives) - self.score(users, negatives)).mean()
