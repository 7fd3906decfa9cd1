"""Callbacks that make a run stop honestly and resume exactly.

- :class:`StopOnNonFiniteLoss`: a NaN/Inf loss ends the run with a clear error (a sweep records
  the job as failed and goes on) instead of training on garbage until the epoch ends.
- :class:`RandomStateCheckpoint`: every checkpoint carries the random generators' states, so a
  run resumed from it draws the same shuffles and dropout masks as one that was never stopped.
"""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import numpy as np
import torch

from promptrec.errors import PromptRecError


class TrainingDiverged(PromptRecError):
    """The loss became NaN or infinite: the hyperparameters, not the code, need changing."""


class StopOnNonFiniteLoss(L.Callback):
    """Checked before backward: nothing has used the bad loss yet, so if the weights are still
    finite they are the last good state, and they are saved as ``checkpoints/last_good.ckpt``."""

    def on_before_backward(self, trainer, pl_module, loss):
        if torch.isfinite(loss).all():
            return
        weights_ok = all(bool(torch.isfinite(p).all()) for p in pl_module.parameters())
        folder = trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None
        if weights_ok and folder and trainer.world_size == 1:  # DDP: saving would need all ranks
            path = Path(folder) / "last_good.ckpt"
            trainer.save_checkpoint(path)
            saved = (f"The state before this step is saved as {path} (resume with "
                     f"ckpt_path={path} after changing the settings).")  # fmt: skip
        else:
            last = next(
                (c.last_model_path for c in trainer.checkpoint_callbacks if c.last_model_path), ""
            ) or next(
                (c.best_model_path for c in trainer.checkpoint_callbacks if c.best_model_path), ""
            )
            why = (
                ""
                if weights_ok
                else "The weights were already non-finite (the previous update overflowed). "
            )
            saved = why + (
                f"The last good state is {Path(last)}."
                if last
                else "No checkpoint was saved before it."
            )
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        raise TrainingDiverged(
            f"the training loss became {loss.item()} at step {trainer.global_step} (epoch "
            f"{trainer.current_epoch}), so training stopped. {saved} Lower the learning rate "
            f"(tuning.lr; the step's rate was {lr:.3g}), keep trainer.gradient_clip_val on, or "
            "use trainer.precision=32-true if a half-precision run overflowed."
        )


class RandomStateCheckpoint(L.Callback):
    """Lightning restores weights, optimizer, scheduler and loop counters, but not the random
    generators; without them a resumed epoch shuffles and drops out differently."""

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        random.setstate(state["python"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
