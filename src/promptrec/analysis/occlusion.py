"""Occlusion: how much each history item moves a prediction when it is left out of the prompt.

Only the items the prompt actually showed are occluded, one at a time, so the token budget never
lets an older item slip in and blur the comparison. Positive ``effect`` = the item raised the
score (``task.explained``: p(like), predicted stars, or log p(target)).
"""

from __future__ import annotations

import pandas as pd
import torch

from promptrec.pipeline.module import score_features


def occlusion_table(
    model, task, encoder, collate, example, precision: str = "32-true"
) -> pd.DataFrame:
    """One row per shown history item of ``example`` (a row of the examples table)."""
    kept = int(example.n_history_kept)
    items = list(example.history_items)[len(example.history_items) - kept :]
    ratings = list(example.history_ratings)[len(example.history_ratings) - kept :]
    variants = [(items, ratings)] + [
        (items[:j] + items[j + 1 :], ratings[:j] + ratings[j + 1 :]) for j in range(kept)
    ]
    features = [encoder.features(example.user_id, example.item_id, hist_items, hist_ratings)
                for hist_items, hist_ratings in variants]  # fmt: skip
    outputs = score_features(model, collate, features, len(features), precision)
    labels = torch.full((len(variants),), float(example.labels))
    scores = task.explained_score(outputs, labels).tolist()
    titles = [encoder.contexts.item(i)["title"] for i in items]
    return pd.DataFrame({
        "user_id": example.user_id, "target": example.item_id, "history_item": items,
        "title": titles, "rating": ratings, "position": range(-kept, 0),
        "score": scores[0], "score_without": scores[1:],
        "effect": [scores[0] - s for s in scores[1:]],
    }).sort_values("effect", key=abs, ascending=False, kind="stable")  # fmt: skip
