"""Look up the fields a template sees (see ``FIELDS`` in template.py) for one example."""

from __future__ import annotations

import pandas as pd


def _value(v):
    return "unknown" if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v


class ContextBuilder:
    """Holds the item catalogue and user profiles as plain dicts: one lookup per field, no pandas."""

    def __init__(self, items: pd.DataFrame, users: pd.DataFrame, title_marks: dict | None = None):
        """``title_marks``: a marker token written after each ``history`` and ``target`` title
        (collaborative tokens: strategies/collaborative.py), so every template carries them."""
        self.title_marks = title_marks or {}
        self.items = {
            row.item_id: {"id": row.item_id, "title": row.title, "year": _value(row.year), "genres": list(row.genres)}
            for row in items.itertuples(index=False)
        }  # fmt: skip
        self.users = {
            row.user_id: {"id": row.user_id, "age": _value(row.age), "gender": row.gender, "occupation": row.occupation}
            for row in users.itertuples(index=False)
        }  # fmt: skip

    def item(self, item_id: str) -> dict:
        item = self.items.get(item_id)
        return (
            dict(item)
            if item
            else {"id": item_id, "title": "unknown item", "year": "unknown", "genres": []}
        )

    def _marked(self, item: dict, role: str) -> dict:
        mark = self.title_marks.get(role)
        return {**item, "title": f"{item['title']} {mark}"} if mark else item

    def build(self, user_id: str, item_id: str, history_items, history_ratings) -> dict:
        history = [
            {**self._marked(self.item(i), "history"),
             "rating": int(r) if float(r).is_integer() else float(r)}
            for i, r in zip(history_items, history_ratings)
        ]  # fmt: skip
        user = self.users.get(
            user_id, {"id": user_id, "age": "unknown", "gender": "", "occupation": ""}
        )
        return {"user": dict(user), "target": self._marked(self.item(item_id), "target"),
                "history": history}  # fmt: skip
