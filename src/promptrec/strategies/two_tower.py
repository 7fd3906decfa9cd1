"""Two-tower next-item scorer: one BERT encodes the user's prompt and every item's text.

The score of an item is the cosine of the two mean-pooled vectors divided by a temperature (as
sentence-transformers trains MiniLM). Training uses softmax over the batch's target items plus
optional uniformly sampled items; evaluation re-encodes the whole catalogue with the current
weights, once per evaluation loop. Because items are text, the head scores items it never saw
in training (cold-start items) — unlike the catalog head, whose output row for such an item
never received a gradient.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from promptrec.data.catalog import Catalog
from promptrec.errors import ConfigError
from promptrec.prompts.context import ContextBuilder
from promptrec.prompts.template import DEFAULT_ITEM_TEMPLATE, render_items
from promptrec.strategies.base import Strategy, encoder_inputs
from promptrec.strategies.soft import SoftPrompt


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors that are not padding."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class TwoTowerScorer(nn.Module):
    def __init__(
        self,
        encoder: nn.Module,
        item_input_ids: torch.Tensor,
        item_attention_mask: torch.Tensor,
        temperature: float = 0.05,
        sampled_negatives: int = 0,
        item_batch_size: int = 256,
        soft: SoftPrompt | None = None,
        lower: nn.Module | None = None,
    ):
        super().__init__()
        self.encoder, self.soft = encoder, soft  # soft prompt vectors: the user's prompt only
        self.lower = lower  # tuning.freeze_layers: item texts go through it on the fly
        # item token ids travel with the module (device moves) but not into checkpoints: they are
        # rebuilt from the data, so a checkpoint can score a catalogue with new items
        self.register_buffer("item_input_ids", item_input_ids, persistent=False)
        self.register_buffer("item_attention_mask", item_attention_mask, persistent=False)
        self.temperature, self.sampled_negatives = temperature, sampled_negatives
        self.item_batch_size = item_batch_size
        self._catalogue: torch.Tensor | None = None  # item vectors for the current eval loop

    @property
    def num_items(self) -> int:
        return self.item_input_ids.shape[0]

    def encode(self, batch: dict, soft: SoftPrompt | None = None) -> torch.Tensor:
        """Unit vectors of a batch of texts (token ids, or the cached states of a cut model)."""
        mask = batch["attention_mask"]
        out = self.encoder(**encoder_inputs(batch, soft, self.lower), attention_mask=mask)
        return F.normalize(mean_pool(out.last_hidden_state, mask), dim=-1)

    def encode_items(self, index: torch.Tensor) -> torch.Tensor:
        """Vectors of the given items, trimmed to their longest text (less padding to encode)."""
        mask = self.item_attention_mask[index]
        width = int(mask.sum(1).max())
        return self.encode(
            {"input_ids": self.item_input_ids[index, :width], "attention_mask": mask[:, :width]}
        )

    def catalogue_vectors(self) -> torch.Tensor:
        if self._catalogue is None:
            index = torch.arange(self.num_items, device=self.item_input_ids.device)
            with torch.no_grad():
                self._catalogue = torch.cat(
                    [self.encode_items(chunk) for chunk in index.split(self.item_batch_size)]
                )
        return self._catalogue

    def train(self, mode: bool = True):
        # Lightning switches modes around every evaluation loop: the cached item vectors are
        # dropped then, so each evaluation sees the weights as they are now
        self._catalogue = None
        return super().train(mode)

    def forward(self, batch: dict) -> torch.Tensor:
        """Scores of every catalogue item for each prompt: (batch, items)."""
        users = self.encode(batch, self.soft)
        return users @ self.catalogue_vectors().T / self.temperature

    def training_loss(self, batch: dict) -> torch.Tensor:
        """Softmax cross-entropy over the batch's distinct targets (+ sampled items).

        Distinct targets: two users with the same next item share one candidate, so neither is
        pushed away from its own answer. A sampled item may be another user's target; it is then
        that user's positive only once, as a distinct candidate.
        """
        targets = batch["labels"].long()
        candidates = targets
        if self.sampled_negatives > 0:
            sampled = torch.randint(
                self.num_items, (self.sampled_negatives,), device=targets.device
            )
            candidates = torch.cat([targets, sampled])
        candidates, position = torch.unique(candidates, return_inverse=True)
        users = self.encode(batch, self.soft)
        logits = users @ self.encode_items(candidates).T / self.temperature
        return F.cross_entropy(logits, position[: len(targets)])


class TwoTowerStrategy(Strategy):
    """``task=next_item task.head=two_tower``: items are scored from their text
    (``prompt.templates.item``, else a default), so unseen items score the same way."""

    name = "two_tower"
    backbone = "encoder"

    @classmethod
    def claimed_by(cls, cfg) -> str | None:
        return "task.head=two_tower" if cfg.task.get("head") == "two_tower" else None

    @classmethod
    def check(cls, cfg) -> None:
        super().check(cfg)
        if cfg.task.name != "next_item" or cfg.task.get("head") != "two_tower":
            raise ConfigError(
                "the two_tower strategy ranks item texts: use it as task=next_item "
                "task.head=two_tower."
            )
        t = cfg.task
        for key, ok, rule in (("temperature", t.temperature > 0, "a positive number"),
                              ("sampled_negatives", t.sampled_negatives >= 0, "≥ 0"),
                              ("item_max_tokens", t.item_max_tokens > 0, "a positive integer")):  # fmt: skip
            if not ok:
                raise ConfigError(f"task.{key}={t[key]!r} is invalid: it must be {rule}.")
        if cfg.tuning.mode == "prompt_tuning":
            raise ConfigError(
                "tuning=prompt_tuning adds its virtual tokens to the encoder's output, which the "
                "two-tower head's mean pooling over the prompt's own tokens cannot line up with. Use "
                "tuning=prefix (it keeps the length), lora, ia3 or adapter with task.head=two_tower."
            )

    def prepare(self, catalog: Catalog, contexts: ContextBuilder) -> None:
        """Every catalogue item as text and token ids (cheap: one short text per item)."""
        text = self.cfg.prompt.templates.get("item", DEFAULT_ITEM_TEMPLATE)
        self.item_texts = render_items(catalog.item_ids, contexts, text, self.cfg.prompt.name)
        tokens = self.tokenizer(self.item_texts, padding=True, truncation=True, return_tensors="pt",
                                max_length=self.cfg.task.item_max_tokens)  # fmt: skip
        self.item_tokens = {k: tokens[k] for k in ("input_ids", "attention_mask")}

    def wrap(self, backbone: nn.Module, lower: nn.Module | None = None) -> nn.Module:
        tokens, task = self.item_tokens, self.cfg.task
        return TwoTowerScorer(backbone, tokens["input_ids"], tokens["attention_mask"],
                              task.temperature, task.sampled_negatives,
                              soft=self.soft_prompt(backbone), lower=lower)  # fmt: skip
