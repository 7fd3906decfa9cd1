"""Length-grouped batching: every example once per epoch, far less padding, reproducible order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from omegaconf import open_dict
from torch.utils.data import RandomSampler

from promptrec.errors import ConfigError
from promptrec.pipeline.batching import LengthGroupedSampler
from promptrec.runtime.build import build_datamodule
from promptrec.runtime.config import validate
from promptrec.runtime.training import train

LENGTHS = np.random.default_rng(0).integers(30, 128, size=1000)  # ML-100K-like prompt lengths


def batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def padded_tokens(order: list[int], size: int) -> int:
    return sum(len(b) * int(LENGTHS[b].max()) for b in batches(order, size))


def test_every_example_once_and_only_the_last_batch_partial():
    order = list(LengthGroupedSampler(LENGTHS, batch_size=32, seed=0))
    assert sorted(order) == list(range(len(LENGTHS)))
    sizes = [len(b) for b in batches(order, 32)]
    assert sizes[:-1] == [32] * (len(sizes) - 1) and sizes[-1] == len(LENGTHS) % 32


def test_grouping_removes_most_padding():
    real = int(LENGTHS.sum())
    random_order = np.random.default_rng(1).permutation(len(LENGTHS)).tolist()
    grouped = list(LengthGroupedSampler(LENGTHS, batch_size=32, seed=0))
    random_waste = padded_tokens(random_order, 32) / real - 1
    grouped_waste = padded_tokens(grouped, 32) / real - 1
    assert random_waste > 0.3  # uniform 30..127: random batches pad to nearly 127
    assert grouped_waste < 0.05


def test_order_depends_on_seed_and_epoch_only():
    a = LengthGroupedSampler(LENGTHS, 32, seed=0)
    b = LengthGroupedSampler(LENGTHS, 32, seed=0)
    first = list(a)
    np.random.seed(123)  # the global state plays no part
    assert list(b) == first
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(LengthGroupedSampler(LENGTHS, 32, seed=1)) != first


def test_batches_are_shuffled_not_sorted():
    order = list(LengthGroupedSampler(LENGTHS, 32, seed=0))
    longest = [int(LENGTHS[b].max()) for b in batches(order, 32)]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)


def test_evaluation_order_is_longest_first_and_complete():
    order = list(LengthGroupedSampler(LENGTHS, 64, seed=0, shuffle=False))
    assert sorted(order) == list(range(len(LENGTHS)))
    assert list(LENGTHS[order]) == sorted(LENGTHS, reverse=True)


def test_ddp_ranks_split_it_without_overlap_and_keep_groups():
    """Lightning wraps a custom sampler like this; each rank's batches stay length-grouped."""
    sampler = LengthGroupedSampler(LENGTHS, 32, seed=0)
    ranks = [DistributedSamplerWrapper(sampler, num_replicas=2, rank=r, shuffle=False)
             for r in (0, 1)]  # fmt: skip
    for r in ranks:
        r.set_epoch(3)
    assert sampler.epoch == 3  # forwarded to the wrapped sampler
    parts = [list(r) for r in ranks]
    assert sorted(parts[0] + parts[1]) == list(range(len(LENGTHS)))
    real = sum(int(LENGTHS[p].sum()) for p in parts)
    assert sum(padded_tokens(p, 16) for p in parts) / real - 1 < 0.05


@pytest.mark.parametrize("batch_size,window", [(0, 50), (32, 0)])
def test_rejects_empty_batches(batch_size, window):
    with pytest.raises(ValueError):
        LengthGroupedSampler(LENGTHS, batch_size, seed=0, window=window)


# -- in the data module -------------------------------------------------------------------------
def widths(loader) -> list[int]:
    return [batch["input_ids"].shape[1] for batch in loader]


def test_data_module_groups_training_batches_and_sorts_evaluation(train_cfg):
    datamodule = build_datamodule(train_cfg)
    grouped = datamodule.train_dataloader()
    assert isinstance(grouped.sampler, LengthGroupedSampler) and not grouped.pin_memory  # CPU
    test_widths = widths(datamodule.test_dataloader())
    assert test_widths == sorted(test_widths, reverse=True)
    with open_dict(train_cfg):
        train_cfg.data.length_grouped = False
        train_cfg.data.pin_memory = "true"
    plain = build_datamodule(train_cfg).train_dataloader()
    assert isinstance(plain.sampler, RandomSampler) and plain.pin_memory
    real = int(datamodule.prepared.examples["train"]["n_tokens"].sum())
    padded = [sum(b["input_ids"].numel() for b in loader) / real for loader in (grouped, plain)]
    assert padded[0] < padded[1]  # same examples, fewer padding tokens
    assert padded[0] < 1.1  # 64 prompts in 4 batches: little room for length ties


@pytest.mark.parametrize(
    "key,value,message",
    [("model.compile", "warp_drive", "model.compile='warp_drive' is invalid"),
     ("data.pin_memory", "sometimes", "data.pin_memory='sometimes' is invalid"),
     ("model.attention", "flash", "model.attention='flash' is invalid")],
)  # fmt: skip
def test_speed_settings_are_checked(train_cfg, key, value, message):
    section, name = key.split(".")
    train_cfg[section][name] = value
    with pytest.raises(ConfigError, match=message):
        validate(train_cfg)


@pytest.mark.slow
def test_compiled_model_trains_to_the_same_metrics(train_cfg, tmp_path):
    """model.compile goes through torch.compile (the eager backend here: no C compiler run) and
    changes nothing the run computes."""
    eager, _ = train(train_cfg)
    with open_dict(train_cfg):
        train_cfg.model.compile = "eager"
        train_cfg.paths.output_dir = str(tmp_path / "compiled")
    compiled, objects = train(train_cfg)
    assert getattr(objects["module"].model, "_compiled_call_impl", None) is not None
    keys = [k for k in eager if k.startswith("test/")]
    assert keys and {k: compiled[k] for k in keys} == {k: eager[k] for k in keys}


def test_attention_setting_reaches_the_backbone(tiny_model_dir):
    """model.attention picks transformers' attention code; eager and sdpa compute the same
    scores (fp32), so only speed changes."""
    from omegaconf import OmegaConf

    from promptrec.models.backbone import load_backbone

    ids = torch.randint(1000, 2000, (2, 9))
    outputs = {}
    for attention in ("eager", "sdpa"):
        cfg = OmegaConf.create({"name_or_path": str(tiny_model_dir), "attention": attention})
        torch.manual_seed(0)  # the same fresh head
        model = load_backbone("classifier", cfg, 1).eval()
        assert model.config._attn_implementation == attention
        outputs[attention] = model(input_ids=ids).logits
    torch.testing.assert_close(outputs["eager"], outputs["sdpa"])
