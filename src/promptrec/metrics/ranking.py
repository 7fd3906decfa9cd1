"""Top-K metrics for next-item recommendation over the full catalogue.

Each evaluated user has one held-out target item. With r the target's 1-based rank among the
items the user has not interacted with before, and hit = [r ≤ K]:

    HR@K = hit            NDCG@K = hit / log2(r + 1)      MRR@K = hit / r
    MAP@K = hit / r       Precision@K = hit / K           Recall@K = hit

(MAP and Recall reduce to these because there is one relevant item.) Over all users' top-K lists:

    Coverage@K   = |distinct recommended items| / |catalogue|
    Popularity@K = mean training-interaction count of the recommended items (lower = more novel)
    Gini@K       = Gini coefficient of how often each catalogue item is recommended (0 = even)

Ranking is deterministic: equal scores are ordered by item index (a stable sort), so a model that
gives every item the same score does not get lucky from the order of a sort.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.retrieval import (
    RetrievalHitRate,
    RetrievalMAP,
    RetrievalMRR,
    RetrievalNormalizedDCG,
    RetrievalPrecision,
    RetrievalRecall,
)

RETRIEVAL = {
    "hr": RetrievalHitRate,
    "ndcg": RetrievalNormalizedDCG,
    "mrr": RetrievalMRR,
    "map": RetrievalMAP,
    "precision": RetrievalPrecision,
    "recall": RetrievalRecall,
}


def rank_catalogue(
    scores: torch.Tensor, exclude: Sequence[torch.Tensor], k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` item indices per row after removing each row's ``exclude`` items.

    Returns (items, valid): ``items`` is (rows, k) int64; ``valid`` marks real entries (a user who
    has seen all but a few items gets a shorter list, padded with -1).
    """
    scores = scores.detach().float().clone()
    lengths = torch.tensor([len(items) for items in exclude], dtype=torch.long)
    if int(lengths.sum()) > 0:  # one indexed write for every (row, item) pair
        rows = torch.repeat_interleave(torch.arange(len(exclude)), lengths)
        items = torch.cat([torch.as_tensor(e, dtype=torch.long) for e in exclude])
        scores[rows, items] = float("-inf")
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    valid = torch.gather(scores, 1, order) > float("-inf")
    return torch.where(valid, order, torch.full_like(order, -1)), valid


class CatalogueMetrics(Metric):
    """Coverage, popularity and Gini of top-K lists; item counts add up across DDP ranks."""

    full_state_update = False

    def __init__(self, k: int, item_popularity: torch.Tensor, **kwargs):
        super().__init__(**kwargs)
        self.k = k
        self.register_buffer("popularity", item_popularity.double(), persistent=False)
        n_items = len(item_popularity)
        self.add_state(
            "counts", default=torch.zeros(n_items, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("lists", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, topk_items: torch.Tensor) -> None:
        items = topk_items[:, : self.k]
        items = items[items >= 0]
        self.counts += torch.bincount(items, minlength=len(self.counts)).double()
        self.lists += topk_items.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        if self.lists == 0 or self.counts.sum() == 0:
            raise ValueError(f"CatalogueMetrics@{self.k}: no recommendation lists were evaluated.")
        counts, n = self.counts, len(self.counts)
        ascending = torch.sort(counts).values
        index = torch.arange(1, n + 1, dtype=torch.float64, device=counts.device)
        gini = (2 * (index * ascending).sum()) / (n * counts.sum()) - (n + 1) / n
        return {
            f"coverage@{self.k}": (counts > 0).double().mean(),
            f"popularity@{self.k}": (counts * self.popularity).sum() / counts.sum(),
            f"gini@{self.k}": gini,
        }


class TopKMetrics:
    """HR/NDCG/MRR/MAP/Precision/Recall (torchmetrics) + catalogue metrics, for every K in ``ks``."""

    def __init__(
        self, ks: Sequence[int], item_popularity: torch.Tensor, prefix: str = "", **kwargs
    ):
        if not ks or min(ks) <= 0:
            raise ValueError(f"top-K cut-offs must be positive integers, got {list(ks)}")
        self.ks, self.prefix = sorted(ks), prefix
        self.retrieval = MetricCollection(
            {f"{name}@{k}": cls(top_k=k, empty_target_action="neg", **kwargs) for name, cls in RETRIEVAL.items() for k in self.ks},
            compute_groups=False,
        )  # fmt: skip
        self.catalogue = [CatalogueMetrics(k, item_popularity, **kwargs) for k in self.ks]

    def update(
        self,
        topk_items: torch.Tensor,
        valid: torch.Tensor,
        targets: torch.Tensor,
        queries: torch.Tensor,
    ) -> None:
        """``topk_items`` (users, max K) ranked lists; ``targets`` (users,) the held-out item index.

        Each list is scored as a query whose documents are its items with descending, unique
        scores; a target outside the list counts as a miss for every metric.
        """
        if topk_items.shape[0] == 0:
            raise ValueError("TopKMetrics.update got no users")
        length = topk_items.shape[1]
        valid = valid.clone()
        valid[~valid.any(dim=1), 0] = True  # an empty list still counts as a user with a miss
        preds = torch.arange(length, 0, -1, dtype=torch.float32).expand_as(topk_items)
        relevant = (topk_items == targets[:, None]) & valid
        indexes = queries.long()[:, None].expand_as(topk_items)
        self.retrieval.update(preds[valid], relevant[valid], indexes=indexes[valid])
        for metric in self.catalogue:
            metric.update(topk_items)

    def compute(self) -> dict[str, float]:
        values = {k: float(v) for k, v in self.retrieval.compute().items()}
        for metric in self.catalogue:
            values.update({k: float(v) for k, v in metric.compute().items()})
        return {f"{self.prefix}{k}": values[k] for k in sorted(values)}
