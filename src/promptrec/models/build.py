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
from promptrec.models.backbone import add_token_rows, load_backbone
from promptrec.models.baselines import (
    BPR,
    FactorizationMachine,
    ItemKNN,
    MatrixFactorization,
    Popularity,
    SASRec,
)
from promptrec.models.features import feature_table
from promptrec.models.frozen import LowerLayers, cut, freeze_below
from promptrec.models.item_text import encode_texts, item_texts
from promptrec.models.tuning import tune
from promptrec.models.warm_start import check_source, source_checkpoint, warm_start


@dataclass
class BuiltModel:
    model: nn.Module
    callbacks: list[L.Callback] = field(default_factory=list)  # the tuning mode's
    penalty: object = None  # a loss term of the tuning mode (AdaLoRA's orthogonality), or None
    lower: LowerLayers | None = None  # tuning.freeze_layers: the frozen part whose output is cached


def language_model(cfg: DictConfig, datamodule) -> BuiltModel:
    """The backbone the prompt strategy asks for, tuned, then wrapped by the strategy. With
    ``tuning.freeze_layers=k`` the backbone is cut below the tuning mode (models/frozen.py); with
    ``model.init_from`` it starts from a finished run's weights (models/warm_start.py)."""
    strategy, k = datamodule.strategy, int(cfg.tuning.get("freeze_layers") or 0)
    backbone = load_backbone(strategy.backbone, cfg.model, strategy.num_outputs)
    if strategy.collaborative is not None:  # its marker tokens need rows below the cut
        add_token_rows(backbone, len(strategy.tokenizer))
    strategy.initialise(backbone)  # e.g. a catalog head whose rows start from the item texts
    cached = k > 0 and strategy.soft is None  # soft vectors enter below the cut: no cache
    lower = cut(backbone, k) if cached else None
    tuned = tune(backbone, cfg.tuning)
    if lower is not None:
        lower.requires_grad_(False)  # a tied LM decoder shares the word embeddings: frozen too
    elif k > 0:
        print(f"tuning.freeze_layers={k}: prompt={cfg.prompt.name} has trainable [SOFT] vectors "
              "below the cut, so the frozen layers run every step instead of being cached.")  # fmt: skip
        freeze_below(tuned.model, k)
    model = strategy.wrap(tuned.model, lower)
    if cfg.model.get("init_from"):  # e.g. the text run a collaborative run builds on
        warm_start(model, source_checkpoint(cfg.model.init_from, datamodule.prepared.split_hash))
    return BuiltModel(model, tuned.callbacks, tuned.penalty, lower)


def popularity(cfg: DictConfig, datamodule) -> BuiltModel:
    if datamodule.task.name != "next_item":
        raise ConfigError(
            "model=pop ranks the catalogue by popularity: use it with task=next_item."
        )
    return BuiltModel(Popularity(datamodule.prepared.catalog.popularity))


def matrix_factorization(cfg: DictConfig, datamodule) -> BuiltModel:
    catalog, task = datamodule.prepared.catalog, datamodule.task
    if task.name == "rating" and task.num_outputs != 1:
        raise ConfigError(
            "model=mf predicts one score per pair: use task.head=regression for rating."
        )
    return BuiltModel(MatrixFactorization(len(catalog.user_ids), len(catalog.item_ids), cfg.model.dim,
                                          catalog_output=task.name == "next_item"))  # fmt: skip


def factorization_machine(cfg: DictConfig, datamodule) -> BuiltModel:
    task, prepared = datamodule.task, datamodule.prepared
    if task.name == "next_item" or task.num_outputs != 1:
        raise ConfigError("model=fm scores one (user, item) pair: use it with task=preference or "
                          "task=rating (task.head=regression).")  # fmt: skip
    table = feature_table(prepared.catalog, prepared.users, prepared.items, cfg.model.side_features)
    return BuiltModel(FactorizationMachine(table.user, table.item, table.size, cfg.model.dim))


def _ranking_only(cfg: DictConfig, datamodule) -> None:
    if datamodule.task.name != "next_item":
        raise ConfigError(f"model={cfg.model.kind} ranks the catalogue: use it with task=next_item "
                          "(model=mf scores preference and rating).")  # fmt: skip


def bpr(cfg: DictConfig, datamodule) -> BuiltModel:
    _ranking_only(cfg, datamodule)
    prepared = datamodule.prepared
    interacted = prepared.catalog.training_matrix(prepared.split)
    return BuiltModel(BPR(interacted, cfg.model.dim, cfg.model.reg_weight))


def item_knn(cfg: DictConfig, datamodule) -> BuiltModel:
    _ranking_only(cfg, datamodule)
    prepared = datamodule.prepared
    interacted = prepared.catalog.training_matrix(prepared.split)
    return BuiltModel(ItemKNN(interacted, cfg.model.k, cfg.model.shrink))


def sasrec(cfg: DictConfig, datamodule) -> BuiltModel:
    if datamodule.task.name != "next_item":
        raise ConfigError("model=sasrec predicts the next item: use it with task=next_item.")
    m, prepared = cfg.model, datamodule.prepared
    dropout = 0.2 if m.dropout is None else m.dropout
    text, ids = None, m.get("ids", True)  # saved configs may predate both
    if m.get("text_from"):
        text = encode_texts(item_texts(prepared.items, prepared.catalog.item_ids), m.text_from)
    items = len(prepared.catalog.item_ids)
    return BuiltModel(
        SASRec(items, max(1, cfg.data.history_len), m.dim, m.layers, m.heads, dropout, text, ids)
    )


MODEL_KINDS = {
    "lm": language_model,
    "pop": popularity,
    "mf": matrix_factorization,
    "bpr": bpr,
    "fm": factorization_machine,
    "itemknn": item_knn,
    "sasrec": sasrec,
}


def check_model(cfg: DictConfig) -> None:
    """Start-up checks of ``model`` that need no data."""
    if cfg.model.kind not in MODEL_KINDS:
        raise ConfigError(
            f"model.kind={cfg.model.kind!r} is unknown; choose one of {sorted(MODEL_KINDS)}."
        )
    if cfg.model.kind == "itemknn" and (cfg.model.k < 1 or cfg.model.shrink < 0):
        raise ConfigError(
            f"model.k={cfg.model.k}, model.shrink={cfg.model.shrink}: ItemKNN needs k ≥ 1 "
            "neighbours and a shrinkage ≥ 0, e.g. model.k=100 model.shrink=0."
        )
    if cfg.model.kind != "lm" and cfg.tuning.mode != "full":
        raise ConfigError(
            f"tuning={cfg.tuning.mode} applies to language models; baselines train in full (tuning=full)."
        )
    if (
        cfg.model.kind == "sasrec"
        and not cfg.model.get("ids", True)
        and not cfg.model.get("text_from")
    ):
        raise ConfigError("model.ids=false leaves SASRec's items nothing to be: set "
                          "model.text_from too (e.g. experiment=sasrec_text model.ids=false).")  # fmt: skip
    if cfg.model.get("init_from"):
        check_source(cfg.model.init_from, cfg)


def build_model(cfg: DictConfig, datamodule) -> BuiltModel:
    """The ``model.kind`` builder, after checks that the combination can work."""
    check_model(cfg)
    return MODEL_KINDS[cfg.model.kind](cfg, datamodule)
