"""A linear head on the mean of the prompt's token vectors instead of its [CLS] vector.

MiniLM-L6 (the default backbone) was trained by sentence-transformers to be read by mean pooling,
so its [CLS] vector is not what it was taught to fill; this head reads what it was. It is also
the worked example of docs/architecture.md's "add a prompt strategy" recipe: this module, its
YAML (conf/prompt/mean_pool.yaml) and its test are all it takes.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from promptrec.strategies.base import Strategy, encoder_inputs
from promptrec.strategies.soft import SoftPrompt
from promptrec.strategies.two_tower import mean_pool


class MeanPoolScorer(nn.Module):
    def __init__(self, encoder: nn.Module, num_outputs: int, soft: SoftPrompt | None = None,
                 lower: nn.Module | None = None):  # fmt: skip
        super().__init__()
        self.encoder, self.soft, self.lower = encoder, soft, lower
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(getattr(encoder.config, "hidden_dropout_prob", 0.1))
        self.classifier = nn.Linear(hidden, num_outputs)  # the name tuning modes keep trainable

    def forward(self, batch: dict) -> torch.Tensor:
        out = self.encoder(**encoder_inputs(batch, self.soft, self.lower),
                           attention_mask=batch["attention_mask"])  # fmt: skip
        pooled = mean_pool(out.last_hidden_state, batch["attention_mask"])
        return self.classifier(self.dropout(pooled))


class MeanPoolStrategy(Strategy):
    name = "mean_pool"
    backbone = "encoder"

    def wrap(self, backbone: nn.Module, lower: nn.Module | None = None) -> nn.Module:
        return MeanPoolScorer(backbone, self.num_outputs, self.soft_prompt(backbone), lower)
