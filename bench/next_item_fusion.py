"""Does a next-item language model know anything an ID model does not? Late fusion over the whole
catalogue, from two finished runs' checkpoints.

Next-item runs save only their top-K lists, so ``promptrec-ensemble`` cannot fuse them. This
scores every catalogue item again with both runs' best checkpoints (validation and test), adds
their log-softmax scores with weight w on the second run, and reports NDCG@10 and HR@10 for w in
0, 0.05, …, 1, marking the w that validation picks. If the test score at that w does not beat the
first run alone, the second run adds nothing the first lacks, and a model that folds the two into
one cannot be expected to beat the first either.

    .venv/bin/python bench/next_item_fusion.py ID_RUN LM_RUN
    # e.g. outputs/results/sasrec_s42 outputs/results/study_next_item_s42
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from promptrec.errors import ConfigError
from promptrec.runtime.build import build_datamodule, build_module, load_weights, run_precision


def next_item_config(run: Path):
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    if cfg.task.name != "next_item":
        raise ConfigError(f"{run} is a task={cfg.task.name} run; give two next-item runs.")
    return cfg


@torch.no_grad()
def catalogue_scores(run: Path, cfg):
    """The run's task and, per split, its (examples, catalogue scores), in user order."""
    datamodule = build_datamodule(cfg)
    module = load_weights(build_module(cfg, datamodule)[0], run / "checkpoints" / "best.ckpt")
    bf16 = cfg.model.kind == "lm" and run_precision(cfg).startswith("bf16")
    found = {}
    for name, loader in (("val", datamodule.val_dataloader()),
                         ("test", datamodule.test_dataloader())):  # fmt: skip
        scores, ids = [], []
        for batch in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                scores.append(module(batch).float())
            ids.append(batch["example_id"])
        examples = datamodule.prepared.examples[name].set_index("example_id", drop=False)
        examples = examples.loc[torch.cat(ids).numpy()].reset_index(drop=True)
        order = np.lexsort((examples["position"], examples["user_id"]))
        found[name] = (examples.iloc[order].reset_index(drop=True), torch.cat(scores)[order])
    return datamodule.task, datamodule.prepared.split_hash, found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="a finished next-item run, e.g. SASRec")
    parser.add_argument("second", type=Path, help="a finished next-item run, e.g. a language model")
    args = parser.parse_args(argv)
    configs = [next_item_config(run) for run in (args.first, args.second)]  # before any scoring
    task, split_a, first = catalogue_scores(args.first, configs[0])
    _, split_b, second = catalogue_scores(args.second, configs[1])
    if split_a != split_b:
        raise ConfigError(f"the runs used splits {split_a} and {split_b}: fuse runs of one split.")
    for name in ("val", "test"):
        keys = ["user_id", "position", "item_id"]
        if not first[name][0][keys].equals(second[name][0][keys]):
            raise ConfigError(f"the runs' {name} examples differ: fuse runs of the same data.*.")
    rows = []
    for w in np.round(np.linspace(0, 1, 21), 2):
        row = {"w": w}
        for name in ("val", "test"):
            examples, a = first[name]
            fused = (1 - w) * a.log_softmax(-1) + w * second[name][1].log_softmax(-1)
            metrics, _ = task.evaluate(name, fused, examples)
            row |= {f"{name}/{m}": float(metrics[f"{name}/{m}"]) for m in ("ndcg@10", "hr@10")}
        rows.append(row)
    table = pd.DataFrame(rows)
    best = table["val/ndcg@10"].idxmax()
    table["picked"] = np.where(table.index == best, "← validation's pick", "")
    print(f"w: the second run's weight ({args.second.name}); w=0 is {args.first.name} alone")
    print(table.to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
