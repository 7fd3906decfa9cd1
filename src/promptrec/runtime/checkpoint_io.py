"""Checkpoints written atomically: to a temporary file in the same folder, flushed, then renamed.

Lightning's own writer opens the final path and streams into it, so a process killed mid-write
leaves a truncated ``last.ckpt`` that the next ``ckpt_path=<run>`` resume would try to load.
Through :func:`~promptrec.atomic.atomic_path`, a crash leaves the previous checkpoint or none.
"""

from __future__ import annotations

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from promptrec.atomic import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_path(path) as partial:
            torch.save(checkpoint, partial)
