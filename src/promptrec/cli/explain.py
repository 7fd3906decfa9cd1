"""Explain predictions by occlusion: ``promptrec-explain ckpt_path=<run>/checkpoints/best.ckpt``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from promptrec.cli.entry import run_main
from promptrec.cli.help import with_help
from promptrec.runtime.config import config_dir, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="explain")
def hydra_main(cfg: DictConfig) -> None:
    from promptrec.analysis.explain import explain  # torch & co.: not for --help

    run_main(explain, cfg)


main = with_help("promptrec-explain", "explain", hydra_main)


if __name__ == "__main__":
    main()
