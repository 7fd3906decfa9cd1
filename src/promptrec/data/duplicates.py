"""Films listed twice under two item ids (MovieLens-100K has 18: same title, same year).

A user who rated both copies can be shown one copy in the history of a prompt whose target is the
other, rating included, and an ID model learns two unrelated vectors for one film.
``data.merge_duplicate_items=true`` maps every copy to its first id in the item file and keeps
each user's earliest interaction with the film; off by default so that existing split hashes
stay reproducible.
"""

from __future__ import annotations

import pandas as pd

from promptrec.data.loaders import InteractionData


def duplicate_items(items: pd.DataFrame) -> dict[str, str]:
    """Each later copy's item id → the first copy's id, for items with the same title and year
    (titles compared without case and surrounding spaces)."""
    title = items["title"].astype("string").str.strip().str.casefold().fillna("")
    key = title + "|" + items["year"].astype("string").fillna("")
    first = items.groupby(key, sort=False, dropna=False)["item_id"].transform("first")
    copies = first != items["item_id"]
    return dict(zip(items.loc[copies, "item_id"], first[copies]))


def merge_duplicate_items(data: InteractionData, copies: dict[str, str]) -> InteractionData:
    """The data with every copy replaced by its first id; a user's repeated interaction with one
    film keeps the earliest (ties: file order)."""
    interactions = data.interactions.assign(item_id=data.interactions["item_id"].replace(copies))
    order = interactions.sort_values("timestamp", kind="stable").index
    repeated = interactions.loc[order].duplicated(["user_id", "item_id"], keep="first")
    kept = interactions.drop(index=repeated[repeated].index)
    items = data.items[~data.items["item_id"].isin(copies)].reset_index(drop=True)
    return InteractionData(kept.reset_index(drop=True), items, data.users)


def targets_shown_under_another_id(examples: pd.DataFrame, copies: dict[str, str]) -> int:
    """How many examples list their own target film in the history under its other id."""
    canonical = lambda item: copies.get(item, item)  # noqa: E731
    return sum(canonical(target) in {canonical(h) for h in history} and target not in history
               for target, history in zip(examples["item_id"], examples["history_items"]))  # fmt: skip
