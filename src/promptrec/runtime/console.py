"""What a run prints: progress bars, one line before training, one line per epoch, the results.

The libraries underneath print much that is not for the user (Lightning's tips and device lines,
deprecations inside Lightning, warnings about settings that are intended here). They are silenced
one message at a time (never a blanket ``ignore``), so a new, actionable warning still shows.
"""

from __future__ import annotations

import logging
import warnings

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities.rank_zero import rank_zero_only

# warnings raised inside the libraries that say nothing the user can act on here
WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning's own use of torch's pytree
    r"The number of training batches \(\d+\) is smaller than the logging interval",  # short runs
    r"Found \d+ module\(s\) in eval mode at the start of training",  # the frozen lower layers
    r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint",  # eval
    r"The dirpath has changed from",  # eval: a new run folder is the point
    r"could not find the monitored key in the returned metrics",  # said in one line instead
    r".*does not have many workers which may be a bottleneck",  # tokens are precomputed
    r"`Trainer\(limit_(train|val|test)_batches=1.0\)` was configured",
    r"`is_gradient_checkpointing` is deprecated",  # peft asks transformers the old name
)
# Lightning's info lines (logger ``lightning.pytorch.utilities.rank_zero``), by their start
LIGHTNING_INFO = (
    "💡 Tip:", "GPU available:", "TPU available:", "HPU available:", "Using bfloat16 Automatic",
    "Using 16-bit Automatic", "Loading `train_dataloader` to estimate", "`Trainer.fit` stopped:",
    "Restoring states from the checkpoint path", "Loaded model weights from the checkpoint",
    "LOCAL_RANK:", "`Trainer(limit_",
)  # fmt: skip


class _DropLines(logging.Filter):
    def __init__(self, starts: tuple[str, ...]):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().lstrip().startswith(self.starts)


_QUIET = _DropLines(LIGHTNING_INFO)


def quiet_libraries() -> None:
    """Install the targeted filters (idempotent: safe to call for every run in a sweep)."""
    for pattern in WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.accelerators.cuda"):  # fmt: skip
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights": a blink for a BERT (downloads keep theirs)
    datasets.disable_progress_bars()  # "Saving the dataset (1/1 shards)": the caches' own bar


class QuietProgressBar(RichProgressBar):
    """Lightning's bar with the training loss only: validation metrics come once per epoch, on
    their own line (:class:`EpochLine`), instead of wrapping inside the bar."""

    def get_metrics(self, trainer, pl_module) -> dict:
        return {
            k: v for k, v in super().get_metrics(trainer, pl_module).items() if k == "train/loss"
        }


class EpochLine(L.Callback):
    """One line before training (examples, epochs, precision and why, new parts) and one per
    epoch (train loss, the task's headline validation metrics, samples/s), as RecBole prints."""

    def __init__(self, precision_note: str | None = None):
        self.precision_note = precision_note

    @rank_zero_only
    def on_fit_start(self, trainer, pl_module) -> None:
        examples = len(trainer.datamodule.prepared.datasets["train"]) if trainer.datamodule else 0
        epochs = trainer.max_epochs
        parts = [f"training on {examples:,} examples", f"{epochs} epoch{'s' * (epochs != 1)}"]
        if trainer.max_steps and trainer.max_steps > 0:
            parts.append(f"at most {trainer.max_steps} steps")
        parts.append(self.precision_note or str(trainer.precision))
        fresh = sorted({p for m in pl_module.modules() for p in getattr(m, "fresh_parts", ())})
        if fresh:
            parts.append(f"new {', '.join(fresh)} initialised")
        source = next(
            (m.started_from for m in pl_module.modules() if hasattr(m, "started_from")), None
        )
        if source:
            parts.append(f"weights from {source} (model.init_from)")
        self._say(trainer, " · ".join(parts))

    @rank_zero_only
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        metrics = trainer.callback_metrics
        line = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        if "train/epoch_loss" in metrics:
            line.append(f"train loss {float(metrics['train/epoch_loss']):.4f}")
        task = getattr(pl_module, "task", None)
        names = [f"val/{m}" for m in getattr(task, "headline", ())] or sorted(
            k for k in metrics if k.startswith("val/")
        )
        shown = [f"{n[4:]} {float(metrics[n]):.4f}" for n in names if n in metrics]
        if shown:
            line.append("val " + " ".join(shown))
        costs = next((c for c in trainer.callbacks if hasattr(c, "samples_per_second")), None)
        if costs is not None and costs.samples_per_second():
            line.append(f"{costs.samples_per_second():,.0f} samples/s")
        self._say(trainer, " · ".join(line))

    @staticmethod
    def _say(trainer, text: str) -> None:
        bar = trainer.progress_bar_callback
        progress = getattr(bar, "progress", None)
        if progress is not None:  # above a live rich bar, not through it
            progress.console.print(text, highlight=False, markup=False, soft_wrap=True)
        else:
            print(text, flush=True)
