"""Named builders, one per ``model.kind``: the language model on prompts and the ID baselines.

Each takes the run config and the prepared data module (the task fixes the output width, the
catalogue the number of users and items) and returns a :class:`BuiltModel`: an ``nn.Module``
that maps a batch dict to the task's outputs, with what its tuning mode needs while training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
import torch.nn as nn
from omegaconf import DictConfig

from promptrec.errors import ConfigError
from promptrec.models.backbone import load_backbone
from promptrec.models.baselines import MatrixFactorization, Popularity, SASRec
from promptrec.models.tuning import tune


@dataclass
class BuiltModel:
    model: nn.Module
    callbacks: list[L.Callback] = field(default_factory=list)  # the tuning mode's
    penalty: object = None  # a loss term of the tuning mode (AdaLoRA's orthogonality), or None


def language_model(cfg: DictConfig, datamodule) -> BuiltModel:
    """The backbone the prompt strategy asks for, tuned, then wrapped by the strategy."""
    strategy = datamodule.strategy
    tuned = tune(load_backbone(strategy.backbone, cfg.model, strategy.num_outputs), cfg.tuning)
    return BuiltModel(strategy.wrap(tuned.model), tuned.callbacks, tuned.penalty)


def popularity(cfg: DictConfig, datamodule) -> BuiltModel:
    if datamodule.task.name != "next_item":
        raise ConfigError(
            "model=pop ranks the catalogue by popularity: use it with task=next_item."
        )
    return BuiltModel(Popularity(datamodule.prepared.catalog.popularity))


def matrix_factorization(cfg: DictConfig, datamodule) -> BuiltModel:
    catalog, task = datamodule.prepared.catalog, datamodule.task
    if cfg.model.objective == "bpr" and task.name != "next_item":
        raise ConfigError(
            "model.objective=bpr ranks items: use it with task=next_item (or model=mf)."
        )
    if task.name == "rating" and task.num_outputs != 1:
        raise ConfigError(
            "model=mf predicts one score per pair: use task.head=regression for rating."
        )
    return BuiltModel(MatrixFactorization(len(catalog.user_ids), len(catalog.item_ids), cfg.model.dim,
                                          catalog_output=task.name == "next_item", objective=cfg.model.objective))  # fmt: skip


def sasrec(cfg: DictConfig, datamodule) -> BuiltModel:
    if datamodule.task.name != "next_item":
        raise ConfigError("model=sasrec predicts the next item: use it with task=next_item.")
    m = cfg.model
    dropout = 0.2 if m.dropout is None else m.dropout
    items = len(datamodule.prepared.catalog.item_ids)
    return BuiltModel(
        SASRec(items, max(1, cfg.data.history_len), m.dim, m.layers, m.heads, dropout)
    )


MODEL_KINDS = {
    "lm": language_model,
    "pop": popularity,
    "mf": matrix_factorization,
    "sasrec": sasrec,
}


def check_model(cfg: DictConfig) -> None:
    """Start-up checks of ``model`` that need no data."""
    if cfg.model.kind not in MODEL_KINDS:
        raise ConfigError(
            f"model.kind={cfg.model.kind!r} is unknown; choose one of {sorted(MODEL_KINDS)}."
        )
    if cfg.model.kind == "mf" and cfg.model.objective not in ("task", "bpr"):
        raise ConfigError(
            f"model.objective={cfg.model.objective!r} is invalid: it must be 'task' or 'bpr'. "
            "Fix it on the command line or in conf/."
        )
    if cfg.model.kind != "lm" and cfg.tuning.mode != "full":
        raise ConfigError(
            f"tuning={cfg.tuning.mode} applies to language models; baselines train in full (tuning=full)."
        )


def build_model(cfg: DictConfig, datamodule) -> BuiltModel:
    """The ``model.kind`` builder, after checks that the combination can work."""
    check_model(cfg)
    return MODEL_KINDS[cfg.model.kind](cfg, datamodule)
