"""What a run cost: training throughput, time per epoch and peak memory, logged like metrics.

Throughput counts only the training steps (forward, backward, optimizer), so a slow validation
or data loader does not blur the comparison between tuning modes; the epoch wall time includes
everything. Peak memory is the process's peak RSS on CPU and the peak allocated tensor memory on
GPU.
"""

from __future__ import annotations

import resource
import time

import lightning as L
import torch


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    peaks = {"cost/peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peaks["cost/peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peaks


class CostMonitor(L.Callback):
    def __init__(self):
        self.step_seconds = self.samples = 0.0
        self._epoch_start = self._step_start = 0.0

    def on_train_epoch_start(self, trainer, pl_module):
        self.step_seconds = self.samples = 0.0
        self._epoch_start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._step_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()  # kernels are asynchronous: wait, or the step looks free
        self.step_seconds += time.perf_counter() - self._step_start
        self.samples += len(batch["labels"])

    def on_train_epoch_end(self, trainer, pl_module):
        if self.samples == 0:
            return
        pl_module.log_dict({
            "cost/train_samples_per_s": trainer.world_size * self.samples / self.step_seconds,
            "cost/epoch_seconds": time.perf_counter() - self._epoch_start,
        })  # fmt: skip
