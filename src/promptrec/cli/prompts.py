"""See what the model sees: ``promptrec-prompts prompt=… task=… [n_examples=3] [split=test]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from promptrec.cli.entry import run_main
from promptrec.cli.help import with_help
from promptrec.runtime.config import config_dir, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="prompts")
def hydra_main(cfg: DictConfig) -> None:
    from promptrec.analysis.prompts import show_prompts  # torch & co.: not for --help

    run_main(show_prompts, cfg)


main = with_help("promptrec-prompts", "prompts", hydra_main)


if __name__ == "__main__":
    main()
