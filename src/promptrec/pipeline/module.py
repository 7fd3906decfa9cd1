"""The LightningModule: a batch → model outputs → the task's loss and evaluation.

The model is any ``nn.Module`` taking the batch dict: a language model on prompt tokens
(``TextScorer``) or an ID-based baseline; the task decides what its outputs mean.

Validation and test collect (example id, outputs) and evaluate once at the epoch end on the
de-duplicated union of all ranks: Lightning's distributed sampler pads uneven splits by repeating
rows, which would otherwise count some examples twice. The task turns outputs into metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import lightning as L
import pandas as pd
import torch
import torch.nn as nn
from lightning.pytorch.trainer.states import TrainerFn
from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

from promptrec.errors import ConfigError
from promptrec.metrics.names import at_stage
from promptrec.metrics.slices import Slicer
from promptrec.pipeline.hidden_cache import storage_for
from promptrec.tasks import Task


class CheckpointMismatch(ConfigError):
    """The checkpoint's weights do not fit the model this config builds."""


@torch.no_grad()
def score_features(
    model: nn.Module, collate, features: list[dict], batch_size: int, precision: str = "32-true"
) -> torch.Tensor:
    """Model outputs for prompts encoded outside the data module (edited or perturbed ones), on
    the CPU in the run's precision (``bf16-mixed``: under autocast, as its test loop ran)."""
    bf16 = storage_for(precision) == "bf16"
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    with autocast:
        return torch.cat([model(dict(collate(features[i : i + batch_size]))).float()
                          for i in range(0, len(features), batch_size)])  # fmt: skip


# Parameters a run creates rather than loads: a classification head ("classifier", or "score"
# in some Hugging Face models; peft keeps it under the same name), collaborative projectors and
# ID tables, soft-prompt vectors.
NEW_PARTS = (".classifier.", ".score.", "collaborative.", "soft.")


def is_new(name: str) -> bool:
    return any(part in f".{name}" for part in NEW_PARTS)


