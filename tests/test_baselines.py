"""ID-based baselines: shapes and losses, popularity ranking checked independently, end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import compose_config, tiny_overrides
from promptrec.data.loaders import load_atomic
from promptrec.data.splits import leave_one_out, select_users
from promptrec.errors import ConfigError
from promptrec.models.baselines import MatrixFactorization
from promptrec.runtime.training import train


def test_mf_outputs_match_its_pair_scores():
    torch.manual_seed(0)
    mf = MatrixFactorization(5, 7, 4, catalog_output=True)
    batch = {"user_idx": torch.tensor([0, 3]), "item_idx": torch.tensor([2, 6])}
    catalog = mf(batch)
    assert catalog.shape == (2, 7)
    assert torch.allclose(
        catalog[torch.arange(2), batch["item_idx"]], mf.score(batch["user_idx"], batch["item_idx"])
    )
    pair = MatrixFactorization(5, 7, 4, catalog_output=False)
    assert pair(batch).shape == (2, 1)


def test_bpr_loss_falls():
    torch.manual_seed(0)
    mf = MatrixFactorization(20, 30, 8, catalog_output=True, objective="bpr")
    batch = {"user_idx": torch.arange(20), "item_idx": torch.arange(20) % 5}
    optimizer = torch.optim.Adam(mf.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        loss = mf.training_loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert MatrixFactorization(2, 2, 2, catalog_output=False).training_loss(batch) is None


def _run(tiny_model_dir, data_dir, tmp_path, *overrides):
    """A baseline run: the language model's settings (model.name_or_path) are not its own."""
    base = [
        o for o in tiny_overrides(tiny_model_dir, data_dir, tmp_path) if not o.startswith("model.")
    ]
    cfg = compose_config("train", [*base, *overrides])
    metrics, objects = train(cfg)
    return json.loads((tmp_path / "run" / "metrics.json").read_text()), objects


@pytest.mark.slow
def test_popularity_matches_an_independent_ranking(tiny_model_dir, data_dir, atomic_dir, tmp_path):
    saved, _ = _run(tiny_model_dir, data_dir, tmp_path, "model=pop", "task=next_item")
    # independent: rank by training count (ties: catalogue order), skip seen items, look for the target
    data = load_atomic(atomic_dir, "ml-100k")
    split = leave_one_out(select_users(data.interactions, 30))
    counts = split[split.split == "train"].item_id.value_counts()
    order = sorted(
        data.items.item_id, key=lambda i: (-counts.get(i, 0), list(data.items.item_id).index(i))
    )
    hits = {5: [], 10: []}
    for _, rows in split.groupby("user_id"):
        seen, target = (
            set(rows.item_id[rows.split != "test"]),
            rows.item_id[rows.split == "test"].iloc[0],
        )
        ranked = [i for i in order if i not in seen]
        for k in hits:
            hits[k].append(target in ranked[:k])
    assert saved["test/hr@5"] == pytest.approx(np.mean(hits[5]))
    assert saved["test/hr@10"] == pytest.approx(np.mean(hits[10]))
    assert saved["params/trainable"] == 0
    topk = pd.read_csv(tmp_path / "run" / "topk.csv", dtype=str)
    assert len(topk) == 30


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "key"),
    [(["model=mf", "task=rating"], "test/rmse"), (["model=mf", "task=preference"], "test/auc"),
     (["model=bpr", "task=next_item", "task.targets_per_user=null"], "test/ndcg@10"),
     (["model=sasrec", "task=next_item", "task.targets_per_user=null"], "test/ndcg@10")],
    ids=["mf-rating", "mf-preference", "bpr-next_item", "sasrec-next_item"],
)  # fmt: skip
def test_id_baselines_train_end_to_end(tiny_model_dir, data_dir, tmp_path, overrides, key):
    saved, _ = _run(
        tiny_model_dir, data_dir, tmp_path, *overrides, "trainer.max_epochs=2", "tuning.lr=0.01"
    )
    assert key in saved and np.isfinite(saved[key])
    assert saved["params/trainable"] > 0 and saved["model/kind"] == overrides[0].split("=")[
        1
    ].replace("bpr", "mf")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["model=pop", "task=rating"], "use it with task=next_item"),
     (["model=mf", "tuning=lora"], "applies to language models"),
     (["model=bpr", "task=preference"], "objective=bpr ranks items"),
     (["model=sasrec", "task=rating"], "predicts the next item")],
)  # fmt: skip
def test_impossible_baseline_combinations_are_rejected(
    tiny_model_dir, data_dir, tmp_path, overrides, message
):
    with pytest.raises(ConfigError, match=message):
        _run(tiny_model_dir, data_dir, tmp_path, *overrides)


def test_sasrec_scores_the_catalogue_and_learns_a_sequence():
    from promptrec.models.baselines import SASRec

    torch.manual_seed(0)
    model = SASRec(n_items=12, max_len=4, dim=16, layers=1, heads=2, dropout=0.0)
    # item i+1 always follows item i; histories are left-padded with 0
    history = torch.tensor([[0, 1, 2, 3], [0, 0, 4, 5], [0, 0, 0, 0], [6, 7, 8, 9]])
    target = torch.tensor([3, 5, 0, 9])  # catalogue indices (item id + 1 − 1)
    batch = {"history_idx": history}
    out = model(batch)
    assert out.shape == (4, 12) and torch.isfinite(out).all()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    first = float(torch.nn.functional.cross_entropy(out, target))
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(batch), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert float(loss) < 0.2 * first
    # causal: changing an earlier item changes the output, the future cannot leak (last is the query)
    assert not torch.allclose(
        model({"history_idx": torch.tensor([[0, 1, 2, 3]])}),
        model({"history_idx": torch.tensor([[0, 5, 2, 3]])}),
    )
