"""Build a run's pieces from config: tokenizer, data, model, loggers, callbacks, trainer.

``training.py`` and ``evaluation.py`` (and the analysis commands) call these builders, so a checkpoint is always tested with the
exact data, prompt and model construction it was trained with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from promptrec.errors import ConfigError
from promptrec.models.backbone import load_tokenizer
from promptrec.models.build import BuiltModel, build_model
from promptrec.models.tuning import count_parameters
from promptrec.pipeline.datamodule import RecDataModule
from promptrec.pipeline.module import RecModule
from promptrec.runtime.checkpoint_io import AtomicCheckpointIO
from promptrec.runtime.config import validate
from promptrec.runtime.console import EpochLine, QuietProgressBar, quiet_libraries
from promptrec.runtime.csv_log import ResumableCSVLogger
from promptrec.runtime.precision import resolve_precision
from promptrec.runtime.reporting import TestOutputWriter
from promptrec.runtime.startup import resolve_checkpoint, with_run_config
from promptrec.runtime.tracking import git_state, wandb_identity
from promptrec.strategies import build_strategy
from promptrec.tasks import build_task


@dataclass
class RunObjects:
    datamodule: RecDataModule
    module: RecModule
    trainer: L.Trainer
    loggers: list[Logger]
    info: dict  # what ran: parameter counts, prompt and split hashes, git state


def build_datamodule(cfg: DictConfig) -> RecDataModule:
    """Prompt tokens for language models (through the prompt strategy); user/item indices for
    ID-based baselines."""
    task = build_task(cfg.task)
    strategy = None
    if cfg.model.kind == "lm":
        strategy = build_strategy(cfg, task, load_tokenizer(cfg.model.name_or_path))
    datamodule = RecDataModule(cfg.data, task, cfg.seed, strategy)
    datamodule.prepare_data()  # fails early (bad template, missing data) before any model loads
    datamodule.setup()
    return datamodule


def build_module(cfg: DictConfig, datamodule: RecDataModule) -> tuple[RecModule, BuiltModel]:
    """The LightningModule, and what was built with its model: the callbacks its tuning mode
    needs in the trainer, and the frozen layers below a ``tuning.freeze_layers`` cut."""
    built = build_model(cfg, datamodule)
    if cfg.model.get("compile"):  # in place: parameter names and checkpoints stay the same
        built.model.compile(backend=cfg.model.compile, dynamic=True)  # lengths vary per batch
    module = RecModule(built.model, datamodule.task, instantiate(cfg.optimizer),
                       cfg.tuning.warmup_ratio, cfg.tuning.get("decay", True), built.penalty,
                       cfg.tuning.get("new_lr"))  # fmt: skip
    return module, built


def load_trained_lm(cfg: DictConfig, why: str) -> tuple[DictConfig, RecDataModule, RecModule]:
    """The checkpoint's run config, data and language model with its trained weights, in eval
    mode: what the commands that re-score prompts (explain, robustness) start from."""
    cfg = with_run_config(resolve_checkpoint(cfg))
    validate(cfg)
    if cfg.model.kind != "lm":
        raise ConfigError(f"model={cfg.model.kind} reads no prompt: {why} needs a language model.")
    if cfg.prompt.get("collaborative") is not None:  # edited prompts would need new ID rows
        raise ConfigError(f"{why} does not support collaborative tokens yet: it edits prompts, "
                          "and their ID rows are built with the data, not per edited prompt.")  # fmt: skip
    datamodule = build_datamodule(cfg)
    module, _ = build_module(cfg, datamodule)
    return cfg, datamodule, load_weights(module, cfg.ckpt_path)


def load_weights(module: RecModule, ckpt_path) -> RecModule:
    """A checkpoint's trained weights in a freshly built module, in eval mode."""
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    module.on_load_checkpoint({"state_dict": state})  # every trained weight must be there
    module.load_state_dict(state, strict=module.strict_loading)  # PEFT: frozen ones: the backbone
    return module.eval()


def build_loggers(cfg: DictConfig, previous: dict | None = None) -> list[Logger]:
    """Every logger in ``cfg.logger``. W&B runs are named, grouped and tagged by
    :func:`~promptrec.runtime.tracking.wandb_identity`; ``previous`` (a resumed run's record)
    continues its W&B run under its own name, group and tags (a sweep job stays in its sweep).
    A W&B run that cannot start (no login, no network, a bad setting) never stops training: the
    run goes on with the CSV log, and says so once."""
    loggers, wandb_failed = [], False
    for node in (cfg.get("logger") or {}).values():
        if node is None:
            continue
        if node._target_.endswith("WandbLogger"):
            os.environ.setdefault("WANDB_SILENT", "true")  # no banners; offline needs no login
            os.environ.setdefault("WANDB_INIT_TIMEOUT", "30")  # online but unreachable: not 90 s
            identity, resume = wandb_identity(cfg, node), {}
            if previous and previous.get("wandb_id"):
                resume = {"id": previous["wandb_id"], "resume": "allow"}
                identity = {k: previous.get(f"wandb_{k}") or v for k, v in identity.items()}
            logger = instantiate(node, **identity, **resume)
            if logger._wandb_init.get("anonymous") is None:  # Lightning passes None: wandb warns
                logger._wandb_init.pop("anonymous", None)  # that the setting is deprecated
            if _wandb_started(logger, cfg):
                loggers.append(logger)
            else:
                wandb_failed = True
        else:
            loggers.append(instantiate(node))
    if wandb_failed and not any(isinstance(x, CSVLogger) for x in loggers):  # keep a local log
        loggers.append(ResumableCSVLogger(save_dir=cfg.paths.output_dir, name="csv", version=""))
    return loggers


