"""Named builders, one per ``model.kind``: the language model on prompts and the ID baselines.

Each takes the run config and the prepared data module (the task fixes the output width, the
catalogue the number of users and items) and returns an ``nn.Module`` that maps a batch dict to
the task's outputs.
"""

from __future__ import annotations

import torch.nn as nn
from omegaconf import DictConfig

from promptrec.errors import ConfigError
from promptrec.models.backbone import TextScorer, load_classifier, load_encoder
from promptrec.models.baselines import MatrixFactorization, Popularity, SASRec
from promptrec.models.tuning import apply_tuning
from promptrec.models.two_tower import TwoTowerScorer


def language_model(cfg: DictConfig, datamodule) -> nn.Module:
    """The backbone with a head as wide as the task needs (known once the data is prepared)."""
    task = datamodule.task
    if task.item_tower:
        return two_tower(cfg, datamodule)
    head = task.num_outputs
    backbone = load_classifier(cfg.model.name_or_path, num_labels=head, dropout=cfg.model.dropout)
    return TextScorer(apply_tuning(backbone, cfg.tuning))


def two_tower(cfg: DictConfig, datamodule) -> nn.Module:
    """One encoder for prompts and item texts (no head): see models/two_tower.py."""
    encoder = apply_tuning(load_encoder(cfg.model.name_or_path, cfg.model.dropout), cfg.tuning)
    tokens = datamodule.prepared.item_tokens
    return TwoTowerScorer(encoder, tokens["input_ids"], tokens["attention_mask"],
                          cfg.task.temperature, cfg.task.sampled_negatives)  # fmt: skip


def popularity(cfg: DictConfig, datamodule) -> nn.Module:
    if datamodule.task.name != "next_item":
        raise ConfigError(
            "model=pop ranks the catalogue by popularity: use it with task=next_item."
        )
    return Popularity(datamodule.prepared.catalog.popularity)


def matrix_factorization(cfg: DictConfig, datamodule) -> nn.Module:
    catalog, task = datamodule.prepared.catalog, datamodule.task
    if cfg.model.objective == "bpr" and task.name != "next_item":
        raise ConfigError(
            "model.objective=bpr ranks items: use it with task=next_item (or model=mf)."
        )
    if task.name == "rating" and task.num_outputs != 1:
        raise ConfigError(
            "model=mf predicts one score per pair: use task.head=regression for rating."
        )
    return MatrixFactorization(len(catalog.user_ids), len(catalog.item_ids), cfg.model.dim,
                               catalog_output=task.name == "next_item", objective=cfg.model.objective)  # fmt: skip


def sasrec(cfg: DictConfig, datamodule) -> nn.Module:
    if datamodule.task.name != "next_item":
        raise ConfigError("model=sasrec predicts the next item: use it with task=next_item.")
    m = cfg.model
    dropout = 0.2 if m.dropout is None else m.dropout
    return SASRec(
        len(datamodule.prepared.catalog.item_ids),
        max(1, cfg.data.history_len),
        m.dim,
        m.layers,
        m.heads,
        dropout,
    )


MODEL_KINDS = {
    "lm": language_model,
    "pop": popularity,
    "mf": matrix_factorization,
    "sasrec": sasrec,
}


def build_model(cfg: DictConfig, datamodule) -> nn.Module:
    """The ``model.kind`` builder, after checks that the combination can work."""
    if cfg.model.kind not in MODEL_KINDS:
        raise ConfigError(
            f"model.kind={cfg.model.kind!r} is unknown; choose one of {sorted(MODEL_KINDS)}."
        )
    if cfg.model.kind != "lm" and cfg.tuning.mode != "full":
        raise ConfigError(
            f"tuning={cfg.tuning.mode} applies to language models; baselines train in full (tuning=full)."
        )
    return MODEL_KINDS[cfg.model.kind](cfg, datamodule)
