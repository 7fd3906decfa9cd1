"""Binary metrics against hand-computed values and an independent implementation (scikit-learn)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from promptrec.metrics import BinaryLogLoss, best_f1_threshold, binary_metrics, rank_auc
from promptrec.metrics import binary as binary_module


def _compute(logits, labels):
    m = binary_metrics(prefix="test/")
    m.update(torch.tensor(logits), torch.tensor(labels))
    return {k: float(v) for k, v in m.compute().items()}


def test_hand_computed_case():
    # p = sigmoid(logit): 0.881, 0.269, 0.622, 0.047 for labels 1, 0, 0, 1
    logits, labels = [2.0, -1.0, 0.5, -3.0], [1.0, 0.0, 0.0, 1.0]
    out = _compute(logits, labels)
    # AUC: positive/negative pairs (2 × 2): (2.0 > -1.0) ✓, (2.0 > 0.5) ✓, (-3.0 > ·) ✗ ✗ → 2/4
    assert out["test/auc"] == pytest.approx(0.5)
    # predicted positive at p > 0.5: logits 2.0 (TP) and 0.5 (FP) → P = 1/2; R = 1/2; F1 = 1/2; acc = 2/4
    assert out["test/precision"] == pytest.approx(0.5)
    assert out["test/recall"] == pytest.approx(0.5)
    assert out["test/f1"] == pytest.approx(0.5)
    assert out["test/accuracy"] == pytest.approx(0.5)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = (
        -(
            math.log(sig(2.0))
            + math.log(1 - sig(-1.0))
            + math.log(1 - sig(0.5))
            + math.log(sig(-3.0))
        )
        / 4
    )
    assert out["test/logloss"] == pytest.approx(expected, rel=1e-9)


def test_perfect_ranking_gives_auc_one():
    assert _compute([3.0, 1.0, -1.0, -2.0], [1.0, 1.0, 0.0, 0.0])["test/auc"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scikit_learn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 500).astype(np.float32)
    logits = (rng.normal(size=500) + labels * 0.8).astype(np.float32)
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    pred = (probs > 0.5).astype(int)
    out = _compute(logits.tolist(), labels.tolist())
    assert out["test/auc"] == pytest.approx(skm.roc_auc_score(labels, probs), abs=1e-6)
    assert out["test/logloss"] == pytest.approx(skm.log_loss(labels, probs), rel=1e-6)
    assert out["test/accuracy"] == pytest.approx(skm.accuracy_score(labels, pred), abs=1e-6)
    assert out["test/precision"] == pytest.approx(skm.precision_score(labels, pred), abs=1e-6)
    assert out["test/recall"] == pytest.approx(skm.recall_score(labels, pred), abs=1e-6)
    assert out["test/f1"] == pytest.approx(skm.f1_score(labels, pred), abs=1e-6)


def test_logloss_accumulates_over_batches():
    metric = BinaryLogLoss()
    metric.update(torch.tensor([2.0]), torch.tensor([1.0]))
    metric.update(torch.tensor([-1.0, 0.5]), torch.tensor([0.0, 1.0]))
    probs = 1 / (1 + np.exp(-np.array([2.0, -1.0, 0.5])))
    assert float(metric.compute()) == pytest.approx(skm.log_loss([1, 0, 1], probs), rel=1e-9)


def test_empty_input_raises_instead_of_returning_zero():
    with pytest.raises(ValueError, match="no examples"):
        BinaryLogLoss().compute()
    with pytest.raises(ValueError, match="empty"):
        binary_metrics().update(torch.tensor([]), torch.tensor([]))


def test_gauc_weights_users_by_their_examples_and_skips_one_class_users():
    from promptrec.metrics import grouped_auc

    scores = torch.tensor([0.9, 0.1, 0.4, 0.2, 0.3, 0.8, 0.5])
    labels = torch.tensor([1, 0, 0, 1, 1, 0, 1])
    users = ["a", "a", "b", "b", "b", "c", "c"]
    # a: AUC 1 (2 examples); b: positives 0.2, 0.3 vs negative 0.4 → 0/2 → 0 (3 examples); c: 0 (2)
    value, n = grouped_auc(scores, labels, users)
    assert n == 3 and value == pytest.approx((1 * 2 + 0 * 3 + 0 * 2) / 7)
    per_user = [
        skm.roc_auc_score([1, 0], [0.9, 0.1]),
        skm.roc_auc_score([0, 1, 1], [0.4, 0.2, 0.3]),
    ]
    assert value == pytest.approx((per_user[0] * 2 + per_user[1] * 3 + 0 * 2) / 7)
    assert grouped_auc(torch.tensor([0.3, 0.6]), torch.tensor([1, 0]), ["a", "b"]) == (None, 0)


def test_ece_matches_a_hand_binned_computation():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 400).astype(np.float32)
    logits = (rng.normal(size=400) + labels).astype(np.float32)
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    bins = np.clip(np.ceil(probs * 10).astype(int) - 1, 0, 9)  # right-closed bins, as torchmetrics
    ece = sum(
        abs(probs[bins == b].mean() - labels[bins == b].mean()) * (bins == b).mean()
        for b in range(10)
        if (bins == b).any()
    )
    assert _compute(logits.tolist(), labels.tolist())["test/ece"] == pytest.approx(ece, abs=1e-5)


def test_auc_ranks_saturated_logits_instead_of_tying_them():
    """float32 sigmoid maps every logit ≥ ~17 to 1.0; ranking those gave AUC 0.5."""
    # pairs (positive, negative): (18 > 17) ✓, (18 > 19) ✗, (20 > 17) ✓, (20 > 19) ✓ → 3/4
    assert _compute([17.0, 18.0, 19.0, 20.0], [0.0, 1.0, 0.0, 1.0])["test/auc"] == 0.75
    assert rank_auc(torch.tensor([40.0, 50.0]), torch.tensor([0, 1])) == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_rank_auc_counts_ties_half_like_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    scores = rng.integers(0, 6, 300).astype(np.float64)  # many ties
    assert rank_auc(torch.tensor(scores), torch.tensor(labels)) == pytest.approx(
        skm.roc_auc_score(labels, scores), abs=1e-12
    )
    assert math.isnan(rank_auc(torch.tensor([1.0, 2.0]), torch.tensor([1, 1])))  # undefined, not 0


def test_threshold_is_strictly_above_one_half_as_documented():
    assert "p > 0.5" in binary_module.__doc__
    out = _compute([0.0, 1e-6], [1.0, 1.0])  # p = 0.5 exactly: "dislike"; just above: "like"
    assert out["test/recall"] == 0.5 and out["test/accuracy"] == 0.5


def test_best_f1_threshold_by_hand_and_against_scikit_learn():
    # logits -2, -1, 0.5, 3 with labels 0, 1, 1, 1: cutting below -1 (at -1.5) predicts 3 of 3
    # positives and no negative: F1 = 1. Cutting below -2 gives F1 = 6/7; above -1, F1 = 0.8.
    logits, labels = torch.tensor([-2.0, -1.0, 0.5, 3.0]), torch.tensor([0, 1, 1, 1])
    assert best_f1_threshold(logits, labels) == -1.5
    assert best_f1_threshold(logits, torch.ones(4)) is None  # one class: nothing to choose
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    x = rng.normal(size=400) + y
    precision, recall, _ = skm.precision_recall_curve(y, x)
    best = np.nanmax(2 * precision * recall / (precision + recall))
    cut = best_f1_threshold(torch.tensor(x), torch.tensor(y))
    assert skm.f1_score(y, x > cut) == pytest.approx(best, abs=1e-12)