class RecModule(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        task: Task,
        optimizer: Callable[..., torch.optim.Optimizer],
        warmup_ratio: float = 0.1,
        decay: bool = True,
        penalty: Callable[[nn.Module], torch.Tensor] | None = None,
        new_lr: float | None = None,
    ):
        super().__init__()
        self.new_lr = new_lr  # the learning rate of what the run adds from scratch (is_new)
        self.model, self.task = model, task
        self.optimizer_factory = optimizer
        self.warmup_ratio, self.decay = warmup_ratio, decay
        self.penalty = penalty  # a tuning mode's loss term (AdaLoRA: orthogonality)
        # parameter-efficient checkpoints hold only what trains; the rest comes from the backbone
        self.strict_loading = all(p.requires_grad for p in model.parameters())
        self._outputs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.test_predictions: pd.DataFrame | None = None  # the test loop's output tables:
        self.test_slices: pd.DataFrame | None = None  # per example, and per user/item group
        self.val_predictions: pd.DataFrame | None = None  # the best checkpoint's, per example
        self.counts: dict[str, float] = {}  # numbers that are not metrics (e.g. test/gauc_users)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(batch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        own_loss = getattr(self.model, "training_loss", None)  # e.g. BPR's pairwise loss
        loss = own_loss(batch) if own_loss else None
        if loss is None:
            loss = self.task.loss(self(batch), batch["labels"])
        if self.penalty is not None:
            loss = loss + self.penalty(self.model)
        size = len(batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        # the epoch's mean as well: a run of fewer steps than log_every_n_steps still has a curve
        self.log("train/epoch_loss", loss, on_step=False, on_epoch=True, batch_size=size)
        return loss

    # -- checkpoints: only what trains, for parameter-efficient modes ------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["task_chosen"] = dict(self.task.chosen)  # e.g. the validation threshold
        if not self.strict_loading:  # by storage, so tied copies (an LM decoder) go too
            frozen = {p.data_ptr() for p in self.model.parameters() if not p.requires_grad}
            checkpoint["state_dict"] = {
                k: v for k, v in checkpoint["state_dict"].items() if v.data_ptr() not in frozen
            }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse, by name, a checkpoint built with another task, model or tuning mode, before
        ``load_state_dict`` fails with a raw list of keys or shapes."""
        self.task.chosen = dict(checkpoint.get("task_chosen", {}))
        saved, own = checkpoint["state_dict"], self.state_dict()
        trained = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
        missing = sorted(trained - set(saved))
        unknown = sorted(set(saved) - set(own))
        reshaped = sorted(k for k in set(saved) & set(own) if saved[k].shape != own[k].shape)
        if not (missing or unknown or reshaped):
            return
        found = [f"{len(missing)} trained weights missing (e.g. {missing[0]})" if missing else "",
                 f"{len(unknown)} weights this model lacks (e.g. {unknown[0]})" if unknown else "",
                 f"{len(reshaped)} of another shape (e.g. {reshaped[0]}: "
                 f"{tuple(saved[reshaped[0]].shape)} saved, {tuple(own[reshaped[0]].shape)} here)"
                 if reshaped else ""]  # fmt: skip
        raise CheckpointMismatch(
            "ckpt_path points to a checkpoint that was trained with another task, model or tuning "
            f"mode than this config ({'; '.join(f for f in found if f)}). Evaluate it with its own "
            "run's settings (promptrec-eval reads <run>/.hydra/config.yaml unless "
            "use_run_config=false), or give a checkpoint trained with these settings."
        )

    # -- evaluation -----------------------------------------------------------------------------
    def _collect(self, stage: str, batch: dict) -> None:
        self._outputs.setdefault(stage, []).append(
            (batch["example_id"].long(), self(batch).detach().float())
        )

    def _gathered(self, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """All ranks' outputs, each example once, ordered by example id."""
        parts = self._outputs.pop(stage, [])
        if not parts:
            raise RuntimeError(f"no {stage} batches were evaluated")
        ids, outputs = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        if self.trainer is not None and self.trainer.world_size > 1:
            ids = self.all_gather(ids).reshape(-1)
            outputs = self.all_gather(outputs).reshape(len(ids), -1)
        order = torch.argsort(ids, stable=True)
        ids, outputs = ids[order], outputs[order]
        first = torch.ones_like(ids, dtype=torch.bool)
        first[1:] = ids[1:] != ids[:-1]
        return ids[first], outputs[first]

    def _evaluate(
        self, stage: str, log: bool = True
    ) -> tuple[pd.DataFrame, torch.Tensor, pd.DataFrame]:
        ids, outputs = self._gathered(stage)
        examples = self.trainer.datamodule.prepared.examples[stage].set_index(
            "example_id", drop=False
        )
        examples = examples.loc[ids.cpu().numpy()].reset_index(drop=True)
        metrics, table = self.task.evaluate(stage, outputs.cpu(), examples)
        counted = {k for k in metrics if k.split("/", 1)[-1] in self.task.counted}
        self.counts.update({k: metrics.pop(k) for k in counted})  # metrics.json's "counts"
        if log:
            self.log_dict(metrics, sync_dist=False)  # printed once per epoch: runtime/console.py
        return table, outputs.cpu(), examples

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._collect("val", batch)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._outputs.pop("val", None)
            return
        # a validation on its own (``trainer.validate``, after testing the best checkpoint) keeps
        # the per-example table: the held-out predictions a late fusion fits its weights on
        alone = self.trainer.state.fn == TrainerFn.VALIDATING
        table, _, _ = self._evaluate("val", log=not alone)
        if alone:
            self.val_predictions = table

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._collect("test", batch)

    def on_test_epoch_end(self) -> None:
        self.test_predictions, outputs, examples = self._evaluate("test")
        monitor = at_stage(self.task.cfg.monitor, "test")
        prepared = self.trainer.datamodule.prepared
        slicer = Slicer(prepared.users, prepared.split, self.task.cfg.slice_min_examples)
        self.test_slices, gaps = slicer.evaluate(self.task, "test", outputs, examples, monitor)
        self.log_dict(gaps, sync_dist=False)

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self):
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        new = [p for n, p in trainable if is_new(n)] if self.new_lr is not None else []
        groups = [{"params": [p for n, p in trainable if not (new and is_new(n))]}]
        if new:
            groups.append({"params": new, "lr": self.new_lr})
        optimizer = self.optimizer_factory([g for g in groups if g["params"]])
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.warmup_ratio * total)
        scheduler = (get_linear_schedule_with_warmup(optimizer, warmup, total) if self.decay
                     else get_constant_schedule_with_warmup(optimizer, warmup))  # fmt: skip
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
