"""The benchmark scripts run end to end (tiny model, a few users) and report every figure.

They measure speed; these tests only keep them working. No wall-clock time is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import PLAIN, REPO
from forked import run_forked
from promptrec.errors import ConfigError

VARIANTS = ["naive", "dynamic", "grouped", "framework"]


def bench(script: str, *args: str, root) -> subprocess.CompletedProcess:
    env = {"PROMPTREC_ROOT": str(root), "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1",
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    if "OMP_NUM_THREADS" in os.environ:  # one thread per xdist worker (conftest.py)
        env["OMP_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"]
    done = run_forked([sys.executable, str(REPO / "bench" / script), *args], REPO, env, 600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def small(tiny_model_dir, data_dir, tmp_path) -> list[str]:
    return [f"model.name_or_path={tiny_model_dir}", f"paths.data_dir={data_dir}",
            f"paths.cache_dir={tmp_path / 'cache'}", "data.max_users=12",
            "data.max_train_examples=64", "data.batch_size=8", "data.history_len=3", *PLAIN]  # fmt: skip


@pytest.mark.slow
def test_train_speed_reports_every_variant_and_ratio(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "bench" / "train_speed.json"
    bench("train_speed.py", "--steps", "2", "--warmup", "1", "--rounds", "2", "--out", str(out),
          *small(tiny_model_dir, data_dir, tmp_path), root=tmp_path)  # fmt: skip
    result = json.loads(out.read_text())
    for name in VARIANTS:
        assert result[name]["samples_per_s"] > 0 and result[name]["timed_steps"] == 2
        assert result[name]["padded_per_real_token"] >= 1.0
    assert result["naive"]["padded_per_real_token"] > result["grouped"]["padded_per_real_token"]
    assert (
        result["grouped"]["padded_per_real_token"] == result["framework"]["padded_per_real_token"]
    )
    assert all(v is not None for v in result["ratios (median of rounds)"].values())
    assert len(result["rounds"]) == 2 and result["setup"]["device"] == "cpu"


@pytest.mark.slow
def test_data_prep_and_catalogue_benchmarks_run(tiny_model_dir, data_dir, tmp_path):
    prep = tmp_path / "prep.json"
    bench("data_prep.py", "--out", str(prep), *small(tiny_model_dir, data_dir, tmp_path),
          root=tmp_path)  # fmt: skip
    assert json.loads(prep.read_text())["second_s"] > 0
    catalogue = tmp_path / "catalogue.json"
    bench("catalogue_eval.py", "--out", str(catalogue), *small(tiny_model_dir, data_dir, tmp_path),
          root=tmp_path)  # fmt: skip
    result = json.loads(catalogue.read_text())
    assert {r["users"] for r in result.values()} == {12}
    assert {r["items"] for r in result.values()} == {1682}


@pytest.mark.slow
def test_time_to_quality_reports_every_variant_and_the_roofline(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "bench" / "time_to_quality.json"
    bench(
        "time_to_quality.py",
        "--target",
        "0.0",
        "--cap",
        "4",
        "--every",
        "2",
        "--rounds",
        "2",
        "--test",
        "--variants",
        "fp32",
        "bf16",
        "--out",
        str(out),
        "--",
        *[
            o
            for o in small(tiny_model_dir, data_dir, tmp_path)
            if not o.startswith("trainer.precision")
        ],
        root=tmp_path,
    )  # the variants set the precision
    result = json.loads(out.read_text())
    assert set(result["peak_gflops"]) == {"32-true", "bf16-mixed"}
    assert all(v > 0 for v in result["peak_gflops"].values())
    for name in ("fp32", "bf16"):
        row = result["medians"][name]
        assert row["steps_to_target"] == 2  # the first validation reaches a target of 0
        assert row["samples_per_s"] > 0 and 0 < row["roofline"] == pytest.approx(
            row["train_gflops"] / result["peak_gflops"][result["rounds"][0][name]["precision"]],
            rel=1e-6,
        )
        assert "speedup_to_target" in row
        assert all(0.0 <= rnd[name]["test/auc"] <= 1.0 for rnd in result["rounds"])  # --test
    assert [r["precision"] for r in (result["rounds"][0]["fp32"], result["rounds"][0]["bf16"])] == [
        "32-true",
        "bf16-mixed",
    ]


@pytest.mark.slow
def test_step_anatomy_reports_variants_roofline_and_profile(tiny_model_dir, tmp_path):
    out = tmp_path / "step_anatomy.json"
    done = bench("step_anatomy.py", "--rounds", "2", "--steps", "1", "--model", str(tiny_model_dir),
                 "--variants", "default", "eager_attention", "--out", str(out), root=tmp_path)  # fmt: skip
    result = json.loads(out.read_text())
    assert set(result["medians"]) == {"default", "eager_attention"}
    assert all(len(runs) == 2 for runs in result["runs"].values())  # one per round
    assert all(row["gflops"] > 0 for row in result["medians"].values())
    assert sum(result["profile"].values()) == pytest.approx(1.0)
    assert "| eager_attention |" in done.stdout and "of the GEMM peak" in done.stdout


def test_startup_benchmark_times_every_command(tmp_path):
    out = tmp_path / "startup.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "startup.py"), "--runs", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert len(result) == 6 and all(0 < row["median_s"] < 60 for row in result.values())


def test_next_item_fusion_of_a_run_with_itself_ranks_as_it_did_and_refuses_another_task(
    trained_run, capsys, monkeypatch
):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    from next_item_fusion import main as fuse

    folder = trained_run("next_item")
    fuse([str(folder), str(folder)])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    saved = json.loads((folder / "metrics.json").read_text())
    # (1 - w)·s + w·s = s: every weight ranks as the run did when it tested
    assert len(rows) == 21 and {r[3] for r in rows} == {f"{saved['test/ndcg@10']:.4f}"}
    assert sum("validation's" in " ".join(r) for r in rows) == 1
    with pytest.raises(ConfigError, match="is a task=preference run; give two next-item runs"):
        fuse([str(folder), str(trained_run("preference"))])


def test_slice_gaps_are_the_seed_means_of_each_runs_slices(tmp_path):
    import pandas as pd

    runs = REPO / "docs" / "results" / "runs"
    done = bench("slice_gaps.py", str(runs / "bpr_s*"), str(runs / "sasrec_s*"), root=tmp_path)
    head = next(line for line in done.stdout.splitlines() if line.startswith("| head |"))
    means = []
    for name in ("bpr", "sasrec"):
        tables = [pd.read_csv(f / "slices.csv") for f in sorted(runs.glob(f"{name}_s*"))]
        means.append(sum(float(t.query("group == 'head'")["ndcg@10"].iloc[0]) for t in tables) / 3)
    assert head.startswith(
        f"| head | 528 | {means[0]:.4f} | {means[1]:.4f} | {means[0] - means[1]:+.4f} |"
    )
    same = bench("slice_gaps.py", str(runs / "sasrec_s*"), str(runs / "sasrec_s*"), root=tmp_path)
    assert same.stdout.count("| +0.0000 | +0% |") == 3  # head, torso, tail


def test_rating_calibration_leaves_a_validation_fitted_fusion_as_it_is(tmp_path):
    runs = REPO / "docs" / "results" / "runs"
    done = bench(
        "rating_calibration.py", str(runs / "fusion_study_lm_mf_rating_s42"), root=tmp_path
    )
    row = done.stdout.splitlines()[2].split(" | ")
    metrics = json.loads((runs / "fusion_study_lm_mf_rating_s42" / "metrics.json").read_text())
    assert float(row[1]) == pytest.approx(1.0, abs=0.005)  # its weights were fitted there already
    assert float(row[3]) == pytest.approx(metrics["test/rmse"], abs=1e-4)
    assert float(row[4].rstrip(" |")) == pytest.approx(metrics["test/rmse"], abs=5e-4)
