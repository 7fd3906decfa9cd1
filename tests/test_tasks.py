"""Rating and next-item tasks: examples, exclusions, losses and metrics; each task end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from sklearn import metrics as skm

from conftest import compose_config, tiny_overrides
from promptrec.data.catalog import Catalog
from promptrec.data.loaders import load_atomic
from promptrec.data.splits import leave_one_out, select_users
from promptrec.errors import ConfigError, DataError
from promptrec.runtime.config import on_own_schema, validate
from promptrec.runtime.training import train
from promptrec.tasks import build_task


def _task(**cfg):
    base = {
        "like_threshold": 4.0,
        "rating_levels": 5,
        "ks": [1, 3],
        "targets_per_user": None,
        "head": None,
        "eval_negatives": None,
        "mask_history": True,
    }
    return build_task(OmegaConf.create({**base, **cfg}))


@pytest.fixture(scope="module")
def small(atomic_dir):
    data = load_atomic(atomic_dir, "ml-100k")
    return data, leave_one_out(select_users(data.interactions, 25))


def test_rating_regression_predicts_deviation_from_the_training_mean(small):
    data, split = small
    task = _task(name="rating", head="regression")
    task.prepare(Catalog.build(data.items, split), split)
    assert task.center == pytest.approx(split[split.split == "train"].rating.mean())
    ex = task.examples(split, "test", history_len=5)
    assert (ex.labels == ex.rating).all() and task.num_outputs == 1
    # outputs of zero predict the mean; RMSE/MAE by hand
    metrics, table = task.evaluate("test", torch.zeros(len(ex), 1), ex)
    errors = ex.rating.to_numpy() - task.center
    assert metrics["test/rmse"] == pytest.approx(math.sqrt(np.mean(errors**2)), rel=1e-5)
    assert metrics["test/mae"] == pytest.approx(np.mean(np.abs(errors)), rel=1e-5)
    assert table.predicted.to_numpy() == pytest.approx(np.full(len(ex), task.center))


def test_rating_classes_metrics_match_scikit_learn(small):
    data, split = small
    task = _task(name="rating", head="classes")
    task.prepare(Catalog.build(data.items, split), split)
    ex = task.examples(split, "test", history_len=5)
    assert sorted(set(ex.labels)) <= [0, 1, 2, 3, 4] and task.num_outputs == 5
    outputs = torch.randn(len(ex), 5, generator=torch.Generator().manual_seed(0))
    metrics, table = task.evaluate("test", outputs, ex)
    truth, pred = ex.rating.astype(int).to_numpy(), outputs.argmax(1).numpy() + 1
    assert metrics["test/accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
    labels = [1, 2, 3, 4, 5]
    assert metrics["test/f1"] == pytest.approx(
        skm.f1_score(truth, pred, labels=labels, average="macro", zero_division=0)
    )
    expected = (outputs.softmax(1) @ torch.arange(1.0, 6.0)).numpy()
    assert metrics["test/rmse"] == pytest.approx(
        math.sqrt(np.mean((expected - truth) ** 2)), rel=1e-5
    )
    assert (table.predicted_class.to_numpy() == pred).all()


def test_rating_classes_reject_half_stars(small):
    data, split = small
    task = _task(name="rating", head="classes")
    with pytest.raises(DataError, match="whole-star ratings"):
        task.prepare(Catalog.build(data.items, split), split.assign(rating=split.rating - 0.5))
    with pytest.raises(ConfigError, match="task.head='catalog' is not a rating head"):
        _task(name="rating", head="catalog")


def test_next_item_catalogue_and_popularity_come_from_training_only(small):
    data, split = small
    task = _task(name="next_item", head="catalog")
    task.prepare(Catalog.build(data.items, split), split)
    assert task.num_outputs == 1682 and task.item_ids[0] == "1"
    train_counts = split[split.split == "train"].item_id.value_counts()
    top = train_counts.index[0]
    assert task.popularity[task.index[top]] == train_counts.iloc[0]
    assert float(task.popularity.sum()) == (split.split == "train").sum()


def test_next_item_examples_and_exclusions(small):
    data, split = small
    task = _task(name="next_item", head="catalog", targets_per_user=2)
    task.prepare(Catalog.build(data.items, split), split)
    train_ex = task.examples(split, "train", history_len=5)
    assert train_ex.groupby("user_id").size().max() == 2 and train_ex.example_id.is_unique
    test_ex = task.examples(split, "test", history_len=5)
    for row in test_ex.itertuples():
        user = split[split.user_id == row.user_id]
        assert list(row.seen_items) == user.item_id.tolist()[:-1]  # everything before the target
        assert row.item_id not in row.seen_items
        assert task.item_ids[row.labels] == row.item_id


def test_next_item_evaluation_never_recommends_seen_items(small):
    data, split = small
    task = _task(name="next_item", head="catalog", ks=[10])
    task.prepare(Catalog.build(data.items, split), split)
    ex = task.examples(split, "test", history_len=5)
    scores = torch.zeros(len(ex), task.num_outputs)
    for r, seen in enumerate(
        ex.seen_items
    ):  # seen items get the highest scores: all must be skipped
        scores[r, [task.index[i] for i in seen]] = 100.0
    scores[0, int(ex.labels[0])] = 50.0  # user 0's target is the best unseen item
    metrics, table = task.evaluate("test", scores, ex)
    for items, seen in zip(table["items"], ex.seen_items):
        assert not set(items.split()) & set(seen)
    assert table["items"][0].split()[0] == ex.item_id[0]
    assert metrics["test/hr@10"] >= 1 / len(ex) - 1e-6 and len(table) == len(ex)


def test_next_item_without_history_mask_ranks_seen_items_too(small):
    """task.mask_history=false: RecBole's protocol for sequential models (nothing excluded)."""
    data, split = small
    task = _task(name="next_item", head="catalog", ks=[10], mask_history=False)
    task.prepare(Catalog.build(data.items, split), split)
    ex = task.examples(split, "test", history_len=5)
    scores = torch.zeros(len(ex), task.num_outputs)
    first_seen = [task.index[seen[0]] for seen in ex.seen_items]
    scores[torch.arange(len(ex)), first_seen] = 100.0  # a seen item scores highest
    metrics, table = task.evaluate("test", scores, ex)
    assert [items.split()[0] for items in table["items"]] == [s[0] for s in ex.seen_items]


