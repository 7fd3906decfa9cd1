"""Experiments as a user runs them: sweeps with W&B runs per job, Optuna studies, the summary and
its notebook, exact reproduction, and kill-and-resume. Commands run as real subprocesses."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
from pathlib import Path

import matplotlib.image
import nbformat
import optuna
import pandas as pd
import pytest
import yaml
from lightning.pytorch.loggers import WandbLogger
from nbclient import NotebookClient
from omegaconf import OmegaConf, open_dict
from rich.console import Console

from conftest import built_once, compose_config, run, tiny
from promptrec.cli.summarize import main as summarize_main
from promptrec.errors import ConfigError, PromptRecError
from promptrec.experiments.report import sync_offline_runs, terminal_table, wandb_logged_in
from promptrec.experiments.reproduce import compare
from promptrec.experiments.runs import load_runs
from promptrec.experiments.summary import configuration_key, summarize
from promptrec.runtime.build import build_loggers, wandb_facts
from promptrec.runtime.plots import compact
from promptrec.runtime.resume import run_to_resume

REPO = Path(__file__).resolve().parents[1]


def git_head() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


@pytest.fixture(scope="session")  # trained once, by the first xdist worker that needs it
def sweep(tiny_model_dir, data_dir, tmp_path_factory) -> Path:
    """A 2 × 2 × 2 multirun (prompt × tuning × seed) with W&B offline, as a user launches it."""

    def launch(root: Path) -> None:
        done = run(["promptrec-train", "-m", "prompt=question,text", "tuning=full,lora",
                    "seed=1,2", "logger=default", *tiny(tiny_model_dir, data_dir)], root)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        (folder,) = (root / "outputs" / "train" / "multiruns").iterdir()
        (folder / "console.txt").write_text(done.stdout + done.stderr)  # what the user saw

    (folder,) = (
        built_once(tmp_path_factory, "sweep", launch) / "outputs" / "train" / "multiruns"
    ).iterdir()
    return folder


@pytest.mark.slow
def test_each_sweep_job_is_its_own_named_grouped_wandb_run(sweep):
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 8
    assert "wandb: WARNING" not in (sweep / "console.txt").read_text()  # offline W&B says nothing
    records = [json.loads((job / "run.json").read_text()) for job in jobs]
    assert {r["status"] for r in records} == {"finished"}
    names = {r["wandb_name"] for r in records}
    expected = {f"prompt={p},tuning={t},seed={s}"
                for p, t, s in itertools.product(("question", "text"), ("full", "lora"), (1, 2))}  # fmt: skip
    assert names == expected
    assert {r["wandb_group"] for r in records} == {sweep.name}
    ids = [r["wandb_id"] for r in records]
    assert len(set(ids)) == 8
    for job, run_id in zip(jobs, ids):
        (offline,) = (job / "wandb").glob("offline-run-*")
        assert offline.name.endswith(run_id)  # the job logged into its own W&B run
        metrics = json.loads((job / "metrics.json").read_text())
        assert len(metrics["data/split_hash"]) == 16 and len(metrics["prompt/hash"]) == 12
        assert metrics["git/commit"] == git_head()
    # jobs 0 and 4: prompt=question and prompt=text, both with tuning=full and seed=1
    question, text = (json.loads((sweep / j / "metrics.json").read_text()) for j in "04")
    assert question["prompt/hash"] != text["prompt/hash"]


@pytest.mark.slow
def test_summarize_pools_seeds_into_mean_and_std_per_configuration(sweep, tmp_path):
    out = tmp_path / "summary"
    done = run(["promptrec-summarize", str(sweep), "--out", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(out / "summary_preference.csv")
    assert len(table) == 4 and set(table["runs"]) == {2} and set(table["seeds"]) == {"1,2"}
    assert set(zip(table["prompt"], table["tuning"])) == set(
        itertools.product(("question", "text"), ("full", "lora"))
    )
    for _, row in table.iterrows():  # mean ± std recomputed from the job folders themselves
        name = f"prompt={row['prompt']},tuning={row['tuning']},"
        aucs = [json.loads((job / "metrics.json").read_text())["test/auc"]
                for job in sweep.iterdir() if (job / "run.json").is_file()
                and json.loads((job / "run.json").read_text())["wandb_name"].startswith(name)]  # fmt: skip
        assert len(aucs) == 2
        assert math.isclose(row["test/auc"], sum(aucs) / 2, abs_tol=1e-12)
        assert math.isclose(
            row["test/auc std"], abs(aucs[0] - aucs[1]) / math.sqrt(2), abs_tol=1e-12
        )
    markdown = (out / "summary.md").read_text()
    assert markdown.count("±") >= 4 and "**" in markdown
    # each configuration's interval, and one best that the others are compared with
    assert table["95% CI"].str.fullmatch(r"\[0\.\d{4}, [01]\.\d{4}\]").all()
    assert (table["Δ vs best [95% CI]"] == "best").sum() == 1
    assert set(table["real?"]) <= {"yes", "no", "–"} and "paired bootstrap over the" in markdown
    for figure in ("heatmap", "params", "curves"):
        image = matplotlib.image.imread(out / f"{figure}_preference.png")
        assert image.shape[0] > 100 and image.shape[1] > 100
    assert "wandb sync" in done.stdout  # offers to upload the offline runs


def test_terminal_table_shows_a_fusion_rows_missing_settings_as_a_dash():
    table = pd.DataFrame({"prompt": ["question", float("nan")], "tuning": ["full", None],
                          "runs": [3, 3], "test/auc": [0.80, 0.82], "test/auc std": [0.01, 0.02],
                          "95% CI": ["[0.79, 0.81]", "[0.81, 0.83]"], "real?": ["yes", "–"]})  # fmt: skip
    console = Console(width=100, record=True)
    console.print(terminal_table(table, ["prompt", "tuning"], ["test/auc"]))
    text = console.export_text()
    assert "nan" not in text and "None" not in text
    assert "question" in text and "0.8200 ±" in text and text.count("–") >= 3


def test_summary_marks_failed_runs_and_keeps_them_out_of_the_mean():
    runs = pd.DataFrame({
        "run": ["a", "b", "c"], "status": ["finished", "finished", "failed"],
        "cfg/task.name": ["preference"] * 3, "cfg/tuning.mode": ["lora"] * 3,
        "cfg/seed": [1, 2, 3], "test/auc": [0.6, 0.8, float("nan")],
    })  # fmt: skip
    (row,) = summarize(runs, ["test/auc"]).to_dict("records")
    assert row["runs"] == 2 and row["failed"] == 1
    assert math.isclose(row["test/auc"], 0.7) and math.isclose(row["test/auc std"], 0.02**0.5)


@pytest.mark.slow
def test_compare_notebook_executes_on_a_sweep(sweep, monkeypatch):
    path = REPO / "notebooks" / "compare_runs.ipynb"
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "commit it stripped"
    monkeypatch.setenv("PROMPTREC_SWEEP", str(sweep))
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()  # fmt: skip
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3
    assert any("±" in o.get("data", {}).get("text/markdown", "") for o in outputs)


@pytest.mark.slow
def test_a_failed_job_is_recorded_and_the_sweep_goes_on(tiny_model_dir, data_dir, tmp_path):
    args = ["promptrec-train", "-m", "tuning.lr=inf,0.001", "tuning.warmup_ratio=0", "logger=default",
            *tiny(tiny_model_dir, data_dir, examples=32)]  # fmt: skip
    done = run(args, tmp_path)
    assert done.returncode != 0  # the sweep reports its failure at the end …
    (sweep,) = (tmp_path / "outputs" / "train" / "multiruns").iterdir()
    failed, finished = (json.loads((sweep / j / "run.json").read_text()) for j in "01")
    assert failed["status"] == "failed" and "loss became nan" in failed["error"]
    assert "tuning.lr" in done.stderr  # the one-paragraph message names the fix
    assert not (sweep / "0" / "metrics.json").exists()
    assert finished["status"] == "finished"  # … after running the job that came after it
    assert (sweep / "1" / "metrics.json").is_file()


@pytest.mark.slow
def test_optuna_study_runs_trials_and_survives_a_diverged_one(tiny_model_dir, data_dir, tmp_path):
    searches = tmp_path / "conf" / "hparams_search"
    searches.mkdir(parents=True)
    lora = yaml.safe_load((REPO / "conf" / "hparams_search" / "lora.yaml").read_text())
    # the shipped search with a learning rate that is sometimes infinite: such a trial's loss
    # turns NaN at its second step
    lora["hydra"]["sweeper"]["params"] = {"tuning.lr": "choice(0.001, inf, 0.01)"}
    (searches / "lora_inf.yaml").write_text("# @package _global_\n" + yaml.safe_dump(lora))
    db = tmp_path / "optuna.db"
    args = ["promptrec-train", "--config-dir", str(tmp_path / "conf"), "hparams_search=lora_inf",
            "hydra.sweeper.n_trials=3", f"hydra.sweeper.storage=sqlite:///{db}",
            "tuning.warmup_ratio=0", "logger=csv", *tiny(tiny_model_dir, data_dir, examples=32)]  # fmt: skip
    done = run(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="lora-preference", storage=f"sqlite:///{db}")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    (sweep,) = (tmp_path / "outputs" / "train" / "multiruns").iterdir()
    lrs = {}
    for job in (p for p in sweep.iterdir() if p.is_dir()):
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        lrs[job.name] = float(
            next(o for o in overrides if o.startswith("tuning.lr=")).split("=")[1]
        )
    expected = sorted("FAIL" if math.isinf(lr) else "COMPLETE" for lr in lrs.values())
    assert sorted(t.state.name for t in study.trials) == expected
    assert len(expected) == 3 and {"FAIL", "COMPLETE"} <= set(expected)  # the seeded draws mix
    scores = [json.loads(m.read_text())["val/auc_best"] for m in sweep.glob("*/metrics.json")]
    assert len(scores) == expected.count("COMPLETE")
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(scores)


@pytest.mark.slow
def test_shipped_optuna_search_samples_three_trials(tiny_model_dir, data_dir, tmp_path):
    done = run(["promptrec-train", "hparams_search=lora", "hydra.sweeper.n_trials=3", "logger=csv",
                *tiny(tiny_model_dir, data_dir)], tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "train" / "multiruns").iterdir()
    jobs = [yaml.safe_load((sweep / j / ".hydra" / "overrides.yaml").read_text()) for j in "012"]
    assert all(any(o.startswith("tuning.lora.r=") for o in job) for job in jobs)
    assert len({tuple(job) for job in jobs}) == 3  # three different suggestions
    assert "setup plugin alembic" not in done.stdout + done.stderr  # Optuna's storage, silenced


def test_search_direction_follows_the_task_monitor():
    for task, direction in (("preference", "maximize"), ("rating", "minimize")):
        cfg = compose_config("train", [f"task={task}", "hparams_search=lora"], return_hydra=True)
        assert cfg.hydra.sweeper.direction == direction


def test_wandb_sweep_specs_drive_valid_hydra_overrides():
    for spec_file in sorted((REPO / "conf" / "wandb_sweep").glob("*.yaml")):
        spec = yaml.safe_load(spec_file.read_text())
        assert spec["command"][-1] == "${args_no_hyphens}"
        assert spec["command"][:4] == ["${env}", "${interpreter}", "-m", "promptrec.cli.train"]
        fixed = spec["command"][4:-1]
        choices = [
            [f"{k}={v}" for v in (p["values"] if "values" in p else (p["min"], p["max"]))]
            for k, p in spec["parameters"].items()
        ]
        longest = max(map(len, choices))
        for i in range(longest):  # every value of every parameter at least once
            combo = [values[i % len(values)] for values in choices]
            cfg = compose_config("train", [*fixed, *combo])
            assert cfg.logger.wandb.offline is False
            assert spec["metric"]["name"] == f"{cfg.task.monitor}_best"  # what train logs to W&B


@pytest.mark.slow
def test_reproduce_matches_bit_for_bit_and_eval_accepts_the_run_folder(trained_run, tmp_path):
    run_dir = trained_run("preference")
    original = json.loads((run_dir / "metrics.json").read_text())

    again = tmp_path / "again"
    done = run(["promptrec-reproduce", str(run_dir), "--out", str(again)], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "every metric matches" in done.stdout
    table = pd.read_csv(again / "reproduction.csv")
    assert len(table) > 10 and table["match"].all()
    assert {"test/auc", "val/auc_best", "data/split_hash", "prompt/hash"} <= set(table["metric"])
    tampered = compare({**original, "test/auc": original["test/auc"] + 1e-9}, original, atol=0.0)
    assert not tampered.set_index("metric").loc["test/auc", "match"]  # 1e-9 is a mismatch on CPU

    done = run(["promptrec-eval", f"ckpt_path={run_dir}"], tmp_path)  # the folder, not the .ckpt
    assert done.returncode == 0, done.stderr[-3000:]
    (eval_dir,) = (tmp_path / "outputs" / "eval" / "runs").iterdir()
    assert json.loads((eval_dir / "metrics.json").read_text())["test/auc"] == original["test/auc"]


def test_last_resumes_the_newest_unfinished_run(train_cfg, tmp_path):
    runs = tmp_path / "outputs" / "train" / "runs"
    for name, status in (("a", "failed"), ("b", "finished"), ("c", "running")):
        (runs / name / "checkpoints").mkdir(parents=True)
        (runs / name / "checkpoints" / "last.ckpt").write_bytes(b"")
        (runs / name / "run.json").write_text(json.dumps({"status": status}))
    os.utime(runs / "a" / "checkpoints" / "last.ckpt", (1, 1))
    train_cfg.paths.log_dir = str(tmp_path / "outputs")
    train_cfg.ckpt_path = "last"
    assert run_to_resume(train_cfg) == runs / "c"
    train_cfg.ckpt_path = str(runs / "b")
    with pytest.raises(Exception, match="not a resumable run"):
        run_to_resume(train_cfg)  # no .hydra/config.yaml: not a run folder


def test_runs_launched_alike_are_told_apart_by_their_saved_settings():
    """Two runs with no overrides whose defaults differed: the setting that differs (and that
    both have) labels the rows; one that only the older run carries does not."""
    import pandas as pd

    from promptrec.experiments.summary import summarize, varying_labels

    runs = pd.DataFrame({"run": ["a", "b"], "status": ["finished"] * 2, "choice/tuning": ["full"] * 2,
                         "cfg/trainer.precision": ["32-true", "auto"], "cfg/model.dim": [64, None],
                         "cfg/seed": [42, 42], "test/auc": [0.77, 0.771]})  # fmt: skip
    assert varying_labels(runs) == ["trainer.precision"]
    assert list(summarize(runs, ["test/auc"])["trainer.precision"]) == ["32-true", "auto"]


def test_sync_without_a_wandb_login_says_how_to_log_in_and_uploads_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    offline = tmp_path / "wandb" / "offline-run-1"
    offline.mkdir(parents=True)
    with pytest.raises(PromptRecError, match="wandb login") as info:
        sync_offline_runs([offline], upload=True)
    assert f"wandb sync {offline}" in str(info.value) and offline.is_dir()
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password x\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert wandb_logged_in()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["preference", "rating", "next_item"])
def test_inspect_notebook_shows_each_tasks_view(sweep, task, monkeypatch):
    """A tiny sweep job (with its training log) for preference; the published run folders (no
    logs) for the others: the notebook picks the task's view and says why a curve is missing."""
    run = {"preference": next(p.parent for p in sweep.glob("*/metrics.json")),
           "rating": REPO / "docs" / "results" / "runs" / "minilm_rating_s42",
           "next_item": REPO / "docs" / "results" / "runs" / "minilm_next_item_s42"}[task]  # fmt: skip
    notebook = nbformat.read(REPO / "notebooks" / "inspect_run.ipynb", as_version=4)
    monkeypatch.setenv("PROMPTREC_RUN", str(run))
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()  # fmt: skip
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = " ".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs
    )
    assert f"· {task}" in text
    assert {"preference": "decile", "rating": "true stars", "next_item": "users whose target"}[
        task
    ] in text
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert figures == 1 if task == "preference" else (figures == 0 and "no training curve" in text)


