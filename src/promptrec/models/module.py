"""The LightningModule: one logit per prompt, BCE loss, AdamW + linear warm-up, exact evaluation.

Validation and test collect (example id, logit, label) and compute metrics once at the epoch end
on the de-duplicated union of all ranks: Lightning's distributed sampler pads uneven splits by
repeating rows, which would otherwise count some examples twice.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import get_linear_schedule_with_warmup

from promptrec.metrics import binary_metrics


class PreferenceModule(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        warmup_ratio: float = 0.1,
    ):
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.warmup_ratio = warmup_ratio
        self._outputs: dict[str, list[torch.Tensor]] = {}
        self.test_predictions: dict[str, torch.Tensor] | None = None  # filled by test

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits[:, 0]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = F.binary_cross_entropy_with_logits(self(batch), batch["labels"].float())
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    # -- evaluation -----------------------------------------------------------------------------
    def _collect(self, stage: str, batch: dict) -> None:
        logits = self(batch).detach().float()
        row = torch.stack(
            [batch["example_id"].double(), logits.double(), batch["labels"].double()], dim=1
        )
        self._outputs.setdefault(stage, []).append(row)

    def _gathered(self, stage: str) -> torch.Tensor:
        """All ranks' rows, each example once, ordered by example id."""
        rows = torch.cat(self._outputs.pop(stage, []) or [torch.empty(0, 3, dtype=torch.float64)])
        if self.trainer is not None and self.trainer.world_size > 1:
            rows = self.all_gather(rows).reshape(-1, 3)
        ids = rows[:, 0].long()
        order = torch.argsort(ids, stable=True)
        rows, ids = rows[order], ids[order]
        first = torch.ones_like(ids, dtype=torch.bool)
        first[1:] = ids[1:] != ids[:-1]
        return rows[first]

    def _finish(self, stage: str) -> dict[str, torch.Tensor]:
        rows = self._gathered(stage)
        metrics = binary_metrics(prefix=f"{stage}/", sync_on_compute=False).to(rows.device)
        metrics.update(rows[:, 1].float(), rows[:, 2].float())
        values = {k: v.float() for k, v in metrics.compute().items()}
        self.log_dict(values, sync_dist=False, prog_bar=stage == "val")
        return {"rows": rows, **values}

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._collect("val", batch)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._outputs.pop("val", None)
            return
        self._finish("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._collect("test", batch)

    def on_test_epoch_end(self) -> None:
        rows = self._finish("test")["rows"].cpu()
        self.test_predictions = {
            "example_id": rows[:, 0].long(),
            "logit": rows[:, 1],
            "label": rows[:, 2],
        }

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(self.warmup_ratio * total), total
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
