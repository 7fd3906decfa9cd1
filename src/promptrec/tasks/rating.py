"""Rating prediction: the 1–5 stars the user gives the item.

``task.head=regression``: one output, MSE loss; the output is the deviation from the training
mean rating, so an untrained head already predicts the mean. ``task.head=classes``: one output
per star, cross-entropy; RMSE/MAE then use the expected rating Σ p(k)·k.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError

from promptrec.errors import ConfigError, DataError
from promptrec.tasks.base import Task, example_table, interaction_examples
from promptrec.tasks.settings import RatingConfig

HEADS = ("regression", "classes")


class RatingTask(Task):
    name = "rating"
    Config = RatingConfig
    headline = ("rmse", "mae")

    def __init__(self, cfg):
        super().__init__(cfg)
        if cfg.head not in HEADS:
            raise ConfigError(
                f"task.head={cfg.head!r} is not a rating head; choose one of {HEADS}."
            )
        self.levels = int(cfg.rating_levels)
        self.center = (1 + self.levels) / 2  # replaced by the training mean in prepare()

    def prepare(self, catalog, split: pd.DataFrame, folder=None) -> None:
        self.center = float(split.loc[split["split"] == "train", "rating"].mean())
        if self.cfg.head == "classes":
            ratings = split["rating"].to_numpy()
            if not (
                np.all(ratings == np.round(ratings))
                and ratings.min() >= 1
                and ratings.max() <= self.levels
            ):
                raise DataError(
                    f"task.head=classes needs whole-star ratings in 1..{self.levels}, but the data holds "
                    f"values from {ratings.min()} to {ratings.max()}. Use task.head=regression or set "
                    "task.rating_levels."
                )

    @property
    def num_outputs(self) -> int:
        return 1 if self.cfg.head == "regression" else self.levels

    @property
    def verbalizer_classes(self) -> int:
        return self.levels  # one label word (or several) per star

    def outputs_from_classes(self, scores: torch.Tensor) -> torch.Tensor:
        """Classes: the scores as logits. Regression: the expected star minus the training mean."""
        if self.cfg.head == "classes":
            return scores
        stars = torch.arange(1, self.levels + 1, dtype=scores.dtype, device=scores.device)
        return (scores.softmax(dim=1) @ stars - self.center).unsqueeze(1)

    def examples(self, split: pd.DataFrame, which: str, history_len: int) -> pd.DataFrame:
        frame = interaction_examples(split, which, history_len)
        if self.cfg.head == "regression":
            return frame.assign(labels=frame["rating"].astype("float32"))
        return frame.assign(labels=(frame["rating"].round().astype("int64") - 1))

    explained = "predicted stars"

    def explained_score(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.predict(outputs.float())

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """The predicted rating: the regression value, or the expected rating under the class probabilities."""
        if self.cfg.head == "regression":
            return outputs[:, 0] + self.center
        stars = torch.arange(1, self.levels + 1, dtype=outputs.dtype, device=outputs.device)
        return outputs.softmax(dim=1) @ stars

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.cfg.head == "regression":
            return F.mse_loss(self.predict(outputs), labels.float())
        return F.cross_entropy(outputs, labels.long())

    def evaluate(
        self, stage: str, outputs: torch.Tensor, examples: pd.DataFrame
    ) -> tuple[dict, pd.DataFrame]:
        if len(examples) == 0:
            raise ValueError(f"rating evaluation of '{stage}' got no examples")
        outputs = outputs.float().cpu()
        truth = torch.tensor(examples["rating"].to_numpy(), dtype=torch.float32)
        predicted = self.predict(outputs)
        values = {
            "rmse": MeanSquaredError(squared=False)(predicted, truth),
            "mae": MeanAbsoluteError()(predicted, truth),
        }
        table = example_table(
            examples, ["example_id", "user_id", "item_id", "rating", "n_history_kept"]
        ).assign(predicted=predicted.numpy())
        if self.cfg.head == "classes":
            classes, labels = outputs.argmax(dim=1), truth.long() - 1
            kwargs = {"num_classes": self.levels, "average": "macro"}
            values.update(
                accuracy=MulticlassAccuracy(num_classes=self.levels, average="micro")(
                    classes, labels
                ),
                precision=MulticlassPrecision(**kwargs)(classes, labels),
                recall=MulticlassRecall(**kwargs)(classes, labels),
                f1=MulticlassF1Score(**kwargs)(classes, labels),
            )
            table = table.assign(predicted_class=(classes + 1).numpy())
        return {f"{stage}/{k}": float(v) for k, v in values.items()}, table
