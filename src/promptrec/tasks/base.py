"""The contract every task fulfils, and the example builder they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from promptrec.data.catalog import Catalog
from promptrec.tasks.settings import TaskConfig

EXAMPLE_COLUMNS = [
    "example_id",
    "user_id",
    "item_id",
    "rating",
    "position",
    "history_items",
    "history_ratings",
]


# What a prompt of each split may show: earlier interactions of these splits only. Validation
# never sees test rows, and training never sees either; ``history`` rows (cold-start users) are
# prompt input only. For leave-one-out this is simply "everything earlier".
VISIBLE = {"train": ("train",), "val": ("train", "history"), "test": ("train", "val", "history")}


def interaction_examples(
    split: pd.DataFrame, which: str, history_len: int, seen: bool = False
) -> pd.DataFrame:
    """One example per interaction of split ``which``, with the user's visible history before it.

    ``split`` is ordered by user and position, so the history holds only earlier rows (never the
    target, never anything later) of the splits in ``VISIBLE[which]``; ``history_len`` keeps the
    most recent. With ``seen=True`` each example also lists *every* visible earlier item, which
    ranking tasks exclude from the candidates.
    """
    rows = []
    for user_id, user in split.groupby("user_id", sort=False):
        items, ratings, splits = (
            user["item_id"].to_numpy(),
            user["rating"].to_numpy(),
            user["split"].to_numpy(),
        )
        visible = np.flatnonzero(np.isin(splits, VISIBLE[which]))
        targets = np.flatnonzero(splits == which)
        for p, cut in zip(targets.tolist(), np.searchsorted(visible, targets).tolist()):
            recent = visible[max(0, cut - history_len) : cut]
            row = [
                user_id,
                items[p],
                float(ratings[p]),
                p,
                items[recent].tolist(),
                ratings[recent].tolist(),
            ]
            if seen:
                row.append(items[visible[:cut]].tolist())
            rows.append(row)
    frame = pd.DataFrame(rows, columns=EXAMPLE_COLUMNS[1:] + (["seen_items"] if seen else []))
    frame.insert(0, "example_id", np.arange(len(frame), dtype=np.int64))
    return frame


def example_table(examples: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The identifying columns of a per-example output table (those the examples have)."""
    return examples[[c for c in columns if c in examples.columns]].reset_index(drop=True)


class Task(ABC):
    """What a task tells the rest of the framework."""

    name: str
    Config: ClassVar[type] = TaskConfig  # its schema (conf/task/<name>.yaml is checked against it)
    headline: ClassVar[tuple[str, ...]] = ()  # the test metrics a summary shows first
    counted: ClassVar[tuple[str, ...]] = ()  # values of ``evaluate`` that are counts, not metrics
    predictions_file = "predictions.csv"
    shows_target = True  # False: the prompt must not see the target (it is the answer)

    def __init__(self, cfg):
        self.cfg = cfg
        self.chosen: dict = {}  # settings chosen on validation (saved in checkpoints), e.g. a threshold

    def prepare(self, catalog: Catalog, split: pd.DataFrame, folder: Path | None = None) -> None:  # noqa: B027
        """Learn what the task needs from the catalogue and the *training* split (never val/test
        labels); ``folder`` is the split's own folder, for files that must travel with it."""

    @property
    @abstractmethod
    def num_outputs(self) -> int:
        """Width of the model's output layer."""

    @property
    def verbalizer_classes(self) -> int:
        """How many classes a cloze prompt's verbalizer must name (see ``outputs_from_classes``)."""
        raise NotImplementedError(f"task {self.name} has no cloze form")

    def outputs_from_classes(self, scores: torch.Tensor) -> torch.Tensor:
        """Verbalizer class scores (log-probabilities) → this task's outputs."""
        return scores

    explained = "output"  # what ``explained_score`` measures, for explanation tables

    def explained_score(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One number per example that an explanation tracks as history items are removed."""
        return outputs[:, 0]

    @abstractmethod
    def examples(self, split: pd.DataFrame, which: str, history_len: int) -> pd.DataFrame:
        """Examples of one split, with a ``labels`` column the loss understands."""

    @abstractmethod
    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def evaluate(
        self, stage: str, outputs: torch.Tensor, examples: pd.DataFrame
    ) -> tuple[dict, pd.DataFrame]:
        """Metrics (keys prefixed ``{stage}/``) and a per-example table, from outputs in example-id order."""
