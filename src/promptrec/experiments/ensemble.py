"""Late fusion: the saved predictions of finished runs on one split, combined with weights fitted
on their validation predictions only, written as a run folder of its own.

A model that brings the collaborative signal into a language model must beat averaging the two
runs' outputs, or it adds nothing that averaging does not; so the fusion is a baseline like any
other: it re-scores from its ``predictions.csv`` and enters ``docs/results.md``'s tables.

- preference: each run's logits are standardised with their validation mean and spread, and a
  logistic regression on the validation labels weighs them (its output is the fused logit);
- rating: a linear regression of the validation ratings on each run's predicted stars, clipped
  to the rating scale.

Next-item runs keep only their top-K lists, not every item's score, so they cannot be fused here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from sklearn.linear_model import LinearRegression, LogisticRegression

from promptrec.atomic import write_atomic
from promptrec.errors import ConfigError
from promptrec.experiments.results import command, model_name
from promptrec.experiments.runs import load_run
from promptrec.runtime.tracking import RunRecord
from promptrec.tasks import build_task

OUTPUT = {"preference": "logit", "rating": "predicted"}  # the column each task's fusion combines
KEYS = ["example_id", "user_id", "item_id"]


@dataclass
class Member:
    folder: Path
    config: DictConfig
    name: str  # what it is, in a few words (the results tables' model column)
    command: str
    split_hash: str
    val: pd.DataFrame
    test: pd.DataFrame


def load_member(folder: Path) -> Member:
    """One finished run of a fusable task, with its validation and test predictions."""
    folder = Path(folder)
    if not (folder / ".hydra" / "config.yaml").is_file():
        raise ConfigError(f"{folder} is not a run folder (it has no .hydra/config.yaml).")
    run = load_run(folder)
    task = run.get("cfg/task.name")
    if run["status"] != "finished":
        raise ConfigError(
            f"{folder} did not finish (run.json says {run['status']}); fuse finished runs."
        )
    if task not in OUTPUT:
        raise ConfigError(
            f"{folder} is a {task} run: only {sorted(OUTPUT)} runs can be fused, because a "
            "ranking run keeps only its top-K lists, not a score for every item."
        )
    val_file = folder / "val_predictions.csv"
    if not val_file.is_file():
        raise ConfigError(
            f"{folder} has no val_predictions.csv, the validation predictions the fusion "
            "weights are fitted on (never test). Runs made before it existed lack it: train the "
            "run again with the same command (its .hydra/overrides.yaml)."
        )
    read = {"user_id": str, "item_id": str}
    return Member(
        folder=folder,
        config=OmegaConf.load(folder / ".hydra" / "config.yaml"),
        name=model_name(pd.Series(run)),
        command=command(str(folder)).strip("`"),
        split_hash=str(run.get("data/split_hash")),
        val=pd.read_csv(val_file, dtype=read),
        test=pd.read_csv(folder / "predictions.csv", dtype=read),
    )


def aligned(members: list[Member], stage: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The first member's example table and an (examples × members) matrix of outputs, in its
    order; refuses members whose examples differ."""
    tables = [getattr(m, stage) for m in members]
    base = tables[0]
    column = OUTPUT[members[0].config.task.name]
    outputs = []
    for member, table in zip(members, tables):
        joined = base[KEYS].merge(table[[*KEYS, column]], on=KEYS, how="left", validate="1:1")
        if len(table) != len(base) or joined[column].isna().any():
            raise ConfigError(
                f"{member.folder}'s {stage} examples differ from {members[0].folder}'s: fuse runs "
                "of one split, task and data selection (the same data.* settings)."
            )
        outputs.append(joined[column].to_numpy(dtype=np.float64))
    return base, np.stack(outputs, axis=1)


def check_compatible(members: list[Member]) -> None:
    """One split (else fitting weights would leak one run's test interactions into another's
    training data) and one task with one label definition."""
    if len(members) < 2:
        raise ConfigError("promptrec-ensemble needs at least two run folders to fuse.")
    if len({m.split_hash for m in members}) > 1:
        found = "; ".join(f"{m.folder.name}: {m.split_hash}" for m in members)
        raise ConfigError(
            f"the runs were trained on different splits ({found}). Fusion weights fitted across "
            "splits would mix one run's test interactions into another's training data; fuse "
            "runs whose metrics.json has the same data/split_hash."
        )
    labels = {(m.config.task.name, m.config.task.get("like_threshold")) for m in members}
    if len(labels) > 1:
        raise ConfigError(
            f"the runs answer different tasks or label definitions (task, like_threshold: "
            f"{sorted(labels, key=str)}); fuse runs of one task."
        )


