"""Cloze prompts: the masked-LM head's prediction at the prompt's ``[MASK]`` slot, read through
a verbalizer (``verbalizer.py``) into class scores, then into the task's outputs.

Only the slot's hidden state goes through the LM head: a full (batch × tokens × 30k-word) logit
tensor would cost hundreds of MB per batch for one row each.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from omegaconf import OmegaConf

from promptrec.data.catalog import Catalog
from promptrec.errors import ConfigError
from promptrec.prompts.context import ContextBuilder
from promptrec.prompts.encoder import Slot
from promptrec.strategies.base import Strategy, encoder_inputs
from promptrec.strategies.soft import VIRTUAL_TOKEN_MODES, SoftPrompt
from promptrec.strategies.verbalizer import Verbalizer

MLM_HEADS = ("cls", "lm_head")  # attribute of the LM head: BERT family, RoBERTa family


def _parts(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(encoder, LM head) of a masked-LM model, also when peft wraps it."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = next((getattr(base, n) for n in MLM_HEADS if hasattr(base, n)), None)
    if head is None:
        raise TypeError(f"{type(base).__name__} has no masked-LM head named one of {MLM_HEADS}")
    return base.base_model, head


class ClozeScorer(nn.Module):
    def __init__(self, backbone: nn.Module, verbalizer: Verbalizer, mask_token_id: int,
                 to_outputs: Callable[[torch.Tensor], torch.Tensor], soft: SoftPrompt | None = None,
                 lower: nn.Module | None = None):  # fmt: skip
        super().__init__()
        self.backbone, self.verbalizer, self.soft, self.lower = backbone, verbalizer, soft, lower
        self.mask_token_id, self.to_outputs = mask_token_id, to_outputs
        _parts(backbone)  # fail at build time, not at the first batch

    def class_scores(self, batch: dict) -> torch.Tensor:
        encoder, head = _parts(self.backbone)
        hidden = encoder(**encoder_inputs(batch, self.soft, self.lower),
                         attention_mask=batch["attention_mask"]).last_hidden_state  # fmt: skip
        slot = hidden[batch["input_ids"] == self.mask_token_id]  # one [MASK] per prompt
        return self.verbalizer(head(slot).float().log_softmax(-1))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.to_outputs(self.class_scores(batch))


class ClozeStrategy(Strategy):
    """``prompt.verbalizer``: label words per class, or ``titles`` (each item's own title)."""

    name = "cloze"
    backbone = "masked_lm"

    @classmethod
    def claimed_by(cls, cfg) -> str | None:
        return "prompt.verbalizer" if cfg.prompt.get("verbalizer") is not None else None

    @classmethod
    def check(cls, cfg) -> None:
        super().check(cfg)
        task, verbalizer = cfg.task.name, cfg.prompt.get("verbalizer") or {}
        if task not in verbalizer:
            raise ConfigError(
                f"prompt '{cfg.prompt.name}' is a cloze prompt but has no verbalizer for task "
                f"'{task}'. Add prompt.verbalizer.{task}: label words per class."
            )
        if cfg.tuning.mode in VIRTUAL_TOKEN_MODES:
            raise ConfigError(
                f"tuning={cfg.tuning.mode} inserts virtual tokens in peft's forward pass, which the "
                "cloze scorer bypasses to read the [MASK] position. Use prompt=cloze with full, "
                "frozen, bitfit, lora, adalora, ia3 or adapter tuning."
            )
        if verbalizer[task] == "titles" and task != "next_item":
            raise ConfigError(
                f"prompt.verbalizer.{task}=titles names items; it only fits task=next_item."
            )

    def slots(self) -> list[Slot]:
        mask, fix = self.tokenizer.mask_token, f"write {self.tokenizer.mask_token} exactly once "
        fix += f"in prompt.templates.{self.task.name}"
        return [Slot(mask, self.tokenizer.mask_token_id, 1, fix), *super().slots()]

    def prepare(self, catalog: Catalog, contexts: ContextBuilder) -> None:
        """The verbalizer's words per class; ``titles`` makes each item's title its label word."""
        spec, task = self.cfg.prompt.verbalizer[self.task.name], self.task
        if spec == "titles":
            self.label_words = [[contexts.item(i)["title"]] for i in catalog.item_ids]
            return
        if isinstance(spec, str) or len(spec) != task.verbalizer_classes:
            raise ConfigError(
                f"prompt.verbalizer.{task.name} must list label words for {task.verbalizer_classes} "
                f"classes (one list per class, in class order), got {spec!r}."
            )
        spec = OmegaConf.to_container(spec) if OmegaConf.is_config(spec) else spec
        self.label_words = [[w] if isinstance(w, str) else [str(x) for x in w] for w in spec]

    def wrap(self, backbone: nn.Module, lower: nn.Module | None = None) -> nn.Module:
        verbalizer = Verbalizer(self.tokenizer, self.label_words,
                                where=f"prompt.verbalizer.{self.task.name}")  # fmt: skip
        return ClozeScorer(backbone, verbalizer, self.tokenizer.mask_token_id,
                           self.task.outputs_from_classes, self.soft_prompt(backbone), lower)  # fmt: skip
