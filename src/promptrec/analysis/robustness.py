"""Robustness of a trained model: scores the test split under conditions that should not change
a good recommender much: every template of the prompt's pool (the ones trained on, "seen", and
the others, "unseen"), and history perturbations (shuffled order, dropped items). Reports every
metric per condition with its change against the clean prompts, and the mean ± 95% interval
across seen and across unseen templates, so a result is not the luck of one wording. Writes
``robustness.csv`` and ``robustness_summary.csv``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table
from scipy import stats

from promptrec.analysis.perturb import get_perturbation
from promptrec.atomic import write_atomic
from promptrec.pipeline.module import score_features
from promptrec.runtime.build import load_trained_lm, run_precision


def score_condition(model, task, encoder, collate, examples: pd.DataFrame, batch_size: int,
                    template: int = 0, perturb=None, seed: int = 0,
                    precision: str = "32-true") -> dict:  # fmt: skip
    """Test metrics with every prompt re-encoded under one condition."""
    features = []
    for row in examples.itertuples(index=False):
        items, ratings = list(row.history_items), list(row.history_ratings)
        if perturb is not None:
            items, ratings = perturb(items, ratings, np.random.default_rng([seed, row.example_id]))
        features.append(encoder.features(row.user_id, row.item_id, items, ratings, template))
    outputs = score_features(model, collate, features, batch_size, precision)
    metrics, _ = task.evaluate("test", outputs, examples)
    return {k.removeprefix("test/"): float(v) for k, v in metrics.items()}


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval (NaN half-width for one value)."""
    if len(values) < 2:
        return float(np.mean(values)), math.nan
    sem = np.std(values, ddof=1) / math.sqrt(len(values))
    return float(np.mean(values)), float(stats.t.ppf(0.975, len(values) - 1) * sem)


def robustness(cfg: DictConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    cfg, datamodule, module = load_trained_lm(cfg, "promptrec-robustness")
    prepared, task = datamodule.prepared, datamodule.task
    examples = prepared.examples["test"]
    score = lambda **kw: score_condition(module.model, task, prepared.encoder, datamodule.collate,  # noqa: E731
                                         examples, cfg.data.eval_batch_size, seed=cfg.seed,
                                         precision=run_precision(cfg), **kw)  # fmt: skip
    rows = []
    for k in range(len(datamodule.prompts.templates)):
        kind = "seen" if k in datamodule.prompts.seen else "unseen"
        rows.append({"condition": f"template {k}", "kind": kind, **score(template=k)})
    for p in cfg.perturbations:
        label = p.name + (f" {p.fraction:g}" if p.name != "shuffle_history" else "")
        rows.append(
            {
                "condition": label,
                "kind": "perturbed",
                **score(perturb=get_perturbation(p.name, p.fraction)),
            }
        )
    table = pd.DataFrame(rows)
    metrics = [c for c in table.columns if c not in ("condition", "kind")]
    clean = table.iloc[0]  # template 0, unperturbed: what the training run tested
    long = table.melt(["condition", "kind"], metrics, "metric", "value")
    long["change"] = long["value"] - long["metric"].map(clean[metrics])
    summary = pd.DataFrame([
        {"templates": kind, "n": int((table.kind == kind).sum()), "metric": m,
         **dict(zip(("mean", "ci95"), interval(table.loc[table.kind == kind, m].tolist())))}
        for kind in ("seen", "unseen") if (table.kind == kind).any() for m in metrics
    ])  # fmt: skip
    _print(table, summary, task.cfg.monitor.removeprefix("val/"))
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "robustness.csv", long.to_csv(index=False))
    write_atomic(run_dir / "robustness_summary.csv", summary.to_csv(index=False))
    Console().print(f"written to {run_dir}")
    return long, summary


def _print(table: pd.DataFrame, summary: pd.DataFrame, metric: str) -> None:
    view = Table(title=f"test {metric} per condition (change against template 0, unperturbed)")
    for column in ("condition", "kind", metric, "change"):
        view.add_column(column, justify="left" if column in ("condition", "kind") else "right")
    for row in table.to_dict("records"):  # metric names such as ndcg@10 are not identifiers
        change = row[metric] - table[metric].iat[0]
        view.add_row(row["condition"], row["kind"], f"{row[metric]:.4f}", f"{change:+.4f}")
    console = Console()
    console.print(view)
    for row in summary[summary.metric == metric].itertuples(index=False):
        spread = (
            "one template: no interval" if math.isnan(row.ci95) else f"± {row.ci95:.4f} (95% CI)"
        )
        console.print(f"{row.templates} templates (n={row.n}): {metric} = {row.mean:.4f} {spread}")
