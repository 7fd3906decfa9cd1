"""Train a prompt-based BERT recommender: ``promptrec-train [group=option ...] [key=value ...]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from promptrec.cli.entry import run_main
from promptrec.runtime.config import config_dir, register_configs
from promptrec.runtime.startup import checked_start

register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Returns the best monitored validation metric so a sweeper (e.g. Optuna) can optimise it."""

    def job(c: DictConfig) -> float | None:
        checked_start(c)  # a mistyped value answers before torch & co. load (train checks again)
        from promptrec.runtime.training import objective, train

        return objective(train(c)[0], c)

    return run_main(job, cfg)


if __name__ == "__main__":
    main()
