"""Compare runs: ``promptrec-summarize outputs/train/multiruns/<sweep> [more run folders]``.

Reads the run folders (W&B offline or disabled makes no difference) and writes, per task:
``summary.md`` (one row per configuration, mean ± std over seeds, best in bold),
``summary_<task>.csv``, and the figures ``heatmap_<task>.png`` (prompt × tuning mode),
``params_<task>.png`` (metric against trainable parameters) and ``curves_<task>.png``
(training loss). ``--wandb`` adds a summary run and a workspace for the sweep on the W&B side
(experiments/dashboard.py); ``--sync`` uploads the offline W&B runs for the dashboard.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from rich.console import Console
from rich.table import Table
from rich.text import Text

from promptrec.errors import PromptRecError
from promptrec.experiments.dashboard import publish
from promptrec.experiments.runs import load_runs, offline_wandb_runs
from promptrec.experiments.significance import compare
from promptrec.experiments.summary import (
    configuration_key,
    headline_metrics,
    mean_std_text,
    summarize,
    to_markdown,
    varying_labels,
)
from promptrec.metrics.names import at_stage, direction
from promptrec.runtime import plots as figures
from promptrec.runtime.plots import setting_text


def primary_metric(runs, requested: str | None) -> str:
    """--metric, else the test counterpart of the metric the runs were checkpointed on."""
    if requested:
        if requested not in runs:
            raise PromptRecError(
                f"--metric {requested!r} is in no run's metrics.json. Available: "
                + ", ".join(sorted(c for c in runs.columns if c.startswith(("test/", "val/"))))
            )
        return requested
    monitor = str(runs["cfg/task.monitor"].dropna().iloc[0])
    test = at_stage(monitor, "test")
    return test if test in runs else monitor


def with_significance(table, runs, metric: str):
    """The summary with each configuration's 95% interval of ``metric`` and whether it differs
    from the best one (experiments/significance.py), and the sentence that says how."""
    keys = configuration_key(runs)
    rows = list(keys.unique())  # summarize's row order
    finished = runs["status"] == "finished"
    groups = {k: list(g["run"]) for k, g in runs[finished].groupby(keys[finished], sort=False)}
    if not groups:
        return table, ""
    extra, note = compare(list(groups.values()), metric)
    if extra is None:
        return table, f"No intervals: {note}."
    extra.index = [rows.index(k) for k in groups]
    return table.join(extra).fillna({c: "–" for c in extra.columns}), f"For {metric}: {note}"


def summarize_runs(paths: list[Path], out: Path, metric: str | None = None,
                   extra: list[str] | None = None, runs=None) -> tuple[dict[str, Path], dict]:  # fmt: skip
    """Write the tables and figures for the runs under ``paths`` into ``out``; returns the files
    and, per task, (summary table, varying settings, leading metrics) for a terminal view."""
    runs = load_runs(paths) if runs is None else runs
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    sections, tables = [], {}
    for task, task_runs in runs.groupby(runs["cfg/task.name"].map(str), sort=False):
        task_runs = task_runs.dropna(axis=1, how="all")
        counts = task_runs["status"].value_counts().to_dict()
        tally = f"{len(task_runs)} runs ({', '.join(f'{n} {s}' for s, n in counts.items())})"
        if "finished" not in counts:
            sections.append(f"## {task}\n\n{tally}: nothing to compare yet.\n")
            continue
        metrics = headline_metrics(task_runs, extra)
        main_metric = primary_metric(task_runs, metric)
        if main_metric not in metrics:
            metrics.insert(0, main_metric)
        objective = objective_metric(task_runs)
        if objective and objective not in metrics:
            metrics.insert(0, objective)
        settings = varying_labels(task_runs)
        study = hyperparameter_study(settings)
        table = summarize(task_runs, metrics)
        table, note = with_significance(table, task_runs, main_metric)
        if study and objective:  # rank trials by what the sweeper optimised, not by test
            ascending = direction(objective) == "min"
            table = table.sort_values(objective, ascending=ascending, kind="stable")
            note += f" Trials ranked by {objective}, the objective the sweeper optimised."
        written[f"csv_{task}"] = out / f"summary_{task}.csv"
        table.to_csv(written[f"csv_{task}"], index=False)
        tables[task] = (table, settings, [objective, main_metric] if objective else [main_metric])
        sections.append(
            f"## {task}\n\n{tally}; mean ± std over seeds (ddof=1), best in bold. {note}\n\n"
            + to_markdown(table.reset_index(drop=True), metrics)
        )
        drawn = draw(
            out, task, table, task_runs, settings, main_metric, objective if study else None
        )
        written.update(drawn)
        if f"curves_{task}" not in drawn:
            sections.append("No training curve: no run folder holds a training-loss log "
                            "(`csv/metrics.csv`): untrained baselines such as popularity, "
                            "`train=false`, or published folders kept without their logs.\n")  # fmt: skip
    written["markdown"] = out / "summary.md"
    sources = ", ".join(f"`{p}`" for p in paths)
    written["markdown"].write_text(f"# Summary of {sources}\n\n" + "\n".join(sections))
    return written, tables


def draw(out: Path, task: str, table, runs, settings: list[str], metric: str,
         objective: str | None) -> dict[str, Path]:  # fmt: skip
    """The task's figures (a hyperparameter study, ``objective`` given: the objective against
    each parameter instead of the heat-map); figures with nothing to show are not drawn."""
    drawn = {
        "heatmap": None if objective else figures.heatmap(table, metric),
        "trials": figures.objective_vs_parameters(table, objective, settings)
        if objective
        else None,
        "params": figures.metric_vs_parameters(table, metric, settings),
        "curves": figures.curves(runs, settings),
    }
    written = {}
    for name, fig in drawn.items():
        if fig is not None:
            written[f"{name}_{task}"] = out / f"{name}_{task}.png"
            figures.save(fig, written[f"{name}_{task}"])
    return written


def objective_metric(runs) -> str | None:
    """The best validation value of the monitored metric (``<monitor>_best``): what a sweeper
    (Optuna, W&B) optimised and what picked each run's checkpoint."""
    monitor = str(runs["cfg/task.monitor"].dropna().iloc[0])
    return f"{monitor}_best" if f"{monitor}_best" in runs else None


