"""Classical baselines on user/item ids, scored by the same tasks, splits and metrics as the LMs.

- ``Popularity``: every user gets the items with the most training interactions (no training).
- ``ItemKNN``: item-item cosine on the training interactions, k neighbours, shrinkage (no training).
- ``MatrixFactorization``: biased MF, score = b + b_u + b_i + p_u·q_i, trained with the task's own
  loss (BCE for preference, MSE for rating, softmax over the catalogue for next-item).
- ``BPR``: the textbook pairwise model (Rendle et al., 2009), as RecBole 1.2.1 trains it.
- ``FactorizationMachine``: a 2-way FM over user and item ids plus the prompts' side features.
- ``SASRec``: a causal Transformer over the user's recent item ids.
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
    def __init__(self, n_users: int, n_items: int, dim: int, catalog_output: bool):
        super().__init__()
        self.catalog_output = catalog_output
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

    def id_vectors(self) -> dict[str, torch.Tensor]:
        """Each user's and item's learnt vector, with its bias as one more coordinate (what
        collaborative tokens feed a language model: strategies/collaborative.py), and the global
        bias: with it the tables give MF's own score (``prompt.collaborative.score``)."""
        return {"users": torch.cat([self.user.weight, self.user_bias.weight], 1),
                "items": torch.cat([self.item.weight, self.item_bias.weight], 1),
                "bias": self.bias.reshape(1)}  # fmt: skip

    def forward(self, batch: dict) -> torch.Tensor:
        users = batch["user_idx"]
        if self.catalog_output:  # (batch, n_items): every item for each user
            return self.item_bias.weight.T + self.user(users) @ self.item.weight.T + self.bias
        return self.score(users, batch["item_idx"])[:, None]


class BPR(nn.Module):
    """score(u, i) = p_u·q_i, no biases. Each training positive is paired with one item the user
    has no training interaction with, drawn uniformly; loss −log σ(s(u, i⁺) − s(u, i⁻)) plus
    ``reg_weight`` × the squared norms of the embeddings the batch used (RecBole's defaults:
    Xavier-normal initialisation, Adam, no weight decay)."""

    def __init__(self, interacted: torch.Tensor, dim: int, reg_weight: float = 0.0):
        super().__init__()
        n_users, n_items = interacted.shape
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        for table in (self.user, self.item):
            nn.init.xavier_normal_(table.weight)
        self.reg_weight = reg_weight
        # not saved in checkpoints: rebuilt from the split, which the run's hash pins
        self.register_buffer("interacted", interacted.bool(), persistent=False)

    def id_vectors(self) -> dict[str, torch.Tensor]:
        return {"users": self.user.weight, "items": self.item.weight}

    def forward(self, batch: dict) -> torch.Tensor:
        return self.user(batch["user_idx"]) @ self.item.weight.T  # (batch, n_items)

    def negatives(self, users: torch.Tensor) -> torch.Tensor:
        """One uniformly drawn item per user that the user has not interacted with in training
        (rejection sampling: a MovieLens user has seen at most 44% of the catalogue)."""
        items = torch.randint(0, self.item.num_embeddings, users.shape, device=users.device)
        redraw = self.interacted[users, items]
        while redraw.any():
            items[redraw] = torch.randint(
                0, self.item.num_embeddings, (int(redraw.sum()),), device=users.device
            )
            redraw = self.interacted[users, items]
        return items

    def training_loss(self, batch: dict) -> torch.Tensor:
        users, positives = batch["user_idx"], batch["item_idx"]
        u, pos, neg = self.user(users), self.item(positives), self.item(self.negatives(users))
        loss = -F.logsigmoid((u * pos).sum(-1) - (u * neg).sum(-1)).mean()
        if self.reg_weight:
            loss = loss + self.reg_weight * (u.square().sum() + pos.square().sum()
                                             + neg.square().sum()) / len(users)  # fmt: skip
        return loss


class ItemKNN(nn.Module):
    """score(u, j) = Σ_{i ∈ train(u)} sim(i, j), where sim(i, j) = |U_i ∩ U_j| / (√|U_i| √|U_j| +
    shrink) is kept only for j's k most similar items i ≠ j (RecBole's ItemKNN). Nothing trains."""

    def __init__(self, interacted: torch.Tensor, k: int = 100, shrink: float = 0.0):
        super().__init__()
        x = interacted.float()
        norms = x.sum(0).sqrt()
        similarity = (x.T @ x) / (norms[:, None] * norms[None, :] + shrink + 1e-6)
        similarity.fill_diagonal_(0.0)
        top = similarity.topk(min(k, len(similarity) - 1), dim=0)  # per column j: its neighbours
        weights = torch.zeros_like(similarity).scatter_(0, top.indices, top.values)
        self.register_buffer("interacted", x, persistent=False)
        self.register_buffer("weights", weights, persistent=False)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.interacted[batch["user_idx"]] @ self.weights  # (batch, n_items)


