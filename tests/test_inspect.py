"""promptrec-prompts (prompts as the model sees them, split statistics) and promptrec-explain."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import compose_config, tiny_overrides
from promptrec.analysis.explain import explain
from promptrec.analysis.prompts import show_prompts
from promptrec.data.sources import open_source
from promptrec.data.splits import leave_one_out, select_users
from promptrec.errors import ConfigError
from promptrec.runtime.build import build_datamodule
from promptrec.runtime.training import train


def _cfg(tiny_model_dir, data_dir, tmp_path, *overrides):
    return compose_config("prompts", [
        f"model.name_or_path={tiny_model_dir}", f"paths.root_dir={tmp_path}",
        f"paths.data_dir={data_dir}", f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.output_dir={tmp_path / 'run'}", "data.max_users=40", "data.max_train_examples=64",
        *overrides])  # fmt: skip


def test_statistics_match_an_independent_count(tiny_model_dir, data_dir, tmp_path):
    # a tight budget so that some prompts lose history items
    cfg = _cfg(
        tiny_model_dir,
        data_dir,
        tmp_path,
        "data.max_tokens=80",
        "data.history_len=6",
        "n_examples=4",
    )
    stats = show_prompts(cfg)
    datamodule = build_datamodule(cfg)
    ds, examples = datamodule.prepared.datasets["test"], datamodule.prepared.examples["test"]
    lengths = np.array([len(ids) for ids in ds["input_ids"]])
    assert stats["examples"] == len(examples) == 40
    assert stats["tokens_p50"] == int(np.percentile(lengths, 50, method="higher"))
    assert all(
        isinstance(stats[f"tokens_p{q}"], int) for q in (50, 90, 99)
    )  # printed as 86, not 86.0000
    assert stats["tokens_max"] == lengths.max() <= 80
    # a prompt was truncated exactly when its full history would not fit the budget
    encoder = datamodule.prepared.encoder
    split = datamodule.task.examples(_split(datamodule), "test", 6)
    full = [len(encoder.tokenizer(encoder.template.render(encoder.contexts.build(
        r.user_id, r.item_id, r.history_items, r.history_ratings)))["input_ids"]) > 80
        for r in split.itertuples()]  # fmt: skip
    assert stats["truncated"] == pytest.approx(np.mean(full)) and 0 < stats["truncated"] < 1
    assert stats["target_title_missing"] == 0.0  # the budget never cuts the target
    sample = pd.read_csv(tmp_path / "run" / "prompt_examples.csv")
    assert len(sample) == 4 and sample.prompt.str.startswith("[CLS] a ").all()
    assert (sample.n_history_kept <= sample.n_history).all()
    assert json.loads((tmp_path / "run" / "prompt_stats.json").read_text()) == stats


def _split(datamodule):
    """The leave-one-out split rebuilt from the source files, independently of the data module."""
    _, data = open_source(datamodule.cfg)
    return leave_one_out(select_users(data.interactions, datamodule.cfg.max_users))


def test_special_tokens_show_in_cloze_and_soft_prompts(tiny_model_dir, data_dir, tmp_path):
    show_prompts(_cfg(tiny_model_dir, data_dir, tmp_path, "prompt=soft", "n_examples=2"))
    sample = pd.read_csv(tmp_path / "run" / "prompt_examples.csv")
    assert sample.prompt.str.startswith("[CLS] " + "[SOFT] " * 10).all()
    show_prompts(
        _cfg(tiny_model_dir, data_dir, tmp_path, "prompt=cloze", "task=rating", "n_examples=2")
    )
    sample = pd.read_csv(tmp_path / "run" / "prompt_examples.csv")
    assert sample.prompt.str.contains(r"will rate .* \[MASK\] stars").all()


def test_explanations_start_from_the_runs_own_prediction(tiny_model_dir, data_dir, tmp_path):
    """promptrec-explain: the unoccluded score equals the test prediction; one row per shown item."""
    train_cfg = compose_config("train", tiny_overrides(tiny_model_dir, data_dir, tmp_path))
    train(train_cfg)
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv", dtype={"user_id": str})
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    overrides = [o for o in tiny_overrides(tiny_model_dir, data_dir, tmp_path / "x")
                 if o.startswith(("model.", "paths.", "data.", "tuning."))]  # fmt: skip
    users = list(predictions.user_id.iloc[[3, 0]])
    cfg = compose_config("explain", [*overrides, f"paths.cache_dir={tmp_path / 'cache'}",
                                     f"ckpt_path={ckpt}", f"users=[{','.join(users)}]"])  # fmt: skip
    table = explain(cfg)
    assert set(table.user_id) == set(users)
    for user, rows in table.groupby("user_id"):
        prediction = predictions[predictions.user_id == user].iloc[0]
        assert rows.score.iloc[0] == pytest.approx(prediction.score, abs=1e-5)
        assert len(rows) == prediction.n_history_kept
        assert np.allclose(rows.effect, rows.score - rows.score_without)
        assert rows.effect.abs().is_monotonic_decreasing  # sorted by size of effect
    written = pd.read_csv(tmp_path / "x" / "run" / "explanations.csv", dtype={"user_id": str})
    assert len(written) == len(table)
    with pytest.raises(ConfigError, match=r"users=\['999999'\] have no example") as info:
        explain(compose_config("explain", [*overrides, f"ckpt_path={ckpt}", "users=[999999]"]))
    suggested = re.search(r"e\.g\. users=\[([^\]]+)\]", str(info.value)).group(1).split(",")
    explain(compose_config("explain", [*overrides, f"ckpt_path={ckpt}", f"users=[{suggested[0]}]"]))
