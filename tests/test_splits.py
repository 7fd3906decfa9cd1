"""Temporal, random and cold-start splits, history visibility, and few-shot manifests."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from conftest import compose_config, tiny_overrides
from promptrec.data.examples import few_shot
from promptrec.data.loaders import load_atomic
from promptrec.data.splits import SPLITTERS, make_split, select_users
from promptrec.errors import ConfigError
from promptrec.runtime.training import train
from promptrec.tasks import build_task
from promptrec.tasks.base import VISIBLE

PREFERENCE = build_task(OmegaConf.create({"name": "preference", "like_threshold": 4.0}))


@pytest.fixture(scope="module")
def inter(atomic_dir):
    return select_users(load_atomic(atomic_dir, "ml-100k").interactions, 120)


def test_temporal_split_is_one_global_time_cut(inter):
    split = make_split(inter, "temporal", ratios=[0.8, 0.1, 0.1])
    ts = {s: split.timestamp[split.split == s] for s in ("train", "val", "test")}
    assert ts["train"].max() <= ts["val"].min() and ts["val"].max() <= ts["test"].min()
    assert len(ts["train"]) == pytest.approx(0.8 * len(split), abs=1)


def test_random_split_is_seeded(inter):
    a, b = make_split(inter, "random", seed=1), make_split(inter, "random", seed=1)
    assert a.equals(b) and not a.equals(make_split(inter, "random", seed=2))
    assert (a.split == "test").mean() == pytest.approx(0.1, abs=0.02)


def test_cold_user_split_never_trains_on_held_out_users(inter):
    split = make_split(inter, "cold_user", seed=0)
    roles = split.groupby("user_id").split.agg(set)
    held = roles[roles.map(lambda r: "train" not in r)]
    assert len(held) > 0 and held.map(lambda r: r <= {"history", "val", "test"}).all()
    for user in held.index:
        rows = split[split.user_id == user]
        assert rows.split.iloc[-1] in ("val", "test") and (rows.split.iloc[:-1] == "history").all()


def test_cold_item_split_never_trains_on_held_out_items(inter):
    split = make_split(inter, "cold_item", seed=0)
    train_items = set(split.item_id[split.split == "train"])
    assert not train_items & set(split.item_id[split.split != "train"])


@pytest.mark.parametrize("name", sorted(SPLITTERS))
def test_histories_only_show_earlier_visible_interactions(inter, name):
    split = make_split(inter, name, seed=0)
    rows = split[["user_id", "item_id", "position", "split"]]
    for which in ("train", "val", "test"):
        ex = PREFERENCE.examples(split, which, history_len=1000)
        assert len(ex) == (split.split == which).sum()
        hist = ex[["user_id", "position", "history_items"]].explode("history_items").dropna()
        hist = hist.rename(columns={"history_items": "item_id"}).merge(
            rows, on=["user_id", "item_id"], suffixes=("", "_hist")
        )
        assert len(hist) == ex.history_items.map(len).sum()
        assert (hist.position_hist < hist.position).all()  # strictly earlier
        assert set(hist.split) <= set(VISIBLE[which])  # and only from splits this one may see


def test_bad_split_settings_are_config_errors(inter):
    with pytest.raises(ConfigError, match="data.split='weekly' is unknown"):
        make_split(inter, "weekly")
    with pytest.raises(ConfigError, match="split_ratios"):
        make_split(inter, "random", ratios=[0.5, 0.5, 0.5])


def test_few_shot_examples_are_drawn_once_and_saved(inter, tmp_path):
    ex = PREFERENCE.examples(make_split(inter, "loo"), "train", history_len=10)
    manifest = tmp_path / "fewshot.json"
    first = few_shot(ex, 16, seed=3, manifest=manifest)
    assert len(first) == 16 and json.loads(manifest.read_text())["k"] == 16
    # a later run reads the manifest, even if the example table is reordered
    again = few_shot(ex.sample(frac=1.0, random_state=0), 16, seed=3, manifest=manifest)
    key = ["user_id", "position"]
    pd.testing.assert_frame_equal(
        again.sort_values(key)[key].reset_index(drop=True),
        first.sort_values(key)[key].reset_index(drop=True),
    )
    other = few_shot(ex, 16, seed=4, manifest=tmp_path / "other.json")
    assert not np.array_equal(other.example_id, first.example_id)


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [["data.split=temporal"], ["data.split=cold_user"], ["data.few_shot=16"]],
    ids=["temporal", "cold_user", "few_shot"],
)
def test_split_options_train_end_to_end(tiny_model_dir, data_dir, tmp_path, overrides):
    cfg = compose_config(
        "train",
        [*tiny_overrides(tiny_model_dir, data_dir, tmp_path), "data.max_users=60", *overrides],
    )
    metrics, _ = train(cfg)
    assert np.isfinite(metrics["test/logloss"])
    if overrides == ["data.few_shot=16"]:
        assert metrics["data/train_examples"] == metrics["data/val_examples"] == 16
