"""Tuning modes: which parameters of the backbone train. One named builder per mode.

Every builder takes the loaded model and the ``tuning`` config and returns a :class:`Tuned`: the
model to train, the Lightning callbacks the mode needs (AdaLoRA's rank budget, folding LoRA in
before testing) and any term it adds to the training loss. A task head always trains: the
classifier, or a masked-LM head (cloze prompts; MiniLM ships without one). Soft prompt vectors
are added after tuning and always train too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import lightning as L
import torch
import torch.nn as nn
from omegaconf import OmegaConf
from peft import (
    AdaLoraConfig,
    IA3Config,
    LoraConfig,
    PrefixTuningConfig,
    PromptTuningConfig,
    TaskType,
    get_peft_model,
)

from promptrec.errors import ConfigError
from promptrec.models.adapters import add_adapters
from promptrec.strategies.soft import VIRTUAL_TOKEN_MODES


@dataclass
class Tuned:
    model: nn.Module
    callbacks: list[L.Callback] = field(default_factory=list)  # the trainer runs them
    penalty: Callable[[nn.Module], torch.Tensor] | None = None  # added to the training loss


HEADS = ("classifier", "cls", "lm_head")  # sequence-classification head; BERT / RoBERTa LM heads


def _is_head(name: str) -> bool:
    # peft wraps a head it trains as classifier.modules_to_save.*; its frozen original stays so.
    # A tied LM decoder is the word-embedding matrix, listed once under its embeddings name.
    parts = name.split(".")
    return (
        any(p in HEADS for p in parts)
        and "original_module" not in parts
        and "embeddings" not in name
    )


def _train_only(model: nn.Module, keep: Callable[[str], bool]) -> nn.Module:
    for name, p in model.named_parameters():
        p.requires_grad_(_is_head(name) or keep(name))
    return model


def full(model: nn.Module, cfg) -> Tuned:
    """Every weight trains: the strongest and the most expensive mode."""
    for p in model.parameters():
        p.requires_grad_(True)
    return Tuned(model)


def frozen(model: nn.Module, cfg) -> Tuned:
    """Only the head trains (a linear probe); with a cloze prompt and no head to learn, only soft
    prompt vectors train — or nothing, which is zero-shot evaluation."""
    return Tuned(_train_only(model, lambda name: False))


def bitfit(model: nn.Module, cfg) -> Tuned:
    """Bias terms only (Ben Zaken et al. 2022), plus the head: ~0.1% of the weights."""
    return Tuned(_train_only(model, lambda name: name.endswith(".bias")))


def peft_task_type(model: nn.Module) -> TaskType:
    """SEQ_CLS makes peft train and save a classifier head in full; a bare encoder has none."""
    return TaskType.SEQ_CLS if hasattr(model, "classifier") else TaskType.FEATURE_EXTRACTION


def _peft(model: nn.Module, config, what: str) -> nn.Module:
    try:
        model = get_peft_model(model, config)
    except ValueError as exc:
        raise ConfigError(
            f"tuning.{what} did not match the model ({str(exc)[:200]}). For BERT use module "
            "names such as query, key, value, dense."
        ) from exc
    for name, p in model.named_parameters():  # a masked-LM head trains in full beside peft's part
        if _is_head(name) and "classifier" not in name:
            p.requires_grad_(True)
    return model


def lora(model: nn.Module, cfg) -> Tuned:
    """Low-rank updates on chosen linear layers (peft); the head is saved and trained in full.
    ``tuning.merge_lora``: folded into the backbone before testing (same outputs, no overhead)."""
    c = cfg.lora
    config = LoraConfig(task_type=peft_task_type(model), r=c.r, lora_alpha=c.alpha,
                        lora_dropout=c.dropout, target_modules=list(c.target_modules))  # fmt: skip
    callbacks = [MergeLoraBeforeTest()] if cfg.get("merge_lora") else []
    return Tuned(_peft(model, config, "lora.target_modules"), callbacks)


# AdaLoRA's schedule is set to the real number of optimizer steps when fitting starts
# (AdaLoraSchedule.start); peft demands a valid placeholder before that.
_PLACEHOLDER_STEPS = 1000


def adalora(model: nn.Module, cfg) -> Tuned:
    """LoRA whose ranks are pruned from ``init_r`` towards a ``target_r`` budget while training."""
    c = cfg.adalora
    config = AdaLoraConfig(task_type=peft_task_type(model), init_r=c.init_r, target_r=c.target_r,
                           lora_alpha=c.alpha, lora_dropout=c.dropout,
                           target_modules=list(c.target_modules), tinit=1, tfinal=1, deltaT=c.delta_t,
                           orth_reg_weight=c.orth_reg_weight, total_step=_PLACEHOLDER_STEPS)  # fmt: skip
    penalty = partial(orthogonality_penalty, weight=c.orth_reg_weight)
    return Tuned(_peft(model, config, "adalora.target_modules"), [AdaLoraBudget(c)], penalty)


def ia3(model: nn.Module, cfg) -> Tuned:
    """Learned rescaling of keys, values and feed-forward inputs (Liu et al. 2022): fewest weights."""
    c = cfg.ia3
    config = IA3Config(task_type=peft_task_type(model), target_modules=list(c.target_modules),
                       feedforward_modules=list(c.feedforward_modules))  # fmt: skip
    return Tuned(_peft(model, config, "ia3.target_modules"))


def prefix(model: nn.Module, cfg) -> Tuned:
    """Trainable key/value vectors prepended in every layer (Li & Liang 2021)."""
    config = PrefixTuningConfig(
        task_type=peft_task_type(model), num_virtual_tokens=cfg.virtual_tokens
    )
    return Tuned(_peft(model, config, "virtual_tokens"))


def prompt_tuning(model: nn.Module, cfg) -> Tuned:
    """Trainable input embeddings prepended to the prompt (Lester et al. 2021), via peft."""
    config = PromptTuningConfig(
        task_type=peft_task_type(model), num_virtual_tokens=cfg.virtual_tokens
    )
    return Tuned(_peft(model, config, "virtual_tokens"))


def adapter(model: nn.Module, cfg) -> Tuned:
    """Bottleneck adapters (models/adapters.py); Houlsby also trains the LayerNorms, as published."""
    c = cfg.adapter
    add_adapters(model, c.kind, c.reduction_factor)
    layer_norms = c.kind == "houlsby"
    return Tuned(
        _train_only(model, lambda n: ".adapter." in n or (layer_norms and "LayerNorm" in n))
    )


TUNING_MODES: dict[str, Callable[[nn.Module, object], Tuned]] = {
    "full": full,
    "frozen": frozen,
    "bitfit": bitfit,
    "lora": lora,
    "adalora": adalora,
    "ia3": ia3,
    "prefix": prefix,
    "prompt_tuning": prompt_tuning,
    "adapter": adapter,
}


def check_tuning(cfg) -> None:
    """Start-up checks of ``tuning`` (its mode, the mode's settings), before any model loads."""
    if cfg.mode not in TUNING_MODES:
        raise ConfigError(
            f"tuning.mode={cfg.mode!r} is unknown; choose one of {sorted(TUNING_MODES)}."
        )
    if cfg.mode in ("lora", "adalora", "ia3", "adapter") and cfg.get(cfg.mode) is None:
        raise ConfigError(
            f"tuning={cfg.mode} needs its settings under tuning.{cfg.mode} (see conf/tuning/{cfg.mode}.yaml)."
        )
    k = int(cfg.get("freeze_layers") or 0)
    rules = [("freeze_layers", k >= 0, "≥ 0 (the number of bottom layers frozen and cached)")]
    if k > 0 and cfg.mode in VIRTUAL_TOKEN_MODES:
        raise ConfigError(
            f"tuning={cfg.mode} puts peft's virtual tokens into every layer's input, below the "
            f"cut of tuning.freeze_layers={k}. Use tuning.freeze_layers=0 with it, or full, lora, "
            "adalora, ia3, adapter, bitfit or frozen tuning above frozen layers."
        )
    if cfg.mode in VIRTUAL_TOKEN_MODES:
        rules.append(("virtual_tokens", cfg.virtual_tokens > 0, "a positive integer"))
    if cfg.mode == "lora":
        rules.append(("lora.r", cfg.lora.r > 0, "a positive integer"))
    if cfg.mode == "adapter":
        rules.append(
            ("adapter.reduction_factor", cfg.adapter.reduction_factor > 0, "a positive integer")
        )
    for key, ok, rule in rules:
        if not ok:
            raise ConfigError(
                f"tuning.{key}={OmegaConf.select(cfg, key)!r} is invalid: it must be {rule}. "
                "Fix it on the command line or in conf/."
            )


def tune(model: nn.Module, cfg) -> Tuned:
    """The ``tuning.mode`` builder on a loaded model, in train mode."""
    if cfg.mode not in TUNING_MODES or (cfg.mode in ("lora", "adalora", "ia3", "adapter")
                                        and cfg.get(cfg.mode) is None):  # fmt: skip
        check_tuning(cfg)  # names the fix
    tuned = TUNING_MODES[cfg.mode](model, cfg)
    tuned.model.train()
    return tuned


def apply_tuning(model: nn.Module, cfg) -> nn.Module:
    """Only the tuned model (tests, benchmarks and tools that run no trainer)."""
    return tune(model, cfg).model


def count_parameters(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params/total": total, "params/trainable": trainable}


class AdaLoraSchedule:
    """AdaLoRA's rank budget: its schedule spans the real number of optimizer steps, its importance
    scores update after each step (between backward and zero_grad), and its orthogonality penalty
    joins the loss (peft adds it only when the model computes the loss itself; ours does not)."""

    def __init__(self, model: nn.Module, cfg):
        self.model = next(m for m in model.modules() if hasattr(m, "rankallocator"))
        self.cfg = cfg

    @property
    def _config(self):
        return self.model.peft_config[self.model.trainable_adapter_name]

    def start(self, total_steps: int) -> None:
        tinit = int(self.cfg.tinit_fraction * total_steps)
        tfinal = int(self.cfg.tfinal_fraction * total_steps)
        if tinit >= total_steps - tfinal:
            raise ConfigError(
                f"tuning=adalora: {total_steps} optimizer steps leave no room for rank pruning "
                f"(tinit={tinit}, tfinal={tfinal}). Train for more steps or lower "
                "tuning.adalora.tinit_fraction / tfinal_fraction."
            )
        config = self._config  # the rank allocator holds this same object
        config.total_step, config.tinit, config.tfinal = int(total_steps), tinit, tfinal

    def step(self, global_step: int) -> None:
        self.model.update_and_allocate(global_step)

    def penalty(self) -> torch.Tensor | float:
        return orthogonality_penalty(self.model, self.cfg.orth_reg_weight)


def orthogonality_penalty(model: nn.Module, weight: float) -> torch.Tensor | float:
    """AdaLoRA keeps its singular-vector factors orthogonal: ‖PPᵀ − I‖ (‖QᵀQ − I‖) averaged."""
    terms = [torch.linalg.matrix_norm((p @ p.T if "lora_A" in n else p.T @ p)
                                      - torch.eye(p.shape[0] if "lora_A" in n else p.shape[1], device=p.device))
             for n, p in model.named_parameters() if ("lora_A" in n or "lora_B" in n) and p.requires_grad]  # fmt: skip
    return weight * torch.stack(terms).mean() if terms and weight > 0 else 0.0


class AdaLoraBudget(L.Callback):
    """Runs :class:`AdaLoraSchedule` over a fit: the real number of steps when fitting starts,
    a budget update after each optimizer step (after backward, before zero_grad)."""

    def __init__(self, settings):
        self.settings, self.schedule = settings, None

    def on_fit_start(self, trainer, pl_module) -> None:
        self.schedule = AdaLoraSchedule(pl_module, self.settings)
        self.schedule.start(int(trainer.estimated_stepping_batches))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.schedule.step(trainer.global_step)


class MergeLoraBeforeTest(L.Callback):
    """After the best weights are restored, fold LoRA into the backbone for testing."""

    def on_test_start(self, trainer, pl_module) -> None:
        pl_module.model = merge_lora(pl_module.model)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every peft LoRA wrapper inside ``model`` into plain weights (same outputs, no adapter
    overhead at inference)."""
    for name, child in list(model.named_children()):
        if hasattr(child, "merge_and_unload"):
            setattr(model, name, child.merge_and_unload())
        else:
            merge_lora(child)
    return model