def test_next_item_template_cannot_see_the_target(tiny_model_dir, data_dir, tmp_path):
    cfg = compose_config(
        "train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path), "task=next_item"]
    )
    cfg.prompt.templates.next_item = "{{ target.title }}"
    with pytest.raises(ConfigError, match="unknown field 'target'"):
        train(cfg)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "keys", "table"),
    [
        (["task=rating"], ["test/rmse", "test/mae"], "predictions.csv"),
        (
            ["task=rating", "task.head=classes"],
            ["test/rmse", "test/accuracy", "test/f1"],
            "predictions.csv",
        ),
        (
            ["task=next_item", "task.targets_per_user=2"],
            ["test/hr@10", "test/ndcg@20", "test/coverage@5", "test/gini@10"],
            "topk.csv",
        ),
        (
            ["task=next_item", "task.targets_per_user=2", "task.eval_negatives=50"],
            ["test/hr@10", "test/mrr@5"],
            "topk.csv",
        ),
    ],
    ids=["rating", "rating-classes", "next_item", "next_item-sampled"],
)
def test_each_task_trains_end_to_end(tiny_model_dir, data_dir, tmp_path, overrides, keys, table):
    cfg = compose_config("train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path), *overrides])
    metrics, _ = train(cfg)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in keys:
        assert key in saved and math.isfinite(saved[key]), key
    assert f"{cfg.task.monitor}_best" in saved
    rows = pd.read_csv(tmp_path / "run" / table, dtype=str)
    assert len(rows) == 30


def test_sampled_negatives_are_saved_untouched_and_reused(small, tmp_path):
    from promptrec.data.negatives import load_or_draw

    data, split = small
    catalog = Catalog.build(data.items, split)
    uniform = load_or_draw(split, "test", catalog, 50, "uniform", 0, tmp_path)
    assert len(uniform) == 25 and all(len(v) == 50 for v in uniform.values())
    touched = split.groupby("user_id").item_id.agg(set)
    for key, items in uniform.items():
        assert not set(items) & touched[key.split(":")[0]]
    saved = tmp_path / "negatives-test-uniform-N50-seed0.json"
    saved.write_text(saved.read_text().replace(uniform[next(iter(uniform))][0], "1"))
    assert (
        load_or_draw(split, "test", catalog, 50, "uniform", 0, tmp_path) != uniform
    )  # read back, not redrawn
    popular = load_or_draw(split, "test", catalog, 50, "popularity", 0, tmp_path)

    def mean_pop(drawn):
        return np.mean(
            [float(catalog.popularity[catalog.item_index[i]]) for v in drawn.values() for i in v]
        )

    assert mean_pop(popular) > 2 * mean_pop(uniform)


def test_sampled_evaluation_ranks_only_the_target_and_its_negatives(small, tmp_path):
    data, split = small
    task = _task(
        name="next_item",
        head="catalog",
        ks=[1],
        eval_negatives=20,
        negative_sampler="uniform",
        negative_seed=0,
    )
    task.prepare(Catalog.build(data.items, split), split, tmp_path)
    ex = task.examples(split, "test", history_len=5)
    scores = torch.full(
        (len(ex), task.num_outputs), 10.0
    )  # every non-candidate would beat the target
    for r, (user, position, target) in enumerate(zip(ex.user_id, ex.position, ex.labels)):
        candidates = [task.index[i] for i in task.negatives["test"][f"{user}:{position}"]]
        scores[r, candidates] = 0.0
        scores[r, int(target)] = 1.0
    metrics, table = task.evaluate("test", scores, ex)
    assert metrics["test/hr@1"] == 1.0 and (table["items"] == table["target"]).all()


def test_each_task_has_its_own_schema_and_the_monitor_its_direction(
    tiny_model_dir, data_dir, tmp_path
):
    base = tiny_overrides(tiny_model_dir, data_dir, tmp_path)
    with pytest.raises(ConfigCompositionException):  # a two-tower setting on a preference task
        compose_config("train", [*base, "task.temperature=0.1"])
    assert (
        compose_config("train", [*base, "task=next_item", "task.temperature=0.1"]).task.temperature
        == 0.1
    )
    assert compose_config("train", base).task.monitor_mode == "max"  # val/auc
    assert compose_config("train", [*base, "task.monitor=val/logloss"]).task.monitor_mode == "min"
    assert compose_config("train", [*base, "task=rating"]).task.monitor_mode == "min"  # val/rmse
    cfg = compose_config("train", [*base, "task.monitor=val/gauc_users"])
    with pytest.raises(ConfigError, match="task.monitor=val/gauc_users has no known direction"):
        validate(cfg)


def test_saved_flat_configs_load_on_their_own_option_schema():
    """Run folders written before each option had a schema carry every option's fields."""
    old = OmegaConf.create({"name": "preference", "monitor": "val/auc", "monitor_mode": "max",
                            "like_threshold": 3.5, "head": None, "temperature": 0.05, "ks": [5]})  # fmt: skip
    typed = on_own_schema("task", old)
    assert typed.like_threshold == 3.5 and "temperature" not in typed and "head" not in typed
    tuning = on_own_schema("tuning", OmegaConf.create({"mode": "full", "lr": 1e-4, "merge_lora": False,
                                                       "virtual_tokens": 20, "lora": None}))  # fmt: skip
    assert set(tuning) == {
        "mode",
        "lr",
        "weight_decay",
        "warmup_ratio",
        "decay",
        "freeze_layers",
        "new_lr",
    }
    assert tuning.decay  # runs saved before tuning.decay existed decayed their rate
    with pytest.raises(ConfigError, match="experiment=baseline_bpr"):  # the old BPR is gone
        on_own_schema("model", OmegaConf.create({"kind": "mf", "dim": 64, "objective": "bpr"}))
    with pytest.raises(ConfigError, match="model.kind='gpt' is unknown"):
        on_own_schema("model", OmegaConf.create({"kind": "gpt"}))
