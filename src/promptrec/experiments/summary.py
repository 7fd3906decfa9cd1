"""One row per configuration: runs that differ only by their seed are pooled as mean ± std.

A configuration is everything in the saved config except the seed and the settings that only
say where files went (see ``runs.IGNORED_KEYS``), so the same grid run twice pools too. A run
that reads another run of its own seed (``prompt.collaborative.run=outputs/mf_s42`` for seed 42,
``…/mf_s1`` for seed 1) is one configuration across seeds too.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from promptrec.experiments.significance import COLUMNS as SIGNIFICANCE
from promptrec.metrics.names import direction
from promptrec.runtime.plots import label_column
from promptrec.tasks import TASKS

COSTS = ["params/trainable", "cost/train_samples_per_s", "cost/peak_rss_mb", "cost/checkpoint_mb"]


def headline_metrics(runs: pd.DataFrame, extra: list[str] | None = None) -> list[str]:
    """Each task's own headline test metrics (``Task.headline``), ``extra``, then the costs."""
    tasks = runs.get("cfg/task.name", pd.Series(dtype=str)).dropna().unique()
    headline = [f"test/{m}" for task in tasks if task in TASKS for m in TASKS[task].headline]
    wanted = headline + list(extra or []) + COSTS
    return [m for m in dict.fromkeys(wanted) if m in runs.columns]


def setting_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c.startswith("cfg/") and c != "cfg/seed"]


def varying_labels(runs: pd.DataFrame) -> list[str]:
    """The group options and overrides that differ between runs (the seed aside), named without
    their prefix (``prompt``, ``tuning``, ``tuning.lr``): the columns that tell the rows apart."""
    labels = [
        c for c in runs.columns if c.startswith(("choice/", "override/")) and c != "override/seed"
    ]
    varying = [c.split("/", 1)[1] for c in labels if runs[c].map(str).nunique() > 1]
    if not varying:  # runs launched alike whose configs differ (defaults changed between them);
        # settings only some runs have are left out: older runs carry fields of a flatter schema
        varying = [c.split("/", 1)[1] for c in setting_columns(runs)
                   if runs[c].notna().all() and runs[c].map(str).nunique() > 1]  # fmt: skip
    first = ["task", "prompt", "tuning", "model", "data"]  # the order a reader compares them in
    return sorted(varying, key=lambda n: (first.index(n) if n in first else len(first), n))


def _setting_text(value) -> str:
    """A setting as text; null and absent read the same (a key an older run's config lacks and a
    newer run leaves null is one setting: the option is off)."""
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


# settings that name another run's folder, which is often named after its seed
RUN_POINTERS = ("cfg/prompt.collaborative.run", "cfg/model.init_from")


def seed_free(value: str, seed) -> str:
    """The seed as a whole number inside a run folder's name becomes ``{seed}``, so each seed's
    pointer to the run of its own seed reads alike (``mf_s42`` → ``mf_s{seed}``)."""
    if seed is None or (isinstance(seed, float) and np.isnan(seed)):
        return value
    return re.sub(rf"(?<!\d){int(seed)}(?!\d)", "{seed}", value)


def configuration_key(runs: pd.DataFrame) -> pd.Series:
    """One text per run that is equal exactly for runs of one configuration (seed aside)."""
    keys = setting_columns(runs)
    if not keys:
        return pd.Series("", runs.index)
    texts = runs[keys].map(_setting_text)
    seeds = runs.get("cfg/seed", pd.Series(None, runs.index))
    for column in (c for c in RUN_POINTERS if c in texts):
        texts[column] = [seed_free(v, seed) for v, seed in zip(texts[column], seeds)]
    return texts.agg("\x1f".join, axis=1)


def summarize(runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean and standard deviation (over seeds, ddof=1) of each metric per configuration, plus
    how many runs finished and failed. Failed or unfinished runs never enter a mean."""
    shown = varying_labels(runs)
    rows = []
    for _, group in runs.groupby(configuration_key(runs), sort=False):
        done = group[group["status"] == "finished"]
        row = {name: group[label_column(group, name)].iloc[0] for name in shown}
        row["runs"] = len(done)
        row["failed"] = int((group["status"] == "failed").sum())
        row["seeds"] = ",".join(str(s) for s in sorted(done.get("cfg/seed", pd.Series()).dropna()))
        for metric in metrics:
            values = pd.to_numeric(done[metric], errors="coerce").dropna() if metric in done else []
            row[metric] = float(np.mean(values)) if len(values) else np.nan
            row[f"{metric} std"] = float(np.std(values, ddof=1)) if len(values) > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def best_rows(summary: pd.DataFrame, metric: str) -> set[int]:
    """Rows holding the best mean of a metric (ties all count); none for unranked metrics."""
    how = direction(metric)
    values = summary[metric].dropna() if metric in summary else pd.Series(dtype=float)
    if how is None or values.empty:
        return set()
    best = values.min() if how == "min" else values.max()
    return set(values.index[values == best])


def _number(metric: str, value: float) -> str:
    if metric.startswith("params/"):
        return f"{value:,.0f}"
    return f"{value:.1f}" if metric.startswith("cost/") else f"{value:.4f}"


def mean_std_text(row: pd.Series, metric: str) -> str:
    """A summary row's ``metric`` as "mean ± std" (– where no run finished; no std for n = 1)."""
    mean, std = row.get(metric, np.nan), row.get(f"{metric} std", np.nan)
    if mean is None or pd.isna(mean):
        return "–"
    return _number(metric, mean) + (
        "" if std is None or pd.isna(std) else f" ± {_number(metric, std)}"
    )


def to_markdown(summary: pd.DataFrame, metrics: list[str]) -> str:
    """A Markdown table: mean ± std over seeds, the best mean of each column in bold."""
    trailing = [c for c in SIGNIFICANCE if c in summary.columns]
    settings = [c for c in summary.columns
                if c not in metrics and c not in trailing and not c.endswith(" std")]  # fmt: skip
    header = (
        settings
        + [
            f"{m} {'↓' if direction(m) == 'min' else '↑' if direction(m) else ''}".strip()
            for m in metrics
        ]
        + trailing
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {m: best_rows(summary, m) for m in metrics}
    for i, row in summary.iterrows():
        cells = [_setting_text(row[c]) or "–" for c in settings]  # absent: –, not nan
        for m in metrics:
            text = mean_std_text(row, m)
            cells.append(f"**{text}**" if i in best[m] else text)
        cells += [str(row[c]) for c in trailing]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
