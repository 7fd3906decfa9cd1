"""Binary preference: will the user like the item (rating ≥ ``task.like_threshold``)?"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F

from promptrec.metrics import best_f1_threshold, binary_metrics, grouped_auc
from promptrec.tasks.base import Task, example_table, interaction_examples
from promptrec.tasks.settings import PreferenceConfig


class PreferenceTask(Task):
    name = "preference"
    Config = PreferenceConfig
    headline = ("auc", "logloss", "f1")
    counted = ("gauc_users",)

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
        values.update(self._at_chosen_threshold(stage, logits, labels))
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

    def _at_chosen_threshold(self, stage: str, logits: torch.Tensor, labels: torch.Tensor) -> dict:
        """Validation chooses the logit cut-off with the best F1; other stages report accuracy and
        F1 at it. A model whose probabilities all sit on one side of 0.5 predicts one class for
        everyone at 0.5, which says nothing of how well it ranks; a chosen cut-off does not."""
        if stage == "val":
            self.chosen["threshold"] = best_f1_threshold(logits, labels)
            return {}
        cut = self.chosen.get("threshold")
        if cut is None:  # no validation ran, or it held one class
            return {}
        predicted, truth = logits.double() > cut, labels.bool()
        true_pos = int((predicted & truth).sum())
        wrong = int((predicted != truth).sum())
        return {f"{stage}/accuracy_at_val_threshold": 1 - wrong / len(truth),
                f"{stage}/f1_at_val_threshold": 2 * true_pos / (2 * true_pos + wrong)
                if true_pos + wrong else float("nan")}  # fmt: skip