def test_a_finished_run_is_not_resumed_and_a_resumed_sweep_job_keeps_its_identity(
    train_cfg, tmp_path
):
    done = tmp_path / "done"
    (done / ".hydra").mkdir(parents=True)
    (done / ".hydra" / "config.yaml").write_text("{}")
    (done / "checkpoints").mkdir()
    (done / "checkpoints" / "last.ckpt").write_bytes(b"")
    (done / "run.json").write_text(json.dumps({"status": "finished"}))
    train_cfg.ckpt_path = str(done)
    with pytest.raises(ConfigError, match="is a finished run") as info:
        run_to_resume(train_cfg)
    assert f"promptrec-reproduce {done}" in str(info.value)
    # the saved name, group and tags of a sweep job win over what a plain run would be called
    previous = {"wandb_id": "abc123", "wandb_name": "prompt=text,tuning=lora,seed=2",
                "wandb_group": "multiruns/2026-12-02", "wandb_tags": ["prompt=text", "seed=2"]}  # fmt: skip
    with open_dict(train_cfg):
        train_cfg.logger = compose_config("train", ["logger=default"]).logger
        train_cfg.paths.output_dir = str(tmp_path / "run")
    (tmp_path / "run").mkdir()
    (logger,) = [x for x in build_loggers(train_cfg, previous) if isinstance(x, WandbLogger)]
    facts = wandb_facts([logger])
    logger.experiment.finish()
    assert facts == {"wandb_id": "abc123", "wandb_name": previous["wandb_name"],
                     "wandb_group": previous["wandb_group"], "wandb_tags": previous["wandb_tags"]}  # fmt: skip


