"""Late fusion (promptrec-ensemble): weights from validation only, metrics that re-score from the
fused table, refusals by name, and a run folder the results tables read like any other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score

from conftest import compose_config
from promptrec.cli.ensemble import main as ensemble_cli
from promptrec.errors import ConfigError
from promptrec.experiments.ensemble import ensemble
from promptrec.experiments.results import task_table
from promptrec.experiments.runs import load_runs

N = 400


def member(root: Path, name: str, task: str, outputs: dict, split_hash: str = "abc", seed=42,
           overrides=()) -> Path:  # fmt: skip
    """A finished run folder with the given per-stage outputs (what promptrec-train leaves)."""
    folder = root / name
    (folder / ".hydra").mkdir(parents=True)
    cfg = compose_config("train", [f"task={task}", f"seed={seed}", *overrides])
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create([f"task={task}", *overrides, f"seed={seed}"]),
                   folder / ".hydra" / "overrides.yaml")  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps({"data/split_hash": split_hash, "test/x": 0}))
    (folder / "run.json").write_text(json.dumps({"status": "finished"}))
    for stage, (truth, values) in outputs.items():
        table = pd.DataFrame({"example_id": np.arange(N), "user_id": [f"u{i}" for i in range(N)],
                              "item_id": [f"{stage}{i}" for i in range(N)]})  # fmt: skip
        if task == "preference":
            table = table.assign(rating=np.where(truth == 1, 5.0, 1.0), label=truth, logit=values)
        else:
            table = table.assign(rating=truth, predicted=values)
        file = "predictions.csv" if stage == "test" else "val_predictions.csv"
        table.to_csv(folder / file, index=False)
    return folder


def two_views(rng, truth: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Two runs that each see the truth through independent noise (one of them on another scale)."""
    return truth + rng.normal(0, 1.0, N), scale * (truth + rng.normal(0, 1.0, N))


def preference_members(root: Path, seed=42, test_labels=None, **kwargs) -> list[Path]:
    rng = np.random.default_rng(seed)
    val_y, test_y = rng.integers(0, 2, N), rng.integers(0, 2, N)
    (va, vb), (ta, tb) = two_views(rng, val_y, 7.0), two_views(rng, test_y, 7.0)
    test_y = test_labels if test_labels is not None else test_y
    return [member(root, f"lm_s{seed}", "preference", {"val": (val_y, va), "test": (test_y, ta)},
                   seed=seed, **kwargs),
            member(root, f"mf_s{seed}", "preference", {"val": (val_y, vb), "test": (test_y, tb)},
                   seed=seed, overrides=["experiment=baseline_mf"])]  # fmt: skip


def test_preference_fusion_beats_each_run_and_rescores_from_its_table(tmp_path):
    runs = preference_members(tmp_path / "runs")
    metrics = ensemble(runs, tmp_path / "fused")
    fused = pd.read_csv(tmp_path / "fused" / "predictions.csv")
    assert metrics["test/auc"] == pytest.approx(roc_auc_score(fused.label, fused.logit), abs=1e-6)
    alone = [roc_auc_score(*pd.read_csv(r / "predictions.csv")[["label", "logit"]].T.values)
             for r in runs]  # fmt: skip
    assert metrics["test/auc"] > max(alone) + 0.02  # independent noise: two views beat one
    # the runs are equally informative once standardised: the weights come out near equal
    weights = metrics["ensemble"]["weights"]
    assert weights[0] == pytest.approx(weights[1], rel=0.3)
    assert (tmp_path / "fused" / "val_predictions.csv").is_file()
    assert json.loads((tmp_path / "fused" / "run.json").read_text())["status"] == "finished"
    assert metrics["data/split_hash"] == "abc" and "chosen_on_val" in metrics
    labels = load_runs([tmp_path / "fused"]).iloc[0]  # a summary names its task and kind
    assert labels["choice/task"] == "preference" and labels["choice/model"] == "ensemble"


