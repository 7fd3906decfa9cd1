"""What a run cost: training throughput, time per epoch and peak memory, logged like metrics.

Throughput counts only the training steps (forward, backward, optimizer), so a slow validation
or data loader does not blur the comparison between tuning modes; the epoch wall time includes
everything. Peak memory is the peak RSS on CPU and the peak allocated tensor memory on GPU, both counted
from the start of fitting, so each job of a multirun reports its own.
"""

from __future__ import annotations

import resource
import time

import lightning as L
import torch


def reset_peak_rss() -> bool:
    """Restart the peak-RSS count (Linux: write 5 to clear_refs), so each job of a multirun
    reports its own peak rather than the process's lifetime peak. False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_kib() -> float:
    try:  # VmHWM honours reset_peak_rss(); ru_maxrss (KiB on Linux) is the lifetime peak
        with open("/proc/self/status") as f:
            return float(next(line.split()[1] for line in f if line.startswith("VmHWM:")))
    except (OSError, StopIteration):
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory since the last reset (or since the process started)."""
    peaks = {"cost/peak_rss_mb": _peak_rss_kib() / 1024}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peaks["cost/peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peaks


class CostMonitor(L.Callback):
    def __init__(self):
        self.step_seconds = self.samples = 0.0
        self._epoch_start = self._step_start = 0.0
        self.world = 1

    def setup(self, trainer, pl_module, stage):
        self.world = trainer.world_size
        if stage == "fit":  # this job's own peak, also in a multirun that reuses the process
            reset_peak_rss()
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.reset_peak_memory_stats()

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

    def samples_per_second(self) -> float | None:
        """Training samples per second of step time in the epoch so far (all ranks)."""
        return self.world * self.samples / self.step_seconds if self.step_seconds else None

    def on_train_epoch_end(self, trainer, pl_module):
        if self.samples == 0:
            return
        pl_module.log_dict({
            "cost/train_samples_per_s": trainer.world_size * self.samples / self.step_seconds,
            "cost/epoch_seconds": time.perf_counter() - self._epoch_start,
        })  # fmt: skip
