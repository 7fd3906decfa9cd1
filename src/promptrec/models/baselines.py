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


class SASRec(nn.Module):
    """Self-attentive sequential recommendation (Kang & McAuley, 2018), cross-entropy variant.

    A causal Transformer reads the user's recent item ids (oldest first, left-padded with 0); the
    last position's state scores every catalogue item through the shared item embeddings.
    """

    def __init__(
        self,
        n_items: int,
        max_len: int,
        dim: int = 64,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=0)  # index 0 = padding
        self.position = nn.Embedding(max_len, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        for table in (
            self.item,
            self.position,
        ):  # unit-scale inputs after the √dim factor; logits ~ N(0, 1)
            nn.init.normal_(table.weight, std=dim**-0.5)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, batch: dict) -> torch.Tensor:
        seq = batch["history_idx"]  # (batch, max_len), 0 = padding
        length = seq.shape[1]
        x = self.item(seq) * self.item.embedding_dim**0.5 + self.position.weight[:length]
        causal = torch.triu(
            torch.ones(length, length, dtype=torch.bool, device=seq.device), diagonal=1
        )
        real = (seq != 0).unsqueeze(-1)  # padded positions carry zeros (as in the original SASRec);
        h = self.encoder(
            self.dropout(x) * real, mask=causal
        )  # no key mask: a fully masked row is NaN
        last = self.norm(h[:, -1])
        return last @ self.item.weight[1:].T  # (batch, n_items)
