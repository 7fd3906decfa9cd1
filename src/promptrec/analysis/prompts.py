"""See what the model sees: real examples rendered exactly as training does (same template, token
budget and special tokens), printed with their token counts and history truncation, then
statistics over the whole split; ``prompt_examples.csv`` and ``prompt_stats.json`` in the run folder."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console
from rich.panel import Panel

from promptrec.atomic import write_atomic
from promptrec.errors import ConfigError
from promptrec.prompts.inspect import prompt_stats, sample_prompts
from promptrec.runtime.build import build_datamodule
from promptrec.runtime.config import validate
from promptrec.runtime.reporting import print_metrics


def show_prompts(cfg: DictConfig) -> dict:
    validate(cfg)
    if cfg.model.kind != "lm":
        raise ConfigError(f"model={cfg.model.kind} reads ids, not prompts: use a language model.")
    if cfg.split not in ("train", "val", "test"):
        raise ConfigError(f"split={cfg.split!r} is invalid: choose train, val or test.")
    datamodule = build_datamodule(cfg)
    sample = sample_prompts(datamodule, cfg.split, cfg.n_examples, cfg.seed)
    stats = prompt_stats(datamodule, cfg.split)
    console = Console()
    for row in sample.itertuples(index=False):
        title = (f"user {row.user_id} · item {row.item_id} · label {row.labels} · "
                 f"{row.n_tokens}/{cfg.data.max_tokens} tokens · "
                 f"history {row.n_history_kept}/{row.n_history} kept")  # fmt: skip
        console.print(Panel(row.prompt, title=title, title_align="left"), highlight=False)
    print_metrics(stats, f"prompt '{cfg.prompt.name}' on {cfg.task.name}, {cfg.split} split")
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "prompt_examples.csv", sample.to_csv(index=False))
    write_atomic(run_dir / "prompt_stats.json", json.dumps(stats, indent=2) + "\n")
    console.print(f"written to {run_dir}")
    return stats
