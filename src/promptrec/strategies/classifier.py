"""The default strategy: a fresh classification head on the prompt's [CLS] vector.

Serves every hard prompt (question, text, list) and, with ``prompt.soft``, the soft and hybrid
prompts; for next-item it is the catalog head (one output per item).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from promptrec.strategies.base import Strategy, encoder_inputs
from promptrec.strategies.soft import SoftPrompt


class TextScorer(nn.Module):
    """A Hugging Face classifier behind the batch-dict interface that every model here shares."""

    def __init__(
        self, backbone: nn.Module, soft: SoftPrompt | None = None, lower: nn.Module | None = None
    ):
        super().__init__()
        self.backbone, self.soft, self.lower = backbone, soft, lower

    def forward(self, batch: dict) -> torch.Tensor:
        inputs = encoder_inputs(batch, self.soft, self.lower)
        return self.backbone(**inputs, attention_mask=batch["attention_mask"]).logits


class ClassifierStrategy(Strategy):
    name = "classifier"
    backbone = "classifier"

    def wrap(self, backbone: nn.Module, lower: nn.Module | None = None) -> nn.Module:
        return TextScorer(backbone, self.soft_prompt(backbone), lower)
