"""Sampled evaluation candidates: N negatives per evaluation example, drawn once and saved.

Full-catalogue ranking is the default and the honest one; sampled metrics are offered because
papers report them. To keep them comparable across models, the negatives of a split are drawn once
per (sampler, N, seed), saved beside the split, and read back by every later run. Negatives are
items the user never interacted with (in any split); ``uniform`` draws them evenly, ``popularity``
in proportion to training interactions (harder negatives).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from promptrec.atomic import write_atomic
from promptrec.data.catalog import Catalog
from promptrec.errors import ConfigError

SAMPLERS = ("uniform", "popularity")


def _draw(
    split: pd.DataFrame, which: str, catalog: Catalog, n: int, sampler: str, seed: int
) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    n_items = len(catalog.item_ids)
    weights = catalog.popularity.numpy() + 1.0 if sampler == "popularity" else np.ones(n_items)
    touched = split.groupby("user_id")["item_id"].agg(lambda s: {catalog.item_index[i] for i in s})
    out = {}
    for row in split[split["split"] == which].itertuples(index=False):
        allowed = np.ones(n_items, dtype=bool)
        allowed[list(touched[row.user_id])] = False
        pool = np.flatnonzero(allowed)
        if len(pool) < n:
            raise ConfigError(
                f"task.eval_negatives={n} exceeds the {len(pool)} items user {row.user_id} never touched."
            )
        p = weights[pool] / weights[pool].sum()
        chosen = rng.choice(pool, size=n, replace=False, p=p)
        out[f"{row.user_id}:{row.position}"] = [catalog.item_ids[i] for i in sorted(chosen)]
    return out


def load_or_draw(
    split: pd.DataFrame, which: str, catalog: Catalog, n: int, sampler: str, seed: int, folder: Path
) -> dict[str, list[str]]:
    """Negatives keyed ``"<user_id>:<position>"`` for every ``which`` example, from ``folder`` if saved."""
    if sampler not in SAMPLERS:
        raise ConfigError(
            f"task.negative_sampler={sampler!r} is unknown; choose one of {SAMPLERS}."
        )
    path = Path(folder) / f"negatives-{which}-{sampler}-N{n}-seed{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    drawn = _draw(split, which, catalog, n, sampler, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(drawn))
    return drawn
