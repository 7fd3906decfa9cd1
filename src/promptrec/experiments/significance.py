"""Which differences between configurations are real: a paired bootstrap over test users.

Every configuration is tested on the same users (one split), so each bootstrap replicate draws
the test examples with replacement once and scores every configuration on that same draw (the
comparison is paired: a hard user is hard for all). Within a configuration, each replicate also
draws its seeds with replacement and averages the metric over them, so an interval covers both
which users happen to be in the test set and what a seed happens to give. A configuration's
95% interval is the 2.5th–97.5th percentile of its replicates; a difference from the best
configuration is *real* when the interval of the paired difference excludes 0.

Every metric is recomputed from the runs' own per-example tables (predictions.csv, topk.csv), so
the point estimates re-score the runs' metrics.json.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from promptrec.metrics.names import direction

COLUMNS = ["95% CI", "Δ vs best [95% CI]", "real?"]  # what it adds to a summary table
RANKING = {"hr", "recall", "ndcg", "mrr"}


def _per_example(table: pd.DataFrame, metric: str) -> tuple[pd.Index, np.ndarray] | None:
    """The run's test examples (by user and item) and what the metric needs from each of them:
    (label, logit) for AUC, one value per example for the metrics that average one."""
    name, _, k = metric.split("/", 1)[1].partition("@")
    if "target" in table:  # a ranking run's top-K lists
        if name not in RANKING or not k:
            return None
        ranks = np.array([lst.split().index(t) if t in lst.split() else -1
                          for lst, t in zip(table["items"].fillna(""), table["target"])])  # fmt: skip
        hit = (ranks >= 0) & (ranks < int(k))
        at = np.where(hit, ranks, 0)  # a rank for the misses too, so nothing divides by zero
        values = {"hr": hit, "recall": hit,
                  "ndcg": np.where(hit, 1 / np.log2(at + 2), 0.0),
                  "mrr": np.where(hit, 1 / (at + 1), 0.0)}[name]  # fmt: skip
        return pd.Index(zip(table["user_id"], table["target"])), values.astype(float)[:, None]
    keys = pd.Index(zip(table["user_id"], table["item_id"]))
    if name == "auc" and "logit" in table:
        return keys, table[["label", "logit"]].to_numpy(dtype=float)
    if name == "logloss" and "logit" in table:
        y, z = table["label"].to_numpy(float), table["logit"].to_numpy(float)
        return keys, (np.logaddexp(0, z) - y * z)[:, None]  # −log σ(±z), stable
    if name in ("rmse", "mae") and "predicted" in table:
        error = table["predicted"].to_numpy(float) - table["rating"].to_numpy(float)
        return keys, (error**2 if name == "rmse" else np.abs(error))[:, None]
    return None


def statistic(metric: str, values: np.ndarray, rows: np.ndarray) -> float:
    """The metric over the examples ``rows`` (with repeats) of one run's per-example values."""
    name = metric.split("/", 1)[1].partition("@")[0]
    if name == "auc":  # Mann-Whitney on the drawn examples, ties counted half
        y, ranks = values[rows, 0], rankdata(values[rows, 1])
        positives = y.sum()
        negatives = len(y) - positives
        if positives == 0 or negatives == 0:
            return float("nan")
        return float(
            (ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
        )
    mean = float(values[rows, 0].mean())
    return math.sqrt(mean) if name == "rmse" else mean


def load_tables(folders: list[str], metric: str) -> list[tuple[pd.Index, np.ndarray]] | None:
    """Each finished run's per-example values for ``metric``; None if any run lacks them."""
    out = []
    for folder in map(Path, folders):
        file = next(
            (folder / f for f in ("predictions.csv", "topk.csv") if (folder / f).is_file()), None
        )
        if file is None:
            return None
        table = pd.read_csv(
            file, dtype={"user_id": str, "item_id": str, "target": str, "items": str}
        )
        found = _per_example(table, metric)
        if found is None:
            return None
        out.append(found)
    return out


def paired_bootstrap(configurations: list[list[np.ndarray]], metric: str, replicates: int = 1000,
                     seed: int = 0) -> np.ndarray:  # fmt: skip
    """(replicates × configurations): each configuration's seed-mean metric on the same draw of
    examples, its seeds drawn with replacement too."""
    rng = np.random.default_rng(seed)
    n = len(configurations[0][0])
    out = np.empty((replicates, len(configurations)))
    for b in range(replicates):
        rows = rng.integers(0, n, n)
        for c, runs in enumerate(configurations):
            per_seed = np.array([statistic(metric, v, rows) for v in runs])
            out[b, c] = per_seed[rng.integers(0, len(runs), len(runs))].mean()
    return out


def _aligned(groups: list[list[str]], metric: str) -> tuple[list | None, str]:
    """Each configuration's runs' per-example values, rows in one order of test examples; or
    None and the reason they cannot be compared."""
    loaded = [load_tables(folders, metric) for folders in groups]
    if any(x is None or not x for x in loaded):
        return None, f"no per-example values for {metric} in every run (nothing to bootstrap)"
    keys = loaded[0][0][0]
    if any(len(k) != len(keys) or not k.sort_values().equals(keys.sort_values())
           for runs in loaded for k, _ in runs):  # fmt: skip
        return None, "the runs were not tested on the same examples (another split or data slice)"
    return [[v[k.get_indexer(keys)] for k, v in runs] for runs in loaded], ""


def paired_difference(first: list[str], second: list[str], metric: str, replicates: int = 1000,
                      seed: int = 0) -> tuple[float, float, float] | None:  # fmt: skip
    """``first`` − ``second`` (each the seeds of one configuration): the difference of their
    seed-mean metrics and its 95% interval (paired bootstrap); None when they cannot be paired."""
    aligned, _ = _aligned([first, second], metric)
    if aligned is None:
        return None
    everything = np.arange(len(aligned[0][0]))
    point = [np.mean([statistic(metric, v, everything) for v in runs]) for runs in aligned]
    draws = paired_bootstrap(aligned, metric, replicates, seed)
    low, high = np.nanpercentile(draws[:, 0] - draws[:, 1], [2.5, 97.5])
    return float(point[0] - point[1]), float(low), float(high)


def compare(groups: list[list[str]], metric: str, replicates: int = 1000, seed: int = 0
            ) -> tuple[pd.DataFrame | None, str]:  # fmt: skip
    """For configurations given as lists of finished run folders: the point estimate, its 95%
    interval, and the paired difference from the best configuration with its interval and
    verdict, one row per configuration; or None and the reason it cannot be computed."""
    how = direction(metric)
    if how is None:
        return None, f"{metric} has no known direction (metrics/names.py): no best to compare with"
    aligned, reason = _aligned(groups, metric)
    if aligned is None:
        return None, reason
    everything = np.arange(len(aligned[0][0]))
    point = np.array(
        [np.mean([statistic(metric, v, everything) for v in runs]) for runs in aligned]
    )
    draws = paired_bootstrap(aligned, metric, replicates, seed)
    best = int(np.nanargmin(point) if how == "min" else np.nanargmax(point))
    rows = []
    for c in range(len(groups)):
        low, high = np.nanpercentile(draws[:, c], [2.5, 97.5])
        row = {"95% CI": f"[{low:.4f}, {high:.4f}]"}
        if c == best:
            row.update({"Δ vs best [95% CI]": "best", "real?": "–"})
        else:
            diff = draws[:, c] - draws[:, best]
            d_low, d_high = np.nanpercentile(diff, [2.5, 97.5])
            real = d_low > 0 or d_high < 0
            row.update({"Δ vs best [95% CI]": f"{point[c] - point[best]:+.4f} [{d_low:+.4f}, {d_high:+.4f}]",
                        "real?": "yes" if real else "no"})  # fmt: skip
        rows.append(row)
    note = (f"95% intervals: paired bootstrap over the {len(everything)} test examples and the seeds "
            f"({replicates} replicates); a difference is real when its interval excludes 0.")  # fmt: skip
    return pd.DataFrame(rows), note
