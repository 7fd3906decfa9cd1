"""Continuous prompts: trainable vectors that stand in for ``[SOFT]`` marker tokens.

An input option any strategy can take. The markers are written into the prompt text (N in front
of it for ``position: prefix``, or wherever a hybrid template puts them), so truncation, caching
and inspection see them like any other token. In the model each marker's word embedding is
replaced by its own trainable vector, the k-th marker of a prompt by the k-th vector, and the
backbone runs on embeddings.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from promptrec.errors import ConfigError
from promptrec.prompts.encoder import Slot
from promptrec.prompts.template import SOFT_TOKEN

POSITIONS = ("prefix", "inline")
VIRTUAL_TOKEN_MODES = ("prefix", "prompt_tuning")  # peft's own soft prompts (tuning modes)


class SoftPrompt(nn.Module):
    def __init__(self, word_embeddings: nn.Embedding, marker_id: int, n_tokens: int,
                 init_ids: list[int] | None = None):  # fmt: skip
        super().__init__()
        if init_ids:  # a text's embeddings, repeated to length N (Lester et al. 2021)
            rows = torch.tensor([init_ids[i % len(init_ids)] for i in range(n_tokens)])
        else:  # embeddings of random vocabulary words: the scale the backbone expects
            rows = torch.randint(word_embeddings.num_embeddings, (n_tokens,))
        self.vectors = nn.Parameter(word_embeddings.weight[rows].detach().clone())
        self.marker_id = marker_id
        self._word_embeddings = [word_embeddings]  # a list: not a submodule, so not saved twice

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids with N markers per row → input embeddings with the soft vectors in place."""
        is_soft = input_ids == self.marker_id
        embeds = self._word_embeddings[0](input_ids.masked_fill(is_soft, 0))
        vectors = self.vectors.to(embeds.dtype).expand(len(input_ids), -1, -1)
        return embeds.masked_scatter(is_soft.unsqueeze(-1), vectors)


def check_soft(cfg) -> None:
    """``prompt.soft`` settings, and the tuning modes that bring soft prompts of their own."""
    soft, mode = cfg.prompt.soft, cfg.tuning.mode
    if soft.n_tokens <= 0:
        raise ConfigError(
            f"prompt.soft.n_tokens={soft.n_tokens!r} is invalid: it must be a positive integer."
        )
    if soft.position not in POSITIONS:
        raise ConfigError(
            f"prompt.soft.position={soft.position!r} is invalid: it must be 'prefix' or 'inline'."
        )
    if mode in VIRTUAL_TOKEN_MODES:
        raise ConfigError(
            f"tuning={mode} adds peft's own virtual tokens, and prompt={cfg.prompt.name} already "
            "has trainable [SOFT] vectors: two kinds of soft prompt in one input cannot be told "
            "apart. Use prompt=question with tuning=prompt_tuning, or prompt=soft with tuning=frozen."
        )


class SoftInput:
    """``prompt.soft`` in a run: its marker token, where the markers go, and its vectors."""

    def __init__(self, cfg, tokenizer):
        self.cfg, self.tokenizer = cfg, tokenizer
        tokenizer.add_tokens([SOFT_TOKEN], special_tokens=True)  # one token, never split
        fix = f"make the template's {SOFT_TOKEN} markers match prompt.soft.n_tokens"
        self.slot = Slot(SOFT_TOKEN, tokenizer.convert_tokens_to_ids(SOFT_TOKEN), cfg.n_tokens, fix)

    def place(self, text: str) -> str:
        if self.cfg.position == "prefix":
            return " ".join([SOFT_TOKEN] * self.cfg.n_tokens) + " " + text
        return text

    def build(self, backbone: nn.Module) -> SoftPrompt:
        init = self.cfg.init_text
        ids = self.tokenizer(init, add_special_tokens=False)["input_ids"] if init else None
        return SoftPrompt(
            backbone.get_input_embeddings(), self.slot.token_id, self.cfg.n_tokens, ids
        )
