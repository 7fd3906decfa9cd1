"""Test a trained checkpoint again, with its run's own settings, into a new run folder."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from promptrec.runtime.build import build_run, close_loggers
from promptrec.runtime.reporting import print_metrics, side_facts, write_metrics
from promptrec.runtime.startup import checked_eval_start


def evaluate(cfg: DictConfig) -> tuple[dict, dict]:
    """Test ``cfg.ckpt_path`` on the test split; write metrics.json and predictions.csv (and the
    validation split's, val_predictions.csv, as a training run does)."""
    cfg = checked_eval_start(cfg)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    objects = build_run(cfg)
    try:
        objects.trainer.test(objects.module, datamodule=objects.datamodule, ckpt_path=cfg.ckpt_path,
                             weights_only=True, verbose=False)  # fmt: skip
        metrics = {
            k: float(v)
            for k, v in objects.trainer.callback_metrics.items()
            if k.startswith("test/")
        }
        metrics.update(objects.info, checkpoint=str(cfg.ckpt_path), **side_facts(objects.module))
        # the tested weights on validation too (val_predictions.csv), as a training run does
        objects.trainer.validate(objects.module, datamodule=objects.datamodule, verbose=False)
        if objects.trainer.is_global_zero:
            write_metrics(run_dir, metrics)
    finally:
        close_loggers(objects.loggers)
    print_metrics({k: v for k, v in metrics.items() if k.startswith("test/")}, "test metrics")
    print(f"run folder: {run_dir}")
    return metrics, {
        "trainer": objects.trainer,
        "module": objects.module,
        "datamodule": objects.datamodule,
    }
