"""Shared fixtures: a tiny random BERT with the real vocabulary and a small slice of real data.

Every test runs offline: the model is built locally, MovieLens-100K comes from the RecBole wheel
(fetched once into the repository's data/ folder, as `make data` does) and W&B is offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: a thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # (before torch loads; subprocesses inherit it)

import torch  # noqa: E402
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from transformers import AutoTokenizer, BertConfig, BertModel

from forked import run_forked  # noqa: E402
from promptrec.data.sources import fetch_recbole_ml100k
from promptrec.models.backbone import resolve_model_path
from promptrec.runtime.config import config_dir, register_configs

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def pytest_collection_modifyitems(items):
    """The end-to-end tests first: under `make test` (xdist, one worker per core) the long ones
    start early and the short ones fill the gaps, instead of one long test running alone at the
    end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The repository's data/ folder with MovieLens-100K's atomic files (fetched once)."""
    folder = REPO / "data"
    fetch_recbole_ml100k(folder)
    return folder


@pytest.fixture(scope="session")
def atomic_dir(data_dir) -> Path:
    return data_dir / "ml-100k-atomic"


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A session fixture's folder, built by the first xdist worker that asks for it while the
    others wait, then read by all (pytest-xdist's file-lock pattern): ``build(folder)`` fills it."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # shared by workers
    folder = root / name
    with FileLock(f"{folder}.lock"):
        if not (folder / ".built").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer, 32-wide BERT with MiniLM's real 30,522-word vocabulary."""
    return built_once(tmp_path_factory, "tiny-bert", save_tiny_model)


def save_tiny_model(folder: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    )
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


# The tiny model has two layers, so the default job's tuning.freeze_layers cannot apply to it, and
# tests pin fp32 values whatever the CPU: they run the plain path unless they test the other one
# (tests/test_frozen_layers.py).
PLAIN = ["tuning.freeze_layers=0", "trainer.precision=32-true"]


def compose_config(name: str, overrides: list[str], return_hydra: bool = False):
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name=name, overrides=overrides, return_hydra_config=return_hydra)


def tiny_overrides(tiny_model_dir: Path, data_dir: Path, out: Path) -> list[str]:
    """Shrink the default job to seconds: tiny BERT, 30 users, 64 training examples, one epoch."""
    return [
        f"model.name_or_path={tiny_model_dir}",
        f"paths.root_dir={out}",
        f"paths.data_dir={data_dir}",
        f"paths.cache_dir={out / 'cache'}",
        f"paths.output_dir={out / 'run'}",
        "data.max_users=30",
        "data.max_train_examples=64",
        "data.history_len=5",
        "data.batch_size=16",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        "logger=csv",
        *PLAIN,
    ]


@pytest.fixture
def train_cfg(tiny_model_dir, data_dir, tmp_path):
    return compose_config("train", tiny_overrides(tiny_model_dir, data_dir, tmp_path))


BIN = Path(sys.executable).parent


def run(args, root: Path, real: bool = False, **env):
    """Run a promptrec command as a user would, with its outputs under ``root``: in a fork of a
    process that has imported the libraries (forked.py), or with ``real`` as a new process."""
    env = {**os.environ, "PROMPTREC_ROOT": str(root), "WANDB_MODE": "offline",
           "PYTHONPATH": str(REPO / "tests"), **env}  # fmt: skip
    argv = [str(BIN / args[0]), *args[1:]]
    if not real:
        return run_forked(argv, REPO, env, timeout=900)
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def trained_run(tiny_model_dir, data_dir, tmp_path_factory):
    """A finished tiny run per task, trained once from the command line and shared by the tests
    that only read it (eval, reproduce): they must not write into it."""

    def train(root: Path, task: str) -> None:
        done = run(["promptrec-train", f"task={task}", "logger=csv",
                    *tiny(tiny_model_dir, data_dir, users=15)], root)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]

    def get(task: str) -> Path:
        root = built_once(tmp_path_factory, f"trained-{task}", lambda root: train(root, task))
        (folder,) = (root / "outputs" / "train" / "runs").iterdir()
        return folder

    return get


def tiny(model_dir, data_dir, users=10, examples=16) -> list[str]:
    """Command-line overrides for a run of seconds: tiny BERT, a few users, one epoch."""
    return [f"model.name_or_path={model_dir}", f"paths.data_dir={data_dir}", f"data.max_users={users}",
            f"data.max_train_examples={examples}", "data.history_len=3", "data.batch_size=8",
            "trainer.max_epochs=1", "trainer.enable_progress_bar=false", *PLAIN]  # fmt: skip
