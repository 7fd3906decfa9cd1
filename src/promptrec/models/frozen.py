"""``tuning.freeze_layers=k``: the embeddings and the bottom k transformer layers are frozen.

Their output for a prompt then never changes, so it is computed once per prompt and cached on
disk (pipeline/hidden_cache.py), and an epoch runs only the layers above the cut. :func:`cut`
splits a loaded BERT-style model into :class:`LowerLayers` (frozen, always in eval mode: what the
cache holds) and the model itself, whose embeddings become a pass-through for those cached
states and whose encoder keeps only the top layers; tuning modes are applied after the cut, so
LoRA and adapters sit above it. When trainable input vectors (soft prompts) enter below the cut
the states change every step: :func:`freeze_below` then only freezes the lower part and the
model runs it every step.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from transformers.masking_utils import create_bidirectional_mask

from promptrec.errors import ConfigError


def _encoder_parts(model: nn.Module, k: int) -> tuple[nn.Module, nn.ModuleList]:
    """(the base model, its transformer layers), checking that ``k`` leaves a layer to train."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base = getattr(base, "base_model", base)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not hasattr(base, "embeddings") or layers is None:
        raise ConfigError(
            f"tuning.freeze_layers needs a BERT-style encoder (embeddings + encoder.layer); "
            f"{type(base).__name__} has another layout. Use tuning.freeze_layers=0 with this model."
        )
    if not 0 < k < len(layers):
        raise ConfigError(
            f"tuning.freeze_layers={k} is invalid: this model has {len(layers)} layers, so it must "
            f"be 0 (nothing frozen) to {len(layers) - 1} (the top layer still trains)."
        )
    return base, layers


class LowerLayers(nn.Module):
    """Embeddings + the bottom k layers: token ids → the hidden states entering layer k."""

    def __init__(self, embeddings: nn.Module, layers: list[nn.Module], config):
        super().__init__()
        self.embeddings, self.layers, self.config = embeddings, nn.ModuleList(layers), config
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True):  # frozen means deterministic too: never dropout
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.embeddings(input_ids=input_ids)
        mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=hidden, attention_mask=attention_mask
        )
        for layer in self.layers:
            hidden = layer(hidden, mask)
        return hidden


class CachedStates(nn.Module):
    """Stands in for the embeddings above the cut: the input *is* the hidden state of layer k.
    Keeps the word embeddings reachable (a tied masked-LM decoder, ``get_input_embeddings``)."""

    def __init__(self, word_embeddings: nn.Embedding):
        super().__init__()
        self.word_embeddings = word_embeddings

    def forward(self, input_ids=None, inputs_embeds=None, **kwargs) -> torch.Tensor:
        if inputs_embeds is None:
            raise RuntimeError(
                "a model cut at tuning.freeze_layers needs the hidden states of its cut"
            )
        return inputs_embeds


def cut(model: nn.Module, k: int) -> LowerLayers:
    """Split ``model`` at layer ``k`` in place; returns the frozen lower part."""
    base, layers = _encoder_parts(model, k)
    lower = LowerLayers(base.embeddings, list(layers)[:k], base.config)
    base.embeddings = CachedStates(lower.embeddings.word_embeddings)
    base.encoder.layer = nn.ModuleList(list(layers)[k:])
    return lower


def freeze_below(model: nn.Module, k: int) -> None:
    """Freeze the embeddings and the bottom ``k`` layers without cutting (soft prompts)."""
    base, layers = _encoder_parts(model, k)
    for module in [base.embeddings, *list(layers)[:k]]:
        module.requires_grad_(False)