@pytest.mark.slow
def test_summary_run_and_workspace_join_the_sweep_offline(sweep, tmp_path):
    out = tmp_path / "summary"
    summarize_main([str(sweep), "--out", str(out), "--wandb"])
    (summary_run,) = (out / "wandb").glob("offline-run-*")
    job = json.loads(next(sweep.glob("*/run.json")).read_text())
    files = [p.name for p in summary_run.rglob("*")]
    assert any(n.endswith(".wandb") for n in files)  # the offline run's log, for `wandb sync`
    spec = json.loads((out / "workspace.json").read_text())
    text = json.dumps(spec)
    assert job["wandb_group"] in text  # the runset shows this sweep's group
    assert "test/auc" in text and "params/trainable" in text and "cost/peak_rss_mb" in text
    assert "preference: headline metrics" in text and "trials" not in text  # a grid, not a study


def test_heatmap_of_single_seed_cells_shows_n_and_no_std():
    from promptrec.runtime import plots

    summary = pd.DataFrame({"prompt": ["question", "text"], "tuning": ["full", "lora"],
                            "runs": [1, 3], "test/auc": [0.77, 0.75],
                            "test/auc std": [float("nan"), 0.01]})  # fmt: skip
    fig = plots.heatmap(summary, "test/auc")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "0.770\nn=1" in texts and "0.750 ± 0.010\nn=3" in texts
    assert plots.heatmap(summary.drop(columns=["prompt", "tuning"]), "test/auc") is None


