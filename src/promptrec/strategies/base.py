"""A prompt strategy: how a rendered prompt becomes task scores (OpenPrompt's PromptForClassification).

A strategy owns everything that differs between ways of prompting: the marker tokens every prompt
must hold (its slots), what it learns from the catalogue before training (label words, item
texts), which backbone it needs and how it wraps the tuned backbone into a scorer, and the config
combinations it cannot serve. The data module and the model builder ask it; they never branch on
its name. Adding one is one module here (auto-registered by its ``name``), one prompt YAML and one
test: see docs/architecture.md.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn as nn

from promptrec.data.catalog import Catalog
from promptrec.errors import ConfigError
from promptrec.prompts.context import ContextBuilder
from promptrec.prompts.encoder import Slot
from promptrec.strategies.collaborative import CollaborativeInput, check_collaborative
from promptrec.strategies.soft import SoftInput, SoftPrompt, check_soft

# What models/ loads for a strategy: a sequence classifier (its own head on [CLS]), a masked LM
# (its word-prediction head), or the bare encoder (token vectors only).
BACKBONES = ("classifier", "masked_lm", "encoder")


class Strategy:
    name: ClassVar[str] = ""
    backbone: ClassVar[str] = "classifier"
    registry: ClassVar[dict[str, type[Strategy]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            assert cls.backbone in BACKBONES, f"{cls.__name__}.backbone must be one of {BACKBONES}"
            Strategy.registry[cls.name] = cls

    def __init__(self, cfg, task, tokenizer):
        """``cfg`` is the run config (prompt, task, tuning are read); ``task`` the built task."""
        self.cfg, self.task, self.tokenizer = cfg, task, tokenizer
        soft, collaborative = cfg.prompt.get("soft"), cfg.prompt.get("collaborative")
        self.soft = SoftInput(soft, tokenizer) if soft is not None else None
        self.collaborative = (
            CollaborativeInput(collaborative, tokenizer) if collaborative is not None else None
        )

    @classmethod
    def claimed_by(cls, cfg) -> str | None:
        """The setting that selects this strategy when ``prompt.strategy`` is not given (configs
        written before it existed), e.g. ``"task.head=two_tower"``; None if nothing does."""
        return None

    @classmethod
    def check(cls, cfg) -> None:
        """Refuse config combinations this strategy cannot serve, naming the fix. Runs at
        start-up (``runtime.config.validate``), before any file is written or model loaded."""
        if cfg.prompt.get("soft") is not None:
            check_soft(cfg)
        if cfg.prompt.get("collaborative") is not None:
            check_collaborative(cfg, cls.name)

    # -- the prompt side ----------------------------------------------------------------------
    def template_text(self, text: str) -> str:
        """A template as this strategy renders it (a soft prefix adds its markers in front, and
        collaborative tokens the user's marker)."""
        for option in (self.soft, self.collaborative):
            text = option.place(text) if option is not None else text
        return text

    def slots(self) -> list[Slot]:
        """Special tokens every rendered prompt must hold, each an exact number of times."""
        options = (self.soft, self.collaborative)
        return [o.slot for o in options if o is not None and o.slot.count]

    def title_marks(self) -> dict[str, str] | None:
        """Marker tokens written after item titles (collaborative tokens), or None."""
        return self.collaborative.title_marks if self.collaborative is not None else None

    def prepare(self, catalog: Catalog, contexts: ContextBuilder) -> None:  # noqa: B027
        """Learn what the model needs from the catalogue (label words, item texts); nothing by
        default. Runs after the task is prepared and before the model is built."""

    # -- the model side -----------------------------------------------------------------------
    @property
    def num_outputs(self) -> int:
        """Width of the head a ``classifier`` backbone is loaded with."""
        return self.task.num_outputs

    def initialise(self, backbone: nn.Module) -> None:  # noqa: B027
        """Set weights that start from the loaded backbone itself (an informed head), before
        the ``freeze_layers`` cut and the tuning mode; nothing by default."""

    def wrap(self, backbone: nn.Module, lower: nn.Module | None = None) -> nn.Module:
        """The tuned backbone → an ``nn.Module`` mapping a batch dict to the task's outputs.
        ``lower``: the frozen layers below a ``tuning.freeze_layers`` cut, for prompts whose
        hidden states are not in the batch (pass it to ``encoder_inputs``)."""
        raise NotImplementedError

    def soft_prompt(self, backbone: nn.Module) -> SoftPrompt | None:
        """Trainable vectors for the [SOFT] markers (after tuning: they always train)."""
        return self.soft.build(backbone) if self.soft is not None else None


def encoder_inputs(
    batch: dict, soft: SoftPrompt | None = None, lower: nn.Module | None = None
) -> dict:
    """Keyword arguments for a Hugging Face model: token ids; embeddings with soft vectors; or,
    for a model cut at ``tuning.freeze_layers``, the hidden states of the cut (cached in the
    batch, else computed by the frozen lower layers)."""
    if "hidden" in batch:
        return {"inputs_embeds": batch["hidden"]}
    if lower is not None:
        return {"inputs_embeds": lower(batch["input_ids"], batch["attention_mask"])}
    if soft is not None:
        return {"inputs_embeds": soft(batch["input_ids"])}
    return {"input_ids": batch["input_ids"]}


def strategy_class(cfg) -> type[Strategy]:
    """``prompt.strategy`` if given, else the one a setting claims, else the classifier."""
    claims = {name: why for name, c in Strategy.registry.items() if (why := c.claimed_by(cfg))}
    chosen = cfg.prompt.get("strategy")
    if chosen is not None and chosen not in Strategy.registry:
        raise ConfigError(
            f"prompt.strategy={chosen!r} is unknown; choose one of {sorted(Strategy.registry)} "
            "(one module each in src/promptrec/strategies/)."
        )
    wanted = {chosen} if chosen else set(claims)
    others = {name: why for name, why in claims.items() if name != chosen} if chosen else {}
    if others or len(wanted) > 1:
        reasons = [f"prompt.strategy={chosen} selects the {chosen} strategy"] if chosen else []
        reasons += [
            f"{why} selects the {name} strategy" for name, why in sorted((others or claims).items())
        ]
        raise ConfigError(
            f"{' and '.join(reasons)}: one prompt has one strategy. A cloze prompt reads its "
            "answer at [MASK] and needs task.head=catalog; task.head=two_tower scores item texts "
            "and needs a prompt without a verbalizer (e.g. prompt=question)."
        )
    return Strategy.registry[next(iter(wanted))] if wanted else Strategy.registry["classifier"]


def build_strategy(cfg, task, tokenizer) -> Strategy:
    return strategy_class(cfg)(cfg, task, tokenizer)
