"""A CSV log that can be reopened. Lightning's CSVLogger deletes an existing ``metrics.csv``
when it starts, and a second writer that does not know the file's columns cannot extend its
header. Both happen in PromptRec: a resumed run reopens its own log, and under ``ddp_spawn``
the test stage runs in fresh worker processes. This writer keeps the earlier rows and columns."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        """Keep an existing log (Lightning's writer deletes it here)."""

    def _record_new_keys(self) -> set[str]:
        """Columns already in the file count as known: this writer may be a copy made before
        another process extended the file (ddp_spawn pickles the logger into each stage)."""
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                header = next(csv.reader(file), [])
            self.metrics_keys = sorted(set(self.metrics_keys) | set(header))
        return super()._record_new_keys()


class ResumableCSVLogger(CSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def training_curves(run: str | Path, columns: tuple[str, ...] = ("train/loss",)) -> pd.DataFrame:
    """A run's logged values by step from ``csv/metrics.csv`` (empty if it logged none)."""
    path = Path(run) / "csv" / "metrics.csv"
    if not path.is_file():
        return pd.DataFrame(columns=["step", *columns])
    table = pd.read_csv(path)
    present = [c for c in columns if c in table.columns]
    return table[["step", *present]].dropna(subset=present, how="all").reset_index(drop=True)
