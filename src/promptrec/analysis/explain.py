"""Explain predictions by occlusion: for each chosen user's example, re-score the prompt with
each shown history item removed and list the items by how much they moved the score; print the
tables and write ``explanations.csv`` to the run folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from promptrec.analysis.occlusion import occlusion_table
from promptrec.atomic import write_atomic
from promptrec.errors import ConfigError
from promptrec.runtime.build import load_trained_lm, run_precision


def _chosen(examples: pd.DataFrame, users: list, n_users: int) -> pd.DataFrame:
    if not users:
        return examples.drop_duplicates("user_id").head(n_users)
    chosen = examples[examples["user_id"].isin([str(u) for u in users])]
    missing = sorted({str(u) for u in users} - set(chosen["user_id"]))
    if missing:
        present = sorted(examples["user_id"].unique(), key=lambda u: (len(u), u))[:3]
        raise ConfigError(
            f"users={missing} have no example in this split. Choose user ids this split holds "
            f"(e.g. users=[{','.join(present)}]) or leave users empty for the first n_users."
        )
    return chosen.drop_duplicates("user_id")


def explain(cfg: DictConfig) -> pd.DataFrame:
    cfg, datamodule, module = load_trained_lm(cfg, "promptrec-explain")
    prepared, task = datamodule.prepared, datamodule.task
    examples = prepared.examples[cfg.split]
    precision = run_precision(cfg)
    tables = [occlusion_table(module.model, task, prepared.encoder, datamodule.collate, row, precision)
              for row in _chosen(examples, list(cfg.users), cfg.n_users).itertuples(index=False)]  # fmt: skip
    result = pd.concat(tables, ignore_index=True)
    console = Console()
    for table in tables:
        view = Table(title=f"user {table.user_id.iat[0]} → item {table.target.iat[0]}: "
                           f"{task.explained} = {table.score.iat[0]:.4f}")  # fmt: skip
        for column in ("history item", "rating", "position", "effect"):
            view.add_column(column, justify="left" if column == "history item" else "right")
        for row in table.itertuples(index=False):
            view.add_row(row.title, str(row.rating), str(row.position), f"{row.effect:+.4f}")
        console.print(view)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "explanations.csv", result.to_csv(index=False))
    console.print(f"written to {run_dir / 'explanations.csv'}")
    return result
