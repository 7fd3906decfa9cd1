"""Tuning modes: which parameters of the backbone train. One named builder per mode.

Every builder takes the loaded model and the ``tuning`` config and returns the model to train.
A task head always trains: the classifier, or a masked-LM head (cloze prompts; MiniLM ships
without one). Soft prompt vectors are added after tuning and always train too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn
from peft import LoraConfig, TaskType, get_peft_model

from promptrec.errors import ConfigError

HEADS = ("classifier", "cls", "lm_head")  # sequence-classification head; BERT / RoBERTa LM heads


def _is_head(name: str) -> bool:
    # peft wraps a head it trains as classifier.modules_to_save.*; its frozen original stays so
    return any(p in HEADS for p in name.split(".")) and "original_module" not in name


def full(model: nn.Module, cfg) -> nn.Module:
    """Every weight trains: the strongest and the most expensive mode."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def frozen(model: nn.Module, cfg) -> nn.Module:
    """Only the head trains (a linear probe); with a cloze prompt and no head to learn, only soft
    prompt vectors train — or nothing, which is zero-shot evaluation."""
    for (
        name,
        p,
    ) in model.named_parameters():  # tied LM decoder = word embeddings: listed once, frozen
        p.requires_grad_(_is_head(name) and "embeddings" not in name)
    return model


def peft_task_type(model: nn.Module) -> TaskType:
    """SEQ_CLS makes peft train and save a classifier head in full; a bare encoder has none."""
    return TaskType.SEQ_CLS if hasattr(model, "classifier") else TaskType.FEATURE_EXTRACTION


def lora(model: nn.Module, cfg) -> nn.Module:
    """Low-rank updates on chosen linear layers (peft); the head is saved and trained in full."""
    config = LoraConfig(
        task_type=peft_task_type(model),
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
    )
    try:
        model = get_peft_model(model, config)
    except ValueError as exc:
        raise ConfigError(
            f"tuning.lora.target_modules={list(cfg.lora.target_modules)} did not match the model "
            f"({str(exc)[:200]}). For BERT use names such as query, key, value, dense."
        ) from exc
    for name, p in model.named_parameters():  # a masked-LM head trains in full beside the adapters
        if _is_head(name) and "classifier" not in name and "embeddings" not in name:
            p.requires_grad_(True)
    return model


TUNING_MODES: dict[str, Callable[[nn.Module, object], nn.Module]] = {
    "full": full,
    "frozen": frozen,
    "lora": lora,
}


def apply_tuning(model: nn.Module, cfg) -> nn.Module:
    if cfg.mode not in TUNING_MODES:
        raise ConfigError(
            f"tuning.mode={cfg.mode!r} is unknown; choose one of {sorted(TUNING_MODES)}."
        )
    return TUNING_MODES[cfg.mode](model, cfg).train()


def count_parameters(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params/total": total, "params/trainable": trainable}
