"""The two-tower next-item head: scores, its training loss, unseen items, and a run end to end."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from conftest import compose_config, tiny_overrides
from promptrec.models.backbone import load_encoder, load_tokenizer
from promptrec.models.tuning import apply_tuning, count_parameters
from promptrec.runtime.evaluation import evaluate
from promptrec.runtime.training import train
from promptrec.strategies.two_tower import TwoTowerScorer

ITEMS = ["Toy Story (1995): Animation, Comedy", "Heat (1995): Action, Crime", "Fargo (1996): Crime"]
PROMPTS = ["a man watched Toy Story and Babe", "a woman watched Heat, then Casino"]


def _scorer(model_dir, items, **kwargs):
    torch.manual_seed(0)
    tok = load_tokenizer(str(model_dir))
    tokens = tok(items, padding=True, return_tensors="pt")
    encoder = load_encoder(str(model_dir))
    return tok, TwoTowerScorer(encoder, tokens["input_ids"], tokens["attention_mask"], **kwargs)


def _reference_vector(encoder, tok, text: str) -> torch.Tensor:
    """One text alone (no padding): mean of its token vectors, unit length."""
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**enc).last_hidden_state[0]
    return F.normalize(hidden.mean(0), dim=0)


def test_scores_are_cosines_over_temperature_and_unseen_items_score_the_same_way(tiny_model_dir):
    tok, scorer = _scorer(tiny_model_dir, ITEMS, temperature=0.1)
    scorer.eval()
    batch = tok(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        scores = scorer(batch)
    users = torch.stack([_reference_vector(scorer.encoder, tok, p) for p in PROMPTS])
    items = torch.stack([_reference_vector(scorer.encoder, tok, t) for t in ITEMS])
    assert scores.shape == (2, 3)
    assert scores == pytest.approx(users @ items.T / 0.1, abs=1e-4)  # padding changes nothing
    # an item the model has never seen: hand the same encoder a larger catalogue, no retraining
    unseen = "Babe (1995): Children's, Comedy, Drama"
    tokens = tok([*ITEMS, unseen], padding=True, return_tensors="pt")
    wider = TwoTowerScorer(
        scorer.encoder, tokens["input_ids"], tokens["attention_mask"], 0.1
    ).eval()
    with torch.no_grad():
        wider_scores = wider(batch)
    assert wider_scores[:, :3] == pytest.approx(scores, abs=1e-4)
    expected = users @ _reference_vector(scorer.encoder, tok, unseen) / 0.1
    assert wider_scores[:, 3] == pytest.approx(expected, abs=1e-4)


def test_catalogue_vectors_are_reencoded_after_training_changes_the_weights(tiny_model_dir):
    tok, scorer = _scorer(tiny_model_dir, ITEMS)
    scorer.eval()
    before = scorer.catalogue_vectors().clone()
    assert scorer.catalogue_vectors() is scorer.catalogue_vectors()  # cached within one eval loop
    scorer.train()
    with torch.no_grad():
        for p in scorer.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    scorer.eval()
    assert not torch.allclose(scorer.catalogue_vectors(), before)


def test_training_loss_is_softmax_over_distinct_batch_targets(tiny_model_dir):
    tok, scorer = _scorer(tiny_model_dir, ITEMS, temperature=0.5)
    scorer.eval()  # no dropout: the loss must equal the hand computation exactly
    prompts = [*PROMPTS, "someone else"]
    batch = {**tok(prompts, padding=True, return_tensors="pt"), "labels": torch.tensor([2, 0, 2])}
    users = torch.stack([_reference_vector(scorer.encoder, tok, p) for p in prompts])
    items = torch.stack([_reference_vector(scorer.encoder, tok, ITEMS[i]) for i in (0, 2)])
    # candidates are items {0, 2} once each: user 0 → 2 (column 1), user 1 → 0, user 2 → 2
    expected = F.cross_entropy(users @ items.T / 0.5, torch.tensor([1, 0, 1]))
    assert float(scorer.training_loss(batch)) == pytest.approx(float(expected), abs=1e-5)


def test_sampled_negatives_widen_the_candidates(tiny_model_dir):
    tok, scorer = _scorer(tiny_model_dir, ITEMS, sampled_negatives=50)
    scorer.eval()
    batch = {**tok(PROMPTS, padding=True, return_tensors="pt"), "labels": torch.tensor([0, 0])}
    # one distinct target: without sampled items the softmax has one candidate and zero loss
    assert float(scorer.training_loss(batch)) > 0.0
    scorer.sampled_negatives = 0
    assert float(scorer.training_loss(batch)) == pytest.approx(0.0, abs=1e-6)


def test_lora_on_the_bare_encoder_trains_only_the_adapters(tiny_model_dir):
    tuning = OmegaConf.create({"mode": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0,
                                                         "target_modules": ["query", "value"]}})  # fmt: skip
    counts = count_parameters(apply_tuning(load_encoder(str(tiny_model_dir)), tuning))
    assert counts["params/trainable"] == 2 * 2 * (32 * 4 + 4 * 32)  # no head to train


def test_two_tower_run_on_a_cold_item_split(tiny_model_dir, data_dir, tmp_path):
    """Test items never occur in training; the two-tower head ranks them from their text."""
    setting = ["task=next_item", "task.head=two_tower", "task.sampled_negatives=16",
               "data.split=cold_item", "data.max_users=60"]  # fmt: skip
    cfg = compose_config("train", tiny_overrides(tiny_model_dir, data_dir, tmp_path) + setting)
    metrics, objects = train(cfg)
    assert 0.0 <= metrics["test/hr@10"] <= 1.0 and metrics["test/coverage@10"] > 0.0
    prepared, strategy = objects["datamodule"].prepared, objects["datamodule"].strategy
    assert strategy.name == "two_tower" and len(strategy.item_texts) == len(
        prepared.catalog.item_ids
    )
    assert strategy.item_texts[0] == "Toy Story (1995): Animation, Children's, Comedy"
    catalog = prepared.catalog
    never_trained = {i for i, n in zip(catalog.item_ids, catalog.popularity.tolist()) if n == 0}
    cold = set(prepared.examples["test"].item_id) & never_trained
    assert cold  # the split holds items out of training …
    topk = pd.read_csv(tmp_path / "run" / "topk.csv", dtype=str)
    assert len(topk) == len(prepared.examples["test"])
    ranked = {i for row in topk["items"] for i in row.split()}
    assert ranked & cold  # … and they reach users' top-K lists, scored from their text alone
    # the checkpoint holds the encoder only; item tokens are rebuilt from the data at evaluation
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    eval_cfg = compose_config("eval", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path / "e"), *setting,
                                       f"ckpt_path={ckpt}", f"paths.cache_dir={tmp_path / 'cache'}"])  # fmt: skip
    again, _ = evaluate(eval_cfg)
    assert again["test/ndcg@10"] == metrics["test/ndcg@10"]
    assert again["test/coverage@20"] == metrics["test/coverage@20"]
