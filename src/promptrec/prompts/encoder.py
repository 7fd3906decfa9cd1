"""One example → prompt text → token ids: the single path from data to model input.

The data module encodes every example through it; the inspection and explanation commands encode
single (possibly edited) examples through the same object, so what they show is what the model
was trained on. The prompt strategy names the slots every prompt must hold: a cloze prompt exactly
one [MASK], a soft prompt N [SOFT] markers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from promptrec.errors import ConfigError
from promptrec.prompts.context import ContextBuilder
from promptrec.prompts.template import PromptTemplate, render_within_budget


@dataclass(frozen=True)
class Slot:
    """A special token that every prompt must contain exactly ``count`` times."""

    token: str
    token_id: int
    count: int
    fix: str


def task_templates(prompt_cfg, task_name: str, transform: Callable[[str], str] = str
                   ) -> list[PromptTemplate]:  # fmt: skip
    """The task's template (index 0) and its paraphrases from ``prompt.pool`` (1, 2, …), each
    text passed through ``transform`` first (a strategy's, e.g. soft-prompt markers in front)."""
    name = prompt_cfg.name
    if task_name not in prompt_cfg.templates:
        raise ConfigError(
            f"prompt '{name}' has no template for task '{task_name}' (it has: "
            f"{sorted(k for k in prompt_cfg.templates if k != 'item')}). Choose a prompt that "
            f"supports task={task_name}, or add prompt.templates.{task_name} to its YAML file."
        )
    pool = (prompt_cfg.get("pool") or {}).get(task_name) or []
    texts = [transform(t) for t in [prompt_cfg.templates[task_name], *pool]]
    where = [task_name] + [f"{task_name}, pool #{k}" for k in range(1, len(texts))]
    return [PromptTemplate(name, text, w) for text, w in zip(texts, where)]


@dataclass(frozen=True)
class PromptSet:
    """The templates a run can render for its task (#0 and the pool's paraphrases), the ones it
    trains on (``prompt.seen``), and one hash over both (logged as ``prompt/hash``)."""

    templates: list[PromptTemplate]
    seen: list[int]

    @classmethod
    def from_config(
        cls, prompt_cfg, task_name: str, transform: Callable[[str], str] = str
    ) -> PromptSet:
        templates = task_templates(prompt_cfg, task_name, transform)
        seen = [int(k) for k in (prompt_cfg.get("seen") or [0])]
        if not seen or not all(0 <= k < len(templates) for k in seen):
            raise ConfigError(
                f"prompt.seen={seen} must list template indices in 0..{len(templates) - 1} "
                f"(0 = prompt.templates.{task_name}, 1.. = prompt.pool.{task_name})."
            )
        return cls(templates, seen)

    @property
    def hash(self) -> str:
        hashes = [t.content_hash for t in self.templates]
        if len(hashes) == 1:
            return hashes[0]
        joined = json.dumps([hashes, self.seen], sort_keys=True, default=str)
        return hashlib.sha256(joined.encode()).hexdigest()[:12]


class PromptEncoder:
    def __init__(self, templates: Sequence[PromptTemplate], slots: Sequence[Slot],
                 contexts: ContextBuilder, tokenizer, max_tokens: int, task_name: str,
                 hide_target: bool):  # fmt: skip
        self.templates, self.slots, self.contexts = list(templates), list(slots), contexts
        self.template = self.templates[0]  # the task's own template; the rest are paraphrases
        self.tokenizer, self.max_tokens = tokenizer, max_tokens
        self.task_name, self.hide_target = task_name, hide_target

    def encode(self, user_id, item_id, history_items, history_ratings, template: int = 0
               ) -> tuple[str, list[int], int]:  # fmt: skip
        """(text, token ids, history items kept) for one example, with template ``template``."""
        chosen = self.templates[template]
        context = self.contexts.build(user_id, item_id, history_items, history_ratings)
        if self.hide_target:  # the target is the answer: a template that uses it fails loudly
            del context["target"]
        text, ids, kept = render_within_budget(chosen, context, self._tokens, self.max_tokens)
        for slot in self.slots:
            if (got := list(ids).count(slot.token_id)) != slot.count:
                raise ConfigError(
                    f"The {chosen.where} rendered {got} {slot.token} token(s) where "
                    f"{slot.count} are needed: {slot.fix}. Rendered: {text[:200]!r}"
                )
        return text, list(ids), kept

    def features(self, user_id, item_id, history_items, history_ratings, template: int = 0) -> dict:
        """One example as a model input row, ready for the data module's collator."""
        _, ids, _ = self.encode(user_id, item_id, history_items, history_ratings, template)
        return {"input_ids": ids, "attention_mask": [1] * len(ids)}

    def _tokens(self, text: str) -> list[int]:
        return self.tokenizer(text)["input_ids"]
