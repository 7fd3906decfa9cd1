"""Faults lose nothing: NaN losses, killed processes, crashes mid-write, an unreachable W&B and
corrupted or stale caches. (docs/reliability.md lists every case with its test.)"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import open_dict

from conftest import compose_config, run, tiny, tiny_overrides
from promptrec.atomic import write_atomic
from promptrec.runtime.build import build_datamodule, build_trainer
from promptrec.runtime.callbacks import TrainingDiverged
from promptrec.runtime.checkpoint_io import AtomicCheckpointIO
from promptrec.runtime.training import train


# -- NaN / Inf -------------------------------------------------------------------------------------
def test_nan_loss_stops_and_saves_the_last_good_state(train_cfg, tmp_path):
    with open_dict(train_cfg):
        train_cfg.callbacks.nan = {"_target_": "faults.NaNLabelAtStep", "step": 2}
    with pytest.raises(TrainingDiverged) as info:
        train(train_cfg)
    message = str(info.value)
    assert "loss became nan at step 2" in message and "tuning.lr" in message
    saved = tmp_path / "run" / "checkpoints" / "last_good.ckpt"
    assert str(saved) in message
    state = torch.load(saved, map_location="cpu", weights_only=True)
    assert state["global_step"] == 2  # the state before the bad step: two good updates
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "failed" and not (tmp_path / "run" / "metrics.json").exists()


def test_overflowed_weights_are_not_saved_as_good(train_cfg, tmp_path):
    with open_dict(train_cfg):
        train_cfg.tuning.lr = math.inf  # the first update makes the weights infinite
        train_cfg.tuning.warmup_ratio = 0.0
    with pytest.raises(TrainingDiverged, match="weights were already non-finite"):
        train(train_cfg)
    assert not (tmp_path / "run" / "checkpoints" / "last_good.ckpt").exists()


# -- killed mid-epoch ------------------------------------------------------------------------------
@pytest.mark.slow
def test_killed_run_resumes_into_the_same_wandb_run_with_identical_metrics(
    tiny_model_dir, data_dir, tmp_path
):
    args = ["promptrec-train", "logger=default", "+callbacks.kill._target_=killer.KillAtStep",
            *tiny(tiny_model_dir, data_dir, users=30, examples=64), "trainer.max_epochs=2"]  # fmt: skip
    killed_root, whole_root = tmp_path / "killed", tmp_path / "whole"
    done = run(args, killed_root, PROMPTREC_TEST_KILL_AT="11")  # 8 steps per epoch: mid-epoch 2
    assert done.returncode == -9  # SIGKILL: no cleanup, no exception handler ran
    (run_dir,) = (killed_root / "outputs" / "train" / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert not (run_dir / "metrics.json").exists()
    first_id = json.loads((run_dir / "run.json").read_text())["wandb_id"]

    done = run(["promptrec-train", f"ckpt_path={run_dir}"], killed_root)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "finished" and record["resumed"] and record["wandb_id"] == first_id
    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(p.name.endswith(first_id) for p in offline)
    curve = pd.read_csv(run_dir / "csv" / "metrics.csv")  # the killed part of the log is kept
    assert len(curve.dropna(subset=["val/auc"])) == 2  # epoch 1 (before the kill) and epoch 2

    done = run(args, whole_root)  # the same run, never interrupted
    assert done.returncode == 0, done.stderr[-3000:]
    (whole_dir,) = (whole_root / "outputs" / "train" / "runs").iterdir()
    resumed, whole = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, whole_dir))
    scores = [k for k in whole if k.startswith(("test/", "val/", "train/"))]
    assert len(scores) > 10
    assert {k: resumed[k] for k in scores} == {k: whole[k] for k in scores}


def test_ctrl_c_records_interrupted_exits_130_and_says_how_to_resume(
    tiny_model_dir, data_dir, tmp_path
):
    args = ["promptrec-train", "+callbacks.kill._target_=killer.KillAtStep",
            *tiny(tiny_model_dir, data_dir, users=30, examples=64), "trainer.max_epochs=2"]  # fmt: skip
    done = run(args, tmp_path, PROMPTREC_TEST_KILL_AT="11", PROMPTREC_TEST_SIGNAL="SIGINT")
    assert done.returncode == 130, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "interrupted" and "error" not in record
    assert f"promptrec-train ckpt_path={run_dir}" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


# -- atomic writes ---------------------------------------------------------------------------------
def test_a_crash_mid_checkpoint_leaves_the_previous_one_intact(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"w": torch.ones(3)}, path)

    def killed_mid_write(obj, f):
        Path(f).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["w"].eq(1).all()  # the old one, whole
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no half file left


def test_a_crash_mid_metrics_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_atomic(path, '{"test/auc": 0.7}\n')

    def killed_mid_write(self, text, *args, **kwargs):
        with open(self, "w") as f:
            f.write(text[:5])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, '{"test/auc": 0.9}\n')
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"test/auc": 0.7}


def test_trainers_write_checkpoints_atomically(train_cfg):
    trainer = build_trainer(train_cfg, [])
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


# -- W&B that cannot start ------------------------------------------------------------------------
@pytest.mark.slow
def test_unreachable_wandb_never_stops_training(tiny_model_dir, data_dir, tmp_path):
    done = run(["promptrec-train", "logger=default", "logger.wandb.offline=false",
                *tiny(tiny_model_dir, data_dir)], tmp_path,  # fmt: skip
               WANDB_MODE="online", WANDB_BASE_URL="http://127.0.0.1:9", WANDB_API_KEY="",
               WANDB_INIT_TIMEOUT="10")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("W&B could not start") == 1, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    assert (run_dir / "metrics.json").is_file() and (run_dir / "csv" / "metrics.csv").is_file()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


# -- caches ----------------------------------------------------------------------------------------
def token_folders(cache: Path) -> set[str]:
    return {p.name for p in cache.glob("tokens-*")}


def test_cache_follows_the_source_files_and_the_template(
    tiny_model_dir, data_dir, tmp_path, atomic_dir
):
    folder = tmp_path / "atomic"
    shutil.copytree(atomic_dir, folder)
    cfg = compose_config("train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path),
                                   "data.source=atomic", f"data.path={folder}"])  # fmt: skip
    cache = Path(cfg.paths.cache_dir)
    first = build_datamodule(cfg).prepared
    assert len(token_folders(cache)) == 1
    again = build_datamodule(cfg).prepared
    assert again.split_hash == first.split_hash and len(token_folders(cache)) == 1  # reused

    inter = folder / "ml-100k.inter"  # one rating changes: a new split and new tokens
    lines = inter.read_text().splitlines()
    user, item, rating, stamp = lines[1].split("\t")
    lines[1] = "\t".join([user, item, "1" if rating != "1" else "2", stamp])
    inter.write_text("\n".join(lines) + "\n")
    changed = build_datamodule(cfg).prepared
    assert changed.split_hash != first.split_hash and len(token_folders(cache)) == 2

    cfg.prompt.templates.preference = "Movie: {{ target.title }}. Liked?"  # a new template
    retemplated = build_datamodule(cfg)
    assert retemplated.prepared.split_hash == changed.split_hash
    assert len(token_folders(cache)) == 3
    assert retemplated.prepared.examples["train"]["text"].str.startswith("Movie:").all()


def test_a_corrupted_token_cache_is_rebuilt_not_trusted(train_cfg, capsys):
    original = build_datamodule(train_cfg).prepared
    (entry,) = Path(train_cfg.paths.cache_dir).glob("tokens-*")
    arrow = next((entry / "train").glob("*.arrow"))
    data = bytearray(arrow.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the token ids
    arrow.write_bytes(bytes(data))
    rebuilt = build_datamodule(train_cfg).prepared
    assert "does not match its checksums: rebuilding" in capsys.readouterr().out
    for split in ("train", "val", "test"):
        ids = [d.datasets[split].with_format(None)["input_ids"] for d in (rebuilt, original)]
        assert ids[0] == ids[1]
