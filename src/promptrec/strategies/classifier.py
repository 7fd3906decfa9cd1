"""The default strategy: a fresh classification head on the prompt's [CLS] vector.

Serves every hard prompt (question, text, list) and, with ``prompt.soft``, the soft and hybrid
prompts; for next-item it is the catalog head (one output per item).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from promptrec.data.catalog import Catalog
from promptrec.prompts.context import ContextBuilder
from promptrec.prompts.template import DEFAULT_ITEM_TEMPLATE, render_items
from promptrec.strategies.base import Strategy, encoder_inputs
from promptrec.strategies.collaborative import CollaborativeVectors
from promptrec.strategies.soft import SoftPrompt


class TextScorer(nn.Module):
    """A Hugging Face classifier behind the batch-dict interface that every model here shares.
    With collaborative tokens, their vectors join the states where the trainable layers begin."""

    def __init__(self, backbone: nn.Module, soft: SoftPrompt | None = None,
                 lower: nn.Module | None = None, collaborative: CollaborativeVectors | None = None):  # fmt: skip
        super().__init__()
        self.backbone, self.soft, self.lower = backbone, soft, lower
        self.collaborative = collaborative

    def forward(self, batch: dict) -> torch.Tensor:
        inputs = encoder_inputs(batch, self.soft, self.lower)
        if self.collaborative is None:
            return self.backbone(**inputs, attention_mask=batch["attention_mask"]).logits
        seen = self.collaborative.seen(batch)  # one draw for the vectors and the score
        states = inputs.pop("inputs_embeds", None)
        if states is None:
            states = self.backbone.get_input_embeddings()(inputs.pop("input_ids"))
        inputs["inputs_embeds"] = self.collaborative(states, batch, seen)
        logits = self.backbone(**inputs, attention_mask=batch["attention_mask"]).logits
        return self.collaborative.with_score(logits, batch, seen)


class ClassifierStrategy(Strategy):
    name = "classifier"
    backbone = "classifier"
    item_texts: list[str] | None = None  # next item with task.item_init=text
    popularity: torch.Tensor | None = None

    def prepare(self, catalog: Catalog, contexts: ContextBuilder) -> None:
        if self.task.name == "next_item" and self.cfg.task.get("item_init") == "text":
            text = self.cfg.prompt.templates.get("item", DEFAULT_ITEM_TEMPLATE)
            self.item_texts = render_items(catalog.item_ids, contexts, text, self.cfg.prompt.name)
            self.popularity = catalog.popularity

    @torch.no_grad()
    def initialise(self, backbone: nn.Module) -> None:
        """``task.item_init=text``: the catalog head's row for each item is the backbone's own
        pooled encoding of the item's text (centred, unit length), and its bias the item's
        log training count (centred), so the head starts by ranking popular items that look like
        the prompt first, where random rows start from nothing (a 1,682-way layer)."""
        if self.item_texts is None:
            return
        was_training, encoder = backbone.training, backbone.base_model
        backbone.eval()
        pooled = []
        for start in range(0, len(self.item_texts), 128):
            tokens = self.tokenizer(self.item_texts[start : start + 128], padding=True,
                                    truncation=True, max_length=32, return_tensors="pt")  # fmt: skip
            out = encoder(**tokens)
            pooled.append(
                out.pooler_output if out.pooler_output is not None else out.last_hidden_state[:, 0]
            )
        backbone.train(was_training)
        rows = torch.cat(pooled).float()
        head = backbone.classifier
        head.weight.copy_(F.normalize(rows - rows.mean(0), dim=-1).to(head.weight.dtype))
        counts = torch.log1p(self.popularity.float())
        head.bias.copy_((counts - counts.mean()).to(head.bias.dtype))

    def wrap(self, backbone: nn.Module, lower: nn.Module | None = None) -> nn.Module:
        collaborative = (self.collaborative.build(backbone.config.hidden_size)
                         if self.collaborative is not None else None)  # fmt: skip
        return TextScorer(backbone, self.soft_prompt(backbone), lower, collaborative)
