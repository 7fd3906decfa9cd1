"""Every figure PromptRec draws (matplotlib, files only, no display needed): a run's calibration
(reliability diagram) and, comparing runs, a prompt × tuning-mode heat-map, a metric against
trainable parameters, and training curves. The comparison figures return a Figure (a notebook
shows it; promptrec-summarize saves it)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

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


def setting_text(value) -> str:
    """A setting for a label: floats to 3 significant digits (1e-4, not 0.00010000000000000002);
    a setting a row does not have (a fusion has no prompt) is "–", not "nan"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _label(row: pd.Series, settings: list[str]) -> str:
    return ", ".join(f"{s}={setting_text(row[s])}" for s in settings) or "run"


MARKERS = "osD^vPX*<>"


def heatmap(summary: pd.DataFrame, metric: str, rows: str = "prompt",
            cols: str = "tuning") -> Figure | None:  # fmt: skip
    """Mean ± std (and n) per prompt (rows) × tuning mode (columns). The colour scale spans at
    least two seed standard deviations, so cells that differ by less than seed noise look alike.
    None when neither setting varied (one cell says nothing a table does not)."""
    if rows not in summary and cols not in summary:
        return None
    table = summary.assign(**{k: summary.get(k, "all") for k in (rows, cols)})
    grid = table.pivot_table(index=rows, columns=cols, values=metric, aggfunc="mean", sort=False)
    spread = table.pivot_table(index=rows, columns=cols, values=f"{metric} std", aggfunc="mean",
                               sort=False, dropna=False) if f"{metric} std" in table else None  # fmt: skip
    counts = table.pivot_table(index=rows, columns=cols, values="runs", aggfunc="sum", sort=False)
    counts = counts.reindex(index=grid.index, columns=grid.columns)
    if spread is not None:  # single-seed cells have no std: the pivot drops them
        spread = spread.reindex(index=grid.index, columns=grid.columns)
    values = grid.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    noise = float(np.nanmedian(spread.to_numpy(dtype=float))) if spread is not None and np.isfinite(
        spread.to_numpy(dtype=float)).any() else 0.0  # fmt: skip
    centre = float(finite.mean()) if finite.size else 0.0
    half = max((finite.max() - finite.min()) / 2 if finite.size else 0.0, noise, 1e-9)
    fig, ax = plt.subplots(figsize=(2.0 + 1.7 * grid.shape[1], 1.3 + 0.7 * grid.shape[0]))
    cmap = "viridis_r" if direction(metric) == "min" else "viridis"
    image = ax.imshow(values, cmap=cmap, aspect="auto", vmin=centre - half, vmax=centre + half)
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right")
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            std = spread.iat[i, j] if spread is not None else np.nan
            n = counts.iat[i, j]
            text = f"{value:.3f}" + ("" if pd.isna(std) else f" ± {std:.3f}") + f"\nn={n:.0f}"
            dark = (value < centre) != (cmap == "viridis_r")
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")  # fmt: skip
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(f"{metric}: mean ± std over n seeds\n(colours span ≥ 2 seed std: alike = within noise)",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig


def objective_vs_parameters(summary: pd.DataFrame, objective: str,
                            params: list[str]) -> Figure | None:  # fmt: skip
    """A hyperparameter study: the objective the sweeper optimised against each parameter, one
    point per trial (log axis where the values span more than 20x)."""
    params = [
        p
        for p in params
        if p in summary and pd.to_numeric(summary[p], errors="coerce").notna().all()
    ]
    if not params or objective not in summary:
        return None
    fig, axes = plt.subplots(1, len(params), figsize=(3.2 * len(params), 3.2), squeeze=False,
                             sharey=True)  # fmt: skip
    best = (
        summary[objective].idxmax()
        if direction(objective) != "min"
        else summary[objective].idxmin()
    )
    for ax, param in zip(axes[0], params):
        x = pd.to_numeric(summary[param]).astype(float)
        ax.scatter(x, summary[objective], s=22, alpha=0.8)
        ax.scatter([x[best]], [summary[objective][best]], s=80, facecolors="none",
                   edgecolors="red", label="best trial")  # fmt: skip
        if x.min() > 0 and x.max() / x.min() > 20:
            log_x(ax)
        ax.set_xlabel(param)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(objective)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{objective} (what the sweeper optimised) per trial", fontsize=10)
    fig.tight_layout()
    return fig


def compact(value: float) -> str:
    """200k, 1M, 5M, 0.001: a tick label at 1, 2 or 5 × a power of ten, else none (the default
    labels every minor tick, 2×10⁵ 3×10⁵ …, and they overlap)."""
    if value <= 0 or round(value / 10 ** np.floor(np.log10(value)), 6) not in (1, 2, 5):
        return ""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def log_x(ax) -> None:
    ax.set_xscale("log")
    for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis(FuncFormatter(lambda value, _: compact(value)))


def metric_vs_parameters(summary: pd.DataFrame, metric: str, settings: list[str]) -> Figure:
    """Is a bigger trainable budget worth it? One point per configuration, ±1 std over seeds."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.set_prop_cycle(
        color=plt.cm.tab10.colors
    )  # 10 clearly different colours (tab20 pairs look alike)
    points = (
        summary.dropna(subset=[metric, "params/trainable"])
        if "params/trainable" in summary
        else summary.iloc[:0]
    )
    # configurations with the same parameter count are dodged sideways (×1.0…1.25) to be seen
    same = points.groupby("params/trainable").cumcount() if len(points) else pd.Series(dtype=int)
    for k, (i, row) in enumerate(points.iterrows()):
        std = row.get(f"{metric} std")
        ax.errorbar(row["params/trainable"] * 1.06 ** same[i], row[metric],
                    yerr=None if pd.isna(std) else std, fmt=MARKERS[k % len(MARKERS)],
                    capsize=3, label=_label(row, settings))  # fmt: skip
    log_x(ax)
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if 0 < len(points) <= 20:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_title(f"{metric} against trainable parameters")
    return fig


LOSSES = ("train/loss", "train/epoch_loss")


def loss_column(logged: dict[str, pd.DataFrame]) -> str | None:
    """The per-step loss where runs logged at least two steps, else the per-epoch mean (runs
    shorter than ``log_every_n_steps``), else None: nothing to draw."""
    for column, least in zip(LOSSES, (2, 1)):
        if any(column in c and c[column].notna().sum() >= least for c in logged.values()):
            return column
    return None


def curves(runs: pd.DataFrame, settings: list[str], column: str | None = None) -> Figure | None:
    """A logged value against the optimizer step: one line per configuration (mean over its
    seeds where they logged the same steps), the seeds themselves faint. None when no run
    logged a loss to draw (never an empty figure)."""
    finished = runs[runs["status"] == "finished"]
    read = {r: training_curves(r, (column,) if column else LOSSES) for r in finished["run"]}
    column = column or loss_column(read)  # each run's log is read once
    if column is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.set_prop_cycle(
        color=plt.cm.tab10.colors
    )  # 10 clearly different colours (tab20 pairs look alike)
    keys = [label_column(finished, s) for s in settings]
    groups = (
        finished.groupby([finished[k].map(str) for k in keys], sort=False)
        if keys
        else [("", finished)]
    )
    for _, group in groups:
        logged = [read[r].dropna(subset=[column]) for r in group["run"] if column in read[r]]
        logged = [c.groupby("step")[column].mean() for c in logged if len(c)]
        if not logged:
            continue
        line = pd.concat(logged, axis=1).mean(axis=1)
        (drawn,) = ax.plot(
            line.index,
            line.to_numpy(),
            "o-" if column == "train/epoch_loss" else "-",
            # from the columns the groups were made of (a name can sit under choice/, override/
            # and cfg/ at once, and a row holds each)
            label=", ".join(f"{s}={setting_text(group.iloc[0][k])}" for s, k in zip(settings, keys))
            or "run",
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
