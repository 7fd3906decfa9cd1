"""Continuous prompts: trainable vectors that stand in for ``[SOFT]`` marker tokens.

The data module writes the markers into the prompt text (N in front of it for ``position:
prefix``, or wherever a hybrid template puts them), so truncation, caching and inspection see
them like any other token. Here each marker's word embedding is replaced by its own trainable
vector, the k-th marker of a prompt by the k-th vector, and the backbone runs on embeddings.
"""

from __future__ import annotations

import torch
import torch.nn as nn


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


def encoder_inputs(input_ids: torch.Tensor, soft: SoftPrompt | None) -> dict:
    """Keyword arguments for a Hugging Face model: token ids, or embeddings with soft vectors."""
    return {"input_ids": input_ids} if soft is None else {"inputs_embeds": soft(input_ids)}
