"""One example → prompt text → token ids: the single path from data to model input.

The data module encodes every example through it; the inspection and explanation commands encode
single (possibly edited) examples through the same object, so what they show is what the model
was trained on. The prompt config decides the strategy: a cloze prompt must render exactly one
[MASK], a soft prompt N [SOFT] markers (added in front for ``position: prefix``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promptrec.errors import ConfigError
from promptrec.prompts.context import ContextBuilder
from promptrec.prompts.template import SOFT_TOKEN, PromptTemplate, render_within_budget


@dataclass(frozen=True)
class Slot:
    """A special token that every prompt must contain exactly ``count`` times."""

    token: str
    token_id: int
    count: int
    fix: str


def task_templates(prompt_cfg, task, tokenizer) -> tuple[list[PromptTemplate], list[Slot]]:
    """The task's template (index 0) and its paraphrases from ``prompt.pool`` (1, 2, …), and the
    slots every prompt must hold; adds the [SOFT] token to the tokenizer when needed."""
    name = prompt_cfg.name
    if task.name not in prompt_cfg.templates:
        raise ConfigError(
            f"prompt '{name}' has no template for task '{task.name}' (it has: "
            f"{sorted(prompt_cfg.templates)}). Add prompt.templates.{task.name} to its YAML file."
        )
    pool = (prompt_cfg.get("pool") or {}).get(task.name) or []
    texts, slots = [prompt_cfg.templates[task.name], *pool], []
    if prompt_cfg.get("verbalizer") is not None:
        if task.name not in prompt_cfg.verbalizer:
            raise ConfigError(
                f"prompt '{name}' is a cloze prompt but has no verbalizer for task "
                f"'{task.name}'. Add prompt.verbalizer.{task.name}: label words per class."
            )
        fix = f"write {tokenizer.mask_token} exactly once in prompt.templates.{task.name}"
        slots.append(Slot(tokenizer.mask_token, tokenizer.mask_token_id, 1, fix))
    soft = prompt_cfg.get("soft")
    if soft is not None:
        tokenizer.add_tokens([SOFT_TOKEN], special_tokens=True)  # one token, never split
        if soft.position == "prefix":
            texts = [" ".join([SOFT_TOKEN] * soft.n_tokens) + " " + text for text in texts]
        fix = f"make the template's {SOFT_TOKEN} markers match prompt.soft.n_tokens"
        marker = tokenizer.convert_tokens_to_ids(SOFT_TOKEN)
        slots.append(Slot(SOFT_TOKEN, marker, soft.n_tokens, fix))
    where = [task.name] + [f"{task.name}, pool #{k}" for k in range(1, len(texts))]
    return [PromptTemplate(name, text, w) for text, w in zip(texts, where)], slots


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