def _wandb_started(logger: WandbLogger, cfg: DictConfig) -> bool:
    """Start the W&B run now (rank zero; other ranks hold a placeholder), so that a failure
    shows here, before training, instead of at the first logged step."""
    try:
        logger.experiment  # noqa: B018 - the property starts the run
        return True
    except Exception as exc:  # wandb raises many types: auth, network, usage, config
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        Console(stderr=True).print(
            f"[bold yellow]Warning:[/] W&B could not start ({reason}). Training goes on and logs "
            f"to {cfg.paths.output_dir}/csv/metrics.csv. To log to W&B, run `wandb login` and "
            "check logger.wandb.*, or keep logger.wandb.offline=true (the default), which needs "
            "neither login nor network.",
            highlight=False,
        )
        return False


def wandb_facts(loggers: list[Logger]) -> dict:
    """The W&B run's id (to resume into it), name and group, for ``run.json`` (rank zero only:
    other DDP ranks hold a placeholder experiment)."""
    if rank_zero_only.rank != 0:
        return {}
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            return {"wandb_id": run.id, "wandb_name": run.name, "wandb_group": run.group,
                    "wandb_tags": sorted(run.tags or ())}  # fmt: skip
    return {}


def run_precision(cfg: DictConfig) -> str:
    """``trainer.precision``, with ``auto`` resolved for this machine (runtime/precision.py)."""
    return precision_and_reason(cfg)[0]


def precision_and_reason(cfg: DictConfig) -> tuple[str, str | None]:
    """The precision, and why ``auto`` chose it (None when it was set)."""
    trainer = cfg.get("trainer") or {}  # explain and robustness run no trainer
    setting = trainer.get("precision", "32-true")
    if str(setting) == "auto" and (cfg.get("model") or {}).get("kind", "lm") != "lm":
        # ID baselines are cheap, and bf16's 8-bit mantissa would tie their catalogue scores
        return "32-true", None
    return resolve_precision(setting, trainer.get("accelerator", "auto"))


def build_trainer(
    cfg: DictConfig,
    loggers: list[Logger],
    extra: list[L.Callback] = (),
    precision: str | None = None,
) -> L.Trainer:
    """``extra``: callbacks of the tuning mode (AdaLoRA's budget, merging LoRA before test)."""
    quiet_libraries()
    callbacks = [
        instantiate(c)
        for c in (cfg.get("callbacks") or {}).values()
        if OmegaConf.is_dict(c) and "_target_" in c
    ]  # not settings (keep_checkpoints)
    callbacks += list(extra)
    callbacks.append(
        TestOutputWriter(Path(cfg.paths.output_dir), cfg.model.kind)
    )  # every run's test tables
    reason = None
    if precision is None:
        precision, reason = precision_and_reason(cfg)
    callbacks.append(EpochLine(reason))
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(QuietProgressBar())
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                       plugins=[AtomicCheckpointIO()], precision=precision)  # fmt: skip


def build_run(cfg: DictConfig, previous: dict | None = None) -> RunObjects:
    quiet_libraries()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    precision = run_precision(cfg)
    module, built = build_module(cfg, datamodule)
    if built.lower is not None:  # tuning.freeze_layers: the frozen part's output, cached on disk
        datamodule.use_hidden_states(built.lower, precision)
    loggers = build_loggers(cfg, previous)
    trainer = build_trainer(cfg, loggers, built.callbacks)
    run_info = {
        **count_parameters(module.model),
        "model/kind": cfg.model.kind,
        "run/precision": str(trainer.precision),
        "prompt/name": cfg.prompt.name if datamodule.prompts else "none",
        "prompt/hash": datamodule.prompts.hash if datamodule.prompts else "none",
        "data/split_hash": datamodule.prepared.split_hash,
        # films listed under two ids (data.merge_duplicate_items=true gives each one id)
        "data/duplicate_items": len(datamodule.prepared.duplicates or {}),
        **{f"data/{s}_examples": len(ds) for s, ds in datamodule.prepared.datasets.items()},
        **git_state(),
    }
    config = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams({**config, "run": run_info})
    return RunObjects(datamodule, module, trainer, loggers, run_info)


def close_loggers(loggers: list[Logger], failed: bool = False) -> None:
    """Finish W&B explicitly: otherwise the next multirun job logs into this job's run. A failed
    run is finished with exit code 1, so the dashboard shows it as failed."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            wandb.finish(exit_code=1 if failed else 0)
