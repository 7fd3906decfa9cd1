"""Helpers on example tables (each task builds its own examples: see ``promptrec.tasks``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from promptrec.atomic import write_atomic

EXAMPLE_COLUMNS = [
    "example_id",
    "user_id",
    "item_id",
    "rating",
    "label",
    "history_items",
    "history_ratings",
]


def fold_of(users: pd.Series, items: pd.Series, folds: int) -> np.ndarray:
    """Each (user, item) pair's fold, 0 … folds-1: a stable hash of the two ids, so a cross-fitted
    ID model's fold runs and the language model that reads their scores agree on every pair
    without storing an assignment."""
    keys = users.astype(str).str.cat(items.astype(str), sep=":").to_numpy()
    return (pd.util.hash_array(keys.astype(object)) % np.uint64(folds)).astype(np.int64)


def cap_examples(examples: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """Keep a seeded uniform sample of ``limit`` examples (CPU runs stay short; ids stay unique)."""
    if limit is None or len(examples) <= limit:
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=limit, replace=False))
    return examples.iloc[keep].reset_index(drop=True)


def few_shot(examples: pd.DataFrame, k: int, seed: int, manifest: Path) -> pd.DataFrame:
    """K examples drawn once per (K, seed) and saved, so every model and prompt sees the same K.

    The manifest lists (user_id, position) pairs; a later run reads it instead of drawing again.
    """
    if manifest.is_file():
        keys = {tuple(pair) for pair in json.loads(manifest.read_text())["examples"]}
        chosen = examples[
            [(u, int(p)) in keys for u, p in zip(examples["user_id"], examples["position"])]
        ]
        if len(chosen) == len(keys):
            return chosen.reset_index(drop=True)
    chosen = cap_examples(examples, k, seed)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "k": k,
        "seed": seed,
        "examples": [[u, int(p)] for u, p in zip(chosen["user_id"], chosen["position"])],
    }
    write_atomic(manifest, json.dumps(payload))
    return chosen
