"""tuning.freeze_layers: the cut model gives the uncut model's outputs, the frozen part never
changes, its states are cached on disk under a key that follows what changes them; and
trainer.precision=auto picks bf16 only where the CPU runs it natively."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from conftest import compose_config, tiny_overrides
from promptrec.errors import ConfigError
from promptrec.models.backbone import load_classifier, resolve_model_path
from promptrec.models.frozen import cut
from promptrec.pipeline.hidden_cache import HiddenCollator
from promptrec.runtime.config import validate
from promptrec.runtime.evaluation import evaluate
from promptrec.runtime.precision import resolve_precision
from promptrec.runtime.training import train
from promptrec.strategies.classifier import TextScorer

TEXTS = ["A 24-year-old man rated Heat: 5; Up: 3; [SEP] Will he like Jaws?", "Toy Story"]


def test_the_cut_model_gives_the_uncut_models_logits(tiny_model_dir):
    torch.manual_seed(0)
    whole = load_classifier(str(tiny_model_dir), 1).eval()
    top = copy.deepcopy(whole)
    lower = cut(top, 1)
    scorer = TextScorer(top, lower=lower).eval()
    batch = dict(
        AutoTokenizer.from_pretrained(tiny_model_dir)(TEXTS, padding=True, return_tensors="pt")
    )
    with torch.no_grad():
        expected = whole(**batch).logits
        on_the_fly = scorer(batch)
        cached = scorer({**batch, "hidden": lower(batch["input_ids"], batch["attention_mask"])})
    assert len(top.bert.encoder.layer) == 1 and len(lower.layers) == 1
    assert torch.allclose(on_the_fly, expected, atol=1e-6) and torch.equal(cached, on_the_fly)
    lower.train()
    assert not lower.training  # frozen means no dropout either


def _cfg(tiny_model_dir, data_dir, tmp_path, *overrides):
    base = tiny_overrides(tiny_model_dir, data_dir, tmp_path)
    return compose_config("train", [*base, "tuning.freeze_layers=1", "tuning.lr=1e-3", *overrides])


@pytest.mark.slow
def test_frozen_layers_stay_and_batches_read_the_cache(tiny_model_dir, data_dir, tmp_path):
    metrics, objects = train(_cfg(tiny_model_dir, data_dir, tmp_path))
    scorer, datamodule = objects["module"].model, objects["datamodule"]
    torch.manual_seed(0)
    pretrained = load_classifier(str(tiny_model_dir), 1).bert
    assert all(torch.equal(p, dict(pretrained.named_parameters())[f"encoder.layer.0.{n}"])
               for n, p in scorer.lower.layers[0].named_parameters())  # fmt: skip
    trained_top = dict(scorer.backbone.bert.encoder.layer[0].named_parameters())
    assert not torch.equal(trained_top["output.dense.weight"],
                           dict(pretrained.named_parameters())["encoder.layer.1.output.dense.weight"])  # fmt: skip
    assert isinstance(datamodule.collate, HiddenCollator)
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["hidden"].shape == (*batch["input_ids"].shape, 32)
    assert 0.0 <= metrics["test/auc"] <= 1.0 and not math.isnan(metrics["train/loss"])
    assert len(list((tmp_path / "cache").glob("hidden-*"))) == 1
    # the checkpoint holds the cut model: evaluating it again gives the same test metrics
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    eval_cfg = compose_config("eval", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path / "e"),
                                       "tuning.freeze_layers=1", f"ckpt_path={ckpt}",
                                       f"paths.cache_dir={tmp_path / 'cache'}"])  # fmt: skip
    again, _ = evaluate(eval_cfg)
    assert (
        again["test/auc"] == metrics["test/auc"]
        and again["test/logloss"] == metrics["test/logloss"]
    )


@pytest.mark.slow
def test_the_cache_key_follows_the_template_the_cut_the_precision_and_the_model(data_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    )
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=3,
                        num_attention_heads=2, intermediate_size=64)  # fmt: skip
    for seed in (0, 1):  # two 3-layer models: same shapes and tokenizer, other weights
        torch.manual_seed(seed)
        BertModel(config).save_pretrained(tmp_path / f"bert3-{seed}")
        tokenizer.save_pretrained(tmp_path / f"bert3-{seed}")
    cache = tmp_path / "cache"
    runs = [(0, ["tuning.freeze_layers=1"]), (0, ["tuning.freeze_layers=2"]),
            (0, ["tuning.freeze_layers=2", "trainer.precision=bf16-mixed"]),
            (0, ["tuning.freeze_layers=2", "prompt.templates.preference='{{ target.title }}'"]),
            (1, ["tuning.freeze_layers=2"]), (0, ["tuning.freeze_layers=2"])]  # fmt: skip
    counts = []
    for n, (model, overrides) in enumerate(runs):
        folder = tmp_path / f"bert3-{model}"
        train(_cfg(folder, data_dir, tmp_path / str(n), f"paths.cache_dir={cache}", *overrides))
        counts.append(len(list(cache.glob("hidden-*"))))
    assert counts == [1, 2, 3, 4, 5, 5]  # k, precision, template, model: new entries; then a hit


def test_lora_sits_above_the_cut(tiny_model_dir, data_dir, tmp_path):
    from promptrec.runtime.build import build_datamodule, build_module

    cfg = _cfg(tiny_model_dir, data_dir, tmp_path, "tuning=lora", "tuning.freeze_layers=1")
    module, built = build_module(cfg, build_datamodule(cfg))
    lora = [n for n, p in module.named_parameters() if "lora_" in n]
    assert lora and all(p.requires_grad for n, p in module.named_parameters() if "lora_" in n)
    assert not any(p.requires_grad for p in built.lower.parameters())
    # query, key, value and the three dense layers (attention output, feed-forward in and out) of
    # the one layer above the cut, and the pooler's dense layer: A and B each
    assert len(lora) == 14 and any(".intermediate.dense." in n for n in lora)


def test_soft_prompts_freeze_without_a_cache(tiny_model_dir, data_dir, tmp_path, capsys):
    from promptrec.runtime.build import build_datamodule, build_module

    cfg = _cfg(tiny_model_dir, data_dir, tmp_path, "prompt=soft")
    module, built = build_module(cfg, build_datamodule(cfg))
    assert (
        built.lower is None and "run every step instead of being cached" in capsys.readouterr().out
    )
    frozen = [n for n, p in module.named_parameters() if not p.requires_grad]
    assert any("encoder.layer.0." in n for n in frozen) and not any(
        "encoder.layer.1." in n for n in frozen
    )
    assert module.model.soft.vectors.requires_grad


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["tuning.freeze_layers=2"], "must be 0 .* to 1"),
        (["tuning=prefix", "tuning.freeze_layers=1"], "below the cut"),
    ],
)
def test_impossible_cuts_are_refused(tiny_model_dir, data_dir, tmp_path, overrides, message):
    from promptrec.runtime.build import build_datamodule, build_module

    cfg = compose_config("train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path), *overrides])
    with pytest.raises(ConfigError, match=message):
        validate(cfg)
        build_module(cfg, build_datamodule(cfg))


def test_auto_precision_is_bf16_only_with_native_bf16():
    assert (
        resolve_precision("auto", "cpu", "flags\t: fpu avx2 avx512f avx512_bf16")[0] == "bf16-mixed"
    )
    assert (
        resolve_precision("auto", "cpu", "flags\t: fpu avx2 amx_bf16 amx_tile")[0] == "bf16-mixed"
    )
    precision, note = resolve_precision("auto", "cpu", "flags\t: fpu avx2 avx512f")
    assert precision == "32-true" and "no AVX-512 BF16" in note
    assert resolve_precision("auto", "cpu", "")[0] == "32-true"  # flags unreadable: stay safe
    assert resolve_precision("16-mixed", "cpu", "") == ("16-mixed", None)  # explicit wins
