"""Leave-one-out by time, per user: the last interaction is test, the one before is validation.

Ties in time are common (415 of 943 ML-100K users share their last timestamp with another
interaction), so the sort is stable and keeps source-file order among ties. Breaking ties by item
id would leak: ids correlate with release time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from promptrec.errors import ConfigError

SPLIT_COLUMNS = ["user_id", "item_id", "rating", "timestamp", "position", "split"]


def select_users(interactions: pd.DataFrame, max_users: int | None) -> pd.DataFrame:
    """Keep the first ``max_users`` users in order of first appearance (a deterministic slice)."""
    if max_users is None:
        return interactions
    keep = pd.unique(interactions["user_id"])[:max_users]
    return interactions[interactions["user_id"].isin(keep)].reset_index(drop=True)


def leave_one_out(interactions: pd.DataFrame, min_user_interactions: int = 3) -> pd.DataFrame:
    """Return the interactions ordered per user in time, with ``position`` and ``split`` columns.

    Users with fewer than ``min_user_interactions`` interactions cannot give a train prefix, a
    validation and a test item, so all of theirs stay in train (they still teach the model) and
    they are absent from validation and test.
    """
    if min_user_interactions < 3:
        raise ConfigError(
            f"data.min_user_interactions={min_user_interactions} is too small: leave-one-out needs "
            "at least 3 interactions per evaluated user (train prefix, validation, test). Use ≥ 3."
        )
    frame = interactions.assign(_row=np.arange(len(interactions)))
    frame = frame.sort_values(["user_id", "timestamp", "_row"], kind="mergesort")
    position = frame.groupby("user_id", sort=False).cumcount().to_numpy()
    count = frame.groupby("user_id", sort=False)["item_id"].transform("size").to_numpy()
    split = np.full(len(frame), "train", dtype=object)
    evaluated = count >= min_user_interactions
    split[evaluated & (position == count - 1)] = "test"
    split[evaluated & (position == count - 2)] = "val"
    frame = frame.assign(position=position, split=split).drop(columns="_row")
    return frame[SPLIT_COLUMNS].reset_index(drop=True)


def content_hash(frame: pd.DataFrame) -> str:
    """A hash of the split's content (not of the file bytes), stable across pandas/parquet versions."""
    payload = frame[SPLIT_COLUMNS].to_csv(index=False).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def load_or_build_split(
    interactions: pd.DataFrame, cache_dir: Path, key: str, min_user_interactions: int
) -> tuple[pd.DataFrame, str]:
    """Build the split once per ``key`` (source + settings), save it with its content hash, reuse it.

    A saved split whose content no longer matches its recorded hash is rebuilt, never trusted.
    """
    folder = Path(cache_dir) / f"split-{key}"
    table, meta_path = folder / "split.parquet", folder / "split.json"
    if table.is_file() and meta_path.is_file():
        saved = pd.read_parquet(table)
        recorded = json.loads(meta_path.read_text())["content_hash"]
        if content_hash(saved) == recorded:
            return saved, recorded
    frame = leave_one_out(interactions, min_user_interactions)
    digest = content_hash(frame)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(f"{table}.tmp", index=False)
    os.replace(f"{table}.tmp", table)
    counts = frame["split"].value_counts().to_dict()
    meta = {
        "content_hash": digest,
        "key": key,
        "min_user_interactions": min_user_interactions,
        "rows": counts,
    }
    meta_path.with_suffix(".tmp").write_text(json.dumps(meta, indent=2))
    os.replace(meta_path.with_suffix(".tmp"), meta_path)
    return frame, digest
