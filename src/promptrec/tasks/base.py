"""The contract every task fulfils, and the example builder they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from promptrec.data.catalog import Catalog

EXAMPLE_COLUMNS = [
    "example_id",
    "user_id",
    "item_id",
    "rating",
    "position",
    "history_items",
    "history_ratings",
]


def interaction_examples(
    split: pd.DataFrame, which: str, history_len: int, seen: bool = False
) -> pd.DataFrame:
    """One example per interaction of split ``which``, with the user's history strictly before it.

    ``split`` is ordered by user and position (as :func:`leave_one_out` returns it), so the
    history is the preceding rows: never the target, never anything later. ``history_len`` keeps
    the most recent items. With ``seen=True`` each example also lists *every* earlier item, which
    ranking tasks exclude from the candidates.
    """
    rows = []
    for _, user in split.groupby("user_id", sort=False):
        items, ratings = user["item_id"].to_numpy(), user["rating"].to_numpy()
        for p in np.flatnonzero(user["split"].to_numpy() == which):
            start = max(0, p - history_len)
            row = [
                user["user_id"].iat[p],
                items[p],
                float(ratings[p]),
                int(p),
                items[start:p].tolist(),
                ratings[start:p].tolist(),
            ]
            if seen:
                row.append(items[:p].tolist())
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
    predictions_file = "predictions.csv"
    shows_target = True  # False: the prompt must not see the target (it is the answer)

    def __init__(self, cfg):
        self.cfg = cfg

    def prepare(self, catalog: Catalog, split: pd.DataFrame) -> None:  # noqa: B027
        """Learn what the task needs from the catalogue and the *training* split (never val/test)."""

    @property
    @abstractmethod
    def num_outputs(self) -> int:
        """Width of the model's output layer."""

    @abstractmethod
    def examples(self, split: pd.DataFrame, which: str, history_len: int) -> pd.DataFrame:
        """Examples of one split, with a ``labels`` column the loss understands."""

    @abstractmethod
    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor: ...

    def write_outputs(self, run_dir: Path, table: pd.DataFrame) -> None:  # noqa: B027
        """Extra test outputs beside the per-example table (figures, …); none by default."""

    @abstractmethod
    def evaluate(
        self, stage: str, outputs: torch.Tensor, examples: pd.DataFrame
    ) -> tuple[dict, pd.DataFrame]:
        """Metrics (keys prefixed ``{stage}/``) and a per-example table, from outputs in example-id order."""
