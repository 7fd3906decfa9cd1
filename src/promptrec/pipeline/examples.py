"""The examples a run trains and tests on: the task's examples of each split, with the training
examples capped (``data.max_train_examples``) or drawn few-shot (``data.few_shot``), both seeded
and the few-shot draw saved beside the split so every run with that seed uses the same one, or
one fold left out (``data.holdout_fold``, for cross-fitting).
ID baselines read the same examples as user, item and history indices."""

from __future__ import annotations

from pathlib import Path

import datasets
import pandas as pd

from promptrec.data.catalog import Catalog
from promptrec.data.examples import cap_examples, few_shot, fold_of
from promptrec.tasks import Task

SPLITS = ("train", "val", "test")
ID_COLUMNS = ["user_idx", "item_idx", "history_idx", "labels", "example_id"]


class ExampleBuilder:
    def __init__(self, task: Task, data_cfg, seed: int, split: pd.DataFrame, split_folder: Path):
        self.task, self.cfg, self.seed = task, data_cfg, seed
        self.split, self.split_folder = split, split_folder

    def __call__(self, which: str) -> pd.DataFrame:
        frame = self.task.examples(self.split, which, self.cfg.history_len)
        held = self.cfg.get("holdout_fold")
        if (
            held is not None and which == "train"
        ):  # a cross-fitting fold run (experiments/crossfit.py)
            kept = fold_of(frame["user_id"], frame["item_id"], held[1]) != held[0]
            frame = frame[kept].reset_index(drop=True)
        k, seed = self.cfg.few_shot, self.seed
        if k is not None and which in ("train", "val"):  # TALLRec-style: K to train, K to validate
            name = f"fewshot-{self.task.name}-K{k}-seed{seed}-{which}.json"
            return few_shot(frame, k, seed, self.split_folder / name)
        return cap_examples(frame, self.cfg.max_train_examples, seed) if which == "train" else frame


def _left_padded(history, index: dict[str, int], width: int) -> list[int]:
    """Item ids + 1 (0 is padding), most recent last, left-padded to ``width`` (sequence models)."""
    ids = [index[i] + 1 for i in history][-width:]
    return [0] * (width - len(ids)) + ids


def indexed(examples: ExampleBuilder, catalog: Catalog, history_len: int) -> dict:
    """User and item indices per split for ID baselines (cheap: built in memory every run)."""
    loaded, frames, width = {}, {}, max(1, history_len)
    for which in SPLITS:
        frame = examples(which)
        frame = frame.assign(
            user_idx=frame["user_id"].map(catalog.user_index).astype("int64"),
            item_idx=frame["item_id"].map(catalog.item_index).astype("int64"),
            history_idx=[
                _left_padded(h, catalog.item_index, width) for h in frame["history_items"]
            ],
        )
        loaded[which] = datasets.Dataset.from_pandas(frame[ID_COLUMNS], preserve_index=False)
        loaded[which].set_format("torch", columns=ID_COLUMNS)
        frames[which] = frame
    return {"datasets": loaded, "examples": frames}
