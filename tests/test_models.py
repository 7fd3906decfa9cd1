"""Backbone resolution, tuning modes' trainable parameters, train mode in steps, pinned losses."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from promptrec.errors import ConfigError
from promptrec.models.backbone import (
    load_classifier,
    load_tokenizer,
    resolve_model_path,
)
from promptrec.models.tuning import apply_tuning, count_parameters
from promptrec.pipeline.module import RecModule
from promptrec.strategies.classifier import TextScorer
from promptrec.tasks import build_task

LORA = OmegaConf.create(
    {
        "mode": "lora",
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]},
    }
)
FULL = OmegaConf.create({"mode": "full"})
PREFERENCE = build_task(OmegaConf.create({"name": "preference", "like_threshold": 4.0}))


def test_embedded_model_resolves_to_the_package_folder():
    path = Path(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert resolve_model_path("bert-base-uncased") == "bert-base-uncased"  # Hub names pass through


def test_missing_model_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match="model.name_or_path=.*could not load the tokenizer"):
        load_tokenizer(str(tmp_path / "nowhere"))


def test_embedded_tokenizer_is_uncased_bert():
    tok = load_tokenizer("sentence-transformers/all-MiniLM-L6-v2")
    assert len(tok) == 30522 and tok.mask_token_id == 103
    assert tok("Hello")["input_ids"] == tok("hello")["input_ids"]


def test_full_vs_lora_trainable_parameter_counts(tiny_model_dir):
    torch.manual_seed(0)
    full = count_parameters(apply_tuning(load_classifier(str(tiny_model_dir), 1), FULL))
    lora = count_parameters(apply_tuning(load_classifier(str(tiny_model_dir), 1), LORA))
    assert full["params/trainable"] == full["params/total"]
    # LoRA on query+value of 2 layers, hidden 32, rank 4: 2·2·(32·4 + 4·32) = 1024, plus the 33-weight head
    assert lora["params/trainable"] == 1024 + 33
    # peft keeps the original head frozen beside its trainable copy and adds the adapters
    assert lora["params/total"] == full["params/total"] + 1024 + 33


def test_lora_rejects_target_modules_missing_from_the_model(tiny_model_dir):
    bad = OmegaConf.create(
        {"mode": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj"]}}
    )
    with pytest.raises(ConfigError, match="target_modules"):
        apply_tuning(load_classifier(str(tiny_model_dir), 1), bad)


def test_unknown_tuning_mode_is_rejected(tiny_model_dir):
    with pytest.raises(ConfigError, match="tuning.mode='nope'"):
        apply_tuning(load_classifier(str(tiny_model_dir), 1), OmegaConf.create({"mode": "nope"}))


def _batch(tok, n=8):
    texts = [f"user {i} finds this movie {'great' if i % 2 else 'awful'}" for i in range(n)]
    enc = tok(texts, padding=True, return_tensors="pt")
    return {**enc, "labels": torch.tensor([i % 2 for i in range(n)], dtype=torch.float),
            "example_id": torch.arange(n)}  # fmt: skip


class _ModeProbe(L.Callback):
    """Records whether every submodule (dropout included) is in train mode inside training steps."""

    def __init__(self):
        self.modes = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.modes.append(all(m.training for m in pl_module.model.modules()))


# A random 2-layer model needs a high learning rate to move within a few steps (LoRA even more so).
LEARNING_RATES = {"full": 1e-2, "lora": 5e-2}


@pytest.mark.parametrize("tuning", [FULL, LORA], ids=["full", "lora"])
def test_training_steps_run_in_train_mode_and_loss_falls(tiny_model_dir, tuning):
    L.seed_everything(0, verbose=False)
    tok = load_tokenizer(str(tiny_model_dir))
    model = apply_tuning(load_classifier(str(tiny_model_dir), 1), tuning)
    lr = LEARNING_RATES[tuning.mode]
    module = RecModule(
        TextScorer(model), PREFERENCE, lambda p: torch.optim.AdamW(p, lr=lr), warmup_ratio=0.0
    )
    batch = _batch(tok)
    first = float(
        torch.nn.functional.binary_cross_entropy_with_logits(module(batch)[:, 0], batch["labels"])
    )
    loader = DataLoader([batch] * 20, batch_size=None)
    probe = _ModeProbe()
    trainer = L.Trainer(max_steps=20, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        accelerator="cpu", callbacks=[probe], enable_model_summary=False)  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    assert probe.modes and all(probe.modes)
    module.eval()
    with torch.no_grad():
        last = float(
            torch.nn.functional.binary_cross_entropy_with_logits(
                module(batch)[:, 0], batch["labels"]
            )
        )
    assert last < first * 0.7


def _losses_over_steps(model_dir, tuning, steps=10):
    """Seeded plain-PyTorch AdamW steps on one fixed batch, dropout on: the loss before each step."""
    torch.manual_seed(1234)
    tok = load_tokenizer(str(model_dir))
    module = RecModule(
        TextScorer(apply_tuning(load_classifier(str(model_dir), 1), tuning)),
        PREFERENCE,
        torch.optim.AdamW,
    )
    optimizer = torch.optim.AdamW(
        [p for p in module.parameters() if p.requires_grad], lr=LEARNING_RATES[tuning.mode]
    )
    batch, losses = _batch(tok), []
    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            module(batch)[:, 0], batch["labels"]
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(round(float(loss), 6))
    return losses


def test_losses_are_pinned_on_the_tiny_model(tiny_model_dir):
    """Exact losses (torch 2.13, CPU): a changed init, tokenizer, head, dropout or tuning shows up here."""
    full = _losses_over_steps(tiny_model_dir, FULL)
    lora = _losses_over_steps(tiny_model_dir, LORA)
    assert full == pytest.approx(PINNED["full"], abs=1e-5)
    assert lora == pytest.approx(PINNED["lora"], abs=1e-5)


# Measured once on torch 2.13.0 (CPU); both fall from ln 2 ≈ 0.693 as the model fits the batch.
PINNED = {
    "full": [
        0.694879,
        0.691967,
        0.6928,
        0.690125,
        0.694461,
        0.665846,
        0.60262,
        0.47606,
        0.360385,
        0.264287,
    ],
    "lora": [
        0.693035,
        0.69957,
        0.69149,
        0.700233,
        0.693873,
        0.670861,
        0.649267,
        0.585181,
        0.550931,
        0.432045,
    ],
}
