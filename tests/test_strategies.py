"""Prompt strategies: the verbalizer, soft prompt vectors, slot checks, and every strategy × task ×
tuning combination end to end on the tiny model."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_config, tiny_overrides
from promptrec.errors import ConfigError
from promptrec.models.backbone import load_classifier, load_tokenizer
from promptrec.models.tuning import apply_tuning
from promptrec.prompts.template import SOFT_TOKEN
from promptrec.runtime.config import validate
from promptrec.runtime.training import train
from promptrec.strategies import strategy_class
from promptrec.strategies.classifier import TextScorer
from promptrec.strategies.soft import SoftPrompt
from promptrec.strategies.verbalizer import Verbalizer


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


def test_verbalizer_scores_multi_piece_words_by_their_mean_log_probability(tokenizer):
    pieces = tokenizer(" Schindler's List", add_special_tokens=False)["input_ids"]
    assert len(pieces) > 1  # the case that must be handled, not rejected
    verbalizer = Verbalizer(tokenizer, [["no", "bad"], ["Schindler's List"]])
    log_probs = torch.randn(3, len(tokenizer), generator=torch.Generator().manual_seed(0))
    log_probs = log_probs.log_softmax(-1)
    scores = verbalizer(log_probs)
    no, bad = (tokenizer.convert_tokens_to_ids(w) for w in ("no", "bad"))
    for row in range(3):  # by hand: class 0 = mean of two one-piece words; class 1 = piece mean
        lp = log_probs[row]
        assert float(scores[row, 0]) == pytest.approx(float((lp[no] + lp[bad]) / 2), abs=1e-6)
        assert float(scores[row, 1]) == pytest.approx(float(lp[pieces].mean()), abs=1e-6)


def test_verbalizer_rejects_empty_classes_and_unknown_words(tokenizer):
    with pytest.raises(ConfigError, match="at least one label word for every class"):
        Verbalizer(tokenizer, [["yes"], []], where="prompt.verbalizer.preference")
    with pytest.raises(ConfigError, match="prompt.verbalizer.preference: label word '☃'"):
        Verbalizer(tokenizer, [["no"], ["☃"]], where="prompt.verbalizer.preference")


def test_soft_vectors_replace_markers_in_order(tokenizer, tiny_model_dir):
    tokenizer = load_tokenizer(str(tiny_model_dir))
    tokenizer.add_tokens([SOFT_TOKEN], special_tokens=True)
    marker = tokenizer.convert_tokens_to_ids(SOFT_TOKEN)
    embeddings = load_classifier(str(tiny_model_dir), 1).get_input_embeddings()
    soft = SoftPrompt(embeddings, marker, 2, init_ids=tokenizer("good film")["input_ids"][1:3])
    ids = tokenizer([f"{SOFT_TOKEN} hello {SOFT_TOKEN}", f"{SOFT_TOKEN}{SOFT_TOKEN} hi"],
                    padding=True, return_tensors="pt")["input_ids"]  # fmt: skip
    out = soft(ids)
    good, film = tokenizer("good film", add_special_tokens=False)["input_ids"]
    assert torch.equal(soft.vectors.detach(), embeddings.weight[[good, film]].detach())
    assert torch.equal(out[0, 1], soft.vectors[0]) and torch.equal(out[0, 3], soft.vectors[1])
    assert torch.equal(out[1, 1], soft.vectors[0]) and torch.equal(out[1, 2], soft.vectors[1])
    assert torch.equal(out[0, 2], embeddings.weight[ids[0, 2]])  # other tokens: word embeddings


def test_prompt_tuning_trains_the_vectors_and_leaves_the_backbone_alone(tiny_model_dir):
    """tuning=frozen + a soft prompt: the soft vectors and the head move, nothing else."""
    torch.manual_seed(0)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    tokenizer.add_tokens([SOFT_TOKEN], special_tokens=True)
    backbone = apply_tuning(
        load_classifier(str(tiny_model_dir), 1), OmegaConf.create({"mode": "frozen"})
    )
    soft = SoftPrompt(
        backbone.get_input_embeddings(), tokenizer.convert_tokens_to_ids(SOFT_TOKEN), 4
    )
    model = TextScorer(backbone, soft)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"soft.vectors", "backbone.classifier.weight", "backbone.classifier.bias"}
    texts = [f"{' '.join([SOFT_TOKEN] * 4)} user {i} likes it" for i in range(8)]
    batch = dict(tokenizer(texts, padding=True, return_tensors="pt"))
    labels = torch.tensor([float(i % 2) for i in range(8)])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(5):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch)[:, 0], labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for name, p in model.named_parameters():
        changed = not torch.equal(p.detach(), before[name])
        assert changed == (name in trainable), name


def _cfg(tiny_model_dir, data_dir, tmp_path, cache, *overrides):
    base = tiny_overrides(tiny_model_dir, data_dir, tmp_path)
    return compose_config("train", [*base, f"paths.cache_dir={cache}", "data.max_train_examples=32",
                                    "data.history_len=3", *overrides])  # fmt: skip


def test_cloze_template_without_mask_names_the_fix(tiny_model_dir, data_dir, tmp_path):
    cfg = _cfg(tiny_model_dir, data_dir, tmp_path, tmp_path / "c", "prompt=cloze",
               "prompt.templates.preference='Will the user like {{ target.title }}?'")  # fmt: skip
    with pytest.raises(ConfigError, match=r"rendered 0 \[MASK\] token\(s\) where 1 are needed"):
        train(cfg)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_hybrid_marker_count_must_match_n_tokens(tiny_model_dir, data_dir, tmp_path):
    cfg = _cfg(tiny_model_dir, data_dir, tmp_path, tmp_path / "c", "prompt=hybrid",
               "prompt.soft.n_tokens=4")  # fmt: skip
    with pytest.raises(ConfigError, match=r"rendered 6 \[SOFT\] token\(s\) where 4 are needed"):
        train(cfg)


def test_verbalizer_with_the_wrong_number_of_classes(tiny_model_dir, data_dir, tmp_path):
    cfg = _cfg(tiny_model_dir, data_dir, tmp_path, tmp_path / "c", "prompt=cloze", "task=rating",
               "prompt.verbalizer.rating=[[bad],[good]]")  # fmt: skip
    with pytest.raises(ConfigError, match="prompt.verbalizer.rating must list label words for 5"):
        train(cfg)


STRATEGIES = ["question", "text", "list", "cloze", "soft", "hybrid"]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("strategy-cache")  # the split is built once for the matrix


@pytest.mark.slow
@pytest.mark.parametrize("tuning", ["full", "lora"])
@pytest.mark.parametrize("task", ["preference", "next_item"])
@pytest.mark.parametrize("prompt", STRATEGIES)
def test_every_strategy_trains_and_evaluates(prompt, task, tuning, tiny_model_dir, data_dir,
                                             tmp_path, shared_cache):  # fmt: skip
    cfg = _cfg(tiny_model_dir, data_dir, tmp_path, shared_cache,
               f"prompt={prompt}", f"task={task}", f"tuning={tuning}")  # fmt: skip
    metrics, objects = train(cfg)
    key = "test/auc" if task == "preference" else "test/ndcg@10"
    assert 0.0 <= metrics[key] <= 1.0 and not math.isnan(metrics["train/loss"])
    assert 0 < metrics["params/trainable"] < metrics["params/total"] or tuning == "full"
    texts = objects["datamodule"].prepared.examples["test"]["text"]
    if prompt in ("soft", "hybrid"):
        n = cfg.prompt.soft.n_tokens
        assert all(t.count(SOFT_TOKEN) == n for t in texts)
        assert objects["module"].model.soft.vectors.shape[0] == n
    if prompt == "cloze":
        assert all(t.count("[MASK]") == 1 for t in texts)


@pytest.mark.parametrize(
    ("overrides", "chosen"),
    [([], "classifier"), (["prompt=soft"], "classifier"), (["prompt=cloze"], "cloze"),
     (["task=next_item", "task.head=two_tower"], "two_tower"), (["prompt=mean_pool"], "mean_pool")],
)  # fmt: skip
def test_the_config_selects_one_strategy(tiny_model_dir, data_dir, tmp_path, overrides, chosen):
    cfg = compose_config("train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path), *overrides])
    assert strategy_class(cfg).name == chosen


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["prompt=cloze", "task=next_item", "task.head=two_tower"],
      "prompt.strategy=cloze selects the cloze strategy and task.head=two_tower selects"),
     (["+prompt.strategy=nope"], "prompt.strategy='nope' is unknown; choose one of .*mean_pool"),
     (["prompt=cloze", "tuning=prefix"], "tuning=prefix inserts virtual tokens")],
)  # fmt: skip
def test_strategy_conflicts_fail_at_start_up(
    tiny_model_dir, data_dir, tmp_path, overrides, message
):
    cfg = compose_config("train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path), *overrides])
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_item_init_text_starts_the_catalog_head_from_item_texts_and_popularity(
    tiny_model_dir, data_dir, tmp_path
):
    from promptrec.runtime.build import build_datamodule, build_module

    cfg = compose_config("train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path),
                                   "task=next_item", "task.item_init=text"])  # fmt: skip
    validate(cfg)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    module, _ = build_module(cfg, datamodule)
    head = module.model.backbone.classifier
    strategy, catalog = datamodule.strategy, datamodule.prepared.catalog
    assert strategy.item_texts[0].startswith("Toy Story (1995)")  # the item template's text
    # independently: the same backbone, untouched, pooling each item text on its own
    fresh = load_classifier(str(tiny_model_dir), len(catalog.item_ids)).eval()
    with torch.no_grad():
        pooled = torch.cat([fresh.base_model(**strategy.tokenizer([t], return_tensors="pt")).pooler_output
                            for t in strategy.item_texts[:50]])  # fmt: skip
        everything = torch.cat([fresh.base_model(**strategy.tokenizer(strategy.item_texts[i:i + 128], padding=True,
                                return_tensors="pt")).pooler_output for i in range(0, len(strategy.item_texts), 128)])  # fmt: skip
    expected = torch.nn.functional.normalize(pooled - everything.mean(0), dim=-1)
    torch.testing.assert_close(head.weight[:50], expected, atol=1e-4, rtol=1e-3)
    counts = torch.log1p(catalog.popularity.float())
    torch.testing.assert_close(head.bias, counts - counts.mean())
    bad = compose_config("train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path),
                                   "task=next_item", "task.item_init=titles"])  # fmt: skip
    with pytest.raises(ConfigError, match="task.item_init='titles' is invalid"):
        validate(bad)