def test_weights_are_fitted_on_validation_only(tmp_path):
    a = ensemble(preference_members(tmp_path / "a"), tmp_path / "fa")
    flipped = 1 - pd.read_csv(tmp_path / "a" / "lm_s42" / "predictions.csv")["label"].to_numpy()
    b = ensemble(preference_members(tmp_path / "b", test_labels=flipped), tmp_path / "fb")
    assert a["ensemble"] == {**b["ensemble"], "members": a["ensemble"]["members"]}
    assert b["test/auc"] == pytest.approx(1 - a["test/auc"])  # the test labels only score


def test_rating_fusion_is_a_validation_fitted_linear_blend_clipped_to_the_scale(tmp_path):
    rng = np.random.default_rng(0)
    val_r, test_r = rng.integers(1, 6, N).astype(float), rng.integers(1, 6, N).astype(float)
    views = {s: (r, r + rng.normal(0, 1, N), r + rng.normal(0, 1, N))
             for s, r in (("val", val_r), ("test", test_r))}  # fmt: skip
    runs = [member(tmp_path / "runs", f"m{k}", "rating",
                   {s: (v[0], v[k + 1]) for s, v in views.items()}) for k in (0, 1)]  # fmt: skip
    metrics = ensemble(runs, tmp_path / "fused")
    fused = pd.read_csv(tmp_path / "fused" / "predictions.csv")
    assert fused.predicted.between(1, 5).all()
    rmse = np.sqrt(np.mean((fused.predicted - fused.rating) ** 2))
    assert metrics["test/rmse"] == pytest.approx(rmse, abs=1e-5)
    alone = [np.sqrt(np.mean((views["test"][k + 1] - test_r) ** 2)) for k in (0, 1)]
    assert metrics["test/rmse"] < min(alone) - 0.1


def test_refusals_name_the_problem_and_write_nothing(tmp_path):
    runs = preference_members(tmp_path / "runs")
    with pytest.raises(ConfigError, match="at least two"):
        ensemble(runs[:1], tmp_path / "one")
    other = preference_members(tmp_path / "other", split_hash="zzz")
    with pytest.raises(ConfigError, match="different splits .*lm_s42: zzz.*mf_s42: abc"):
        ensemble([other[0], runs[1]], tmp_path / "mixed")
    (runs[1] / "val_predictions.csv").unlink()
    with pytest.raises(ConfigError, match="no val_predictions.csv.*never test"):
        ensemble(runs, tmp_path / "noval")
    ranking = member(tmp_path / "rank", "sasrec", "next_item", {})
    with pytest.raises(ConfigError, match="next_item run: only .* top-K"):
        ensemble([runs[0], ranking], tmp_path / "ranking")
    assert not any((tmp_path / n).exists() for n in ("one", "mixed", "noval", "ranking"))


def test_fused_runs_pool_over_seeds_into_one_results_row(tmp_path):
    for seed in (1, 2):
        ensemble(preference_members(tmp_path / "runs", seed=seed), tmp_path / "fused" / f"s{seed}")
    table = task_table(load_runs([tmp_path / "fused"]), "preference")
    row = table.splitlines()[2]
    assert row.startswith("| late fusion: ")
    assert "`promptrec-ensemble` of `promptrec-train task=preference` + " in row
    assert "`promptrec-train task=preference experiment=baseline_mf`" in row and "| 2 |" in row


def test_cli_prints_the_weights_and_a_bad_folder_exits_with_one_paragraph(tmp_path, capsys):
    runs = preference_members(tmp_path / "runs")
    ensemble_cli([*map(str, runs), "--out", str(tmp_path / "fused")])
    out = capsys.readouterr().out
    assert "weights fitted on validation: lm_s42 +" in out and "test/auc" in out
    with pytest.raises(SystemExit) as stopped:
        ensemble_cli([str(runs[0]), str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    error = " ".join(capsys.readouterr().err.split())  # rich wraps the paragraph
    assert stopped.value.code == 1 and "nowhere is not a run folder" in error
