"""The tables of ``docs/results.md``, generated from the run folders committed beside it.

The page is prose with generated blocks, one per task::

    <!-- results: preference -->
    | model | command | n | AUC ↑ | … |
    <!-- end results -->

``make results`` (``promptrec-summarize docs/results/runs --results docs/results.md``) rewrites
every block from ``docs/results/runs/<name>/``; ``--check`` fails when the page differs, which
``tests/test_results.py`` runs, so no number on the page can drift from its run folder. Runs of one
configuration (the same saved settings, seeds aside) pool into mean ± std (ddof=1) with n.
README.md's ``targets`` block sets each task's best language-model row against what it must beat
(``docs/results/targets.yaml``), with the paired difference and its 95% interval.
"""

from __future__ import annotations

import json
import re
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from promptrec.errors import ConfigError
from promptrec.experiments.runs import load_runs
from promptrec.experiments.significance import paired_difference
from promptrec.experiments.summary import (
    RUN_POINTERS,
    best_rows,
    configuration_key,
    seed_free,
    setting_columns,
)
from promptrec.metrics.names import direction

COLUMNS = {
    "preference": ["test/auc", "test/logloss", "test/accuracy", "test/f1",
                   "test/f1_at_val_threshold"],
    "rating": ["test/rmse", "test/mae"],
    "next_item": ["test/hr@10", "test/ndcg@10", "test/mrr@10", "test/hr@20", "test/ndcg@20",
                  "test/coverage@10"],
}  # fmt: skip
BLOCK = re.compile(r"(<!-- results: (\w+) -->\n)(.*?)(<!-- end results -->)", re.DOTALL)
NOT_COMMANDS = ("seed=", "logger=", "hydra.", "paths.")  # where and how it logged, not what ran


def command(folder: str) -> str:
    """The ``promptrec-train`` command that made a run, seed and file locations aside (for a late
    fusion: the commands of the runs it fused)."""
    config = OmegaConf.load(Path(folder) / ".hydra" / "config.yaml")
    fused = OmegaConf.select(config, "ensemble_of")
    if fused is not None:
        return "`promptrec-ensemble` of " + " + ".join(f"`{c}`" for c in fused)
    overrides = OmegaConf.load(Path(folder) / ".hydra" / "overrides.yaml")
    kept = [str(o) for o in overrides if not str(o).lstrip("+~").startswith(NOT_COMMANDS)]
    pointers = tuple(f"{c.removeprefix('cfg/')}=" for c in RUN_POINTERS)  # the run of its own seed
    kept = [seed_free(o, config.get("seed")) if o.startswith(pointers) else o for o in kept]
    return "`" + " ".join(["promptrec-train", *kept]) + "`"


def model_name(run: pd.Series) -> str:
    """What was trained, in a few words: the baseline's kind, or backbone · tuning · prompt."""
    kind = run.get("cfg/model.kind")
    if kind == "ensemble":
        return "late fusion: " + " + ".join(json.loads(run.get("cfg/model.members", "[]")))
    if kind == "fm" and run.get("cfg/model.side_features") is False:
        return "FM (ids only)"
    text_from = run.get("cfg/model.text_from")
    if kind == "sasrec" and isinstance(text_from, str):  # NaN: a run from before the setting
        alone = run.get("cfg/model.ids") is False
        return f"SASRec{', item text only' if alone else ' + item text'} ({text_from.rsplit('/', 1)[-1]})"
    if kind != "lm":
        return {"pop": "Popularity", "itemknn": "ItemKNN", "mf": "biased MF", "bpr": "BPR-MF",
                "fm": "FM (ids + side features)", "sasrec": "SASRec"}.get(kind, str(kind))  # fmt: skip
    backbone = str(run.get("cfg/model.name_or_path", "")).rsplit("/", 1)[-1]
    return f"{backbone} · {run.get('cfg/tuning.mode')} · {run.get('cfg/prompt.name')} prompt"


