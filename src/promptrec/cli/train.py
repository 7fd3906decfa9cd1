"""Train a prompt-based BERT recommender: ``promptrec-train [group=option ...] [key=value ...]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from promptrec.cli.entry import run_main
from promptrec.cli.help import with_help
from promptrec.runtime.config import config_dir, register_configs
from promptrec.runtime.startup import checked_start

register_configs()

MAIN_OPTIONS = """\
  task=preference|rating|next_item          what is predicted
  prompt=question|text|list|cloze|soft|collaborative|…   how an example becomes text
  tuning=full|lora|frozen|adalora|ia3|prefix|prompt_tuning|adapter|bitfit   what trains
  model=minilm|bert_base  model.name_or_path=<Hub name or folder>          the backbone
  experiment=study_preference|baseline_mf|…  a named set of overrides (conf/experiment/)
  trainer.max_epochs=2  data.max_train_examples=3000  tuning.lr=…  seed=42
  debug=fast                                 one epoch on 50 users, about a minute
  ckpt_path=<run folder>|last                resume a stopped run
"""


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Returns the best monitored validation metric so a sweeper (e.g. Optuna) can optimise it."""

    def job(c: DictConfig) -> float | None:
        checked_start(c)  # a mistyped value answers before torch & co. load (train checks again)
        from promptrec.runtime.training import objective, train

        return objective(train(c)[0], c)

    return run_main(job, cfg)


main = with_help("promptrec-train", "train", hydra_main, MAIN_OPTIONS)


if __name__ == "__main__":
    main()
