"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021), injected into BERT layers.

peft has none and AdapterHub's ``adapters`` package cannot live beside transformers 5, so this is
our own: down-projection, nonlinearity, up-projection initialised at zero, plus a residual, so a
fresh adapter is the identity and training starts from the pretrained model exactly. Houlsby
places one after the attention output projection and one after the feed-forward output
projection of every layer; Pfeiffer only the feed-forward one.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn

from promptrec.errors import ConfigError

# Where the adapters go, as module-name patterns of the BERT family (BERT, RoBERTa, MiniLM, …).
PLACES = {
    "houlsby": (r"layer\.\d+\.attention\.output$", r"layer\.\d+\.output$"),
    "pfeiffer": (r"layer\.\d+\.output$",),
}


class Bottleneck(nn.Module):
    def __init__(self, hidden: int, reduction_factor: int):
        super().__init__()
        width = max(1, hidden // reduction_factor)
        self.down, self.up = nn.Linear(hidden, width), nn.Linear(width, hidden)
        self.act = nn.GELU()
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)  # up = 0: the adapter starts as the identity
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


class WithAdapter(nn.Module):
    """A sublayer's output projection followed by its adapter (before dropout, residual and
    LayerNorm, which the surrounding BERT module still applies)."""

    def __init__(self, projection: nn.Linear, adapter: Bottleneck):
        super().__init__()
        self.projection, self.adapter = projection, adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.projection(x))


def add_adapters(model: nn.Module, kind: str, reduction_factor: int) -> int:
    """Wrap the ``dense`` projection of every matching sublayer; returns how many were added."""
    if kind not in PLACES:
        raise ConfigError(
            f"tuning.adapter.kind={kind!r} is unknown; choose one of {sorted(PLACES)}."
        )
    patterns = [re.compile(p) for p in PLACES[kind]]
    targets = [m for name, m in model.named_modules()
               if any(p.search(name) for p in patterns) and isinstance(getattr(m, "dense", None), nn.Linear)]  # fmt: skip
    if not targets:
        raise ConfigError(
            f"tuning=adapter found no BERT-style layers (…layer.N.output.dense) in "
            f"{type(model).__name__}; adapters support BERT-family backbones only."
        )
    for module in targets:
        dense = module.dense
        module.dense = WithAdapter(dense, Bottleneck(dense.out_features, reduction_factor))
    return len(targets)
