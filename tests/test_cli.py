"""The real commands, as subprocesses: Hydra overrides, Hydra's own flags, errors and exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PLAIN

REPO = Path(__file__).resolve().parents[1]


def _run(args, tmp_path, env_extra=None):
    env = {
        **os.environ,
        "PROMPTREC_ROOT": str(tmp_path),
        "WANDB_MODE": "offline",
        **(env_extra or {}),
    }
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _bin(name):
    return str(Path(sys.executable).parent / name)


PROGRESS_OR_RESULTS = ("epoch ", "Epoch ", "Testing", "Validation", "run folder:", "test metrics",
                       "┏", "┃", "┡", "│", "└")  # fmt: skip


def chatter(output: str) -> list[str]:
    """The lines of a command's output that are neither progress nor results."""
    lines = [line.strip() for line in output.replace("\r", "\n").splitlines()]
    bar = re.compile(r"\d+%\|")  # a tqdm bar (the first run of a slice builds its caches)
    return [line for line in lines
            if line and not line.startswith(PROGRESS_OR_RESULTS) and not bar.search(line)]  # fmt: skip


@pytest.mark.slow
def test_train_then_eval_from_the_command_line(tiny_model_dir, data_dir, tmp_path):
    common = [f"model.name_or_path={tiny_model_dir}", f"paths.data_dir={data_dir}", "data.max_users=20",
              "data.max_train_examples=32", "trainer.max_epochs=1", "trainer.enable_progress_bar=false", *PLAIN]  # fmt: skip
    done = _run(
        [_bin("promptrec-train"), "tuning=lora", "prompt=question", "logger=csv", *common], tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test/auc" in done.stdout
    said = chatter(done.stdout + done.stderr)  # one start line: examples, epochs, precision, head
    assert len(said) <= 1 and said[0].startswith("training on 32 examples"), said
    assert [line for line in done.stdout.splitlines() if line.startswith("epoch 1/1 · train loss")]
    (run,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    assert (run / ".hydra" / "config.yaml").is_file()
    trained = json.loads((run / "metrics.json").read_text())
    # eval reads the run's own config (tuning=lora, 20 users) from .hydra/: no need to repeat it
    done = _run([_bin("promptrec-eval"), f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
                 f"paths.data_dir={data_dir}", "trainer.enable_progress_bar=false"], tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert chatter(done.stdout + done.stderr) == [], chatter(done.stdout + done.stderr)
    (eval_run,) = (tmp_path / "outputs" / "eval" / "runs").iterdir()
    evaluated = json.loads((eval_run / "metrics.json").read_text())
    assert evaluated["test/auc"] == trained["test/auc"]
    assert evaluated["params/trainable"] == trained["params/trainable"]


def test_hydra_cfg_flag_prints_the_resolved_job_config(tmp_path):
    done = _run(
        [sys.executable, "-m", "promptrec.cli.train", "--cfg", "job", "tuning=lora"], tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "mode: lora" in done.stdout and "name: question" in done.stdout


def test_wrong_type_fails_with_hydras_message(tmp_path):
    done = _run([_bin("promptrec-train"), "data.batch_size=abc"], tmp_path)
    assert done.returncode != 0
    assert "data.batch_size" in done.stderr and "abc" in done.stderr
    assert not (tmp_path / "outputs").exists() or not list(
        (tmp_path / "outputs").rglob("metrics.json")
    )


def test_unknown_key_and_unknown_option_are_rejected(tmp_path):
    done = _run([_bin("promptrec-train"), "data.bach_size=8"], tmp_path)
    assert done.returncode != 0 and "bach_size" in done.stderr
    done = _run([_bin("promptrec-train"), "tuning=lorra"], tmp_path)
    assert done.returncode != 0 and "lorra" in done.stderr and "lora" in done.stderr


def test_user_errors_print_one_paragraph_without_traceback(tmp_path):
    done = _run([_bin("promptrec-train"), "data.history_len=-1"], tmp_path)
    assert done.returncode == 1
    assert "data.history_len=-1 is invalid" in done.stderr and "Traceback" not in done.stderr


def test_reading_a_config_imports_no_torch_so_help_and_completion_answer_fast():
    """--help, tab completion and Hydra's config errors load the CLI module and compose the
    config; torch, Lightning and transformers load only when a command runs."""
    code = ("import sys, promptrec.cli.train, promptrec.cli.eval, promptrec.cli.explain, "
            "promptrec.cli.prompts, promptrec.cli.robustness; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning', "
            "'transformers', 'torchmetrics', 'peft'}))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
    done = _run([_bin("promptrec-train"), "--help"], Path("/tmp"))
    assert done.returncode == 0 and done.stdout.startswith("promptrec-train: train a BERT")
    assert "== Config ==" not in done.stdout and len(done.stdout.splitlines()) < 60


@pytest.mark.parametrize("command", ["train", "eval", "explain", "prompts", "robustness"])
def test_each_command_answers_help_with_its_own_text_and_groups(command, tmp_path):
    """Read from conf/ before Hydra starts (Hydra's help took 2 s and showed promptrec-train's
    text for every command)."""
    done = _run([_bin(f"promptrec-{command}"), "-h" if command == "eval" else "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"promptrec-{command}: ")
    assert f"Usage: promptrec-{command} " in done.stdout
    assert "  task: next_item, preference, rating" in done.stdout  # a group and its options
    assert "promptrec-train: " not in done.stdout or command == "train"
    assert not (tmp_path / "outputs").exists()  # no run folder for a question


@pytest.mark.parametrize(
    "command", [["promptrec.cli.train", "data.batch_size=-4"],
                ["promptrec.cli.train", "trainer.max_epochs=two"],
                ["promptrec.cli.train", "ckpt_path=/nonexistent/best.ckpt"],
                ["promptrec.cli.eval"]],
    ids=["data", "trainer", "ckpt_path", "eval"],
)  # fmt: skip
def test_start_up_mistakes_are_refused_before_torch_loads(command, tmp_path):
    """A mistyped value or a missing checkpoint answers in about a second: the checks run
    before torch, Lightning and transformers are imported (``-X importtime`` lists imports)."""
    done = _run([sys.executable, "-X", "importtime", "-m", *command], tmp_path)
    assert done.returncode == 1 and "Error:" in done.stderr, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}  # fmt: skip
    assert "omegaconf" in imported  # the listing works
    assert not imported & {"torch", "lightning", "transformers"}, sorted(imported)[:20]
