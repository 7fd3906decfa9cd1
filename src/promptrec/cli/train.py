"""Train a prompt-based BERT recommender: ``promptrec-train [group=option ...] [key=value ...]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from promptrec.cli.entry import run_main
from promptrec.runtime.config import config_dir, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Returns the best monitored validation metric so a sweeper (e.g. Optuna) can optimise it."""
    from promptrec.runtime.training import objective, train  # torch & co.: not for --help

    return run_main(lambda c: objective(train(c)[0], c), cfg)


if __name__ == "__main__":
    main()