class FactorizationMachine(nn.Module):
    """Rendle (2010), 2-way: b + Σ_f w_f + Σ_{f<g} ⟨v_f, v_g⟩ over the example's features (the
    user's and the item's, ``models/features.py``), computed as ½ Σ_d [(Σ_f v_fd)² − Σ_f v_fd²].
    One score per (user, item) pair, trained with the task's loss (BCE or MSE)."""

    def __init__(
        self, user_features: torch.Tensor, item_features: torch.Tensor, size: int, dim: int
    ):
        super().__init__()
        self.register_buffer("user_features", user_features, persistent=False)
        self.register_buffer("item_features", item_features, persistent=False)
        self.weight = nn.Embedding(size, 1, padding_idx=0)
        self.factors = nn.Embedding(size, dim, padding_idx=0)
        self.bias = nn.Parameter(torch.zeros(1))
        nn.init.zeros_(self.weight.weight)
        nn.init.normal_(self.factors.weight, std=0.01)
        with torch.no_grad():
            self.factors.weight[0].zero_()  # padding: no feature, no contribution

    def forward(self, batch: dict) -> torch.Tensor:
        ids = torch.cat([self.user_features[batch["user_idx"]],
                         self.item_features[batch["item_idx"]]], dim=1)  # fmt: skip
        v = self.factors(ids)  # (batch, fields, dim)
        pairs = 0.5 * (v.sum(1).square() - v.square().sum(1)).sum(1)
        return (self.bias + self.weight(ids).sum((1, 2)) + pairs)[:, None]


class SASRec(nn.Module):
    """Self-attentive sequential recommendation (Kang & McAuley, 2018), cross-entropy variant.

    A causal Transformer reads the user's recent item ids (oldest first, left-padded with 0); the
    last position's state scores every catalogue item through the shared item embeddings.

    With ``text`` (one fixed vector per item from a language model: models/item_text.py), an
    item's embedding is its id vector plus a trained linear map of its text vector, at the input
    and in the scoring alike (text + ID fusion at the item, as in TedRec or UniSRec with ids).
    ``ids=False`` drops the id vectors: items are their text alone (the ablation that shows what
    the text carries by itself).
    """

    def __init__(
        self,
        n_items: int,
        max_len: int,
        dim: int = 64,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.2,
        text: torch.Tensor | None = None,
        ids: bool = True,
    ):
        super().__init__()
        if not ids and text is None:
            raise ValueError("SASRec without id vectors needs the items' text")
        self.dim = dim
        # index 0 = padding; without ids, no table at all (DDP rejects parameters with no gradient)
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=0) if ids else None
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
        ):  # unit scale after the √dim factor; logits ~ N(0, 1)
            if table is not None:
                nn.init.normal_(table.weight, std=dim**-0.5)
        if self.item is not None:
            with torch.no_grad():
                self.item.weight[0].zero_()
        self.text_project = None
        if text is not None:  # saved with the weights: a checkpoint scores with the text it saw
            self.register_buffer("text", text.float())
            self.text_project = nn.Linear(text.shape[1], dim)

    def item_vectors(self) -> torch.Tensor:
        """(n_items + 1, dim): row 0 the padding (zero), then each item's embedding."""
        if self.text_project is None:
            return self.item.weight
        from_text = self.text_project(self.text)
        from_text = torch.cat([torch.zeros_like(from_text[:1]), from_text])
        return from_text if self.item is None else self.item.weight + from_text

    def id_vectors(self) -> dict[str, torch.Tensor]:
        # a user is their sequence: no vector of their own
        return {"items": self.item_vectors()[1:]}

    def forward(self, batch: dict) -> torch.Tensor:
        seq = batch["history_idx"]  # (batch, max_len), 0 = padding
        length = seq.shape[1]
        items = self.item_vectors()
        x = items[seq] * self.dim**0.5 + self.position.weight[:length]
        causal = torch.triu(
            torch.ones(length, length, dtype=torch.bool, device=seq.device), diagonal=1
        )
        real = (seq != 0).unsqueeze(-1)  # padded positions carry zeros (as in the original SASRec);
        h = self.encoder(
            self.dropout(x) * real, mask=causal
        )  # no key mask: a fully masked row is NaN
        last = self.norm(h[:, -1])
        return last @ items[1:].T  # (batch, n_items)
