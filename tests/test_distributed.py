"""DDP on CPU (gloo, 2 processes): training runs, evaluation equals the single-process result
metric by metric, every example is counted once, and only rank zero writes files.

The test splits have an odd number of examples, so Lightning's distributed sampler pads one
rank by repeating an example; exact evaluation must drop that copy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from conftest import BIN, REPO, compose_config, run, tiny
from forked import Forked
from promptrec.errors import ConfigError
from promptrec.runtime.config import validate_launch

DDP_CPU = ["trainer.accelerator=cpu", "trainer.devices=2"]


def _train(args, root: Path) -> Path:
    done = run(["promptrec-train", *args], root, real=True)  # Lightning relaunches the command
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (root / "outputs" / "train" / "runs").iterdir()
    return run_dir


def _eval(run_dir: Path, root: Path, *extra: str) -> tuple[dict, pd.DataFrame]:
    before = set((root / "outputs" / "eval" / "runs").glob("*"))
    done = run(["promptrec-eval", f"ckpt_path={run_dir}", "trainer.enable_progress_bar=false",
                *extra], root)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (out,) = set((root / "outputs" / "eval" / "runs").glob("*")) - before
    return json.loads((out / "metrics.json").read_text()), pd.read_csv(_table(out), dtype=str)


def _table(run_dir: Path) -> Path:
    return next(run_dir / name for name in ("predictions.csv", "topk.csv")
                if (run_dir / name).is_file())  # fmt: skip


def assert_same_scores(ddp: dict, ddp_table, single: dict, single_table, least: int) -> None:
    """DDP's test metrics equal one process's exactly, and every example is scored once."""
    assert single["data/test_examples"] % 2 == 1  # the sampler pads: one example is seen twice
    scores = sorted(k for k in single if k.startswith("test/"))
    assert len(scores) >= least  # GAUC / top-K and coverage
    gaps = {key: abs(ddp[key] - single[key]) for key in scores}
    print(f"largest DDP - single difference: {max(gaps.values()):.3g}")
    assert max(gaps.values()) == 0.0, gaps  # exact: each example scored once, padding dropped
    assert len(ddp_table) == len(single_table) == single["data/test_examples"]  # each once
    assert ddp_table["user_id"].is_unique


@pytest.mark.slow
def test_ddp_training_runs_and_rank_zero_alone_writes(tiny_model_dir, data_dir, tmp_path):
    """Lightning relaunches the command per rank (trainer=ddp); the run tests under DDP, and a
    single-process promptrec-eval of its checkpoint gives the same scores."""
    run_dir = _train(["trainer=ddp", *DDP_CPU, "logger=default",
                      *tiny(tiny_model_dir, data_dir, users=15, examples=32)], tmp_path)  # fmt: skip
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "finished"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["test/auc"] <= 1.0
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    # a finished run keeps best.ckpt (callbacks.keep_checkpoints=best), written by rank 0 alone
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt"]
    single, single_table = _eval(run_dir, tmp_path, "logger=csv")
    ddp_table = pd.read_csv(run_dir / "predictions.csv", dtype=str)
    assert_same_scores(metrics, ddp_table, single, single_table, least=8)


@pytest.mark.slow
def test_multirun_rejects_relaunching_ddp_and_tests_under_ddp_spawn_as_one_process_does(
    tiny_model_dir, data_dir, tmp_path
):
    """A sweep job under ddp_spawn trains and tests next item (the catalogue's top-K lists are
    gathered across ranks); a single-process promptrec-eval of its checkpoint gives the same."""
    common = ["seed=1", "logger=csv", *DDP_CPU, *tiny(tiny_model_dir, data_dir, users=15)]
    done = run(["promptrec-train", "-m", "trainer=ddp", *common], tmp_path / "ddp", real=True)
    assert done.returncode != 0
    assert "cannot run inside a Hydra multirun" in done.stderr and "ddp_spawn" in done.stderr
    root = tmp_path / "spawn"
    done = run(["promptrec-train", "-m", "trainer=ddp_spawn", "task=next_item", *common], root,
               real=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = (root / "outputs" / "train" / "multiruns").iterdir()
    job = sweep / "0"
    assert json.loads((job / "run.json").read_text())["status"] == "finished"
    ddp = json.loads((job / "metrics.json").read_text())
    assert "val/ndcg@10" in ddp
    single, single_table = _eval(job, root)
    assert_same_scores(ddp, pd.read_csv(_table(job), dtype=str), single, single_table, least=25)


def test_slurm_launcher_starts_one_task_per_device():
    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]
    launcher = compose_config("train", overrides, return_hydra=True).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.nodes, launcher.gpus_per_node) == (4, 2, 4)


def test_ddp_in_a_multirun_is_allowed_only_where_the_cluster_starts_the_ranks(monkeypatch):
    cfg = compose_config("train", ["trainer=ddp"])
    validate_launch(cfg, multirun=False)  # a single run: Lightning relaunches, fine
    with pytest.raises(ConfigError, match="trainer=ddp_spawn"):
        validate_launch(cfg, multirun=True)
    validate_launch(compose_config("train", ["trainer=ddp_spawn"]), multirun=True)
    monkeypatch.setenv("SLURM_NTASKS", "4")  # SLURM started every rank: nothing is relaunched
    validate_launch(cfg, multirun=True)


@pytest.mark.slow
def test_ranks_started_together_build_the_data_cache_once(tiny_model_dir, data_dir, tmp_path):
    """torchrun and SLURM start every rank at once, and each prepares the data: a file lock lets
    the first build the split and token caches and the others load them."""
    args = [str(BIN / "promptrec-prompts"), f"model.name_or_path={tiny_model_dir}",
            f"paths.data_dir={data_dir}", f"paths.cache_dir={tmp_path / 'cache'}", "data.max_users=40"]  # fmt: skip
    env = {**os.environ, "PROMPTREC_ROOT": str(tmp_path)}
    ranks = [Forked(args, REPO, env) for _ in range(2)]  # two processes, started together
    outputs = [rank.wait(timeout=600) for rank in ranks]
    assert [done.returncode for done in outputs] == [0, 0], (
        outputs[0].stderr[-2000:] + outputs[1].stderr[-2000:]
    )
    stats = [
        json.loads(p.read_text())
        for p in (tmp_path / "outputs" / "prompts").glob("runs/*/prompt_stats.json")
    ]
    assert len(stats) == 2 and stats[0] == stats[1]
    assert len(list((tmp_path / "cache").glob("tokens-*"))) == 1
    # datasets.map's progress bar: one rank built the caches, the other waited and loaded them
    builders = [done for done in outputs if "prompts (train)" in done.stderr]
    assert len(builders) == 1
    assert not list((tmp_path / "cache").glob("*.partial"))