def _cell(values: pd.Series) -> str:
    if values.empty:
        return "–"
    text = f"{values.mean():.4f}"
    return text + (f" ± {values.std(ddof=1):.4f}" if len(values) > 1 else "")


def _told_apart(table: pd.DataFrame) -> pd.DataFrame:
    """Rows launched with the same command (defaults changed between them) get the saved settings
    in which they differ, among those every such row has, and their run folders' names."""
    for _, same in table.groupby("command"):
        if len(same) < 2:
            continue
        settings = pd.DataFrame(list(same["settings"]), index=same.index).dropna(axis=1)
        differ = [c for c in settings.columns if settings[c].map(str).nunique() > 1]
        for i in same.index:
            saved = ", ".join(f"{c.removeprefix('cfg/')}={settings.at[i, c]}" for c in differ)
            table.at[i, "command"] += (
                f" ({'saved: ' + saved + '; ' if saved else ''}runs: {same.at[i, 'folders']})"
            )
    return table


def task_table(runs: pd.DataFrame, task: str) -> str:
    """One row per configuration: model, command, n, and mean ± std of the task's columns."""
    done = runs[(runs["cfg/task.name"] == task) & (runs["status"] == "finished")]
    if done.empty:
        raise ConfigError(f"no finished {task} run among the result run folders.")
    metrics = [m for m in COLUMNS[task] if m in done.columns]
    keys = setting_columns(done)  # the saved settings, seed and file locations aside
    rows = []
    for _, group in done.groupby(configuration_key(done), sort=False):
        row = {"model": model_name(group.iloc[0]), "command": command(group["run"].iloc[0]),
               "n": len(group), "settings": group.iloc[0][keys],
               "folders": ", ".join(sorted(Path(r).name for r in group["run"]))}  # fmt: skip
        for m in metrics:
            values = pd.to_numeric(group[m], errors="coerce").dropna()
            row[m], row[f"{m} cell"] = (values.mean() if len(values) else np.nan), _cell(values)
        rows.append(row)
    table = _told_apart(pd.DataFrame(rows))
    table = table.assign(lm=table["model"].str.contains("·")).sort_values(
        ["lm", "model", "command"]
    )
    table = table.reset_index(drop=True)
    best = {m: best_rows(table, m) for m in metrics}
    names = [f"{m.split('/', 1)[1]} {'↓' if direction(m) == 'min' else '↑'}" for m in metrics]
    lines = [
        "| model | command | n | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(metrics),
    ]
    for i, row in table.iterrows():
        cells = [f"**{row[f'{m} cell']}**" if i in best[m] else row[f"{m} cell"] for m in metrics]
        lines.append(
            f"| {row['model']} | {row['command']} | {row['n']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def reference_figures(ref: dict, folder: Path) -> tuple[dict, int | None]:
    """A reference's figures and how many runs they average: typed from a source (``metrics``),
    or measured (``measured``: the runs of a JSON file written by a reference script, filtered by
    its fields, e.g. bench/recbole_reference.py's ``{file, model, split}``)."""
    if "metrics" in ref:
        return ref["metrics"], None  # how many runs a quoted figure averages is not known
    where = dict(ref["measured"])
    path = folder / where.pop("file")
    rows = pd.DataFrame(json.loads(path.read_text())["runs"])
    for field, value in where.items():
        rows = rows[rows[field] == value]
    if rows.empty:
        raise ConfigError(f"references.yaml: no run in {path} matches {where}.")
    return {m: rows[m].mean() for m in ref["compare"]}, len(rows)


def reference_table(runs: pd.DataFrame, references: list, folder: Path) -> str:
    """Each figure of another implementation beside the mean of this project's runs of the same
    command (``docs/results/references.yaml``; measured figures are read from ``folder``)."""
    done = runs[runs["status"] == "finished"]
    commands = done["run"].map(command)
    lines = ["| model | source | metric | reference | n | here (mean) | n | here ÷ reference |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for ref in references:
        mine = done[commands == f"`{ref['command']}`"]
        if mine.empty:
            raise ConfigError(f"references.yaml: no finished run of `{ref['command']}` to compare.")
        figures, n_ref = reference_figures(ref, folder)
        for metric, theirs in figures.items():
            here = pd.to_numeric(mine[metric], errors="coerce").mean()
            lines.append(f"| {ref['model']} | {ref['source']} | {metric.split('/', 1)[1]} | "
                         f"{theirs:.4f} | {n_ref or '–'} | {here:.4f} | {len(mine)} | {here / theirs:.2f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _matching(done: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """The finished runs whose folder name matches ``pattern`` (a glob, e.g. ``mf_rating_s*``)."""
    picked = done[[fnmatch(Path(r).name, pattern) for r in done["run"]]]
    if picked.empty:
        raise ConfigError(f"targets.yaml: no finished run folder matches {pattern!r}.")
    return picked


def targets_table(runs: pd.DataFrame, targets: list) -> str:
    """Each target's runs against the runs they must beat (``docs/results/targets.yaml``): the
    mean, the bar it must pass, and the paired difference from each rival with its 95% interval
    (bootstrap over test users and seeds: experiments/significance.py)."""
    done = runs[runs["status"] == "finished"]
    lines = ["| task | model | n | metric | mean ± std | bar | against | theirs | Δ [95% CI] | better? |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for target in targets:
        mine, metric = _matching(done, target["runs"]), target["metric"]
        lower, value = direction(metric) == "min", pd.to_numeric(mine[metric])
        passed = value.mean() <= target["bar"] if lower else value.mean() >= target["bar"]
        bar = f"{'≤' if lower else '≥'} {target['bar']} {'✓' if passed else '✗'}"
        for rival, pattern in target["against"].items():
            theirs = _matching(done, pattern)
            found = paired_difference(list(mine["run"]), list(theirs["run"]), metric)
            if found is None:
                raise ConfigError(f"targets.yaml: {target['runs']} and {pattern} hold no per-example "
                                  f"values of {metric} for the same test examples.")  # fmt: skip
            diff, low, high = found
            better = "yes" if (diff < 0 if lower else diff > 0) else "no"
            real = "real" if low > 0 or high < 0 else "not real"
            lines.append(f"| {mine['cfg/task.name'].iloc[0]} | {model_name(mine.iloc[0])} (`{target['runs']}`) | {len(mine)} | "
                         f"{metric.split('/', 1)[1]} | {_cell(value)} | {bar} | {rival} | "
                         f"{_cell(pd.to_numeric(theirs[metric]))} | {diff:+.4f} [{low:+.4f}, {high:+.4f}] | "
                         f"{better} ({real}) |")  # fmt: skip
    return "\n".join(lines) + "\n"


def render_page(page: str, runs_dir: Path) -> str:
    """The page with every generated block rebuilt from the run folders under ``runs_dir`` (and
    the quoted figures in ``references.yaml`` beside it)."""
    runs = load_runs([runs_dir])
    references_file = runs_dir.parent / "references.yaml"

    def block(match: re.Match) -> str:
        name = match.group(2)
        if name == "references":
            references = OmegaConf.to_container(OmegaConf.load(references_file))
            body = reference_table(runs, references, references_file.parent)
        elif name == "targets":
            body = targets_table(
                runs, OmegaConf.to_container(OmegaConf.load(runs_dir.parent / "targets.yaml"))
            )
        else:
            body = task_table(runs, name)
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(block, page)


def update_page(page_file: Path, runs_dir: Path, check: bool = False) -> bool:
    """Rewrite the page (or, with ``check``, only compare); True when it was already current."""
    page = page_file.read_text()
    if not BLOCK.search(page):
        raise ConfigError(f"{page_file} has no '<!-- results: <task> -->' block to generate.")
    fresh = render_page(page, runs_dir)
    if not check and fresh != page:
        page_file.write_text(fresh)
    return fresh == page
