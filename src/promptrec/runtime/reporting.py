"""What a run leaves behind: metrics.json, predictions.csv, prompt examples, a terminal table."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.loggers import Logger, WandbLogger
from rich.console import Console
from rich.table import Table

from promptrec.atomic import atomic_path, write_atomic
from promptrec.runtime.plots import reliability_diagram
from promptrec.strategies.collaborative import ID_VECTORS


def write_metrics(run_dir: Path, metrics: dict) -> Path:
    path = Path(run_dir) / "metrics.json"
    write_atomic(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def side_facts(module) -> dict:
    """What metrics.json keeps beside the metrics: counts (``counts``) and what validation chose
    for testing (``chosen_on_val``, e.g. the F1-best threshold as a logit)."""
    facts = {"counts": dict(sorted(module.counts.items()))} if module.counts else {}
    if module.task.chosen:
        facts["chosen_on_val"] = dict(module.task.chosen)
    return facts


def write_test_outputs(run_dir: Path, module) -> Path:
    """The task's per-example table (predictions.csv, or topk.csv for ranking, re-scorable later),
    the per-group metrics (slices.csv) and, for probabilities of a binary label, a calibration
    figure (calibration.png)."""
    path = Path(run_dir) / module.task.predictions_file
    write_atomic(path, module.test_predictions.to_csv(index=False))
    write_atomic(Path(run_dir) / "slices.csv", module.test_slices.to_csv(index=False))
    table = module.test_predictions
    if {"score", "label"} <= set(table.columns):  # probabilities of a binary label
        reliability_diagram(table["score"].to_numpy(), table["label"].to_numpy(),
                            Path(run_dir) / "calibration.png")  # fmt: skip
    return path


def write_id_vectors(run_dir: Path, module, prepared, kind: str) -> Path | None:
    """An ID baseline's learnt user and item vectors (the tested weights), with the ids they
    belong to and the split they were trained on: what ``prompt.collaborative.run`` reads."""
    vectors = getattr(module.model, "id_vectors", None)
    if vectors is None:
        return None
    catalog = prepared.catalog
    path = Path(run_dir) / ID_VECTORS
    with torch.no_grad():
        tables = {k: v.detach().float().cpu().clone() for k, v in vectors().items()}
    with atomic_path(path) as partial:
        torch.save({"model": kind, "split_hash": prepared.split_hash,
                    "user_ids": list(catalog.user_ids), "item_ids": list(catalog.item_ids),
                    **tables}, partial)  # fmt: skip
    return path


class TestOutputWriter(L.Callback):
    """Writes the test tables from inside the test loop on global rank zero, and the validation
    table (``val_`` + the test table's name) from inside a validation on its own. Under DDP every
    rank holds the gathered predictions, and under ``ddp_spawn`` only the workers do (the
    launching process never sees them), so this is the one place that works for every strategy
    and writes each file once."""

    def __init__(self, run_dir: Path, model_kind: str = ""):
        self.run_dir, self.model_kind = Path(run_dir), model_kind

    def on_test_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            write_test_outputs(self.run_dir, pl_module)
            # an ID baseline's tested vectors, for collaborative tokens (prompt.collaborative)
            write_id_vectors(self.run_dir, pl_module, trainer.datamodule.prepared, self.model_kind)

    def on_validation_end(self, trainer, pl_module):
        if trainer.is_global_zero and pl_module.val_predictions is not None:
            path = self.run_dir / f"val_{pl_module.task.predictions_file}"
            write_atomic(path, pl_module.val_predictions.to_csv(index=False))


def log_prompt_examples(run_dir: Path, loggers: list[Logger], sample: pd.DataFrame) -> None:
    """Rendered training prompts: ``prompt_examples.csv`` in the run folder and a W&B table."""
    write_atomic(Path(run_dir) / "prompt_examples.csv", sample.to_csv(index=False))
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_table(key="prompts/examples", dataframe=sample)


def print_metrics(metrics: dict, title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics):
        value = metrics[key]
        if isinstance(value, dict):  # counts and chosen settings: metrics.json has them
            continue
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)
