"""The mean-pooling strategy (the worked example of adding a strategy): selected by its YAML,
its head reads the mean of the prompt's token vectors, and it trains under every tuning family."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import compose_config, tiny_overrides
from promptrec.errors import ConfigError
from promptrec.runtime.config import validate
from promptrec.runtime.training import train
from promptrec.strategies.mean_pool import MeanPoolScorer


@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_mean_pool_trains_and_reads_the_mean_of_the_prompt(
    tiny_model_dir, data_dir, tmp_path, tuning
):
    overrides = [
        *tiny_overrides(tiny_model_dir, data_dir, tmp_path),
        "prompt=mean_pool",
        f"tuning={tuning}",
    ]
    metrics, objects = train(compose_config("train", overrides))
    assert objects["datamodule"].strategy.name == "mean_pool"
    assert 0.0 <= metrics["test/auc"] <= 1.0 and not math.isnan(metrics["train/loss"])
    scorer = objects["module"].model
    assert isinstance(scorer, MeanPoolScorer) and scorer.classifier.weight.requires_grad
    batch = next(iter(objects["datamodule"].test_dataloader()))
    scorer.eval()
    with torch.no_grad():
        hidden = scorer.encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        expected = scorer.classifier((hidden * mask).sum(1) / mask.sum(1))  # padding left out
        assert torch.allclose(scorer(batch), expected, atol=1e-6)


def test_mean_pool_refuses_the_two_tower_head(tiny_model_dir, data_dir, tmp_path):
    overrides = [*tiny_overrides(tiny_model_dir, data_dir, tmp_path), "prompt=mean_pool",
                 "task=next_item", "task.head=two_tower"]  # fmt: skip
    with pytest.raises(ConfigError, match="prompt.strategy=mean_pool .* task.head=two_tower"):
        validate(compose_config("train", overrides))
