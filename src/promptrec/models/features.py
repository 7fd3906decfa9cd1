"""Side features as categorical ids, for the factorisation machine baseline.

The features are the facts the prompts show: the user's id, age band (decades), gender and
occupation; the item's id, release decade and genres. Each distinct value gets one id in a
shared vocabulary; id 0 pads rows with fewer values (items with fewer genres).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from promptrec.data.catalog import Catalog


@dataclass
class FeatureTable:
    user: torch.Tensor  # (users, user fields) feature ids, 0 = none
    item: torch.Tensor  # (items, item fields) feature ids, 0 = none
    size: int  # vocabulary size, padding included


def _decade(value, name: str) -> list[str]:
    return [f"{name}={int(value) // 10 * 10}s" if pd.notna(value) else f"{name}=unknown"]


def _rows(frame: pd.DataFrame, ids: list[str], columns: dict) -> list[list[str]]:
    """Each id's feature strings (ids missing from the side table get their id feature only)."""
    indexed = frame.drop_duplicates("key").set_index("key")
    rows = []
    for key in ids:
        values = [f"id={key}"]
        if key in indexed.index:
            for column, render in columns.items():
                values += render(indexed.at[key, column])
        rows.append(values)
    return rows


def _encode(rows: list[list[str]], vocabulary: dict[str, int]) -> torch.Tensor:
    width = max(len(row) for row in rows)
    table = torch.zeros(len(rows), width, dtype=torch.long)
    for r, row in enumerate(rows):
        ids = [vocabulary.setdefault(value, len(vocabulary) + 1) for value in row]
        table[r, : len(ids)] = torch.tensor(ids)
    return table


def feature_table(catalog: Catalog, users: pd.DataFrame, items: pd.DataFrame, side: bool = True
                  ) -> FeatureTable:  # fmt: skip
    """Feature ids of every catalogue user and item; ``side=False`` keeps the two ids only
    (then the model is plain MF with biases, fitted like the FM)."""
    user_columns = {"age": lambda v: _decade(v, "age"),
                    "gender": lambda v: [f"gender={v}"],
                    "occupation": lambda v: [f"occupation={v}"]} if side else {}  # fmt: skip
    item_columns = {"year": lambda v: _decade(v, "year"),
                    "genres": lambda v: [f"genre={g}" for g in v]} if side else {}  # fmt: skip
    vocabulary: dict[str, int] = {}
    user_rows = _rows(users.assign(key=users["user_id"]), catalog.user_ids, user_columns)
    item_rows = _rows(items.assign(key=items["item_id"]), catalog.item_ids, item_columns)
    user = _encode([["u:" + v for v in row] for row in user_rows], vocabulary)
    item = _encode([["i:" + v for v in row] for row in item_rows], vocabulary)
    return FeatureTable(user, item, len(vocabulary) + 1)
