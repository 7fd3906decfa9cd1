"""Helpers on example tables (each task builds its own examples: see ``promptrec.tasks``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

EXAMPLE_COLUMNS = [
    "example_id",
    "user_id",
    "item_id",
    "rating",
    "label",
    "history_items",
    "history_ratings",
]


def cap_examples(examples: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """Keep a seeded uniform sample of ``limit`` examples (CPU runs stay short; ids stay unique)."""
    if limit is None or len(examples) <= limit:
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=limit, replace=False))
    return examples.iloc[keep].reset_index(drop=True)
