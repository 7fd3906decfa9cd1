"""Splits: which interactions train, validate and test. Each is saved once with a content hash.

Every splitter orders each user's interactions in time. Ties in time are common (415 of 943
ML-100K users share their last timestamp with another interaction), so the sort is stable and
keeps source-file order among ties; breaking ties by item id would leak (ids follow release time).
Rows marked ``history`` (cold-start users) are prompt input only, never training examples.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from promptrec.atomic import atomic_path, write_atomic
from promptrec.errors import ConfigError

SPLIT_COLUMNS = ["user_id", "item_id", "rating", "timestamp", "position", "split"]


def select_users(interactions: pd.DataFrame, max_users: int | None) -> pd.DataFrame:
    """Keep the first ``max_users`` users in order of first appearance (a deterministic slice)."""
    if max_users is None:
        return interactions
    keep = pd.unique(interactions["user_id"])[:max_users]
    return interactions[interactions["user_id"].isin(keep)].reset_index(drop=True)


def _timeline(interactions: pd.DataFrame) -> pd.DataFrame:
    """Interactions ordered per user in time (ties keep file order), with a ``position`` column."""
    frame = interactions.assign(_row=np.arange(len(interactions)))
    frame = frame.sort_values(["user_id", "timestamp", "_row"], kind="mergesort")
    return frame.assign(position=frame.groupby("user_id", sort=False).cumcount().to_numpy())


def _finish(frame: pd.DataFrame, split: np.ndarray) -> pd.DataFrame:
    return frame.assign(split=split).drop(columns="_row")[SPLIT_COLUMNS].reset_index(drop=True)


def _check_ratios(ratios) -> tuple[float, float, float]:
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1) > 1e-6:
        raise ConfigError(
            f"data.split_ratios={list(ratios)} must be three non-negative shares (train, val, test) summing to 1."
        )
    return tuple(ratios)


def leave_one_out(interactions: pd.DataFrame, min_user_interactions: int = 3, **_) -> pd.DataFrame:
    """Per user, in time: the last interaction is test, the one before validation, the rest train.

    Users with fewer than ``min_user_interactions`` interactions cannot give a train prefix, a
    validation and a test item, so all of theirs stay in train (they still teach the model) and
    they are absent from validation and test.
    """
    if min_user_interactions < 3:
        raise ConfigError(
            f"data.min_user_interactions={min_user_interactions} is too small: leave-one-out needs "
            "at least 3 interactions per evaluated user (train prefix, validation, test). Use ≥ 3."
        )
    frame = _timeline(interactions)
    position = frame["position"].to_numpy()
    count = frame.groupby("user_id", sort=False)["item_id"].transform("size").to_numpy()
    split = np.full(len(frame), "train", dtype=object)
    evaluated = count >= min_user_interactions
    split[evaluated & (position == count - 1)] = "test"
    split[evaluated & (position == count - 2)] = "val"
    return _finish(frame, split)


def temporal(interactions: pd.DataFrame, ratios=(0.8, 0.1, 0.1), **_) -> pd.DataFrame:
    """One global time cut: the earliest share of all interactions trains, later ones validate/test."""
    train, val, _ = _check_ratios(ratios)
    frame = _timeline(interactions)
    order = np.lexsort((frame["_row"].to_numpy(), frame["timestamp"].to_numpy()))  # global time
    rank = np.empty(len(frame), dtype=np.int64)
    rank[order] = np.arange(len(frame))
    share = rank / len(frame)
    return _finish(
        frame, np.where(share < train, "train", np.where(share < train + val, "val", "test"))
    )


def random_split(
    interactions: pd.DataFrame, ratios=(0.8, 0.1, 0.1), seed: int = 0, **_
) -> pd.DataFrame:
    """Each interaction to train/val/test at random (seeded); histories still only look back in time."""
    train, val, _ = _check_ratios(ratios)
    frame = _timeline(interactions)
    draw = np.random.default_rng(seed).random(len(frame))[frame["_row"].to_numpy()]  # by file row
    return _finish(
        frame, np.where(draw < train, "train", np.where(draw < train + val, "val", "test"))
    )


def cold_user(
    interactions: pd.DataFrame, ratios=(0.8, 0.1, 0.1), seed: int = 0, **_
) -> pd.DataFrame:
    """Held-out users: never trained on. Their last interaction is the target (val or test users);
    their earlier ones are ``history``: prompt input only, never a training example."""
    train, val, _ = _check_ratios(ratios)
    frame = _timeline(interactions)
    users = pd.unique(interactions["user_id"])
    draw = dict(zip(users, np.random.default_rng(seed).random(len(users))))
    group = frame["user_id"].map(draw).to_numpy()
    last = (
        frame.groupby("user_id", sort=False)["position"].transform("max").to_numpy()
        == frame["position"].to_numpy()
    )
    held = np.where(group < train, "train", np.where(group < train + val, "val", "test"))
    return _finish(frame, np.where((held != "train") & ~last, "history", held))


def cold_item(
    interactions: pd.DataFrame, ratios=(0.8, 0.1, 0.1), seed: int = 0, **_
) -> pd.DataFrame:
    """Held-out items: every interaction with a val (test) item is a val (test) example; none trains."""
    train, val, _ = _check_ratios(ratios)
    frame = _timeline(interactions)
    items = pd.unique(interactions["item_id"])
    draw = dict(zip(items, np.random.default_rng(seed).random(len(items))))
    group = frame["item_id"].map(draw).to_numpy()
    return _finish(
        frame, np.where(group < train, "train", np.where(group < train + val, "val", "test"))
    )


SPLITTERS = {
    "loo": leave_one_out,
    "temporal": temporal,
    "random": random_split,
    "cold_user": cold_user,
    "cold_item": cold_item,
}


def make_split(interactions: pd.DataFrame, name: str = "loo", **settings) -> pd.DataFrame:
    if name not in SPLITTERS:
        raise ConfigError(f"data.split={name!r} is unknown; choose one of {sorted(SPLITTERS)}.")
    return SPLITTERS[name](interactions, **settings)


def content_hash(frame: pd.DataFrame) -> str:
    """A hash of the split's values, column by column (text joined, numbers as float64 bytes):
    independent of pandas, parquet or dtype details, and fast enough to check on every load."""
    digest = hashlib.sha256()
    for column in SPLIT_COLUMNS:
        values = frame[column]
        digest.update(column.encode())
        if pd.api.types.is_numeric_dtype(values):
            digest.update(values.to_numpy(dtype="float64").tobytes())
        else:
            digest.update("\x1f".join(values.astype(str).tolist()).encode())
    return digest.hexdigest()[:16]


def load_or_build_split(
    interactions: pd.DataFrame, cache_dir: Path, key: str, **settings
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
    frame = make_split(interactions, **settings)
    digest = content_hash(frame)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(table) as partial:
        frame.to_parquet(partial, index=False)
    counts = frame["split"].value_counts().to_dict()
    meta = {"content_hash": digest, "key": key, "settings": settings, "rows": counts}
    write_atomic(meta_path, json.dumps(meta, indent=2))
    return frame, digest
