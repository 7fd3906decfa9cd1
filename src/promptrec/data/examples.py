"""Turn a split into supervised examples: (user, history strictly before the target, target) → label.

The history of an example is the user's interactions at earlier positions in time order, so it
never holds the target or anything after it. Validation examples see the train prefix; test
examples also see the validation interaction, which happened before the test one.
"""

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


def preference_examples(
    split: pd.DataFrame, which: str, history_len: int, like_threshold: float
) -> pd.DataFrame:
    """One example per interaction in split ``which``; label = rating ≥ ``like_threshold``.

    ``split`` must be ordered by user and position (as :func:`leave_one_out` returns it).
    ``history_len`` keeps the most recent items (older ones are dropped first).
    """
    rows = []
    for _, user in split.groupby("user_id", sort=False):
        items, ratings = user["item_id"].to_numpy(), user["rating"].to_numpy()
        for p in np.flatnonzero(user["split"].to_numpy() == which):
            start = max(0, p - history_len)
            rows.append(
                (user["user_id"].iat[p], items[p], float(ratings[p]), int(ratings[p] >= like_threshold),
                 items[start:p].tolist(), ratings[start:p].tolist())
            )  # fmt: skip
    frame = pd.DataFrame(rows, columns=EXAMPLE_COLUMNS[1:])
    frame.insert(0, "example_id", np.arange(len(frame), dtype=np.int64))
    return frame


def cap_examples(examples: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """Keep a seeded uniform sample of ``limit`` examples (CPU runs stay short; ids stay unique)."""
    if limit is None or len(examples) <= limit:
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=limit, replace=False))
    return examples.iloc[keep].reset_index(drop=True)
