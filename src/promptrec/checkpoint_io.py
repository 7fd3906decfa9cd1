"""Checkpoints written atomically: to a temporary file in the same folder, flushed, then renamed.

Lightning's own writer opens the final path and streams into it, so a process killed mid-write
leaves a truncated ``last.ckpt`` that the next ``ckpt_path=<run>`` resume would try to load. A
rename within one folder is atomic on POSIX: a crash leaves the previous checkpoint or none.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        with open(partial, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
