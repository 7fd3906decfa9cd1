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
from promptrec.models.baselines import BPR, FactorizationMachine, ItemKNN, MatrixFactorization
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


def test_bpr_loss_falls_and_negatives_avoid_the_users_items():
    torch.manual_seed(0)
    interacted = torch.zeros(20, 30)
    interacted[torch.arange(20), torch.arange(20) % 5] = 1  # user u has item u % 5
    interacted[0, 5:29] = 1  # user 0 has every item but 29
    bpr = BPR(interacted, 8)
    assert not any(n.endswith("bias") for n, _ in bpr.named_parameters())  # textbook: p_u·q_i
    negatives = bpr.negatives(torch.zeros(500, dtype=torch.long))
    assert (negatives[(negatives < 5)] != 0).all() and set(negatives.tolist()) <= {1, 2, 3, 4, 29}
    users = torch.randint(0, 20, (2000,))
    assert not interacted[users, bpr.negatives(users)].bool().any()
    batch = {"user_idx": torch.arange(20), "item_idx": torch.arange(20) % 5}
    optimizer = torch.optim.Adam(bpr.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        loss = bpr.training_loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert bpr(batch).shape == (20, 30)
    u, q = bpr.user.weight[:2], bpr.item.weight
    torch.testing.assert_close(bpr({"user_idx": torch.arange(2)}), u @ q.T)


def test_bpr_regularises_the_embeddings_the_batch_used():
    torch.manual_seed(0)
    plain, regular = BPR(torch.zeros(4, 6), 3), BPR(torch.zeros(4, 6), 3, reg_weight=0.5)
    regular.load_state_dict(plain.state_dict())
    batch = {"user_idx": torch.tensor([0, 1]), "item_idx": torch.tensor([2, 3])}
    torch.manual_seed(1)
    base = plain.training_loss(batch)
    torch.manual_seed(1)
    negatives = plain.negatives(batch["user_idx"])
    torch.manual_seed(1)
    used = [plain.user(batch["user_idx"]), plain.item(batch["item_idx"]), plain.item(negatives)]
    expected = base + 0.5 * sum(t.square().sum() for t in used) / 2
    torch.testing.assert_close(regular.training_loss(batch), expected)


def test_item_knn_by_hand():
    # users × items: u0 has {0, 1}, u1 has {0, 1, 2}, u2 has {2}
    x = torch.tensor([[1.0, 1, 0], [1, 1, 1], [0, 0, 1]])
    knn = ItemKNN(x, k=1)
    # cosine: sim(0,1) = 2/(√2·√2) = 1; sim(0,2) = sim(1,2) = 1/(√2·√2) = 0.5
    # k=1: item 0 keeps neighbour 1 (1.0), item 1 keeps 0 (1.0), item 2 keeps 0 (tie → first, 0.5)
    torch.testing.assert_close(knn.weights, torch.tensor([[0, 1, 0.5], [1, 0, 0], [0, 0, 0]]),
                               atol=1e-5, rtol=0)  # fmt: skip
    # u2 (item 2): item 0 scores 0 (2 is not 0's neighbour), item 2 itself 0 (no self-similarity)
    scores = knn({"user_idx": torch.tensor([0, 2])})
    torch.testing.assert_close(scores, torch.tensor([[1.0, 1, 0.5], [0, 0, 0]]), atol=1e-5, rtol=0)


def test_item_knn_matches_an_independent_loop():
    rng = np.random.default_rng(0)
    x = (rng.random((300, 25)) < 0.3).astype(np.float64)  # enough users that no k-th place ties
    k, shrink = 5, 2.0
    expected = np.zeros((25, 25))
    for j in range(25):  # each item's k most similar other items, RecBole's formula
        sims = np.array([x[:, i] @ x[:, j] / (np.sqrt(x[:, i].sum() * x[:, j].sum()) + shrink + 1e-6)
                         if i != j else 0.0 for i in range(25)])  # fmt: skip
        for i in np.argsort(-sims, kind="stable")[:k]:
            expected[i, j] = sims[i]
    knn = ItemKNN(torch.tensor(x, dtype=torch.float32), k=k, shrink=shrink)
    scores = knn({"user_idx": torch.arange(300)}).double().numpy()
    np.testing.assert_allclose(scores, x @ expected, atol=1e-5)


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
     (["model=sasrec", "task=next_item", "task.targets_per_user=null"], "test/ndcg@10"),
     (["model=fm", "task=preference"], "test/auc"), (["model=fm", "task=rating"], "test/rmse")],
    ids=["mf-rating", "mf-preference", "bpr-next_item", "sasrec-next_item", "fm-preference", "fm-rating"],
)  # fmt: skip
def test_id_baselines_train_end_to_end(tiny_model_dir, data_dir, tmp_path, overrides, key):
    saved, _ = _run(
        tiny_model_dir, data_dir, tmp_path, *overrides, "trainer.max_epochs=2", "tuning.lr=0.01"
    )
    assert key in saved and np.isfinite(saved[key])
    assert saved["params/trainable"] > 0 and saved["model/kind"] == overrides[0].split("=")[1]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["model=pop", "task=rating"], "use it with task=next_item"),
     (["model=mf", "tuning=lora"], "applies to language models"),
     (["model=bpr", "task=preference"], "model=bpr ranks the catalogue"),
     (["model=itemknn", "task=rating"], "model=itemknn ranks the catalogue"),
     (["model=itemknn", "task=next_item", "model.k=0"], "model.k=0"),
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


