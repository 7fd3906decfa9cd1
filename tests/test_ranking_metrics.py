"""Top-K metrics: hand-computed cases, edge cases, and an independent NumPy implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from promptrec.metrics.ranking import CatalogueMetrics, TopKMetrics, rank_catalogue


def _score(scores, exclude, targets, ks, popularity=None):
    scores = torch.tensor(scores, dtype=torch.float32)
    n_items = scores.shape[1]
    popularity = (
        torch.ones(n_items) if popularity is None else torch.tensor(popularity, dtype=torch.float64)
    )
    items, valid = rank_catalogue(
        scores, [torch.tensor(e, dtype=torch.long) for e in exclude], max(ks)
    )
    metric = TopKMetrics(ks, popularity)
    metric.update(items, valid, torch.tensor(targets), torch.arange(len(targets)))
    return metric.compute(), items


def test_hand_computed_two_users():
    # user 0: scores rank items 3 > 1 > 0 > 2 > 4; item 3 was seen → ranking 1, 0, 2, 4; target 2 → rank 3
    # user 1: ranking 4, 0, 1, 2, 3; target 4 → rank 1
    scores = [[0.5, 0.8, 0.1, 0.9, 0.0], [0.4, 0.3, 0.2, 0.1, 0.9]]
    out, items = _score(scores, [[3], []], [2, 4], ks=[1, 3])
    assert items.tolist() == [[1, 0, 2], [4, 0, 1]]
    assert out["hr@1"] == pytest.approx(0.5) and out["hr@3"] == pytest.approx(1.0)
    assert out["ndcg@3"] == pytest.approx((1 / math.log2(4) + 1) / 2)
    assert out["mrr@3"] == pytest.approx((1 / 3 + 1) / 2) and out["map@3"] == pytest.approx(
        (1 / 3 + 1) / 2
    )
    assert out["precision@3"] == pytest.approx((1 / 3 + 1 / 3) / 2) and out[
        "recall@3"
    ] == pytest.approx(1.0)
    assert out["precision@1"] == pytest.approx(0.5)
    # top-3 lists hold items {0, 1, 2, 4}: 4 of 5 catalogue items
    assert out["coverage@3"] == pytest.approx(4 / 5) and out["coverage@1"] == pytest.approx(2 / 5)


def test_ties_are_broken_by_item_index_not_by_luck():
    out, items = _score([[1.0, 1.0, 1.0, 1.0]], [[]], [3], ks=[2])
    assert items.tolist() == [[0, 1]]
    assert out["hr@2"] == 0.0  # a constant scorer does not get the target into the list


def test_k_larger_than_the_remaining_catalogue():
    # 4 items, 2 seen → only 2 can be recommended; K = 3
    out, items = _score([[0.1, 0.9, 0.5, 0.3]], [[1, 2]], [0], ks=[3])
    assert items.tolist() == [[3, 0, -1]]
    assert out["hr@3"] == 1.0 and out["mrr@3"] == pytest.approx(0.5)
    assert out["precision@3"] == pytest.approx(
        1 / 3
    )  # precision divides by K, not by the list length


def test_a_user_whose_target_is_missed_counts_as_zero():
    out, _ = _score([[0.9, 0.1, 0.2], [0.9, 0.1, 0.2]], [[], []], [0, 1], ks=[1])
    assert out["hr@1"] == pytest.approx(0.5) and out["ndcg@1"] == pytest.approx(0.5)


def test_popularity_and_gini():
    # items recommended at K=1: user lists [0], [0], [1] → counts (2, 1, 0)
    scores = [[0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.1, 0.9, 0.0]]
    out, _ = _score(scores, [[], [], []], [0, 0, 0], ks=[1], popularity=[10.0, 4.0, 1.0])
    assert out["popularity@1"] == pytest.approx((10 + 10 + 4) / 3)
    # Gini of (0, 1, 2): 2·(1·0 + 2·1 + 3·2)/(3·3) − 4/3 = 16/9 − 12/9 = 4/9
    assert out["gini@1"] == pytest.approx(4 / 9)


def _numpy_reference(scores, exclude, targets, k):
    """Independent implementation: rank = 1 + #items scoring higher + #equal items with lower index."""
    hr, ndcg, mrr = [], [], []
    for row, seen, target in zip(scores, exclude, targets):
        allowed = np.ones(len(row), bool)
        allowed[seen] = False
        higher = np.sum(allowed & (row > row[target]))
        ties_before = np.sum(allowed[:target] & (row[:target] == row[target]))
        rank = 1 + higher + ties_before
        hit = rank <= k
        hr.append(float(hit))
        ndcg.append(hit / np.log2(rank + 1))
        mrr.append(hit / rank)
    return {
        "hr": np.mean(hr),
        "ndcg": np.mean(ndcg),
        "mrr": np.mean(mrr),
        "precision": np.mean(hr) / k,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_numpy_implementation_on_random_data(seed):
    rng = np.random.default_rng(seed)
    users, n_items, k = 64, 50, 10
    scores = rng.integers(0, 20, size=(users, n_items)).astype(np.float32)  # many ties on purpose
    exclude = [rng.choice(n_items, size=rng.integers(0, 30), replace=False) for _ in range(users)]
    targets = [rng.choice(np.setdiff1d(np.arange(n_items), seen)) for seen in exclude]
    out, _ = _score(scores.tolist(), [e.tolist() for e in exclude], targets, ks=[k])
    ref = _numpy_reference(scores, exclude, targets, k)
    for name in ("hr", "ndcg", "mrr", "precision"):
        assert out[f"{name}@{k}"] == pytest.approx(ref[name], abs=1e-6), name
    assert out[f"map@{k}"] == pytest.approx(ref["mrr"], abs=1e-6)
    assert out[f"recall@{k}"] == pytest.approx(ref["hr"], abs=1e-6)


def test_empty_evaluation_raises():
    with pytest.raises(ValueError, match="no recommendation lists"):
        CatalogueMetrics(5, torch.ones(3)).compute()
    with pytest.raises(ValueError, match="positive"):
        TopKMetrics([0], torch.ones(3))
