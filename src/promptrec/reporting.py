"""What a finished run leaves behind: metrics.json, predictions.csv and a table on the terminal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table


def write_atomic(path: Path, text: str) -> None:
    """Write then rename, so a crash never leaves a truncated file that a later step trusts."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_metrics(run_dir: Path, metrics: dict) -> Path:
    path = Path(run_dir) / "metrics.json"
    write_atomic(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def write_test_outputs(run_dir: Path, task, table: pd.DataFrame) -> Path:
    """The task's per-example table (predictions.csv, or topk.csv for ranking, re-scorable later)
    and its extra outputs, such as the preference task's calibration figure."""
    path = Path(run_dir) / task.predictions_file
    write_atomic(path, table.to_csv(index=False))
    task.write_outputs(run_dir, table)
    return path


def print_metrics(metrics: dict, title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics):
        value = metrics[key]
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)
