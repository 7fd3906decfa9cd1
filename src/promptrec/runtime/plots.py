"""Every figure PromptRec draws (matplotlib, files only, no display needed): a run's calibration
(reliability diagram) and, comparing runs, a prompt × tuning-mode heat-map, a metric against
trainable parameters, and training curves. The comparison figures return a Figure (a notebook
shows it; promptrec-summarize saves it)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from promptrec.metrics.names import direction  # noqa: E402
from promptrec.runtime.csv_log import training_curves  # noqa: E402


def reliability_diagram(scores: np.ndarray, labels: np.ndarray, path: Path, bins: int = 10) -> Path:
    """Observed like-rate against mean predicted probability per bin: calibrated = on the diagonal."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    filled = counts > 0
    mean_p = np.bincount(which, weights=scores, minlength=bins)[filled] / counts[filled]
    rate = np.bincount(which, weights=labels, minlength=bins)[filled] / counts[filled]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(4.5, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.plot(mean_p, rate, "o-", label="model")
    top.set_ylabel("observed like-rate")
    top.set_title(f"Reliability diagram ({len(scores)} examples)")
    top.legend(loc="upper left")
    bottom.bar((edges[:-1] + edges[1:]) / 2, counts, width=1 / bins, edgecolor="white")
    bottom.set_xlabel("predicted P(like)")
    bottom.set_ylabel("examples")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def label_column(runs: pd.DataFrame, name: str) -> str:
    """The run-table column behind a setting's name: the group option it was launched with, the
    override typed, or else the saved config value (``choice/``, ``override/``, ``cfg/``)."""
    return next(
        f"{kind}/{name}" for kind in ("choice", "override", "cfg") if f"{kind}/{name}" in runs
    )


def _label(row: pd.Series, settings: list[str]) -> str:
    return ", ".join(f"{s}={row[s]}" for s in settings) or "run"


def heatmap(summary: pd.DataFrame, metric: str, rows: str = "prompt",
            cols: str = "tuning") -> Figure:  # fmt: skip
    """Mean metric per prompt (rows) × tuning mode (columns); a setting that did not vary is a
    single row or column."""
    table = summary.assign(**{k: summary.get(k, "all") for k in (rows, cols)})
    grid = table.pivot_table(index=rows, columns=cols, values=metric, aggfunc="mean", sort=False)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * grid.shape[1], 1.2 + 0.55 * grid.shape[0]))
    cmap = "viridis_r" if direction(metric) == "min" else "viridis"
    image = ax.imshow(grid.to_numpy(dtype=float), cmap=cmap, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right")
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    values = grid.to_numpy(dtype=float)
    middle = np.nanmean(values) if np.isfinite(values).any() else 0.0
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.3f}", ha="center", va="center",
                    color="white" if (value < middle) != (cmap == "viridis_r") else "black")  # fmt: skip
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(f"{metric} (mean over seeds)")
    fig.tight_layout()
    return fig


def metric_vs_parameters(summary: pd.DataFrame, metric: str, settings: list[str]) -> Figure:
    """Is a bigger trainable budget worth it? One point per configuration, ±1 std over seeds."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.set_prop_cycle(color=plt.cm.tab20.colors)  # 20 distinct colours before any repeats
    points = (
        summary.dropna(subset=[metric, "params/trainable"])
        if "params/trainable" in summary
        else summary.iloc[:0]
    )
    for _, row in points.iterrows():
        std = row.get(f"{metric} std")
        ax.errorbar(row["params/trainable"], row[metric], yerr=None if pd.isna(std) else std,
                    fmt="o", capsize=3, label=_label(row, settings))  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if 0 < len(points) <= 20:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_title(f"{metric} against trainable parameters")
    return fig


def curves(runs: pd.DataFrame, settings: list[str], column: str = "train/loss") -> Figure:
    """A logged value against the optimizer step: one line per configuration (mean over its
    seeds where they logged the same steps), the seeds themselves faint."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.set_prop_cycle(color=plt.cm.tab20.colors)  # 20 distinct colours before any repeats
    finished = runs[runs["status"] == "finished"]
    keys = [label_column(finished, s) for s in settings]
    groups = (
        finished.groupby([finished[k].map(str) for k in keys], sort=False)
        if keys
        else [("", finished)]
    )
    for _, group in groups:
        logged = [training_curves(r, (column,)) for r in group["run"]]
        logged = [c.groupby("step")[column].mean() for c in logged if column in c and len(c)]
        if not logged:
            continue
        line = pd.concat(logged, axis=1).mean(axis=1)
        (drawn,) = ax.plot(
            line.index,
            line.to_numpy(),
            label=_label(group.iloc[0].rename(lambda c: c.split("/", 1)[-1]), settings),
        )
        for seed_curve in logged if len(logged) > 1 else []:
            ax.plot(
                seed_curve.index, seed_curve.to_numpy(), color=drawn.get_color(), alpha=0.25, lw=0.8
            )
    ax.set_xlabel("step")
    ax.set_ylabel(column)
    ax.grid(alpha=0.3)
    if ax.lines and len(groups) <= 20:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_title(f"{column} during training")
    return fig


def save(fig: Figure, path) -> None:
    fig.savefig(path, dpi=120, bbox_inches="tight")  # keeps legends placed beside the axes
    plt.close(fig)
