"""Named builders, one per ``model.kind``: the language model on prompts and the ID baselines.

Each takes the run config and the prepared data module (the task fixes the output width, the
catalogue the number of users and items) and returns an ``nn.Module`` that maps a batch dict to
the task's outputs.
"""

from __future__ import annotations

import torch.nn as nn
from omegaconf import DictConfig

from promptrec.errors import ConfigError
from promptrec.models.backbone import TextScorer, load_classifier, load_encoder, load_masked_lm
from promptrec.models.baselines import MatrixFactorization, Popularity, SASRec
from promptrec.models.cloze import ClozeScorer
from promptrec.models.soft_prompt import SoftPrompt
from promptrec.models.tuning import apply_tuning
from promptrec.models.two_tower import TwoTowerScorer
from promptrec.prompts.template import SOFT_TOKEN
from promptrec.prompts.verbalizer import Verbalizer


def language_model(cfg: DictConfig, datamodule) -> nn.Module:
    """A BERT scorer: classifier head, cloze (masked-LM + verbalizer) or two-tower."""
    task, cloze = datamodule.task, datamodule.prepared.label_words is not None
    if task.item_tower and cloze:
        raise ConfigError(
            f"prompt={cfg.prompt.name} scores classes through the [MASK] slot, while "
            "task.head=two_tower scores item texts. Use task.head=catalog with a cloze prompt."
        )
    if task.item_tower:
        return two_tower(cfg, datamodule)
    if cloze:
        return cloze_model(cfg, datamodule)
    backbone = load_classifier(cfg.model.name_or_path, num_labels=task.num_outputs,
                               dropout=cfg.model.dropout)  # fmt: skip
    backbone = apply_tuning(backbone, cfg.tuning)
    return TextScorer(backbone, soft_prompt(cfg, datamodule, backbone))


def cloze_model(cfg: DictConfig, datamodule) -> nn.Module:
    """The masked-LM head at the template's [MASK], read through the prompt's verbalizer."""
    tokenizer, task = datamodule.tokenizer, datamodule.task
    backbone = apply_tuning(load_masked_lm(cfg.model.name_or_path, cfg.model.dropout), cfg.tuning)
    verbalizer = Verbalizer(tokenizer, datamodule.prepared.label_words,
                            where=f"prompt.verbalizer.{task.name}")  # fmt: skip
    return ClozeScorer(backbone, verbalizer, tokenizer.mask_token_id, task.outputs_from_classes,
                       soft_prompt(cfg, datamodule, backbone))  # fmt: skip


def two_tower(cfg: DictConfig, datamodule) -> nn.Module:
    """One encoder for prompts and item texts (no head): see models/two_tower.py."""
    encoder = apply_tuning(load_encoder(cfg.model.name_or_path, cfg.model.dropout), cfg.tuning)
    tokens = datamodule.prepared.item_tokens
    return TwoTowerScorer(encoder, tokens["input_ids"], tokens["attention_mask"],
                          cfg.task.temperature, cfg.task.sampled_negatives,
                          soft=soft_prompt(cfg, datamodule, encoder))  # fmt: skip


def soft_prompt(cfg: DictConfig, datamodule, backbone: nn.Module) -> SoftPrompt | None:
    """Trainable vectors for the prompt's [SOFT] markers (none for a hard prompt)."""
    soft = cfg.prompt.get("soft")
    if soft is None:
        return None
    tokenizer = datamodule.tokenizer
    init = (
        tokenizer(soft.init_text, add_special_tokens=False)["input_ids"] if soft.init_text else None
    )
    return SoftPrompt(backbone.get_input_embeddings(), tokenizer.convert_tokens_to_ids(SOFT_TOKEN),
                      soft.n_tokens, init)  # fmt: skip


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
