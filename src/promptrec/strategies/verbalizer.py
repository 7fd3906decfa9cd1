"""A verbalizer maps a masked-LM's word distribution at the [MASK] slot to class scores.

Each class has one or more label words (``yes``/``good`` for "like"). A word that the tokenizer
splits into several pieces scores the mean of its pieces' log-probabilities at the slot (as
OpenPrompt's "mean" handling does), so ``Schindler's List`` is as usable as ``yes``; a class
scores the mean over its words. Scores are log-probabilities, so a softmax over them is the
model's belief over classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from promptrec.errors import ConfigError


class Verbalizer(nn.Module):
    def __init__(self, tokenizer, label_words: Sequence[Sequence[str]], where: str = "verbalizer"):
        super().__init__()
        if not label_words or any(not words for words in label_words):
            raise ConfigError(
                f"{where} needs at least one label word for every class, got {list(label_words)}. "
                "Give a list of word lists, one per class."
            )
        pieces = [[self._pieces(tokenizer, w, where) for w in words] for words in label_words]
        n_words = max(len(words) for words in pieces)
        n_pieces = max(len(p) for words in pieces for p in words)
        ids = torch.zeros(len(pieces), n_words, n_pieces, dtype=torch.long)
        mask = torch.zeros(len(pieces), n_words, n_pieces, dtype=torch.bool)
        for c, words in enumerate(pieces):
            for w, word in enumerate(words):
                ids[c, w, : len(word)] = torch.tensor(word)
                mask[c, w, : len(word)] = True
        self.label_words = [list(words) for words in label_words]
        # ids travel with the model's device, not into checkpoints (rebuilt from the config)
        self.register_buffer("ids", ids, persistent=False)
        self.register_buffer("mask", mask, persistent=False)

    @staticmethod
    def _pieces(tokenizer, word: str, where: str) -> list[int]:
        ids = tokenizer(" " + str(word).strip(), add_special_tokens=False)["input_ids"]
        if not ids or tokenizer.unk_token_id in ids:
            raise ConfigError(
                f"{where}: label word {word!r} maps to {'nothing' if not ids else '[UNK]'} in the "
                "tokenizer's vocabulary. Choose a word the model knows."
            )
        return ids

    @property
    def num_classes(self) -> int:
        return self.ids.shape[0]

    def forward(self, log_probs: torch.Tensor) -> torch.Tensor:
        """(batch, vocab) log-probabilities at the slot → (batch, classes) scores."""
        gathered = log_probs[:, self.ids]  # (batch, classes, words, pieces)
        mask = self.mask.to(gathered.dtype)
        per_word = (gathered * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        word_present = self.mask.any(-1).to(gathered.dtype)  # (classes, words)
        return (per_word * word_present).sum(-1) / word_present.sum(-1)