def test_log_axes_label_one_two_five_steps_compactly():
    """Trainable parameters and learning rates span decades: a log axis labels 1, 2 and 5 × a
    power of ten (matplotlib's default labels every minor tick, and they overlap)."""
    labels = [compact(v) for v in (2e5, 3e5, 5e5, 1e6, 7e6, 1e-3, 2e-3, 4e-3, 50, 1.5e9, 2e9)]
    assert labels == ["200k", "", "500k", "1M", "", "0.001", "0.002", "", "50", "", "2G"]


def test_runs_reading_the_id_run_of_their_own_seed_pool_into_one_configuration():
    runs = pd.DataFrame({"cfg/seed": [42, 1, 42, 42],
                         "cfg/prompt.collaborative.run": ["out/mf_s42", "out/mf_s1", "out/mf_s1",
                                                          "out/421/mf_s42"],
                         "cfg/tuning.lr": [1e-3] * 4})  # fmt: skip
    keys = configuration_key(runs).tolist()
    assert keys[0] == keys[1]  # each reads the MF run of its own seed
    assert keys[2] != keys[0]  # seed 42 reading seed 1's MF run is another configuration
    assert keys[3] != keys[0] and "421" in keys[3]  # 42 only as a whole number
    runs["cfg/model.init_from"] = ["out/lm_s42", "out/lm_s1", "out/lm_s1", "out/lm_s42"]
    keys = configuration_key(runs).tolist()
    assert keys[0] == keys[1] != keys[2]  # and each starts from the text run of its own seed


