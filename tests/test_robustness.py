"""Template pools (train on seen templates) and promptrec-robustness (templates + perturbations)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from conftest import compose_config, tiny_overrides
from promptrec.analysis.perturb import drop_history, get_perturbation, shuffle_history
from promptrec.analysis.robustness import interval, robustness
from promptrec.errors import ConfigError
from promptrec.runtime.startup import with_run_config
from promptrec.runtime.training import train


def test_perturbations_keep_or_drop_items_reproducibly():
    items, ratings = list("abcdefgh"), [1, 2, 3, 4, 5, 1, 2, 3]
    shuffled, shuffled_ratings = shuffle_history(items, ratings, np.random.default_rng(0), 0.0)
    assert sorted(shuffled) == items and shuffled != items
    assert dict(zip(shuffled, shuffled_ratings)) == dict(zip(items, ratings))  # pairs stay together
    kept, kept_ratings = drop_history(items, ratings, np.random.default_rng(0), 0.5)
    assert len(kept) == 4 and kept == sorted(kept)  # survivors keep their order
    assert [ratings[items.index(i)] for i in kept] == kept_ratings
    again = drop_history(items, ratings, np.random.default_rng(0), 0.5)
    assert again == (kept, kept_ratings)
    assert drop_history(items, ratings, np.random.default_rng(0), 0.0) == (items, ratings)
    with pytest.raises(ConfigError, match="name='reverse' is unknown"):
        get_perturbation("reverse", 0.0)


def test_interval_is_the_student_t_interval():
    mean, half = interval([0.70, 0.74, 0.72])
    sd = np.std([0.70, 0.74, 0.72], ddof=1)
    assert mean == pytest.approx(0.72) and half == pytest.approx(4.302653 * sd / math.sqrt(3))
    assert math.isnan(interval([0.7])[1])  # one template: no interval, not a fake zero


@pytest.mark.slow
def test_train_on_seen_templates_then_score_every_template(tiny_model_dir, data_dir, tmp_path):
    setting = ["prompt.seen=[0,1]"]
    metrics, objects = train(
        compose_config("train", tiny_overrides(tiny_model_dir, data_dir, tmp_path) + setting)
    )
    examples = objects["datamodule"].prepared.examples
    assert set(examples["train"].template) == {0, 1} and set(examples["test"].template) == {0}
    by_template = examples["train"].groupby("template")["text"]
    assert not by_template.get_group(1).str.contains("rated movies out of 5").any()
    assert by_template.get_group(1).str.contains("Ratings so far").all()  # pool #1 is rendered
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    overrides = [o for o in tiny_overrides(tiny_model_dir, data_dir, tmp_path / "r")
                 if o.startswith(("model.", "paths.", "data.", "tuning."))]  # fmt: skip
    long, summary = robustness(compose_config("robustness", [*overrides, *setting, f"ckpt_path={ckpt}",
                                                              f"paths.cache_dir={tmp_path / 'cache'}"]))  # fmt: skip
    auc = long[long.metric == "auc"].set_index("condition")
    assert list(auc.index) == ["template 0", "template 1", "template 2", "template 3",
                               "shuffle_history", "drop_history 0.3", "drop_history 0.6"]  # fmt: skip
    assert list(auc.kind[:4]) == ["seen", "seen", "unseen", "unseen"]
    # the clean condition re-encodes the test prompts and must reproduce the run's own test metrics
    assert auc.loc["template 0", "value"] == pytest.approx(metrics["test/auc"], abs=1e-6)
    assert auc.loc["template 0", "change"] == 0.0
    assert np.allclose(auc.change, auc.value - auc.loc["template 0", "value"])
    unseen = summary[(summary.templates == "unseen") & (summary.metric == "auc")].iloc[0]
    values = auc.value[["template 2", "template 3"]].to_numpy()
    assert unseen.n == 2 and unseen["mean"] == pytest.approx(values.mean())
    assert unseen.ci95 == pytest.approx(12.706205 * np.std(values, ddof=1) / math.sqrt(2), rel=1e-5)
    written = pd.read_csv(tmp_path / "r" / "run" / "robustness.csv")
    assert len(written) == len(long)


def test_seen_template_out_of_range_is_rejected(tiny_model_dir, data_dir, tmp_path):
    cfg = compose_config(
        "train", tiny_overrides(tiny_model_dir, data_dir, tmp_path) + ["prompt.seen=[0,7]"]
    )
    with pytest.raises(
        ConfigError, match=r"prompt.seen=\[0, 7\] must list template indices in 0..3"
    ):
        train(cfg)


def test_run_config_replaces_todays_defaults(tmp_path):
    """A checkpoint is re-scored with its own prompt: keys added to conf/ later do not leak in."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    saved = compose_config("train", ["task=rating", "tuning=lora", "data.history_len=4"])
    OmegaConf.save(saved, run / ".hydra" / "config.yaml")
    old = OmegaConf.load(run / ".hydra" / "config.yaml")
    del old.prompt["pool"]  # as written before prompts had pools
    OmegaConf.save(old, run / ".hydra" / "config.yaml")
    cfg = with_run_config(
        compose_config("robustness", [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}"])
    )
    assert cfg.task.name == "rating" and cfg.tuning.mode == "lora" and cfg.data.history_len == 4
    assert cfg.prompt.pool is None  # today's question.yaml has a pool; the run's prompt had none
    assert cfg.perturbations[0].name == "shuffle_history"  # the command's own settings stay
    assert cfg.trainer.precision == saved.trainer.precision  # re-scored in the run's precision