def fit_fusion(task_name: str, val: np.ndarray, truth: np.ndarray, levels: int = 5):
    """Weights fitted on validation only; returns a function of an (examples × members) matrix
    and the fitted numbers for metrics.json."""
    if task_name == "preference":
        mean, spread = val.mean(axis=0), val.std(axis=0)
        spread[spread == 0] = 1.0  # a run with one logit for everyone carries no ranking
        model = LogisticRegression(C=1.0).fit((val - mean) / spread, truth)
        weights, bias = model.coef_[0], float(model.intercept_[0])

        def fuse(x: np.ndarray) -> np.ndarray:
            return ((x - mean) / spread) @ weights + bias

        fitted = {"standardised_with": {"mean": mean.tolist(), "std": spread.tolist()}}
    else:
        model = LinearRegression().fit(val, truth)
        weights, bias = model.coef_, float(model.intercept_)

        def fuse(x: np.ndarray) -> np.ndarray:
            return np.clip(x @ weights + bias, 1.0, float(levels))

        fitted = {"clipped_to": [1.0, float(levels)]}
    return fuse, {"weights": weights.tolist(), "bias": bias, **fitted}


def ensemble(folders: list[Path], out: Path) -> dict:
    """Fuse the runs in ``folders`` into the run folder ``out``; returns its metrics."""
    members = [load_member(f) for f in folders]
    check_compatible(members)
    first = members[0].config
    task_name = first.task.name
    task_cfg = OmegaConf.merge(first.task, {"head": "regression"} if task_name == "rating" else {})
    task = build_task(task_cfg)
    task.center = 0.0  # rating: the fused value is already in stars
    (val_examples, val_x), (test_examples, test_x) = (
        aligned(members, "val"),
        aligned(members, "test"),
    )
    truth_column = "label" if task_name == "preference" else "rating"
    fuse, fitted = fit_fusion(task_name, val_x, val_examples[truth_column].to_numpy(),
                              int(first.task.get("rating_levels", 5)))  # fmt: skip
    metrics, tables = {}, {}
    for stage, examples, x in (("val", val_examples, val_x), ("test", test_examples, test_x)):
        frame = examples.rename(columns={"label": "labels"})
        values, tables[stage] = task.evaluate(
            stage, torch.from_numpy(fuse(x)).float()[:, None], frame
        )
        metrics.update(values)
    counted = [k for k in metrics if k.split("/", 1)[-1] in task.counted]
    counts = {k: metrics.pop(k) for k in counted}
    metrics.update({
        "data/split_hash": members[0].split_hash,
        "ensemble": {"members": [str(m.folder) for m in members], **fitted},
        **({"counts": counts} if counts else {}),
        **({"chosen_on_val": dict(task.chosen)} if task.chosen else {}),
    })  # fmt: skip
    seeds = {m.config.get("seed") for m in members}
    config = {
        "task": OmegaConf.to_container(task_cfg, resolve=False),
        "data": OmegaConf.to_container(first.data, resolve=False),
        "model": {"kind": "ensemble", "members": [m.name for m in members]},
        "ensemble_of": [m.command for m in members],
        "seed": seeds.pop() if len(seeds) == 1 else None,
    }
    write_run(out, config, tables, metrics)
    return metrics


def write_run(out: Path, config: dict, tables: dict[str, pd.DataFrame], metrics: dict) -> None:
    """The fused run's folder, written only once everything in it is computed."""
    if (out / "metrics.json").exists():
        raise ConfigError(f"{out} already holds a run; give another --out.")
    (out / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(config), out / ".hydra" / "config.yaml")
    choices = {"task": config["task"]["name"], "model": "ensemble"}  # how summaries label it
    OmegaConf.save(OmegaConf.create({"hydra": {"runtime": {"choices": choices}}}),
                   out / ".hydra" / "hydra.yaml")  # fmt: skip
    write_atomic(out / "predictions.csv", tables["test"].to_csv(index=False))
    write_atomic(out / "val_predictions.csv", tables["val"].to_csv(index=False))
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    RunRecord(out).finished()


def default_out() -> Path:
    return Path("outputs") / "ensemble" / time.strftime("%Y-%m-%d_%H-%M-%S")