def hyperparameter_study(settings: list[str]) -> bool:
    """A study over numeric settings (an Optuna sweep) rather than over prompts × tuning modes:
    no group option varies, only values."""
    return bool(settings) and not {"task", "prompt", "tuning", "model", "experiment"} & set(
        settings
    )


def terminal_table(table, settings: list[str], metrics: list[str], width: int = 100) -> Table:
    """The summary for a terminal: the settings that vary, n, the objective and the first metric
    with its interval and mark; the full table is in summary.md and the CSV."""
    view = Table(width=width, show_lines=False)
    shown = [s for s in settings if s in table][:3]
    extra = [c for c in ("95% CI", "real?") if c in table]
    for column in [*shown, "n", *metrics, *extra]:
        view.add_column(column, overflow="fold", justify="left" if column in shown else "right")
    for _, row in table.head(20).iterrows():
        cells = [setting_text(row[s]) for s in shown] + [str(row.get("runs", ""))]
        cells += [mean_std_text(row, m) for m in metrics]
        cells += [str(row[c]) for c in extra]
        view.add_row(
            *(Text(c) for c in cells)
        )  # as text: a setting like [query,value] is no markup
    return view


def wandb_logged_in() -> bool:
    """An API key where ``wandb`` looks for one (environment or ~/.netrc), checked without
    importing wandb or touching the network."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and host in netrc.read_text(errors="ignore")


def sync_offline_runs(runs_dirs: list[Path], upload: bool) -> None:
    console = Console()
    if not runs_dirs:
        return
    command = [str(Path(sys.executable).parent / "wandb"), "sync", *map(str, runs_dirs)]
    later = "wandb sync " + " ".join(map(str, runs_dirs[:3])) + (" …" if len(runs_dirs) > 3 else "")
    if upload:
        if not wandb_logged_in():
            raise PromptRecError(
                f"--sync needs a W&B login, and none is configured here. Log in once with "
                f"`wandb login` (or set WANDB_API_KEY) and rerun with --sync, or upload later with "
                f"`{later}`. The {len(runs_dirs)} offline runs stay where they are."
            )
        done = subprocess.run(command)
        if done.returncode != 0:
            raise PromptRecError(
                f"wandb sync stopped with exit code {done.returncode} (its message is above); "
                f"the offline runs stay where they are. Retry later with `{later}`."
            )
    else:
        console.print(f"{len(runs_dirs)} W&B runs were logged offline. To see them in the "
                      "dashboard, rerun with --sync or run:\n  wandb sync " + " ".join(map(str, runs_dirs[:3]))
                      + (" …" if len(runs_dirs) > 3 else ""), highlight=False)  # fmt: skip


def report(args: argparse.Namespace) -> None:
    runs = load_runs(args.paths)
    written, tables = summarize_runs(args.paths, args.out or args.paths[0], args.metric, args.extra,
                                     runs)  # fmt: skip
    console = Console(width=min(Console().width, 100))
    for task, (table, settings, metrics) in tables.items():
        console.print(f"[bold]{task}[/] (all columns: {written['markdown']})")
        console.print(terminal_table(table, settings, metrics, console.width))
    if getattr(args, "wandb", False):
        study = any(hyperparameter_study(settings) for _, settings, _ in tables.values())
        written.update(publish(args.out or args.paths[0], runs, tables, dict(written), study))
    console.print("written: " + ", ".join(str(p) for p in written.values()), highlight=False)
    sync_offline_runs(offline_wandb_runs(runs), args.sync)