def test_factorization_machine_equals_the_sum_over_feature_pairs():
    torch.manual_seed(0)
    users = torch.tensor([[1, 2, 0], [3, 2, 4]])  # feature ids, 0 = padding
    items = torch.tensor([[5, 6, 7], [8, 0, 0]])
    fm = FactorizationMachine(users, items, size=9, dim=4)
    with torch.no_grad():
        fm.weight.weight.normal_()
        fm.weight.weight[0].zero_()
        fm.bias.fill_(0.3)
    batch = {"user_idx": torch.tensor([0, 1, 1]), "item_idx": torch.tensor([1, 0, 1])}
    expected = []
    for u, i in zip(batch["user_idx"], batch["item_idx"]):
        ids = [f for f in torch.cat([users[u], items[i]]).tolist() if f]
        v, w = fm.factors.weight, fm.weight.weight[:, 0]
        pairs = sum(v[a] @ v[b] for n, a in enumerate(ids) for b in ids[n + 1 :])
        expected.append(0.3 + sum(w[f] for f in ids) + pairs)
    torch.testing.assert_close(fm(batch)[:, 0], torch.stack(expected))


def test_feature_table_gives_each_user_and_item_its_side_features(atomic_dir):
    from promptrec.data.catalog import Catalog
    from promptrec.models.features import feature_table

    data = load_atomic(atomic_dir, "ml-100k")
    split = leave_one_out(select_users(data.interactions, 30))
    catalog = Catalog.build(data.items, split)
    table = feature_table(catalog, data.users, data.items)
    assert table.user.shape == (30, 4)  # id, age band, gender, occupation
    assert table.item.shape[0] == 1682 and table.item.shape[1] == 2 + 6  # id, decade, ≤ 6 genres
    # two users of the same gender share that feature id; their own ids differ
    assert table.user[:, 0].unique().numel() == 30
    toy_story = table.item[catalog.item_index["1"]]
    assert int((toy_story > 0).sum()) == 2 + 3  # Animation, Children's, Comedy
    ids_only = feature_table(catalog, data.users, data.items, side=False)
    assert ids_only.user.shape == (30, 1) and ids_only.item.shape == (1682, 1)
    assert ids_only.size == 30 + 1682 + 1


@pytest.mark.slow
def test_item_knn_ranks_without_training(tiny_model_dir, data_dir, tmp_path):
    saved, objects = _run(tiny_model_dir, data_dir, tmp_path, "experiment=baseline_itemknn")
    assert saved["params/trainable"] == 0 and np.isfinite(saved["test/ndcg@10"])
    assert objects["module"].model.weights.shape == (1682, 1682)