def test_a_run_from_before_a_setting_was_typed_pools_with_a_later_one(tmp_path):
    """trainer.max_steps joined the schema later: a run without it ran without a step limit."""
    for name, trainer in (("old", {"max_epochs": 2}), ("new", {"max_epochs": 2, "max_steps": -1}),
                          ("capped", {"max_epochs": 2, "max_steps": 5})):  # fmt: skip
        (tmp_path / name / ".hydra").mkdir(parents=True)
        OmegaConf.save({"seed": 1, "trainer": trainer}, tmp_path / name / ".hydra" / "config.yaml")
    runs = load_runs([tmp_path]).set_index(pd.Index(["capped", "new", "old"]))
    keys = configuration_key(runs)
    assert keys["old"] == keys["new"] != keys["capped"]
    assert "cfg/prompt.collaborative.drop" not in runs  # no run here has collaborative tokens


def test_a_collaborative_run_from_before_modality_dropout_pools_with_drop_zero(tmp_path):
    for name, collaborative in (("old", {"run": "mf"}), ("zero", {"run": "mf", "drop": 0.0}),
                                ("half", {"run": "mf", "drop": 0.5})):  # fmt: skip
        (tmp_path / name / ".hydra").mkdir(parents=True)
        OmegaConf.save({"seed": 1, "prompt": {"name": "collaborative", "collaborative": collaborative}},
                       tmp_path / name / ".hydra" / "config.yaml")  # fmt: skip
    runs = load_runs([tmp_path]).set_index(pd.Index(["half", "old", "zero"]))
    keys = configuration_key(runs)
    assert keys["old"] == keys["zero"] != keys["half"]
