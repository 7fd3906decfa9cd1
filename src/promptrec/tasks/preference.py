"""Binary preference: will the user like the item (rating ≥ ``task.like_threshold``)?"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from promptrec.metrics import binary_metrics, grouped_auc
from promptrec.tasks.base import Task, TaskConfig, example_table, interaction_examples


@dataclass
class PreferenceConfig(TaskConfig):
    like_threshold: float = 4.0  # label = rating ≥ this


class PreferenceTask(Task):
    name = "preference"
    Config = PreferenceConfig
    headline = ("auc", "logloss", "f1")

    @property
    def num_outputs(self) -> int:
        return 1

    verbalizer_classes = 2  # dislike, like
    explained = "p(like)"

    def explained_score(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs[:, 0].float())

    def outputs_from_classes(self, scores: torch.Tensor) -> torch.Tensor:
        """The log-odds of "like": sigmoid of it is the softmax over the two classes."""
        return (scores[:, 1] - scores[:, 0]).unsqueeze(1)

    def examples(self, split: pd.DataFrame, which: str, history_len: int) -> pd.DataFrame:
        frame = interaction_examples(split, which, history_len)
        return frame.assign(labels=(frame["rating"] >= self.cfg.like_threshold).astype("float32"))

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(outputs[:, 0], labels.float())

    def evaluate(
        self, stage: str, outputs: torch.Tensor, examples: pd.DataFrame
    ) -> tuple[dict, pd.DataFrame]:
        logits = outputs[:, 0].float().cpu()
        labels = torch.tensor(examples["labels"].to_numpy(), dtype=torch.float32)
        metrics = binary_metrics(prefix=f"{stage}/", sync_on_compute=False)
        metrics.update(logits, labels)
        values = {k: float(v) for k, v in metrics.compute().items()}
        if labels.min() == labels.max():  # AUC needs both classes; torchmetrics would return 0
            values[f"{stage}/auc"] = float("nan")
        gauc, users = grouped_auc(logits, labels, examples["user_id"].tolist())
        values[f"{stage}/gauc_users"] = float(users)  # users holding both classes
        if gauc is not None:
            values[f"{stage}/gauc"] = gauc
        table = example_table(
            examples, ["example_id", "user_id", "item_id", "rating", "labels", "n_history_kept"]
        ).rename(columns={"labels": "label"})
        table = table.assign(
            label=table["label"].astype("int64"),
            logit=logits.numpy(),
            score=torch.sigmoid(logits).numpy(),
        )
        return values, table
