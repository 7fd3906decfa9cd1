"""Test a run's best checkpoint: ``promptrec-eval ckpt_path=<run folder or its best.ckpt>``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from promptrec.cli.entry import run_main
from promptrec.cli.help import with_help
from promptrec.metrics.names import at_stage
from promptrec.runtime.config import config_dir, register_configs
from promptrec.runtime.startup import checked_eval_start

register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def hydra_main(cfg: DictConfig) -> float | None:
    """Returns the test value of the task's monitored metric."""

    def job(c: DictConfig) -> tuple[dict, dict]:
        checked_eval_start(c)  # a missing checkpoint answers before torch & co. load
        from promptrec.runtime.evaluation import evaluate

        return evaluate(c)

    metrics, _ = run_main(job, cfg)
    return metrics.get(at_stage(cfg.task.monitor, "test"))


main = with_help("promptrec-eval", "eval", hydra_main)


if __name__ == "__main__":
    main()
