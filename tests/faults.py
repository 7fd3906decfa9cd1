"""Callbacks that inject faults into a training run, for tests/test_faults.py (like killer.py)."""

from __future__ import annotations

import lightning as L


class NaNLabelAtStep(L.Callback):
    """Turn one label of the batch at optimizer step ``step`` into NaN: the loss becomes NaN
    while the weights are still finite, as with a corrupted row or an fp16 overflow."""

    def __init__(self, step: int = 3):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            batch["labels"] = batch["labels"].float().clone()
            batch["labels"][0] = float("nan")
