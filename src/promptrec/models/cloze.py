"""Cloze scoring: the masked-LM head's prediction at the prompt's ``[MASK]`` slot, read through
a verbalizer (``prompts/verbalizer.py``) into class scores, then into the task's outputs.

Only the slot's hidden state goes through the LM head: a full (batch × tokens × 30k-word) logit
tensor would cost hundreds of MB per batch for one row each.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from promptrec.models.soft_prompt import SoftPrompt, encoder_inputs
from promptrec.prompts.verbalizer import Verbalizer

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
                 to_outputs: Callable[[torch.Tensor], torch.Tensor], soft: SoftPrompt | None = None):  # fmt: skip
        super().__init__()
        self.backbone, self.verbalizer, self.soft = backbone, verbalizer, soft
        self.mask_token_id, self.to_outputs = mask_token_id, to_outputs
        _parts(backbone)  # fail at build time, not at the first batch

    def class_scores(self, batch: dict) -> torch.Tensor:
        encoder, head = _parts(self.backbone)
        hidden = encoder(**encoder_inputs(batch["input_ids"], self.soft),
                         attention_mask=batch["attention_mask"]).last_hidden_state  # fmt: skip
        slot = hidden[batch["input_ids"] == self.mask_token_id]  # one [MASK] per prompt
        return self.verbalizer(head(slot).float().log_softmax(-1))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.to_outputs(self.class_scores(batch))
