"""docs/results.md against the run folders committed beside it: the page's tables regenerate
exactly, and every run's headline metrics re-score from its own per-example table."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from conftest import REPO
from promptrec.cli.summarize import main as summarize
from promptrec.errors import ConfigError
from promptrec.experiments.results import reference_figures, update_page
from promptrec.experiments.runs import find_runs

RUNS = REPO / "docs" / "results" / "runs"
PAGE = REPO / "docs" / "results.md"


def test_results_page_is_generated_from_the_committed_run_folders():
    assert update_page(PAGE, RUNS, check=True), "docs/results.md is stale: run `make results`"


def test_readme_targets_are_generated_from_the_committed_run_folders():
    assert update_page(REPO / "README.md", RUNS, check=True), "README.md is stale: `make results`"


def test_a_target_row_gives_the_mean_the_bar_and_the_paired_difference(tmp_path):
    for folder in [*RUNS.glob("sasrec_s*"), *RUNS.glob("bpr_s*")]:
        shutil.copytree(folder, tmp_path / "runs" / folder.name)
    targets = [{"metric": "test/ndcg@10", "bar": 0.2, "runs": "sasrec_s*",
                "against": {"BPR": "bpr_s*", "itself": "sasrec_s*"}}]  # fmt: skip
    (tmp_path / "targets.yaml").write_text(json.dumps(targets))
    page = tmp_path / "page.md"
    page.write_text("<!-- results: targets -->\n<!-- end results -->\n")
    update_page(page, tmp_path / "runs")
    first, itself = page.read_text().splitlines()[3:5]
    mean = {name: np.mean([json.loads((f / "metrics.json").read_text())["test/ndcg@10"]
                           for f in RUNS.glob(f"{name}_s*")]) for name in ("sasrec", "bpr")}  # fmt: skip
    assert f"| {mean['sasrec']:.4f} ± " in first and "| ≥ 0.2 ✗ | BPR |" in first
    assert f"| {mean['sasrec'] - mean['bpr']:+.4f} [" in first and first.endswith("| yes (real) |")
    # the same users on both sides; only the draw of seeds differs between them
    assert "| +0.0000 [-" in itself and itself.endswith("| no (not real) |")
    targets[0]["against"] = {"nothing": "no_such_run_*"}
    (tmp_path / "targets.yaml").write_text(json.dumps(targets))
    with pytest.raises(ConfigError, match="no finished run folder matches 'no_such_run_\\*'"):
        update_page(page, tmp_path / "runs")


def test_check_fails_on_a_hand_edited_number_and_results_mends_it(tmp_path, capsys):
    page = tmp_path / "results.md"
    original = PAGE.read_text()
    edited = original.replace("| 3 |", "| 4 |", 1)  # a seed count typed by hand
    assert edited != original
    page.write_text(edited)
    with pytest.raises(SystemExit) as stopped:
        summarize([str(RUNS), "--results", str(page), "--check"])
    assert stopped.value.code == 1 and "make results" in capsys.readouterr().out
    summarize([str(RUNS), "--results", str(page)])
    assert page.read_text() == original


def test_seeds_of_one_configuration_pool_into_mean_std_and_n(tmp_path):
    seeds = sorted(p for p in RUNS.iterdir() if p.name.startswith("bpr_s"))
    assert len(seeds) == 3
    for folder in seeds:
        shutil.copytree(folder, tmp_path / "runs" / folder.name)
    page = tmp_path / "page.md"
    page.write_text("<!-- results: next_item -->\n<!-- end results -->\n")
    update_page(page, tmp_path / "runs")
    row = page.read_text().splitlines()[3]
    hr = [json.loads((f / "metrics.json").read_text())["test/hr@10"] for f in seeds]
    assert row.startswith("| BPR-MF | `promptrec-train experiment=baseline_bpr` | 3 |")
    assert f"{np.mean(hr):.4f} ± {np.std(hr, ddof=1):.4f}" in row


def test_a_measured_reference_is_the_mean_of_its_matching_runs_and_none_is_refused(tmp_path):
    runs = [{"model": "BPR", "split": "promptrec", "seed": s, "test/hr@10": hr}
            for s, hr in ((1, 0.10), (2, 0.14))] + [
            {"model": "BPR", "split": "recbole", "seed": 1, "test/hr@10": 0.50}]  # fmt: skip
    (tmp_path / "ref.json").write_text(json.dumps({"runs": runs}))
    ref = {"measured": {"file": "ref.json", "model": "BPR", "split": "promptrec"},
           "compare": ["test/hr@10"]}  # fmt: skip
    figures, n = reference_figures(ref, tmp_path)
    assert n == 2 and figures["test/hr@10"] == pytest.approx(0.12)
    ref["measured"]["split"] = "other"
    with pytest.raises(ConfigError, match="no run in .*ref.json matches"):
        reference_figures(ref, tmp_path)


def _rescore(folder: Path) -> dict:
    """Headline metrics recomputed from the per-example table alone, independently of PromptRec."""
    if (folder / "topk.csv").is_file():
        topk = pd.read_csv(folder / "topk.csv", dtype=str)
        lists = [items.split() for items in topk["items"]]
        ranks = [lst.index(t) if t in lst else None for lst, t in zip(lists, topk["target"])]
        out = {}
        for k in (10, 20):
            out[f"test/hr@{k}"] = np.mean([r is not None and r < k for r in ranks])
            out[f"test/ndcg@{k}"] = np.mean(
                [1 / math.log2(r + 2) if r is not None and r < k else 0.0 for r in ranks]
            )
        return out
    table = pd.read_csv(folder / "predictions.csv")
    if "logit" in table:
        return {"test/auc": skm.roc_auc_score(table["label"], table["logit"]),
                "test/accuracy": skm.accuracy_score(table["label"], table["logit"] > 0)}  # fmt: skip
    error = table["predicted"] - table["rating"]
    return {"test/rmse": math.sqrt(np.mean(error**2)), "test/mae": np.mean(np.abs(error))}


@pytest.mark.parametrize("folder", find_runs([RUNS]), ids=lambda p: p.name)
def test_every_published_run_rescores_from_its_predictions(folder):
    saved = json.loads((folder / "metrics.json").read_text())
    for metric, value in _rescore(folder).items():
        assert saved[metric] == pytest.approx(value, abs=1e-6), metric
