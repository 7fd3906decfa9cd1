"""A training run: fit, test the best checkpoint, write the run folder. ``train(cfg)`` is what
tests, notebooks and ``promptrec-reproduce`` call; ``promptrec-train`` is a thin wrapper."""

from __future__ import annotations

import math
from pathlib import Path

from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from promptrec.errors import PromptRecError
from promptrec.prompts.inspect import sample_prompts
from promptrec.runtime.build import build_run, close_loggers, wandb_facts
from promptrec.runtime.callbacks import TrainingDiverged
from promptrec.runtime.costs import peak_memory_mb
from promptrec.runtime.reporting import (
    log_prompt_examples,
    print_metrics,
    side_facts,
    write_metrics,
)
from promptrec.runtime.resume import LAST
from promptrec.runtime.startup import checked_start
from promptrec.runtime.tracking import RunRecord, remove_startup_folder


def run_costs(trainer) -> dict:
    """Peak memory and the size of the checkpoint on disk (what a tuning mode must store)."""
    costs = peak_memory_mb()
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best and Path(best).is_file():
        costs["cost/checkpoint_mb"] = Path(best).stat().st_size / 2**20
    return costs


def interrupted(exc: BaseException, objects) -> bool:
    """Ctrl-C: before training, a KeyboardInterrupt; during it, Lightning's graceful shutdown
    ends in ``sys.exit(1)`` with the trainer marked interrupted."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    return isinstance(exc, SystemExit) and objects is not None and objects.trainer.interrupted


def resume_hint(run_dir: Path) -> str:
    if (run_dir / "checkpoints" / LAST).is_file():
        return (f"interrupted: continue it with `promptrec-train ckpt_path={run_dir}` (from the "
                "end of its last finished epoch)")  # fmt: skip
    return "interrupted before its first epoch ended: nothing to resume, start it again"


def fit_and_test(cfg: DictConfig, trainer, module, datamodule) -> dict:
    """Fit (unless ``train=false``), then test the best checkpoint; the logged metrics, with the
    best monitored validation value as ``<monitor>_best`` (the sweepers' objective)."""
    trainable = any(p.requires_grad for p in module.parameters())
    if cfg.train and trainable:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    elif cfg.train:
        print("model has no trainable parameters (e.g. model=pop): skipping fit, testing as built")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_score is not None:
        metrics[f"{cfg.task.monitor}_best"] = float(trainer.checkpoint_callback.best_model_score)
    if cfg.test:
        callback = trainer.checkpoint_callback
        best = callback.best_model_path if callback else ""
        if cfg.train and trainable and not best:
            print("training stopped before its first validation (trainer.max_steps or a limit): "
                  "testing the last weights")  # fmt: skip
        ckpt = best or (None if cfg.train else cfg.ckpt_path)
        trainer.test(
            module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True, verbose=False
        )
        metrics.update(
            {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        )
        metrics["best_checkpoint"] = ckpt or ""
        # the tested weights (as tested: a merged LoRA stays merged) on validation, per example
        # (val_predictions.csv): what a late fusion of this run with others fits its weights on
        trainer.validate(module, datamodule=datamodule, verbose=False)
    return {**metrics, **side_facts(module)}


KEEP = {"best": ("best.ckpt",), "last": (LAST,), "both": ("best.ckpt", LAST), "none": ()}


def prune_checkpoints(run_dir: Path, keep: str) -> None:
    """A finished run keeps the checkpoints ``callbacks.keep_checkpoints`` names (a full model
    is ~90 MB for MiniLM, 440 MB for BERT-base; resuming, the only use of ``last``, is over).
    Where the kept one was never written (no validation ran), the other one stays."""
    folder = run_dir / "checkpoints"
    wanted = [folder / name for name in KEEP[keep]]
    if keep != "none" and not any(p.is_file() for p in wanted):
        return
    for path in (folder / "best.ckpt", folder / LAST):
        if path not in wanted:
            path.unlink(missing_ok=True)


def ended_early(exc: BaseException, record: RunRecord, objects, fresh: bool) -> None:
    """Record why a run ended before its metrics; Ctrl-C becomes exit code 130 with the command
    that resumes it, and a mistake found before anything was built leaves no folder."""
    stopped = interrupted(exc, objects)
    if stopped:
        record.interrupted()
    else:
        record.failed(exc)
    run_dir = record.path.parent
    if objects is not None:
        close_loggers(objects.loggers, failed=True)
    elif isinstance(exc, PromptRecError) and fresh:
        remove_startup_folder(run_dir)
    if stopped:
        if record.write:
            print(resume_hint(run_dir))
        raise SystemExit(130) from None  # the shell's code for Ctrl-C


def train(cfg: DictConfig) -> tuple[dict, dict]:
    """Fit, then test the best checkpoint; write metrics.json and predictions.csv to the run folder.

    ``ckpt_path=<run folder>`` (or ``last``) continues that run in its folder and W&B run.
    Returns (metrics, objects): test metrics plus run facts, and the built objects for callers
    (tests, notebooks) that want to inspect the model or data.
    """
    cfg, resumed = checked_start(cfg)
    if resumed is not None:
        print(f"resuming {resumed} from checkpoints/last.ckpt")
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lead = rank_zero_only.rank == 0  # under DDP every rank runs this; one of them writes files
    record = RunRecord(run_dir, write=lead, resumed=resumed is not None)  # failed jobs say so
    previous = dict(record.data) if resumed else None  # continue the same W&B run, as it was
    objects = None
    try:
        objects = build_run(cfg, previous)
        trainer, module, datamodule = objects.trainer, objects.module, objects.datamodule
        record.update(**wandb_facts(objects.loggers),
                      device=str(trainer.strategy.root_device),
                      **{k: v for k, v in objects.info.items() if k.startswith("git/")})  # fmt: skip
        if datamodule.tokenizer is not None and lead:  # what the model sees, before it trains
            log_prompt_examples(
                run_dir, objects.loggers, sample_prompts(datamodule, "train", 8, cfg.seed)
            )
        metrics = fit_and_test(cfg, trainer, module, datamodule)
        metrics.update(objects.info, **run_costs(trainer))
        for logger in objects.loggers:
            logger.log_metrics(
                {k: v for k, v in metrics.items() if k.startswith("cost/") or k.endswith("_best")}
            )  # the objective a W&B sweep reads (conf/wandb_sweep/*.yaml: metric.name)
        if lead:
            write_metrics(run_dir, metrics)
            prune_checkpoints(run_dir, (cfg.get("callbacks") or {}).get("keep_checkpoints", "both"))
        record.finished()
    except BaseException as exc:
        ended_early(exc, record, objects, fresh=resumed is None and lead)
        raise
    close_loggers(objects.loggers)
    if lead:
        print_metrics({k: v for k, v in metrics.items() if k.startswith("test/")}, "test metrics")
        print(f"run folder: {run_dir}")
    return metrics, {"trainer": trainer, "module": module, "datamodule": datamodule}


def objective(metrics: dict, cfg: DictConfig) -> float | None:
    """The sweeper's number. A NaN one is an error: Optuna then marks the trial failed and goes
    on (handed a NaN value instead, the Hydra Optuna sweeper stops the whole study)."""
    value = metrics.get(f"{cfg.task.monitor}_best", metrics.get(cfg.task.monitor))
    if value is not None and not math.isfinite(value):
        raise TrainingDiverged(
            f"the objective {cfg.task.monitor} is {value}: the run produced no usable scores. "
            "Lower tuning.lr or check the data; the run folder keeps the logs."
        )
    return value
